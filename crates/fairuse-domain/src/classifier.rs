//! The classifier port: what heavy usage *is*. Input types, the recipe rules of SPEC section 3,
//! and two offline implementations: `scripted` (the simulator's) and `heuristic` (the default).
//!
//! The heuristic is conservative by construction: usage shape and volume alone (the meter's minute
//! buckets and the gateway's stream sessions) can add at most [`SHAPE_SCORE_LIMIT`] (< 0.7, so
//! they never qualify on their own), numbered series whose metadata names no recorded media at
//! most [`UNNAMED_SERIES_LIMIT`] more and weak signs (narration-paced single speakers, media
//! categories) at most [`WEAK_SIGN_LIMIT`] more (all together still < 0.7); crossing the threshold
//! needs conversations whose title or overview describes recorded media, in any of several
//! languages, and those are cited as evidence a reviewer can check.

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
pub const HEURISTIC_VERSION: &str = "heuristic-v4";
const _: () = assert!(SHAPE_SCORE_LIMIT + UNNAMED_SERIES_LIMIT < 0.7, "shape and numbering alone must never qualify");

/// Weight of the share of conversation time whose title or overview describes recorded media.
const MEDIA_WEIGHT: f64 = 0.55;
/// Weight of numbered series played back to back (share of conversation time, saturating at 2/3).
const SERIES_WEIGHT: f64 = 0.3;
/// The most that weak signs of recorded media can add: a single voice for half an hour or more at
/// narration pace (`speaker_count` 1, `word_count` 110 or more a minute) and media categories
/// ("entertainment", "religion", "sports"), in conversations that neither name media nor describe
/// live people. A lecture sounds like that too, so with [`SHAPE_SCORE_LIMIT`] and
/// [`UNNAMED_SERIES_LIMIT`] it stays below 0.7.
pub const WEAK_SIGN_LIMIT: f64 = 0.05;
const _: () = assert!(
    SHAPE_SCORE_LIMIT + UNNAMED_SERIES_LIMIT + WEAK_SIGN_LIMIT < 0.7,
    "shape, numbering and weak signs alone must never qualify"
);
/// Weight of the share of conversation time with a weak sign (capped by [`WEAK_SIGN_LIMIT`]).
const WEAK_WEIGHT: f64 = 0.1;
/// A single speaker this long, at this many words a minute, sounds like narration.
const NARRATION_MIN_MINUTES: f64 = 30.0;
const NARRATION_WORDS_PER_MINUTE: f64 = 110.0;
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
///   family conversations weighs what it lasted. Titles and overviews are `fold`ed (lowercase,
///   accents removed) and read in several languages:
///   - `0.55 x` the share of conversation time whose metadata describes recorded media: a word that
///     names the medium (`MEDIA_WORDS`: audiobook/audiolibro/Hörbuch, narrator/narrador/Erzähler,
///     podcast, episode/episodio, radio show, telenovela, film/película, sermon/Predigt/homélie,
///     play-by-play, commentator, guided meditation, online course/curso grabado, transcription
///     job), a season-and-episode code ("S02E03", "Temporada 2 Capítulo 5"), a numbered chapter or
///     episode in any language ("Capítulo 45", "Folge 12", "第3話"), or a narration cue ("the
///     protagonist", "the storyline", "the host", "listeners") in a conversation that describes no
///     live people; a conversation whose title repeats the show, book or client name, or the numbered
///     template, of such a conversation counts too;
///   - plus up to `0.3` for numbered series consumed faster than anything live happens: titles that
///     share a stem and a marker (`SERIES_MARKERS`, roman numerals and written-out numbers
///     included, "第十二章") or, without a marker, a template with a varying number ("Morning Drive
///     14"), whose numbers advance (one to three at a time) with the next starting within 20
///     minutes of the last, or three advancing numbers within a day; at most
///     [`UNNAMED_SERIES_LIMIT`] when no item of the series describes recorded media;
///   - plus up to [`WEAK_SIGN_LIMIT`] for weak signs in conversations that neither name media nor
///     describe live people: one speaker for 30 minutes or more at 110 words a minute or more
///     (narration; a lecture sounds the same, so it is weak) and media categories
///     (`MEDIA_CATEGORIES`, half weight);
///   - minus `0.3 x` the share of time that describes live people (`PERSONAL_WORDS`: meetings,
///     reuniones, Sitzungen, calls, classes, clases, patients, clients, therapy, depositions,
///     practice, family, in several languages; or three speakers or more) in conversations that
///     name no media.
///
/// Numbering alone is not suspicious (a live course has lecture 14 on Monday and 15 on Wednesday;
/// a therapist's "Sesión 12 con el cliente"), nor is volume (a manager's day of meetings), nor
/// speech at night (a night shift), nor one voice at length (a lecturer). Every conversation that
/// raised the score is cited as evidence with the reason, the media ones always among them.
#[derive(Debug, Clone, Default)]
pub struct HeuristicClassifier;

/// How much a media word says on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strength {
    /// Names the medium ("audiobook", "podcast", "sermon", "play-by-play", "telenovela"): counts
    /// even beside live people ("watched a movie with Marco" is a movie).
    Named,
    /// A narration cue that recorded media produce and live talk rarely does ("the protagonist",
    /// "the hosts", "listeners", "on TV"): counts only in a conversation whose metadata describes
    /// no live people (a book club talks about the protagonist too).
    Cue,
}

const AB: UsageType = UsageType::Audiobook;
const PC: UsageType = UsageType::Podcast;
const TV: UsageType = UsageType::TvMovie;
const PR: UsageType = UsageType::Prerecorded;
const CM: UsageType = UsageType::Commercial;
const N: Strength = Strength::Named;
const C: Strength = Strength::Cue;

/// Words and phrases that describe recorded media, in several languages, matched on word
/// boundaries in [`fold`]ed text (lowercase, accents removed: "capítulo" is "capitulo", "Hörbuch"
/// is "horbuch"); a plural or inflection ending `s`, `es`, `n` or `en` may follow. Words in
/// scripts without spaces (Japanese, Chinese) match anywhere.
const MEDIA_WORDS: &[(&str, UsageType, Strength)] = &[
    // Audiobooks: the medium, its narrator and its chapters.
    ("audiobook", AB, N),
    ("audio book", AB, N),
    ("audio-book", AB, N),
    ("audible", AB, N),
    ("audiolibro", AB, N),
    ("audiolivro", AB, N),
    ("livre audio", AB, N),
    ("livres audio", AB, N),
    ("horbuch", AB, N),
    ("hoerbuch", AB, N),
    ("horbucher", AB, N),
    ("luisterboek", AB, N),
    ("narrator", AB, N),
    ("narration", AB, N),
    ("narrated", AB, N),
    ("narrates", AB, N),
    ("narrador", AB, N),
    ("narradora", AB, N),
    ("narracion", AB, N),
    ("narracao", AB, N),
    ("erzahler", AB, N),
    ("erzaehler", AB, N),
    ("erzahlerin", AB, N),
    ("narrateur", AB, N),
    ("narratrice", AB, N),
    ("narratore", AB, N),
    ("verteller", AB, N),
    ("chapter", AB, N),
    ("capitulo", AB, N),
    ("kapitel", AB, N),
    ("chapitre", AB, N),
    ("capitolo", AB, N),
    ("hoofdstuk", AB, N),
    ("sleep story", AB, N),
    ("オーディオブック", AB, N),
    ("有声书", AB, N),
    ("有聲書", AB, N),
    ("朗読", AB, N),
    // Fiction told rather than lived.
    ("protagonist", AB, C),
    ("protagonista", AB, C),
    ("protagoniste", AB, C),
    ("protagonistin", AB, C),
    ("heroine", AB, C),
    ("main character", AB, C),
    ("storyline", AB, C),
    ("the author", AB, C),
    ("trama", AB, C),
    ("villain", AB, C),
    ("villano", AB, C),
    ("cliffhanger", AB, C),
    // Podcasts and radio.
    ("podcast", PC, N),
    ("podcaster", PC, N),
    ("episode", PC, N),
    ("ep", PC, N),
    ("episodio", PC, N),
    ("aflevering", PC, N),
    ("ad read", PC, N),
    ("sponsored by", PC, N),
    ("co-host", PC, N),
    ("cohost", PC, N),
    ("radio show", PC, N),
    ("radio program", PC, N),
    ("radio programme", PC, N),
    ("radio station", PC, N),
    ("on the radio", PC, N),
    ("talk show", PC, N),
    ("call-in", PC, N),
    ("listener call", PC, N),
    ("radiosendung", PC, N),
    ("horspiel", PC, N),
    ("programa de radio", PC, N),
    ("emision de radio", PC, N),
    ("emission de radio", PC, N),
    ("emission radio", PC, N),
    ("emisora", PC, N),
    ("trasmissione radio", PC, N),
    ("ポッドキャスト", PC, N),
    ("播客", PC, N),
    ("ラジオ", PC, N),
    ("电台", PC, N),
    ("listener", PC, C),
    ("oyente", PC, C),
    ("auditeur", PC, C),
    ("ouvinte", PC, C),
    ("ascoltatori", PC, C),
    ("the host", PC, C),
    ("hosted by", PC, C),
    ("presentador", PC, C),
    ("presentadora", PC, C),
    ("locutor", PC, C),
    ("locutora", PC, C),
    // Television, film and sports broadcasts.
    ("netflix", TV, N),
    ("hbo", TV, N),
    ("hulu", TV, N),
    ("disney+", TV, N),
    ("disney plus", TV, N),
    ("prime video", TV, N),
    ("movie", TV, N),
    ("film", TV, N),
    ("filme", TV, N),
    ("pelicula", TV, N),
    ("tv show", TV, N),
    ("tv series", TV, N),
    ("tv-serie", TV, N),
    ("serie de tv", TV, N),
    ("serie tv", TV, N),
    ("serie de television", TV, N),
    ("serie tele", TV, N),
    ("fernsehserie", TV, N),
    ("fernsehsendung", TV, N),
    ("fernsehfilm", TV, N),
    ("web series", TV, N),
    ("sitcom", TV, N),
    ("laugh track", TV, N),
    ("soundtrack", TV, N),
    ("telenovela", TV, N),
    ("soap opera", TV, N),
    ("culebron", TV, N),
    ("dorama", TV, N),
    ("k-drama", TV, N),
    ("kdrama", TV, N),
    ("play-by-play", TV, N),
    ("play by play", TV, N),
    ("commentator", TV, N),
    ("comentarista", TV, N),
    ("commentateur", TV, N),
    ("kommentator", TV, N),
    ("telecronista", TV, N),
    ("sports broadcast", TV, N),
    ("match commentary", TV, N),
    ("live commentary", TV, N),
    ("retransmision", TV, N),
    ("retransmission", TV, N),
    ("transmision del partido", TV, N),
    ("电视剧", TV, N),
    ("电影", TV, N),
    ("映画", TV, N),
    ("ドラマ", TV, N),
    ("on tv", TV, C),
    ("the tv", TV, C),
    ("watching tv", TV, C),
    ("watched tv", TV, C),
    ("tv episode", TV, C),
    ("tv program", TV, C),
    ("tv programme", TV, C),
    ("tv broadcast", TV, C),
    ("television", TV, C),
    ("fernsehen", TV, C),
    ("cartoon", TV, C),
    ("anime", TV, C),
    ("documentary", TV, C),
    ("documental", TV, C),
    ("documentaire", TV, C),
    ("novela", TV, C),
    ("characters", TV, C),
    ("broadcast", TV, C),
    // Pre-recorded courses, talks, sermons and guided audio.
    ("recorded lecture", PR, N),
    ("lecture recording", PR, N),
    ("video lecture", PR, N),
    ("played back", PR, N),
    ("youtube", PR, N),
    ("online course", PR, N),
    ("video course", PR, N),
    ("course video", PR, N),
    ("audio course", PR, N),
    ("audio lesson", PR, N),
    ("video tutorial", PR, N),
    ("tutorial video", PR, N),
    ("webinar recording", PR, N),
    ("recorded webinar", PR, N),
    ("curso online", PR, N),
    ("curso en linea", PR, N),
    ("curso grabado", PR, N),
    ("clase grabada", PR, N),
    ("videoclase", PR, N),
    ("curso gravado", PR, N),
    ("aula gravada", PR, N),
    ("videoaula", PR, N),
    ("cours en ligne", PR, N),
    ("cours enregistre", PR, N),
    ("online-kurs", PR, N),
    ("onlinekurs", PR, N),
    ("videokurs", PR, N),
    ("corso online", PR, N),
    ("ted talk", PR, N),
    ("tedx", PR, N),
    ("masterclass", PR, N),
    ("udemy", PR, N),
    ("coursera", PR, N),
    ("sermon", PR, N),
    ("homily", PR, N),
    ("homilia", PR, N),
    ("predigt", PR, N),
    ("homelie", PR, N),
    ("omelia", PR, N),
    ("predica", PR, N),
    ("preacher", PR, N),
    ("predicador", PR, N),
    ("prediger", PR, N),
    ("predicateur", PR, N),
    ("pregador", PR, N),
    ("congregation", PR, N),
    ("congregacion", PR, N),
    ("guided meditation", PR, N),
    ("guided sleep", PR, N),
    ("sleep meditation", PR, N),
    ("meditacion guiada", PR, N),
    ("meditation guidee", PR, N),
    ("gefuhrte meditation", PR, N),
    ("meditazione guidata", PR, N),
    ("meditacao guiada", PR, N),
    ("sleep sounds", PR, N),
    ("sleep hypnosis", PR, N),
    ("asmr", PR, N),
    // Other people's recordings transcribed as a job.
    ("transcription job", CM, N),
    ("client file", CM, N),
    ("transcription order", CM, N),
    ("for transcription", CM, N),
    ("transcribed for", CM, N),
    ("trabajo de transcripcion", CM, N),
    ("para transcripcion", CM, N),
    ("audio file", CM, C),
    ("archivo de audio", CM, C),
    ("fichier audio", CM, C),
    ("audiodatei", CM, C),
];

/// When a conversation names several media types, the most specific wins ("episode" is generic).
const SPECIFICITY: [UsageType; 5] =
    [UsageType::Commercial, UsageType::Prerecorded, UsageType::TvMovie, UsageType::Audiobook, UsageType::Podcast];

/// Words that describe live people talking, what the product is for, in several languages
/// ([`fold`]ed, matched like [`MEDIA_WORDS`]). Only counted in conversations that do not also
/// name recorded media; they also silence the weaker media cues of the same conversation.
const PERSONAL_WORDS: &[&str] = &[
    // English.
    "meeting",
    "standup",
    "stand-up",
    "1:1",
    "one-on-one",
    "call with",
    "phone call",
    "video call",
    "conference call",
    "interview",
    "sync",
    "catch-up",
    "catch up",
    "dinner",
    "lunch",
    "breakfast",
    "family",
    "friend",
    "colleague",
    "doctor",
    "appointment",
    "class",
    "classroom",
    "office hours",
    "study group",
    "live",
    "in person",
    "in-person",
    "students",
    "pupils",
    "handover",
    "patient",
    "kids",
    "with client",
    "with a client",
    "with my client",
    "client session",
    "therapy",
    "counseling",
    "counselling",
    "coaching",
    "tutoring",
    "rehearsal",
    "practice",
    "workshop",
    "seminar",
    "deposition",
    "consultation",
    // Spanish.
    "reunion",
    "junta",
    "llamada",
    "videollamada",
    "clase",
    "sesion",
    "consulta",
    "paciente",
    "terapia",
    "entrevista",
    "familia",
    "ninos",
    "hijos",
    "almuerzo",
    "desayuno",
    "alumnos",
    "estudiantes",
    "tutoria",
    "ensayo",
    "declaracion",
    "con el cliente",
    "con la clienta",
    "con cliente",
    "en persona",
    "companeros",
    // Portuguese.
    "reuniao",
    "chamada",
    "ligacao",
    "aula",
    "sessao",
    "com o cliente",
    "criancas",
    "filhos",
    "jantar",
    "almoco",
    "alunos",
    "estudantes",
    // German.
    "besprechung",
    "sitzung",
    "termin",
    "telefonat",
    "anruf",
    "videoanruf",
    "unterricht",
    "vorlesung",
    "klient",
    "mandant",
    "therapie",
    "familie",
    "kinder",
    "abendessen",
    "mittagessen",
    "fruhstuck",
    "schuler",
    "studenten",
    "gesprach",
    "kollegen",
    // French.
    "appel",
    "visio",
    "rendez-vous",
    "le cours",
    "un cours",
    "classe",
    "avec le client",
    "avec un client",
    "entretien",
    "famille",
    "enfants",
    "diner",
    "dejeuner",
    "eleves",
    "etudiants",
    "seance",
    "seminaire",
    "atelier",
    "collegues",
    // Italian and Dutch.
    "riunione",
    "chiamata",
    "telefonata",
    "paziente",
    "colloquio",
    "famiglia",
    "bambini",
    "pranzo",
    "studenti",
    "vergadering",
    "overleg",
    "gesprek",
    "klant",
    "kinderen",
    // Japanese and Chinese.
    "会議",
    "打ち合わせ",
    "ミーティング",
    "授業",
    "電話",
    "面談",
    "診察",
    "家族",
    "会议",
    "开会",
    "上课",
    "电话",
    "面试",
    "家人",
];

/// Categories host apps give recorded media: a weak sign only, never enough with shape alone.
const MEDIA_CATEGORIES: &[&str] = &[
    "entertainment",
    "entretenimiento",
    "entretenimento",
    "unterhaltung",
    "divertissement",
    "intrattenimento",
    "religion",
    "religious",
    "spirituality",
    "faith",
    "sports",
    "sport",
    "deportes",
    "esportes",
    "audiobook",
    "audiobooks",
    "podcast",
    "podcasts",
    "music",
    "media",
    "tv",
    "movies",
    "film",
    "radio",
    "fiction",
];

/// Lowercase, without the accents of Latin scripts ("Capítulo" is "capitulo", "Hörbuch"
/// "horbuch", "ß" "ss"), full-width digits as ASCII and typographic apostrophes as `'`, so that
/// one word list serves the spellings hosts' summarizers produce.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => out.push('a'),
            'ç' | 'ć' | 'č' => out.push('c'),
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' | 'ī' => out.push('i'),
            'ñ' | 'ń' | 'ň' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => out.push('o'),
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ś' | 'š' => out.push('s'),
            'ź' | 'ż' | 'ž' => out.push('z'),
            'ł' => out.push('l'),
            'ř' => out.push('r'),
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            '’' | '‘' | '`' => out.push('\''),
            '０'..='９' => out.push(char::from(b'0' + (c as u32 - '０' as u32) as u8)),
            _ => out.push(c),
        }
    }
    out
}

/// `word` occurs in `text` (both [`fold`]ed) on word boundaries; an ending `s`, `es`, `n` or
/// `en` may follow (plurals and inflections: "episodes", "capitulos", "Folgen", "Patienten"). A
/// word that is not ASCII (Japanese, Chinese) matches anywhere: those scripts have no spaces.
fn has_word(text: &str, word: &str) -> bool {
    if !word.is_ascii() {
        return text.contains(word);
    }
    let alnum_before = |i: usize| text[..i].chars().next_back().is_some_and(char::is_alphanumeric);
    let alnum_at = |i: usize| text[i..].chars().next().is_some_and(char::is_alphanumeric);
    let mut from = 0;
    while let Some(pos) = text[from..].find(word) {
        let start = from + pos;
        let end = start + word.len();
        if !alnum_before(start)
            && ["", "s", "es", "n", "en"].iter().any(|e| text[end..].starts_with(e) && !alnum_at(end + e.len()))
        {
            return true;
        }
        // `word` starts with an ASCII byte, so `start + 1` is a character boundary.
        from = start + 1;
    }
    false
}

/// The media type a conversation's metadata describes, and the first word that says so: a
/// [`Strength::Named`] word, else (when `allow_cues`) a [`Strength::Cue`].
fn media_of(text: &str, allow_cues: bool) -> Option<(UsageType, &'static str)> {
    let pick = |strength: Strength| {
        let mut hits: BTreeMap<UsageType, (usize, &'static str)> = BTreeMap::new();
        for &(word, ty, s) in MEDIA_WORDS {
            if s == strength && has_word(text, word) {
                hits.entry(ty).or_insert((0, word)).0 += 1;
            }
        }
        let rank = |t: &UsageType| SPECIFICITY.iter().position(|s| s == t).unwrap_or(SPECIFICITY.len());
        hits.into_iter().max_by(|a, b| a.1.0.cmp(&b.1.0).then(rank(&b.0).cmp(&rank(&a.0)))).map(|(t, (_, w))| (t, w))
    };
    pick(Strength::Named).or_else(|| if allow_cues { pick(Strength::Cue) } else { None })
}

/// The metadata describes live people talking.
fn personal_text(text: &str) -> bool {
    PERSONAL_WORDS.iter().any(|w| has_word(text, w))
}

/// What a numbered title is a part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SeriesKind {
    Chapter,
    Book,
    Episode,
    TvEpisode,
    Lecture,
    Numbered,
}

impl SeriesKind {
    fn usage_type(self) -> Option<UsageType> {
        match self {
            SeriesKind::Chapter | SeriesKind::Book => Some(UsageType::Audiobook),
            SeriesKind::Episode => Some(UsageType::Podcast),
            SeriesKind::TvEpisode => Some(UsageType::TvMovie),
            SeriesKind::Lecture => Some(UsageType::Prerecorded),
            SeriesKind::Numbered => None,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            SeriesKind::Chapter => "chapter",
            SeriesKind::Book => "book",
            SeriesKind::Episode | SeriesKind::TvEpisode => "episode",
            SeriesKind::Lecture => "lecture",
            SeriesKind::Numbered => "item",
        }
    }

    /// A numbered chapter or episode is recorded media by its very name, in any language
    /// ("Capítulo 45", "Folge 12", "第3話"), as the words "chapter" and "episode" are.
    fn names_media(self) -> Option<&'static str> {
        match self {
            SeriesKind::Chapter => Some("numbered chapter"),
            SeriesKind::Episode => Some("numbered episode"),
            _ => None,
        }
    }
}

/// Words that number the items of a series, in several languages ([`fold`]ed). "Clase",
/// "sesión", "Sitzung" number live things too, so they are not here or only as plain numbering.
const SERIES_MARKERS: &[(&str, SeriesKind)] = &[
    ("chapter", SeriesKind::Chapter),
    ("chap", SeriesKind::Chapter),
    ("capitulo", SeriesKind::Chapter),
    ("kapitel", SeriesKind::Chapter),
    ("chapitre", SeriesKind::Chapter),
    ("capitolo", SeriesKind::Chapter),
    ("hoofdstuk", SeriesKind::Chapter),
    ("book", SeriesKind::Book),
    ("libro", SeriesKind::Book),
    ("buch", SeriesKind::Book),
    ("livre", SeriesKind::Book),
    ("tomo", SeriesKind::Book),
    ("episode", SeriesKind::Episode),
    ("ep", SeriesKind::Episode),
    ("episodio", SeriesKind::Episode),
    ("epizod", SeriesKind::Episode),
    ("folge", SeriesKind::Episode),
    ("aflevering", SeriesKind::Episode),
    ("puntata", SeriesKind::Episode),
    ("エピソード", SeriesKind::Episode),
    ("lecture", SeriesKind::Lecture),
    ("lesson", SeriesKind::Lecture),
    ("leccion", SeriesKind::Lecture),
    ("lektion", SeriesKind::Lecture),
    ("lecon", SeriesKind::Lecture),
    ("lezione", SeriesKind::Lecture),
    ("licao", SeriesKind::Lecture),
    ("aula", SeriesKind::Lecture),
    ("module", SeriesKind::Lecture),
    ("modulo", SeriesKind::Lecture),
    ("modul", SeriesKind::Lecture),
    ("part", SeriesKind::Numbered),
    ("parte", SeriesKind::Numbered),
    ("teil", SeriesKind::Numbered),
    ("partie", SeriesKind::Numbered),
    ("deel", SeriesKind::Numbered),
    ("track", SeriesKind::Numbered),
    ("pista", SeriesKind::Numbered),
    ("session", SeriesKind::Numbered),
    ("sesion", SeriesKind::Numbered),
    ("vol", SeriesKind::Numbered),
    ("volume", SeriesKind::Numbered),
    ("volumen", SeriesKind::Numbered),
    ("day", SeriesKind::Numbered),
    ("dia", SeriesKind::Numbered),
    ("tag", SeriesKind::Numbered),
    ("jour", SeriesKind::Numbered),
    ("giorno", SeriesKind::Numbered),
    ("no", SeriesKind::Numbered),
    ("nr", SeriesKind::Numbered),
    ("#", SeriesKind::Numbered),
];

/// Words for season, and the words for episode that may follow "season 2".
const SEASON_MARKERS: [&str; 6] = ["season", "temporada", "staffel", "saison", "seizoen", "stagione"];
const SEASON_EPISODE_MARKERS: [&str; 9] =
    ["episode", "ep", "episodio", "folge", "capitulo", "cap", "aflevering", "puntata", "chapitre"];

/// Small numbers written out, after a marker of three letters or more ("Part One", "Parte dos").
const NUMBER_WORDS: [(&str, u32); 42] = [
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("uno", 1),
    ("una", 1),
    ("dos", 2),
    ("tres", 3),
    ("cuatro", 4),
    ("cinco", 5),
    ("seis", 6),
    ("siete", 7),
    ("ocho", 8),
    ("nueve", 9),
    ("diez", 10),
    ("une", 1),
    ("deux", 2),
    ("trois", 3),
    ("quatre", 4),
    ("cinq", 5),
    ("sept", 7),
    ("huit", 8),
    ("neuf", 9),
    ("dix", 10),
    ("eins", 1),
    ("zwei", 2),
    ("drei", 3),
    ("vier", 4),
    ("funf", 5),
    ("sechs", 6),
    ("sieben", 7),
    ("acht", 8),
    ("neun", 9),
    ("zehn", 10),
];

/// A roman numeral up to 39 ("ii", "xiv"), written the canonical way.
fn roman(token: &str) -> Option<u32> {
    const ONES: [&str; 10] = ["", "i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix"];
    let tens = token.bytes().take_while(|&b| b == b'x').count();
    let ones = ONES.iter().position(|&o| o == &token[tens..])?;
    let n = (tens * 10 + ones) as u32;
    (tens <= 3 && n > 0).then_some(n)
}

/// The number right after position `at` (skipping spaces, `#`, `.`, `:`, `º`), and where it ends.
/// With `words`, after at least one separator, also a roman numeral ("Part II"; a single letter
/// only at the end or before punctuation: "Part I: ...", not "part i think") or a small number
/// written out ("Part One", "Parte dos", "Tag drei").
fn number_at(text: &str, at: usize, words: bool) -> Option<(u32, usize)> {
    let rest = &text[at..];
    let trimmed = rest.trim_start_matches([' ', '#', '.', ':', 'º', '°']);
    let skipped = rest.len() - trimmed.len();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        if digits > 6 || trimmed.as_bytes().get(digits).is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        return trimmed[..digits].parse().ok().map(|n| (n, at + skipped + digits));
    }
    if !words || skipped == 0 {
        return None;
    }
    let len = trimmed.find(|c: char| !c.is_alphanumeric()).unwrap_or(trimmed.len());
    let token = &trimmed[..len];
    let after = trimmed[len..].trim_start_matches(' ');
    let alone = after.is_empty() || after.starts_with([':', ',', '.', ')', '(', '-', '–', '—', '|']);
    let n = roman(token)
        .filter(|_| len > 1 || alone)
        .or_else(|| NUMBER_WORDS.iter().find(|(w, _)| *w == token).map(|&(_, n)| n))?;
    Some((n, at + skipped + len))
}

/// "第12章", "第3話", "第五回": chapters, episodes, lessons and volumes numbered the Japanese and
/// Chinese way, in [`fold`]ed text.
fn cjk_series(text: &str) -> Option<(SeriesKind, String, u32)> {
    for (at, _) in text.match_indices('第') {
        let rest = &text[at + '第'.len_utf8()..];
        let (mut n, mut current, mut used) = (0u32, 0u32, 0usize);
        for c in rest.chars() {
            let digit = match c {
                '0'..='9' => c as u32 - '0' as u32,
                '〇' | '零' => 0,
                '一' => 1,
                '二' | '两' => 2,
                '三' => 3,
                '四' => 4,
                '五' => 5,
                '六' => 6,
                '七' => 7,
                '八' => 8,
                '九' => 9,
                '十' | '百' => {
                    n = n.saturating_add(current.max(1) * if c == '十' { 10 } else { 100 });
                    current = 0;
                    used += c.len_utf8();
                    continue;
                }
                _ => break,
            };
            current = current.saturating_mul(10).saturating_add(digit);
            used += c.len_utf8();
        }
        let n = n.saturating_add(current);
        let kind = match rest[used..].chars().next() {
            _ if used == 0 => continue,
            Some('章') => SeriesKind::Chapter,
            Some('話' | '话' | '集') => SeriesKind::Episode,
            Some('回') => SeriesKind::Numbered,
            Some('課' | '课' | '講' | '讲' | '节' | '節') => SeriesKind::Lecture,
            Some('部' | '巻' | '卷') => SeriesKind::Book,
            _ => continue,
        };
        let stem = text[..at].trim_matches(|c: char| !c.is_alphanumeric()).to_owned();
        return Some((kind, stem, n));
    }
    None
}

/// The series a title belongs to: its kind, its stem (the [`fold`]ed text before the marker) and
/// its number. "Harry Potter - Chapter 12" is (chapter, "harry potter", 12); "Capítulo 45: La
/// traición" is (chapter, "", 45); "Show Season 2 Episode 3", "Show Temporada 2 Capítulo 3" and
/// "Show S02E03" are (TV episode, "show", 2003); "Libro 第3話" is (episode, "libro", 3).
/// "CS101 lecture — week 3" has no number after its marker, so it is not part of a series.
fn series_of(title: &str) -> Option<(SeriesKind, String, u32)> {
    let lower = fold(title);
    let stem = |end: usize| lower[..end].trim_matches(|c: char| !c.is_alphanumeric()).to_owned();
    let word_start = |i: usize| !lower[..i].chars().next_back().is_some_and(char::is_alphanumeric);
    let word_end = |i: usize| !lower[i..].chars().next().is_some_and(char::is_alphabetic);
    // "season 2 episode 3", "season 2, ep. 3", "temporada 2 capitulo 3", "staffel 2 folge 3".
    for season in SEASON_MARKERS {
        for (at, _) in lower.match_indices(season) {
            if !word_start(at) {
                continue;
            }
            let Some((season_n, end)) = number_at(&lower, at + season.len(), true) else { continue };
            let rest = lower[end..].trim_start_matches([' ', ',', '-', '·', '–', '—', ':']);
            let offset = lower.len() - rest.len();
            for marker in SEASON_EPISODE_MARKERS {
                if rest.starts_with(marker)
                    && let Some((episode, _)) = number_at(&lower, offset + marker.len(), true)
                {
                    return Some((SeriesKind::TvEpisode, stem(at), season_n * 1000 + episode.min(999)));
                }
            }
        }
    }
    // "s02e03", and "t02e03" (temporada).
    for (i, c) in lower.char_indices() {
        if !(c == 's' || c == 't') || !word_start(i) {
            continue;
        }
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let rest = &lower[i + 1..];
        let season_digits = digits(rest);
        if (1..=2).contains(&season_digits) && rest[season_digits..].starts_with('e') {
            let ep = &rest[season_digits + 1..];
            let ep_digits = digits(ep);
            let ends_word = ep[ep_digits..].chars().next().is_none_or(|b| !b.is_alphanumeric());
            if (1..=3).contains(&ep_digits) && ends_word {
                let season: u32 = rest[..season_digits].parse().ok()?;
                let episode: u32 = ep[..ep_digits].parse().ok()?;
                return Some((SeriesKind::TvEpisode, stem(i), season * 1000 + episode));
            }
        }
    }
    // The earliest marker followed by a number.
    let mut best: Option<(usize, SeriesKind, u32)> = None;
    for &(marker, kind) in SERIES_MARKERS {
        // Written-out numbers only after real words: "no one" is nobody's item one.
        let words = marker.len() >= 3;
        for (at, _) in lower.match_indices(marker) {
            let end = at + marker.len();
            let bounded = marker == "#" || !marker.is_ascii() || (word_start(at) && word_end(end));
            if !bounded || best.is_some_and(|(b, _, _)| b <= at) {
                continue;
            }
            if let Some((n, _)) = number_at(&lower, end, words) {
                best = Some((at, kind, n));
                break;
            }
        }
    }
    best.map(|(at, kind, n)| (kind, stem(at), n)).or_else(|| cjk_series(&lower))
}

/// A title's template when its numbering uses no marker word: the [`fold`]ed title with its last
/// free-standing number replaced by `#` ("Morning Drive 14" is "morning drive #"), and that
/// number. Needs four letters besides, so a bare date or number is no template.
fn template_of(title: &str) -> Option<(String, u32)> {
    let text = fold(title);
    let bytes = text.as_bytes();
    let (mut last, mut i) = (None, 0);
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let free = !text[..start].chars().next_back().is_some_and(char::is_alphabetic)
            && !text[i..].chars().next().is_some_and(char::is_alphabetic);
        if free && i - start <= 6 {
            last = Some((start, i));
        }
    }
    let (start, end) = last?;
    let n = text[start..end].parse().ok()?;
    let template = format!("{}#{}", &text[..start], &text[end..]);
    let template = template.trim_matches(|c: char| !c.is_alphanumeric() && c != '#').to_owned();
    (template.chars().filter(|c| c.is_alphabetic()).count() >= 4).then_some((template, n))
}

/// The series of [`series_of`], else the plain numbering of [`template_of`] (a series of kind
/// "numbered item" whose stem is the template).
fn series_or_template(title: &str) -> Option<(SeriesKind, String, u32)> {
    series_of(title).or_else(|| template_of(title).map(|(t, n)| (SeriesKind::Numbered, t, n)))
}

/// The names in a title a host's app repeats for every item of one show, book or client:
/// "Harbor Town: The Storm" gives "harbor town" and "the storm"; a numbered title gives its stem
/// or template.
fn title_names(title: &str) -> Vec<String> {
    let lower = fold(title);
    let mut names: Vec<String> = lower
        .split([':', '|', '(', ')', ',', '—', '–'])
        .flat_map(|s| s.split(" - "))
        .map(|s| s.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
        .filter(|s| s.chars().count() >= 6)
        .collect();
    if let Some((_, stem, _)) = series_or_template(title)
        && stem.chars().count() >= 6
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
    /// A weak sign of recorded media in a conversation that neither names media nor describes live
    /// people: its weight (1 for narration-paced single-speaker, 0.5 for a category) and why.
    weak: Option<(f64, String)>,
}

/// A numbered series consumed faster than anything live happens.
struct Binge {
    kind: SeriesKind,
    /// Indexes into the readings, by start time.
    items: Vec<usize>,
    /// Pairs of consecutive numbers, the next starting within [`BACK_TO_BACK_MS`] of the last.
    back_to_back: usize,
    /// The longest run of advancing numbers (each one to three above the last, in the order
    /// played) within any 24 hours: a series being worked through, not a queue of ticket numbers.
    per_day: usize,
    named_media: bool,
}

fn binges(readings: &[Reading<'_>]) -> Vec<Binge> {
    let mut groups: BTreeMap<(SeriesKind, String), Vec<(usize, u32)>> = BTreeMap::new();
    for (i, r) in readings.iter().enumerate() {
        if let Some((kind, stem, n)) = series_or_template(&r.conv.title) {
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
        for lo in 0..items.len() {
            let (mut last, mut run) = (items[lo].1, 1);
            for &(i, n) in &items[lo + 1..] {
                if start(i) - start(items[lo].0) > 24 * 60 * MS_PER_MINUTE {
                    break;
                }
                if n > last && n - last <= 3 {
                    (last, run) = (n, run + 1);
                }
            }
            per_day = per_day.max(run);
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

/// A weak sign of recorded media in a conversation's metadata, with its weight and reason.
fn weak_sign(c: &Conversation, minutes: f64) -> Option<(f64, String)> {
    if c.speaker_count == Some(1)
        && minutes >= NARRATION_MIN_MINUTES
        && let Some(words) = c.word_count
    {
        let pace = words as f64 / minutes;
        if pace >= NARRATION_WORDS_PER_MINUTE {
            return Some((
                1.0,
                format!("one speaker for {minutes:.0} min at {pace:.0} words a minute, like narration"),
            ));
        }
    }
    let category = fold(c.category.trim());
    MEDIA_CATEGORIES.contains(&category.as_str()).then(|| (0.5, format!("category {:?}", c.category)))
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

        let texts: Vec<String> = convs.iter().map(|c| fold(&format!("{} {}", c.title, c.overview))).collect();
        let live: Vec<bool> = texts.iter().map(|t| personal_text(t)).collect();
        let words: Vec<Option<(UsageType, &'static str)>> = convs
            .iter()
            .zip(&texts)
            .zip(&live)
            .map(|((c, t), &live)| {
                let series = series_of(&c.title);
                // "S02E03" and "Season 2 Episode 3" are how only recorded shows are numbered.
                if matches!(series, Some((SeriesKind::TvEpisode, _, _))) {
                    return Some((UsageType::TvMovie, "season and episode number"));
                }
                media_of(t, false)
                    .or_else(|| series.and_then(|(kind, _, _)| Some((kind.usage_type()?, kind.names_media()?))))
                    .or_else(|| media_of(t, !live))
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
            .zip(&live)
            .map(|((c, word), &live)| {
                let media = match word {
                    Some((ty, w)) => Some((ty, MediaSign::Word(w))),
                    None => title_names(&c.title).into_iter().find_map(|name| {
                        let (ty, id) = media_names.get(&name)?;
                        Some((*ty, MediaSign::SameName(name, (*id).to_owned())))
                    }),
                };
                let minutes = c.duration_minutes().max(1.0);
                let personal = media.is_none() && (live || c.speaker_count.is_some_and(|n| n >= 3));
                let weak = if media.is_none() && !personal { weak_sign(c, minutes) } else { None };
                Reading { conv: c, minutes, media, personal, weak }
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
        let weak_minutes: f64 = readings.iter().filter_map(|r| Some(r.minutes * r.weak.as_ref()?.0)).sum();
        let weak_score = (WEAK_WEIGHT * share(weak_minutes)).min(WEAK_SIGN_LIMIT);
        let content_score = (MEDIA_WEIGHT * media_share + series_score + weak_score
            - PERSONAL_WEIGHT * share(personal_minutes))
        .max(0.0);
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
                    format!("{} advancing numbers within 24 hours", b.per_day)
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
            let mut weak: Vec<&Reading<'_>> = readings.iter().filter(|r| r.weak.is_some()).collect();
            weak.sort_by(|a, b| b.minutes.total_cmp(&a.minutes));
            for r in weak {
                if let Some((_, why)) = &r.weak {
                    push_evidence(&mut evidence, r.conv, format!("weak sign only: {why}"));
                }
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
    fn words_match_across_spellings_and_languages() {
        let w = |text: &str, word: &str| has_word(&fold(text), word);
        assert!(w("Capítulo 45: La traición de Ricardo", "capitulo"));
        assert!(w("Ein Hörbuch für die Nacht", "horbuch"));
        assert!(w("Los episodios de la semana", "episodio"), "plural es/s");
        assert!(w("Die Patienten der Station", "patient"), "inflection en");
        assert_eq!(fold("第１２話"), "第12話", "full-width digits");
        assert!(w("進撃の巨人のオーディオブック", "オーディオブック"), "no spaces in Japanese");
        assert!(!w("Radiology follow-up", "radio") && !w("Series A funding round", "tv series"));
        assert!(!w("Cut CO2 emissions", "emision de radio"));
        // Ordinary words that only look like media stay ordinary.
        for text in ["Series A funding with the board", "Planning the episode of flu season at the clinic"] {
            let t = fold(text);
            assert!(personal_text(&t) || media_of(&t, true).is_none_or(|(ty, _)| ty == UsageType::Podcast), "{text}");
        }
        assert_eq!(media_of(&fold("Series A funding round"), true), None);
        assert_eq!(media_of(&fold("Sermón: La gracia abunda"), false), Some((UsageType::Prerecorded, "sermon")));
        assert_eq!(
            media_of(&fold("Second Half Play-by-Play: Rovers vs United"), false),
            Some((UsageType::TvMovie, "play-by-play"))
        );
        assert_eq!(
            media_of(&fold("Guided Sleep Meditation – Day 14"), false).map(|m| m.0),
            Some(UsageType::Prerecorded)
        );
        assert_eq!(
            media_of(&fold("Live commentary: Rovers vs United"), false),
            Some((UsageType::TvMovie, "live commentary"))
        );
        let author = fold("The author argues that cities shaped the modern state.");
        assert_eq!(media_of(&author, true), Some((UsageType::Audiobook, "the author")));
        assert!(!personal_text(&author));
        assert!(personal_text(&fold("Call with the author about the manuscript")), "live: the cue is silenced");
        // Cues only where allowed.
        let plot = fold("The protagonist confronts her father; the plot thickens.");
        assert_eq!(media_of(&plot, false), None);
        assert_eq!(media_of(&plot, true).map(|m| m.0), Some(UsageType::Audiobook));
    }

    #[test]
    fn series_are_read_in_many_languages() {
        let s = series_of;
        assert_eq!(s("Capítulo 45: La traición de Ricardo"), Some((SeriesKind::Chapter, String::new(), 45)));
        assert_eq!(s("Der Process – Kapitel 3"), Some((SeriesKind::Chapter, "der process".into(), 3)));
        assert_eq!(s("Chapitre IV : Le départ"), Some((SeriesKind::Chapter, String::new(), 4)));
        assert_eq!(s("Hoofdstuk 7"), Some((SeriesKind::Chapter, String::new(), 7)));
        assert_eq!(s("Mi podcast - Episodio 12"), Some((SeriesKind::Episode, "mi podcast".into(), 12)));
        assert_eq!(s("Die drei ??? Folge 201"), Some((SeriesKind::Episode, "die drei".into(), 201)));
        assert_eq!(
            s("La casa de papel Temporada 2 Capítulo 5"),
            Some((SeriesKind::TvEpisode, "la casa de papel".into(), 2005))
        );
        assert_eq!(s("Dark Staffel 1, Folge 3"), Some((SeriesKind::TvEpisode, "dark".into(), 1003)));
        assert_eq!(s("Élite T02E03"), Some((SeriesKind::TvEpisode, "elite".into(), 2003)));
        assert_eq!(s("Season Two Episode Three"), Some((SeriesKind::TvEpisode, String::new(), 2003)));
        assert_eq!(s("The Long Walk, Part II"), Some((SeriesKind::Numbered, "the long walk".into(), 2)));
        assert_eq!(s("Part One: Arrival"), Some((SeriesKind::Numbered, String::new(), 1)));
        assert_eq!(
            s("Guided Sleep Meditation – Day 14"),
            Some((SeriesKind::Numbered, "guided sleep meditation".into(), 14))
        );
        assert_eq!(s("Día 14"), Some((SeriesKind::Numbered, String::new(), 14)));
        assert_eq!(s("Lección 5"), Some((SeriesKind::Lecture, String::new(), 5)));
        assert_eq!(s("Módulo 3: Derivadas"), Some((SeriesKind::Lecture, String::new(), 3)));
        assert_eq!(s("進撃の巨人 第3話"), Some((SeriesKind::Episode, "進撃の巨人".into(), 3)));
        assert_eq!(s("三体 第十二章"), Some((SeriesKind::Chapter, "三体".into(), 12)));
        assert_eq!(s("第二十三回 定例"), Some((SeriesKind::Numbered, String::new(), 23)));
        assert_eq!(s("No one came to the meeting"), None, "no written-out numbers after \"no\"");
        assert_eq!(s("Part I think we should cut"), None, "a lone I is a pronoun unless it ends the number");
        assert_eq!(s("Book club: The Salt Road"), None);
        // Numbering without a marker word: the template.
        assert_eq!(template_of("Morning Drive 14"), Some(("morning drive #".into(), 14)));
        assert_eq!(template_of("Sprint 14 planning"), Some(("sprint # planning".into(), 14)));
        assert_eq!(template_of("CS101 notes"), None, "a number inside a word is a name");
        assert_eq!(template_of("2024-05-12"), None, "a bare date is no template");
    }

    /// A heavy abuser's usage shape: dense, long unbroken runs, speech in 20 hours of the day.
    fn abuser_shape() -> UsageShape {
        UsageShape {
            speech_ms: 20 * 60 * 50_000,
            active_minutes: 1200,
            longest_run_minutes: 400,
            hours_of_day_active: 20,
            mean_density_ms: 50_000,
        }
    }

    /// A day of items played back to back: `title` and `overview` with `{n}` the item's number.
    fn played(title: &str, overview: &str, items: usize, minutes: i64) -> Vec<Conversation> {
        (0..items)
            .map(|i| {
                let n = (i + 3).to_string();
                at(i + 1, i as i64 * (minutes + 1), minutes, &title.replace("{n}", &n), &overview.replace("{n}", &n))
            })
            .collect()
    }

    #[test]
    fn recorded_media_in_many_languages_qualifies_and_cites_it() {
        let cases: [(&str, &str, UsageType); 12] = [
            (
                "Capítulo {n}: La traición de Ricardo",
                "Ricardo engaña a Valeria y ella jura vengarse.",
                UsageType::Audiobook,
            ),
            ("Die Vermessung der Welt – Kapitel {n}", "Der Erzähler schildert Humboldts Reise.", UsageType::Audiobook),
            (
                "Elizabeth Rejects Mr. Darcy's Proposal",
                "The narrator recounts how Elizabeth refuses Darcy.",
                UsageType::Audiobook,
            ),
            (
                "Le Monde en Questions – épisode {n}",
                "Dans cet épisode, une historienne raconte Versailles.",
                UsageType::Podcast,
            ),
            (
                "Morning Drive: Traffic, Weather and Listener Calls",
                "The host tells listeners about a crash on the ring road.",
                UsageType::Podcast,
            ),
            (
                "Sermon: Grace Abounds, part {n}",
                "The preacher tells the congregation about grace.",
                UsageType::Prerecorded,
            ),
            (
                "Predigt zum Sonntag {n}",
                "Der Pfarrer spricht über Vergebung; eine Predigt ohne Unterbrechung.",
                UsageType::Prerecorded,
            ),
            (
                "Guided Sleep Meditation – Day {n}",
                "A calm voice counts breaths until the track ends.",
                UsageType::Prerecorded,
            ),
            (
                "Second Half Play-by-Play: Rovers vs United",
                "The commentator calls every pass of the second half.",
                UsageType::TvMovie,
            ),
            (
                "Amor Perfeito – Capítulo {n}",
                "A novela continua: Marê descobre o segredo da família.",
                UsageType::Audiobook,
            ),
            ("進撃の巨人 第{n}話", "エレンたちが壁の外へ出る。", UsageType::Podcast),
            (
                "Curso de Python – Módulo {n}",
                "Aula gravada de um curso online sobre listas e dicionários.",
                UsageType::Prerecorded,
            ),
        ];
        for (title, overview, usage_type) in cases {
            let convs = played(title, overview, 16, 55);
            let ids: BTreeSet<String> = convs.iter().map(|c| c.conversation_id.clone()).collect();
            let v = HeuristicClassifier.classify(&input(convs, abuser_shape())).unwrap();
            assert!(v.misuse_score >= 0.7, "{title}: {v:?}");
            assert_eq!(v.usage_type, usage_type, "{title}: {v:?}");
            assert!(v.evidence.iter().all(|e| ids.contains(&e.conversation_id)), "{title}: {v:?}");
            assert!(
                v.evidence.iter().any(|e| e.reason.starts_with("title or overview says")),
                "{title}: a qualifying verdict cites a conversation that describes recorded media: {v:?}"
            );
        }
    }

    #[test]
    fn live_heavy_use_in_many_languages_does_not_qualify() {
        // A week of a therapist, a teacher, a court reporter and a manager in several languages,
        // numbered, uniform, all day, with every shape signal the meter can give, and now and then
        // a telenovela or a film with the family.
        let week: Vec<(&str, &str)> = vec![
            ("Session {n} with client", "Weekly therapy session with a client about anxiety at work."),
            ("Sesión {n} con el cliente", "Sesión de terapia con la clienta; hablamos de su ansiedad."),
            ("Clase {n}", "Clase de matemáticas con los alumnos; preguntas sobre el examen."),
            ("MATH 221 Lecture {n}", "The professor took questions from students about eigenvalues."),
            ("Deposition Day {n}", "Deposition of the witness with both attorneys present."),
            ("Sitzung {n} mit dem Vorstand", "Besprechung mit dem Vorstand über das Budget."),
            ("Réunion hebdomadaire n° {n}", "Réunion d'équipe : les priorités de la semaine."),
            ("Reunião {n} com o cliente", "Reunião com o cliente sobre o contrato."),
            ("Riunione di progetto {n}", "Riunione con il team sul rilascio."),
            ("第{n}回 定例会議", "チームの定例会議。"),
            ("Aula {n} – Turma B", "Aula presencial com os alunos sobre frações."),
            ("Board meeting part {n}", "Board meeting: financials and the hiring plan."),
        ];
        let mut convs = Vec::new();
        for day in 0..7i64 {
            for (slot, (title, overview)) in week.iter().enumerate() {
                let n = (10 + day * 2 + slot as i64 % 2).to_string();
                let id = convs.len() + 1;
                let start = day * 1440 + 7 * 60 + slot as i64 * 61;
                convs.push(at(id, start, 60, &title.replace("{n}", &n), overview));
            }
        }
        let id = convs.len() + 1;
        convs.push(at(
            id,
            3 * 1440 + 20 * 60,
            45,
            "Capítulo 45 de la novela con la abuela",
            "Vimos la telenovela en familia.",
        ));
        convs.push(at(
            id + 1,
            5 * 1440 + 20 * 60,
            120,
            "Noche de película en familia",
            "Vimos una película con los niños.",
        ));
        let v = HeuristicClassifier.classify(&input(convs.clone(), max_shape())).unwrap();
        assert!(v.misuse_score < 0.7, "{v:?}");
        // Each kind alone, too: the whole week of one person.
        for (title, overview) in &week {
            let convs: Vec<_> = (0..40)
                .map(|i| {
                    let day = i as i64 / 6;
                    let start = day * 1440 + 8 * 60 + (i as i64 % 6) * 61;
                    at(i + 1, start, 60, &title.replace("{n}", &(10 + i).to_string()), overview)
                })
                .collect();
            let v = HeuristicClassifier.classify(&input(convs, max_shape())).unwrap();
            assert!(v.misuse_score < 0.7, "{title}: {v:?}");
        }
    }

    #[test]
    fn narration_cues_are_silenced_by_live_people() {
        let club = at(1, 0, 90, "Book club", "Book club with friends: we argued about the protagonist and the plot.");
        let story = at(2, 200, 90, "Elizabeth and Darcy", "The protagonist confronts Darcy; the plot thickens.");
        let v = HeuristicClassifier.classify(&input(vec![club.clone()], UsageShape::default())).unwrap();
        assert_eq!(v.misuse_score, 0.0, "{v:?}");
        let v = HeuristicClassifier.classify(&input(vec![story], UsageShape::default())).unwrap();
        assert!((v.misuse_score - MEDIA_WEIGHT).abs() < 1e-9, "{v:?}");
        assert!(v.evidence[0].reason.contains("protagonist"), "{v:?}");
        // A named medium counts beside live people: a movie watched with friends is a movie.
        let film = at(3, 400, 90, "Movie night with friends", "Watched a film together.");
        let v = HeuristicClassifier.classify(&input(vec![club, film], UsageShape::default())).unwrap();
        assert!(v.evidence.iter().any(|e| e.conversation_id == "c3"), "{v:?}");
    }

    #[test]
    fn narration_paced_single_speakers_and_media_categories_are_weak_signs_only() {
        let narrated = |i: usize, title: &str, overview: &str| Conversation {
            speaker_count: Some(1),
            word_count: Some(60 * 150),
            category: "entertainment".into(),
            ..at(i, i as i64 * 61, 60, title, overview)
        };
        // A week of neutral titles read by one voice at narration pace, in the entertainment
        // category, with every shape signal: below the threshold, and cited as weak signs only.
        let titles =
            ["Elizabeth Rejects Mr. Darcy's Proposal", "A Letter from Pemberley", "Lydia Elopes", "The Return"];
        let convs: Vec<_> = (0..60).map(|i| narrated(i + 1, titles[i % 4], "Elizabeth and Darcy quarrel.")).collect();
        let v = HeuristicClassifier.classify(&input(convs.clone(), max_shape())).unwrap();
        assert!(v.misuse_score < 0.7, "{v:?}");
        assert!((v.misuse_score - SHAPE_SCORE_LIMIT - WEAK_SIGN_LIMIT).abs() < 1e-9, "{v:?}");
        assert!(v.evidence.iter().all(|e| e.reason.starts_with("weak sign only")), "{v:?}");
        // The same voice with every other overview saying "narrator" is an audiobook (one in four
        // is not enough: 0.64).
        let mut said: Vec<_> = convs.clone();
        for c in said.iter_mut().step_by(2) {
            c.overview = "The narrator recounts how Elizabeth refuses Darcy.".into();
        }
        let v = HeuristicClassifier.classify(&input(said, abuser_shape())).unwrap();
        assert!(v.misuse_score >= 0.7, "{v:?}");
        assert!(v.evidence[0].reason.contains("narrator"), "{v:?}");
        // A lecturer speaks alone at that pace too; a live lecture is no weak sign at all.
        let lecture = Conversation {
            category: "education".into(),
            ..narrated(1, "Lecture", "Live lecture; students asked questions.")
        };
        let v = HeuristicClassifier.classify(&input(vec![lecture], UsageShape::default())).unwrap();
        assert_eq!(v.misuse_score, 0.0, "{v:?}");
        // Short, slow or several voices: no sign.
        for c in [
            Conversation { word_count: Some(60 * 80), category: String::new(), ..convs[0].clone() },
            Conversation { speaker_count: Some(2), category: String::new(), ..convs[0].clone() },
            Conversation { word_count: None, category: String::new(), ..convs[0].clone() },
        ] {
            let v = HeuristicClassifier.classify(&input(vec![c], UsageShape::default())).unwrap();
            assert_eq!(v.misuse_score, 0.0, "{v:?}");
        }
    }

    #[test]
    fn shape_numbering_and_weak_signs_together_never_qualify() {
        let convs: Vec<_> = (0..200)
            .map(|i| Conversation {
                speaker_count: Some(1),
                word_count: Some(30 * 160),
                category: "religion".into(),
                ..at(i + 1, i as i64 * 31, 30, &format!("Untitled part {}", i + 1), "Continuous speech.")
            })
            .collect();
        let sessions: Vec<_> = (0..300).map(|i| playback(i, 10_000 + i as i64 * 31, 30)).collect();
        let v = HeuristicClassifier.classify(&with_sessions(convs, max_shape(), sessions)).unwrap();
        assert!(v.misuse_score < 0.7, "{v:?}");
        assert!(
            (v.misuse_score - (SHAPE_SCORE_LIMIT + UNNAMED_SERIES_LIMIT + WEAK_SIGN_LIMIT)).abs() < 1e-9,
            "every non-media signal at its cap: {v:?}"
        );
    }

    #[test]
    fn ticket_numbers_are_no_series_but_advancing_numbers_are() {
        // Thirty support calls a day, each with a ticket number from a shared queue: no series.
        let tickets: Vec<_> = (0..30)
            .map(|i| at(i + 1, i as i64 * 16, 15, &format!("Ticket #{} — login problems", 48_000 + i * 37), ""))
            .collect();
        let readings: Vec<_> = tickets
            .iter()
            .map(|c| Reading { conv: c, minutes: 15.0, media: None, personal: false, weak: None })
            .collect();
        assert!(binges(&readings).is_empty());
        // The same day as numbers one to three apart: a series worked through.
        let series: Vec<_> =
            (0..30).map(|i| at(i + 1, i as i64 * 40, 15, &format!("Morning Drive {}", 100 + i * 2), "")).collect();
        let readings: Vec<_> = series
            .iter()
            .map(|c| Reading { conv: c, minutes: 15.0, media: None, personal: false, weak: None })
            .collect();
        let found = binges(&readings);
        assert_eq!(found.len(), 1);
        assert!(found[0].per_day >= 3 && found[0].back_to_back == 0, "{}", found[0].per_day);
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
