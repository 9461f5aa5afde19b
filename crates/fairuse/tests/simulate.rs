//! Golden and behavioural tests of `fairuse simulate`, in-process: small traces built here, the
//! output compared byte for byte with files under `tests/golden/` (set `UPDATE_GOLDEN=1` to
//! rewrite them after an intended change) and checked against the ladder's timings.

use std::fmt::Write as _;

use fairuse::sim::{SimClassifier, Simulator, Summary};
use fairuse_domain::policy::{Mode, Policy};
use fairuse_domain::time::{MS_PER_MINUTE, Timestamp};
use serde_json::Value;

const START: &str = "2026-03-02T00:00:00Z";

fn start() -> Timestamp {
    Timestamp::parse_rfc3339(START).unwrap()
}

fn ts(minute: i64) -> String {
    start().plus_ms(minute * MS_PER_MINUTE).to_rfc3339()
}

fn run(trace: &str, policy: &Policy, classifier: SimClassifier) -> (String, Summary) {
    let mut out = Vec::new();
    let summary = Simulator::new(policy, classifier, &mut out).run(trace.as_bytes()).expect("trace replays");
    (String::from_utf8(out).unwrap(), summary)
}

fn lines(output: &str) -> Vec<Value> {
    output.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn minutes_after_start(line: &Value) -> i64 {
    let t = Timestamp::parse_rfc3339(line["t"].as_str().unwrap()).unwrap();
    (t.millis() - start().millis()) / MS_PER_MINUTE
}

fn golden(name: &str, output: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, output).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {path}: run with UPDATE_GOLDEN=1 once"));
    assert_eq!(output, expected, "output differs from {path}");
}

/// A user streaming an audiobook without pause: one cumulative flush a minute, 50 s of speech in
/// each minute, every classifier run saying audiobook at 0.9.
fn continuous_abuser_trace(days: i64) -> String {
    let mut t = String::new();
    writeln!(t, r#"{{"t":"{}","type":"plan","uid":"abuser","plan":"paid","credits_exhausted":false}}"#, ts(0)).unwrap();
    writeln!(t, r#"{{"t":"{}","type":"verdict","uid":"abuser","misuse_score":0.9,"usage_type":"audiobook"}}"#, ts(0))
        .unwrap();
    for m in 1..=days * 1440 {
        writeln!(t, r#"{{"t":"{}","type":"usage","uid":"abuser","lane":"realtime","session_id":"s1","cumulative_speech_ms":{},"stt_ms":{}}}"#, ts(m), m * 50_000, m * 60_000).unwrap();
        if m % 60 == 0 {
            writeln!(t, r#"{{"t":"{}","type":"tick"}}"#, ts(m)).unwrap();
        }
    }
    t
}

#[test]
fn continuous_abuser_is_warned_at_2h_throttled_at_26h_and_restricted_at_38h() {
    let (out, summary) = run(&continuous_abuser_trace(3), &Policy::default(), SimClassifier::Scripted);
    golden("continuous_abuser.jsonl", &out);
    let changes: Vec<(i64, String)> = lines(&out)
        .iter()
        .filter(|l| l["type"] == "stage_changed")
        .map(|l| (minutes_after_start(l), l["to"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(changes.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["warning", "throttle", "restrict"]);
    // 2 h of speech at 50 s a minute is 144 minutes; the first check after that is at 146.
    let hours = |m: i64| m as f64 / 60.0;
    assert!((2.0..2.5).contains(&hours(changes[0].0)), "warning at {} h", hours(changes[0].0));
    assert!((26.0..26.5).contains(&hours(changes[1].0)), "throttle at {} h", hours(changes[1].0));
    assert!((38.0..38.5).contains(&hours(changes[2].0)), "restrict at {} h", hours(changes[2].0));
    assert_eq!(summary.stages.restrict, 1);
    // Restricted: 30 min of STT a day; throttled: 4 h. Everything past that was held back.
    assert!(summary.stt_ms_saved > 20 * 3_600_000, "saved {}", summary.stt_ms_saved);
    let exhausted: Vec<Value> = lines(&out).into_iter().filter(|l| l["type"] == "budget_exhausted").collect();
    assert!(exhausted.iter().any(|l| l["limit_ms"] == 1_800_000 && l["used_ms"] == 1_800_000));
}

/// Sixteen hours of calls and meetings a day at 40% speech: over every soft cap, personal use all the same.
fn heavy_honest_trace(days: i64) -> String {
    let mut t = String::new();
    writeln!(t, r#"{{"t":"{}","type":"verdict","uid":"manager","misuse_score":0.2,"usage_type":"none"}}"#, ts(0))
        .unwrap();
    for m in 1..=days * 1440 {
        let minute_of_day = m % 1440;
        if (6 * 60..22 * 60).contains(&minute_of_day) {
            writeln!(
                t,
                r#"{{"t":"{}","type":"usage","uid":"manager","lane":"realtime","speech_ms":24000,"stt_ms":60000}}"#,
                ts(m)
            )
            .unwrap();
        }
        if m % 60 == 0 {
            writeln!(t, r#"{{"t":"{}","type":"tick"}}"#, ts(m)).unwrap();
        }
    }
    t
}

#[test]
fn heavy_honest_user_is_rechecked_every_3_hours_while_over_a_cap_and_never_changes_stage() {
    let (out, summary) = run(&heavy_honest_trace(4), &Policy::default(), SimClassifier::Scripted);
    golden("heavy_honest.jsonl", &out);
    let all = lines(&out);
    assert!(all.iter().all(|l| l["type"] != "stage_changed"), "{out}");
    let runs: Vec<i64> = all.iter().filter(|l| l["type"] == "classified").map(minutes_after_start).collect();
    assert!(runs.len() >= 12, "{runs:?}");
    // No verdict qualifies, so the lock is held for the 3 h re-check, not the 12 h cooldown.
    for pair in runs.windows(2) {
        assert!(pair[1] - pair[0] >= 3 * 60, "runs closer than the 3 h re-check: {runs:?}");
    }
    // Over a cap the whole time from day 2 (3-day and weekly), it runs as soon as the re-check
    // allows while it reports, and at its first report of the morning (06:00) after the night.
    let late: Vec<i64> = runs.iter().copied().filter(|&m| m > 1440).collect();
    for pair in late.windows(2) {
        let morning = pair[1] % 1440 - 6 * 60;
        assert!(
            pair[1] - pair[0] <= 3 * 60 + 5 || (0..=5).contains(&morning),
            "runs further apart than re-check + check interval: {runs:?}"
        );
    }
    assert_eq!(summary.stages.none, 1);
    assert_eq!(summary.stt_ms_saved, 0);
}

#[test]
fn a_verdict_that_does_not_qualify_is_rechecked_after_3_hours_and_a_qualifying_one_holds_the_cooldown() {
    // Streams without pause; the classifier says 0.3 until hour 8, then 0.9.
    let mut t = String::new();
    writeln!(t, r#"{{"t":"{}","type":"plan","uid":"u","plan":"paid","credits_exhausted":false}}"#, ts(0)).unwrap();
    writeln!(t, r#"{{"t":"{}","type":"verdict","uid":"u","misuse_score":0.3,"usage_type":"none"}}"#, ts(0)).unwrap();
    for m in 1..=30 * 60 {
        if m == 8 * 60 {
            writeln!(
                t,
                r#"{{"t":"{}","type":"verdict","uid":"u","misuse_score":0.9,"usage_type":"audiobook"}}"#,
                ts(m)
            )
            .unwrap();
        }
        writeln!(t, r#"{{"t":"{}","type":"usage","uid":"u","lane":"realtime","session_id":"s1","cumulative_speech_ms":{},"stt_ms":{}}}"#, ts(m), m * 50_000, m * 60_000).unwrap();
    }
    let (out, _) = run(&t, &Policy::default(), SimClassifier::Scripted);
    let runs: Vec<(i64, f64)> = lines(&out)
        .iter()
        .filter(|l| l["type"] == "classified")
        .map(|l| (minutes_after_start(l), l["misuse_score"].as_f64().unwrap()))
        .collect();
    let scores: Vec<f64> = runs.iter().map(|r| r.1).collect();
    assert_eq!(scores, [0.3, 0.3, 0.9, 0.9], "{runs:?}");
    let gaps: Vec<i64> = runs.windows(2).map(|p| p[1].0 - p[0].0).collect();
    // 144 min of speech is the 2 h cap, so minute 145 crosses it; then +3 h, +3 h (qualifies:
    // warning), +12 h.
    assert_eq!(runs[0].0, 145, "{runs:?}");
    assert!(gaps[0] >= 180 && gaps[0] <= 181 && gaps[1] >= 180 && gaps[1] <= 181, "{runs:?}");
    assert!(gaps[2] >= 720 && gaps[2] <= 721, "{runs:?}");
}

#[test]
fn the_recheck_is_the_cooldown_when_the_policy_says_so() {
    let mut policy = Policy::default();
    policy.classifier.recheck = Some(policy.classifier.cooldown);
    let (out, _) = run(&heavy_honest_trace(3), &policy, SimClassifier::Scripted);
    let runs: Vec<i64> = lines(&out).iter().filter(|l| l["type"] == "classified").map(minutes_after_start).collect();
    assert!(runs.len() >= 3, "{runs:?}");
    for pair in runs.windows(2) {
        assert!(pair[1] - pair[0] >= 12 * 60, "runs closer than the 12 h cooldown: {runs:?}");
    }
}

#[test]
fn the_same_trace_gives_the_same_output_byte_for_byte() {
    let trace = continuous_abuser_trace(2) + &heavy_honest_trace(2);
    // Interleaving two users keeps time order only per user; sort lines by time, stable.
    let mut sorted: Vec<&str> = trace.lines().collect();
    sorted.sort_by_key(|l| l[6..26].to_owned());
    let trace = sorted.join("\n");
    let a = run(&trace, &Policy::default(), SimClassifier::Scripted).0;
    let b = run(&trace, &Policy::default(), SimClassifier::Scripted).0;
    assert_eq!(a, b);
    assert!(a.lines().count() > 5);
}

#[test]
fn timers_step_down_at_their_exact_instants_as_the_clock_passes() {
    let mut t = String::new();
    writeln!(
        t,
        r#"{{"t":"{}","type":"admin","uid":"u1","action":"set_stage","stage":"restrict","until":"{}"}}"#,
        ts(0),
        ts(60)
    )
    .unwrap();
    // Only ticks from here: the timers must fire without any usage from the user.
    for day in 0..=70 {
        writeln!(t, r#"{{"t":"{}","type":"tick"}}"#, ts(day * 1440 + 1)).unwrap();
    }
    let (out, summary) = run(&t, &Policy::default(), SimClassifier::Scripted);
    golden("timers.jsonl", &out);
    let expiries: Vec<(i64, String, String)> = lines(&out)
        .iter()
        .filter(|l| l["type"] == "timer_expired")
        .map(|l| (minutes_after_start(l), l["from"].as_str().unwrap().into(), l["to"].as_str().unwrap().into()))
        .collect();
    let day = 1440;
    assert_eq!(
        expiries,
        vec![
            (60, "restrict".into(), "throttle".into()),
            (60 + 7 * day, "throttle".into(), "warning".into()),
            (60 + 37 * day, "warning".into(), "none".into()),
        ]
    );
    assert_eq!(summary.stages.none, 1);
}

#[test]
fn a_manual_stage_without_expiry_is_never_lowered_by_timers() {
    let mut t = String::new();
    writeln!(t, r#"{{"t":"{}","type":"admin","uid":"u1","action":"set_stage","stage":"throttle"}}"#, ts(0)).unwrap();
    writeln!(t, r#"{{"t":"{}","type":"tick"}}"#, ts(100 * 1440)).unwrap();
    let (out, summary) = run(&t, &Policy::default(), SimClassifier::Scripted);
    assert!(!out.contains("timer_expired"), "{out}");
    assert_eq!(summary.stages.throttle, 1);
}

#[test]
fn free_user_without_credits_gets_the_synthetic_verdict_and_is_cleared_by_a_paid_plan() {
    let mut t = String::new();
    writeln!(t, r#"{{"t":"{}","type":"plan","uid":"f","plan":"free","credits_exhausted":true}}"#, ts(0)).unwrap();
    for m in 1..=200 {
        writeln!(t, r#"{{"t":"{}","type":"usage","uid":"f","lane":"realtime","speech_ms":60000}}"#, ts(m)).unwrap();
    }
    writeln!(t, r#"{{"t":"{}","type":"plan","uid":"f","plan":"paid","credits_exhausted":false}}"#, ts(300)).unwrap();
    let (out, summary) = run(&t, &Policy::default(), SimClassifier::Scripted);
    let all = lines(&out);
    let classified = all.iter().find(|l| l["type"] == "classified").expect("classified");
    assert_eq!(classified["usage_type"], "free_exhausted");
    assert_eq!(classified["misuse_score"], 1.0);
    let cleared = all.iter().rfind(|l| l["type"] == "stage_changed").unwrap();
    assert_eq!((cleared["from"].as_str(), cleared["to"].as_str()), (Some("warning"), Some("none")));
    assert_eq!(minutes_after_start(cleared), 300);
    assert_eq!(summary.stages.none, 1);
}

#[test]
fn admin_reset_starts_a_new_counting_period() {
    // Warned and then one more qualifying run: prior = 1. After a reset, the next two qualifying
    // runs give warning, then warning again (prior 1 < 2), not throttle.
    let mut trace = continuous_abuser_trace(2);
    trace.push_str(&format!(
        "{{\"t\":\"{}\",\"type\":\"admin\",\"uid\":\"abuser\",\"action\":\"reset\"}}\n",
        ts(2 * 1440 + 1)
    ));
    for m in (2 * 1440 + 2)..=(3 * 1440) {
        trace.push_str(&format!("{{\"t\":\"{}\",\"type\":\"usage\",\"uid\":\"abuser\",\"lane\":\"realtime\",\"session_id\":\"s2\",\"cumulative_speech_ms\":{},\"stt_ms\":0}}\n", ts(m), (m - 2 * 1440) * 50_000));
    }
    let (out, _) = run(&trace, &Policy::default(), SimClassifier::Scripted);
    let after_reset: Vec<Value> = lines(&out)
        .into_iter()
        .filter(|l| l["type"] == "stage_changed" && minutes_after_start(l) > 2 * 1440 + 1)
        .collect();
    assert_eq!(after_reset.len(), 1, "{out}");
    assert_eq!(after_reset[0]["to"], "warning");
    assert!(out.contains("\"type\":\"admin_reset\""));
}

#[test]
fn shadow_mode_records_everything_and_holds_back_nothing() {
    let mut policy = Policy::default();
    policy.switches.mode = Mode::Shadow;
    policy.validate().unwrap();
    let (out, summary) = run(&continuous_abuser_trace(3), &policy, SimClassifier::Scripted);
    let all = lines(&out);
    let changes: Vec<&Value> = all.iter().filter(|l| l["type"] == "stage_changed").collect();
    assert_eq!(changes.len(), 3);
    assert!(changes.iter().all(|l| l["shadow"] == true));
    assert_eq!(summary.stt_ms_saved, 0);
    assert!(all.iter().any(|l| l["type"] == "budget_exhausted" && l["shadow"] == true));
}

#[test]
fn kill_switch_stops_detection_but_keeps_the_trace_valid() {
    let mut policy = Policy::default();
    policy.switches.kill_switch = true;
    policy.validate().unwrap();
    let (out, summary) = run(&continuous_abuser_trace(2), &policy, SimClassifier::Scripted);
    assert!(!out.contains("classified"), "{out}");
    assert_eq!((summary.classifier_runs, summary.stt_ms_saved), (0, 0));
}

#[test]
fn exempt_users_are_metered_but_never_classified_or_budgeted() {
    let mut policy = Policy::default();
    policy.switches.exempt_uids.insert("abuser".into());
    policy.validate().unwrap();
    let (out, summary) = run(&continuous_abuser_trace(2), &policy, SimClassifier::Scripted);
    assert_eq!(summary.classifier_runs, 0, "{out}");
    assert_eq!(summary.stt_ms_saved, 0);
}

#[test]
fn a_bad_line_is_an_error_naming_the_line_and_the_field() {
    let policy = Policy::default();
    let cases = [
        (r#"{"t":"2026-03-02T00:00:00Z","type":"usage","uid":"bad uid","lane":"realtime","speech_ms":1}"#, "uid"),
        (r#"{"t":"2026-03-02T00:00:00Z","type":"usage","uid":"u","lane":"video","speech_ms":1}"#, "lane"),
        (r#"{"t":"2026-03-02T00:00:00Z","type":"usage","uid":"u","lane":"realtime","speech_ms":-5}"#, "speech_ms"),
        (r#"{"t":"yesterday","type":"tick"}"#, "t:"),
        (r#"{"t":"2026-03-02T00:00:00Z","type":"usage","uid":"u","speech_ms":1,"spech":2}"#, "spech"),
        (r#"{"t":"2026-03-02T00:00:00Z","type":"plan","uid":"u","plan":"gold"}"#, "plan"),
        (r#"{"t":"2026-03-02T00:00:00Z","type":"usage","uid":"u","speech_ms":1,"at":"2026-03-02T00:06:00Z"}"#, "at"),
    ];
    for (line, field) in cases {
        let trace = format!("{{\"t\":\"2026-03-01T00:00:00Z\",\"type\":\"tick\"}}\n{line}\n");
        let err =
            Simulator::new(&policy, SimClassifier::Scripted, Vec::new()).run(trace.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("trace line 2:") && err.contains(field), "{line} -> {err}");
    }
    let backwards = format!("{{\"t\":\"{}\",\"type\":\"tick\"}}\n{{\"t\":\"{}\",\"type\":\"tick\"}}\n", ts(10), ts(0));
    let err =
        Simulator::new(&policy, SimClassifier::Scripted, Vec::new()).run(backwards.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("time order"), "{err}");
}

/// A `stream_session` line: the latest snapshot of a gateway stream, as `export-trace` writes it.
fn session_line(minute: i64, id: &str, speech_min: i64, closed: bool) -> String {
    let s = serde_json::json!({
        "session_id": id, "started_at": ts(0), "updated_at": ts(minute), "duration_ms": minute * MS_PER_MINUTE,
        "speech_ms": speech_min * MS_PER_MINUTE, "stt_ms": speech_min * MS_PER_MINUTE, "longest_speech_ms": 90_000,
        "pause_count": 4, "pause_mean_ms": 900, "pause_median_ms": 800, "longest_pause_ms": 2_000, "closed": closed,
    });
    format!(r#"{{"t":"{}","type":"stream_session","uid":"u","session":{s}}}"#, ts(minute))
}

#[test]
fn stream_session_lines_reach_the_classifier_input_as_the_latest_snapshot_of_each_session() {
    let mut t = String::new();
    for m in 1..=360 {
        writeln!(
            t,
            r#"{{"t":"{}","type":"usage","uid":"u","lane":"realtime","speech_ms":50000,"stt_ms":60000}}"#,
            ts(m)
        )
        .unwrap();
        if m == 60 || m == 179 {
            writeln!(t, "{}", session_line(m, "gw-1", m * 5 / 6, m == 179)).unwrap();
        }
        if m == 180 {
            writeln!(t, "{}", session_line(m, "gw-2", 1, false)).unwrap();
        }
    }
    let policy = Policy::default();
    let mut out = Vec::new();
    let (_, log) = Simulator::new(&policy, SimClassifier::Heuristic, &mut out)
        .with_verdict_inputs()
        .run_logged(t.as_bytes())
        .expect("trace replays");
    let runs: Vec<_> = log.iter().filter_map(|r| r.input.as_ref().map(|i| (r.t.clone(), i.sessions.clone()))).collect();
    assert_eq!(runs.len(), 2, "judged when the 2 h cap is crossed and again after the 3 h recheck: {runs:?}");
    let first: Vec<(&str, bool)> = runs[0].1.iter().map(|s| (s.session_id.as_str(), s.closed)).collect();
    assert_eq!(first, [("gw-1", false)], "the first run sees the open stream's first snapshot");
    let last = &runs[1].1;
    let ids: Vec<&str> = last.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids, ["gw-1", "gw-2"], "{runs:?}");
    assert!(last[0].closed && last[0].speech_ms == 149 * MS_PER_MINUTE, "the later snapshot replaced the first");
}

#[test]
fn a_stream_session_line_without_a_session_or_stamped_after_its_line_is_refused() {
    let policy = Policy::default();
    let missing = format!(r#"{{"t":"{}","type":"stream_session","uid":"u"}}"#, ts(1));
    let later =
        session_line(5, "gw-1", 1, false).replacen(&format!(r#""t":"{}""#, ts(5)), &format!(r#""t":"{}""#, ts(4)), 1);
    for (trace, want) in [(missing, "session: missing"), (later, "session.updated_at")] {
        let mut out = Vec::new();
        let e = Simulator::new(&policy, SimClassifier::Heuristic, &mut out).run(trace.as_bytes()).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
}
