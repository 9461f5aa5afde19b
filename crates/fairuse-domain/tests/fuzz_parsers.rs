//! Coverage-style fuzzing of the domain's parsers, on the stable toolchain (no libFuzzer): proptest
//! feeds arbitrary and near-valid input to every parser a caller or operator can reach, and each
//! property checks that nothing panics and that a refusal is an error naming its field or key.
//!
//! Parsers covered: the policy file (`Policy::from_toml_str`, on arbitrary text and on single-line
//! mutations of the shipped default), durations (`DurationMs::parse`), RFC 3339 instants
//! (`Timestamp::parse_rfc3339`), identifiers (`Uid`, `Lane`, `CaseRef`, `Stage`) and the bounds of a
//! usage report (`UsageReport::validate`, followed by recording into a `UserMeter`).

use std::collections::HashMap;

use fairuse_domain::error::InputError;
use fairuse_domain::ids::{CaseRef, Lane, Uid};
use fairuse_domain::policy::{DEFAULT_POLICY_TOML, Policy, PolicyError};
use fairuse_domain::stage::Stage;
use fairuse_domain::time::{DurationMs, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND, Timestamp};
use fairuse_domain::windows::{SpeechAmount, UsageReport, UserMeter};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::Config;

fn config(cases: u32) -> Config {
    // No regression files: a failure prints its minimal input.
    Config { cases, failure_persistence: None, ..Config::default() }
}

// ---- the policy file ------------------------------------------------------------------------

/// What every outcome of `Policy::from_toml_str` must look like: an error that says which key
/// (or, for a file that is not valid TOML or has the wrong shape, where in the file) is wrong; or
/// a policy that validates and survives being printed and parsed again.
fn check_policy_outcome(text: &str) -> Result<(), TestCaseError> {
    match Policy::from_toml_str(text) {
        Err(e) => {
            let msg = e.to_string();
            match &e {
                PolicyError::Parse(_) => {
                    prop_assert!(msg.starts_with("policy file is not valid: "), "{msg}");
                    prop_assert!(msg.contains(" at line "), "a parse error points at a line: {msg}");
                }
                PolicyError::Invalid { key, .. } => {
                    prop_assert!(!key.is_empty(), "{msg}");
                    prop_assert!(msg.starts_with(&format!("policy key `{key}`: ")), "{msg}");
                }
            }
        }
        Ok(mut p) => {
            let loaded = p.clone();
            prop_assert_eq!(p.validate(), Ok(()));
            prop_assert_eq!(&p, &loaded, "validating again changes nothing");
            let printed = p.to_toml_string();
            let again = Policy::from_toml_str(&printed);
            prop_assert!(again.is_ok(), "the printed policy does not load: {:?}\n{}", again.err(), printed);
            prop_assert_eq!(again.ok(), Some(p), "printing and loading again gives the same policy");
        }
    }
    Ok(())
}

/// Pieces of TOML that, strung together, make text the TOML parser gets further into than with
/// arbitrary characters.
fn toml_ish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        select(vec![
            "[",
            "]",
            "[[",
            "]]",
            "=",
            " = ",
            "\"",
            "'",
            "{",
            "}",
            ",",
            ".",
            "\n",
            "#",
            "\"\"\"",
            "-",
            "1",
            "0.7",
            "true",
            "\"8d\"",
            "\"24h\"",
            "[switches]",
            "[metering]",
            "[[windows]]",
            "[plans.free]",
            "[stages.warning]",
            "name",
            "length",
            "caps",
            "retention",
            "default_plan",
            "\\u00e9",
            "\\",
            "1979-05-27T07:32:00Z",
            "inf",
            "nan",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
        any::<String>(),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

/// A value put where the shipped policy has one.
fn policy_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec![
            "-1", "\"\"", "1e309", "\"99999999999d\"", "true", "[]", "{}", "0", "1", "\"0s\"", "\"-5m\"", "1.5",
            "-0.0", "nan", "inf", "9223372036854775807", "-9223372036854775808", "18446744073709551616",
            "\"18446744073710\"", "\"1y\"", "\"1ms\"", "\"59s\"", "\"25h\"", "\"{timer}\"", "\"{bogus}\"",
            "\"{stt_daily_budget}\"", "\"daily\"", "\"free\"", "\"scripted\"", "\"shadow\"", "\"bad uid\"", "[\"u1\"]",
            "{ daily = \"1h\" }", "{ monthly = \"1h\" }", "[[1]]", "'literal'", "\"\"\"multi\nline\"\"\"",
        ])
        .prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<String>().prop_map(|s| toml::Value::String(s).to_string()),
        1 => any::<String>(),
    ]
}

/// A key put into the file: real ones (duplicates or misplaced), near misses, random ones.
fn policy_key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "enabled",
            "mode",
            "kill_switch",
            "exempt_uids",
            "retention",
            "max_future_skew",
            "name",
            "length",
            "window",
            "limit",
            "free",
            "caps",
            "backend",
            "cooldown",
            "qualify_score",
            "timer",
            "title",
            "body",
            "stt_daily_budget",
            "default_plan",
            "kil_switch",
            "Retention",
            "caps.daily",
            "\"quoted key\"",
            "a.b.c",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,16}",
    ]
}

#[derive(Debug, Clone)]
enum LineMutation {
    Delete(Index),
    Duplicate(Index),
    /// The value of the n-th `key = value` line.
    ReplaceValue(Index, String),
    /// A `key = value` line inserted before line n.
    InsertKey(Index, String, String),
    /// The n-th line replaced by arbitrary text.
    ReplaceLine(Index, String),
}

fn line_mutation() -> impl Strategy<Value = LineMutation> {
    prop_oneof![
        1 => any::<Index>().prop_map(LineMutation::Delete),
        1 => any::<Index>().prop_map(LineMutation::Duplicate),
        3 => (any::<Index>(), policy_value()).prop_map(|(i, v)| LineMutation::ReplaceValue(i, v)),
        1 => (any::<Index>(), policy_key(), policy_value()).prop_map(|(i, k, v)| LineMutation::InsertKey(i, k, v)),
        1 => (any::<Index>(), any::<String>()).prop_map(|(i, s)| LineMutation::ReplaceLine(i, s)),
    ]
}

fn mutate(base: &str, m: &LineMutation) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
    match m {
        LineMutation::Delete(i) => {
            lines.remove(i.index(lines.len()));
        }
        LineMutation::Duplicate(i) => {
            let at = i.index(lines.len());
            lines.insert(at, lines[at].clone());
        }
        LineMutation::ReplaceValue(i, value) => {
            let assignments: Vec<usize> = (0..lines.len())
                .filter(|&n| !lines[n].trim_start().starts_with('#') && lines[n].contains(" = "))
                .collect();
            let n = assignments[i.index(assignments.len())];
            let key = lines[n].split(" = ").next().unwrap_or_default().to_owned();
            lines[n] = format!("{key} = {value}");
        }
        LineMutation::InsertKey(i, key, value) => {
            let at = i.index(lines.len() + 1);
            lines.insert(at, format!("{key} = {value}"));
        }
        LineMutation::ReplaceLine(i, text) => {
            let at = i.index(lines.len());
            lines[at] = text.clone();
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_text_as_a_policy_file_is_refused_with_an_error_naming_the_key_or_line(text in any::<String>()) {
        check_policy_outcome(&text)?;
    }

    #[test]
    fn toml_like_text_as_a_policy_file_is_refused_with_an_error_naming_the_key_or_line(text in toml_ish()) {
        check_policy_outcome(&text)?;
    }

    #[test]
    fn a_shipped_policy_with_one_line_changed_loads_cleanly_or_names_what_is_wrong(
        printed_base in any::<bool>(),
        m in line_mutation(),
    ) {
        let base = if printed_base { Policy::default().to_toml_string() } else { DEFAULT_POLICY_TOML.to_owned() };
        check_policy_outcome(&mutate(&base, &m))?;
    }

    #[test]
    fn a_policy_with_extreme_metering_limits_is_refused_or_meters_reports_without_panicking(
        retention in select(vec!["\"1h\"", "\"8d\"", "\"99999999999d\"", "9223372036854775807", "3600000"]),
        skew in select(vec!["0", "\"5m\"", "\"99999999999d\"", "9223372036854775806", "9223372036854775807"]),
        max_report in select(vec!["1", "\"24h\"", "\"99999999999d\"", "9223372036854775807"]),
        speech in prop_oneof![any::<i64>(), Just(i64::MAX), 0..=MS_PER_DAY],
        at_offset in prop_oneof![Just(None), any::<i64>().prop_map(Some), (-MS_PER_DAY..=MS_PER_DAY).prop_map(Some)],
    ) {
        let text = DEFAULT_POLICY_TOML
            .replace("retention = \"8d\"", &format!("retention = {retention}"))
            .replace("max_future_skew = \"5m\"", &format!("max_future_skew = {skew}"))
            .replace("max_report_speech = \"24h\"", &format!("max_report_speech = {max_report}"));
        check_policy_outcome(&text)?;
        if let Ok(policy) = Policy::from_toml_str(&text) {
            // Fixed: the loader bounds the skew (at most 1 day), so `now + skew` cannot overflow.
            prop_assert!(policy.metering.max_future_skew.ms() <= MS_PER_DAY);
            let report = UsageReport {
                at: at_offset.map(|o| now().plus_ms(o)),
                ..UsageReport::delta(Lane::Realtime, speech)
            };
            if report.validate(&policy, now()).is_ok() {
                let mut meter = UserMeter::default();
                let outcome = meter.record(&report, policy.metering.retention.ms(), now());
                prop_assert_eq!(outcome.speech_added_ms, speech);
                for total in meter.capped_totals(&policy, now()) {
                    prop_assert!((0..=speech).contains(&total), "total {} of one report of {} ms", total, speech);
                }
            }
        }
    }
}

// ---- durations ------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_parses_as_a_non_negative_duration_or_is_refused(text in any::<String>()) {
        if let Ok(d) = DurationMs::parse(&text) {
            prop_assert!(d.ms() >= 0, "{:?} -> {:?}", text, d);
        }
    }

    #[test]
    fn duration_like_text_parses_as_a_non_negative_duration_or_is_refused(
        text in concat!(
            "[ +-]?[0-9]{0,22}(\\.[0-9]{0,4})?[ ]?(ns|us|ms|s|m|h|d|w|M|y|sec|min|hours|days|x)?",
            "([ ]?[0-9]{1,4}(m|s|ms))?",
        ),
    ) {
        if let Ok(d) = DurationMs::parse(&text) {
            prop_assert!(d.ms() >= 0, "{:?} -> {:?}", text, d);
        }
    }

    #[test]
    fn a_whole_number_of_milliseconds_parses_exactly_and_a_negative_one_is_refused(n in any::<i64>()) {
        match DurationMs::parse(&n.to_string()) {
            Ok(d) => prop_assert!(n >= 0 && d.ms() == n, "{} -> {:?}", n, d),
            Err(e) => prop_assert!(n < 0 && e.contains("negative"), "{} -> {}", n, e),
        }
    }

    #[test]
    fn a_count_of_a_unit_parses_to_its_exact_milliseconds_or_is_refused_as_too_large(
        n in prop_oneof![0u64..10_000, any::<u64>(), 0u64..=(i64::MAX as u64 / 1000)],
        unit in select(vec![
            ("ms", 1i64),
            ("s", MS_PER_SECOND),
            ("m", MS_PER_MINUTE),
            ("h", MS_PER_HOUR),
            ("d", MS_PER_DAY),
        ]),
    ) {
        let text = format!("{n}{}", unit.0);
        let exact = i128::from(n) * i128::from(unit.1);
        match DurationMs::parse(&text) {
            Ok(d) => prop_assert_eq!(i128::from(d.ms()), exact, "{}", text),
            // humantime counts in u64 nanoseconds and seconds: it refuses some values that would
            // fit in i64 milliseconds; what matters here is that the refusal is clean.
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn a_duration_printed_in_its_human_form_parses_back_to_itself(
        ms in prop_oneof![
            0i64..=10 * MS_PER_DAY,
            (0i64..=1_000_000).prop_map(|d| d * MS_PER_DAY),
            // Any size: a value that is not a whole number of seconds prints as plain milliseconds.
            0i64..=i64::MAX,
        ],
    ) {
        let d = DurationMs(ms);
        prop_assert_eq!(DurationMs::parse(&d.human()), Ok(d), "{}", d.human());
    }
}

// ---- RFC 3339 instants ----------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The instants `to_rfc3339` can write as RFC 3339: years 0000 to 9999 in UTC.
fn printable_range() -> std::ops::RangeInclusive<i64> {
    days_from_civil(1, 1, 1) * MS_PER_DAY..=days_from_civil(10_000, 1, 1) * MS_PER_DAY - 1
}

#[derive(Debug, Clone)]
struct Rfc3339Parts {
    year: i64,
    month: i64,
    day: i64,
    sep: &'static str,
    hour: i64,
    minute: i64,
    second: i64,
    fraction: Option<String>,
    /// `None` is `Z`/`z`; otherwise minutes east of UTC.
    offset: Option<i64>,
    lower_z: bool,
}

impl Rfc3339Parts {
    fn text(&self) -> String {
        let mut s = format!(
            "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.sep, self.hour, self.minute, self.second
        );
        if let Some(f) = &self.fraction {
            s.push('.');
            s.push_str(f);
        }
        match self.offset {
            None => s.push(if self.lower_z { 'z' } else { 'Z' }),
            Some(o) => s.push_str(&format!("{}{:02}:{:02}", if o < 0 { '-' } else { '+' }, o.abs() / 60, o.abs() % 60)),
        }
        s
    }

    fn is_real_instant(&self) -> bool {
        self.day <= days_in_month(self.year, self.month) && self.second <= 59
    }

    /// The instant in UTC milliseconds, computed independently of the `time` crate.
    fn millis(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400 + self.hour * 3600 + self.minute * 60 + self.second - self.offset.unwrap_or(0) * 60;
        let frac_ms = self.fraction.as_deref().map_or(0, |f| format!("{f:0<3}")[..3].parse::<i64>().unwrap_or(0));
        secs * 1000 + frac_ms
    }
}

fn rfc3339_parts() -> impl Strategy<Value = Rfc3339Parts> {
    (
        prop_oneof![
            8 => (prop_oneof![0i64..=9999, 1960i64..=2100], 1i64..=12, 1i64..=31),
            // The first and last day the format can write: an offset moves them out of range.
            1 => Just((0, 1, 1)),
            1 => Just((9999, 12, 31)),
        ],
        (select(vec!["T", "t", " "]), 0i64..=23, 0i64..=59, prop_oneof![8 => 0i64..=59, 1 => Just(60)]),
        prop::option::of("[0-9]{1,12}"),
        prop::option::of(prop_oneof![-1439i64..=1439, Just(0), Just(-1439), Just(1439)]),
        any::<bool>(),
    )
        .prop_map(|((year, month, day), (sep, hour, minute, second), fraction, offset, lower_z)| Rfc3339Parts {
            year,
            month,
            day,
            sep,
            hour,
            minute,
            second,
            fraction,
            offset,
            lower_z,
        })
}

fn check_timestamp_outcome(text: &str) -> Result<Option<Timestamp>, TestCaseError> {
    match Timestamp::parse_rfc3339(text) {
        Err(e) => {
            prop_assert!(e.to_string().starts_with("not an RFC 3339 timestamp"), "{}", e);
            Ok(None)
        }
        Ok(t) => {
            // Only instants in the UTC years 0001-9999 are accepted, and each prints back as itself.
            prop_assert!(printable_range().contains(&t.millis()), "{} was accepted outside 0001-9999", text);
            {
                let printed = t.to_rfc3339();
                prop_assert!(printed.ends_with('Z'), "{}", printed);
                prop_assert_eq!(Timestamp::parse_rfc3339(&printed), Ok(t), "{} printed as {}", text, printed);
            }
            Ok(Some(t))
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_parses_as_an_instant_that_prints_back_or_is_refused(text in any::<String>()) {
        check_timestamp_outcome(&text)?;
    }

    #[test]
    fn near_rfc3339_text_parses_as_an_instant_that_prints_back_or_is_refused(
        text in concat!(
            "[0-9]{2,5}-[0-9]{1,3}-[0-9]{1,3}[Tt ][0-9]{1,3}:[0-9]{2}(:[0-9]{2})?",
            "(\\.[0-9]{0,10})?([Zz]|[+-][0-9]{2}:?[0-9]{2})?",
        ),
    ) {
        check_timestamp_outcome(&text)?;
    }

    #[test]
    fn a_well_formed_rfc3339_instant_with_any_offset_and_fraction_is_read_exactly(parts in rfc3339_parts()) {
        let text = parts.text();
        let parsed = check_timestamp_outcome(&text)?;
        if parts.is_real_instant() && printable_range().contains(&parts.millis()) {
            prop_assert_eq!(parsed.map(Timestamp::millis), Some(parts.millis()), "{}", text);
        } else if parts.is_real_instant() {
            prop_assert_eq!(parsed, None, "{} is outside the years 0001-9999 UTC", text);
        } else if parts.day > days_in_month(parts.year, parts.month) {
            prop_assert_eq!(parsed, None, "{} names a day that does not exist", text);
        }
    }

    #[test]
    fn every_instant_of_years_0001_to_9999_prints_as_rfc3339_that_parses_back(
        ms in prop_oneof![printable_range(), -MS_PER_DAY..=MS_PER_DAY, 1_700_000_000_000i64..=1_900_000_000_000],
    ) {
        let t = Timestamp::from_millis(ms);
        prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Ok(t), "{}", t.to_rfc3339());
    }

    #[test]
    fn printing_any_instant_never_panics(ms in any::<i64>()) {
        let printed = Timestamp::from_millis(ms).to_rfc3339();
        prop_assert!(printed.ends_with('Z'), "{}", printed);
    }
}

// ---- identifiers ----------------------------------------------------------------------------

fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.:@-]{0,130}",
        "[A-Za-z0-9_.:@ /é%-]{0,20}",
        "FU-[0-9A-Fa-f]{10,14}",
        "FU-[0-9A-Fé]{4,12}",
        select(vec![
            "realtime",
            "sync_fresh",
            "sync_backfill",
            "custom_stt",
            "none",
            "warning",
            "throttle",
            "restrict"
        ])
        .prop_map(str::to_owned),
        "(Realtime|sync-fresh| realtime|throttle |WARNING|none\0)",
    ]
}

fn check_id_error(e: &InputError, field: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.field.as_str(), field);
    prop_assert!(!e.message.is_empty());
    prop_assert!(e.to_string().starts_with(&format!("{field}: ")), "{}", e);
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_uid_is_accepted_exactly_when_it_has_1_to_128_allowed_characters(
        text in prop_oneof![id_text(), Just(".".to_owned()), Just("..".to_owned())],
    ) {
        // `.` and `..` are refused although their characters are allowed: no URL path carries them.
        let allowed = !text.is_empty()
            && text.len() <= 128
            && text != "."
            && text != ".."
            && text.chars().all(|c| c.is_ascii_alphanumeric() || "_.:@-".contains(c));
        match Uid::parse(&text) {
            Ok(uid) => prop_assert!(allowed && uid.as_str() == text, "{:?}", text),
            Err(e) => {
                prop_assert!(!allowed, "{:?} refused: {}", text, e);
                check_id_error(&e, "uid")?;
            }
        }
    }

    #[test]
    fn a_lane_is_one_of_the_four_names_and_anything_else_names_the_lane_field(text in id_text()) {
        match Lane::parse(&text) {
            Ok(lane) => prop_assert_eq!(lane.as_str(), text.as_str()),
            Err(e) => {
                prop_assert!(!Lane::ALL.iter().any(|l| l.as_str() == text));
                check_id_error(&e, "lane")?;
            }
        }
    }

    #[test]
    fn a_stage_is_one_of_the_four_names_and_anything_else_names_the_stage_field(text in id_text()) {
        match Stage::parse(&text) {
            Ok(stage) => prop_assert_eq!(stage.as_str(), text.as_str()),
            Err(e) => {
                prop_assert!(!Stage::ALL.iter().any(|s| s.as_str() == text));
                check_id_error(&e, "stage")?;
            }
        }
    }

    #[test]
    fn a_case_ref_is_fu_and_12_upper_case_hex_digits_and_anything_else_names_case_ref(text in id_text()) {
        let well_formed = text.len() == 15
            && text.starts_with("FU-")
            && text.chars().skip(3).all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c));
        match CaseRef::parse(&text) {
            Ok(r) => prop_assert!(well_formed && r.as_str() == text, "{:?}", text),
            Err(e) => {
                prop_assert!(!well_formed, "{:?} refused", text);
                check_id_error(&e, "case_ref")?;
            }
        }
    }

    #[test]
    fn a_case_ref_made_from_any_bits_parses(bits in any::<u64>()) {
        let r = CaseRef::from_bits(bits);
        prop_assert_eq!(CaseRef::parse(r.as_str()), Ok(r.clone()));
    }
}

// ---- usage reports --------------------------------------------------------------------------

/// 2026-03-20T00:00:00Z.
const T0_MS: i64 = 1_773_964_800_000;

fn now() -> Timestamp {
    Timestamp::from_millis(T0_MS)
}

/// Amounts: anything, values near the bounds of the default policy, and plausible ones.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        select(vec![
            i64::MIN,
            -1,
            0,
            1,
            MS_PER_DAY - 1,
            MS_PER_DAY,
            MS_PER_DAY + 1,
            8 * MS_PER_DAY,
            8 * MS_PER_DAY + 1
        ]),
        0..=MS_PER_DAY,
        0..=8 * MS_PER_DAY,
    ]
}

fn at_offset() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        Just(None),
        any::<i64>().prop_map(Some),
        (-9 * MS_PER_DAY..=10 * MS_PER_MINUTE).prop_map(Some),
        select(vec![i64::MIN, i64::MAX, -8 * MS_PER_DAY, 5 * MS_PER_MINUTE, 5 * MS_PER_MINUTE + 1]).prop_map(Some),
    ]
}

fn usage_report() -> impl Strategy<Value = UsageReport> {
    let speech = prop_oneof![
        amount().prop_map(SpeechAmount::Delta),
        (select(vec!["s0", "s1", "", "a very long session"]), amount()).prop_map(|(s, total_ms)| {
            let session_id = if s == "a very long session" { "s".repeat(129) } else { s.to_owned() };
            SpeechAmount::Cumulative { session_id, total_ms }
        }),
    ];
    let key = prop_oneof![
        Just(None),
        select(vec!["k0", "k1"]).prop_map(|k| Some(k.to_owned())),
        Just(Some(String::new())),
        Just(Some("k".repeat(201))),
    ];
    (select(Lane::ALL.to_vec()), speech, at_offset(), key, amount()).prop_map(|(lane, amount, at, key, stt)| {
        UsageReport { lane, amount, at: at.map(|o| now().plus_ms(o)), idempotency_key: key, stt_ms: stt }
    })
}

const REPORT_FIELDS: [&str; 6] = ["speech_ms", "session_id", "cumulative_speech_ms", "stt_ms", "idempotency_key", "at"];

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_usage_report_is_refused_naming_its_field_or_recorded_with_sane_totals(
        reports in prop::collection::vec(usage_report(), 1..24),
    ) {
        let policy = Policy::default();
        let retention = policy.metering.retention.ms();
        let max = policy.metering.max_report_speech.ms();
        let mut meter = UserMeter::default();
        // Per lane, the speech recorded into the windows that end now (future-stamped speech is
        // counted later).
        let mut expected: HashMap<Lane, i128> = HashMap::new();
        for report in &reports {
            match report.validate(&policy, now()) {
                Err(e) => {
                    prop_assert!(REPORT_FIELDS.contains(&e.field.as_str()), "unexpected field: {}", e);
                    prop_assert!(e.to_string().starts_with(&format!("{}: ", e.field)), "{}", e);
                }
                Ok(()) => {
                    let (amount, amount_max) = match &report.amount {
                        SpeechAmount::Delta(ms) => (*ms, max),
                        SpeechAmount::Cumulative { total_ms, .. } => (*total_ms, retention),
                    };
                    prop_assert!((0..=amount_max).contains(&amount), "{:?}", report);
                    prop_assert!((0..=amount_max).contains(&report.stt_ms), "{:?}", report);
                    let outcome = meter.record(report, retention, now());
                    prop_assert!((0..=amount).contains(&outcome.speech_added_ms), "{:?} -> {:?}", report, outcome);
                    prop_assert!((0..=report.stt_ms).contains(&outcome.stt_added_ms), "{:?} -> {:?}", report, outcome);
                    if report.at.unwrap_or(now()).minute() <= now().minute() {
                        *expected.entry(report.lane).or_default() += i128::from(outcome.speech_added_ms);
                    }
                }
            }
        }
        for lane in Lane::ALL {
            let total = meter.lane_total(lane, retention / MS_PER_MINUTE, now());
            prop_assert_eq!(i128::from(total), expected.get(&lane).copied().unwrap_or(0), "{:?}", lane);
        }
        for (total, minutes) in meter.capped_totals(&policy, now()).into_iter().zip(policy.window_minutes()) {
            prop_assert!(total >= 0, "{} min window: {}", minutes, total);
        }
    }
}
