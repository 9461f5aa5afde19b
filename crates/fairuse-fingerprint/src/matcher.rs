//! Comparing two fingerprints: candidate time shifts from exact sub-code hits, then the longest run
//! of aligned codes that agree bit for bit on average.
//!
//! 1. Every speech code of A is indexed by its top [`KEY_BITS`] bits (posting lists capped at
//!    [`MAX_POSTING`], so a repeated code cannot flood the vote); every speech code of B votes for
//!    the shift `j − i` of each A code sharing its key. Shifts with the most votes (a shift and its
//!    neighbours pooled) are the candidates: at most [`CANDIDATES`].
//! 2. At each candidate shift the aligned pairs' bit errors are averaged over a sliding window of
//!    [`SMOOTH_ITEMS`] codes; the longest stretch whose average stays at or below
//!    [`MatchThresholds::run_bits`] is the shared run.
//! 3. The run matches when its speech codes (speech in both A and B) last at least
//!    [`MIN_SHARED_SPEECH_MS`], their mean bit errors are at most [`MatchThresholds::match_bits`], and
//!    at least [`MIN_CHANGE_SHARE`] of them differ from the code before (steady sounds repeat one code).
//!
//! Work is O(codes) for the index and votes, O(codes × candidates) for the runs.

use std::collections::HashMap;

use crate::{Fingerprint, ITEM_MS};

/// Bits of a code used as the vote key: Chromaprint's first 8 classifiers.
const KEY_BITS: u32 = 16;
/// At most this many A codes per key take part in the vote.
const MAX_POSTING: usize = 32;
/// Shifts examined in full.
const CANDIDATES: usize = 5;
/// Codes in the sliding average that delimits a run (~2 s).
const SMOOTH_ITEMS: usize = 16;
/// A match needs at least this much speech inside the shared run.
pub const MIN_SHARED_SPEECH_MS: u64 = 3_000;
/// Share of a run's speech codes that must differ from the code before.
pub const MIN_CHANGE_SHARE: f64 = 0.5;

/// Bit-error limits, per 32-bit code. Replays measure 1.7–2.7 mean bit errors and another voice
/// reading the same text 6.9 or more (crate docs); the limits sit between, nearer the replays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchThresholds {
    /// A stretch belongs to the run while its sliding mean stays at or below this.
    pub run_bits: f64,
    /// The run's speech codes must average at most this.
    pub match_bits: f64,
}

impl Default for MatchThresholds {
    fn default() -> Self {
        Self { run_bits: 5.5, match_bits: 4.5 }
    }
}

/// The outcome of comparing A with B.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// A and B share a run of the same audio.
    pub matched: bool,
    /// Where the shared part sits in B minus where it sits in A, ms (positive: later in B).
    pub offset_ms: i64,
    /// Where the shared run starts in A and in B, ms.
    pub a_start_ms: u64,
    pub b_start_ms: u64,
    /// Length of the shared run, ms.
    pub shared_ms: u64,
    /// Speech inside the shared run, ms.
    pub shared_speech_ms: u64,
    /// Mean bit errors per code over the run's speech codes (32 when there are none).
    pub mean_bit_errors: f64,
    /// `1 − mean_bit_errors / 16`, clamped to 0..=1: 1 for identical codes, 0 for unrelated
    /// audio (16 of 32 bits differ by chance).
    pub score: f64,
}

impl Comparison {
    fn none() -> Self {
        Self {
            matched: false,
            offset_ms: 0,
            a_start_ms: 0,
            b_start_ms: 0,
            shared_ms: 0,
            shared_speech_ms: 0,
            mean_bit_errors: 32.0,
            score: 0.0,
        }
    }
}

/// Compares A with B under `thresholds` (use `MatchThresholds::default()`). The best run found is
/// reported even when it does not match, so a caller can see how close it came.
pub fn compare(a: &Fingerprint, b: &Fingerprint, thresholds: MatchThresholds) -> Comparison {
    // Prefer a match, then the run with the most speech weighted by how well it agrees.
    let weight = |c: &Comparison| c.shared_speech_ms as f64 * c.score;
    let mut best = Comparison::none();
    for shift in candidate_shifts(a, b) {
        let found = run_at(a, b, shift, thresholds);
        let better = match (found.matched, best.matched) {
            (true, false) => true,
            (false, true) => false,
            _ => weight(&found) > weight(&best),
        };
        if better {
            best = found;
        }
    }
    best
}

/// Shifts `j − i` (B index minus A index) worth examining, most voted first.
fn candidate_shifts(a: &Fingerprint, b: &Fingerprint) -> Vec<i64> {
    let key = |code: u32| code >> (32 - KEY_BITS);
    let mut index: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, (&code, &speech)) in a.codes.iter().zip(&a.speech).enumerate() {
        if speech {
            let posting = index.entry(key(code)).or_default();
            if posting.len() < MAX_POSTING {
                posting.push(i);
            }
        }
    }
    let mut votes: HashMap<i64, u32> = HashMap::new();
    for (j, (&code, &speech)) in b.codes.iter().zip(&b.speech).enumerate() {
        if !speech {
            continue;
        }
        for &i in index.get(&key(code)).map(Vec::as_slice).unwrap_or_default() {
            *votes.entry(j as i64 - i as i64).or_default() += 1;
        }
    }
    // Pool each shift with its neighbours: Chromaprint's 124 ms step splits a true shift's votes
    // between two adjacent shifts when the recordings are not aligned to a code boundary.
    let pooled = |s: i64| (-1..=1).map(|d| votes.get(&(s + d)).copied().unwrap_or(0)).sum::<u32>();
    let mut ranked: Vec<(u32, i64)> = votes.keys().map(|&s| (pooled(s), s)).filter(|&(n, _)| n >= 2).collect();
    ranked.sort_unstable_by(|x, y| y.cmp(x));
    let mut picked: Vec<i64> = Vec::new();
    for (_, s) in ranked {
        if picked.iter().all(|p| (p - s).abs() > 1) {
            // Examine the shift and its neighbours; the run decides which aligns best.
            picked.push(s);
            if picked.len() == CANDIDATES {
                break;
            }
        }
    }
    picked.iter().flat_map(|&s| [s, s - 1, s + 1]).collect()
}

/// The longest agreeing run at one shift.
fn run_at(a: &Fingerprint, b: &Fingerprint, shift: i64, thresholds: MatchThresholds) -> Comparison {
    // Aligned pairs: A index i with B index i + shift.
    let first_i = (-shift).max(0) as usize;
    let last_i = (a.len() as i64).min(b.len() as i64 - shift); // exclusive
    if last_i <= first_i as i64 {
        return Comparison::none();
    }
    let pairs = last_i as usize - first_i;
    let errors: Vec<u32> = (0..pairs)
        .map(|k| {
            let i = first_i + k;
            let j = (i as i64 + shift) as usize;
            (a.codes[i] ^ b.codes[j]).count_ones()
        })
        .collect();
    // Sliding mean over SMOOTH_ITEMS centred on each pair (shorter at the edges).
    let mut prefix = Vec::with_capacity(pairs + 1);
    prefix.push(0u64);
    for &e in &errors {
        prefix.push(prefix[prefix.len() - 1] + u64::from(e));
    }
    let half = SMOOTH_ITEMS / 2;
    let agrees: Vec<bool> = (0..pairs)
        .map(|k| {
            let (lo, hi) = (k.saturating_sub(half), (k + half).min(pairs));
            (prefix[hi] - prefix[lo]) as f64 / (hi - lo) as f64 <= thresholds.run_bits
        })
        .collect();
    // Longest stretch of agreeing pairs, measured by its speech.
    let mut best: Option<Comparison> = None;
    let mut k = 0;
    while k < pairs {
        if !agrees[k] {
            k += 1;
            continue;
        }
        let start = k;
        while k < pairs && agrees[k] {
            k += 1;
        }
        let found = judge(a, b, first_i, shift, start, k, &errors, thresholds);
        if best.as_ref().is_none_or(|b| found.shared_speech_ms > b.shared_speech_ms) {
            best = Some(found);
        }
    }
    best.unwrap_or_else(Comparison::none)
}

/// Measures the run of pairs `start..end` at `shift` and decides whether it is a match.
#[allow(clippy::too_many_arguments)]
fn judge(
    a: &Fingerprint,
    b: &Fingerprint,
    first_i: usize,
    shift: i64,
    start: usize,
    end: usize,
    errors: &[u32],
    thresholds: MatchThresholds,
) -> Comparison {
    let (mut speech, mut changed, mut bit_errors) = (0usize, 0usize, 0u64);
    for (k, &e) in errors.iter().enumerate().take(end).skip(start) {
        let i = first_i + k;
        let j = (i as i64 + shift) as usize;
        if a.speech[i] && b.speech[j] {
            speech += 1;
            bit_errors += u64::from(e);
            if i > 0 && a.codes[i] != a.codes[i - 1] {
                changed += 1;
            }
        }
    }
    let mean_bit_errors = if speech == 0 { 32.0 } else { bit_errors as f64 / speech as f64 };
    let score = (1.0 - mean_bit_errors / 16.0).clamp(0.0, 1.0);
    let shared_speech_ms = (speech as f64 * ITEM_MS) as u64;
    let change_share = if speech == 0 { 0.0 } else { changed as f64 / speech as f64 };
    let a_start = first_i + start;
    Comparison {
        matched: shared_speech_ms >= MIN_SHARED_SPEECH_MS
            && mean_bit_errors <= thresholds.match_bits
            && change_share >= MIN_CHANGE_SHARE,
        offset_ms: (shift as f64 * ITEM_MS).round() as i64,
        a_start_ms: (a_start as f64 * ITEM_MS) as u64,
        b_start_ms: ((a_start as i64 + shift) as f64 * ITEM_MS) as u64,
        shared_ms: ((end - start) as f64 * ITEM_MS) as u64,
        shared_speech_ms,
        mean_bit_errors,
        score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random codes (xorshift), all speech.
    fn codes(seed: u32, n: usize) -> Vec<u32> {
        let mut x = seed.max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            })
            .collect()
    }

    fn speech(codes: Vec<u32>) -> Fingerprint {
        let n = codes.len();
        Fingerprint { codes, speech: vec![true; n] }
    }

    #[test]
    fn a_copy_inside_other_codes_is_found_at_its_shift() {
        let content = codes(7, 60);
        let mut b = codes(99, 25);
        // Flip two low bits per code: a noisy copy.
        b.extend(content.iter().map(|c| c ^ 0b101));
        b.extend(codes(5, 30));
        let found = compare(&speech(content), &speech(b), MatchThresholds::default());
        assert!(found.matched, "{found:?}");
        assert_eq!(found.offset_ms, (25.0 * ITEM_MS).round() as i64);
        assert_eq!(found.a_start_ms, 0);
        assert!((found.mean_bit_errors - 2.0).abs() < 1e-9, "{found:?}");
        // The run edges blur by up to half the smoothing window.
        assert!(found.shared_speech_ms as f64 >= 52.0 * ITEM_MS, "{found:?}");
    }

    #[test]
    fn unrelated_codes_do_not_match() {
        let found = compare(&speech(codes(1, 200)), &speech(codes(2, 200)), MatchThresholds::default());
        assert!(!found.matched, "{found:?}");
    }

    #[test]
    fn a_repeated_code_does_not_match_however_long() {
        let steady = speech(vec![0xdead_beef; 300]);
        let found = compare(&steady, &steady.clone(), MatchThresholds::default());
        assert!(!found.matched, "{found:?}");
    }

    #[test]
    fn codes_not_flagged_as_speech_do_not_match() {
        let content = codes(3, 100);
        let silent = Fingerprint { codes: content.clone(), speech: vec![false; 100] };
        let found = compare(&silent, &speech(content), MatchThresholds::default());
        assert!(!found.matched, "{found:?}");
    }

    #[test]
    fn empty_fingerprints_compare_as_no_match() {
        let found = compare(&Fingerprint::default(), &speech(codes(4, 50)), MatchThresholds::default());
        assert!(!found.matched);
        assert_eq!(found.score, 0.0);
    }
}
