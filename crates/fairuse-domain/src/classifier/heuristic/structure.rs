//! How conversations sit in time and sound, read without any word: numbered series worked through
//! faster than anything live happens, chains of back-to-back conversations, the most conversation
//! time in any 24 hours, and continuous speech (words a minute of the whole conversation).
//!
//! None of these says *what* was heard, so the heuristic counts them only beside a conversation
//! whose metadata describes content, and caps them ([`super::STRUCTURE_LIMIT`]).

use std::collections::BTreeMap;

use super::super::Conversation;
use super::series::{SeriesKind, counter_of, series_or_template};
use crate::time::MS_PER_MINUTE;

/// Two numbered items are "back to back" when the next starts at most this long after the last ended.
const BACK_TO_BACK_MS: i64 = 20 * MS_PER_MINUTE;
/// Conversations of one chain follow each other within this gap: a player moving to the next
/// track or a host app cutting one stream into items, not a person walking to the next meeting.
const CHAIN_GAP_MS: i64 = 5 * MS_PER_MINUTE;
/// Words a minute of a whole conversation (pauses included) at which speech is continuous:
/// narration and broadcasts run at 120-170, people talking with each other at 40-100.
pub(super) const CONTINUOUS_WORDS_PER_MINUTE: f64 = 105.0;
/// A conversation shorter than this says nothing about continuity.
pub(super) const CONTINUOUS_MIN_MINUTES: f64 = 15.0;

/// Words a minute over the whole conversation, when the host sent a word count.
pub(super) fn words_per_minute(c: &Conversation) -> Option<f64> {
    let minutes = c.duration_minutes();
    c.word_count.filter(|_| minutes >= 1.0).map(|w| w as f64 / minutes)
}

/// The speech of a conversation is continuous for its whole length: long enough, and at a pace
/// people talking with each other do not keep up ([`CONTINUOUS_WORDS_PER_MINUTE`]).
pub(super) fn continuous(c: &Conversation) -> bool {
    c.duration_minutes() >= CONTINUOUS_MIN_MINUTES
        && words_per_minute(c).is_some_and(|w| w >= CONTINUOUS_WORDS_PER_MINUTE)
}

/// Items of a continuous run played one after another: at least this many in one run.
const CLIP_RUN_ITEMS: usize = 3;

/// What a run of played items adds up to ([`continuity`]): conversations with a word count,
/// their minutes and words, and of those with a speaker count, how many had one voice.
#[derive(Default)]
struct RunTotals {
    items: usize,
    minutes: f64,
    words: f64,
    counted: usize,
    one_voice: usize,
}

/// How a conversation's speech is continuous ([`continuity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Continuity {
    /// Not continuous: people talking with each other, or too short to say.
    No,
    /// Continuous on its own ([`continuous`]).
    Own,
    /// One of [`CLIP_RUN_ITEMS`] or more items of an unbroken run at a narrator's pace: clips
    /// played one after another, whatever its own length.
    Clip,
}

/// Per conversation: continuous on its own, or cut from continuous speech, an item of an unbroken
/// run ([`played_runs`]: each starting within [`PLAYED_GAP_MS`] of the last one's end) of
/// [`CLIP_RUN_ITEMS`] or more items that together last [`CONTINUOUS_MIN_MINUTES`] or more at
/// [`CONTINUOUS_WORDS_PER_MINUTE`]: a player moving from clip to clip (ten-minute videos,
/// three-minute stories) keeps one narrator's pace for the whole run, and people do not talk
/// with each other at that pace for a quarter of an hour, however the host cut it. `runs` is
/// [`played_runs`] of `convs`.
pub(super) fn continuity(convs: &[Conversation], runs: &[usize]) -> Vec<Continuity> {
    let mut totals: BTreeMap<usize, RunTotals> = BTreeMap::new();
    for (c, r) in convs.iter().zip(runs) {
        if let Some(words) = c.word_count {
            let t = totals.entry(*r).or_default();
            t.items += 1;
            t.minutes += c.duration_minutes();
            t.words += words as f64;
            if let Some(n) = c.speaker_count {
                t.counted += 1;
                t.one_voice += usize::from(n == 1);
            }
        }
    }
    convs
        .iter()
        .zip(runs)
        .map(|(c, r)| {
            let clip = c.word_count.is_some()
                && totals.get(r).is_some_and(|t| {
                    t.items >= CLIP_RUN_ITEMS
                        && t.minutes >= CONTINUOUS_MIN_MINUTES
                        && (t.words / t.minutes >= CONTINUOUS_WORDS_PER_MINUTE
                            || (t.counted >= CLIP_RUN_ITEMS && t.one_voice as f64 >= 0.6 * t.counted as f64))
                });
            if clip {
                Continuity::Clip
            } else if continuous(c) {
                Continuity::Own
            } else {
                Continuity::No
            }
        })
        .collect()
}

/// A numbered series consumed faster than anything live happens.
pub(super) struct Binge {
    pub kind: SeriesKind,
    /// Indexes into the conversations, by start time.
    pub items: Vec<usize>,
    /// Pairs of consecutive numbers, the next starting within [`BACK_TO_BACK_MS`] of the last.
    pub back_to_back: usize,
    /// The longest run of advancing numbers (each one to three above the last, in the order
    /// played) within any 24 hours: a series being worked through, not a queue of ticket numbers.
    pub per_day: usize,
}

/// Titles that share a template with a counter ([`series_or_template`]: "Chapter 12", "Folge 3",
/// "S02E05", "Morning Drive 14", "第3話") whose numbers advance back to back or three in a day.
pub(super) fn binges(convs: &[Conversation]) -> Vec<Binge> {
    let mut groups: BTreeMap<(SeriesKind, String), Vec<(usize, u32)>> = BTreeMap::new();
    for (i, c) in convs.iter().enumerate() {
        if let Some((kind, stem, n)) = series_or_template(&c.title) {
            groups.entry((kind, stem)).or_default().push((i, n));
        }
    }
    let mut out = Vec::new();
    for ((kind, _), mut items) in groups {
        if items.len() < 2 {
            continue;
        }
        items.sort_by_key(|&(i, n)| (convs[i].started_at, n));
        let start = |i: usize| convs[i].started_at.millis();
        let end = |i: usize| convs[i].finished_at.millis();
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
            out.push(Binge { kind, items: items.into_iter().map(|(i, _)| i).collect(), back_to_back, per_day });
        }
    }
    out
}

/// The longest chain of conversations (among those `eligible`) each starting within
/// [`CHAIN_GAP_MS`] of the previous one's end: its members and its minutes of conversation.
pub(super) fn longest_chain(convs: &[Conversation], eligible: &[bool]) -> (Vec<usize>, f64) {
    chain_within(convs, eligible, CHAIN_GAP_MS)
}

/// [`longest_chain`] with another gap.
pub(super) fn chain_within(convs: &[Conversation], eligible: &[bool], gap_ms: i64) -> (Vec<usize>, f64) {
    let mut order: Vec<usize> = (0..convs.len()).filter(|&i| eligible[i]).collect();
    order.sort_by_key(|&i| convs[i].started_at);
    let (mut best, mut best_minutes) = (Vec::new(), 0.0);
    let (mut chain, mut minutes): (Vec<usize>, f64) = (Vec::new(), 0.0);
    let mut last_end = i64::MIN;
    for i in order {
        let c = &convs[i];
        if chain.is_empty() || c.started_at.millis() - last_end > gap_ms {
            chain.clear();
            minutes = 0.0;
        }
        chain.push(i);
        minutes += c.duration_minutes();
        last_end = last_end.max(c.finished_at.millis());
        if minutes > best_minutes {
            (best, best_minutes) = (chain.clone(), minutes);
        }
    }
    (best, best_minutes)
}

/// The most minutes of conversation that start within any 24 hours.
pub(super) fn busiest_day_minutes(convs: &[Conversation]) -> f64 {
    let mut spans: Vec<(i64, f64)> = convs.iter().map(|c| (c.started_at.millis(), c.duration_minutes())).collect();
    spans.sort_by_key(|s| s.0);
    let (mut lo, mut sum, mut best) = (0, 0.0, 0.0f64);
    for hi in 0..spans.len() {
        sum += spans[hi].1;
        while spans[hi].0 - spans[lo].0 >= 24 * 60 * MS_PER_MINUTE {
            sum -= spans[lo].1;
            lo += 1;
        }
        best = best.max(sum);
    }
    best
}

/// A player moving to the next item leaves at most this between two conversations; people
/// walking to the next meeting, class or call leave more.
pub(super) const PLAYED_GAP_MS: i64 = 2 * MS_PER_MINUTE;

/// Per conversation, the unbroken run of conversations it belongs to (each starting within
/// [`PLAYED_GAP_MS`] of the last one's end), numbered from 0 in time order.
pub(super) fn played_runs(convs: &[Conversation]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..convs.len()).collect();
    order.sort_by_key(|&i| convs[i].started_at);
    let mut run = vec![0usize; convs.len()];
    let (mut id, mut last_end) = (0usize, i64::MIN);
    for &i in &order {
        if last_end != i64::MIN && convs[i].started_at.millis() - last_end > PLAYED_GAP_MS {
            id += 1;
        }
        run[i] = id;
        last_end = last_end.max(convs[i].finished_at.millis());
    }
    run
}

/// Numbered conversations ([`counter_of`]: a number after a word, in any script and numbering
/// style) that follow each other, one to three numbers on, inside one unbroken run of
/// conversations (each starting within [`PLAYED_GAP_MS`] of the last one's end; unnumbered ones
/// may sit between): the items of a series played through, "Lesson 7" straight into "Lesson 8:
/// Numbers" or "Level 2, Lesson 9", whatever the title template. Per conversation: whether it
/// is such an item. `run` is [`played_runs`] of `convs`.
pub(super) fn played_through(convs: &[Conversation], run: &[usize]) -> Vec<bool> {
    let mut order: Vec<usize> = (0..convs.len()).collect();
    order.sort_by_key(|&i| convs[i].started_at);
    let mut groups: BTreeMap<usize, Vec<(usize, u32)>> = BTreeMap::new();
    for &i in &order {
        if let Some((_, n)) = counter_of(&convs[i].title) {
            groups.entry(run[i]).or_default().push((i, n));
        }
    }
    let mut out = vec![false; convs.len()];
    for items in groups.values() {
        for w in items.windows(2) {
            if w[1].1 > w[0].1 && w[1].1 - w[0].1 <= 3 {
                out[w[0].0] = true;
                out[w[1].0] = true;
            }
        }
    }
    out
}
