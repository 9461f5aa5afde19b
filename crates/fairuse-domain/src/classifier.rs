//! The classifier port: what heavy usage *is*. Input types, the recipe rules of SPEC section 3,
//! and two offline implementations: `scripted` (the simulator's) and `heuristic` (the default).
//!
//! The heuristic is conservative by construction: usage shape and volume alone (the meter's minute
//! buckets and the gateway's stream sessions) can add at most [`SHAPE_SCORE_LIMIT`] (< 0.7, so
//! they never qualify on their own), numbered series whose metadata names no recorded media at
//! most [`UNNAMED_SERIES_LIMIT`] more (still < 0.7);
//! crossing the threshold needs conversations whose title or overview describes recorded media,
//! and those are cited as evidence a reviewer can check.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::Lane;
use crate::sessions::StreamSession;
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
    /// The streaming gateway's session summaries of the lookback (sessions updated in it), oldest
    /// started first. Measured by fairuse itself, unlike the conversations; empty for users who
    /// never streamed through the gateway, and in inputs serialized before it existed.
    #[serde(default)]
    pub sessions: Vec<StreamSession>,
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
pub trait Classifier: Send + Sync {
    fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError>;
    fn name(&self) -> &str;
}

/// Recipes (extra focus) chosen by the rules of SPEC section 3, from conversations alone.
pub fn select_recipes(conversations: &[Conversation]) -> Vec<Recipe> {
    select_recipes_with_sessions(conversations, &[])
}

/// Stream sessions with less audio than this are not sessions for the recipe rules: reconnect
/// blips and voice commands would otherwise make a run of uniform "sessions".
pub const RECIPE_SESSION_MIN_MS: i64 = MS_PER_MINUTE;

/// The gateway sessions the recipe rules count besides the conversations: those with at least
/// [`RECIPE_SESSION_MIN_MS`] of audio that overlap no conversation in time (a stream the host also
/// reported as a conversation counts once, as the conversation), with their audio received in
/// minutes and whether that length is final (closed).
fn extra_sessions(conversations: &[Conversation], sessions: &[StreamSession]) -> Vec<(f64, bool)> {
    sessions
        .iter()
        .filter(|s| s.duration_ms >= RECIPE_SESSION_MIN_MS)
        .filter(|s| {
            !conversations.iter().any(|c| s.started_at < c.finished_at && c.started_at < s.updated_at.max(s.started_at))
        })
        .map(|s| (s.duration_ms as f64 / MS_PER_MINUTE as f64, s.closed))
        .collect()
}

/// Recipes (extra focus) chosen by the rules of SPEC section 3, counting the gateway's stream
/// sessions as sessions alongside the conversations, without double counting: a stream session
/// that overlaps a conversation in time is that conversation, and one with less than
/// [`RECIPE_SESSION_MIN_MS`] of audio is no session at all. A stream still open has a length that can only grow, so it counts
/// where a lower bound is sound ("over 60 min", the audiobook rule) and not in the rules that need
/// the final length (uniform durations, 25-90 min). Commercial looks at conversation categories,
/// which sessions do not have. With no sessions this is exactly [`select_recipes`].
pub fn select_recipes_with_sessions(conversations: &[Conversation], sessions: &[StreamSession]) -> Vec<Recipe> {
    let extra = extra_sessions(conversations, sessions);
    // Every length, final or a lower bound; and the final ones only.
    let all: Vec<f64> =
        conversations.iter().map(Conversation::duration_minutes).chain(extra.iter().map(|&(m, _)| m)).collect();
    let durations: Vec<f64> = conversations
        .iter()
        .map(Conversation::duration_minutes)
        .chain(extra.iter().filter(|&&(_, closed)| closed).map(|&(m, _)| m))
        .collect();
    let mut recipes = Vec::new();
    if all.iter().filter(|&&d| d > 60.0).count() >= 3 {
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
            demoted: None,
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
/// The most that numbered series can add when none of their titles or overviews names recorded
/// media: with [`SHAPE_SCORE_LIMIT`] still below 0.7, so a qualifying verdict always cites at
/// least one conversation whose metadata describes recorded media.
pub const UNNAMED_SERIES_LIMIT: f64 = 0.15;
pub const HEURISTIC_VERSION: &str = "heuristic-v3";
const _: () = assert!(SHAPE_SCORE_LIMIT + UNNAMED_SERIES_LIMIT < 0.7, "shape and numbering alone must never qualify");

/// Weight of the share of conversation time whose title or overview describes recorded media.
const MEDIA_WEIGHT: f64 = 0.55;
/// Weight of numbered series played back to back (share of conversation time, saturating at 2/3).
const SERIES_WEIGHT: f64 = 0.3;
/// Weight of the share of conversation time that describes live people (meetings, calls, classes).
const PERSONAL_WEIGHT: f64 = 0.3;
/// Two numbered items are "back to back" when the next starts at most this long after the last ended.
const BACK_TO_BACK_MS: i64 = 20 * MS_PER_MINUTE;
/// Gateway sessions that sound like playback ([`StreamSession::playback_like`]) before the shape
/// score counts them: one could be a debate that never drew breath; two are a habit.
const PLAYBACK_SESSIONS: usize = 2;
/// What those sessions add to the shape score (still capped by [`SHAPE_SCORE_LIMIT`]).
const PLAYBACK_WEIGHT: f64 = 0.1;

/// The offline default: recipe rules, usage shape and conversation metadata, with evidence.
///
/// The score is `shape + content` where
/// * `shape` (at most [`SHAPE_SCORE_LIMIT`]) comes from the meter, the gateway's stream sessions
///   and the recipes: dense speech (70 % of every active minute), long unbroken runs (2 h, 6 h),
///   both at once, speech around the clock, recipe rules (gateway sessions count as sessions,
///   see [`select_recipes_with_sessions`]), and two or more gateway sessions that sound like
///   playback (20 minutes of speech without a half-second silence, under one pause a minute;
///   [`StreamSession::playback_like`]), which live conversation does not produce. Volume and shape
///   say "a lot" and "not live people", never "what", so they stay below the qualifying score.
/// * `content` comes from conversation metadata, time-weighted so that one movie night in a week of
///   family conversations weighs what it lasted: `0.55 x` the share of conversation time whose title
///   or overview describes recorded media (narrators, podcasts, episodes, season-and-episode codes,
///   movies, recorded lectures, transcription jobs; a conversation whose title repeats the show,
///   book or client name of such a conversation counts too), plus up to `0.3` for numbered series
///   consumed faster than anything live happens (the next number starting within 20 minutes of the
///   last, or three numbers within a day), minus `0.3 x` the share of time that describes live
///   people (meetings, calls, classes, family) in conversations that name no media.
///
/// Numbering alone is not suspicious (a live course has lecture 14 on Monday and 15 on Wednesday),
/// nor is volume (a manager's day of meetings), nor speech at night (a night shift). Every
/// conversation that raised the score is cited as evidence with the reason.
#[derive(Debug, Clone, Default)]
pub struct HeuristicClassifier;

/// Words (matched on word boundaries, lowercase, plural `s` allowed) that describe recorded media.
const MEDIA_WORDS: [(&str, UsageType); 28] = [
    ("audiobook", UsageType::Audiobook),
    ("audio book", UsageType::Audiobook),
    ("audible", UsageType::Audiobook),
    ("narrator", UsageType::Audiobook),
    ("narration", UsageType::Audiobook),
    ("narrated", UsageType::Audiobook),
    ("chapter", UsageType::Audiobook),
    ("podcast", UsageType::Podcast),
    ("episode", UsageType::Podcast),
    ("ep", UsageType::Podcast),
    ("ad read", UsageType::Podcast),
    ("sponsored by", UsageType::Podcast),
    ("co-host", UsageType::Podcast),
    ("netflix", UsageType::TvMovie),
    ("movie", UsageType::TvMovie),
    ("film", UsageType::TvMovie),
    ("tv show", UsageType::TvMovie),
    ("tv series", UsageType::TvMovie),
    ("sitcom", UsageType::TvMovie),
    ("laugh track", UsageType::TvMovie),
    ("soundtrack", UsageType::TvMovie),
    ("recorded lecture", UsageType::Prerecorded),
    ("lecture recording", UsageType::Prerecorded),
    ("video lecture", UsageType::Prerecorded),
    ("played back", UsageType::Prerecorded),
    ("youtube", UsageType::Prerecorded),
    ("transcription job", UsageType::Commercial),
    ("client file", UsageType::Commercial),
];

/// When a conversation names several media types, the most specific wins ("episode" is generic).
const SPECIFICITY: [UsageType; 5] =
    [UsageType::Commercial, UsageType::Prerecorded, UsageType::TvMovie, UsageType::Audiobook, UsageType::Podcast];

/// Words that describe live people talking: what the product is for. Only counted in
/// conversations that do not also describe recorded media.
const PERSONAL_WORDS: [&str; 28] = [
    "meeting",
    "standup",
    "stand-up",
    "1:1",
    "one-on-one",
    "call with",
    "phone call",
    "video call",
    "interview",
    "sync",
    "catch-up",
    "catch up",
    "dinner",
    "lunch",
    "breakfast",
    "family",
    "doctor",
    "appointment",
    "class",
    "office hours",
    "study group",
    "live",
    "in person",
    "in-person",
    "students",
    "handover",
    "patient",
    "kids",
];

/// `word` occurs in `text` (both lowercase) on word boundaries; a plural `s` may follow.
fn has_word(text: &str, word: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find(word) {
        let start = from + pos;
        let end = start + word.len();
        let boundary = |i: usize| i >= bytes.len() || !bytes[i].is_ascii_alphanumeric();
        let before = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let after = boundary(end) || (bytes[end] == b's' && boundary(end + 1));
        if before && after {
            return true;
        }
        // `word` starts with an ASCII byte, so `start + 1` is a character boundary.
        from = start + 1;
    }
    false
}

/// The media type a conversation's metadata describes, and the first word that says so.
fn media_of(text: &str) -> Option<(UsageType, &'static str)> {
    let mut hits: BTreeMap<UsageType, (usize, &'static str)> = BTreeMap::new();
    for (word, ty) in MEDIA_WORDS {
        if has_word(text, word) {
            hits.entry(ty).or_insert((0, word)).0 += 1;
        }
    }
    let rank = |t: &UsageType| SPECIFICITY.iter().position(|s| s == t).unwrap_or(SPECIFICITY.len());
    hits.into_iter().max_by(|a, b| a.1.0.cmp(&b.1.0).then(rank(&b.0).cmp(&rank(&a.0)))).map(|(t, (_, w))| (t, w))
}

/// What a numbered title is a part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SeriesKind {
    Chapter,
    Episode,
    TvEpisode,
    Lecture,
    Numbered,
}

impl SeriesKind {
    fn usage_type(self) -> Option<UsageType> {
        match self {
            SeriesKind::Chapter => Some(UsageType::Audiobook),
            SeriesKind::Episode => Some(UsageType::Podcast),
            SeriesKind::TvEpisode => Some(UsageType::TvMovie),
            SeriesKind::Lecture => Some(UsageType::Prerecorded),
            SeriesKind::Numbered => None,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            SeriesKind::Chapter => "chapter",
            SeriesKind::Episode | SeriesKind::TvEpisode => "episode",
            SeriesKind::Lecture => "lecture",
            SeriesKind::Numbered => "numbered item",
        }
    }
}

const SERIES_MARKERS: [(&str, SeriesKind); 14] = [
    ("chapter", SeriesKind::Chapter),
    ("book", SeriesKind::Chapter),
    ("episode", SeriesKind::Episode),
    ("ep", SeriesKind::Episode),
    ("lecture", SeriesKind::Lecture),
    ("lesson", SeriesKind::Lecture),
    ("module", SeriesKind::Lecture),
    ("part", SeriesKind::Numbered),
    ("track", SeriesKind::Numbered),
    ("session", SeriesKind::Numbered),
    ("vol", SeriesKind::Numbered),
    ("volume", SeriesKind::Numbered),
    ("no", SeriesKind::Numbered),
    ("#", SeriesKind::Numbered),
];

/// The number right after position `at` (skipping spaces, `#`, `.`, `:`), and where it ends.
fn number_at(text: &str, at: usize) -> Option<(u32, usize)> {
    let rest = &text[at..];
    let trimmed = rest.trim_start_matches([' ', '#', '.', ':']);
    let skipped = rest.len() - trimmed.len();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 6 || trimmed.as_bytes().get(digits).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    trimmed[..digits].parse().ok().map(|n| (n, at + skipped + digits))
}

/// The series a title belongs to: its kind, its stem (the lowercase text before the marker) and
/// its number. "Harry Potter - Chapter 12" is (chapter, "harry potter", 12); "Show Season 2
/// Episode 3" and "Show S02E03" are (TV episode, "show", 2003). "CS101 lecture — week 3" has no
/// number after its marker, so it is not part of a series.
fn series_of(title: &str) -> Option<(SeriesKind, String, u32)> {
    let lower = title.to_lowercase();
    let bytes = lower.as_bytes();
    let stem = |end: usize| lower[..end].trim_matches(|c: char| !c.is_alphanumeric()).to_owned();
    let word_start = |i: usize| i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
    // "season 2 episode 3", "season 2, ep. 3", "s02e03".
    let mut from = 0;
    while let Some(pos) = lower[from..].find("season") {
        let at = from + pos;
        if word_start(at)
            && let Some((season, end)) = number_at(&lower, at + "season".len())
        {
            let rest = lower[end..].trim_start_matches([' ', ',', '-', '·']);
            let offset = lower.len() - rest.len();
            for marker in ["episode", "ep"] {
                if rest.starts_with(marker)
                    && let Some((episode, _)) = number_at(&lower, offset + marker.len())
                {
                    return Some((SeriesKind::TvEpisode, stem(at), season * 1000 + episode.min(999)));
                }
            }
        }
        from = at + 1;
    }
    for (i, _) in lower.match_indices('s') {
        if !word_start(i) {
            continue;
        }
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let rest = &lower[i + 1..];
        let season_digits = digits(rest);
        if (1..=2).contains(&season_digits) && rest[season_digits..].starts_with('e') {
            let ep = &rest[season_digits + 1..];
            let ep_digits = digits(ep);
            let ends_word = ep.as_bytes().get(ep_digits).is_none_or(|b| !b.is_ascii_alphanumeric());
            if (1..=3).contains(&ep_digits) && ends_word {
                let season: u32 = rest[..season_digits].parse().ok()?;
                let episode: u32 = ep[..ep_digits].parse().ok()?;
                return Some((SeriesKind::TvEpisode, stem(i), season * 1000 + episode));
            }
        }
    }
    // The earliest marker followed by a number.
    let mut best: Option<(usize, SeriesKind, u32)> = None;
    for (marker, kind) in SERIES_MARKERS {
        for (at, _) in lower.match_indices(marker) {
            let end = at + marker.len();
            let bounded = marker == "#" || (word_start(at) && bytes.get(end).is_none_or(|b| !b.is_ascii_alphabetic()));
            if !bounded || best.is_some_and(|(b, _, _)| b <= at) {
                continue;
            }
            if let Some((n, _)) = number_at(&lower, end) {
                best = Some((at, kind, n));
                break;
            }
        }
    }
    best.map(|(at, kind, n)| (kind, stem(at), n))
}

/// The names in a title a host's app repeats for every item of one show, book or client:
/// "Harbor Town: The Storm" gives "harbor town" and "the storm"; a numbered title gives its stem.
fn title_names(title: &str) -> Vec<String> {
    let lower = title.to_lowercase();
    let mut names: Vec<String> = lower
        .split([':', '|', '(', ')', ',', '—', '–'])
        .flat_map(|s| s.split(" - "))
        .map(|s| s.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
        .filter(|s| s.len() >= 6)
        .collect();
    if let Some((_, stem, _)) = series_of(title)
        && stem.len() >= 6
    {
        names.push(stem);
    }
    names.sort();
    names.dedup();
    names
}

/// Why a conversation counts as recorded media.
#[derive(Debug, Clone)]
enum MediaSign {
    /// Its title or overview says so, with this word.
    Word(&'static str),
    /// Its title repeats a name ("harbor town") of this conversation, whose metadata says so.
    SameName(String, String),
}

/// One conversation as the heuristic reads it.
struct Reading<'a> {
    conv: &'a Conversation,
    minutes: f64,
    media: Option<(UsageType, MediaSign)>,
    personal: bool,
}

/// A numbered series consumed faster than anything live happens.
struct Binge {
    kind: SeriesKind,
    /// Indexes into the readings, by start time.
    items: Vec<usize>,
    /// Pairs of consecutive numbers, the next starting within [`BACK_TO_BACK_MS`] of the last.
    back_to_back: usize,
    /// The most distinct numbers within any 24 hours.
    per_day: usize,
    named_media: bool,
}

fn binges(readings: &[Reading<'_>]) -> Vec<Binge> {
    let mut groups: BTreeMap<(SeriesKind, String), Vec<(usize, u32)>> = BTreeMap::new();
    for (i, r) in readings.iter().enumerate() {
        if let Some((kind, stem, n)) = series_of(&r.conv.title) {
            groups.entry((kind, stem)).or_default().push((i, n));
        }
    }
    let mut out = Vec::new();
    for ((kind, _), mut items) in groups {
        if items.len() < 2 {
            continue;
        }
        items.sort_by_key(|&(i, n)| (readings[i].conv.started_at, n));
        let start = |i: usize| readings[i].conv.started_at.millis();
        let end = |i: usize| readings[i].conv.finished_at.millis();
        let back_to_back = items
            .windows(2)
            .filter(|w| {
                w[1].1 == w[0].1 + 1 && (-MS_PER_MINUTE..=BACK_TO_BACK_MS).contains(&(start(w[1].0) - end(w[0].0)))
            })
            .count();
        let mut per_day = 0;
        let mut lo = 0;
        for hi in 0..items.len() {
            while start(items[hi].0) - start(items[lo].0) > 24 * 60 * MS_PER_MINUTE {
                lo += 1;
            }
            let distinct: BTreeSet<u32> = items[lo..=hi].iter().map(|&(_, n)| n).collect();
            per_day = per_day.max(distinct.len());
        }
        if back_to_back >= 1 || per_day >= 3 {
            let named_media = items.iter().any(|&(i, _)| matches!(readings[i].media, Some((_, MediaSign::Word(_)))));
            out.push(Binge {
                kind,
                items: items.into_iter().map(|(i, _)| i).collect(),
                back_to_back,
                per_day,
                named_media,
            });
        }
    }
    out
}

fn push_evidence(evidence: &mut Vec<Evidence>, c: &Conversation, reason: String) {
    if evidence.len() < MAX_EVIDENCE && !evidence.iter().any(|e| e.conversation_id == c.conversation_id) {
        evidence.push(Evidence { conversation_id: c.conversation_id.clone(), title: c.title.clone(), reason });
    }
}

impl HeuristicClassifier {
    /// The shape part of the score, at most [`SHAPE_SCORE_LIMIT`].
    fn shape_score(shape: &UsageShape, recipes: &[Recipe], sessions: &[StreamSession]) -> f64 {
        let mut score = 0.05 * recipes.len() as f64;
        if sessions.iter().filter(|s| s.playback_like()).count() >= PLAYBACK_SESSIONS {
            score += PLAYBACK_WEIGHT; // measured unbroken speech, session after session
        }
        if shape.mean_density_ms >= 42_000 {
            score += 0.1; // 70 % of every active minute is speech: narration, not conversation
        }
        if shape.longest_run_minutes >= 120 {
            score += 0.1; // two hours without a silent minute
        }
        if shape.longest_run_minutes >= 360 {
            score += 0.05;
        }
        if shape.mean_density_ms >= 42_000 && shape.longest_run_minutes >= 120 {
            score += 0.1; // both at once: two hours of narration-density speech without a pause
        }
        if shape.hours_of_day_active >= 20 {
            score += 0.1; // speech in almost every hour of the day, sleep hours included
        }
        score.min(SHAPE_SCORE_LIMIT)
    }
}

impl Classifier for HeuristicClassifier {
    fn name(&self) -> &str {
        "heuristic"
    }

    fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        let convs = &input.conversations;
        let recipes = select_recipes_with_sessions(convs, &input.sessions);
        let shape_score = Self::shape_score(&input.shape, &recipes, &input.sessions);

        let texts: Vec<String> = convs.iter().map(|c| format!("{} {}", c.title, c.overview).to_lowercase()).collect();
        let words: Vec<Option<(UsageType, &'static str)>> = convs
            .iter()
            .zip(&texts)
            .map(|(c, t)| {
                // "S02E03" and "Season 2 Episode 3" are how only recorded shows are numbered.
                let tv = matches!(series_of(&c.title), Some((SeriesKind::TvEpisode, _, _)));
                if tv { Some((UsageType::TvMovie, "season and episode number")) } else { media_of(t) }
            })
            .collect();
        // Names of shows, books and clients that conversations described as media carry.
        let mut media_names: BTreeMap<String, (UsageType, &str)> = BTreeMap::new();
        for (c, w) in convs.iter().zip(&words) {
            if let Some((ty, _)) = w {
                for name in title_names(&c.title) {
                    media_names.entry(name).or_insert((*ty, c.conversation_id.as_str()));
                }
            }
        }
        let readings: Vec<Reading<'_>> = convs
            .iter()
            .zip(words)
            .zip(&texts)
            .map(|((c, word), text)| {
                let media = match word {
                    Some((ty, w)) => Some((ty, MediaSign::Word(w))),
                    None => title_names(&c.title).into_iter().find_map(|name| {
                        let (ty, id) = media_names.get(&name)?;
                        Some((*ty, MediaSign::SameName(name, (*id).to_owned())))
                    }),
                };
                let personal = media.is_none()
                    && (PERSONAL_WORDS.iter().any(|w| has_word(text, w)) || c.speaker_count.is_some_and(|n| n >= 3));
                Reading { conv: c, minutes: c.duration_minutes().max(1.0), media, personal }
            })
            .collect();
        let total: f64 = readings.iter().map(|r| r.minutes).sum();
        let share = |minutes: f64| if total > 0.0 { minutes / total } else { 0.0 };

        // Votes for the usage type, in minutes of conversation.
        let mut votes: BTreeMap<UsageType, f64> = BTreeMap::new();
        let mut media_minutes = 0.0;
        let mut personal_minutes = 0.0;
        for r in &readings {
            if let Some((ty, _)) = &r.media {
                media_minutes += r.minutes;
                *votes.entry(*ty).or_default() += r.minutes;
            } else if r.personal {
                personal_minutes += r.minutes;
            }
        }
        let binges = binges(&readings);
        let (mut named_binge_minutes, mut unnamed_binge_minutes) = (0.0, 0.0);
        for b in &binges {
            let minutes: f64 = b.items.iter().map(|&i| readings[i].minutes).sum();
            if b.named_media {
                named_binge_minutes += minutes;
            } else {
                unnamed_binge_minutes += minutes;
            }
            if let Some(ty) = b.kind.usage_type() {
                *votes.entry(ty).or_default() += minutes;
            }
        }
        let media_share = share(media_minutes);
        let series_score = (SERIES_WEIGHT * (1.5 * share(named_binge_minutes)).min(1.0))
            .max((SERIES_WEIGHT * (1.5 * share(unnamed_binge_minutes)).min(1.0)).min(UNNAMED_SERIES_LIMIT));
        let content_score =
            (MEDIA_WEIGHT * media_share + series_score - PERSONAL_WEIGHT * share(personal_minutes)).max(0.0);
        let score = if content_score <= 0.0 { shape_score } else { (shape_score + content_score).min(1.0) };

        // Evidence: the series first (the strongest sign), then the longest media conversations.
        let mut evidence: Vec<Evidence> = Vec::new();
        if content_score > 0.0 {
            let mut ordered: Vec<&Binge> = binges.iter().collect();
            ordered.sort_by_key(|b| std::cmp::Reverse((b.named_media, b.items.len())));
            for b in ordered.iter().take(3) {
                let how = if b.back_to_back > 0 {
                    format!("{} pairs of consecutive numbers played back to back", b.back_to_back)
                } else {
                    format!("{} numbers within 24 hours", b.per_day)
                };
                for &i in b.items.iter().take(3) {
                    let reason = format!("one of {} numbered {}s; {how}", b.items.len(), b.kind.noun());
                    push_evidence(&mut evidence, readings[i].conv, reason);
                }
            }
            let mut media: Vec<&Reading<'_>> = readings.iter().filter(|r| r.media.is_some()).collect();
            media.sort_by(|a, b| b.minutes.total_cmp(&a.minutes));
            for r in media {
                let reason = match &r.media {
                    Some((_, MediaSign::Word(word))) => {
                        format!(
                            "title or overview says {word:?}: recorded media, {:.0} min of transcription",
                            r.minutes
                        )
                    }
                    Some((_, MediaSign::SameName(name, id))) => format!(
                        "same name {name:?} as {id}, whose metadata describes recorded media; {:.0} min",
                        r.minutes
                    ),
                    None => continue,
                };
                push_evidence(&mut evidence, r.conv, reason);
            }
        }

        let usage_type = if score < 0.3 {
            UsageType::None
        } else {
            votes
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(t, _)| *t)
                .unwrap_or(UsageType::Unknown)
        };
        let confidence = if convs.is_empty() {
            0.2
        } else {
            (0.4 + 0.05 * convs.len().min(8) as f64 + 0.2 * media_share.max(share(personal_minutes))).min(1.0)
        };
        Ok(Verdict {
            misuse_score: (score * 1000.0).round() / 1000.0,
            usage_type,
            confidence: (confidence * 1000.0).round() / 1000.0,
            evidence,
            model: "heuristic".into(),
            prompt_version: HEURISTIC_VERSION.into(),
            recipes,
            demoted: None,
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
        ClassifierInput {
            uid: "u".into(),
            plan: "free".into(),
            conversations: convs,
            shape,
            window_totals_ms: vec![],
            sessions: vec![],
        }
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

    /// The densest shape there is: every signal the meter can give.
    fn max_shape() -> UsageShape {
        UsageShape {
            speech_ms: i64::MAX / 4,
            active_minutes: 10_080,
            longest_run_minutes: 10_080,
            hours_of_day_active: 24,
            mean_density_ms: 60_000,
        }
    }

    /// Conversations at explicit start minutes (from 0), with an overview.
    fn at(id: usize, start_min: i64, minutes: i64, title: &str, overview: &str) -> Conversation {
        let start = Timestamp::from_millis(start_min * MS_PER_MINUTE);
        Conversation {
            overview: overview.into(),
            started_at: start,
            finished_at: start.plus_ms(minutes * MS_PER_MINUTE),
            ..conv(id, title, minutes, "education")
        }
    }

    #[test]
    fn series_are_read_from_titles() {
        let s = series_of;
        assert_eq!(s("Salt and Iron - Chapter 12"), Some((SeriesKind::Chapter, "salt and iron".into(), 12)));
        assert_eq!(s("Harbor Town Season 2 Episode 7"), Some((SeriesKind::TvEpisode, "harbor town".into(), 2007)));
        assert_eq!(s("Harbor Town S02E07"), Some((SeriesKind::TvEpisode, "harbor town".into(), 2007)));
        assert_eq!(s("The Money Hour Ep. 214"), Some((SeriesKind::Episode, "the money hour".into(), 214)));
        assert_eq!(s("MATH 221 Lecture 14"), Some((SeriesKind::Lecture, "math 221".into(), 14)));
        assert_eq!(s("Client file #1234 transcription job"), Some((SeriesKind::Numbered, "client file".into(), 1234)));
        assert_eq!(s("CS101 lecture — week 3"), None, "no number right after the marker");
        assert_eq!(s("Sprint 14 planning"), None);
        assert_eq!(s("Facebook 2 review"), None, "markers are whole words");
        assert!(has_word("two hosts and a guest; podcast episodes", "episode"));
        assert!(!has_word("a classic novel", "class") && !has_word("asynchronous", "sync"));
    }

    #[test]
    fn one_narrated_chapter_and_two_dense_unbroken_hours_qualify() {
        // The first classifier run of an audiobook abuser, about 2 h 20 min after they start.
        let convs =
            vec![at(1, 0, 48, "Salt and Iron - Chapter 1", "A narrator reads chapter 1; one voice throughout.")];
        let shape = UsageShape {
            speech_ms: 125 * MS_PER_MINUTE,
            active_minutes: 140,
            longest_run_minutes: 140,
            hours_of_day_active: 3,
            mean_density_ms: 53_000,
        };
        let v = HeuristicClassifier.classify(&input(convs, shape.clone())).unwrap();
        assert!(v.misuse_score >= 0.7, "{v:?}");
        assert_eq!(v.usage_type, UsageType::Audiobook);
        assert_eq!(v.evidence.len(), 1);
        assert!(v.evidence[0].reason.contains("narrat"), "{:?}", v.evidence);
        // The same hours at conversational density, without a silent minute, do not.
        let talk = vec![at(1, 0, 140, "Workshop with the design team", "Live workshop; the team sketched flows.")];
        let loose = UsageShape { mean_density_ms: 30_000, ..shape };
        assert!(HeuristicClassifier.classify(&input(talk, loose)).unwrap().misuse_score < 0.3);
    }

    #[test]
    fn chapters_back_to_back_are_cited_as_a_series() {
        let convs: Vec<_> = (0..4)
            .map(|i| at(i + 1, i as i64 * 62, 60, &format!("Harbor of Glass, Part {}", i + 3), "The story continues."))
            .collect();
        let v = HeuristicClassifier.classify(&input(convs.clone(), UsageShape::default())).unwrap();
        // Numbering without any media word: at most the unnamed-series share, never qualifying.
        assert!(v.misuse_score <= UNNAMED_SERIES_LIMIT + 0.2 + 1e-9, "{v:?}");
        let v = HeuristicClassifier.classify(&input(convs, max_shape())).unwrap();
        assert!(v.misuse_score < 0.7, "numbering and shape alone: {v:?}");
        assert!(v.evidence.iter().all(|e| e.reason.contains("back to back")), "{:?}", v.evidence);
        let named: Vec<_> = (0..4)
            .map(|i| at(i + 1, i as i64 * 62, 60, &format!("The Money Hour Episode {}", i + 40), "Two hosts talk."))
            .collect();
        let v = HeuristicClassifier.classify(&input(named, UsageShape::default())).unwrap();
        assert!(v.misuse_score >= 0.7, "{v:?}");
        assert_eq!(v.usage_type, UsageType::Podcast);
    }

    #[test]
    fn titles_sharing_a_show_name_with_described_media_count_as_media() {
        let convs = vec![
            at(1, 0, 60, "Why rates are not coming down | The Money Hour", "The hosts interview an author."),
            at(2, 61, 60, "Inside a seed round | The Money Hour", "In this episode the hosts discuss funding."),
            at(3, 122, 60, "Kitchen Wars S02E01", "Several characters talk over music."),
        ];
        let v = HeuristicClassifier.classify(&input(convs, UsageShape::default())).unwrap();
        assert!(v.misuse_score >= 0.55 - 1e-9, "all three are media: {v:?}");
        let reasons: Vec<&str> = v.evidence.iter().map(|e| e.reason.as_str()).collect();
        assert!(reasons.iter().any(|r| r.contains("same name \"the money hour\" as c2")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("season and episode number")), "{reasons:?}");
        // A name shared with nothing described as media proves nothing.
        let convs = vec![
            at(1, 0, 60, "Weekly sync | Atlas team", "Planning."),
            at(2, 61, 60, "Design review | Atlas team", "Reviewed the onboarding flow."),
        ];
        let v = HeuristicClassifier.classify(&input(convs, max_shape())).unwrap();
        assert!(v.misuse_score <= SHAPE_SCORE_LIMIT && v.evidence.is_empty(), "{v:?}");
    }

    #[test]
    fn a_live_course_with_numbered_lectures_is_not_misuse() {
        // Three courses, lectures two or three times a week, same length each time, a full week of
        // every shape signal the meter can give: still not misuse.
        let mut convs = Vec::new();
        let mut id = 0;
        for day in 0..5i64 {
            for (course, hour, minutes) in [("MATH 221", 9, 50), ("CS 101", 11, 75), ("PHYS 150", 14, 90)] {
                if (day + hour) % 2 == 0 || course == "MATH 221" {
                    id += 1;
                    let n = 10 + day as usize;
                    convs.push(at(
                        id,
                        day * 1440 + hour * 60,
                        minutes,
                        &format!("{course} Lecture {n}"),
                        "Live lecture; the professor took questions from students.",
                    ));
                }
            }
            id += 1;
            convs.push(at(id, day * 1440 + 17 * 60, 60, "CS101 lecture — week 3", "Study group before the quiz."));
        }
        let v = HeuristicClassifier.classify(&input(convs, max_shape())).unwrap();
        assert!(v.misuse_score < 0.7, "{v:?}");
    }

    #[test]
    fn a_family_movie_night_in_a_week_of_family_life_is_not_misuse() {
        let mut convs: Vec<_> = (0..60)
            .map(|i| {
                let title = ["Breakfast with the kids", "Homework help", "Dinner together", "Call with grandma"][i % 4];
                at(i + 1, i as i64 * 160, 45, title, "Family conversation at home.")
            })
            .collect();
        convs.push(at(61, 100 * 160, 130, "Family movie night: Galaxy Drift", "The movie playing on the TV."));
        convs.push(at(62, 101 * 160, 25, "Bedtime story: chapter 4", "Dad read chapter 4 to the kids."));
        let v = HeuristicClassifier.classify(&input(convs, max_shape())).unwrap();
        assert!(v.misuse_score < 0.7, "{v:?}");
    }

    #[test]
    fn without_a_conversation_naming_recorded_media_nothing_qualifies() {
        // Numbered, uniform, back to back, all day, around the clock: but nothing in the metadata
        // says it is recorded media, so the score stays below the threshold by construction.
        let titles = ["Untitled part {n}", "Session {n}", "Recording #{n}", "Notes no. {n}", "Lesson {n}"];
        for t in titles {
            let convs: Vec<_> = (0..200)
                .map(|i| at(i + 1, i as i64 * 31, 30, &t.replace("{n}", &(i + 1).to_string()), "Continuous speech."))
                .collect();
            let v = HeuristicClassifier.classify(&input(convs, max_shape())).unwrap();
            assert!(v.misuse_score < 0.7, "{t}: {v:?}");
        }
    }

    #[test]
    fn evidence_cites_only_input_conversations() {
        let convs: Vec<_> = (0..30)
            .map(|i| {
                let title =
                    if i % 3 == 0 { format!("Client file #{} transcription job", 500 + i) } else { "Call".into() };
                at(i + 1, i as i64 * 15, 14, &title, "")
            })
            .collect();
        let ids: BTreeSet<String> = convs.iter().map(|c| c.conversation_id.clone()).collect();
        let v = HeuristicClassifier.classify(&input(convs, max_shape())).unwrap();
        assert!(!v.evidence.is_empty() && v.evidence.len() <= MAX_EVIDENCE);
        assert!(v.evidence.iter().all(|e| ids.contains(&e.conversation_id) && !e.reason.is_empty()), "{v:?}");
    }

    /// A gateway stream session starting at `start_min`, `minutes` of audio, with its longest
    /// continuous speech and its pauses.
    fn stream(id: usize, start_min: i64, minutes: i64, longest_min: i64, pauses: u64, closed: bool) -> StreamSession {
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
        }
    }

    /// Sessions the way people talk: a few minutes at most without a half-second pause, and
    /// several pauses a minute.
    fn talk(id: usize, start_min: i64, minutes: i64) -> StreamSession {
        stream(id, start_min, minutes, 3, 8 * minutes as u64, true)
    }

    /// Sessions the way playback sounds: most of the session one unbroken stretch.
    fn playback(id: usize, start_min: i64, minutes: i64) -> StreamSession {
        stream(id, start_min, minutes, minutes * 3 / 4, minutes as u64 / 10, true)
    }

    fn with_sessions(convs: Vec<Conversation>, shape: UsageShape, sessions: Vec<StreamSession>) -> ClassifierInput {
        ClassifierInput { sessions, ..input(convs, shape) }
    }

    #[test]
    fn gateway_sessions_count_for_the_recipes_once() {
        let three_long: Vec<_> = (0..3).map(|i| talk(i, i as i64 * 100, 61)).collect();
        assert_eq!(select_recipes_with_sessions(&[], &three_long), vec![Recipe::Audiobook]);
        assert_eq!(select_recipes_with_sessions(&[], &[]), select_recipes(&[]));
        // Two of them are also conversations the host reported (same time): counted once each.
        let convs: Vec<_> = (0..2).map(|i| at(i + 1, i as i64 * 100, 61, "Untitled", "")).collect();
        assert!(select_recipes_with_sessions(&convs, &three_long[..2]).is_empty(), "two sessions, not four");
        assert_eq!(select_recipes_with_sessions(&convs, &three_long), vec![Recipe::Audiobook]);
        // Five uniform sessions of 30 min: prerecorded and podcast, once they are closed.
        let closed: Vec<_> = (0..5).map(|i| talk(i, i as i64 * 40, 30)).collect();
        assert_eq!(select_recipes_with_sessions(&[], &closed), vec![Recipe::Prerecorded, Recipe::Podcast]);
        // Still open, their lengths are lower bounds: enough for "over 60 min", not for the rest.
        let open: Vec<_> = closed.iter().map(|s| StreamSession { closed: false, ..s.clone() }).collect();
        assert!(select_recipes_with_sessions(&[], &open).is_empty());
        let open_long: Vec<_> = (0..3).map(|i| stream(i, i as i64 * 100, 61, 3, 500, false)).collect();
        assert_eq!(select_recipes_with_sessions(&[], &open_long), vec![Recipe::Audiobook]);
        // Reconnect blips and voice commands are not sessions, however uniform.
        let blips: Vec<_> =
            (0..50).map(|i| StreamSession { duration_ms: 30_000, ..talk(i, i as i64 * 10, 1) }).collect();
        assert!(select_recipes_with_sessions(&[], &blips).is_empty());
    }

    #[test]
    fn playback_shaped_sessions_raise_the_shape_score_and_conversational_ones_do_not() {
        // Four sessions, so no recipe fires either way: only the playback signal differs.
        let score = |sessions: Vec<StreamSession>| {
            HeuristicClassifier.classify(&with_sessions(vec![], UsageShape::default(), sessions)).unwrap().misuse_score
        };
        assert_eq!(score(vec![]), 0.0);
        let talking: Vec<_> = (0..4).map(|i| talk(i, i as i64 * 100, 50)).collect();
        assert_eq!(score(talking), 0.0, "conversational sessions add nothing");
        let played: Vec<_> = (0..4).map(|i| playback(i, i as i64 * 100, 50)).collect();
        assert_eq!(score(played.clone()), PLAYBACK_WEIGHT);
        assert_eq!(score(played[..1].to_vec()), 0.0, "one unbroken session is not a habit");
        // One long stretch in a session that otherwise pauses all the time is conversation.
        let debate: Vec<_> = (0..4).map(|i| stream(i, i as i64 * 100, 50, 25, 400, true)).collect();
        assert_eq!(score(debate), 0.0);

        // Beside conversations: the same direction, by the same amount, and only for playback.
        let convs = vec![
            at(1, 0, 45, "Salt and Iron - Chapter 1", "A narrator reads chapter 1."),
            at(2, 2000, 45, "Call with the bank", "A phone call about a mortgage."),
        ];
        let shape = UsageShape { mean_density_ms: 45_000, ..UsageShape::default() };
        let base = HeuristicClassifier.classify(&with_sessions(convs.clone(), shape.clone(), vec![])).unwrap();
        // Two sessions: with the two conversations, too few for any recipe.
        let sessions: Vec<_> = (0..2).map(|i| playback(i, 500 + i as i64 * 100, 40)).collect();
        let more = HeuristicClassifier.classify(&with_sessions(convs.clone(), shape.clone(), sessions)).unwrap();
        assert!((more.misuse_score - base.misuse_score - PLAYBACK_WEIGHT).abs() < 1e-9, "{base:?} {more:?}");
        assert_eq!(more.evidence, base.evidence, "sessions are measured, not cited");
        let sessions: Vec<_> = (0..2).map(|i| talk(i, 500 + i as i64 * 100, 40)).collect();
        let same = HeuristicClassifier.classify(&with_sessions(convs, shape, sessions)).unwrap();
        assert_eq!(same, base, "conversational sessions change nothing");
    }

    #[test]
    fn sessions_and_shape_alone_never_qualify() {
        // Every shape signal, every recipe, hundreds of unbroken sessions, and numbered titles
        // that name no media: still below the qualifying score.
        let convs: Vec<_> = (0..20)
            .map(|i| at(i + 1, i as i64 * 31, 30, &format!("Untitled part {}", i + 1), "Continuous speech."))
            .collect();
        let sessions: Vec<_> = (0..300).map(|i| playback(i, 1_000 + i as i64 * 31, 30)).collect();
        let v = HeuristicClassifier.classify(&with_sessions(convs, max_shape(), sessions)).unwrap();
        assert!(v.misuse_score < 0.7, "{v:?}");
        assert!(v.evidence.iter().all(|e| e.conversation_id.starts_with('c')), "{v:?}");
    }

    #[test]
    fn inputs_serialized_before_sessions_existed_still_parse() {
        let mut json = serde_json::to_value(input(vec![conv(1, "x", 5, "a")], UsageShape::default())).unwrap();
        json.as_object_mut().unwrap().remove("sessions");
        let parsed: ClassifierInput = serde_json::from_value(json).unwrap();
        assert!(parsed.sessions.is_empty());
        assert_eq!(parsed.conversations.len(), 1);
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
