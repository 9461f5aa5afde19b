//! The simulator's input and output lines: the trace line it reads, the outcome lines it writes,
//! and the errors that name a bad line's field.

use std::borrow::Cow;
use std::io::Write;

use fairuse_domain::classifier::Conversation;
use fairuse_domain::sessions::StreamSession;

use crate::heard::AudioSegment;
use fairuse_domain::stage::Stage;
use serde::{Deserialize, Serialize};

use super::SimError;

/// One trace line; every field any line type may carry. Unknown fields are refused so a typo in a
/// hand-written trace is an error, not a silently different simulation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TraceLine<'a> {
    #[serde(borrow)]
    pub(super) t: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) lane: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) speech_ms: Option<i64>,
    #[serde(default)]
    pub(super) stt_ms: Option<i64>,
    #[serde(borrow, default)]
    pub(super) session_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) cumulative_speech_ms: Option<i64>,
    #[serde(borrow, default)]
    pub(super) at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) idempotency_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) plan: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) credits_exhausted: Option<bool>,
    #[serde(default)]
    pub(super) conversation: Option<Conversation>,
    #[serde(default)]
    pub(super) session: Option<StreamSession>,
    /// On a `stream_session` line: what the stream heard since its last line, for the print
    /// index ([`crate::heard`]).
    #[serde(default)]
    pub(super) audio: Option<Vec<AudioSegment>>,
    #[serde(default)]
    pub(super) misuse_score: Option<f64>,
    #[serde(borrow, default)]
    pub(super) usage_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) stage: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) until: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) reason: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
pub(super) struct OutLine<'a> {
    pub(super) t: String,
    #[serde(rename = "type")]
    pub(super) kind: &'a str,
    pub(super) uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) misuse_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) usage_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) qualifies: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) from: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) to: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) case_ref: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) used_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) limit_ms: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) shadow: bool,
}

pub(super) fn err(line: u64, message: impl Into<String>) -> SimError {
    SimError::Line { line, message: message.into() }
}

/// A bad line's error, naming the field when there is one. Only the failure path pays for the
/// second, path-tracking parse.
pub(super) fn describe_json_error(text: &str, e: serde_json::Error) -> String {
    let de = &mut serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, TraceLine<'_>>(de) {
        Err(pe) => {
            let path = pe.path().to_string();
            if path == "." || path == "?" {
                format!("not a trace line: {}", pe.into_inner())
            } else {
                format!("{path}: {}", pe.into_inner())
            }
        }
        Ok(_) => format!("not a trace line: {e}"),
    }
}

pub(super) fn write_line<W: Write, T: Serialize>(out: &mut W, line: &T) -> Result<(), SimError> {
    serde_json::to_writer(&mut *out, line).map_err(|e| SimError::Write(std::io::Error::other(e)))?;
    out.write_all(b"\n").map_err(SimError::Write)
}
