//! The offline default classifier: recipe rules, usage shape, the structure of the conversations
//! and what their metadata describes, with evidence.
//!
//! Conservative by construction: usage shape and volume alone (the meter's minute buckets and the
//! gateway's stream sessions) add at most [`SHAPE_SCORE_LIMIT`], and the structure of the
//! conversations (numbered series, back-to-back chains, continuous speech, day-long coverage,
//! media categories) at most [`STRUCTURE_LIMIT`] more, and only beside a conversation whose
//! metadata describes content; the two together stay below 0.7, so a qualifying verdict always
//! cites conversations whose own metadata (title, overview, or the category the host filed them
//! under) describes recorded media.

mod series;
mod structure;
mod words;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use super::recipes::select_recipes_with_sessions;
use super::{
    Classifier, ClassifierError, ClassifierInput, Conversation, Evidence, MAX_EVIDENCE, Recipe, UsageShape, UsageType,
    Verdict,
};
use crate::sessions::StreamSession;
use series::{SeriesKind, series_of, title_names};
use structure::{
    Continuity, PLAYED_GAP_MS, binges, busiest_day_minutes, chain_within, continuity, longest_chain, played_runs,
    played_through, words_per_minute,
};
use words::{content_cues, first_person, fold, media_category, media_of, names_others, personal_text};

pub const HEURISTIC_VERSION: &str = "heuristic-v26";
/// The most that usage shape and volume can contribute: below 0.7, so never a qualifying verdict alone.
pub const SHAPE_SCORE_LIMIT: f64 = 0.45;
/// The most that the structure of the conversations can add (series, chains, continuous speech,
/// day-long coverage, categories), and only beside content: with [`SHAPE_SCORE_LIMIT`] still
/// below 0.7, so a qualifying verdict always cites a conversation whose metadata describes
/// recorded media.
pub const STRUCTURE_LIMIT: f64 = 0.2;
const _: () = assert!(SHAPE_SCORE_LIMIT + STRUCTURE_LIMIT < 0.7, "shape and structure alone must never qualify");

/// Weight of the time-weighted mean of the conversations' content strength (1 for a conversation
/// that names the medium, 0.8 for two content cues, ...).
const CONTENT_WEIGHT: f64 = 0.65;
/// Weight of the share of conversation time that describes live people or the user's own work.
const LIVE_WEIGHT: f64 = 0.35;
/// Content strength of a conversation that names recorded media.
const NAMED: f64 = 1.0;
/// ... with one content cue, and with two or more (or one and continuous speech).
const ONE_CUE: f64 = 0.45;
const CUES: f64 = 0.8;
/// ... whose title repeats the name or numbered template of a conversation that names media.
const SAME_NAME: f64 = 0.8;
/// ... in continuous speech, describing nothing, right next to one that describes media (at
/// most the strength of that one: one whose category alone says media lends one cue, and only
/// while the meter measures narration density).
const SAME_STREAM: f64 = 0.6;
/// ... whose title is a numbered item played straight after the one before it
/// ([`structure::played_through`]), while the meter measures narration density.
const PLAYED_ITEM: f64 = 0.6;
/// Mean speech per active minute at which the meter says narration, not conversation (70 %).
const DENSE_MS: i64 = 42_000;
/// "Right next to": the next conversation starts within this long of the last one's end.
const STREAM_GAP_MS: i64 = 5 * crate::time::MS_PER_MINUTE;
/// Structure weights (all capped together by [`STRUCTURE_LIMIT`]).
const CONTINUOUS_WEIGHT: f64 = 0.1;
const SERIES_WEIGHT: f64 = 0.1;
const CATEGORY_WEIGHT: f64 = 0.05;
/// A chain of back-to-back conversations this long (minutes), and what it adds.
const CHAIN_MINUTES: [(f64, f64); 2] = [(90.0, 0.05), (150.0, 0.1)];
/// This much conversation in 24 hours is more than a working day. The 24 hours slide, so they can
/// hold one whole shift and the start of the next (a 9 h day and an early start make 12 h with no
/// one streaming): 14 h, not 12.
const DAY_MINUTES: f64 = 14.0 * 60.0;
const DAY_WEIGHT: f64 = 0.1;
/// The least shape and structure (uncapped) that a qualifying verdict needs besides content: a
/// sermon or an episode named in one conversation is a live pastor's or host's day as well, until
/// the usage looks like playback.
const PLAYBACK_SUPPORT: f64 = 0.2;
/// ... when the meter does not measure narration density: people recording, preaching or
/// teaching live fill under 70 % of their minutes, and their named episodes, numbered sessions
/// and back-to-back bookings must not carry them over the line (a live podcast host's day).
const PLAYBACK_SUPPORT_SPARSE: f64 = 0.3;
/// The least the meter's own part (shape) must add to a qualifying verdict when it measured
/// minutes: narration density with one more sign (two unbroken hours, speech around the clock, a
/// recipe's pattern), or more. Structure read from the conversations cannot stand in for it.
const METER_SUPPORT: f64 = 0.2;
/// Where a verdict without that support stops: under the qualifying score of the shipped policy.
const BELOW_QUALIFYING: f64 = 0.69;
/// Gateway sessions that sound like playback ([`StreamSession::playback_like`]) before the shape
/// score counts them: one could be a debate that never drew breath; two are a habit.
const PLAYBACK_SESSIONS: usize = 2;
/// What those sessions add to the shape score (still capped by [`SHAPE_SCORE_LIMIT`]).
const PLAYBACK_WEIGHT: f64 = 0.1;

/// The offline default: recipe rules, usage shape, conversation structure and metadata, with
/// evidence.
///
/// The score is `shape + structure + content - live`:
/// * `shape` (at most [`SHAPE_SCORE_LIMIT`]) comes from the meter, the gateway's stream sessions
///   and the recipes: dense speech (70 % of every active minute), long unbroken runs (2 h, 6 h),
///   both at once, speech around the clock, recipe rules, and two or more gateway sessions that
///   sound like playback. Volume and shape say "a lot", never "what".
/// * `content` is `0.65 x` the time-weighted mean strength of what each conversation's metadata
///   describes, read lowercase without accents in English, Spanish, Portuguese, French, German,
///   Italian, Russian and Japanese (and the main words for media in Korean, Chinese, Thai,
///   Vietnamese, Indonesian, Filipino, Hindi and Arabic; a broadcast, television and a channel in
///   some forty languages, a video, a documentary and a cartoon, as cues, in about as many; an
///   episode, a podcast, a narrator, a sermon and the news in more scripts, and streaming
///   services by name): 1 when it names the medium (audiobook, narrator, podcast, episode,
///   broadcast, commentator, listeners, telenovela, sermon, guided meditation, a recorded voice,
///   message or announcement, a recording played over and over (a shop's loudspeaker; adverts
///   and jingles are cues), the replay of a webcast or conference call and a broadcaster's
///   catch-up service, a numbered chapter or episode in any of a dozen scripts ("Folge 12",
///   "حلقة 12", "Bölüm 12", "ตอนที่ 5"), "S02E03"), 0.8 when it describes content with two
///   different cues (a story told: plot, characters, "recounts"; a broadcast: presenter, guests,
///   headlines, studio; a match: goals, penalty, the crowd; a service or guided session; an
///   overview naming two other people or places) or one cue and continuous speech, 0.45 for one
///   cue; a category host apps file recorded media under ("entertainment", "religion",
///   "sports", "podcast", "news", in any language of the conversation) is a cue of its own,
///   beside the words or alone; 0.8 when its title repeats the show, book or numbered template of a conversation
///   that names media, 0.6 in continuous speech in one unbroken stream with a conversation
///   whose words describe media (0.45 with one only its category calls media, at narration
///   density); 0 otherwise, and 0 when its overview says the user took part ("we recorded
///   episode 12", "I preached").
/// * `structure` (at most [`STRUCTURE_LIMIT`], and only when `content` is not 0) reads no words:
///   continuous speech (105 words a minute or more, pauses included, for 15 minutes or more: one
///   narrator or a broadcast; people talking with each other stay at 40-100; and, at narration
///   density, clips played one after another: three or more items each starting within two
///   minutes of the last, a quarter of an hour together at that pace or in one voice), chains of
///   back-to-back conversations (90 and 150 minutes with gaps under 5), more than 14 hours of
///   conversation in a day, numbered series worked through faster than anything live happens
///   (titles sharing a template with an advancing counter, back to back or three in a day), and
///   media categories.
/// * `live` is `0.35 x` the share of time in conversations that name no media and describe live
///   people or the user's own work: meetings, calls, classes, patients, clients in several
///   languages, the first person ("we agreed", "hablamos", "wir haben"), outcomes ("next steps"),
///   or three speakers or more at a conversational pace; in a clip among clips at narration
///   density only the first person says live (the children a kids' video is for are heard, not
///   in the room).
///
/// Words say what, not how much: a verdict whose shape and structure together (uncapped) stay
/// under 0.2 (0.3 under narration density) stops at 0.69, whatever its content (one named sermon
/// in a day of dense minutes is a live pastor's Sunday too), and so does one whose shape alone
/// stays under 0.2 once the meter measured minutes (a live radio host's morning).
///
/// Numbering alone is not suspicious (a live course has lecture 14 on Monday and 15 on Wednesday;
/// "Weekly sync 12"), nor is volume (a manager's day of meetings), nor speech at night (a night
/// shift), nor one voice at length (a lecturer). Every conversation that raised the score is cited
/// as evidence with the reason.
#[derive(Debug, Clone, Default)]
pub struct HeuristicClassifier;

/// One conversation as the heuristic reads it.
struct Reading<'a> {
    conv: &'a Conversation,
    minutes: f64,
    /// How strongly its metadata describes recorded media (0 to 1), the type it points at, and why.
    strength: f64,
    usage_type: Option<UsageType>,
    why: String,
    /// It names media itself (not only by repeating another's name).
    named: bool,
    /// It names no media and describes live people or the user's own work.
    live: bool,
    continuous: bool,
    media_category: bool,
}

fn push_evidence(evidence: &mut Vec<Evidence>, c: &Conversation, reason: String) {
    if evidence.len() < MAX_EVIDENCE && !evidence.iter().any(|e| e.conversation_id == c.conversation_id) {
        evidence.push(Evidence::conversation(c.conversation_id.clone(), c.title.clone(), reason));
    }
}

/// Reads one conversation's metadata and pace; `dense` is the meter measuring narration density
/// over the lookback, where several voices at a slow pace are a cast, not a meeting; `continuous`
/// how its speech is continuous ([`Continuity::Clip`] counts only at narration density).
fn read(c: &Conversation, dense: bool, continuity: Continuity) -> Reading<'_> {
    let clip = dense && continuity == Continuity::Clip;
    let continuous = clip || continuity == Continuity::Own;
    let text = fold(&format!("{} {}", c.title, c.overview));
    let overview = fold(&c.overview);
    let minutes = c.duration_minutes().max(1.0);
    let own_work = first_person(&overview, &c.overview);
    // A clip among clips at a narrator's pace, at narration density: the people its words name
    // ("for children", patients, a meeting) are what is heard, not who is in the room, and only
    // the user's own part says live. A conversation continuous on its own may be a live speech
    // to students, and keeps what its words say.
    let live_words = (personal_text(&text) && !clip) || own_work;
    let series = series_of(&c.title);
    // "S02E03" and "Season 2 Episode 3" are how only recorded shows are numbered.
    let named = if matches!(series, Some((SeriesKind::TvEpisode, _, _))) {
        Some((UsageType::TvMovie, "season and episode number"))
    } else {
        media_of(&text, false)
            .or_else(|| series.and_then(|(kind, _, _)| Some((kind.usage_type()?, kind.names_media()?))))
    };
    let pace = words_per_minute(c).map_or(String::new(), |w| format!(", {w:.0} words a minute"));
    let conversational =
        !dense && c.speaker_count.is_some_and(|n| n >= 3) && words_per_minute(c).is_none_or(|w| w < 100.0);
    let category_type = media_category(&c.category);
    let media_category = category_type.is_some();
    let mut r = Reading {
        conv: c,
        minutes,
        strength: 0.0,
        usage_type: None,
        why: String::new(),
        named: false,
        live: false,
        continuous,
        media_category,
    };
    // The user's own part in it ("we recorded episode 12 with our guest", "I preached on
    // grace") makes even a named medium their own work: a host recording, a pastor preaching.
    // Families, friends and classes live in stories too, so only the first person and the
    // outcomes of work count against a named medium.
    if let Some((ty, word)) = named.filter(|_| !own_work) {
        r.named = true;
        r.usage_type = Some(ty);
        r.strength = NAMED;
        r.why = format!("title or overview says {word:?}: recorded media, {minutes:.0} min{pace}");
        return r;
    }
    if live_words || conversational {
        r.live = true;
        return r;
    }
    let mut cues: Vec<(&str, UsageType)> = content_cues(&text);
    cues.dedup_by_key(|c| c.0);
    let names = names_others(&c.title, &c.overview);
    let words = cues.len() + usize::from(names);
    if words == 0 {
        // Nothing in its words, but the host filed it under recorded media's category
        // ("entertainment", "religion", "sports"): in any language, that is one content cue.
        if media_category {
            r.strength = ONE_CUE;
            r.usage_type = category_type;
            r.why =
                format!("category {:?}, recorded media's, and nothing live: {minutes:.0} min{pace}", c.category.trim());
        }
        return r;
    }
    let mut votes: BTreeMap<UsageType, usize> = BTreeMap::new();
    for (_, t) in &cues {
        *votes.entry(*t).or_default() += 1;
    }
    r.usage_type = votes
        .into_iter()
        .max_by_key(|(t, n)| (*n, std::cmp::Reverse(*t)))
        .map(|(t, _)| t)
        .or(category_type.filter(|t| *t != UsageType::Unknown));
    let mut said: Vec<String> = cues.iter().take(3).map(|(w, _)| format!("{w:?}")).collect();
    if names {
        said.push("names other people or places".into());
    }
    // The host's media category is a cue of its own, read apart from the words: one word cue
    // filed under "entertainment" is two things saying content.
    if media_category {
        said.push(format!("category {:?}", c.category.trim()));
    }
    let count = words + usize::from(media_category);
    r.strength = if count >= 2 || continuous { CUES } else { ONE_CUE };
    r.why = format!(
        "describes content ({}), not live people{}: {minutes:.0} min{pace}",
        said.join(", "),
        if continuous { ", in continuous speech" } else { "" }
    );
    r
}

impl HeuristicClassifier {
    /// The shape part of the score, at most [`SHAPE_SCORE_LIMIT`].
    fn shape_score(shape: &UsageShape, recipes: &[Recipe], sessions: &[StreamSession]) -> f64 {
        let mut score = 0.05 * recipes.len() as f64;
        if sessions.iter().filter(|s| s.playback_like()).count() >= PLAYBACK_SESSIONS {
            score += PLAYBACK_WEIGHT; // measured unbroken speech, session after session
        }
        if shape.mean_density_ms >= DENSE_MS {
            score += 0.1; // 70 % of every active minute is speech: narration, not conversation
        }
        if shape.longest_run_minutes >= 120 {
            score += 0.1; // two hours without a silent minute
        }
        if shape.longest_run_minutes >= 360 {
            score += 0.05;
        }
        if shape.mean_density_ms >= DENSE_MS && shape.longest_run_minutes >= 120 {
            score += 0.1; // both at once: two hours of narration-density speech without a pause
        }
        if shape.hours_of_day_active >= 20 {
            score += 0.1; // speech in almost every hour of the day, sleep hours included
        }
        score.min(SHAPE_SCORE_LIMIT)
    }
}

#[async_trait]
impl Classifier for HeuristicClassifier {
    fn name(&self) -> &str {
        "heuristic"
    }

    async fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        Ok(self.classify_now(input))
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
    /// The verdict, synchronously (the heuristic cannot fail): [`HeuristicClassifier::explain`]'s
    /// verdict, and what [`Classifier::classify`] returns.
    pub fn classify_now(&self, input: &ClassifierInput) -> Verdict {
        self.explain(input).verdict
    }

    /// The verdict and the signals behind it; [`HeuristicClassifier::classify_now`] is its verdict.
    pub fn explain(&self, input: &ClassifierInput) -> Explanation {
        let convs = &input.conversations;
        let recipes = select_recipes_with_sessions(convs, &input.sessions);
        // The meter's longest run breaks at every silent minute, and a player moving to the next
        // item leaves one: at narration density, items following each other within two minutes
        // are one run of playback too (people walking to the next meeting leave more).
        let mut shape = input.shape.clone();
        if shape.mean_density_ms >= DENSE_MS {
            let (_, played_minutes) = chain_within(convs, &vec![true; convs.len()], PLAYED_GAP_MS);
            shape.longest_run_minutes = shape.longest_run_minutes.max(played_minutes as i64);
        }
        let shape_score = Self::shape_score(&shape, &recipes, &input.sessions);
        let dense = input.shape.mean_density_ms >= DENSE_MS;
        let runs = played_runs(convs);
        let mut readings: Vec<Reading<'_>> =
            convs.iter().zip(continuity(convs, &runs)).map(|(c, how)| read(c, dense, how)).collect();

        // A title that repeats the show, book or numbered template of a conversation that names
        // media is that media too.
        let mut media_names: BTreeMap<String, (UsageType, String)> = BTreeMap::new();
        for r in readings.iter().filter(|r| r.named && r.strength >= NAMED) {
            for name in title_names(&r.conv.title) {
                media_names
                    .entry(name)
                    .or_insert((r.usage_type.unwrap_or(UsageType::Unknown), r.conv.conversation_id.clone()));
            }
        }
        for r in readings.iter_mut().filter(|r| r.strength < SAME_NAME && !r.live) {
            if let Some((name, (ty, id))) =
                title_names(&r.conv.title).into_iter().find_map(|n| media_names.get(&n).map(|v| (n, v.clone())))
            {
                r.strength = SAME_NAME;
                r.usage_type = Some(ty);
                r.why = format!(
                    "same name {name:?} as {id}, whose metadata describes recorded media; {:.0} min",
                    r.minutes
                );
            }
        }

        // A numbered item played straight after the one before it ("Lesson 7", then "Lesson 8"
        // within two minutes, in any script) says by its own title that it is one of a series
        // being played through; live numbered things (classes, calls, visits) have people walking
        // between them. Only while the meter measures narration density (live talk does not
        // fill 70 % of every minute), and only in a run that holds a conversation whose own
        // words describe media: numbering alone never makes a verdict.
        if dense {
            let described: std::collections::BTreeSet<usize> =
                readings.iter().zip(&runs).filter(|(r, _)| r.strength > 0.0).map(|(_, run)| *run).collect();
            for ((r, played), run) in readings.iter_mut().zip(played_through(convs, &runs)).zip(&runs) {
                if played && described.contains(run) && !r.live && r.strength < PLAYED_ITEM {
                    r.strength = PLAYED_ITEM;
                    r.usage_type = r.usage_type.or_else(|| series_of(&r.conv.title).and_then(|s| s.0.usage_type()));
                    r.why = format!(
                        "numbered item played straight after the one before it, at narration density; {:.0} min",
                        r.minutes
                    );
                }
            }
        }

        // Conversations in continuous speech that describe nothing themselves, in one unbroken
        // stream (each starting within minutes of the last one's end, nothing live between) with a
        // conversation that describes media, are most likely the same stream cut into items.
        let mut order: Vec<usize> = (0..readings.len()).collect();
        order.sort_by_key(|&i| readings[i].conv.started_at);
        let mut streams: Vec<Vec<usize>> = Vec::new();
        let mut last_end = i64::MIN;
        for i in order {
            let r = &readings[i];
            if r.live {
                last_end = i64::MIN;
                continue;
            }
            match streams.last_mut() {
                Some(s) if last_end != i64::MIN && r.conv.started_at.millis() - last_end <= STREAM_GAP_MS => s.push(i),
                _ => streams.push(vec![i]),
            }
            last_end = r.conv.finished_at.millis();
        }
        for stream in &streams {
            // The anchor's own strength bounds what it lends: a conversation that only its
            // category calls media lends one cue, and only while the meter measures narration.
            let Some(&anchor) = stream
                .iter()
                .filter(|&&i| readings[i].strength >= CUES || (dense && readings[i].strength >= ONE_CUE))
                .max_by(|&&a, &&b| readings[a].strength.total_cmp(&readings[b].strength))
            else {
                continue;
            };
            let (id, ty) = (readings[anchor].conv.conversation_id.clone(), readings[anchor].usage_type);
            let lent = SAME_STREAM.min(readings[anchor].strength);
            for &i in stream {
                let r = &mut readings[i];
                if r.strength == 0.0 && r.continuous {
                    r.strength = lent;
                    r.usage_type = ty;
                    r.why = format!(
                        "continuous speech in one stream with {id}, which describes recorded media; {:.0} min",
                        r.minutes
                    );
                }
            }
        }
        let total: f64 = readings.iter().map(|r| r.minutes).sum();
        let share = |minutes: f64| if total > 0.0 { minutes / total } else { 0.0 };
        let content_minutes: f64 = readings.iter().map(|r| r.strength * r.minutes).sum();
        let live_minutes: f64 = readings.iter().filter(|r| r.live).map(|r| r.minutes).sum();
        let content = CONTENT_WEIGHT * share(content_minutes);
        let live = LIVE_WEIGHT * share(live_minutes);

        // Structure, read without words.
        let continuous_minutes: f64 = readings.iter().filter(|r| r.continuous && !r.live).map(|r| r.minutes).sum();
        let eligible: Vec<bool> = readings.iter().map(|r| !r.live).collect();
        let (chain, chain_minutes) = longest_chain(convs, &eligible);
        let chain_score =
            CHAIN_MINUTES.iter().filter(|(m, _)| chain_minutes >= *m).map(|(_, w)| *w).fold(0.0, f64::max);
        let day_minutes = busiest_day_minutes(convs);
        let day_score = if day_minutes >= DAY_MINUTES { DAY_WEIGHT } else { 0.0 };
        let series = binges(convs);
        let series_minutes: f64 = series
            .iter()
            .flat_map(|b| b.items.iter())
            .filter(|&&i| !readings[i].live)
            .map(|&i| readings[i].minutes)
            .sum();
        let category_minutes: f64 = readings.iter().filter(|r| r.media_category && !r.live).map(|r| r.minutes).sum();
        let structure_parts = [
            (
                "continuous speech",
                CONTINUOUS_WEIGHT * share(continuous_minutes),
                format!("{continuous_minutes:.0} min"),
            ),
            ("back-to-back chain", chain_score, format!("{chain_minutes:.0} min in {} conversations", chain.len())),
            ("day coverage", day_score, format!("{:.1} h of conversation in 24 h", day_minutes / 60.0)),
            (
                "numbered series",
                (SERIES_WEIGHT * 1.5 * share(series_minutes)).min(SERIES_WEIGHT),
                format!("{series_minutes:.0} min"),
            ),
            ("media category", CATEGORY_WEIGHT * share(category_minutes), format!("{category_minutes:.0} min")),
        ];
        let structure_sum: f64 = structure_parts.iter().map(|p| p.1).sum();
        // Structure only counts beside content: it says "played back", never "what".
        let structure = if content > 0.0 { structure_sum.min(STRUCTURE_LIMIT) } else { 0.0 };
        let rest = (content + structure - live).max(0.0);
        let score = if content > 0.0 { (shape_score + rest).min(1.0) } else { shape_score };
        // Words say what, not how much of it: a qualifying verdict also needs signs of playback
        // beyond them (dense minutes with continuous speech, a long chain, a day of it, ...).
        let support = shape_score + structure_sum;
        // Sparse: the meter measured minutes, and under narration density (no minutes: no say).
        let metered = input.shape.active_minutes > 0;
        let sparse = metered && !dense;
        let needed = if sparse { PLAYBACK_SUPPORT_SPARSE } else { PLAYBACK_SUPPORT };
        let score = if support < needed { score.min(BELOW_QUALIFYING) } else { score };
        // And the meter itself must say "a lot" once it measured minutes: a live radio host's
        // show is as continuous, as back to back and as much "broadcast" as a listener's, but it
        // fills a morning, not two unbroken hours at narration density or the hours of sleep.
        let score = if metered && shape_score < METER_SUPPORT { score.min(BELOW_QUALIFYING) } else { score };

        let mut signals = vec![Signal { name: "shape", score: round(shape_score), detail: String::new() }];
        signals.push(Signal {
            name: "content",
            score: round(content),
            detail: format!("{content_minutes:.0} strength-weighted of {total:.0} min"),
        });
        for (name, s, detail) in structure_parts {
            signals.push(Signal { name, score: round(s), detail });
        }
        signals.push(Signal {
            name: "structure (capped, with content)",
            score: round(structure),
            detail: String::new(),
        });
        signals.push(Signal { name: "live", score: -round(live), detail: format!("{live_minutes:.0} min") });

        // Evidence: the strongest content first, then the numbered series and the chain.
        let mut evidence: Vec<Evidence> = Vec::new();
        if content > 0.0 {
            let mut order: Vec<&Reading<'_>> = readings.iter().filter(|r| r.strength > 0.0).collect();
            order.sort_by(|a, b| (b.strength * b.minutes).total_cmp(&(a.strength * a.minutes)));
            for r in order.iter().take(MAX_EVIDENCE - 2) {
                push_evidence(&mut evidence, r.conv, r.why.clone());
            }
            let mut ordered: Vec<_> = series.iter().collect();
            ordered.sort_by_key(|b| std::cmp::Reverse(b.items.len()));
            for b in ordered.iter().take(1) {
                let how = if b.back_to_back > 0 {
                    format!("{} pairs of consecutive numbers played back to back", b.back_to_back)
                } else {
                    format!("{} advancing numbers within 24 hours", b.per_day)
                };
                for &i in b.items.iter().filter(|&&i| !readings[i].live).take(2) {
                    let reason = format!("one of {} numbered {}s; {how}", b.items.len(), b.kind.noun());
                    push_evidence(&mut evidence, readings[i].conv, reason);
                }
            }
        }

        // Votes for the usage type, in strength-weighted minutes.
        let mut votes: BTreeMap<UsageType, f64> = BTreeMap::new();
        for r in &readings {
            if let Some(t) = r.usage_type {
                *votes.entry(t).or_default() += r.strength * r.minutes;
            }
        }
        for b in &series {
            if let Some(t) = b.kind.usage_type() {
                *votes.entry(t).or_default() += 0.5 * b.items.iter().map(|&i| readings[i].minutes).sum::<f64>();
            }
        }
        let usage_type = if score < 0.3 {
            UsageType::None
        } else {
            votes
                .iter()
                .filter(|(t, _)| **t != UsageType::Unknown)
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(t, _)| *t)
                .unwrap_or(UsageType::Unknown)
        };
        let confidence = if convs.is_empty() {
            0.2
        } else {
            (0.4 + 0.05 * convs.len().min(8) as f64 + 0.2 * share(content_minutes).max(share(live_minutes))).min(1.0)
        };
        let verdict = Verdict {
            misuse_score: round(score),
            usage_type,
            confidence: round(confidence),
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

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests;
