//! Coverage-style fuzzing of the inputs the service takes from outside, on the stable toolchain
//! (no libFuzzer): proptest feeds arbitrary and near-valid input to
//!
//! - `fairuse simulate` (arbitrary bytes, and SPEC section 8 trace lines with fields dropped,
//!   types swapped, numbers huge or negative and timestamps shuffled),
//! - the process configuration (`FAIRUSE__SECTION__KEY` variables) and Omi's `FAIR_USE_*`
//!   variables,
//! - the HTTP API, through the real router in process on a memory store,
//!
//! and checks that nothing panics or answers 5xx, that every refusal names the line, variable,
//! key or field it is about, and that usage accepted before the fuzzing is never lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fairuse::config::{Config, load_policy};
use fairuse::sim::{SimClassifier, SimError, Simulator, Summary};
use fairuse_domain::policy::Policy;
use fairuse_domain::store::MemoryStore;
use fairuse_domain::time::{DurationMs, MS_PER_DAY, MS_PER_MINUTE, Timestamp};
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, Service, Stores};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::Value;
use tower::ServiceExt;

fn config(cases: u32) -> ProptestConfig {
    // No regression files: a failure prints its minimal input.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- fairuse simulate -----------------------------------------------------------------------

static POLICY: LazyLock<Policy> = LazyLock::new(Policy::default);

fn simulate(input: &[u8]) -> (Result<Summary, SimError>, Vec<u8>) {
    let mut out = Vec::new();
    let result = Simulator::new(&POLICY, SimClassifier::Scripted, &mut out).run(input);
    (result, out)
}

/// The lines as the simulator reads them: each with its `\n`, the last one possibly without.
fn trace_lines(input: &[u8]) -> Vec<&[u8]> {
    input.split_inclusive(|&b| b == b'\n').collect()
}

/// Every field a trace line may carry.
const TRACE_FIELDS: [&str; 19] = [
    "t",
    "type",
    "uid",
    "lane",
    "speech_ms",
    "stt_ms",
    "session_id",
    "cumulative_speech_ms",
    "at",
    "idempotency_key",
    "plan",
    "credits_exhausted",
    "conversation",
    "misuse_score",
    "usage_type",
    "action",
    "stage",
    "until",
    "reason",
];

/// The fields of a conversation, in a trace line or a request.
const CONVERSATION_FIELDS: [&str; 9] = [
    "conversation_id",
    "title",
    "overview",
    "category",
    "started_at",
    "finished_at",
    "source",
    "speaker_count",
    "word_count",
];

/// Whether a message quotes, in backticks as serde does for unknown, missing and duplicate fields
/// ("unknown field `x`"), a name that `is_field` accepts.
fn quotes_a_field(message: &str, is_field: impl Fn(&str) -> bool) -> bool {
    message.split('`').skip(1).step_by(2).any(is_field)
}

/// What every outcome of a simulation must look like. `objects` says that every non-blank line
/// of the input is a well-formed JSON object, so that a refusal must name a field.
fn check_simulation(input: &[u8], objects: bool) -> Result<(), TestCaseError> {
    let (result, out) = simulate(input);
    let lines = trace_lines(input);
    match result {
        Ok(summary) => {
            let text = String::from_utf8(out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let outputs: Vec<&str> = text.lines().collect();
            let (last, events) = outputs.split_last().ok_or_else(|| TestCaseError::fail("no output at all"))?;
            let last: Value = serde_json::from_str(last).map_err(|e| TestCaseError::fail(format!("{e}: {last}")))?;
            prop_assert_eq!(&last["type"], "summary", "{}", last);
            prop_assert_eq!(last["users"].as_u64(), Some(summary.users), "{}", last);
            let per_stage: u64 = ["none", "warning", "throttle", "restrict"]
                .iter()
                .map(|s| last["stages"][s].as_u64().unwrap_or(u64::MAX / 8))
                .sum();
            prop_assert_eq!(per_stage, summary.users, "{}", last);
            prop_assert_eq!(last["classifier_runs"].as_u64(), Some(summary.classifier_runs), "{}", last);
            prop_assert_eq!(last["stt_ms_saved"].as_i64(), Some(summary.stt_ms_saved), "{}", last);
            for line in events {
                let v: Value = serde_json::from_str(line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
                prop_assert!(v["type"].is_string() && v["uid"].is_string(), "{}", line);
                let t = v["t"].as_str().unwrap_or_default();
                prop_assert!(Timestamp::parse_rfc3339(t).is_ok(), "output t is not RFC 3339: {}", line);
            }
        }
        Err(e @ SimError::Line { .. }) => {
            let SimError::Line { line, .. } = &e else { unreachable!() };
            let n = *line as usize;
            let msg = e.to_string();
            prop_assert!(msg.starts_with(&format!("trace line {n}: ")), "{}", msg);
            prop_assert!((1..=lines.len()).contains(&n), "line {} of {}: {}", n, lines.len(), msg);
            // Line n is the first bad one: the lines before it replay, and it fails on its own.
            let before = simulate(&lines[..n - 1].concat()).0;
            prop_assert!(before.is_ok(), "{} but the lines before it fail: {:?}", msg, before.err());
            let through = simulate(&lines[..n].concat()).0.err().map(|e| e.to_string());
            prop_assert_eq!(through.as_deref(), Some(msg.as_str()));
            if objects {
                let rest = &msg[format!("trace line {n}: ").len()..];
                let bad_line = String::from_utf8_lossy(lines[n - 1]);
                match rest.strip_prefix("not a trace line: ") {
                    Some(json_error) => prop_assert!(
                        quotes_a_field(json_error, |name| {
                            TRACE_FIELDS.contains(&name)
                                || CONVERSATION_FIELDS.contains(&name)
                                || bad_line.contains(&json_str(name))
                        }),
                        "the error does not name a field: {}",
                        msg
                    ),
                    None => {
                        let path = rest.split(": ").next().unwrap_or_default();
                        let field = path.split(['.', '[']).next().unwrap_or_default();
                        let unknown = rest.contains(&format!("unknown field `{field}`"));
                        prop_assert!(
                            TRACE_FIELDS.contains(&field) || unknown,
                            "the error does not start with a field: {}",
                            msg
                        );
                    }
                }
            }
        }
        Err(e @ SimError::Read(_)) => {
            let msg = e.to_string();
            prop_assert!(msg.starts_with("reading the trace: "), "{}", msg);
            let first_bad = lines.iter().position(|l| std::str::from_utf8(l).is_err());
            prop_assert!(first_bad.is_some(), "a read error on valid UTF-8: {}", msg);
            let before = simulate(&lines[..first_bad.unwrap_or(0)].concat()).0;
            prop_assert!(before.is_ok(), "{} but the lines before it fail: {:?}", msg, before.err());
        }
        Err(e @ SimError::Write(_)) => prop_assert!(false, "writing to memory failed: {}", e),
    }
    Ok(())
}

const TRACE_START_MS: i64 = 1_772_409_600_000; // 2026-03-02T00:00:00Z

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// One trace line as `(field, raw JSON value text)` pairs: raw text, so that a line may hold
/// numbers serde_json cannot (`1e400`).
type RawLine = Vec<(String, String)>;

fn render_line(fields: &RawLine) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", json_str(k))).collect();
    format!("{{{}}}", body.join(","))
}

fn rfc(ms: i64) -> String {
    json_str(&Timestamp::from_millis(ms).to_rfc3339())
}

/// A valid line of SPEC section 8, before its time is chosen.
#[derive(Debug, Clone)]
enum BaseLine {
    Usage { uid: &'static str, lane: &'static str, ms: i64, with_at: bool },
    Session { uid: &'static str, session: &'static str, total: i64 },
    Plan { uid: &'static str, plan: &'static str, exhausted: bool },
    Conversation { uid: &'static str, c: u32 },
    Verdict { uid: &'static str, score: u32, ty: &'static str },
    Admin { uid: &'static str, stage: &'static str, reset: bool, days: i64 },
    Tick,
}

impl BaseLine {
    fn at(&self, t: i64) -> RawLine {
        let head = |kind: &str, uid: Option<&str>| {
            let mut l: RawLine = vec![("t".into(), rfc(t)), ("type".into(), json_str(kind))];
            l.extend(uid.map(|u| ("uid".to_owned(), json_str(u))));
            l
        };
        let mut l;
        match *self {
            BaseLine::Usage { uid, lane, ms, with_at } => {
                l = head("usage", Some(uid));
                l.push(("lane".into(), json_str(lane)));
                l.push(("speech_ms".into(), ms.to_string()));
                l.push(("stt_ms".into(), (ms + ms / 10).to_string()));
                if with_at {
                    l.push(("at".into(), rfc(t - 90_000)));
                    l.push(("idempotency_key".into(), json_str(&format!("k{}", t % 7))));
                }
            }
            BaseLine::Session { uid, session, total } => {
                l = head("usage", Some(uid));
                l.push(("lane".into(), json_str("realtime")));
                l.push(("session_id".into(), json_str(session)));
                l.push(("cumulative_speech_ms".into(), total.to_string()));
                l.push(("stt_ms".into(), total.to_string()));
            }
            BaseLine::Plan { uid, plan, exhausted } => {
                l = head("plan", Some(uid));
                l.push(("plan".into(), json_str(plan)));
                l.push(("credits_exhausted".into(), exhausted.to_string()));
            }
            BaseLine::Conversation { uid, c } => {
                l = head("conversation", Some(uid));
                let conversation = format!(
                    concat!(
                        r#"{{"conversation_id":"c{c}","title":"Chapter {c}","overview":"a reading","#,
                        r#""category":"other","started_at":{},"finished_at":{},"source":"omi","#,
                        r#""speaker_count":1,"word_count":9000}}"#,
                    ),
                    rfc(t - 3_600_000),
                    rfc(t),
                    c = c,
                );
                l.push(("conversation".into(), conversation));
            }
            BaseLine::Verdict { uid, score, ty } => {
                l = head("verdict", Some(uid));
                l.push(("misuse_score".into(), format!("{}", f64::from(score) / 100.0)));
                l.push(("usage_type".into(), json_str(ty)));
            }
            BaseLine::Admin { uid, stage, reset, days } => {
                l = head("admin", Some(uid));
                if reset {
                    l.push(("action".into(), json_str("reset")));
                    l.push(("reason".into(), json_str("appeal upheld")));
                } else {
                    l.push(("action".into(), json_str("set_stage")));
                    l.push(("stage".into(), json_str(stage)));
                    l.push(("until".into(), rfc(t + days * MS_PER_DAY)));
                }
            }
            BaseLine::Tick => l = head("tick", None),
        }
        l
    }
}

fn base_line() -> impl Strategy<Value = BaseLine> {
    let uid = || select(vec!["u1", "u2", "u3"]);
    prop_oneof![
        3 => (
            uid(),
            select(vec!["realtime", "sync_fresh", "sync_backfill", "custom_stt"]),
            0i64..=3_600_000,
            any::<bool>(),
        )
            .prop_map(|(uid, lane, ms, with_at)| BaseLine::Usage { uid, lane, ms, with_at }),
        2 => (uid(), select(vec!["s1", "s2"]), 0i64..=36_000_000)
            .prop_map(|(uid, session, total)| BaseLine::Session { uid, session, total }),
        1 => (uid(), select(vec!["free", "paid", "unlimited"]), any::<bool>())
            .prop_map(|(uid, plan, exhausted)| BaseLine::Plan { uid, plan, exhausted }),
        1 => (uid(), 0u32..=99).prop_map(|(uid, c)| BaseLine::Conversation { uid, c }),
        1 => (uid(), 0u32..=100, select(vec!["audiobook", "podcast", "tv", "none", "unknown"]))
            .prop_map(|(uid, score, ty)| BaseLine::Verdict { uid, score, ty }),
        1 => (uid(), select(vec!["warning", "throttle", "restrict", "none"]), any::<bool>(), 1i64..=40)
            .prop_map(|(uid, stage, reset, days)| BaseLine::Admin { uid, stage, reset, days }),
        1 => Just(BaseLine::Tick),
    ]
}

#[derive(Debug, Clone)]
enum TraceMutation {
    DropField(Index, Index),
    /// A field's value replaced by one of another type, a huge or negative number, or a string.
    ReplaceValue(Index, Index, String),
    SwapTimes(Index, Index),
    AddField(Index, String, String),
    /// A line replaced by arbitrary text (the trace is then no longer all JSON objects).
    Garbage(Index, String),
    Blank(Index),
}

fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec![
            "\"ten\"", "12", "-1", "0", "-0", "true", "null", "[]", "{}", "[1,2]", "{\"a\":1}", "1.5", "1e3",
            "9223372036854775807", "-9223372036854775808", "99999999999999999999", "1e400", "-1e400", "86400001",
            "691200001", "\"\"", "\"bad uid\"", "\"television\"", "\"gold\"", "\"set_stage\"", "\"reset\"",
            "\"restrict\"", "\"yesterday\"", "\"2026-02-30T00:00:00Z\"", "\"2026-03-01T00:00:00Z\"",
            "\"2026-03-02T05:00:00+23:59\"", "\"0000-01-01T00:00:00Z\"", "\"9999-12-31T23:59:59Z\"",
            "\"2026-03-02T00:00:00.123456789Z\"", "\"usage\"", "\"tick\"", "\"admin\"", "\"verdict\"", "\"bogus\"",
        ])
        .prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<String>().prop_map(|s| json_str(&s)),
    ]
}

fn trace_mutation() -> impl Strategy<Value = TraceMutation> {
    prop_oneof![
        2 => (any::<Index>(), any::<Index>()).prop_map(|(l, f)| TraceMutation::DropField(l, f)),
        4 => (any::<Index>(), any::<Index>(), odd_value()).prop_map(|(l, f, v)| TraceMutation::ReplaceValue(l, f, v)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TraceMutation::SwapTimes(a, b)),
        1 => (
            any::<Index>(),
            prop_oneof![select(TRACE_FIELDS.to_vec()).prop_map(str::to_owned), "[a-z_]{1,8}"],
            odd_value(),
        )
            .prop_map(|(l, k, v)| TraceMutation::AddField(l, k, v)),
        1 => (any::<Index>(), any::<String>()).prop_map(|(l, s)| TraceMutation::Garbage(l, s.replace('\n', " "))),
        1 => any::<Index>().prop_map(TraceMutation::Blank),
    ]
}

/// A trace of plausible lines in time order with some mutations; returns the text and whether
/// every non-blank line is still a JSON object.
fn mutated_trace() -> impl Strategy<Value = (String, bool)> {
    (
        prop::collection::vec((base_line(), 0i64..=600), 1..14),
        prop::collection::vec(trace_mutation(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(base, mutations, trailing_newline)| {
            let mut t = TRACE_START_MS;
            let mut lines: Vec<Option<RawLine>> = base
                .iter()
                .map(|(line, step)| {
                    t += step * MS_PER_MINUTE;
                    Some(line.at(t))
                })
                .collect();
            let mut garbage: BTreeMap<usize, String> = BTreeMap::new();
            for m in &mutations {
                let n = lines.len();
                match m {
                    TraceMutation::DropField(l, f) => {
                        if let Some(fields) = lines[l.index(n)].as_mut().filter(|f| !f.is_empty()) {
                            fields.remove(f.index(fields.len()));
                        }
                    }
                    TraceMutation::ReplaceValue(l, f, v) => {
                        if let Some(fields) = lines[l.index(n)].as_mut().filter(|f| !f.is_empty()) {
                            let i = f.index(fields.len());
                            fields[i].1 = v.clone();
                        }
                    }
                    TraceMutation::SwapTimes(a, b) => {
                        let (a, b) = (a.index(n), b.index(n));
                        let time = |l: &Option<RawLine>| {
                            l.as_ref().and_then(|f| f.iter().find(|(k, _)| k == "t")).map(|(_, v)| v.clone())
                        };
                        if let (Some(ta), Some(tb)) = (time(&lines[a]), time(&lines[b])) {
                            for (line, value) in [(a, tb), (b, ta)] {
                                if let Some(field) =
                                    lines[line].as_mut().and_then(|f| f.iter_mut().find(|(k, _)| k == "t"))
                                {
                                    field.1 = value;
                                }
                            }
                        }
                    }
                    TraceMutation::AddField(l, k, v) => {
                        if let Some(fields) = lines[l.index(n)].as_mut() {
                            fields.push((k.clone(), v.clone()));
                        }
                    }
                    TraceMutation::Garbage(l, s) => {
                        garbage.insert(l.index(n), s.clone());
                    }
                    TraceMutation::Blank(l) => lines[l.index(n)] = None,
                }
            }
            let objects = garbage.values().all(|g| g.trim().is_empty());
            let mut text: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| match (garbage.get(&i), l) {
                    (Some(g), _) => g.clone(),
                    (None, Some(fields)) => render_line(fields),
                    (None, None) => String::new(),
                })
                .collect();
            if trailing_newline {
                text.push(String::new());
            }
            (text.join("\n"), objects)
        })
}

/// Valid lines and arbitrary bytes, mixed.
fn mixed_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        Just(b"{\"t\":\"2026-03-02T00:00:00Z\",\"type\":\"tick\"}\n".to_vec()),
        Just(
            concat!(
                r#"{"t":"2026-03-02T00:01:00Z","type":"usage","uid":"u1","lane":"realtime","#,
                r#""speech_ms":60000}"#,
                "\n"
            )
            .as_bytes()
            .to_vec()
        ),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(vec![0xC3]),
        Just(vec![0xFF, b'\n']),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_as_a_trace_replay_or_fail_naming_the_first_bad_line(
        input in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        check_simulation(&input, false)?;
    }

    #[test]
    fn arbitrary_text_as_a_trace_replays_or_fails_naming_the_first_bad_line(input in any::<String>()) {
        check_simulation(input.as_bytes(), false)?;
    }

    #[test]
    fn valid_lines_mixed_with_arbitrary_bytes_replay_or_fail_naming_the_first_bad_line(input in mixed_bytes()) {
        check_simulation(&input, false)?;
    }

    #[test]
    fn a_mutated_trace_replays_or_fails_naming_the_first_bad_line_and_its_field((trace, objects) in mutated_trace()) {
        check_simulation(trace.as_bytes(), objects)?;
    }
}

// ---- configuration --------------------------------------------------------------------------

const CONFIG_KEYS: [(&str, &[&str]); 4] = [
    (
        "server",
        &[
            "listen",
            "data_dir",
            "policy",
            "trusted_proxy_header",
            "case_lookups_per_minute",
            "shutdown_grace",
            "log_format",
        ],
    ),
    ("workers", &["timer_interval", "redaction_interval", "policy_reload_interval", "prune_interval"]),
    ("webhook", &["url", "secret", "timeout", "base_backoff", "max_backoff"]),
    (
        "auth",
        &[
            "service_keys",
            "admin_keys",
            "jwt_hs256_secret",
            "firebase_project_id",
            "oidc_jwks_url",
            "oidc_issuer",
            "oidc_audience",
            "google_jwks_url",
        ],
    ),
];

/// The secret variables of SPEC section 7 and where they land.
const SECRET_VARS: [(&str, &str, &str); 10] = [
    ("FAIRUSE_SERVICE_KEYS", "auth", "service_keys"),
    ("FAIRUSE_ADMIN_KEYS", "auth", "admin_keys"),
    ("FAIRUSE_JWT_HS256_SECRET", "auth", "jwt_hs256_secret"),
    ("FAIRUSE_FIREBASE_PROJECT_ID", "auth", "firebase_project_id"),
    ("FAIRUSE_OIDC_JWKS_URL", "auth", "oidc_jwks_url"),
    ("FAIRUSE_OIDC_ISSUER", "auth", "oidc_issuer"),
    ("FAIRUSE_OIDC_AUDIENCE", "auth", "oidc_audience"),
    ("FAIRUSE_GOOGLE_JWKS_URL", "auth", "google_jwks_url"),
    ("FAIRUSE_WEBHOOK_URL", "webhook", "url"),
    ("FAIRUSE_WEBHOOK_SECRET", "webhook", "secret"),
];

fn case_variant(s: String, how: u8) -> String {
    match how % 4 {
        0 | 1 => s.to_ascii_uppercase(),
        2 => s,
        _ => s.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c }).collect(),
    }
}

fn config_var_name() -> impl Strategy<Value = String> {
    let known = (select(CONFIG_KEYS.to_vec()), any::<Index>(), any::<u8>()).prop_map(|((section, keys), i, how)| {
        case_variant(format!("FAIRUSE__{section}__{}", keys[i.index(keys.len())]), how)
    });
    prop_oneof![
        6 => known,
        1 => (select(vec!["server", "workers", "webhook", "auth", "bogus", ""]), "[a-z_]{0,10}")
            .prop_map(|(s, k)| format!("FAIRUSE__{s}__{k}").to_ascii_uppercase()),
        1 => select(vec![
            "FAIRUSE__SERVER", "FAIRUSE__SERVER__LISTEN__X", "FAIRUSE____", "FAIRUSE__SERVER__", "FAIRUSE__",
            "FAIRUSE__SERVER__LISTN", "FAIRUSE_LOG", "FAIRUSE_X", "PATH", "FAIR_USE_ENABLED",
        ])
        .prop_map(str::to_owned),
        2 => select(SECRET_VARS.iter().map(|s| s.0).collect::<Vec<_>>()).prop_map(str::to_owned),
    ]
}

fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec![
            "127.0.0.1:8080", "0.0.0.0:0", "[::1]:9000", "nowhere", "localhost:80", "text", "json", "xml", "30s", "2h",
            "90m", "7d", "1500", "0", "1", "-1", "-5", "4294967296", "true", "false", "9223372036854775807",
            "99999999999999999999", "99999999999d", "1e3", "", " ", "./data", "/tmp/fairuse policy.toml",
            "http://127.0.0.1:9/hook", "s3cret", "ops:operator:key-0123456789", "x-forwarded-for",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Whether a configuration error names one of the variables set, or the key one of them sets.
fn names_config_input(msg: &str, env: &BTreeMap<String, String>) -> bool {
    if msg.contains("FAIRUSE_WEBHOOK_SECRET") {
        return true;
    }
    env.keys().any(|name| {
        if msg.contains(name.as_str()) {
            return true;
        }
        let Some(rest) = name.strip_prefix("FAIRUSE__") else { return false };
        let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        match parts.as_slice() {
            [section, key] => {
                msg.contains(&format!("{section}.{key}"))
                    || msg.contains(&format!("`{key}`"))
                    || msg.contains(&format!("`{section}`"))
                    || msg.contains(&format!("[{section}]"))
            }
            _ => false,
        }
    })
}

/// The value a string-valued key must end up with: the last `FAIRUSE__` variable for it (in the
/// map's order), then the secret variable for it.
fn expected_value(env: &BTreeMap<String, String>, section: &str, key: &str) -> Option<String> {
    let mut value = None;
    for (name, v) in env {
        if let Some(rest) = name.strip_prefix("FAIRUSE__") {
            let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if parts.len() == 2 && parts[0] == section && parts[1] == key {
                value = Some(v.clone());
            }
        }
    }
    for (var, s, k) in SECRET_VARS {
        if s == section && k == key && env.contains_key(var) {
            value = env.get(var).cloned();
        }
    }
    value
}

const OMI_VARS: [&str; 13] = [
    "FAIR_USE_ENABLED",
    "FAIR_USE_KILL_SWITCH",
    "FAIR_USE_EXEMPT_UIDS",
    "FAIR_USE_DAILY_SPEECH_MS",
    "FAIR_USE_3DAY_SPEECH_MS",
    "FAIR_USE_WEEKLY_SPEECH_MS",
    "FAIR_USE_CHECK_INTERVAL_SECONDS",
    "FAIR_USE_CLASSIFIER_COOLDOWN_SECONDS",
    "FAIR_USE_CLASSIFIER_ABUSE_SCORE_THRESHOLD",
    "FAIR_USE_RESTRICT_DAILY_DG_MS",
    "FAIR_USE_BUCKET_SECONDS",
    "FAIR_USE_REDIS_RETENTION_SECONDS",
    "MAX_DAILY_AUDIO_HOURS",
];

fn omi_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec![
            "true", "TRUE", " true ", "false", "yes", "1", "0", "60", "300", "-1", "3600000", "7200000", "691200",
            "0.5", "0.7", "1.5", "NaN", "inf", "-0", "1e-3", "9223372036854775807", "9223372036854776",
            "18446744073709552", "99999999999999999999", "a, b", "bad uid", "u1,,u2", "", " ",
        ])
        .prop_map(str::to_owned),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_fairuse_variables_load_a_configuration_or_fail_naming_the_variable_or_key(
        vars in prop::collection::vec((config_var_name(), config_value()), 0..6),
    ) {
        let env: BTreeMap<String, String> = vars.into_iter().collect();
        match Config::load(None, &env) {
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(
                    names_config_input(&msg, &env),
                    "the error names no variable or key: {}",
                    msg
                );
            }
            Ok(config) => {
                let printed = toml::Table::try_from(&config).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let defaults =
                    toml::Table::try_from(Config::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                for (section, keys) in CONFIG_KEYS {
                    for key in keys {
                        let Some(want) = expected_value(&env, section, key) else { continue };
                        let got = &printed[section][*key];
                        match &defaults[section][*key] {
                            toml::Value::String(_) => {
                                let got = got.as_str().unwrap_or_default();
                                // Durations are printed in their short form: "60m" loads as "1h".
                                let same = got == want || DurationMs::parse(&want).is_ok_and(|d| d.human() == got);
                                prop_assert!(same, "{}.{}: set to {:?}, loaded as {:?}", section, key, want, got);
                            }
                            _ => prop_assert_eq!(got.as_integer(), want.parse::<i64>().ok(), "{}.{}", section, key),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn any_fair_use_variables_give_a_valid_policy_or_fail_naming_the_variable_or_key(
        vars in prop::collection::vec(
            (
                prop_oneof![4 => select(OMI_VARS.to_vec()).prop_map(str::to_owned), 1 => "FAIR_USE_[A-Z_]{1,10}"],
                omi_value(),
            ),
            0..5,
        ),
    ) {
        let env: BTreeMap<String, String> = vars.into_iter().collect();
        match load_policy(None, &env) {
            Err(e) => {
                let msg = format!("{e:#}");
                let names_var = env.keys().any(|k| msg.contains(k.as_str()));
                prop_assert!(names_var || msg.contains("policy key `"), "the error names no variable or key: {}", msg);
            }
            Ok(mut policy) => {
                prop_assert_eq!(policy.validate(), Ok(()));
                let seconds = |var: &str| {
                    env.get(var).and_then(|v| v.trim().parse::<i64>().ok()).map(|n| i128::from(n) * 1000)
                };
                if let Some(ms) = seconds("FAIR_USE_CHECK_INTERVAL_SECONDS") {
                    prop_assert_eq!(i128::from(policy.metering.check_interval.ms()), ms);
                }
                if let Some(ms) = seconds("FAIR_USE_CLASSIFIER_COOLDOWN_SECONDS") {
                    prop_assert_eq!(i128::from(policy.classifier.cooldown.ms()), ms);
                }
                if let Some(ms) = seconds("FAIR_USE_REDIS_RETENTION_SECONDS") {
                    prop_assert_eq!(i128::from(policy.metering.retention.ms()), ms);
                }
                if let Some(hours) = env.get("MAX_DAILY_AUDIO_HOURS").and_then(|v| v.trim().parse::<f64>().ok()) {
                    prop_assert_eq!(policy.ceiling_limit_ms().is_none(), hours == 0.0, "0 hours is no ceiling");
                }
                if let Some(v) = env.get("FAIR_USE_ENABLED") {
                    prop_assert_eq!(policy.switches.enabled, v.trim().eq_ignore_ascii_case("true"));
                }
                if let Some(v) = env.get("FAIR_USE_CLASSIFIER_ABUSE_SCORE_THRESHOLD") {
                    prop_assert_eq!(Some(policy.classifier.qualify_score), v.trim().parse::<f64>().ok());
                }
            }
        }
    }
}

// ---- the HTTP API ---------------------------------------------------------------------------

const SERVICE_KEY: &str = "fuzz-service-key-0123456789";
const OPERATOR_KEY: &str = "fuzz-operator-key-0123456789";
/// Speech recorded for the user "anchor" before the fuzzing starts; it must stay recorded.
const ANCHOR_MS: i64 = 60_000;

fn app() -> Router {
    let service = Service::new(
        Stores::single(Arc::new(MemoryStore::new())),
        Policy::default(),
        Arc::new(fairuse_server::clock::SystemClock),
        Arc::new(fairuse_domain::classifier::HeuristicClassifier),
        Notifications::default(),
    );
    let env = HashMap::from([
        ("FAIRUSE_SERVICE_KEYS".to_string(), SERVICE_KEY.to_string()),
        ("FAIRUSE_ADMIN_KEYS".into(), format!("ops:operator:{OPERATOR_KEY}")),
    ]);
    let auth = fairuse_auth::Authenticator::from_env_map(&env).expect("the fuzz keys are valid");
    router(AppState {
        service: Arc::new(service),
        auth: Arc::new(auth),
        settings: HttpSettings::default(),
        metrics: None,
        ready: Arc::new(|| Box::pin(async { Ok(()) })),
    })
}

/// A JSON value, written out by hand so that it may hold numbers serde_json cannot (`1e400`).
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Raw(&'static str),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn text(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Int(n) => n.to_string(),
            Json::Raw(r) => (*r).to_owned(),
            Json::Str(s) => json_str(s),
            Json::Arr(items) => format!("[{}]", items.iter().map(Json::text).collect::<Vec<_>>().join(",")),
            Json::Obj(fields) => format!(
                "{{{}}}",
                fields.iter().map(|(k, v)| format!("{}:{}", json_str(k), v.text())).collect::<Vec<_>>().join(",")
            ),
        }
    }
}

const BODY_FIELDS: [&str; 20] = [
    "uid",
    "lane",
    "speech_ms",
    "session_id",
    "cumulative_speech_ms",
    "at",
    "idempotency_key",
    "stt_ms",
    "reports",
    "plan",
    "credits_exhausted",
    "conversations",
    "conversation_id",
    "started_at",
    "finished_at",
    "stage",
    "until",
    "reason",
    "outcome",
    "notes",
];

fn odd_number() -> impl Strategy<Value = Json> {
    prop_oneof![
        select(vec![
            "1e400",
            "-1e400",
            "99999999999999999999",
            "-0",
            "1.5",
            "1e3",
            "0.0000001",
            "9223372036854775808",
            "-9223372036854775809",
            "1E2",
            "0e0",
        ])
        .prop_map(Json::Raw),
        select(vec![i64::MIN, i64::MAX, -1, 0, 1, MS_PER_DAY, MS_PER_DAY + 1, 8 * MS_PER_DAY + 1]).prop_map(Json::Int),
        any::<i64>().prop_map(Json::Int),
    ]
}

fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        odd_number(),
        any::<String>().prop_map(Json::Str),
        select(vec!["", "anchor2", "u1", "realtime", "😀", "\u{0}", "\\", "\"", "FU-000000000001"])
            .prop_map(|s| Json::Str(s.to_owned())),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Arr),
            prop::collection::vec(
                (prop_oneof![select(BODY_FIELDS.to_vec()).prop_map(str::to_owned), any::<String>()], inner),
                0..4
            )
            .prop_map(Json::Obj),
        ]
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Text for a timestamp field: near now, far off, malformed.
fn time_text() -> impl Strategy<Value = Json> {
    prop_oneof![
        (-9 * MS_PER_DAY..=MS_PER_DAY).prop_map(|o| Json::Str(Timestamp::from_millis(now_ms() + o).to_rfc3339())),
        select(vec![
            "yesterday",
            "",
            "2026-02-30T00:00:00Z",
            "0000-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-23:59",
            "2026-03-02T00:00:00.123456789123+05:30",
            "1970-01-01T00:00:00Z",
        ])
        .prop_map(|s| Json::Str(s.to_owned())),
    ]
}

/// Mostly the last two days (so that half the conversations end after they start).
fn recent_time() -> BoxedStrategy<Json> {
    prop_oneof![
        6 => (-2 * MS_PER_DAY..=0).prop_map(|o| Json::Str(Timestamp::from_millis(now_ms() + o).to_rfc3339())),
        1 => time_text(),
    ]
    .boxed()
}

/// Body uids: never "anchor", whose usage must survive the fuzzing.
fn body_uid() -> impl Strategy<Value = Json> {
    prop_oneof![
        6 => select(vec!["u1", "u2", "user.x", "a:b@c-d", "ANCHOR", "anchor2"]).prop_map(|s| Json::Str(s.to_owned())),
        1 => select(vec!["", "bad uid", "ünï", "anchor\n"]).prop_map(|s| Json::Str(s.to_owned())),
        1 => Just(Json::Str("x".repeat(129))),
        1 => "[A-Za-z0-9_.:@-]{1,20}".prop_map(Json::Str),
    ]
}

/// Fields a request needs: present in most generated bodies, the others in half of them.
const REQUIRED_FIELDS: [&str; 10] = [
    "uid",
    "lane",
    "speech_ms",
    "session_id",
    "cumulative_speech_ms",
    "conversation_id",
    "started_at",
    "finished_at",
    "plan",
    "stage",
];

/// An object with some of `fields` (each plausible or arbitrary) and maybe an unknown one.
fn object_of(fields: Vec<(&'static str, BoxedStrategy<Json>)>) -> BoxedStrategy<Json> {
    let parts: Vec<BoxedStrategy<Option<(String, Json)>>> = fields
        .into_iter()
        .map(|(name, plausible)| {
            let present = if REQUIRED_FIELDS.contains(&name) { 0.93 } else { 0.5 };
            prop::option::weighted(present, prop_oneof![12 => plausible, 1 => any_json()])
                .prop_map(move |v| v.map(|v| (name.to_owned(), v)))
                .boxed()
        })
        .collect();
    (parts, prop::option::weighted(0.1, ("[a-z_]{1,10}", any_json())))
        .prop_map(|(fields, extra)| Json::Obj(fields.into_iter().flatten().chain(extra).collect()))
        .boxed()
}

fn str_of(values: Vec<&'static str>) -> BoxedStrategy<Json> {
    select(values).prop_map(|s| Json::Str(s.to_owned())).boxed()
}

fn usage_object() -> BoxedStrategy<Json> {
    let uid = ("uid", body_uid().boxed());
    let lane =
        || ("lane", str_of(vec!["realtime", "sync_fresh", "sync_backfill", "custom_stt", "realtime", "television"]));
    let at = || ("at", time_text().boxed());
    let key = || ("idempotency_key", str_of(vec!["k1", "k2", "k3", ""]));
    let stt = || ("stt_ms", (0i64..=MS_PER_DAY).prop_map(Json::Int).boxed());
    let delta = object_of(vec![
        uid.clone(),
        lane(),
        ("speech_ms", prop_oneof![9 => 0i64..=MS_PER_DAY, 1 => -5i64..=5].prop_map(Json::Int).boxed()),
        at(),
        key(),
        stt(),
    ]);
    let session = object_of(vec![
        uid,
        lane(),
        ("session_id", str_of(vec!["s1", "s2", ""])),
        ("cumulative_speech_ms", (0i64..=9 * MS_PER_DAY).prop_map(Json::Int).boxed()),
        at(),
        key(),
        stt(),
    ]);
    prop_oneof![3 => delta, 1 => session].boxed()
}

/// A report the service accepts, for a user other than "anchor".
fn valid_usage_object() -> BoxedStrategy<Json> {
    let amount = prop_oneof![
        (0i64..=MS_PER_DAY).prop_map(|ms| vec![("speech_ms".to_owned(), Json::Int(ms))]),
        (select(vec!["s1", "s2"]), 0i64..=8 * MS_PER_DAY).prop_map(|(s, total)| {
            vec![
                ("session_id".to_owned(), Json::Str(s.to_owned())),
                ("cumulative_speech_ms".to_owned(), Json::Int(total)),
            ]
        }),
    ];
    (
        select(vec!["u1", "u2", "user.x", "a:b@c-d", "ANCHOR", "anchor2"]),
        select(vec!["realtime", "sync_fresh", "sync_backfill", "custom_stt"]),
        amount,
        prop::option::of(-7 * MS_PER_DAY..=4 * MS_PER_MINUTE),
        prop::option::of(select(vec!["k1", "k2", "k3"])),
        0i64..=MS_PER_DAY,
    )
        .prop_map(|(uid, lane, amount, at, key, stt)| {
            let mut fields =
                vec![("uid".to_owned(), Json::Str(uid.to_owned())), ("lane".to_owned(), Json::Str(lane.to_owned()))];
            fields.extend(amount);
            fields.extend(at.map(|o| ("at".to_owned(), Json::Str(Timestamp::from_millis(now_ms() + o).to_rfc3339()))));
            fields.extend(key.map(|k| ("idempotency_key".to_owned(), Json::Str(k.to_owned()))));
            fields.push(("stt_ms".to_owned(), Json::Int(stt)));
            Json::Obj(fields)
        })
        .boxed()
}

fn conversation_object() -> BoxedStrategy<Json> {
    object_of(vec![
        ("conversation_id", str_of(vec!["c1", "c2", ""])),
        ("title", prop_oneof![any::<String>().prop_map(Json::Str), Just(Json::Str("t".repeat(501)))].boxed()),
        ("overview", any::<String>().prop_map(Json::Str).boxed()),
        ("category", str_of(vec!["other", "education", ""])),
        ("started_at", recent_time()),
        ("finished_at", recent_time()),
        ("source", str_of(vec!["omi", "phone"])),
        ("speaker_count", (0i64..=5).prop_map(Json::Int).boxed()),
        ("word_count", (0i64..=100_000).prop_map(Json::Int).boxed()),
    ])
}

#[derive(Debug, Clone)]
enum FuzzBody {
    Json(Json),
    /// The body cut short at some byte.
    Truncated(Json, Index),
    Bytes(Vec<u8>),
    /// `[[[…]]]`, maybe left open.
    Nested(usize, bool),
    Empty,
}

impl FuzzBody {
    fn bytes(&self) -> Vec<u8> {
        match self {
            FuzzBody::Json(j) => j.text().into_bytes(),
            FuzzBody::Truncated(j, at) => {
                let mut b = j.text().into_bytes();
                b.truncate(at.index(b.len().max(1)));
                b
            }
            FuzzBody::Bytes(b) => b.clone(),
            FuzzBody::Nested(depth, closed) => {
                let mut s = "[".repeat(*depth);
                if *closed {
                    s.push_str(&"]".repeat(*depth));
                }
                s.into_bytes()
            }
            FuzzBody::Empty => Vec::new(),
        }
    }
}

fn body_from(plausible: BoxedStrategy<Json>) -> impl Strategy<Value = FuzzBody> {
    prop_oneof![
        12 => plausible.clone().prop_map(FuzzBody::Json),
        2 => any_json().prop_map(FuzzBody::Json),
        1 => (plausible, any::<Index>()).prop_map(|(j, i)| FuzzBody::Truncated(j, i)),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(FuzzBody::Bytes),
        1 => (1usize..400, any::<bool>()).prop_map(|(d, c)| FuzzBody::Nested(d, c)),
        1 => Just(FuzzBody::Empty),
    ]
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Decodes `%XX` escapes as axum does, keeping invalid ones as they are.
fn decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// A path segment, already encoded for a URI.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec!["u1", "u2", "user.x", "a:b@c-d", "ANCHOR", "anchor2"]).prop_map(encode),
        2 => any::<String>().prop_map(|s| encode(&s)),
        2 => select(vec![
            "%", "%G1", "%FF", "%00", "%2F", "..", ".", "%20", "a%2Fb", "%C3%A9", "%E2%82", "%25", "bad%20uid",
            "FU-000000000001", "%F0%9F%98%80",
        ])
        .prop_map(str::to_owned),
        1 => Just("x".repeat(129)),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    let pair = (
        select(vec!["stage", "until", "reason", "outcome", "notes", "x", ""]),
        prop_oneof![
            select(vec![
                "restrict",
                "throttle",
                "none",
                "upheld",
                "overturned",
                "bogus",
                "%FF",
                "%",
                "",
                "2099-01-01T00:00:00Z"
            ])
            .prop_map(str::to_owned),
            any::<String>().prop_map(|s| encode(&s)),
        ],
    )
        .prop_map(|(k, v)| format!("{k}={v}"));
    prop::option::of(prop::collection::vec(pair, 0..4).prop_map(|p| p.join("&")))
}

#[derive(Debug, Clone)]
enum Call {
    Usage(FuzzBody),
    Plan(String, FuzzBody),
    Conversations(String, FuzzBody),
    SetStage(String, Option<String>, FuzzBody),
    Reset(String, FuzzBody),
    Resolve(String, String, Option<String>, FuzzBody),
}

impl Call {
    fn request(&self) -> (&'static str, String, &FuzzBody) {
        let q = |q: &Option<String>| q.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
        match self {
            Call::Usage(b) => ("POST", "/v1/usage".into(), b),
            Call::Plan(u, b) => ("PUT", format!("/v1/users/{u}/plan"), b),
            Call::Conversations(u, b) => ("POST", format!("/v1/users/{u}/conversations"), b),
            Call::SetStage(u, query, b) => ("POST", format!("/v1/admin/fair-use/user/{u}/set-stage{}", q(query)), b),
            Call::Reset(u, b) => ("POST", format!("/v1/admin/fair-use/user/{u}/reset"), b),
            Call::Resolve(u, e, query, b) => {
                ("POST", format!("/v1/admin/fair-use/user/{u}/resolve-event/{e}{}", q(query)), b)
            }
        }
    }

    fn segments(&self) -> Vec<&str> {
        match self {
            Call::Usage(_) => vec![],
            Call::Plan(u, _) | Call::Conversations(u, _) | Call::SetStage(u, _, _) | Call::Reset(u, _) => vec![u],
            Call::Resolve(u, e, _, _) => vec![u, e],
        }
    }
}

fn call() -> impl Strategy<Value = Call> {
    let usage = prop_oneof![
        4 => usage_object(),
        2 => valid_usage_object(),
        2 => prop::collection::vec(prop_oneof![valid_usage_object(), usage_object()], 0..5)
            .prop_map(|r| Json::Obj(vec![("reports".into(), Json::Arr(r))])),
        1 => any_json().prop_map(|j| Json::Obj(vec![("reports".into(), j)])),
    ]
    .boxed();
    let plan = object_of(vec![
        ("plan", str_of(vec!["free", "paid", "unlimited", "gold", ""])),
        ("credits_exhausted", any::<bool>().prop_map(Json::Bool).boxed()),
    ]);
    let conversations = prop_oneof![
        3 => conversation_object(),
        1 => prop::collection::vec(conversation_object(), 0..3)
            .prop_map(|c| Json::Obj(vec![("conversations".into(), Json::Arr(c))])),
    ]
    .boxed();
    let set_stage = object_of(vec![
        ("stage", str_of(vec!["none", "warning", "throttle", "restrict", "banned"])),
        ("until", time_text().boxed()),
        ("reason", any::<String>().prop_map(Json::Str).boxed()),
    ]);
    let reset = object_of(vec![("reason", any::<String>().prop_map(Json::Str).boxed())]);
    let resolve = object_of(vec![
        ("outcome", str_of(vec!["upheld", "overturned", "maybe"])),
        ("notes", any::<String>().prop_map(Json::Str).boxed()),
    ]);
    prop_oneof![
        3 => body_from(usage).prop_map(Call::Usage),
        1 => (segment(), body_from(plan)).prop_map(|(u, b)| Call::Plan(u, b)),
        1 => (segment(), body_from(conversations)).prop_map(|(u, b)| Call::Conversations(u, b)),
        1 => (segment(), query(), body_from(set_stage)).prop_map(|(u, q, b)| Call::SetStage(u, q, b)),
        1 => (segment(), body_from(reset)).prop_map(|(u, b)| Call::Reset(u, b)),
        1 => (segment(), segment(), query(), body_from(resolve)).prop_map(|(u, e, q, b)| Call::Resolve(u, e, q, b)),
    ]
}

async fn send(app: &Router, method: &str, uri: &str, body: Vec<u8>) -> Result<(StatusCode, Vec<u8>), String> {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {SERVICE_KEY}"))
        .header("x-admin-key", OPERATOR_KEY)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .map_err(|e| format!("building {method} {uri}: {e}"))?;
    let response = app.clone().oneshot(request).await.map_err(|e| format!("{method} {uri}: {e}"))?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.map_err(|e| e.to_string())?;
    Ok((status, bytes.to_vec()))
}

async fn anchor_daily_ms(app: &Router) -> Result<Value, String> {
    let (status, body) = send(app, "GET", "/v1/users/anchor/decision", Vec::new()).await?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&body)))?;
    if status != StatusCode::OK {
        return Err(format!("decision for anchor: {status} {v}"));
    }
    Ok(v["windows"]["daily_ms"].clone())
}

fn check_response(call: &Call, status: StatusCode, body: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|v| v["error"]["code"].as_str()).unwrap_or_default().to_owned();
    prop_assert!(
        !status.is_server_error() || (status == StatusCode::SERVICE_UNAVAILABLE && code == "auth_not_configured"),
        "{:?} -> {} {}",
        call,
        status,
        text
    );
    if status == StatusCode::OK {
        let v = parsed.as_ref().ok_or_else(|| TestCaseError::fail(format!("{call:?} -> 200: not JSON: {text}")))?;
        if let Call::Usage(_) = call {
            let results = v["results"].as_array().map(Vec::len);
            prop_assert!(results.is_some() && v["accepted"].as_u64() == results.map(|n| n as u64), "{}", v);
        }
    }
    if status.is_client_error() {
        let v = parsed.ok_or_else(|| TestCaseError::fail(format!("{call:?} -> {status}: not JSON: {text}")))?;
        let message = v["error"]["message"].as_str();
        prop_assert!(!code.is_empty() && message.is_some_and(|m| !m.is_empty()), "{:?} -> {} {}", call, status, v);
        if status == StatusCode::BAD_REQUEST {
            let message = message.unwrap_or_default();
            let field = v["error"]["field"].as_str().filter(|f| !f.is_empty());
            let (_, _, sent) = call.request();
            let sent = sent.bytes();
            let object = serde_json::from_slice::<serde_json::Map<String, Value>>(&sent).is_ok();
            let whole_body = !object && (message.starts_with("body is not valid: ") || sent.is_empty());
            prop_assert!(
                field.is_some()
                    || quotes_a_field(message, |name| BODY_FIELDS.contains(&name)
                        || CONVERSATION_FIELDS.contains(&name))
                    || whole_body,
                "a 400 that names no field: {:?} -> {}",
                call,
                v
            );
        }
    }
    Ok(())
}

#[test]
fn arbitrary_requests_never_get_a_5xx_always_get_a_json_error_naming_the_field_and_lose_no_usage() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let app = app();
    let anchor = format!(r#"{{"uid":"anchor","lane":"realtime","speech_ms":{ANCHOR_MS}}}"#).into_bytes();
    let (status, body) = runtime.block_on(send(&app, "POST", "/v1/usage", anchor)).expect("anchor report");
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(runtime.block_on(anchor_daily_ms(&app)), Ok(Value::from(ANCHOR_MS)));

    let mut runner = TestRunner::new(config(128));
    let result = runner.run(&call(), |call| {
        let (method, uri, body) = call.request();
        let body = body.bytes();
        prop_assume!(call.segments().iter().all(|s| decode(s) != b"anchor"));
        prop_assume!(!String::from_utf8_lossy(&body).contains("\"anchor\""));
        let (status, response) = runtime.block_on(send(&app, method, &uri, body)).map_err(TestCaseError::fail)?;
        check_response(&call, status, &response)?;
        let anchor = runtime.block_on(anchor_daily_ms(&app)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(anchor, Value::from(ANCHOR_MS), "anchor's usage changed after {:?}", call);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
