use std::collections::{BTreeMap, BTreeSet};

use fairuse_domain::classifier::{Conversation, Recipe, select_recipes};
use fairuse_domain::time::Timestamp;
use serde_json::Value;

use super::model::{MAX_DAILY_SPEECH_MIN, user_day_speech_minutes};
use super::rng::Rng;
use super::*;

fn args(users: u64, days: u32, abusers: f64, seed: u64) -> GenTraceArgs {
    GenTraceArgs {
        users,
        days,
        abusers,
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

fn trace(a: &GenTraceArgs) -> (Vec<u8>, GenSummary) {
    let mut buf = Vec::new();
    let summary = generate(a, &mut buf, &mut |_, _| {}).expect("generate");
    (buf, summary)
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let (a, sa) = trace(&args(40, 2, 0.1, 7));
    let (b, sb) = trace(&args(40, 2, 0.1, 7));
    let (c, _) = trace(&args(40, 2, 0.1, 8));
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    assert_ne!(a, c);
}

#[test]
fn lines_are_json_in_time_order_with_t_and_type_first() {
    let a = args(60, 2, 0.05, 1);
    let (bytes, summary) = trace(&a);
    let text = std::str::from_utf8(&bytes).expect("utf-8");
    let mut previous = i64::MIN;
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let after_t = line.strip_prefix("{\"t\":\"").unwrap_or_else(|| panic!("t first: {line}"));
        let t_end = after_t.find('"').expect("t closes");
        assert!(after_t[t_end..].starts_with("\",\"type\":\""), "type second: {line}");
        let v: Value = serde_json::from_str(line).expect("JSON");
        let t = Timestamp::parse_rfc3339(v["t"].as_str().expect("t")).expect("RFC 3339").millis();
        assert!(t >= previous, "out of order: {line}");
        previous = t;
        *kinds.entry(v["type"].as_str().expect("type").to_owned()).or_default() += 1;
    }
    assert_eq!(summary.lines, text.lines().count() as u64);
    assert_eq!(summary.usage_lines, kinds["usage"]);
    assert_eq!(kinds["tick"], 48);
    assert_eq!(kinds["plan"], 60);
    assert!(kinds["conversation"] > 0);
    let end = Timestamp::parse_rfc3339("2026-03-04T00:00:00Z").expect("end").millis();
    assert_eq!(previous, end, "the last line is the last tick");
}

#[test]
fn session_totals_never_decrease_and_speech_fits_in_forwarded_audio() {
    let (bytes, _) = trace(&args(80, 2, 0.05, 3));
    let mut last: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut sync = 0;
    for v in lines(&bytes) {
        if v["type"] != "usage" {
            continue;
        }
        let stt = v["stt_ms"].as_i64().expect("stt_ms");
        match v["lane"].as_str() {
            Some("realtime") => {
                let sid = v["session_id"].as_str().expect("session_id").to_owned();
                let speech = v["cumulative_speech_ms"].as_i64().expect("cumulative_speech_ms");
                assert!(speech <= stt, "more speech than audio: {v}");
                if let Some(&(s, a)) = last.get(&sid) {
                    assert!(speech >= s && stt > a, "a session total went down: {v}");
                    assert!(stt - a <= 60_000, "flushes are at most 60 s apart: {v}");
                }
                last.insert(sid, (speech, stt));
            }
            Some("sync_fresh") => {
                sync += 1;
                let speech = v["speech_ms"].as_i64().expect("speech_ms");
                assert!(speech <= stt && v["idempotency_key"].is_string(), "{v}");
            }
            other => panic!("unexpected lane {other:?}"),
        }
    }
    assert!(!last.is_empty() && sync > 0, "both lanes appear");
}

#[test]
fn daily_speech_matches_the_section_1_percentiles() {
    let mut rng = Rng::new(2026);
    let mut draws: Vec<f64> = (0..200_000)
        .map(|_| {
            let z_user = rng.normal();
            user_day_speech_minutes(z_user, &mut rng)
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    let (median, p95, p99) = (quantile(&draws, 0.5), quantile(&draws, 0.95), quantile(&draws, 0.99));
    let near = |x: f64, want: f64| (x - want).abs() <= 0.1 * want;
    assert!(near(median, 12.7), "median {median:.1} min");
    assert!(near(p95, 126.0), "P95 {p95:.1} min");
    assert!(near(p99, 204.0), "P99 {p99:.1} min");
    assert!(draws[draws.len() - 1] <= MAX_DAILY_SPEECH_MIN);
}

#[test]
fn abusers_are_the_requested_share_spread_over_the_types_and_far_over_the_caps() {
    let a = args(100, 2, 0.05, 11);
    let (bytes, summary) = trace(&a);
    assert_eq!(summary.abusers, 5);
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut speech: BTreeMap<String, i64> = BTreeMap::new();
    let mut last_session: BTreeMap<String, i64> = BTreeMap::new();
    for v in lines(&bytes) {
        let uid = v["uid"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str() {
            Some("verdict") if v["usage_type"] != "none" => {
                assert!(v["misuse_score"].as_f64().expect("score") >= 0.85);
                types.insert(uid, v["usage_type"].as_str().expect("type").to_owned());
            }
            Some("verdict") => assert_eq!(v["misuse_score"].as_f64(), Some(0.1)),
            Some("usage") if v["lane"] == "realtime" => {
                let total = v["cumulative_speech_ms"].as_i64().expect("total");
                let sid = v["session_id"].as_str().expect("sid").to_owned();
                last_session.insert(sid, total);
            }
            _ => {}
        }
    }
    for (sid, total) in &last_session {
        let uid = sid.split('-').next().expect("uid").to_owned();
        *speech.entry(uid).or_default() += total;
    }
    let kinds: BTreeSet<&str> = types.values().map(String::as_str).collect();
    assert_eq!(kinds, BTreeSet::from(["audiobook", "podcast", "tv_movie", "prerecorded", "commercial"]));
    for uid in types.keys() {
        let per_day_h = speech[uid] as f64 / 2.0 / MS_PER_HOUR as f64;
        assert!(per_day_h > 10.0, "{uid} speaks only {per_day_h:.1} h/day");
    }
    // No abusers requested, none generated; all of them when the share is 1.
    assert_eq!(trace(&args(30, 1, 0.0, 1)).1.abusers, 0);
    assert_eq!(trace(&args(30, 1, 1.0, 1)).1.abusers, 30);
    assert_eq!(trace(&args(30, 1, 0.02, 1)).1.abusers, 1, "rounded to nearest");
}

#[test]
fn conversations_parse_as_domain_metadata_and_abusers_meet_their_recipes() {
    let (bytes, _) = trace(&args(20, 3, 0.25, 5));
    let mut convs: BTreeMap<String, Vec<Conversation>> = BTreeMap::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    for v in lines(&bytes) {
        let uid = v["uid"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str() {
            Some("conversation") => {
                let c: Conversation = serde_json::from_value(v["conversation"].clone()).expect("conversation");
                assert!(c.finished_at >= c.started_at && c.finished_at.to_rfc3339() == v["t"]);
                convs.entry(uid).or_default().push(c);
            }
            Some("verdict") => {
                types.insert(uid, v["usage_type"].as_str().expect("type").to_owned());
            }
            _ => {}
        }
    }
    let want = [
        ("audiobook", Recipe::Audiobook),
        ("podcast", Recipe::Podcast),
        ("prerecorded", Recipe::Prerecorded),
        ("commercial", Recipe::Commercial),
    ];
    for (ty, recipe) in want {
        let uid = types.iter().find(|(_, t)| t.as_str() == ty).map(|(u, _)| u.clone()).expect(ty);
        assert!(select_recipes(&convs[&uid]).contains(&recipe), "{ty} abuser {uid} misses {recipe:?}");
    }
}

fn labelled(a: &GenTraceArgs) -> (Vec<u8>, BTreeMap<String, String>) {
    let (mut buf, mut labels) = (Vec::new(), Vec::new());
    generate_with_labels(a, &mut buf, Some(&mut labels), &mut |_, _| {}).expect("generate");
    let labels = lines(&labels)
        .into_iter()
        .map(|v| (v["uid"].as_str().expect("uid").to_owned(), v["kind"].as_str().expect("kind").to_owned()))
        .collect();
    (buf, labels)
}

#[test]
fn labels_name_every_user_once_and_leave_the_trace_unchanged() {
    let a = args(400, 2, 0.05, 9);
    let (with, labels) = labelled(&a);
    let (without, summary) = trace(&a);
    assert_eq!(with, without, "labels go to their own writer");
    assert_eq!(labels.len(), 400);
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for kind in labels.values() {
        assert!(LABELS.contains(&kind.as_str()), "{kind}");
        *counts.entry(kind).or_default() += 1;
    }
    assert_eq!(counts.iter().filter(|(k, _)| k.starts_with("abuser_")).map(|(_, n)| n).sum::<u64>(), summary.abusers);
    assert_eq!(summary.abusers, 20);
    let heavy: u64 = counts.iter().filter(|(k, _)| **k != "honest" && !k.starts_with("abuser_")).map(|(_, n)| n).sum();
    assert_eq!((heavy, summary.heavy), (12, 12), "3 % of 400, round-robin over five kinds");
    assert_eq!(counts.len(), LABELS.len(), "every kind present: {counts:?}");
    // The abusers are the same users with or without heavy honest users.
    let mut b = a.clone();
    b.heavy = 0.0;
    let (_, plain) = labelled(&b);
    let abusers = |l: &BTreeMap<String, String>| {
        l.iter().filter(|(_, k)| k.starts_with("abuser_")).map(|(u, k)| (u.clone(), k.clone())).collect::<Vec<_>>()
    };
    assert_eq!(abusers(&labels), abusers(&plain));
}

#[test]
fn heavy_honest_users_speak_above_the_caps_about_what_their_label_says() {
    let a = args(500, 7, 0.0, 4);
    let (bytes, labels) = labelled(&a);
    let mut speech: BTreeMap<String, i64> = BTreeMap::new();
    let mut sessions: BTreeMap<String, i64> = BTreeMap::new();
    let mut titles: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut night_minutes: BTreeMap<String, i64> = BTreeMap::new();
    for v in lines(&bytes) {
        let uid = v["uid"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str() {
            Some("usage") if v["lane"] == "realtime" => {
                let sid = v["session_id"].as_str().expect("sid").to_owned();
                sessions.insert(sid, v["cumulative_speech_ms"].as_i64().expect("total"));
            }
            Some("usage") => *speech.entry(uid).or_default() += v["speech_ms"].as_i64().expect("speech"),
            Some("conversation") => {
                let kind = labels[&uid].as_str();
                let kind = LABELS.iter().find(|l| **l == kind).expect("label");
                titles.entry(kind).or_default().insert(v["conversation"]["title"].as_str().expect("title").into());
                if kind == &"honest_night_shift" {
                    let c: Conversation = serde_json::from_value(v["conversation"].clone()).expect("conversation");
                    let hour = c.started_at.millis().rem_euclid(MS_PER_DAY) / MS_PER_HOUR;
                    *night_minutes.entry(uid).or_default() +=
                        i64::from(!(6..20).contains(&hour)) * c.duration_minutes() as i64;
                }
            }
            _ => {}
        }
    }
    for (sid, total) in sessions {
        *speech.entry(sid.split('-').next().expect("uid").to_owned()).or_default() += total;
    }
    for kind in ["honest_heavy_meetings", "honest_lectures", "honest_calls", "honest_night_shift", "honest_family"] {
        let users: Vec<&String> = labels.iter().filter(|(_, k)| k.as_str() == kind).map(|(u, _)| u).collect();
        assert_eq!(users.len(), 3, "{kind}");
        let hours_per_day: f64 =
            users.iter().map(|u| speech[*u] as f64 / MS_PER_HOUR as f64 / 7.0).sum::<f64>() / users.len() as f64;
        // Above the 2 h daily cap on average (weekends included), and below an abuser's 16 h.
        assert!((2.0..10.0).contains(&hours_per_day), "{kind}: {hours_per_day:.1} h a day");
        assert!(titles[kind].len() >= 8, "{kind} titles are varied: {:?}", titles[kind]);
    }
    assert!(titles["honest_lectures"].iter().any(|t| t.contains("lecture — week")), "{:?}", titles["honest_lectures"]);
    assert!(night_minutes.values().all(|&m| m > 0), "night shifts speak at night (UTC hours vary by zone)");
}

#[test]
fn flags_can_drop_conversations_and_verdicts() {
    let mut a = args(30, 1, 0.1, 2);
    a.conversations = false;
    a.verdicts = false;
    let (bytes, _) = trace(&a);
    assert!(lines(&bytes).iter().all(|v| v["type"] != "conversation" && v["type"] != "verdict"));
}

#[test]
fn bad_arguments_are_refused_naming_the_flag() {
    let check = |a: GenTraceArgs, flag: &str| {
        let e = generate(&a, &mut Vec::new(), &mut |_, _| {}).expect_err("refused").to_string();
        assert!(e.contains(flag), "{e}");
    };
    check(args(10, 1, 1.5, 1), "--abusers must be between 0 and 1");
    check(args(10, 1, f64::NAN, 1), "--abusers");
    check(args(0, 1, 0.0, 1), "--users");
    check(args(10, 0, 0.0, 1), "--days");
    let mut a = args(10, 1, 0.0, 1);
    a.start = "monday".into();
    check(a, "--start");
}
