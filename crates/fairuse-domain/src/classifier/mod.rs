//! The classifier port: what heavy usage *is*. The input and verdict types and the port live
//! here; the recipe rules of SPEC section 3 ([`select_recipes`]), and the two offline
//! implementations, [`ScriptedClassifier`] (the simulator's) and [`HeuristicClassifier`] (the
//! default).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::prints::AudioMatch;

use crate::ids::Lane;
use crate::sessions::StreamSession;
use crate::time::{MS_PER_MINUTE, Timestamp};
use crate::windows::UserMeter;

mod heuristic;
mod recipes;
mod scripted;
#[cfg(test)]
pub(crate) mod test_support;

pub use heuristic::{Explanation, HEURISTIC_VERSION, HeuristicClassifier, SHAPE_SCORE_LIMIT, STRUCTURE_LIMIT, Signal};
pub use recipes::{RECIPE_SESSION_MIN_MS, select_recipes, select_recipes_with_sessions};
pub use scripted::ScriptedClassifier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UsageType {
    #[default]
    None,
    Audiobook,
    Podcast,
    Prerecorded,
    TvMovie,
    Commercial,
    Unknown,
    FreeExhausted,
}

impl UsageType {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageType::None => "none",
            UsageType::Audiobook => "audiobook",
            UsageType::Podcast => "podcast",
            UsageType::Prerecorded => "prerecorded",
            UsageType::TvMovie => "tv_movie",
            UsageType::Commercial => "commercial",
            UsageType::Unknown => "unknown",
            UsageType::FreeExhausted => "free_exhausted",
        }
    }

    pub fn parse(text: &str) -> Option<UsageType> {
        Some(match text {
            "none" => UsageType::None,
            "audiobook" => UsageType::Audiobook,
            "podcast" => UsageType::Podcast,
            "prerecorded" => UsageType::Prerecorded,
            "tv_movie" => UsageType::TvMovie,
            "commercial" => UsageType::Commercial,
            "unknown" => UsageType::Unknown,
            "free_exhausted" => UsageType::FreeExhausted,
            _ => return None,
        })
    }
}

/// Conversation metadata the host sends (never transcript text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    pub conversation_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub overview: String,
    #[serde(default)]
    pub category: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_count: Option<u64>,
}

impl Conversation {
    pub fn duration_minutes(&self) -> f64 {
        ((self.finished_at.millis() - self.started_at.millis()).max(0) as f64) / MS_PER_MINUTE as f64
    }

    /// Trims what the classifier sees: the overview to 200 characters (SPEC section 3).
    pub fn for_classifier(&self) -> Conversation {
        let mut c = self.clone();
        if c.overview.chars().count() > 200 {
            c.overview = c.overview.chars().take(200).collect();
        }
        c
    }
}

/// The usage shape fairuse measures itself from its minute buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageShape {
    /// Capped speech in the lookback, ms.
    pub speech_ms: i64,
    /// Minutes with any capped speech in the lookback.
    pub active_minutes: i64,
    /// The longest run of consecutive minutes with speech.
    pub longest_run_minutes: i64,
    /// Distinct hours of the UTC day (0-23) with speech.
    pub hours_of_day_active: u32,
    /// Mean speech per active minute, ms (60,000 = every second of every active minute).
    pub mean_density_ms: i64,
}

impl UsageShape {
    pub fn measure(meter: &UserMeter, lookback_ms: i64, now: Timestamp) -> UsageShape {
        let lo = now.minute() - lookback_ms / MS_PER_MINUTE + 1;
        let hi = now.minute();
        let mut per_minute: BTreeMap<i64, i64> = BTreeMap::new();
        for lane in [Lane::Realtime, Lane::SyncFresh] {
            for (m, ms) in meter.lane(lane).minutes() {
                if m >= lo && m <= hi {
                    *per_minute.entry(m).or_default() += ms;
                }
            }
        }
        let mut shape = UsageShape::default();
        let mut hours = BTreeSet::new();
        let (mut run, mut prev) = (0i64, i64::MIN);
        for (&m, &ms) in &per_minute {
            shape.speech_ms += ms;
            shape.active_minutes += 1;
            hours.insert(m.rem_euclid(1440) / 60);
            run = if prev != i64::MIN && m == prev + 1 { run + 1 } else { 1 };
            shape.longest_run_minutes = shape.longest_run_minutes.max(run);
            prev = m;
        }
        shape.hours_of_day_active = hours.len() as u32;
        if shape.active_minutes > 0 {
            shape.mean_density_ms = shape.speech_ms / shape.active_minutes;
        }
        shape
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierInput {
    pub uid: String,
    pub plan: String,
    pub conversations: Vec<Conversation>,
    pub shape: UsageShape,
    /// Capped window totals of the user, in the policy's window order.
    pub window_totals_ms: Vec<i64>,
    /// The streaming gateway's session summaries of the lookback (sessions updated in it), oldest
    /// started first. Measured by fairuse itself, unlike the conversations; empty for users who
    /// never streamed through the gateway, and in inputs serialized before it existed.
    #[serde(default)]
    pub sessions: Vec<StreamSession>,
}

/// One thing a verdict cites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What is cited: a conversation of the host's metadata, or for [`EvidenceKind::DuplicateAudio`]
    /// a gateway stream session (its id).
    pub conversation_id: String,
    pub title: String,
    pub reason: String,
    /// Absent in evidence stored before it existed: a conversation.
    #[serde(default, skip_serializing_if = "EvidenceKind::is_conversation")]
    pub kind: EvidenceKind,
    /// For duplicate audio: the earlier sessions the cited one repeats, other users' included
    /// (admins only: the user is never shown who else heard the audio).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<AudioMatch>,
}

impl Evidence {
    /// Evidence citing a conversation.
    pub fn conversation(
        conversation_id: impl Into<String>,
        title: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Evidence {
            conversation_id: conversation_id.into(),
            title: title.into(),
            reason: reason.into(),
            kind: EvidenceKind::Conversation,
            matches: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A conversation's metadata says what it was.
    #[default]
    Conversation,
    /// A gateway session whose audio repeats audio heard at least five minutes earlier, by the
    /// user or by others: live conversation never happens twice ([`crate::prints`]).
    DuplicateAudio,
}

impl EvidenceKind {
    pub fn is_conversation(&self) -> bool {
        *self == EvidenceKind::Conversation
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipe {
    Audiobook,
    Prerecorded,
    Commercial,
    Podcast,
}

/// A classifier's answer, already clamped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub misuse_score: f64,
    pub usage_type: UsageType,
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
    pub model: String,
    pub prompt_version: String,
    pub recipes: Vec<Recipe>,
    /// Why the score was lowered under the qualifying line after the classifier answered
    /// ([`crate::pipeline::admit`]: it cited none of the conversations it was shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demoted: Option<String>,
}

pub const MAX_EVIDENCE: usize = 10;

impl Verdict {
    /// Clamps scores to [0, 1] (NaN becomes 0) and keeps at most 10 evidence items.
    pub fn clamped(mut self) -> Verdict {
        let clamp = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        self.misuse_score = clamp(self.misuse_score);
        self.confidence = clamp(self.confidence);
        self.evidence.truncate(MAX_EVIDENCE);
        self
    }

    /// A measurement rather than an inference: everything the verdict cites is duplicate audio
    /// (sessions repeating audio heard earlier, which only the gateway's fingerprints produce and
    /// [`crate::pipeline::admit`] checks against the sessions that really repeat). The ladder
    /// moves faster on it ([`crate::policy::Policy::hold_after_qualifying`]).
    pub fn is_measured(&self) -> bool {
        !self.evidence.is_empty() && self.evidence.iter().all(|e| e.kind == EvidenceKind::DuplicateAudio)
    }

    /// The verdict a free-plan user with no credits left gets without a model call.
    pub fn free_exhausted() -> Verdict {
        Verdict {
            misuse_score: 1.0,
            usage_type: UsageType::FreeExhausted,
            confidence: 1.0,
            evidence: Vec::new(),
            model: "synthetic".into(),
            prompt_version: "free_exhausted".into(),
            recipes: Vec::new(),
            demoted: None,
        }
    }
}

/// Removes the evidence text (titles and reasons) after the retention period; the conversation
/// ids stay so a reviewer can still see which conversations were cited.
pub fn redact(verdict: &mut Verdict) {
    for e in &mut verdict.evidence {
        e.title = "[redacted]".into();
        e.reason = "[redacted]".into();
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifierError {
    #[error("classifier timed out")]
    Timeout,
    #[error("classifier backend failed: {0}")]
    Backend(String),
    #[error("classifier answer could not be parsed: {0}")]
    BadAnswer(String),
}

/// The port. Implementations must be deterministic for the same input where they can be.
///
/// Async like the store ports: a backend that does network I/O (the `openai` one) awaits it on
/// the caller's runtime. The offline classifiers here ([`HeuristicClassifier`],
/// [`ScriptedClassifier`]) also have a synchronous `classify_now`, which the simulator uses so it
/// stays synchronous and deterministic; their `classify` is just that.
#[async_trait]
pub trait Classifier: Send + Sync {
    async fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError>;
    fn name(&self) -> &str;
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn inputs_serialized_before_sessions_existed_still_parse() {
        let mut json = serde_json::to_value(input(vec![conv(1, "x", 5, "a")], UsageShape::default())).unwrap();
        json.as_object_mut().unwrap().remove("sessions");
        let parsed: ClassifierInput = serde_json::from_value(json).unwrap();
        assert!(parsed.sessions.is_empty());
        assert_eq!(parsed.conversations.len(), 1);
    }

    /// Polls `future` once with a waker that does nothing: the offline classifiers' `classify`
    /// must be ready at once, with no runtime.
    fn ready_now<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("an offline classifier awaited something"),
        }
    }

    #[test]
    fn the_offline_classifiers_async_port_is_their_synchronous_verdict_without_a_runtime() {
        let convs = vec![conv(1, "The Long Road - Chapter 1", 60, "entertainment"), conv(2, "standup", 15, "work")];
        let asked = input(convs, UsageShape::default());
        let heuristic: &dyn Classifier = &HeuristicClassifier;
        assert_eq!(ready_now(heuristic.classify(&asked)), Ok(HeuristicClassifier.classify_now(&asked)));
        let scripted = ScriptedClassifier { verdict: ScriptedClassifier::scripted(0.8, UsageType::Podcast) };
        let as_port: &dyn Classifier = &scripted;
        assert_eq!(ready_now(as_port.classify(&asked)), Ok(scripted.classify_now(&asked)));
        assert_eq!((heuristic.name(), as_port.name()), ("heuristic", "scripted"));
    }
}
