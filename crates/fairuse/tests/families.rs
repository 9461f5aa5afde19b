//! `fairuse gen-families` on the shipped family files (`bench/families`): the files parse and
//! both sets are represented, the trace is deterministic and every line is a valid `simulate`
//! line in time order, no conversation is reported before it finished, abusers and honest users
//! look like their family says, the labels name exactly the trace's users, and `fairuse eval`
//! reports each set apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use fairuse::eval::{Labels, evaluate};
use fairuse::families::{FamilySet, Kind, Options, generate, load_dir};
use fairuse::sim::{SimClassifier, Simulator};
use fairuse_domain::policy::Policy;
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, Timestamp};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/families")
}

const START: &str = "2026-03-02T00:00:00Z";

fn opts(users_per_family: u32, days: u32, seed: u64) -> Options {
    let start = Timestamp::parse_rfc3339(START).expect("start").millis();
    Options { users_per_family, days, seed, start_ms: start }
}

fn population(o: &Options) -> (Vec<u8>, Vec<u8>) {
    let families = load_dir(&dir()).expect("family files");
    let (mut trace, mut labels) = (Vec::new(), Vec::new());
    generate(&families, o, &mut trace, Some(&mut labels)).expect("generate");
    (trace, labels)
}

fn ms(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().expect("a time")).expect("RFC 3339").millis()
}

#[test]
fn every_family_file_parses_and_both_sets_hold_abusers_and_honest_families() {
    let families = load_dir(&dir()).expect("family files");
    let count = |set: FamilySet, kind: Kind| families.iter().filter(|f| f.set == set && f.kind == kind).count();
    assert!(count(FamilySet::HeldOut, Kind::Abuser) >= 2, "held-out abuser families");
    assert!(count(FamilySet::HeldOut, Kind::Honest) >= 2, "held-out honest families");
    assert!(count(FamilySet::Tuning, Kind::Abuser) >= 1 && count(FamilySet::Tuning, Kind::Honest) >= 1);
    assert!(families.iter().filter(|f| f.kind == Kind::Abuser).count() >= 4);
    assert!(families.iter().filter(|f| f.kind == Kind::Honest).count() >= 4);
    let mut languages = BTreeSet::new();
    for f in &families {
        let titles: usize =
            f.languages.values().map(|l| l.summaries.len() + l.media_titles.len() + l.neutral_titles.len()).sum();
        assert!(titles >= 24, "{}: only {titles} titles", f.name);
        if f.kind == Kind::Abuser {
            assert!(f.daily_hours[0] >= 15.0 && f.daily_hours[1] <= 22.0, "{}", f.name);
            assert!(f.density[0] >= 0.6 && f.density[1] <= 0.96, "{}", f.name);
            assert!(f.usage_type.is_some(), "{}: abusers name the usage type a right verdict gives", f.name);
        } else {
            // An auctioneer or a dubbing actor is as dense as a recording; honest density is a job's.
            assert!(f.density[0] >= 0.15 && f.density[1] <= 0.95, "{}", f.name);
            assert!(f.speakers[1] >= 2, "{}: honest families talk with people", f.name);
        }
        languages.extend(f.languages.keys().cloned());
    }
    for code in ["en", "es", "de", "fr", "pt"] {
        assert!(languages.contains(code), "no family in {code}");
    }
    assert!(languages.iter().any(|c| ["ja", "ru", "zh", "ko", "ar"].contains(&c.as_str())), "a non-Latin script");
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let (a, la) = population(&opts(2, 1, 1));
    let (b, lb) = population(&opts(2, 1, 1));
    let (c, _) = population(&opts(2, 1, 2));
    assert!(a == b && la == lb, "deterministic for a seed");
    assert_ne!(a, c, "another seed, another trace");
}

#[test]
fn the_trace_simulates_in_time_order_and_conversations_come_after_they_finish() {
    let o = opts(3, 2, 7);
    let (trace, labels) = population(&o);
    let summary = Simulator::new(&Policy::default(), SimClassifier::Heuristic, std::io::sink())
        .run(trace.as_slice())
        .expect("every line is a valid simulate line");
    let families = load_dir(&dir()).expect("family files");
    assert_eq!(summary.users, 3 * families.len() as u64);

    let mut last = i64::MIN;
    let mut per_user: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new(); // first usage, speech, usage lines
    let mut conversations = 0;
    let mut ticks = 0;
    let mut uids = BTreeSet::new();
    for line in trace.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).expect("JSON");
        let t = ms(&v["t"]);
        assert!(t >= last, "time order");
        last = t;
        match v["type"].as_str() {
            Some("tick") => ticks += 1,
            Some("usage") => {
                let uid = v["uid"].as_str().expect("uid").to_owned();
                let speech = v["speech_ms"].as_i64().expect("speech_ms");
                let stt = v["stt_ms"].as_i64().expect("stt_ms");
                assert!((0..=stt).contains(&speech) && stt <= 60_000, "{v}");
                assert_eq!(v["lane"], "realtime");
                let e = per_user.entry(uid).or_insert((t, 0, 0));
                e.1 += speech;
                e.2 += 1;
            }
            Some("conversation") => {
                conversations += 1;
                let c = &v["conversation"];
                let (started, finished) = (ms(&c["started_at"]), ms(&c["finished_at"]));
                assert!(started < finished && finished <= t, "never dated in the future: {v}");
                assert!(t - finished <= 130_000, "reported within about two minutes: {v}");
                assert!(started >= o.start_ms && finished <= o.start_ms + i64::from(o.days) * MS_PER_DAY, "{v}");
                for field in ["conversation_id", "title", "overview", "category", "source"] {
                    assert!(c[field].as_str().is_some_and(|s| !s.trim().is_empty()), "{field}: {v}");
                }
                let title = c["title"].as_str().unwrap_or_default();
                assert!(!title.contains('{') && !title.contains('}'), "placeholders filled: {title}");
            }
            Some("plan") => {
                assert_eq!(t, o.start_ms, "plans come first");
                uids.insert(v["uid"].as_str().expect("uid").to_owned());
            }
            other => panic!("unexpected line type {other:?}"),
        }
    }
    assert_eq!(ticks, 2 * 24 + 1, "an hourly tick from start to end");
    assert!(conversations > 0);

    // The labels name exactly the trace's users, with their family's kind and set.
    let by_name: BTreeMap<&str, _> = families.iter().map(|f| (f.name.as_str(), f)).collect();
    let mut labelled = BTreeSet::new();
    for line in labels.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let l: Value = serde_json::from_slice(line).expect("label JSON");
        let uid = l["uid"].as_str().expect("uid");
        let f = by_name[l["family"].as_str().expect("family")];
        assert_eq!(l["kind"].as_str(), Some(f.label_kind().as_str()));
        assert_eq!(l["set"].as_str(), Some(f.set.as_str()));
        assert!(uid.starts_with(&format!("{}-", f.name)));
        assert!(labelled.insert(uid.to_owned()), "{uid} labelled twice");
        // Abusers stream from the first hour and far above the caps; honest users speak for hours,
        // at their job's density (an auctioneer's is a recording's).
        let (first, speech, lines) = per_user[uid];
        let speech_h_per_day = speech as f64 / MS_PER_HOUR as f64 / f64::from(o.days);
        let density = speech as f64 / (lines as f64 * 60_000.0);
        match f.kind {
            Kind::Abuser => {
                assert!(first - o.start_ms < MS_PER_HOUR, "{uid} starts in the first hour");
                assert!(speech_h_per_day > 8.0, "{uid}: {speech_h_per_day:.1} h of speech a day");
                assert!(density > 0.6, "{uid}: density {density:.2}");
            }
            Kind::Honest => {
                assert!((0.5..9.0).contains(&speech_h_per_day), "{uid}: {speech_h_per_day:.1} h of speech a day");
                assert!((0.15..0.95).contains(&density), "{uid}: density {density:.2}");
            }
        }
    }
    assert_eq!(labelled, uids, "one label per user of the trace");
}

#[test]
fn eval_reports_the_tuning_and_held_out_families_apart() {
    let (trace, labels) = population(&opts(2, 2, 3));
    let labels = Labels::read(labels.as_slice()).expect("labels");
    let report = evaluate(&Policy::default(), SimClassifier::Heuristic, trace.as_slice(), &labels, 48).expect("eval");
    let families = load_dir(&dir()).expect("family files");
    assert_eq!(report.rows.len(), families.len(), "one row per family");
    for f in &families {
        let row = report.rows.iter().find(|r| r.kind == f.label_kind()).expect("row");
        assert_eq!(row.set.as_deref(), Some(f.set.as_str()));
        assert_eq!(row.users, 2);
        assert_eq!(row.honest, f.kind == Kind::Honest);
    }
    let held = report.set("held_out").expect("held-out summary");
    let tuning = report.set("tuning").expect("tuning summary");
    assert_eq!(report.sets[0].set, "held_out", "held-out first");
    assert_eq!(held.abusers + tuning.abusers, report.abusers());
    assert_eq!(held.honest_users + tuning.honest_users, report.honest_users());
    assert_eq!(held.goal_met, held.honest_warned == 0 && held.abusers_restricted_within * 100 >= held.abusers * 95);
    let md = report.markdown();
    assert!(md.contains("| held-out |") && md.contains("| tuning |"), "{md}");
    assert!(md.contains("Held-out (unseen) families:"), "{md}");
}

/// The duplicate-audio families (`bench/families_audio`): streams are written as `stream_session`
/// snapshots with the audio they heard, the snapshots of one stream share its id and end closed,
/// and through `eval` the playlist loopers (generic titles, their own audio again) are warned on
/// duplicate audio while no honest user is, the meeting pairs that hear the same live audio at
/// the same moment included.
#[test]
fn generic_titled_replayers_are_caught_by_duplicate_audio_and_co_located_pairs_are_not() {
    let audio_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/families_audio");
    let families = load_dir(&audio_dir).expect("audio family files");
    assert!(families.iter().all(|f| f.audio.is_some()), "every audio family says what the gateway hears");
    let (mut trace, mut labels) = (Vec::new(), Vec::new());
    generate(&families, &opts(2, 2, 5), &mut trace, Some(&mut labels)).expect("generate");
    let mut snapshots: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let mut heard: BTreeMap<String, usize> = BTreeMap::new();
    for line in trace.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).expect("JSON line");
        if v["type"] == "stream_session" {
            // A quarter hour of silence between conversations is a snapshot with no audio.
            let segments = v["audio"].as_array().map(Vec::len).unwrap_or_else(|| panic!("audio: {v}"));
            let id = v["session"]["session_id"].as_str().expect("session id").to_owned();
            *heard.entry(id.clone()).or_default() += segments;
            snapshots.entry(id).or_default().push(v["session"]["closed"].as_bool().expect("closed"));
        }
    }
    assert!(!snapshots.is_empty());
    assert!(heard.values().all(|n| *n > 0), "every stream heard something: {heard:?}");
    for (id, closed) in &snapshots {
        assert_eq!(closed.last(), Some(&true), "{id} ends closed");
        assert!(closed[..closed.len() - 1].iter().all(|c| !c), "{id}: only the last snapshot is closed");
    }
    let labels = Labels::read(labels.as_slice()).expect("labels");
    let report = evaluate(&Policy::default(), SimClassifier::Heuristic, trace.as_slice(), &labels, 48).expect("eval");
    let row = |kind: &str| report.rows.iter().find(|r| r.kind == kind).expect("row");
    let loopers = row("abuser_playlist_loop_generic");
    assert_eq!(loopers.warned, loopers.users, "{loopers:?}");
    assert_eq!(report.false_warnings(), 0, "{:?}", report.rows);
    let pairs = row("honest_meeting_room_pairs");
    assert!(pairs.classified > 0, "the pairs are heavy enough to be judged: {pairs:?}");
}
