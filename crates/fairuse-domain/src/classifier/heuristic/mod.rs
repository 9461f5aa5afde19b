//! The offline default classifier: recipe rules, usage shape and conversation metadata, with
//! evidence.
//!
//! The heuristic is conservative by construction: usage shape and volume alone (the meter's minute
//! buckets and the gateway's stream sessions) can add at most [`SHAPE_SCORE_LIMIT`] (< 0.7, so
//! they never qualify on their own), numbered series whose metadata names no recorded media at
//! most [`UNNAMED_SERIES_LIMIT`] more and weak signs (narration-paced single speakers, media
//! categories) at most [`WEAK_SIGN_LIMIT`] more (all together still < 0.7); crossing the threshold
//! needs conversations whose title or overview describes recorded media, in any of several
//! languages, and those are cited as evidence a reviewer can check.

mod series;
mod words;

use std::collections::BTreeMap;

use serde::Serialize;

use super::recipes::select_recipes_with_sessions;
use super::{
    Classifier, ClassifierError, ClassifierInput, Conversation, Evidence, MAX_EVIDENCE, Recipe, UsageShape, UsageType,
    Verdict,
};
use crate::sessions::StreamSession;
use crate::time::MS_PER_MINUTE;
use series::{SeriesKind, series_of, series_or_template, title_names};
use words::{MEDIA_CATEGORIES, fold, media_of, personal_text};

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
        Ok(self.explain(input).verdict)
    }
}

/// One part of a heuristic score: what it is, what it added, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub name: &'static str,
    pub score: f64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A heuristic verdict with the signals that made its score, for diagnostics (`fairuse eval
/// --verdicts`): the verdict alone says what was decided, the signals say how close it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub verdict: Verdict,
    pub signals: Vec<Signal>,
}

impl HeuristicClassifier {
    /// The verdict and the signals behind it; [`Classifier::classify`] is its verdict.
    pub fn explain(&self, input: &ClassifierInput) -> Explanation {
        let mut signals = Vec::new();
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
        let mut sig = |name: &'static str, score: f64, detail: String| {
            signals.push(Signal { name, score: (score * 1000.0).round() / 1000.0, detail })
        };
        sig("shape", shape_score, String::new());
        sig("media", MEDIA_WEIGHT * media_share, format!("{:.0} of {total:.0} min", media_minutes));
        sig(
            "series",
            series_score,
            format!("named {named_binge_minutes:.0} min, unnamed {unnamed_binge_minutes:.0} min"),
        );
        sig("weak", weak_score, String::new());
        sig("personal", -PERSONAL_WEIGHT * share(personal_minutes), format!("{personal_minutes:.0} min"));
        let verdict = Verdict {
            misuse_score: (score * 1000.0).round() / 1000.0,
            usage_type,
            confidence: (confidence * 1000.0).round() / 1000.0,
            evidence,
            model: "heuristic".into(),
            prompt_version: HEURISTIC_VERSION.into(),
            recipes,
            demoted: None,
        }
        .clamped();
        Explanation { verdict, signals }
    }
}

#[cfg(test)]
mod tests;
