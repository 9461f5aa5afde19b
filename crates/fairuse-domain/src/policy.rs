//! The policy file: plans, windows, caps, the ceiling, the ladder, timers, stage effects and the
//! messages users see. Parsed from TOML with unknown keys refused, then validated; every error
//! names the key it is about. The shipped default is `default-policy.toml` beside this crate.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::stage::Stage;
use crate::time::{DurationMs, MS_PER_MINUTE, Timestamp};

pub const DEFAULT_POLICY_TOML: &str = include_str!("../default-policy.toml");

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file is not valid: {0}")]
    Parse(String),
    #[error("policy key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid { key: key.into(), message: message.into() }
}

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
}

impl Default for FingerprintPolicy {
    fn default() -> Self {
        FingerprintPolicy {
            enabled: true,
            retention: DurationMs(8 * crate::time::MS_PER_DAY),
            qualify_minutes: 60,
            qualify_share: 0.25,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messages {
    pub support_contact: String,
    pub none: String,
    pub restriction_lifted_title: String,
    pub restriction_lifted_body: String,
    pub budget_exhausted_title: String,
    pub budget_exhausted_body: String,
    /// `{reason}` for a stage the classifier's misuse verdicts drove.
    #[serde(default = "default_reason_misuse")]
    pub reason_misuse: String,
    /// `{reason}` for a stage driven by the synthetic verdict of a free plan without credits.
    #[serde(default = "default_reason_free_credits")]
    pub reason_free_credits: String,
    /// `{reason}` for a stage an admin set.
    #[serde(default = "default_reason_admin")]
    pub reason_admin: String,
}

// Defaults so that policy files written before `{reason}` existed still load.
fn default_reason_misuse() -> String {
    "Your recent usage is far above personal use and looks like recorded media such as audiobooks, podcasts or TV."
        .into()
}

fn default_reason_free_credits() -> String {
    "Your free transcription credits are used up and your usage is over the free plan's fair-use limits.".into()
}

fn default_reason_admin() -> String {
    "Our team reviewed your usage.".into()
}

/// Why a user is in their stage, as far as the texts they see are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Misuse verdicts of the classifier.
    Misuse,
    /// The synthetic verdict for a free plan whose credits ran out.
    FreeCredits,
    /// An admin set the stage.
    Admin,
}

/// What a user-facing text is about: the stage, its case, when it ends and why it applies.
/// Built from the user's state or an event (`fairuse_domain::engine`), so a text never promises a
/// timer an admin-set stage does not have, nor blames media for what an admin or the credits did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageContext<'a> {
    pub stage: Stage,
    pub case_ref: Option<&'a str>,
    /// When the stage ends; `None` for a stage without expiry.
    pub until: Option<Timestamp>,
    pub cause: Cause,
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
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        let mut policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks every rule and fills the derived tables. Call again after changing fields in code.
    pub fn validate(&mut self) -> Result<(), PolicyError> {
        self.check_bounds()?;
        let m = &self.metering;
        if m.retention.ms() < DurationMs::hours(1).ms() {
            return Err(invalid("metering.retention", "must be at least 1h"));
        }
        let f = &self.fingerprint;
        if f.retention.ms() < DurationMs::hours(1).ms() {
            return Err(invalid("fingerprint.retention", "must be at least 1h"));
        }
        if !(f.qualify_share > 0.0 && f.qualify_share <= 1.0) {
            return Err(invalid("fingerprint.qualify_share", "must be above 0 and at most 1"));
        }
        if f.qualify_minutes == 0 {
            return Err(invalid("fingerprint.qualify_minutes", "must be at least 1"));
        }
        if m.check_interval.ms() <= 0 {
            return Err(invalid("metering.check_interval", "must be positive"));
        }
        if m.max_report_speech.ms() <= 0 {
            return Err(invalid("metering.max_report_speech", "must be positive"));
        }
        if self.windows.is_empty() {
            return Err(invalid("windows", "at least one window is needed"));
        }
        let mut names = BTreeSet::new();
        let mut window_minutes = Vec::new();
        for (i, w) in self.windows.iter().enumerate() {
            let key = format!("windows[{i}]");
            if w.name.is_empty() || !w.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(invalid(format!("{key}.name"), "must be lower-case letters, digits and _"));
            }
            if !names.insert(w.name.clone()) {
                return Err(invalid(format!("{key}.name"), format!("duplicate window {:?}", w.name)));
            }
            if w.length.ms() <= 0 || w.length.ms() % MS_PER_MINUTE != 0 {
                return Err(invalid(format!("{key}.length"), "must be a positive whole number of minutes"));
            }
            if w.length > m.retention {
                return Err(invalid(format!("{key}.length"), "must not be longer than metering.retention"));
            }
            window_minutes.push(w.minutes());
        }
        let window_pos = |name: &str| self.windows.iter().position(|w| w.name == name);
        let ceiling_window = window_pos(&self.ceiling.window)
            .ok_or_else(|| invalid("ceiling.window", format!("no window named {:?}", self.ceiling.window)))?;
        if self.ceiling.limit.ms() < 0 {
            return Err(invalid("ceiling.limit", "must not be negative (0 means no ceiling)"));
        }
        if self.plans.is_empty() {
            return Err(invalid("plans", "at least one plan is needed"));
        }
        let mut compiled = Compiled { ceiling_window, window_minutes, ..Compiled::default() };
        for (name, plan) in &self.plans {
            let mut caps = vec![None; self.windows.len()];
            for (wname, cap) in &plan.caps {
                let idx = window_pos(wname)
                    .ok_or_else(|| invalid(format!("plans.{name}.caps.{wname}"), "no window of that name"))?;
                if cap.ms() <= 0 {
                    return Err(invalid(format!("plans.{name}.caps.{wname}"), "must be positive"));
                }
                caps[idx] = Some(cap.ms());
            }
            compiled.plan_index.insert(name.clone(), compiled.plan_names.len());
            compiled.plan_names.push(name.clone());
            compiled.caps.push(caps);
            compiled.plan_free.push(plan.free);
        }
        compiled.lowest_caps =
            (0..self.windows.len()).map(|w| compiled.caps.iter().filter_map(|caps| caps[w]).min()).collect();
        compiled.default_plan = *compiled
            .plan_index
            .get(&self.default_plan)
            .ok_or_else(|| invalid("default_plan", format!("no plan named {:?}", self.default_plan)))?;
        let c = &self.classifier;
        if !(0.0..=1.0).contains(&c.qualify_score) || c.qualify_score.is_nan() {
            return Err(invalid("classifier.qualify_score", "must be between 0 and 1"));
        }
        if let Some(r) = c.recheck {
            if r.ms() <= 0 {
                return Err(invalid("classifier.recheck", "must be positive"));
            }
            if r.ms() > c.cooldown.ms() {
                return Err(invalid("classifier.recheck", "must not exceed classifier.cooldown"));
            }
        }
        if let Some(r) = c.recheck_close {
            if r.ms() <= 0 {
                return Err(invalid("classifier.recheck_close", "must be positive"));
            }
            if r.ms() > c.recheck.unwrap_or(DEFAULT_RECHECK).ms().min(c.cooldown.ms()) {
                return Err(invalid("classifier.recheck_close", "must not exceed classifier.recheck"));
            }
        }
        if let Some(m) = c.close_margin
            && !(0.0..=1.0).contains(&m)
        {
            return Err(invalid("classifier.close_margin", "must be between 0 and 1"));
        }
        if c.backend == ClassifierBackend::Scripted {
            // Allowed: `simulate --classifier scripted` sets it; the service refuses it at start-up.
        }
        let l = &self.ladder;
        if l.throttle_prior > l.restrict_prior {
            return Err(invalid("ladder.throttle_prior", "must not exceed ladder.restrict_prior"));
        }
        for (stage, sp) in [
            ("warning", &self.stages.warning),
            ("throttle", &self.stages.throttle),
            ("restrict", &self.stages.restrict),
        ] {
            if sp.timer.ms() <= 0 {
                return Err(invalid(format!("stages.{stage}.timer"), "must be positive"));
            }
            if let Some(b) = sp.stt_daily_budget
                && b.ms() > DurationMs::hours(24).ms()
            {
                return Err(invalid(format!("stages.{stage}.stt_daily_budget"), "must be at most 24h"));
            }
            if sp.title.trim().is_empty() || sp.body.trim().is_empty() {
                return Err(invalid(format!("stages.{stage}.body"), "title and body must not be empty"));
            }
            for placeholder in placeholders(&sp.body).chain(placeholders(&sp.title)) {
                if !KNOWN_PLACEHOLDERS.contains(&placeholder) {
                    return Err(invalid(
                        format!("stages.{stage}.body"),
                        format!("unknown placeholder {{{placeholder}}}"),
                    ));
                }
            }
            if sp.stt_daily_budget.is_none() && sp.body.contains("{stt_daily_budget}") {
                return Err(invalid(
                    format!("stages.{stage}.body"),
                    "mentions {stt_daily_budget} but the stage has no budget",
                ));
            }
        }
        for uid in &self.switches.exempt_uids {
            crate::ids::Uid::check(uid).map_err(|e| invalid("switches.exempt_uids", e.message))?;
        }
        if self.budget.slice.ms() <= 0 {
            return Err(invalid("budget.slice", "must be positive"));
        }
        self.compiled = compiled;
        Ok(())
    }

    /// Upper bounds that keep every later sum of instants and durations far from overflow, and
    /// the metering limits sane (a future skew of a year would accept nonsense).
    fn check_bounds(&self) -> Result<(), PolicyError> {
        use crate::time::MS_PER_DAY;
        const CENTURY: i64 = 100 * 366 * MS_PER_DAY;
        let m = &self.metering;
        let mut limits: Vec<(String, DurationMs, i64)> = vec![
            ("metering.retention".into(), m.retention, 366 * MS_PER_DAY),
            ("metering.max_future_skew".into(), m.max_future_skew, MS_PER_DAY),
            ("metering.check_interval".into(), m.check_interval, MS_PER_DAY),
            ("metering.max_report_speech".into(), m.max_report_speech, 366 * MS_PER_DAY),
            ("classifier.cooldown".into(), self.classifier.cooldown, CENTURY),
            ("classifier.recheck".into(), self.classifier.recheck.unwrap_or(DEFAULT_RECHECK), CENTURY),
            (
                "classifier.recheck_close".into(),
                self.classifier.recheck_close.unwrap_or(DEFAULT_RECHECK_CLOSE),
                CENTURY,
            ),
            ("classifier.lookback".into(), self.classifier.lookback, CENTURY),
            ("classifier.evidence_retention".into(), self.classifier.evidence_retention, CENTURY),
            ("ladder.prior_window".into(), self.ladder.prior_window, CENTURY),
            ("ceiling.limit".into(), self.ceiling.limit, CENTURY),
            ("budget.slice".into(), self.budget.slice, CENTURY),
            ("stages.warning.timer".into(), self.stages.warning.timer, CENTURY),
            ("stages.throttle.timer".into(), self.stages.throttle.timer, CENTURY),
            ("stages.restrict.timer".into(), self.stages.restrict.timer, CENTURY),
            ("fingerprint.retention".into(), self.fingerprint.retention, 366 * MS_PER_DAY),
        ];
        limits
            .extend(self.windows.iter().enumerate().map(|(i, w)| (format!("windows[{i}].length"), w.length, CENTURY)));
        for (name, plan) in &self.plans {
            limits.extend(plan.caps.iter().map(|(w, cap)| (format!("plans.{name}.caps.{w}"), *cap, CENTURY)));
        }
        match limits.into_iter().find(|(_, value, max)| value.ms() > *max) {
            Some((key, _, max)) => Err(invalid(key, format!("must be at most {}", DurationMs(max).human()))),
            None => Ok(()),
        }
    }

    pub fn to_toml_string(&self) -> String {
        // Serializing plain data to TOML cannot fail for this shape (no non-string map keys).
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not print policy: {e}\n"))
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

    /// A user-facing text with its placeholders filled from this policy and the context:
    /// `{reason}` why the stage applies, `{effects}` what it does (a sentence built from the
    /// stage's effects, so it cannot promise a budget the stage does not have), `{until}` when it
    /// ends (from the actual expiry, not the configured timer), `{stt_daily_budget}`, `{timer}`
    /// (the configured timer), `{case_ref}` and `{support_contact}`.
    pub fn render(&self, template: &str, ctx: &MessageContext<'_>) -> String {
        let sp = self.stage_policy(ctx.stage);
        let budget = sp.and_then(|s| s.stt_daily_budget).map(human_amount).unwrap_or_default();
        let timer = sp.map(|s| human_amount(s.timer)).unwrap_or_default();
        let reason = match ctx.cause {
            Cause::Misuse => &self.messages.reason_misuse,
            Cause::FreeCredits => &self.messages.reason_free_credits,
            Cause::Admin => &self.messages.reason_admin,
        };
        let until = match (ctx.until, ctx.cause) {
            (Some(t), _) => {
                let t = t.to_rfc3339();
                format!("This lasts until {} {} UTC.", &t[..10], &t[11..16])
            }
            (None, Cause::Admin) => "This lasts until our team lifts it.".to_owned(),
            (None, _) => String::new(),
        };
        let text = template
            .replace("{reason}", reason)
            .replace("{effects}", &sp.map(effects_sentence).unwrap_or_default())
            .replace("{until}", &until)
            .replace("{stt_daily_budget}", &budget)
            .replace("{timer}", &timer)
            .replace("{case_ref}", ctx.case_ref.unwrap_or("(none)"))
            .replace("{support_contact}", &self.messages.support_contact);
        // A placeholder that rendered empty leaves a double space behind.
        text.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
    }

    /// `(title, body)` a user is shown when today's STT budget of the stage runs out.
    pub fn budget_notification(&self, ctx: &MessageContext<'_>) -> (String, String) {
        (
            self.render(&self.messages.budget_exhausted_title, ctx),
            self.render(&self.messages.budget_exhausted_body, ctx),
        )
    }

    /// `(title, body)` a user is shown on entering the stage.
    pub fn notification(&self, ctx: &MessageContext<'_>) -> (String, String) {
        match self.stage_policy(ctx.stage) {
            Some(sp) => (self.render(&sp.title, ctx), self.render(&sp.body, ctx)),
            None => (
                self.render(&self.messages.restriction_lifted_title, ctx),
                self.render(&self.messages.restriction_lifted_body, ctx),
            ),
        }
    }
}

/// `{effects}`: the stage's effects as one sentence, from the effects themselves.
fn effects_sentence(sp: &StagePolicy) -> String {
    let mut clauses = Vec::new();
    if sp.stt_model_tier == ModelTier::Economy {
        clauses.push("transcription uses an economy model".to_owned());
    }
    if let Some(b) = sp.stt_daily_budget {
        clauses.push(format!("cloud transcription covers at most {} of audio per UTC day", human_amount(b)));
    }
    if sp.sync_blocked_over_caps {
        clauses.push("uploads of recordings are refused while your usage is over the fair-use limits".to_owned());
    }
    let sentence = match clauses.as_slice() {
        [] => "nothing changes for now".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let mut chars = sentence.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".").unwrap_or_default()
}

const KNOWN_PLACEHOLDERS: [&str; 7] =
    ["stt_daily_budget", "timer", "case_ref", "support_contact", "reason", "effects", "until"];

fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// "30 minutes", "4 hours", "7 days": the wording used in messages.
pub fn human_amount(d: DurationMs) -> String {
    let ms = d.ms();
    let plural = |n: i64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    if ms > 0 && ms % crate::time::MS_PER_DAY == 0 {
        plural(ms / crate::time::MS_PER_DAY, "day")
    } else if ms > 0 && ms % crate::time::MS_PER_HOUR == 0 {
        plural(ms / crate::time::MS_PER_HOUR, "hour")
    } else if ms > 0 && ms % MS_PER_MINUTE == 0 {
        plural(ms / MS_PER_MINUTE, "minute")
    } else {
        plural(ms / 1000, "second")
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
    fn printed_policy_parses_back_to_the_same_policy() {
        let p = Policy::default();
        let again = Policy::from_toml_str(&p.to_toml_string()).unwrap();
        assert_eq!(p, again);
    }

    #[test]
    fn unknown_key_is_refused_and_named() {
        let text = DEFAULT_POLICY_TOML.replace("kill_switch = false", "kill_switch = false\nkil_switch = true");
        let err = Policy::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains("kil_switch"), "{err}");
    }

    #[test]
    fn cap_on_a_missing_window_names_the_key() {
        let text =
            DEFAULT_POLICY_TOML.replace("weekly = \"10h\" }\n\n[plans.paid]", "monthly = \"10h\" }\n\n[plans.paid]");
        let err = Policy::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains("plans.free.caps.monthly"), "{err}");
    }

    #[test]
    fn unknown_default_plan_is_a_load_error() {
        let text = DEFAULT_POLICY_TOML.replace("default_plan = \"free\"", "default_plan = \"gold\"");
        let err = Policy::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains("default_plan") && err.contains("gold"), "{err}");
    }

    #[test]
    fn bad_duration_and_score_name_their_keys() {
        let text = DEFAULT_POLICY_TOML.replace("cooldown = \"12h\"", "cooldown = \"soon\"");
        let err = Policy::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains("cooldown"), "{err}");
        let text = DEFAULT_POLICY_TOML.replace("qualify_score = 0.7", "qualify_score = 1.5");
        let err = Policy::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains("classifier.qualify_score"), "{err}");
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

    fn ctx(stage: Stage, cause: Cause, until: Option<Timestamp>) -> MessageContext<'static> {
        MessageContext { stage, case_ref: Some("FU-000000000001"), until, cause }
    }

    const DEC_8: Timestamp = Timestamp(1_796_738_400_000); // 2026-12-08T14:00:00Z

    #[test]
    fn an_automatic_stage_names_its_cause_effects_and_end() {
        let p = Policy::default();
        let (_, body) = p.notification(&ctx(Stage::Throttle, Cause::Misuse, Some(DEC_8)));
        for want in ["recorded media", "economy model", "4 hours", "until 2026-12-08 14:00 UTC", "FU-000000000001"] {
            assert!(body.contains(want), "{want:?} in {body}");
        }
        let (_, body) = p.notification(&ctx(Stage::Restrict, Cause::Misuse, Some(DEC_8)));
        for want in ["30 minutes", "uploads of recordings are refused", "until 2026-12-08 14:00 UTC"] {
            assert!(body.contains(want), "{want:?} in {body}");
        }
    }

    #[test]
    fn an_admin_set_stage_promises_no_timer_and_blames_no_media() {
        let p = Policy::default();
        for stage in [Stage::Warning, Stage::Throttle, Stage::Restrict] {
            let (_, body) = p.notification(&ctx(stage, Cause::Admin, None));
            assert!(!body.contains("days"), "no duration is promised for a stage without expiry: {body}");
            assert!(!body.contains("recorded media"), "{body}");
            assert!(body.contains("Our team reviewed your usage"), "{body}");
            if stage != Stage::Warning {
                assert!(body.contains("until our team lifts it"), "{body}");
            }
        }
        let far = Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let (_, body) = p.notification(&ctx(Stage::Throttle, Cause::Admin, Some(far)));
        assert!(body.contains("until 2030-01-01 00:00 UTC") && !body.contains("7 days"), "{body}");
    }

    #[test]
    fn free_credit_stages_say_so_and_blame_no_media() {
        let p = Policy::default();
        let (_, body) = p.notification(&ctx(Stage::Warning, Cause::FreeCredits, Some(DEC_8)));
        assert!(body.contains("free transcription credits") && !body.contains("recorded media"), "{body}");
    }

    #[test]
    fn the_shipped_texts_render_without_a_restrict_budget() {
        let mut p = Policy::default();
        p.stages.restrict.stt_daily_budget = None;
        assert_eq!(p.validate(), Ok(()), "a restrict stage without budget (Omi's FAIR_USE_RESTRICT_DAILY_DG_MS=0)");
        let (_, body) = p.notification(&ctx(Stage::Restrict, Cause::Misuse, Some(DEC_8)));
        assert!(!body.contains("per UTC day") && !body.contains('{'), "{body}");
        assert!(body.contains("Uploads of recordings are refused"), "{body}");
        p.stages.restrict.sync_blocked_over_caps = false;
        p.stages.throttle.stt_daily_budget = None;
        p.stages.throttle.stt_model_tier = ModelTier::Standard;
        assert_eq!(p.validate(), Ok(()));
        for stage in [Stage::Throttle, Stage::Restrict] {
            let (_, body) = p.notification(&ctx(stage, Cause::Misuse, Some(DEC_8)));
            assert!(body.contains("Nothing changes for now"), "a stage without effects says so: {body}");
        }
    }

    #[test]
    fn a_budget_placeholder_on_a_stage_without_budget_is_refused() {
        let text = DEFAULT_POLICY_TOML.replace("If it continues,", "You have {stt_daily_budget}. If it continues,");
        let err = Policy::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains("stages.warning.body"), "{err}");
    }
}
