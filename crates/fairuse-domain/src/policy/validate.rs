//! Reading a policy: TOML parsing with unknown keys refused, the validation rules (every error
//! names the key it is about), the derived tables they fill, and printing a policy back to TOML.

use std::collections::BTreeSet;

use super::messages::{KNOWN_PLACEHOLDERS, placeholders};
use super::{ClassifierBackend, Compiled, DEFAULT_RECHECK, DEFAULT_RECHECK_CLOSE, Policy};
use crate::time::{DurationMs, MS_PER_MINUTE};

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
        if let Some(c) = f.cooldown {
            if c.ms() <= 0 {
                return Err(invalid("fingerprint.cooldown", "must be positive"));
            }
            if c.ms() > self.classifier.cooldown.ms() {
                return Err(invalid("fingerprint.cooldown", "must not exceed classifier.cooldown"));
            }
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
}

#[cfg(test)]
mod tests {
    use crate::policy::{DEFAULT_POLICY_TOML, Policy};

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
    fn a_budget_placeholder_on_a_stage_without_budget_is_refused() {
        let text = DEFAULT_POLICY_TOML.replace("If it continues,", "You have {stt_daily_budget}. If it continues,");
        let err = Policy::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains("stages.warning.body"), "{err}");
    }
}
