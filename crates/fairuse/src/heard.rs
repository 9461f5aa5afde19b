//! Simulated hearing, for `simulate` and `eval`: what a gateway stream heard, described by the
//! trace (`audio` on a `stream_session` line), turned into the sampled fingerprint codes the real
//! meter would keep, and run through the same duplicate tracker the gateway uses
//! ([`fairuse_domain::prints::DuplicateTracker`]) against a print index held in memory. So a
//! backtest or an evaluation sees duplicate audio exactly as production would compute it from
//! those codes; what it does not model is the acoustics (tested on synthesised speech in
//! `crates/fairuse/tests/duplicate_audio.rs` and `crates/fairuse-fingerprint/tests/matching.rs`).
//!
//! The model of a code: one sampled code every [`HIT_SPAN_MS`] of a stream (the real meter keeps
//! one 123.8 ms code in four). A recording's code at position `k` is a fixed 32-bit value; each
//! hearing flips each of its bits with probability 1/29, so two hearings differ in 2.2 of 32 bits
//! on average (what a replay through another room measures against the original,
//! `fairuse-fingerprint`'s table), and a hearing finds an earlier one only where the index key
//! (the top 24 bits) came through intact, as with real codes. Live audio is new every time.

use std::collections::HashMap;

use fairuse_domain::prints::{DuplicateTracker, HIT_SPAN_MS, POSTING_LIMIT, Print, print_key};
use fairuse_domain::sessions::{HashSample, StreamSession};
use fairuse_domain::time::Timestamp;
use serde::{Deserialize, Serialize};

/// What one stretch of a gateway stream heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSegment {
    /// Where the stretch starts in the stream, ms.
    pub at_ms: i64,
    /// How long it lasts, ms.
    pub ms: i64,
    /// The recording heard: the same id is the same audio wherever and whenever it plays.
    /// Absent: live audio, heard nowhere else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    /// Where in the recording the stretch starts, ms.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub from_ms: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Codes looked up and added together, as a gateway flush batch (~15 s of speech).
const BATCH: usize = 30;
/// Each bit of a heard code flips with probability one in this.
const FLIP_ONE_IN: u64 = 29;

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3))
}

/// splitmix64: well-mixed bits from any counter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The sampled codes a stream keeps for one segment, with their offsets in the stream.
pub fn segment_codes(uid: &str, session_id: &str, seg: &AudioSegment) -> Vec<HashSample> {
    let listener = fnv(uid) ^ fnv(session_id).rotate_left(17);
    let mut out = Vec::new();
    match &seg.recording {
        Some(rec) => {
            let rec = fnv(rec);
            // Codes sit on the recording's own grid, wherever the stream starts hearing it.
            let first = seg.from_ms.div_euclid(HIT_SPAN_MS) + i64::from(seg.from_ms.rem_euclid(HIT_SPAN_MS) != 0);
            let mut k = first;
            while k * HIT_SPAN_MS < seg.from_ms + seg.ms {
                let clean = mix(rec ^ (k as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)) as u32;
                let mut noise = mix(listener ^ (k as u64));
                let mut flips = 0u32;
                for bit in 0..32 {
                    if noise.is_multiple_of(FLIP_ONE_IN) {
                        flips |= 1 << bit;
                    }
                    noise = mix(noise);
                }
                out.push(HashSample { offset_ms: seg.at_ms + k * HIT_SPAN_MS - seg.from_ms, code: clean ^ flips });
                k += 1;
            }
        }
        None => {
            let mut at = 0;
            while at < seg.ms {
                let code = mix(listener ^ ((seg.at_ms + at) as u64).wrapping_mul(0xA24B_AED4_963E_E407)) as u32;
                out.push(HashSample { offset_ms: seg.at_ms + at, code });
                at += HIT_SPAN_MS;
            }
        }
    }
    out
}

/// A print index in memory, compact (16 bytes a print), answering as `PrintStore` does.
#[derive(Default)]
struct Index {
    sessions: Vec<(String, String)>,
    ids: HashMap<(String, String), u32>,
    /// key -> (heard at, session, code), in the order added (time order in a trace).
    by_key: HashMap<u32, Vec<(i64, u32, u32)>>,
}

impl Index {
    fn lookup(&self, keys: &[u32], since: i64) -> Vec<Print> {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            let Some(list) = self.by_key.get(&key) else { continue };
            let mut recent: Vec<&(i64, u32, u32)> = list.iter().filter(|p| p.0 >= since).collect();
            recent.sort_by_key(|p| std::cmp::Reverse(p.0));
            for &&(heard_at, s, code) in recent.iter().take(POSTING_LIMIT) {
                let (uid, session_id) = self.sessions[s as usize].clone();
                out.push(Print { uid, session_id, heard_at: Timestamp::from_millis(heard_at), code });
            }
        }
        out
    }

    fn add(&mut self, uid: &str, session_id: &str, started_at: i64, samples: &[HashSample]) {
        let key = (uid.to_owned(), session_id.to_owned());
        let s = match self.ids.get(&key) {
            Some(&s) => s,
            None => {
                let s = self.sessions.len() as u32;
                self.sessions.push(key.clone());
                self.ids.insert(key, s);
                s
            }
        };
        for h in samples {
            self.by_key.entry(print_key(h.code)).or_default().push((started_at + h.offset_ms, s, h.code));
        }
    }

    /// Drops prints heard before `before`.
    fn prune(&mut self, before: i64) {
        self.by_key.retain(|_, list| {
            list.retain(|p| p.0 >= before);
            !list.is_empty()
        });
    }
}

/// The print index and the per-session trackers of one simulation.
#[derive(Default)]
pub struct Hearing {
    index: Index,
    trackers: HashMap<(String, String), DuplicateTracker>,
    pruned_at: i64,
}

impl Hearing {
    /// Feeds the segments a `stream_session` line says the stream heard since its last line, in
    /// batches as the gateway would, and sets the session's duplicate audio from its tracker.
    /// Prints older than `retention_ms` before `now` are neither found nor kept.
    pub fn hear(
        &mut self,
        uid: &str,
        session: &mut StreamSession,
        segments: &[AudioSegment],
        now: Timestamp,
        retention_ms: i64,
    ) {
        let since = now.millis() - retention_ms;
        if since - self.pruned_at >= 3_600_000 {
            self.index.prune(since);
            self.pruned_at = since;
        }
        let started = session.started_at;
        let key = (uid.to_owned(), session.session_id.clone());
        let tracker = self.trackers.entry(key).or_insert_with(|| DuplicateTracker::new(uid, started));
        for seg in segments {
            let codes = segment_codes(uid, &session.session_id, seg);
            for batch in codes.chunks(BATCH) {
                let keys: Vec<u32> = batch.iter().map(|h| print_key(h.code)).collect();
                let found = self.index.lookup(&keys, since);
                tracker.add(batch, &found);
                self.index.add(uid, &session.session_id, started.millis(), batch);
            }
        }
        let d = tracker.summary();
        session.duplicate_own_ms = d.own_ms;
        session.duplicate_other_ms = d.other_ms;
        session.duplicate_of = d.matches;
        if session.closed {
            self.trackers.remove(&(uid.to_owned(), session.session_id.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, at_ms: i64, minutes: i64) -> StreamSession {
        let mut s = StreamSession::open(id, Timestamp::from_millis(at_ms));
        s.duration_ms = minutes * 60_000;
        s.speech_ms = s.duration_ms;
        s.updated_at = s.started_at.plus_ms(s.duration_ms);
        s.closed = true;
        s
    }

    fn recording(id: &str, from_ms: i64, ms: i64) -> AudioSegment {
        AudioSegment { at_ms: 0, ms, recording: Some(id.into()), from_ms }
    }

    #[test]
    fn a_recording_heard_again_later_by_anyone_is_duplicate_and_live_audio_never_is() {
        let mut h = Hearing::default();
        let day = 86_400_000;
        let t0 = 100 * day;
        let hear = |h: &mut Hearing, uid: &str, id: &str, at: i64, segs: &[AudioSegment]| {
            let mut s = session(id, at, 30);
            h.hear(uid, &mut s, segs, Timestamp::from_millis(at + 30 * 60_000), 8 * day);
            s
        };
        let first = hear(&mut h, "ann", "a1", t0, &[recording("book", 0, 30 * 60_000)]);
        assert_eq!((first.duplicate_own_ms, first.duplicate_other_ms), (0, 0));
        // Bob, two hours later, from minute 10 of the book for 20 minutes, then live talk.
        let bob = hear(
            &mut h,
            "bob",
            "b1",
            t0 + 2 * 3_600_000,
            &[
                recording("book", 10 * 60_000, 20 * 60_000),
                AudioSegment { at_ms: 20 * 60_000, ms: 10 * 60_000, recording: None, from_ms: 0 },
            ],
        );
        assert_eq!(bob.duplicate_own_ms, 0);
        assert!((19 * 60_000..=20 * 60_000 + 1_000).contains(&bob.duplicate_other_ms), "{bob:?}");
        // A co-located wearer hearing Bob's live talk at the same moment finds nothing: live talk
        // is new audio, and Bob's recording part is simultaneous.
        let beside =
            hear(&mut h, "cat", "c1", t0 + 2 * 3_600_000 + 60_000, &[recording("book", 10 * 60_000, 20 * 60_000)]);
        assert_eq!(beside.duplicate_of.iter().filter(|m| m.uid == "bob").count(), 0, "{beside:?}");
        // Ann plays the book again the next day: her own, and Bob's too.
        let again = hear(&mut h, "ann", "a2", t0 + day, &[recording("book", 0, 30 * 60_000)]);
        assert!(again.duplicate_own_ms >= 29 * 60_000, "{again:?}");
        // Past the retention the first hearings are gone.
        let late = hear(&mut h, "dan", "d1", t0 + 10 * day, &[recording("book", 0, 30 * 60_000)]);
        assert_eq!((late.duplicate_own_ms, late.duplicate_other_ms), (0, 0), "{late:?}");
    }

    #[test]
    fn a_hearing_keeps_most_bits_of_the_recordings_codes() {
        let a = segment_codes("ann", "a1", &recording("book", 0, 600_000));
        let b = segment_codes("bob", "b1", &recording("book", 0, 600_000));
        assert_eq!(a.len(), b.len());
        let errors: u32 = a.iter().zip(&b).map(|(x, y)| (x.code ^ y.code).count_ones()).sum();
        let mean = f64::from(errors) / a.len() as f64;
        // Two hearings, each about 1.1 bits off the recording: about 2.2 bits apart.
        assert!((1.6..2.8).contains(&mean), "{mean}");
        let same_key = a.iter().zip(&b).filter(|(x, y)| print_key(x.code) == print_key(y.code)).count();
        assert!(same_key * 100 / a.len() > 10, "{same_key} of {}", a.len());
    }
}
