//! The verdict log of `fairuse eval --verdicts`: one record per classifier run, for tuning a
//! classifier on what it was shown and why it scored as it did.

use fairuse_domain::classifier::{ClassifierInput, Conversation, Recipe, Signal, UsageType};
use fairuse_domain::stage::Stage;
use serde::Serialize;

/// One classifier run as the verdict log records it (`fairuse eval --verdicts`): who, when, what
/// the classifier was shown, what it said and, for the heuristic, the signals that made the score.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictRecord {
    pub uid: String,
    /// The user's label kind, when the caller knows it (`fairuse eval` does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub t: String,
    /// Hours since the user's first usage report.
    pub hours: f64,
    /// The run's place among the user's runs, from 1.
    pub run: u32,
    pub stage_before: Stage,
    pub conversations: usize,
    pub misuse_score: f64,
    pub usage_type: UsageType,
    pub qualifies: bool,
    pub recipes: Vec<Recipe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demoted: Option<String>,
    /// The heuristic's parts of the score (empty for scripted or given verdicts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<Signal>,
    /// Evidence as `conversation_id: reason`.
    pub evidence: Vec<String>,
    /// The most recent conversations shown (at most [`VERDICT_LOG_TITLES`]): title, minutes,
    /// speakers and words a minute when the host sent them.
    pub recent: Vec<String>,
    /// The whole classifier input, when asked for ([`Simulator::with_verdict_inputs`]), so a
    /// classifier can be re-scored offline on exactly what it was shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<ClassifierInput>,
}

/// How many of the conversations shown a verdict record lists.
pub const VERDICT_LOG_TITLES: usize = 12;

pub(crate) fn describe_conversation(c: &Conversation) -> String {
    let minutes = c.duration_minutes();
    let mut s = format!("{} [{minutes:.0} min", c.title);
    if let Some(n) = c.speaker_count {
        s.push_str(&format!(", {n} spk"));
    }
    if let Some(w) = c.word_count
        && minutes > 0.0
    {
        s.push_str(&format!(", {:.0} wpm", w as f64 / minutes));
    }
    if !c.category.is_empty() {
        s.push_str(&format!(", {}", c.category));
    }
    s.push_str("] ");
    s.push_str(&c.overview.chars().take(80).collect::<String>());
    s
}
