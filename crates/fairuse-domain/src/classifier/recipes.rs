//! The recipe rules of SPEC section 3: which extra focus a classifier run gets, from the lengths
//! and categories of the conversations and the gateway's stream sessions.

use std::collections::BTreeSet;

use super::{Conversation, Recipe};
use crate::sessions::StreamSession;
use crate::time::MS_PER_MINUTE;

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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

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
}
