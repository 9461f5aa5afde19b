//! The policy file: plans, windows, caps, the ceiling, the ladder, timers, stage effects and the
//! messages users see. The model types and the lookups the engine makes live here; parsing from
//! TOML (unknown keys refused) and the validation rules, every error naming its key, in
//! `validate.rs`; the user-facing texts and their placeholders in `messages.rs`. The shipped
//! default is `default-policy.toml` beside this crate.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::stage::Stage;
use crate::time::{DurationMs, MS_PER_MINUTE};

mod messages;
mod validate;

pub use messages::{Cause, MessageContext, Messages, human_amount};
pub use validate::PolicyError;

pub const DEFAULT_POLICY_TOML: &str = include_str!("../../default-policy.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    Shadow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switches {
    pub enabled: bool,
    pub mode: Mode,
    pub kill_switch: bool,
    pub exempt_uids: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metering {
    pub retention: DurationMs,
    pub max_future_skew: DurationMs,
    pub max_report_speech: DurationMs,
    pub check_interval: DurationMs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDef {
    pub name: String,
    pub length: DurationMs,
}

impl WindowDef {
    pub fn minutes(&self) -> i64 {
        self.length.ms() / MS_PER_MINUTE
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceiling {
    pub window: String,
    pub limit: DurationMs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDef {
    #[serde(default)]
    pub free: bool,
    pub caps: BTreeMap<String, DurationMs>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierBackend {
    Heuristic,
    Openai,
    Ensemble,
    Scripted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierPolicy {
    pub backend: ClassifierBackend,
    pub cooldown: DurationMs,
    /// After a verdict that does not qualify, the user may be classified again after this instead
    /// of the whole cooldown (absent: [`DEFAULT_RECHECK`], never more than the cooldown). See
    /// [`ClassifierPolicy::hold_after`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck: Option<DurationMs>,
    /// After a verdict that does not qualify but scores within [`ClassifierPolicy::close_margin`]
    /// of the qualifying score, the user may be classified again after this instead of the
    /// re-check (absent: [`DEFAULT_RECHECK_CLOSE`], never more than the re-check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck_close: Option<DurationMs>,
    /// How far under the qualifying score a verdict is "close" (absent: [`DEFAULT_CLOSE_MARGIN`];
    /// 0 turns the close re-check off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_margin: Option<f64>,
    pub qualify_score: f64,
    pub lookback: DurationMs,
    pub evidence_retention: DurationMs,
}

/// The re-check after a verdict that does not qualify, when a policy file does not set one.
pub const DEFAULT_RECHECK: DurationMs = DurationMs::hours(3);
/// The re-check after a verdict close to the line, when a policy file does not set one.
pub const DEFAULT_RECHECK_CLOSE: DurationMs = DurationMs::hours(1);
/// How far under the qualifying score a verdict counts as close, when a policy file does not say.
pub const DEFAULT_CLOSE_MARGIN: f64 = 0.15;

impl ClassifierPolicy {
    /// How long the classifier lock is held after a verdict: the whole cooldown after a qualifying
    /// one (it paces the ladder: one step per cooldown), the shorter re-check after one that does
    /// not qualify. A user still over a cap keeps producing evidence; a first judgement made on
    /// the two or three conversations of the first hours over a cap must not buy twelve hours of
    /// silence. A re-check costs one classifier call, against hours of speech-to-text.
    pub fn hold_after(&self, qualifies: bool) -> DurationMs {
        if qualifies {
            return self.cooldown;
        }
        let recheck = self.recheck.unwrap_or(DEFAULT_RECHECK);
        if recheck.ms() < self.cooldown.ms() { recheck } else { self.cooldown }
    }

    /// [`ClassifierPolicy::hold_after`] for a verdict's score: the cooldown when it qualifies;
    /// when it misses the line by less than the close margin, the shorter close re-check. Such a
    /// verdict says the usage already looks mostly like playback and the next hour of
    /// conversations will likely settle it: one more classifier call (nothing for the heuristic,
    /// a fraction of a cent for a hosted model) against the hours of speech-to-text a full
    /// re-check lets pass. A verdict far under the line keeps the full re-check, so honest heavy
    /// users are not judged more often.
    pub fn hold_after_score(&self, score: f64) -> DurationMs {
        let qualifies = score >= self.qualify_score;
        let hold = self.hold_after(qualifies);
        let margin = self.close_margin.unwrap_or(DEFAULT_CLOSE_MARGIN);
        if qualifies || margin <= 0.0 || score < self.qualify_score - margin {
            return hold;
        }
        let close = self.recheck_close.unwrap_or(DEFAULT_RECHECK_CLOSE);
        if close.ms() < hold.ms() { close } else { hold }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderPolicy {
    pub prior_window: DurationMs,
    pub throttle_prior: u32,
    pub restrict_prior: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetPolicy {
    pub slice: DurationMs,
    pub fail_closed_when_store_down: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeTier {
    pub synthetic_verdict: bool,
}

/// `[fingerprint]`: acoustic fingerprints of each metered stream's speech (issue 11). The gateway
/// keeps one sampled code in four with its offset, looks each batch up in the print index and adds
/// it there, so a session learns how much of its audio repeats audio heard at least five minutes
/// earlier ([`crate::prints`]). Optional in a policy file; every key has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FingerprintPolicy {
    /// The gateway fingerprints new streams (read when a stream opens). On by default.
    pub enabled: bool,
    /// How long sampled codes stay in the index; older ones are deleted by a worker.
    pub retention: DurationMs,
    /// Duplicate audio qualifies a verdict on its own when the sessions of the classifier's
    /// lookback repeat at least this much earlier audio...
    pub qualify_minutes: u32,
    /// ...and that is at least this share of the user's speech in the lookback.
    pub qualify_share: f64,
    /// After a verdict that duplicate audio qualified, the user is judged again after this instead
    /// of `[classifier] cooldown` (absent: [`DEFAULT_MEASURED_COOLDOWN`], never more than the
    /// cooldown). See [`Policy::hold_after_qualifying`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<DurationMs>,
}

/// The cooldown after a verdict duplicate audio qualified, when a policy file does not set one.
pub const DEFAULT_MEASURED_COOLDOWN: DurationMs = DurationMs::hours(6);

impl Default for FingerprintPolicy {
    fn default() -> Self {
        FingerprintPolicy {
            enabled: true,
            retention: DurationMs(8 * crate::time::MS_PER_DAY),
            qualify_minutes: 60,
            qualify_share: 0.25,
            cooldown: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelTier {
    Standard,
    Economy,
}

impl ModelTier {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelTier::Standard => "standard",
            ModelTier::Economy => "economy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagePolicy {
    /// How long the stage lasts before stepping down one stage.
    pub timer: DurationMs,
    pub stt_model_tier: ModelTier,
    /// Audio forwarded to the STT vendor per UTC day; absent means no budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt_daily_budget: Option<DurationMs>,
    /// Sync uploads are refused (429 with Retry-After) while the user is over a soft cap.
    pub sync_blocked_over_caps: bool,
    pub title: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stages {
    pub warning: StagePolicy,
    pub throttle: StagePolicy,
    pub restrict: StagePolicy,
}

/// The whole policy. Build it with [`Policy::from_toml_str`] or [`Policy::default`]; both validate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub switches: Switches,
    pub metering: Metering,
    pub windows: Vec<WindowDef>,
    pub ceiling: Ceiling,
    pub default_plan: String,
    pub plans: BTreeMap<String, PlanDef>,
    pub classifier: ClassifierPolicy,
    pub ladder: LadderPolicy,
    pub budget: BudgetPolicy,
    pub free_tier: FreeTier,
    pub messages: Messages,
    pub stages: Stages,
    #[serde(default)]
    pub fingerprint: FingerprintPolicy,
    /// Derived at validation: plan name -> index, caps aligned with `windows`.
    #[serde(skip)]
    compiled: Compiled,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Compiled {
    plan_index: HashMap<String, usize>,
    plan_names: Vec<String>,
    /// `caps[plan][window]` in ms; `None` when the plan has no cap on that window.
    caps: Vec<Vec<Option<i64>>>,
    plan_free: Vec<bool>,
    /// `lowest_caps[window]`: the smallest cap of any plan, so a report under all of them needs
    /// no plan lookup to know that nothing triggered.
    lowest_caps: Vec<Option<i64>>,
    default_plan: usize,
    ceiling_window: usize,
    window_minutes: Vec<i64>,
}

/// A plan, by index into the policy's plan table (cheap to copy, valid for the policy that made it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanId(pub usize);

impl Default for Policy {
    fn default() -> Self {
        // The shipped default is validated by a unit test, so this cannot fail in a build that passed.
        Policy::from_toml_str(DEFAULT_POLICY_TOML).expect("the shipped default policy is valid")
    }
}

impl Policy {
    /// How long the classifier lock is held after a qualifying verdict, and so how far apart the
    /// ladder's steps are: the classifier's cooldown, or the shorter `[fingerprint] cooldown` when
    /// the verdict was measured (duplicate audio: [`crate::classifier::Verdict::is_measured`]).
    ///
    /// The ladder spaces its steps so that an inference from titles and usage shape gets several
    /// looks, hours apart, before it throttles or restricts anyone. Time-shifted duplicate audio is
    /// not an inference: live conversation never happens twice, and waiting does not make the
    /// measurement more certain. The user still goes through every stage, warned before throttled
    /// and throttled before restricted, with each stage's notice; only the wait between them is
    /// shorter (warning to restrict in 18 h instead of 36 h with the defaults).
    pub fn hold_after_qualifying(&self, measured: bool) -> DurationMs {
        let cooldown = self.classifier.cooldown;
        if !measured {
            return cooldown;
        }
        let measured = self.fingerprint.cooldown.unwrap_or(DEFAULT_MEASURED_COOLDOWN);
        if measured.ms() < cooldown.ms() { measured } else { cooldown }
    }

    pub fn plan(&self, name: &str) -> Option<PlanId> {
        self.compiled.plan_index.get(name).copied().map(PlanId)
    }

    /// The plan for a report that names one: unknown names are input errors.
    pub fn plan_or_error(&self, name: &str) -> Result<PlanId, crate::error::InputError> {
        self.plan(name).ok_or_else(|| {
            crate::error::InputError::new(
                "plan",
                format!("unknown plan {name:?}; known plans: {}", self.compiled.plan_names.join(", ")),
            )
        })
    }

    pub fn default_plan_id(&self) -> PlanId {
        PlanId(self.compiled.default_plan)
    }

    pub fn plan_name(&self, plan: PlanId) -> &str {
        self.compiled.plan_names.get(plan.0).map(String::as_str).unwrap_or("?")
    }

    pub fn plan_is_free(&self, plan: PlanId) -> bool {
        self.compiled.plan_free.get(plan.0).copied().unwrap_or(false)
    }

    /// Caps of a plan aligned with [`Policy::windows`].
    pub fn caps(&self, plan: PlanId) -> &[Option<i64>] {
        self.compiled.caps.get(plan.0).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Per window, the smallest cap of any plan (`None` when no plan caps that window).
    pub fn lowest_caps(&self) -> &[Option<i64>] {
        &self.compiled.lowest_caps
    }

    pub fn window_minutes(&self) -> &[i64] {
        &self.compiled.window_minutes
    }

    pub fn ceiling_window(&self) -> usize {
        self.compiled.ceiling_window
    }

    /// The hard ceiling in ms, or `None` when `ceiling.limit` is 0 (no ceiling, as Omi's
    /// `MAX_DAILY_AUDIO_HOURS=0`).
    pub fn ceiling_limit_ms(&self) -> Option<i64> {
        Some(self.ceiling.limit.ms()).filter(|l| *l > 0)
    }

    /// Whether a total of the ceiling window is at or over the ceiling (never, without one).
    pub fn at_ceiling(&self, total_ms: i64) -> bool {
        self.ceiling_limit_ms().is_some_and(|limit| total_ms >= limit)
    }

    /// Room left under the ceiling for a window total; `i64::MAX` without a ceiling.
    pub fn ceiling_headroom(&self, total_ms: i64) -> i64 {
        self.ceiling_limit_ms().map_or(i64::MAX, |limit| limit - total_ms)
    }

    pub fn stage_policy(&self, stage: Stage) -> Option<&StagePolicy> {
        match stage {
            Stage::None => None,
            Stage::Warning => Some(&self.stages.warning),
            Stage::Throttle => Some(&self.stages.throttle),
            Stage::Restrict => Some(&self.stages.restrict),
        }
    }

    pub fn stage_timer(&self, stage: Stage) -> Option<i64> {
        self.stage_policy(stage).map(|s| s.timer.ms())
    }

    pub fn is_exempt_in_config(&self, uid: &str) -> bool {
        self.switches.exempt_uids.contains(uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_policy_is_valid_and_matches_the_spec() {
        let p = Policy::from_toml_str(DEFAULT_POLICY_TOML).unwrap();
        let h = |n: i64| Some(n * 3_600_000);
        assert_eq!(p.caps(p.plan("free").unwrap()), &[h(2), h(8), h(10)]);
        assert_eq!(p.caps(p.plan("paid").unwrap()), &[h(2), h(8), h(10)]);
        assert_eq!(p.caps(p.plan("unlimited").unwrap()), &[h(4), h(16), h(20)]);
        assert_eq!(p.default_plan_id(), p.plan("free").unwrap());
        assert!(p.plan_is_free(p.plan("free").unwrap()));
        assert!(!p.plan_is_free(p.plan("paid").unwrap()));
        assert_eq!(p.ceiling.limit, DurationMs::hours(30));
        assert_eq!(p.window_minutes(), &[1440, 4320, 10080]);
        assert_eq!(p.metering.check_interval, DurationMs::seconds(300));
        assert_eq!(p.classifier.cooldown, DurationMs::hours(12));
        assert_eq!(p.stages.throttle.stt_daily_budget, Some(DurationMs::hours(4)));
        assert_eq!(p.stages.restrict.stt_daily_budget, Some(DurationMs::minutes(30)));
        assert_eq!(p.stages.warning.stt_daily_budget, None);
    }

    #[test]
    fn a_measured_verdict_holds_6h_by_default_never_more_than_the_cooldown_and_a_bad_value_names_the_key() {
        let p = Policy::default();
        assert_eq!(p.hold_after_qualifying(false), DurationMs::hours(12));
        assert_eq!(p.hold_after_qualifying(true), DurationMs::hours(6));
        let short = DEFAULT_POLICY_TOML.replace("cooldown = \"12h\"", "cooldown = \"4h\"");
        let p = Policy::from_toml_str(&short).expect("a short cooldown");
        assert_eq!(p.hold_after_qualifying(true), DurationMs::hours(4), "never more than the cooldown");
        let set = DEFAULT_POLICY_TOML.replace("qualify_share = 0.25", "qualify_share = 0.25\ncooldown = \"2h\"");
        let p = Policy::from_toml_str(&set).expect("a fingerprint cooldown");
        assert_eq!(p.hold_after_qualifying(true), DurationMs::hours(2));
        assert_eq!(p.hold_after_qualifying(false), DurationMs::hours(12));
        for (value, why) in [("13h", "must not exceed classifier.cooldown"), ("0s", "must be positive")] {
            let bad = DEFAULT_POLICY_TOML
                .replace("qualify_share = 0.25", &format!("qualify_share = 0.25\ncooldown = \"{value}\""));
            let err = Policy::from_toml_str(&bad).expect_err(value).to_string();
            assert!(err.contains("fingerprint.cooldown") && err.contains(why), "{value}: {err}");
        }
    }

    #[test]
    fn the_recheck_after_a_verdict_that_does_not_qualify_is_3h_never_more_than_the_cooldown() {
        let p = Policy::default();
        assert_eq!(p.classifier.hold_after(false), DurationMs::hours(3));
        assert_eq!(p.classifier.hold_after(true), DurationMs::hours(12));
        // A policy file without the key gets the shipped re-check, capped by its own cooldown.
        let without = DEFAULT_POLICY_TOML.replace("recheck = \"3h\"", "");
        assert!(without.len() < DEFAULT_POLICY_TOML.len());
        let p = Policy::from_toml_str(&without).unwrap();
        assert_eq!(p.classifier.recheck, None);
        assert_eq!(p.classifier.hold_after(false), DurationMs::hours(3));
        let short = without.replace("cooldown = \"12h\"", "cooldown = \"1h\"");
        let p = Policy::from_toml_str(&short).unwrap();
        assert_eq!(p.classifier.hold_after(false), DurationMs::hours(1));
        for (value, why) in [("13h", "must not exceed classifier.cooldown"), ("0s", "must be positive")] {
            let text = DEFAULT_POLICY_TOML.replace("recheck = \"3h\"", &format!("recheck = \"{value}\""));
            let err = Policy::from_toml_str(&text).unwrap_err().to_string();
            assert!(err.contains("classifier.recheck") && err.contains(why), "{value}: {err}");
        }
    }

    #[test]
    fn a_verdict_close_to_the_line_is_rechecked_sooner_and_one_far_under_it_is_not() {
        let p = Policy::default();
        let c = &p.classifier;
        assert_eq!(c.hold_after_score(0.9), DurationMs::hours(12), "qualifying: the cooldown");
        assert_eq!(c.hold_after_score(0.7), DurationMs::hours(12));
        assert_eq!(c.hold_after_score(0.6), DurationMs::hours(1), "close under the line");
        assert_eq!(c.hold_after_score(0.55), DurationMs::hours(1));
        assert_eq!(c.hold_after_score(0.54), DurationMs::hours(3), "far under the line: the re-check");
        assert_eq!(c.hold_after_score(0.0), DurationMs::hours(3));
        // Without the keys: the shipped defaults; a margin of 0 turns it off; never above recheck.
        let without = DEFAULT_POLICY_TOML.replace("recheck_close = \"1h\"", "").replace("close_margin = 0.15", "");
        assert!(without.len() < DEFAULT_POLICY_TOML.len() - 20);
        let p = Policy::from_toml_str(&without).unwrap();
        assert_eq!(p.classifier.hold_after_score(0.6), DurationMs::hours(1));
        let off = DEFAULT_POLICY_TOML.replace("close_margin = 0.15", "close_margin = 0");
        assert_eq!(Policy::from_toml_str(&off).unwrap().classifier.hold_after_score(0.69), DurationMs::hours(3));
        let short = without.replace("recheck = \"3h\"", "recheck = \"30m\"");
        assert_eq!(Policy::from_toml_str(&short).unwrap().classifier.hold_after_score(0.6), DurationMs::minutes(30));
        for (from, to, key, why) in [
            ("recheck_close = \"1h\"", "recheck_close = \"4h\"", "classifier.recheck_close", "must not exceed"),
            ("recheck_close = \"1h\"", "recheck_close = \"0s\"", "classifier.recheck_close", "must be positive"),
            ("close_margin = 0.15", "close_margin = 1.5", "classifier.close_margin", "between 0 and 1"),
        ] {
            let text = DEFAULT_POLICY_TOML.replace(from, to);
            assert_ne!(text, DEFAULT_POLICY_TOML, "{from}");
            let err = Policy::from_toml_str(&text).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(why), "{to}: {err}");
        }
    }

    #[test]
    fn a_ceiling_limit_of_zero_means_no_ceiling() {
        let text = DEFAULT_POLICY_TOML.replace("limit = \"30h\"", "limit = 0");
        let p = Policy::from_toml_str(&text).unwrap();
        assert_eq!(p.ceiling_limit_ms(), None);
        let free = p.plan("free").unwrap();
        let totals = crate::windows::WindowTotals::new(&p, vec![i64::MAX / 4, 0, 0]);
        let check = crate::engine::check_caps(totals, free, &p);
        assert!(!check.ceiling_exceeded, "no total reaches a ceiling that does not exist");
        assert_eq!(Policy::default().ceiling_limit_ms(), Some(30 * 3_600_000));
        let negative = DEFAULT_POLICY_TOML.replace("limit = \"30h\"", "limit = -1");
        assert!(Policy::from_toml_str(&negative).is_err());
    }
}
