//! The texts users see: the `[messages]` table, why a stage applies ([`Cause`]), and rendering a
//! stage's title and body with their placeholders filled from the policy and the user's context.

use serde::{Deserialize, Serialize};

use super::{ModelTier, Policy, StagePolicy};
use crate::stage::Stage;
use crate::time::{DurationMs, MS_PER_MINUTE, Timestamp};

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

impl Policy {
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

pub(super) const KNOWN_PLACEHOLDERS: [&str; 7] =
    ["stt_daily_budget", "timer", "case_ref", "support_contact", "reason", "effects", "until"];

pub(super) fn placeholders(text: &str) -> impl Iterator<Item = &str> {
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
}
