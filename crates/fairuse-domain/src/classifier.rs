//! The classifier port: what heavy usage *is*. Input types, the recipe rules of SPEC section 3,
//! and two offline implementations: `scripted` (the simulator's) and `heuristic` (the default).
//!
//! The heuristic is conservative by construction: usage shape and volume alone can add at most
//! [`SHAPE_SCORE_LIMIT`] (< 0.7, so they never qualify on their own); crossing the threshold
//! needs content evidence a reviewer can check against the cited conversations.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::Lane;
use crate::time::{MS_PER_MINUTE, Timestamp};
use crate::windows::UserMeter;

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub conversation_id: String,
    pub title: String,
    pub reason: String,
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
pub trait Classifier: Send + Sync {
    fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError>;
    fn name(&self) -> &str;
}

/// Recipes (extra focus) chosen by the rules of SPEC section 3.
pub fn select_recipes(conversations: &[Conversation]) -> Vec<Recipe> {
    let durations: Vec<f64> = conversations.iter().map(Conversation::duration_minutes).collect();
    let mut recipes = Vec::new();
    if durations.iter().filter(|&&d| d > 60.0).count() >= 3 {
        recipes.push(Recipe::Audiobook);
    }
    if durations.len() >= 5 {
        let n = durations.len() as f64;
        let mean = durations.iter().sum::<f64>() / n;
        if mean > 0.0 {
            let var = durations.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n;
            if var.sqrt() / mean < 0.3 {
                recipes.push(Recipe::Prerecorded);
            }
        }
    }
    let categories: BTreeSet<&str> = conversations.iter().map(|c| c.category.as_str()).collect();
    if conversations.len() >= 20 && categories.len() <= 3 {
        recipes.push(Recipe::Commercial);
    }
    if durations.iter().filter(|&&d| (25.0..=90.0).contains(&d)).count() >= 5 {
        recipes.push(Recipe::Podcast);
    }
    recipes
}

/// The simulator's classifier: returns whatever the trace's last `verdict` line for the user said.
#[derive(Debug, Clone)]
pub struct ScriptedClassifier {
    pub verdict: Verdict,
}

impl ScriptedClassifier {
    pub fn scripted(score: f64, usage_type: UsageType) -> Verdict {
        Verdict {
            misuse_score: score,
            usage_type,
            confidence: 1.0,
            evidence: Vec::new(),
            model: "scripted".into(),
            prompt_version: "scripted".into(),
            recipes: Vec::new(),
        }
        .clamped()
    }
}

impl Classifier for ScriptedClassifier {
    fn classify(&self, _input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        Ok(self.verdict.clone())
    }
    fn name(&self) -> &str {
        "scripted"
    }
}

/// The most that usage shape and volume can contribute: below 0.7, so never a qualifying verdict alone.
pub const SHAPE_SCORE_LIMIT: f64 = 0.45;
pub const HEURISTIC_VERSION: &str = "heuristic-v1";

/// The offline default: recipe rules, usage shape and conversation metadata, with evidence.
#[derive(Debug, Clone, Default)]
pub struct HeuristicClassifier;

const MEDIA_WORDS: [(&str, UsageType); 16] = [
    ("audiobook", UsageType::Audiobook),
    ("audio book", UsageType::Audiobook),
    ("narrat", UsageType::Audiobook),
    ("chapter", UsageType::Audiobook),
    ("podcast", UsageType::Podcast),
    ("episode", UsageType::Podcast),
    ("host and guest", UsageType::Podcast),
    ("netflix", UsageType::TvMovie),
    ("movie", UsageType::TvMovie),
    ("film", UsageType::TvMovie),
    ("tv show", UsageType::TvMovie),
    ("season", UsageType::TvMovie),
    ("recorded lecture", UsageType::Prerecorded),
    ("youtube", UsageType::Prerecorded),
    ("transcription job", UsageType::Commercial),
    ("client file", UsageType::Commercial),
];

const PERSONAL_WORDS: [&str; 12] = [
    "meeting",
    "standup",
    "stand-up",
    "1:1",
    "call with",
    "interview",
    "sync",
    "catch-up",
    "dinner",
    "family",
    "doctor",
    "class",
];

/// `("chapter", 12)` from "Harry Potter - Chapter 12": a sequence marker and its number.
fn sequence_marker(title: &str) -> Option<(&'static str, u32)> {
    let lower = title.to_ascii_lowercase();
    for marker in ["chapter", "episode", "ep.", "ep ", "part", "lecture", "track", "s01e", "book"] {
        if let Some(pos) = lower.find(marker) {
            let rest = &lower[pos + marker.len()..];
            let digits: String =
                rest.trim_start_matches([' ', '#', '.', ':']).chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<u32>() {
                let kind = match marker {
                    "chapter" | "book" => "chapter",
                    "lecture" => "lecture",
                    "track" => "track",
                    _ => "episode",
                };
                return Some((kind, n));
            }
        }
    }
    None
}

impl Classifier for HeuristicClassifier {
    fn name(&self) -> &str {
        "heuristic"
    }

    fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        let convs = &input.conversations;
        let recipes = select_recipes(convs);
        let mut evidence: Vec<Evidence> = Vec::new();
        let mut type_votes: BTreeMap<UsageType, f64> = BTreeMap::new();

        // Shape and volume: capped so they can never qualify alone.
        let mut shape_score = 0.0;
        for r in &recipes {
            shape_score += 0.1;
            let t = match r {
                Recipe::Audiobook => UsageType::Audiobook,
                Recipe::Prerecorded => UsageType::Prerecorded,
                Recipe::Commercial => UsageType::Commercial,
                Recipe::Podcast => UsageType::Podcast,
            };
            *type_votes.entry(t).or_default() += 0.1;
        }
        let s = &input.shape;
        if s.longest_run_minutes >= 180 {
            shape_score += 0.1; // three hours without a minute of silence is unusual for conversation
        }
        if s.hours_of_day_active >= 20 {
            shape_score += 0.1; // speech in almost every hour of the day, sleep hours included
        }
        if s.mean_density_ms >= 50_000 {
            shape_score += 0.05; // near-continuous speech inside active minutes
        }
        let shape_score: f64 = f64::min(shape_score, SHAPE_SCORE_LIMIT);

        // Content: sequential titles and media words, each cited.
        let mut sequences: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
        let mut seq_convs: BTreeMap<&str, Vec<&Conversation>> = BTreeMap::new();
        let mut media_hits = 0usize;
        let mut personal_hits = 0usize;
        for c in convs {
            if let Some((kind, n)) = sequence_marker(&c.title) {
                sequences.entry(kind).or_default().insert(n);
                seq_convs.entry(kind).or_default().push(c);
            }
            let text = format!("{} {} {}", c.title, c.overview, c.category).to_ascii_lowercase();
            if let Some((word, t)) = MEDIA_WORDS.iter().find(|(w, _)| text.contains(w)) {
                media_hits += 1;
                *type_votes.entry(*t).or_default() += 0.05;
                if evidence.len() < MAX_EVIDENCE {
                    evidence.push(Evidence {
                        conversation_id: c.conversation_id.clone(),
                        title: c.title.clone(),
                        reason: format!("mentions {word:?}, which describes recorded media"),
                    });
                }
            }
            if PERSONAL_WORDS.iter().any(|w| text.contains(w)) || c.speaker_count.is_some_and(|n| n >= 3) {
                personal_hits += 1;
            }
        }
        let mut content_score = 0.0;
        for (kind, numbers) in &sequences {
            // Three or more distinct numbers of the same kind, e.g. chapters 4, 5, 6.
            if numbers.len() >= 3 {
                content_score += 0.35 + 0.02 * (numbers.len().min(10) as f64);
                let t = match *kind {
                    "chapter" => UsageType::Audiobook,
                    "lecture" => UsageType::Prerecorded,
                    _ => UsageType::Podcast,
                };
                *type_votes.entry(t).or_default() += 0.5;
                for c in seq_convs.get(kind).into_iter().flatten().take(3) {
                    if evidence.len() < MAX_EVIDENCE && !evidence.iter().any(|e| e.conversation_id == c.conversation_id)
                    {
                        evidence.push(Evidence {
                            conversation_id: c.conversation_id.clone(),
                            title: c.title.clone(),
                            reason: format!("one of {} sequential {kind} titles", numbers.len()),
                        });
                    }
                }
            }
        }
        if !convs.is_empty() {
            let share = media_hits as f64 / convs.len() as f64;
            content_score += 0.4 * share;
            let personal_share = personal_hits as f64 / convs.len() as f64;
            content_score -= 0.5 * personal_share; // meetings and calls are what the product is for
        }
        let content_score: f64 = content_score.max(0.0);
        let score = if content_score <= 0.0 { shape_score } else { (shape_score + content_score).min(1.0) };
        let usage_type = if score < 0.3 {
            UsageType::None
        } else {
            type_votes
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(t, _)| *t)
                .unwrap_or(UsageType::Unknown)
        };
        let confidence = if convs.is_empty() { 0.2 } else { (0.4 + 0.05 * convs.len().min(12) as f64).min(1.0) };
        Ok(Verdict {
            misuse_score: (score * 1000.0).round() / 1000.0,
            usage_type,
            confidence: (confidence * 1000.0).round() / 1000.0,
            evidence,
            model: "heuristic".into(),
            prompt_version: HEURISTIC_VERSION.into(),
            recipes,
        }
        .clamped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(id: usize, title: &str, minutes: i64, category: &str) -> Conversation {
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

    fn input(convs: Vec<Conversation>, shape: UsageShape) -> ClassifierInput {
        ClassifierInput { uid: "u".into(), plan: "free".into(), conversations: convs, shape, window_totals_ms: vec![] }
    }

    #[test]
    fn recipes_follow_the_spec_rules() {
        let long: Vec<_> = (0..3).map(|i| conv(i, "x", 61, "a")).collect();
        assert_eq!(select_recipes(&long), vec![Recipe::Audiobook]);
        let exactly_60: Vec<_> = (0..3).map(|i| conv(i, "x", 60, "a")).collect();
        assert!(select_recipes(&exactly_60).is_empty());
        let uniform: Vec<_> = (0..5).map(|i| conv(i, "x", 30, "a")).collect();
        assert_eq!(select_recipes(&uniform), vec![Recipe::Prerecorded, Recipe::Podcast]);
        let many: Vec<_> = (0..20).map(|i| conv(i, "x", 1 + (i as i64 % 7) * 3, ["a", "b", "c"][i % 3])).collect();
        assert!(select_recipes(&many).contains(&Recipe::Commercial));
    }

    #[test]
    fn sequential_chapters_qualify_and_cite_the_conversations() {
        let convs: Vec<_> =
            (1..=6).map(|i| conv(i, &format!("Harry Potter - Chapter {i}"), 45, "entertainment")).collect();
        let v = HeuristicClassifier.classify(&input(convs, UsageShape::default())).unwrap();
        assert!(v.misuse_score >= 0.7, "{v:?}");
        assert_eq!(v.usage_type, UsageType::Audiobook);
        assert!(!v.evidence.is_empty() && v.evidence.len() <= MAX_EVIDENCE);
        assert!(v.evidence.iter().all(|e| e.conversation_id.starts_with('c')));
    }

    #[test]
    fn volume_and_shape_alone_never_qualify() {
        let convs: Vec<_> = (1..=30).map(|i| conv(i, "Untitled", 90, "other")).collect();
        let shape = UsageShape {
            speech_ms: i64::MAX / 4,
            active_minutes: 10_080,
            longest_run_minutes: 10_080,
            hours_of_day_active: 24,
            mean_density_ms: 60_000,
        };
        let v = HeuristicClassifier.classify(&input(convs, shape)).unwrap();
        assert!(v.misuse_score < 0.7, "{v:?}");
    }

    #[test]
    fn a_day_of_meetings_is_not_misuse() {
        let convs: Vec<_> = (1..=12).map(|i| conv(i, &format!("Team meeting {i}"), 55, "work")).collect();
        let shape = UsageShape {
            speech_ms: 40 * 3_600_000,
            active_minutes: 3000,
            longest_run_minutes: 60,
            hours_of_day_active: 10,
            mean_density_ms: 30_000,
        };
        let v = HeuristicClassifier.classify(&input(convs, shape)).unwrap();
        assert!(v.misuse_score < 0.5, "{v:?}");
    }

    #[test]
    fn clamping_bounds_scores_and_evidence() {
        let mut v = ScriptedClassifier::scripted(1.5, UsageType::Podcast);
        assert_eq!(v.misuse_score, 1.0);
        v.misuse_score = f64::NAN;
        v.evidence = (0..20)
            .map(|i| Evidence { conversation_id: i.to_string(), title: String::new(), reason: String::new() })
            .collect();
        let v = v.clamped();
        assert_eq!(v.misuse_score, 0.0);
        assert_eq!(v.evidence.len(), 10);
        assert_eq!(ScriptedClassifier::scripted(-0.2, UsageType::None).misuse_score, 0.0);
    }
}
