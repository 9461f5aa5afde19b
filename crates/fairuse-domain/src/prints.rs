//! Time-shifted duplicate audio (issue 11): live conversation never happens twice.
//!
//! The gateway fingerprints the speech of each stream and keeps one code in four (chosen by the
//! code's top 16 bits, so two streams hearing the same audio keep the same codes). Each batch of
//! sampled codes is looked up in the *print index* ([`crate::store::PrintStore`]) before it is
//! added: an inverted index keyed by the code's top [`KEY_BITS`] bits, at most [`POSTING_LIMIT`] prints per key
//! per lookup, the most recently heard first, so a lookup costs the same whatever the number of
//! users. A [`DuplicateTracker`] per stream turns what was found into *runs*: many hits at one
//! time shift against one earlier session, close together in this stream. A run is content this
//! stream repeats from the other session: the same recording heard again.
//!
//! Only time-shifted runs count: two streams hearing the same audio within
//! [`SIMULTANEOUS_MS`] of each other are two wearers in one room or one live broadcast, and say
//! nothing about recorded media. Runs against the user's own earlier sessions (a looping
//! playlist, a chapter played again, even earlier in the same stream) and against other users'
//! sessions (the same audiobook, episode or course) are kept apart.
//!
//! Pure code: no I/O, no clock; instants are arguments. Memory per stream is bounded: hits that
//! cannot become a run are dropped as the stream moves on, and at most [`MAX_BINS`] shifts are
//! followed at once.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::sessions::HashSample;
use crate::time::{MS_PER_MINUTE, Timestamp};

/// Bits of a code that key the index: the top 24 (Chromaprint's first twelve classifiers).
///
/// The key is a trade between how far back a lookup sees and how often a replay finds its
/// original. A lookup reads at most [`POSTING_LIMIT`] prints per key, the most recent, so the more
/// prints share a key the shorter the lookback: with 16-bit keys it was ~2,700 / users days (6 h at
/// 10,000 typical users, `bench/results/prints.md`); 24 bits spread the same prints over 256 times
/// as many keys, the whole 8-day retention up to ~85,000 typical users. A key matches only when
/// all of its bits came through the channel: on the replay of `crates/fairuse/tests/
/// duplicate_audio.rs` (another room, reverb, noise) 16-bit keys found 98.6 % of the repeated
/// speech, 24-bit keys 95.8 % and whole 32-bit codes 87.5 %.
pub const KEY_BITS: u32 = 24;

/// The index key of a code: its top [`KEY_BITS`] bits.
pub fn print_key(code: u32) -> u32 {
    code >> (32 - KEY_BITS)
}

/// One sampled code in the index: who heard it, in which session, when its audio started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Print {
    pub uid: String,
    pub session_id: String,
    pub heard_at: Timestamp,
    pub code: u32,
}

/// The most prints a lookup returns per key, most recently heard first: the work of a lookup is
/// bounded whatever the number of users, and a key that every stream produces cannot flood it.
pub const POSTING_LIMIT: usize = 64;
/// Two hearings closer than this are the same moment (co-located wearers, a live broadcast):
/// never evidence.
pub const SIMULTANEOUS_MS: i64 = 5 * MS_PER_MINUTE;
/// A found print is a hit when its key is the sample's (24 bits equal) and at most this many of
/// the other 8 bits differ. Replays through another channel average 2 bit errors per 32-bit code,
/// the same words in another voice 7 or more (`fairuse-fingerprint`'s measurements).
pub const HIT_MAX_BITS: u32 = 4;
/// Hits are pooled by time shift in bins this wide (a hit also joins a neighbouring bin already
/// followed, so clock drift between devices does not split a run).
pub const SHIFT_BIN_MS: i64 = 1_000;
/// A run ends when no hit comes for this long (of this stream's audio).
pub const RUN_GAP_MS: i64 = 20_000;
/// A run counts when it holds at least this many hits...
pub const RUN_MIN_HITS: u32 = 6;
/// ...and at least this share of them differ from the hit before (steady sounds repeat one code).
pub const RUN_MIN_CHANGE_SHARE: f64 = 0.5;
/// Audio one hit stands for at the end of a run: one code step (123.8 ms) times the sampling (4).
pub const HIT_SPAN_MS: i64 = 495;
/// Shifts followed at once per stream; hits for new shifts past this are dropped.
pub const MAX_BINS: usize = 4_096;
/// Earlier sessions named per session, largest share first.
pub const MAX_MATCHES: usize = 5;

/// An earlier session this one repeats content of. The other user's id is for admins only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioMatch {
    pub session_id: String,
    pub uid: String,
    /// The user's own earlier session (or earlier in this one).
    pub own: bool,
    /// When this session heard the shared audio minus when the other did, ms.
    pub shift_ms: i64,
    /// The audio of this session inside runs shared with that session, ms.
    pub shared_ms: i64,
}

/// What one stream repeats: its audio inside runs shared with earlier sessions, by whose they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Duplicates {
    /// Audio repeating the user's own earlier sessions, ms.
    pub own_ms: i64,
    /// Audio repeating other users' sessions, ms.
    pub other_ms: i64,
    /// Largest first, at most [`MAX_MATCHES`].
    pub matches: Vec<AudioMatch>,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    first_ms: i64,
    last_ms: i64,
    hits: u32,
    changes: u32,
    last_code: u32,
}

impl Run {
    fn start(at_ms: i64, code: u32) -> Run {
        Run { first_ms: at_ms, last_ms: at_ms, hits: 1, changes: 1, last_code: code }
    }

    fn counts(&self) -> bool {
        self.hits >= RUN_MIN_HITS && f64::from(self.changes) >= RUN_MIN_CHANGE_SHARE * f64::from(self.hits)
    }

    fn span(&self) -> (i64, i64) {
        (self.first_ms, self.last_ms + HIT_SPAN_MS)
    }
}

/// One time shift against one earlier session.
#[derive(Debug, Clone)]
struct Bin {
    shift_ms: i64,
    current: Run,
    /// Finished runs that counted, as `[start, end)` offsets of this stream.
    done: Vec<(i64, i64)>,
}

/// The duplicate audio of one stream, fed the prints its sampled codes found.
#[derive(Debug, Clone)]
pub struct DuplicateTracker {
    uid: String,
    started_at: Timestamp,
    /// Earlier sessions seen, by (uid, session id); their index keys the bins.
    sessions: Vec<(String, String)>,
    /// uid -> session id -> index into `sessions`: looked up by `&str`, so a hit allocates
    /// nothing once its session is known.
    session_index: HashMap<String, HashMap<String, u32>>,
    bins: HashMap<(u32, i64), Bin>,
    /// The latest offset of this stream that hits were fed for.
    latest_ms: i64,
}

impl DuplicateTracker {
    pub fn new(uid: impl Into<String>, started_at: Timestamp) -> DuplicateTracker {
        DuplicateTracker {
            uid: uid.into(),
            started_at,
            sessions: Vec::new(),
            session_index: HashMap::new(),
            bins: HashMap::new(),
            latest_ms: 0,
        }
    }

    /// Feeds one batch of this stream's samples (in stream order, after every earlier batch) and
    /// the prints a lookup of their keys found (prints added before this batch).
    pub fn add(&mut self, samples: &[HashSample], found: &[Print]) {
        let mut by_key: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, p) in found.iter().enumerate() {
            by_key.entry(print_key(p.code)).or_default().push(i);
        }
        let mut hits: Vec<(i64, u32, usize)> = Vec::new();
        for s in samples {
            let Some(prints) = by_key.get(&print_key(s.code)) else { continue };
            let heard = self.started_at.0.saturating_add(s.offset_ms);
            for &i in prints {
                let p = &found[i];
                let shift = heard.saturating_sub(p.heard_at.0);
                if shift.abs() < SIMULTANEOUS_MS || (s.code ^ p.code).count_ones() > HIT_MAX_BITS {
                    continue;
                }
                hits.push((s.offset_ms, s.code, i));
            }
        }
        hits.sort_by_key(|h| h.0);
        for (at_ms, code, i) in hits {
            let p = &found[i];
            let shift = self.started_at.0.saturating_add(at_ms).saturating_sub(p.heard_at.0);
            self.hit(&p.uid, &p.session_id, shift, at_ms, code);
        }
        if let Some(last) = samples.last() {
            self.latest_ms = self.latest_ms.max(last.offset_ms);
        }
        self.sweep();
    }

    fn hit(&mut self, uid: &str, session_id: &str, shift_ms: i64, at_ms: i64, code: u32) {
        let known = self.session_index.get(uid).and_then(|m| m.get(session_id)).copied();
        let session = match known {
            Some(s) => s,
            None => {
                let s = self.sessions.len() as u32;
                self.sessions.push((uid.to_owned(), session_id.to_owned()));
                self.session_index.entry(uid.to_owned()).or_default().insert(session_id.to_owned(), s);
                s
            }
        };
        let bin = shift_ms.div_euclid(SHIFT_BIN_MS);
        let existing = [bin, bin - 1, bin + 1].into_iter().find(|b| self.bins.contains_key(&(session, *b)));
        let slot = match existing {
            Some(b) => (session, b),
            None if self.bins.len() >= MAX_BINS => return,
            None => {
                let fresh = Bin { shift_ms, current: Run::start(at_ms, code), done: Vec::new() };
                self.bins.insert((session, bin), fresh);
                return;
            }
        };
        let b = self.bins.get_mut(&slot).expect("found above");
        let run = &mut b.current;
        if at_ms - run.last_ms > RUN_GAP_MS {
            if run.counts() {
                b.done.push(run.span());
            }
            b.current = Run::start(at_ms, code);
        } else if at_ms > run.last_ms || code != run.last_code {
            run.hits += 1;
            run.changes += u32::from(code != run.last_code);
            run.last_ms = run.last_ms.max(at_ms);
            run.last_code = code;
        }
    }

    /// Closes runs the stream has moved past and forgets shifts that never made one.
    fn sweep(&mut self) {
        let latest = self.latest_ms;
        self.bins.retain(|_, b| {
            if latest - b.current.last_ms <= RUN_GAP_MS {
                return true;
            }
            if b.current.counts() {
                b.done.push(b.current.span());
                b.current.hits = 0; // closed: a later hit at this shift starts a new run
            }
            !b.done.is_empty()
        });
    }

    /// The stream's duplicate audio so far.
    pub fn summary(&self) -> Duplicates {
        let mut own: Vec<(i64, i64)> = Vec::new();
        let mut other: Vec<(i64, i64)> = Vec::new();
        let mut per_session: HashMap<u32, (Vec<(i64, i64)>, i64)> = HashMap::new();
        for (&(session, _), b) in &self.bins {
            let mut spans = b.done.clone();
            if b.current.counts() {
                spans.push(b.current.span());
            }
            if spans.is_empty() {
                continue;
            }
            let is_own = self.sessions[session as usize].0 == self.uid;
            (if is_own { &mut own } else { &mut other }).extend(&spans);
            let entry = per_session.entry(session).or_insert_with(|| (Vec::new(), b.shift_ms));
            entry.0.extend(spans);
        }
        let mut matches: Vec<AudioMatch> = per_session
            .into_iter()
            .map(|(session, (spans, shift_ms))| {
                let (uid, session_id) = self.sessions[session as usize].clone();
                AudioMatch { own: uid == self.uid, uid, session_id, shift_ms, shared_ms: union_ms(spans) }
            })
            .collect();
        matches.sort_by(|a, b| b.shared_ms.cmp(&a.shared_ms).then_with(|| a.session_id.cmp(&b.session_id)));
        matches.truncate(MAX_MATCHES);
        Duplicates { own_ms: union_ms(own), other_ms: union_ms(other), matches }
    }
}

/// The length of the union of `[start, end)` spans.
fn union_ms(mut spans: Vec<(i64, i64)>) -> i64 {
    spans.sort_unstable();
    let mut total = 0;
    let mut reach = i64::MIN;
    for (start, end) in spans {
        let start = start.max(reach);
        if end > start {
            total += end - start;
        }
        reach = reach.max(end);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MS_PER_HOUR;

    /// A "recording": one pseudo-random code per step, the same for every hearing.
    fn recording(seed: u32, i: u32) -> u32 {
        let mut x = seed.wrapping_mul(0x9E37_79B1) ^ i.wrapping_mul(0x85EB_CA6B);
        x ^= x >> 15;
        x = x.wrapping_mul(0x2C1B_3C6D);
        x ^ (x >> 12)
    }

    /// Samples of `minutes` of a recording, one every 495 ms (the sampled rate), starting at
    /// `from_ms` of the stream; `flip` flips that low bit of every third code (channel noise).
    fn hear(seed: u32, from_ms: i64, minutes: i64, flip: u32) -> Vec<HashSample> {
        let n = (minutes * MS_PER_MINUTE / HIT_SPAN_MS) as u32;
        (0..n)
            .map(|i| {
                let code = recording(seed, i) ^ if i % 3 == 0 { 1 << flip } else { 0 };
                HashSample { offset_ms: from_ms + i64::from(i) * HIT_SPAN_MS, code }
            })
            .collect()
    }

    fn prints(uid: &str, session: &str, started: Timestamp, samples: &[HashSample]) -> Vec<Print> {
        samples
            .iter()
            .map(|s| Print {
                uid: uid.into(),
                session_id: session.into(),
                heard_at: started.plus_ms(s.offset_ms),
                code: s.code,
            })
            .collect()
    }

    /// Feeds `samples` in batches of ~15 s, each finding what `index` holds for its keys.
    fn track(uid: &str, started: Timestamp, samples: &[HashSample], index: &[Print]) -> Duplicates {
        let mut t = DuplicateTracker::new(uid, started);
        for batch in samples.chunks(30) {
            let keys: std::collections::HashSet<u32> = batch.iter().map(|s| print_key(s.code)).collect();
            let found: Vec<Print> = index.iter().filter(|p| keys.contains(&print_key(p.code))).cloned().collect();
            t.add(batch, &found);
        }
        t.summary()
    }

    #[test]
    fn another_user_hearing_the_same_recording_an_hour_later_repeats_it() {
        let t0 = Timestamp(1_000 * MS_PER_HOUR);
        let first = hear(7, 0, 10, 0);
        let index = prints("alice", "a1", t0, &first);
        // Bob hears minutes 2-8 of it an hour later, 30 s into his stream, through a noisy channel.
        let mut second = hear(7, 0, 10, 3);
        second.retain(|s| (2 * MS_PER_MINUTE..8 * MS_PER_MINUTE).contains(&s.offset_ms));
        for s in &mut second {
            s.offset_ms += 30_000 - 2 * MS_PER_MINUTE;
        }
        let d = track("bob", t0.plus_ms(MS_PER_HOUR), &second, &index);
        assert_eq!(d.own_ms, 0);
        assert!((5 * MS_PER_MINUTE + 50_000..=6 * MS_PER_MINUTE + 1_000).contains(&d.other_ms), "{d:?}");
        assert_eq!(d.matches.len(), 1);
        let m = &d.matches[0];
        assert_eq!((m.uid.as_str(), m.session_id.as_str(), m.own), ("alice", "a1", false));
        // Bob's 30 s is Alice's 2 min, an hour later.
        assert!((m.shift_ms - (MS_PER_HOUR + 30_000 - 2 * MS_PER_MINUTE)).abs() <= SHIFT_BIN_MS, "{m:?}");
    }

    #[test]
    fn the_same_recording_at_the_same_moment_is_never_a_duplicate() {
        let t0 = Timestamp(1_000 * MS_PER_HOUR);
        let first = hear(7, 0, 10, 0);
        let index = prints("alice", "a1", t0, &first);
        // Bob in the same room, his stream started 40 s after Alice's, and 4 minutes later.
        for late in [40_000, SIMULTANEOUS_MS - 1_000] {
            let d = track("bob", t0.plus_ms(late), &hear(7, -late, 10, 3), &index);
            assert_eq!(d, Duplicates::default(), "{late} ms apart");
        }
    }

    #[test]
    fn a_loop_inside_one_stream_repeats_the_users_own_audio() {
        let t0 = Timestamp(1_000 * MS_PER_HOUR);
        // A 10-minute chapter played twice in one stream: the second play finds the first.
        let once = hear(9, 0, 10, 0);
        let again = hear(9, 10 * MS_PER_MINUTE, 10, 2);
        let index = prints("carol", "c1", t0, &once);
        let d = track("carol", t0, &again, &index);
        assert_eq!(d.other_ms, 0);
        assert!(d.own_ms >= 9 * MS_PER_MINUTE + 50_000, "{d:?}");
        assert!(d.matches[0].own);
    }

    #[test]
    fn different_audio_and_scattered_chance_hits_make_no_run() {
        let t0 = Timestamp(1_000 * MS_PER_HOUR);
        let index = prints("alice", "a1", t0, &hear(7, 0, 30, 0));
        // Another recording with the same keys now and then: every 20th code shares a key.
        let mut other = hear(8, 0, 30, 0);
        for (i, s) in other.iter_mut().enumerate() {
            if i % 20 == 0 {
                s.code = (recording(7, i as u32 * 7) & 0xFFFF_FF00) | (s.code & 0xFF);
            }
        }
        let d = track("bob", t0.plus_ms(MS_PER_HOUR), &other, &index);
        assert_eq!(d, Duplicates::default());
    }

    #[test]
    fn a_steady_code_is_not_a_run() {
        let t0 = Timestamp(1_000 * MS_PER_HOUR);
        let steady: Vec<HashSample> =
            (0..200).map(|i| HashSample { offset_ms: i * HIT_SPAN_MS, code: 0x1234_5678 }).collect();
        let index = prints("alice", "a1", t0, &steady);
        let d = track("bob", t0.plus_ms(MS_PER_HOUR), &steady, &index);
        assert_eq!(d, Duplicates::default());
    }

    #[test]
    fn memory_stays_bounded_on_a_long_stream_of_chance_hits() {
        let t0 = Timestamp(1_000 * MS_PER_HOUR);
        let index: Vec<Print> = (0..2_000u32)
            .map(|i| Print {
                uid: format!("u{i}"),
                session_id: format!("s{i}"),
                heard_at: Timestamp(t0.0 - i64::from(i) * 60_000),
                code: recording(3, i) & 0xFF,
            })
            .collect();
        let mut t = DuplicateTracker::new("bob", t0);
        // Every sample shares its key (0) with every print: a flood of chance hits for hours.
        for minute in 0..180 {
            let batch: Vec<HashSample> = (0..120)
                .map(|k| HashSample {
                    offset_ms: minute * MS_PER_MINUTE + k * 500,
                    code: recording(5, k as u32) & 0xFF,
                })
                .collect();
            t.add(&batch, &index[..POSTING_LIMIT]);
            assert!(t.bins.len() <= MAX_BINS);
        }
        // Only shifts heard within the last run gap survive: at most one per print per sample there.
        let alive = (RUN_GAP_MS / 500 + 1) as usize * POSTING_LIMIT;
        assert!(t.bins.len() <= alive, "{} bins, at most {alive}", t.bins.len());
    }

    #[test]
    fn union_counts_overlaps_once() {
        assert_eq!(union_ms(vec![(0, 10), (5, 20), (30, 40)]), 30);
        assert_eq!(union_ms(vec![]), 0);
    }
}
