//! Property tests of `SpeechRuns` against a brute-force model: the whole window sequence kept in
//! a list, the gaps between speech windows measured one by one, runs merged and pauses sorted
//! exactly. The model knows nothing of histograms or running state.

use fairuse_domain::sessions::{PAUSE_BUCKET_MS, PAUSE_HISTOGRAM_MS, SpeechRuns};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(cases: u32) -> Config {
    // No regression files: a failure prints its minimal input.
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// What the brute force finds in a window sequence.
#[derive(Debug)]
struct Model {
    longest_speech_ms: i64,
    /// Every pause, ascending.
    pauses: Vec<i64>,
}

fn model(windows: &[bool], window_ms: i64, bridge_ms: i64) -> Model {
    let speech: Vec<usize> = windows.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| i).collect();
    let mut pauses = Vec::new();
    let mut longest = 0;
    let Some(&first) = speech.first() else { return Model { longest_speech_ms: 0, pauses } };
    let mut run_start = first;
    for pair in speech.windows(2) {
        let silence = (pair[1] - pair[0] - 1) as i64 * window_ms;
        if silence > 0 && silence >= bridge_ms {
            longest = longest.max((pair[0] - run_start + 1) as i64 * window_ms);
            pauses.push(silence);
            run_start = pair[1];
        }
    }
    let last = speech[speech.len() - 1];
    longest = longest.max((last - run_start + 1) as i64 * window_ms);
    pauses.sort_unstable();
    Model { longest_speech_ms: longest, pauses }
}

#[derive(Debug, Clone)]
enum Bridge {
    Default,
    Ms(i64),
    Windows(i64),
}

/// Segments of equal windows: mostly short, some long enough to reach the overflow bucket.
fn segments() -> impl Strategy<Value = Vec<(bool, usize)>> {
    prop::collection::vec((any::<bool>(), prop_oneof![6 => 1usize..40, 3 => 1usize..400, 1 => 1usize..2500]), 0..60)
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn speech_runs_match_the_brute_force_model(
        segs in segments(),
        window_ms in prop_oneof![Just(32i64), 1i64..100],
        bridge in prop_oneof![Just(Bridge::Default), (0i64..3000).prop_map(Bridge::Ms), (0i64..40).prop_map(Bridge::Windows)],
    ) {
        let bridge_ms = match bridge {
            Bridge::Default => 500,
            Bridge::Ms(ms) => ms,
            // A silence of exactly the bridge is a pause, one window less is bridged: the edge.
            Bridge::Windows(n) => n * window_ms,
        };
        let windows: Vec<bool> = segs.iter().flat_map(|&(s, n)| std::iter::repeat_n(s, n)).collect();
        let mut runs = SpeechRuns::new(window_ms, bridge_ms);
        // The shape is checked at a few points along the way too: a prefix is a stream so far.
        let checkpoints = [windows.len() / 3, windows.len() / 2, windows.len()];
        for (i, &w) in windows.iter().enumerate() {
            runs.observe(w);
            if !checkpoints.contains(&(i + 1)) {
                continue;
            }
            let m = model(&windows[..=i], window_ms, bridge_ms);
            let got = runs.shape();
            prop_assert_eq!(got.longest_speech_ms, m.longest_speech_ms);
            let n = m.pauses.len();
            prop_assert_eq!(got.pause_count, n as u64);
            if n == 0 {
                prop_assert_eq!((got.pause_mean_ms, got.pause_median_ms, got.longest_pause_ms), (0, 0, 0));
                continue;
            }
            prop_assert_eq!(got.pause_mean_ms, m.pauses.iter().sum::<i64>() / n as i64);
            prop_assert_eq!(got.longest_pause_ms, m.pauses[n - 1]);
            let median = got.pause_median_ms;
            prop_assert!(m.pauses[0] <= median && median <= m.pauses[n - 1], "{} outside the pauses {:?}", median, m.pauses);
            let (a, b) = (m.pauses[(n - 1) / 2], m.pauses[n / 2]);
            if b < PAUSE_HISTOGRAM_MS {
                // Twice the error of the median is at most one bucket width.
                prop_assert!((2 * median - (a + b)).abs() <= PAUSE_BUCKET_MS, "median {} vs exact ({} + {}) / 2", median, a, b);
            } else {
                let floor = (a.min(PAUSE_HISTOGRAM_MS) + b.min(PAUSE_HISTOGRAM_MS)) / 2 - PAUSE_BUCKET_MS / 2 - 1;
                prop_assert!(median >= floor, "median {} below {} with middle pauses {} and {}", median, floor, a, b);
            }
        }
    }
}
