//! Stream sessions: what the streaming gateway measured about one WebSocket stream, kept for the
//! classifier (SPEC section 5: the gateway "records a session summary (duration, speech ms,
//! longest continuous speech, pause statistics) for the classifier").
//!
//! [`SpeechRuns`] turns the VAD's per-window decisions of one stream into a [`SpeechShape`] in
//! constant memory, whatever the stream's length; [`StreamSession`] is the record the gateway
//! stores (through `ConversationStore::upsert_stream_session`) and the classifier reads back.
//! Pure code: no I/O, no clock (the gateway passes the instants in).

use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::ids::check_id;
use crate::prints::AudioMatch;
use crate::time::{MS_PER_MINUTE, Timestamp};

/// Silences shorter than this inside speech are bridged: words and sentences have short gaps,
/// and a speaker who takes a breath has not stopped talking.
pub const DEFAULT_BRIDGE_MS: i64 = 500;

/// Width of one bucket of the pause histogram: the resolution of [`SpeechShape::pause_median_ms`].
pub const PAUSE_BUCKET_MS: i64 = 100;

/// Pauses up to this length are kept in [`PAUSE_BUCKET_MS`] buckets; longer ones share one
/// overflow bucket (by count and sum).
pub const PAUSE_HISTOGRAM_MS: i64 = 60_000;

const PAUSE_BUCKETS: usize = (PAUSE_HISTOGRAM_MS / PAUSE_BUCKET_MS) as usize;

/// The shape of the speech of one stream so far.
///
/// A *speech run* is consecutive speech windows, with silences shorter than the bridge counted as
/// part of the run; a *pause* is a silence of at least the bridge between two runs. Silence before
/// the first speech and after the last is not a pause (a trailing silence may still turn out to be
/// a bridged gap or a pause once speech resumes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechShape {
    /// The longest speech run, bridged gaps included (the run in progress counts too).
    pub longest_speech_ms: i64,
    pub pause_count: u64,
    /// The mean pause, rounded down; 0 without pauses.
    pub pause_mean_ms: i64,
    /// The median pause (the mean of the two middle pauses when their number is even), from a
    /// histogram: within 50 ms of the exact median when the middle pauses are shorter than 60 s
    /// (each is read as the middle of its 100 ms bucket), the mean of the pauses of 60 s or more
    /// when a middle pause is that long, and never outside the shortest and longest pause.
    /// 0 without pauses.
    pub pause_median_ms: i64,
    pub longest_pause_ms: i64,
}

/// Pause lengths in bounded memory: 100 ms buckets up to 60 s (grown on demand, at most
/// 600 counters), an overflow count and sum for longer pauses, and the exact count, sum, shortest
/// and longest.
#[derive(Debug, Clone, Default)]
struct PauseHistogram {
    buckets: Vec<u32>,
    overflow_count: u64,
    overflow_sum_ms: i64,
    count: u64,
    sum_ms: i64,
    shortest_ms: i64,
    longest_ms: i64,
}

impl PauseHistogram {
    fn add(&mut self, ms: i64) {
        match usize::try_from(ms / PAUSE_BUCKET_MS) {
            Ok(i) if i < PAUSE_BUCKETS => {
                if self.buckets.len() <= i {
                    self.buckets.resize(i + 1, 0);
                }
                // Saturates only after 4e9 pauses of one length (a century of speech).
                self.buckets[i] = self.buckets[i].saturating_add(1);
            }
            _ => {
                self.overflow_count += 1;
                self.overflow_sum_ms = self.overflow_sum_ms.saturating_add(ms);
            }
        }
        self.shortest_ms = if self.count == 0 { ms } else { self.shortest_ms.min(ms) };
        self.longest_ms = self.longest_ms.max(ms);
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// The estimated pause of 0-based rank `rank` in ascending order.
    fn at_rank(&self, rank: u64) -> i64 {
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += u64::from(n);
            if rank < seen {
                return i as i64 * PAUSE_BUCKET_MS + PAUSE_BUCKET_MS / 2;
            }
        }
        if self.overflow_count > 0 {
            return self.overflow_sum_ms / self.overflow_count as i64;
        }
        self.longest_ms // only reachable if a bucket saturated
    }

    fn median(&self) -> i64 {
        if self.count == 0 {
            return 0;
        }
        let (lo, hi) = (self.at_rank((self.count - 1) / 2), self.at_rank(self.count / 2));
        ((lo + hi) / 2).clamp(self.shortest_ms, self.longest_ms)
    }

    fn mean(&self) -> i64 {
        if self.count == 0 { 0 } else { self.sum_ms / self.count as i64 }
    }
}

/// A per-stream accumulator of speech runs and pauses, fed one VAD window at a time (the
/// gateway's VAD decides every 32 ms window). Memory is bounded: a few integers and the pause
/// histogram (at most 600 counters), however long the stream.
#[derive(Debug, Clone)]
pub struct SpeechRuns {
    window_ms: i64,
    bridge_ms: i64,
    /// The run in progress, from its first to its last speech window; 0 before the first speech.
    run_ms: i64,
    /// Silence since the last speech window; 0 in speech and before the first speech.
    silence_ms: i64,
    longest_run_ms: i64,
    pauses: PauseHistogram,
}

impl SpeechRuns {
    /// `window_ms` is the length of one VAD window (at least 1 ms is used) and `bridge_ms` the
    /// shortest silence that counts as a pause ([`DEFAULT_BRIDGE_MS`]; a negative value counts as 0,
    /// so every silence between speech is a pause).
    pub fn new(window_ms: i64, bridge_ms: i64) -> SpeechRuns {
        SpeechRuns {
            window_ms: window_ms.max(1),
            bridge_ms: bridge_ms.max(0),
            run_ms: 0,
            silence_ms: 0,
            longest_run_ms: 0,
            pauses: PauseHistogram::default(),
        }
    }

    /// One more window, speech or not.
    pub fn observe(&mut self, is_speech: bool) {
        let w = self.window_ms;
        if is_speech {
            self.run_ms = if self.run_ms == 0 || self.silence_ms == 0 {
                self.run_ms.saturating_add(w) // the first speech, or speech goes on
            } else if self.silence_ms < self.bridge_ms {
                self.run_ms.saturating_add(self.silence_ms).saturating_add(w) // a bridged gap
            } else {
                self.pauses.add(self.silence_ms);
                w // a pause ended the last run; a new one starts
            };
            self.silence_ms = 0;
            self.longest_run_ms = self.longest_run_ms.max(self.run_ms);
        } else if self.run_ms > 0 {
            self.silence_ms = self.silence_ms.saturating_add(w);
        }
    }

    pub fn shape(&self) -> SpeechShape {
        SpeechShape {
            longest_speech_ms: self.longest_run_ms,
            pause_count: self.pauses.count,
            pause_mean_ms: self.pauses.mean(),
            pause_median_ms: self.pauses.median(),
            longest_pause_ms: self.pauses.longest_ms,
        }
    }
}

/// The longest continuous speech of a session that [`StreamSession::playback_like`] needs: twenty
/// minutes without one silence of half a second is not how live people talk.
pub const PLAYBACK_RUN_MS: i64 = 20 * MS_PER_MINUTE;

/// One gateway stream as the classifier sees it. Stored per `(uid, session_id)`; the gateway
/// upserts it while the stream runs and once more when it closes (`closed: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct StreamSession {
    pub session_id: String,
    pub started_at: Timestamp,
    /// When this snapshot was taken: the last flush, or the close.
    pub updated_at: Timestamp,
    /// Audio received from the client.
    pub duration_ms: i64,
    /// Speech in it (VAD).
    pub speech_ms: i64,
    /// Audio forwarded to the STT vendor.
    pub stt_ms: i64,
    pub longest_speech_ms: i64,
    pub pause_count: u64,
    pub pause_mean_ms: i64,
    pub pause_median_ms: i64,
    pub longest_pause_ms: i64,
    pub closed: bool,
    /// Audio of this session repeating the user's own earlier audio (heard at least five minutes
    /// before: a loop, a chapter played again), from its acoustic fingerprints
    /// ([`crate::prints`]); 0 without fingerprints and in sessions stored before they existed.
    #[serde(default)]
    pub duplicate_own_ms: i64,
    /// Audio of this session repeating other users' earlier audio (the same recording heard
    /// elsewhere at another time). Simultaneous hearings never count.
    #[serde(default)]
    pub duplicate_other_ms: i64,
    /// The earlier sessions repeated, largest share first (at most five). Names other users:
    /// for admins only, never shown to the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicate_of: Vec<AudioMatch>,
}

impl StreamSession {
    /// A session that starts at `started_at` with nothing measured yet.
    pub fn open(session_id: impl Into<String>, started_at: Timestamp) -> StreamSession {
        StreamSession {
            session_id: session_id.into(),
            started_at,
            updated_at: started_at,
            duration_ms: 0,
            speech_ms: 0,
            stt_ms: 0,
            longest_speech_ms: 0,
            pause_count: 0,
            pause_mean_ms: 0,
            pause_median_ms: 0,
            longest_pause_ms: 0,
            closed: false,
            duplicate_own_ms: 0,
            duplicate_other_ms: 0,
            duplicate_of: Vec::new(),
        }
    }

    /// Speech repeating earlier audio, own or other users': their sum (the two may overlap), at
    /// most the session's speech.
    pub fn duplicate_ms(&self) -> i64 {
        self.duplicate_own_ms.saturating_add(self.duplicate_other_ms).min(self.speech_ms)
    }

    /// Takes the longest continuous speech and the pause statistics from `shape`.
    pub fn set_shape(&mut self, shape: &SpeechShape) {
        self.longest_speech_ms = shape.longest_speech_ms;
        self.pause_count = shape.pause_count;
        self.pause_mean_ms = shape.pause_mean_ms;
        self.pause_median_ms = shape.pause_median_ms;
        self.longest_pause_ms = shape.longest_pause_ms;
    }

    pub fn shape(&self) -> SpeechShape {
        SpeechShape {
            longest_speech_ms: self.longest_speech_ms,
            pause_count: self.pause_count,
            pause_mean_ms: self.pause_mean_ms,
            pause_median_ms: self.pause_median_ms,
            longest_pause_ms: self.longest_pause_ms,
        }
    }

    /// The session id follows the uid rules; every number is non-negative; `started_at` is not
    /// after `updated_at`; the mean and median pause are not longer than the longest. Errors name
    /// the field.
    pub fn validate(&self) -> Result<(), InputError> {
        check_id("session_id", &self.session_id)?;
        for (field, value) in [
            ("duration_ms", self.duration_ms),
            ("speech_ms", self.speech_ms),
            ("stt_ms", self.stt_ms),
            ("longest_speech_ms", self.longest_speech_ms),
            ("pause_mean_ms", self.pause_mean_ms),
            ("pause_median_ms", self.pause_median_ms),
            ("longest_pause_ms", self.longest_pause_ms),
            ("duplicate_own_ms", self.duplicate_own_ms),
            ("duplicate_other_ms", self.duplicate_other_ms),
        ] {
            if value < 0 {
                return Err(InputError::new(field, format!("must not be negative, got {value}")));
            }
        }
        if self.updated_at < self.started_at {
            return Err(InputError::new("updated_at", "must not be before started_at"));
        }
        for (field, value) in [("pause_mean_ms", self.pause_mean_ms), ("pause_median_ms", self.pause_median_ms)] {
            if value > self.longest_pause_ms {
                return Err(InputError::new(
                    field,
                    format!("must not be longer than longest_pause_ms ({} > {})", value, self.longest_pause_ms),
                ));
            }
        }
        Ok(())
    }

    /// The store's update rule: an update of a stored session is applied, replacing the stored
    /// snapshot whole, unless it is *behind* it, and then it is ignored (not an error). It is
    /// behind when the stored session is closed and the update is not, or when it has less audio
    /// received, speech or forwarded audio than the stored one. So a session never reopens and
    /// its totals never go down, whatever order retries and late flushes arrive in; and since a
    /// snapshot is never merged field by field, its pause statistics always describe the same
    /// audio as its totals.
    pub fn is_behind(&self, stored: &StreamSession) -> bool {
        (stored.closed && !self.closed)
            || self.duration_ms < stored.duration_ms
            || self.speech_ms < stored.speech_ms
            || self.stt_ms < stored.stt_ms
    }

    /// Whether the session sounds like something played back rather than people talking: at least
    /// [`PLAYBACK_RUN_MS`] of continuous speech (no silence of half a second or more) and, over the
    /// whole session, fewer than one pause per minute of speech. Live conversation, lectures and
    /// dictation pause many times a minute; narration with no gaps, or a TV that never stops, does
    /// not. A sign, never proof: the classifier weighs it with the usage shape, below the
    /// qualifying score.
    pub fn playback_like(&self) -> bool {
        self.longest_speech_ms >= PLAYBACK_RUN_MS
            && i128::from(self.pause_count) * i128::from(MS_PER_MINUTE) < i128::from(self.speech_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(runs: &mut SpeechRuns, pattern: &[(bool, usize)]) {
        for &(speech, n) in pattern {
            for _ in 0..n {
                runs.observe(speech);
            }
        }
    }

    fn shape_of(window_ms: i64, bridge_ms: i64, pattern: &[(bool, usize)]) -> SpeechShape {
        let mut runs = SpeechRuns::new(window_ms, bridge_ms);
        feed(&mut runs, pattern);
        runs.shape()
    }

    #[test]
    fn silence_alone_has_no_speech_and_no_pauses() {
        assert_eq!(shape_of(32, 500, &[]), SpeechShape::default());
        assert_eq!(shape_of(32, 500, &[(false, 10_000)]), SpeechShape::default());
    }

    #[test]
    fn short_gaps_are_bridged_into_one_run() {
        // 10 windows of speech, 15 of silence (480 ms < 500), 10 of speech: one run of 35 windows.
        let s = shape_of(32, 500, &[(false, 5), (true, 10), (false, 15), (true, 10), (false, 3)]);
        assert_eq!(s, SpeechShape { longest_speech_ms: 35 * 32, ..SpeechShape::default() });
    }

    #[test]
    fn a_silence_of_the_bridge_or_more_is_a_pause_between_runs() {
        // 16 windows = 512 ms >= 500: a pause. Then 40 windows = 1280 ms, another pause.
        let s = shape_of(32, 500, &[(true, 20), (false, 16), (true, 30), (false, 40), (true, 5)]);
        assert_eq!(s.longest_speech_ms, 30 * 32);
        assert_eq!(s.pause_count, 2);
        assert_eq!(s.pause_mean_ms, (512 + 1280) / 2);
        assert_eq!(s.longest_pause_ms, 1280);
        // Buckets [500, 600) and [1200, 1300): midpoints 550 and 1250, mean 900; exact 896.
        assert_eq!(s.pause_median_ms, 900);
    }

    #[test]
    fn leading_and_trailing_silence_are_not_pauses() {
        let s = shape_of(32, 500, &[(false, 1000), (true, 10), (false, 1000)]);
        assert_eq!(s, SpeechShape { longest_speech_ms: 320, ..SpeechShape::default() });
        // The trailing silence becomes a pause once speech resumes.
        let mut runs = SpeechRuns::new(32, 500);
        feed(&mut runs, &[(true, 10), (false, 1000)]);
        assert_eq!(runs.shape().pause_count, 0);
        runs.observe(true);
        assert_eq!(runs.shape().pause_count, 1);
        assert_eq!(runs.shape().longest_pause_ms, 32_000);
    }

    #[test]
    fn the_run_in_progress_counts_as_the_longest() {
        let mut runs = SpeechRuns::new(32, 500);
        feed(&mut runs, &[(true, 10), (false, 20), (true, 100)]);
        assert_eq!(runs.shape().longest_speech_ms, 3200);
    }

    #[test]
    fn a_bridge_of_zero_makes_every_gap_a_pause() {
        let s = shape_of(32, 0, &[(true, 2), (false, 1), (true, 2)]);
        assert_eq!((s.longest_speech_ms, s.pause_count, s.longest_pause_ms), (64, 1, 32));
        // Nonsense arguments are clamped, never a panic or a division by zero.
        let s = shape_of(-5, -5, &[(true, 2), (false, 1), (true, 2)]);
        assert_eq!((s.longest_speech_ms, s.pause_count), (2, 1));
    }

    #[test]
    fn the_median_is_exact_when_every_pause_is_equal_and_bounded_by_the_longest() {
        let pattern: Vec<(bool, usize)> = (0..7).flat_map(|_| [(true, 5), (false, 20)]).chain([(true, 1)]).collect();
        let s = shape_of(32, 500, &pattern);
        assert_eq!((s.pause_count, s.pause_median_ms, s.pause_mean_ms, s.longest_pause_ms), (7, 640, 640, 640));
    }

    #[test]
    fn pauses_over_a_minute_are_kept_in_the_overflow_bucket() {
        // Pauses of 2 s, 90 s and 120 s: the median is in the overflow bucket, read as the mean of
        // its pauses (105 s), and never above the longest.
        let s =
            shape_of(1000, 500, &[(true, 1), (false, 2), (true, 1), (false, 90), (true, 1), (false, 120), (true, 1)]);
        assert_eq!((s.pause_count, s.longest_pause_ms), (3, 120_000));
        assert_eq!(s.pause_median_ms, 105_000);
        assert_eq!(s.pause_mean_ms, (2_000 + 90_000 + 120_000) / 3);
    }

    #[test]
    fn memory_stays_bounded_on_a_long_stream() {
        let mut runs = SpeechRuns::new(32, 500);
        for i in 0..5_000usize {
            // Pauses of lengths from 512 ms to about 90 s.
            feed(&mut runs, &[(true, 3), (false, 16 + (i * 37) % 2800)]);
        }
        assert!(runs.pauses.buckets.len() <= PAUSE_BUCKETS, "{}", runs.pauses.buckets.len());
        assert!(runs.pauses.overflow_count > 0);
        assert_eq!(runs.shape().pause_count, 4_999);
    }

    fn session() -> StreamSession {
        let mut s = StreamSession::open("3f1c-session_1", Timestamp::from_millis(1_000));
        s.updated_at = Timestamp::from_millis(61_000);
        s.duration_ms = 60_000;
        s.speech_ms = 30_000;
        s.stt_ms = 60_000;
        s.set_shape(&SpeechShape {
            longest_speech_ms: 9_000,
            pause_count: 12,
            pause_mean_ms: 1_400,
            pause_median_ms: 950,
            longest_pause_ms: 6_000,
        });
        s
    }

    #[test]
    fn sessions_serialize_as_snake_case_json_and_back() {
        let s = session();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["session_id"], "3f1c-session_1");
        assert_eq!(json["started_at"], "1970-01-01T00:00:01Z");
        assert_eq!(json["longest_speech_ms"], 9_000);
        assert_eq!(json["pause_count"], 12);
        assert_eq!(json["closed"], false);
        assert_eq!(serde_json::from_value::<StreamSession>(json).unwrap(), s);
        assert_eq!(s.shape().pause_median_ms, 950);
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(session().validate(), Ok(()));
        let field = |s: StreamSession| s.validate().unwrap_err().field;
        assert_eq!(field(StreamSession { session_id: String::new(), ..session() }), "session_id");
        assert_eq!(field(StreamSession { session_id: "a b".into(), ..session() }), "session_id");
        assert_eq!(field(StreamSession { session_id: "..".into(), ..session() }), "session_id");
        assert_eq!(field(StreamSession { session_id: "x".repeat(129), ..session() }), "session_id");
        assert_eq!(field(StreamSession { duration_ms: -1, ..session() }), "duration_ms");
        assert_eq!(field(StreamSession { speech_ms: -1, ..session() }), "speech_ms");
        assert_eq!(field(StreamSession { stt_ms: -1, ..session() }), "stt_ms");
        assert_eq!(field(StreamSession { longest_speech_ms: -1, ..session() }), "longest_speech_ms");
        assert_eq!(field(StreamSession { pause_mean_ms: -1, ..session() }), "pause_mean_ms");
        assert_eq!(field(StreamSession { pause_median_ms: -1, ..session() }), "pause_median_ms");
        assert_eq!(field(StreamSession { longest_pause_ms: -1, ..session() }), "longest_pause_ms");
        assert_eq!(field(StreamSession { updated_at: Timestamp::from_millis(999), ..session() }), "updated_at");
        assert_eq!(field(StreamSession { pause_median_ms: 6_001, ..session() }), "pause_median_ms");
        assert_eq!(field(StreamSession { pause_mean_ms: 6_001, ..session() }), "pause_mean_ms");
        assert_eq!(StreamSession::open("s", Timestamp::from_millis(5)).validate(), Ok(()));
    }

    #[test]
    fn an_update_is_behind_when_it_reopens_or_lowers_a_total() {
        let stored = session();
        let later = StreamSession { duration_ms: 120_000, speech_ms: 50_000, stt_ms: 120_000, ..session() };
        assert!(!later.is_behind(&stored));
        assert!(!stored.is_behind(&stored), "the same snapshot again is applied (a retry)");
        assert!(stored.is_behind(&later));
        assert!(StreamSession { speech_ms: 29_999, ..session() }.is_behind(&stored));
        assert!(StreamSession { stt_ms: 0, ..session() }.is_behind(&stored));
        let closed = StreamSession { closed: true, ..session() };
        assert!(stored.is_behind(&closed), "a closed session never reopens");
        assert!(!closed.is_behind(&stored));
        assert!(!StreamSession { closed: true, ..later.clone() }.is_behind(&closed), "a closed one may grow");
        // Pause statistics are not totals: a snapshot with a lower median replaces the stored one.
        assert!(!StreamSession { pause_median_ms: 500, ..later }.is_behind(&stored));
    }

    #[test]
    fn playback_needs_twenty_unbroken_minutes_and_few_pauses() {
        let hour = 60 * MS_PER_MINUTE;
        let narrated = StreamSession {
            duration_ms: hour,
            speech_ms: 55 * MS_PER_MINUTE,
            longest_speech_ms: 25 * MS_PER_MINUTE,
            pause_count: 20,
            pause_mean_ms: 900,
            pause_median_ms: 700,
            longest_pause_ms: 4_000,
            ..session()
        };
        assert!(narrated.playback_like());
        assert!(!StreamSession { longest_speech_ms: 19 * MS_PER_MINUTE, ..narrated.clone() }.playback_like());
        // A conversation pauses many times a minute, even when one stretch ran long.
        assert!(!StreamSession { pause_count: 400, ..narrated }.playback_like());
    }
}

/// One sampled acoustic fingerprint code of a stream (policy `[fingerprint]`): `code` summarises
/// the ~2.7 s of speech heard from `offset_ms` after the stream started. A 32-bit Chromaprint code
/// cannot be turned back into speech; two sessions sharing a run of codes at one time shift heard
/// the same recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashSample {
    pub offset_ms: i64,
    pub code: u32,
}
