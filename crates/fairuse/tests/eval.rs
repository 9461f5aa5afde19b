//! `fairuse eval` on a small generated population: the evaluation's own invariants (every user
//! counted once, every label present, counts that add up, the per-population STT savings adding up
//! to what one simulator over the whole trace reports) and the heuristic's promise that no honest
//! user is throttled or restricted by a misuse verdict.
//!
//! The 10,000-user evaluation of the README is `bash bench/eval.sh` (release mode, minutes).

use std::collections::BTreeSet;

use fairuse::eval::{EvalReport, Labels, VerdictLog, evaluate, evaluate_with_verdicts};
use fairuse::gen_trace::{GenTraceArgs, LABELS, generate_with_labels};
use fairuse::sim::{SimClassifier, Simulator};
use fairuse_domain::policy::Policy;

fn args(users: u64, days: u32, seed: u64) -> GenTraceArgs {
    GenTraceArgs {
        users,
        days,
        abusers: 0.02,
        heavy: 0.03,
        start: "2026-03-02T00:00:00Z".into(),
        seed,
        conversations: true,
        verdicts: true,
        out: "-".into(),
        labels: None,
        quiet: true,
    }
}

/// The trace and its labels, in memory.
fn population(a: &GenTraceArgs) -> (Vec<u8>, Vec<u8>) {
    let (mut trace, mut labels) = (Vec::new(), Vec::new());
    generate_with_labels(a, &mut trace, Some(&mut labels), &mut |_, _| {}).expect("generate");
    (trace, labels)
}

fn check_invariants(report: &EvalReport, users: u64, whole_run_saved: i64) {
    assert_eq!(report.users, users, "every user of the trace is counted");
    assert_eq!(report.rows.iter().map(|r| r.users).sum::<u64>(), users, "each user in exactly one row");
    let kinds: BTreeSet<&str> = report.rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, LABELS.iter().copied().collect::<BTreeSet<_>>(), "every label, and only labels");
    assert_eq!(report.stt_ms_saved, report.rows.iter().map(|r| r.stt_ms_saved).sum::<i64>());
    assert_eq!(report.stt_ms_saved, whole_run_saved, "splitting by population changes no saving");
    for r in &report.rows {
        assert_eq!(r.honest, !r.kind.starts_with("abuser_"), "{r:?}");
        assert!(r.classified <= r.users && r.warned <= r.users, "{r:?}");
        assert!(
            r.restricted <= r.throttled && r.throttled <= r.warned,
            "a stage is reached through the ones below: {r:?}"
        );
        assert!(r.typed_right <= r.users, "{r:?}");
        // Restricted within the hours by a misuse verdict, so among the restricted column's.
        assert!(r.restricted_within <= r.restricted, "{r:?}");
        match (r.median_hours_to_restrict, r.max_hours_to_restrict) {
            (Some(median), Some(max)) => assert!(0.0 < median && median <= max, "{r:?}"),
            (None, None) => assert_eq!(r.restricted_within, 0, "{r:?}"),
            _ => panic!("median and max come together: {r:?}"),
        }
        if r.honest {
            assert_eq!(r.typed_right, 0, "{r:?}");
        }
    }
    let table = report.markdown();
    for r in &report.rows {
        assert!(table.contains(&format!("| {} |", r.kind)), "{} missing from\n{table}", r.kind);
    }
}

fn whole_run_saved(trace: &[u8], classifier: SimClassifier) -> i64 {
    let summary = Simulator::new(&Policy::default(), classifier, std::io::sink()).run(trace).expect("simulate");
    summary.stt_ms_saved
}

#[test]
fn a_small_population_adds_up_and_no_honest_user_is_throttled() {
    let a = args(1000, 3, 2026);
    let (trace, labels) = population(&a);
    let labels = Labels::read(labels.as_slice()).expect("labels");
    let report = evaluate(&Policy::default(), SimClassifier::Heuristic, trace.as_slice(), &labels, 48).expect("eval");
    check_invariants(&report, 1000, whole_run_saved(&trace, SimClassifier::Heuristic));
    assert_eq!(report.abusers(), 20);
    assert_eq!(report.honest_users(), 980);
    assert_eq!(report.false_throttles(), 0, "{}", report.markdown());
    assert_eq!(report.false_restricts(), 0, "{}", report.markdown());
    // Three days of continuous abuse: the heuristic detects every abuser type.
    for r in report.rows.iter().filter(|r| !r.honest) {
        assert!(r.warned > 0, "{} never detected:\n{}", r.kind, report.markdown());
    }
}

#[test]
fn the_verdict_log_has_one_line_per_classifier_run_with_kind_hours_and_signals() {
    let a = args(300, 2, 11);
    let (trace, labels) = population(&a);
    let labels = Labels::read(labels.as_slice()).expect("labels");
    let mut log = Vec::new();
    let report = evaluate_with_verdicts(
        &Policy::default(),
        SimClassifier::Heuristic,
        trace.as_slice(),
        &labels,
        48,
        Some(VerdictLog { out: &mut log, inputs: false }),
    )
    .expect("eval");
    let lines: Vec<serde_json::Value> =
        log.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, report.classifier_runs, "one line per run");
    for l in &lines {
        let uid = l["uid"].as_str().unwrap();
        assert_eq!(l["kind"].as_str(), Some(labels.kind(uid)), "{l}");
        assert!(l["hours"].as_f64().unwrap() >= 0.0 && l["run"].as_u64().unwrap() >= 1, "{l}");
        let shown = l["conversations"].as_u64().unwrap();
        if shown > 0 {
            assert!(l["signals"].as_array().is_some_and(|s| !s.is_empty()), "an asked heuristic explains: {l}");
        }
    }
    // The same evaluation without the log reports the same.
    let plain = evaluate(&Policy::default(), SimClassifier::Heuristic, trace.as_slice(), &labels, 48).expect("eval");
    assert_eq!(plain, report);
}

#[test]
fn without_a_labels_file_the_verdict_lines_are_the_truth() {
    let a = args(300, 2, 7);
    let (trace, _) = population(&a);
    let policy = Policy::default();
    let labels = Labels::from_verdicts(trace.as_slice(), policy.classifier.qualify_score).expect("labels");
    let report = evaluate(&policy, SimClassifier::Scripted, trace.as_slice(), &labels, 48).expect("eval");
    assert_eq!(report.users, 300);
    assert_eq!(report.abusers(), 6);
    let kinds: BTreeSet<&str> = report.rows.iter().map(|r| r.kind.as_str()).collect();
    assert!(kinds.contains("honest") && kinds.iter().filter(|k| k.starts_with("abuser_")).count() == 5, "{kinds:?}");
    assert_eq!(report.stt_ms_saved, whole_run_saved(&trace, SimClassifier::Scripted));
    // The scripted verdicts are the truth: every abuser is detected, no honest user is.
    assert_eq!(report.false_warnings(), 0, "{}", report.markdown());
    assert!(report.rows.iter().filter(|r| !r.honest).all(|r| r.warned == r.users), "{}", report.markdown());
}

#[test]
fn a_bad_trace_line_is_an_error_naming_it() {
    let trace = "{\"t\":\"2026-03-02T00:00:00Z\",\"type\":\"usage\",\"uid\":\"u1\",\"lane\":\"nope\",\"speech_ms\":1,\"stt_ms\":1}\n";
    let labels = Labels::read("{\"uid\":\"u1\",\"kind\":\"honest\"}\n".as_bytes()).expect("labels");
    let e = evaluate(&Policy::default(), SimClassifier::Heuristic, trace.as_bytes(), &labels, 48).expect_err("refused");
    assert!(format!("{e:#}").contains("lane"), "{e:#}");
}
