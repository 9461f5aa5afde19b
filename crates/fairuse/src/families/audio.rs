//! What a family's gateway streams hear: recordings, players, snapshots.

use fairuse_domain::sessions::StreamSession;
use fairuse_domain::time::{MS_PER_MINUTE, MS_PER_SECOND};

use super::model::*;
use super::rng::{Rng, fnv1a};
use crate::heard::AudioSegment;

/// A stream's snapshots are written this often while it runs, and once when it ends.
pub(super) const SNAPSHOT_MS: i64 = 15 * MS_PER_MINUTE;

/// The closed `session` as the snapshots a gateway would have recorded every `every_ms`: totals
/// growing in proportion to the time elapsed, each carrying the audio heard since the one before
/// (segments cut at the snapshot instants); the last is the closed session itself.
pub(super) fn snapshots(
    session: &StreamSession,
    heard: Vec<AudioSegment>,
    every_ms: i64,
) -> Vec<(StreamSession, Vec<AudioSegment>)> {
    let duration = session.duration_ms.max(1);
    let mut out = Vec::new();
    let mut rest = heard.into_iter().peekable();
    let mut cut: Option<AudioSegment> = None;
    let mut from = 0;
    while from < duration {
        let to = (from + every_ms).min(duration);
        let mut audio = Vec::new();
        while let Some(seg) = cut.take().or_else(|| rest.next()) {
            if seg.at_ms >= to {
                cut = Some(seg);
                break;
            }
            if seg.at_ms + seg.ms > to {
                let head = to - seg.at_ms;
                audio.push(AudioSegment { ms: head, ..seg.clone() });
                let from_ms = if seg.recording.is_some() { seg.from_ms + head } else { 0 };
                cut = Some(AudioSegment { at_ms: to, ms: seg.ms - head, recording: seg.recording, from_ms });
                break;
            }
            audio.push(seg);
        }
        let mut snap = session.clone();
        if to < duration {
            let share = |v: i64| (i128::from(v) * i128::from(to) / i128::from(duration)) as i64;
            snap.updated_at = session.started_at.plus_ms(to);
            snap.duration_ms = to;
            snap.speech_ms = share(session.speech_ms);
            snap.stt_ms = to;
            snap.longest_speech_ms = session.longest_speech_ms.min(snap.speech_ms);
            snap.pause_count = (share(session.pause_count as i64)).unsigned_abs();
            snap.closed = false;
        }
        out.push((snap, audio));
        from = to;
    }
    out
}

/// A recording of a pool of `n`, by popularity: recording `j` is chosen with weight `1 / (j + 1)`
/// (Zipf), as plays concentrate on a catalogue's best sellers.
pub(super) fn popular(rng: &mut Rng, n: u32) -> u32 {
    let total: f64 = (1..=n).map(|j| 1.0 / f64::from(j)).sum();
    let mut left = rng.uniform() * total;
    for j in 0..n {
        left -= 1.0 / f64::from(j + 1);
        if left <= 0.0 {
            return j;
        }
    }
    n - 1
}

/// Where a user is in the recordings they play.
pub(super) struct Player {
    pub(super) recording: u32,
    pub(super) at_ms: i64,
}

/// The length of recording `j` of a pool: fixed per pool and recording, whoever plays it.
pub(super) fn recording_ms(pool: &str, j: u32, minutes: [f64; 2]) -> i64 {
    let mut rng = Rng(fnv1a(pool) ^ u64::from(j).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.next_u64();
    (rng.range(minutes) * 60.0).round() as i64 * MS_PER_SECOND
}

/// What a stream hears during one conversation `[s, e)` of a session that started at `session_start`.
#[allow(clippy::too_many_arguments)]
pub(super) fn hear(
    a: &AudioPlan,
    family: &str,
    uid: &str,
    pair: u32,
    day: u32,
    conversation: usize,
    player: &mut Player,
    rng: &mut Rng,
    (session_start, s, e): (i64, i64, i64),
    out: &mut Vec<AudioSegment>,
) {
    match a.source {
        AudioSource::Live => {
            out.push(AudioSegment { at_ms: s - session_start, ms: e - s, recording: None, from_ms: 0 })
        }
        AudioSource::CoLocated => out.push(AudioSegment {
            at_ms: s - session_start,
            ms: e - s,
            recording: Some(format!("{family}-room{pair}-d{day}-c{conversation}")),
            from_ms: 0,
        }),
        AudioSource::Shared | AudioSource::OwnLoop => {
            let pool = match a.source {
                AudioSource::Shared => a.pool.clone().unwrap_or_else(|| family.to_owned()),
                _ => uid.to_owned(),
            };
            let minutes = a.recording_minutes.unwrap_or([60.0, 60.0]); // checked at load
            let mut t = s;
            while t < e {
                let len = recording_ms(&pool, player.recording, minutes);
                let take = (len - player.at_ms).min(e - t);
                if take <= 0 {
                    // The recording ended: the next one of the playlist, or any of the pool.
                    player.recording = if a.source == AudioSource::Shared {
                        popular(rng, a.recordings)
                    } else {
                        (player.recording + 1) % a.recordings
                    };
                    player.at_ms = 0;
                    continue;
                }
                out.push(AudioSegment {
                    at_ms: t - session_start,
                    ms: take,
                    recording: Some(format!("{pool}-r{}", player.recording)),
                    from_ms: player.at_ms,
                });
                player.at_ms += take;
                t += take;
            }
        }
    }
}
