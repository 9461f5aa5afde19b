//! Builders the classifier's tests share: conversations, inputs, usage shapes and stream sessions.

use super::{ClassifierInput, Conversation, UsageShape};
use crate::sessions::StreamSession;
use crate::time::{MS_PER_MINUTE, Timestamp};

pub(crate) fn conv(id: usize, title: &str, minutes: i64, category: &str) -> Conversation {
    let start = Timestamp::from_millis(id as i64 * 10 * crate::time::MS_PER_HOUR);
    Conversation {
        conversation_id: format!("c{id}"),
        title: title.into(),
        overview: String::new(),
        category: category.into(),
        started_at: start,
        finished_at: start.plus_ms(minutes * MS_PER_MINUTE),
        source: "omi".into(),
        speaker_count: None,
        word_count: None,
    }
}

pub(crate) fn input(convs: Vec<Conversation>, shape: UsageShape) -> ClassifierInput {
    ClassifierInput {
        uid: "u".into(),
        plan: "free".into(),
        conversations: convs,
        shape,
        window_totals_ms: vec![],
        sessions: vec![],
    }
}

/// The densest shape there is: every signal the meter can give.
pub(crate) fn max_shape() -> UsageShape {
    UsageShape {
        speech_ms: i64::MAX / 4,
        active_minutes: 10_080,
        longest_run_minutes: 10_080,
        hours_of_day_active: 24,
        mean_density_ms: 60_000,
    }
}

/// Conversations at explicit start minutes (from 0), with an overview.
pub(crate) fn at(id: usize, start_min: i64, minutes: i64, title: &str, overview: &str) -> Conversation {
    let start = Timestamp::from_millis(start_min * MS_PER_MINUTE);
    Conversation {
        overview: overview.into(),
        started_at: start,
        finished_at: start.plus_ms(minutes * MS_PER_MINUTE),
        ..conv(id, title, minutes, "education")
    }
}

/// A gateway stream session starting at `start_min`, `minutes` of audio, with its longest
/// continuous speech and its pauses.
pub(crate) fn stream(
    id: usize,
    start_min: i64,
    minutes: i64,
    longest_min: i64,
    pauses: u64,
    closed: bool,
) -> StreamSession {
    let start = Timestamp::from_millis(start_min * MS_PER_MINUTE);
    StreamSession {
        session_id: format!("s{id}"),
        started_at: start,
        updated_at: start.plus_ms(minutes * MS_PER_MINUTE),
        duration_ms: minutes * MS_PER_MINUTE,
        speech_ms: minutes * MS_PER_MINUTE * 4 / 5,
        stt_ms: minutes * MS_PER_MINUTE,
        longest_speech_ms: longest_min * MS_PER_MINUTE,
        pause_count: pauses,
        pause_mean_ms: if pauses > 0 { 1_200 } else { 0 },
        pause_median_ms: if pauses > 0 { 900 } else { 0 },
        longest_pause_ms: if pauses > 0 { 9_000 } else { 0 },
        closed,
        duplicate_own_ms: 0,
        duplicate_other_ms: 0,
        duplicate_of: Vec::new(),
    }
}

/// Sessions the way people talk: a few minutes at most without a half-second pause, and
/// several pauses a minute.
pub(crate) fn talk(id: usize, start_min: i64, minutes: i64) -> StreamSession {
    stream(id, start_min, minutes, 3, 8 * minutes as u64, true)
}

/// Sessions the way playback sounds: most of the session one unbroken stretch.
pub(crate) fn playback(id: usize, start_min: i64, minutes: i64) -> StreamSession {
    stream(id, start_min, minutes, minutes * 3 / 4, minutes as u64 / 10, true)
}

pub(crate) fn with_sessions(
    convs: Vec<Conversation>,
    shape: UsageShape,
    sessions: Vec<StreamSession>,
) -> ClassifierInput {
    ClassifierInput { sessions, ..input(convs, shape) }
}

/// A heavy abuser's usage shape: dense, long unbroken runs, speech in 20 hours of the day.
pub(crate) fn abuser_shape() -> UsageShape {
    UsageShape {
        speech_ms: 20 * 60 * 50_000,
        active_minutes: 1200,
        longest_run_minutes: 400,
        hours_of_day_active: 20,
        mean_density_ms: 50_000,
    }
}

/// A day of items played back to back: `title` and `overview` with `{n}` the item's number.
pub(crate) fn played(title: &str, overview: &str, items: usize, minutes: i64) -> Vec<Conversation> {
    (0..items)
        .map(|i| {
            let n = (i + 3).to_string();
            at(i + 1, i as i64 * (minutes + 1), minutes, &title.replace("{n}", &n), &overview.replace("{n}", &n))
        })
        .collect()
}
