//! Bodies of the event trail: probes, triggers, evidence, verdicts, events (ours and Omi's), the
//! enforcement state.

use std::collections::BTreeMap;

use fairuse_domain::classifier::{Evidence, EvidenceKind, Recipe, UsageType, Verdict};
use fairuse_domain::engine::{
    BudgetSnapshot, EnforcementState, Event, EventKind, Outcome, Resolution, Trigger, VerdictRecord, WindowCheck,
};
use fairuse_domain::ids::CaseRef;
use fairuse_domain::prints::AudioMatch;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;
use serde::Serialize;

/// `Health` and `Ready`: the probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeBody {
    pub status: &'static str,
}

// ---- events -----------------------------------------------------------------------------------

/// `WindowCheck`: one window against the user's plan at the time of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowCheckBody {
    pub window: String,
    pub total_ms: i64,
    pub cap_ms: Option<i64>,
    pub over: bool,
}

impl From<&WindowCheck> for WindowCheckBody {
    fn from(w: &WindowCheck) -> Self {
        WindowCheckBody { window: w.window.clone(), total_ms: w.total_ms, cap_ms: w.cap_ms, over: w.over }
    }
}

/// `Trigger`: why an event happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerBody {
    pub reason: String,
    pub plan: String,
    pub windows: Vec<WindowCheckBody>,
    pub ceiling_ms: i64,
}

impl From<&Trigger> for TriggerBody {
    fn from(t: &Trigger) -> Self {
        TriggerBody {
            reason: t.reason.clone(),
            plan: t.plan.clone(),
            windows: t.windows.iter().map(WindowCheckBody::from).collect(),
            ceiling_ms: t.ceiling_ms,
        }
    }
}

/// An earlier session the cited one repeats (admins only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudioMatchBody {
    pub session_id: String,
    pub uid: String,
    pub own: bool,
    pub shift_ms: i64,
    pub shared_ms: i64,
}

impl From<&AudioMatch> for AudioMatchBody {
    fn from(m: &AudioMatch) -> Self {
        AudioMatchBody {
            session_id: m.session_id.clone(),
            uid: m.uid.clone(),
            own: m.own,
            shift_ms: m.shift_ms,
            shared_ms: m.shared_ms,
        }
    }
}

/// `Evidence`: what a verdict cites.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceBody {
    pub conversation_id: String,
    pub title: String,
    pub reason: String,
    #[serde(skip_serializing_if = "EvidenceKind::is_conversation")]
    pub kind: EvidenceKind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<AudioMatchBody>,
}

impl From<&Evidence> for EvidenceBody {
    fn from(e: &Evidence) -> Self {
        EvidenceBody {
            conversation_id: e.conversation_id.clone(),
            title: e.title.clone(),
            reason: e.reason.clone(),
            kind: e.kind,
            matches: e.matches.iter().map(AudioMatchBody::from).collect(),
        }
    }
}

/// `Verdict`: a classifier's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictBody {
    pub misuse_score: f64,
    pub usage_type: UsageType,
    pub confidence: f64,
    pub evidence: Vec<EvidenceBody>,
    pub model: String,
    pub prompt_version: String,
    pub recipes: Vec<Recipe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demoted: Option<String>,
}

impl From<&Verdict> for VerdictBody {
    fn from(v: &Verdict) -> Self {
        VerdictBody {
            misuse_score: v.misuse_score,
            usage_type: v.usage_type,
            confidence: v.confidence,
            evidence: v.evidence.iter().map(EvidenceBody::from).collect(),
            model: v.model.clone(),
            prompt_version: v.prompt_version.clone(),
            recipes: v.recipes.clone(),
            demoted: v.demoted.clone(),
        }
    }
}

/// `Resolution`: an admin's resolution of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolutionBody {
    pub outcome: Outcome,
    pub notes: String,
    pub resolved_by: String,
    pub resolved_at: Timestamp,
}

impl From<&Resolution> for ResolutionBody {
    fn from(r: &Resolution) -> Self {
        ResolutionBody {
            outcome: r.outcome,
            notes: r.notes.clone(),
            resolved_by: r.resolved_by.clone(),
            resolved_at: r.resolved_at,
        }
    }
}

/// `BudgetSnapshot`: the budget at the time of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetSnapshotBody {
    pub used_ms: i64,
    pub limit_ms: i64,
}

impl From<&BudgetSnapshot> for BudgetSnapshotBody {
    fn from(b: &BudgetSnapshot) -> Self {
        BudgetSnapshotBody { used_ms: b.used_ms, limit_ms: b.limit_ms }
    }
}

/// `Event`: an audit event, as the appeal, resolve, reset, set-stage and exemption answers show
/// it (`appeal`, `event`, `audit`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventBody {
    pub event_id: String,
    pub case_ref: CaseRef,
    pub uid: String,
    pub created_at: Timestamp,
    pub kind: EventKind,
    pub trigger: Option<TriggerBody>,
    pub verdict: Option<VerdictBody>,
    pub previous_stage: Stage,
    pub new_stage: Stage,
    pub stage_until: Option<Timestamp>,
    pub actor: String,
    pub shadow: bool,
    pub session_id: Option<String>,
    pub notes: Option<String>,
    pub budget: Option<BudgetSnapshotBody>,
    pub resolution: Option<ResolutionBody>,
    pub evidence_redacted_at: Option<Timestamp>,
}

impl From<&Event> for EventBody {
    fn from(e: &Event) -> Self {
        EventBody {
            event_id: e.event_id.clone(),
            case_ref: e.case_ref.clone(),
            uid: e.uid.clone(),
            created_at: e.created_at,
            kind: e.kind,
            trigger: e.trigger.as_ref().map(TriggerBody::from),
            verdict: e.verdict.as_ref().map(VerdictBody::from),
            previous_stage: e.previous_stage,
            new_stage: e.new_stage,
            stage_until: e.stage_until,
            actor: e.actor.clone(),
            shadow: e.shadow,
            session_id: e.session_id.clone(),
            notes: e.notes.clone(),
            budget: e.budget.as_ref().map(BudgetSnapshotBody::from),
            resolution: e.resolution.as_ref().map(ResolutionBody::from),
            evidence_redacted_at: e.evidence_redacted_at,
        }
    }
}

/// Omi's name of a window in a trigger (`3day`); other windows keep their own names.
fn omi_trigger_name(window: &str) -> &str {
    if window == "three_day" { "3day" } else { window }
}

/// An event as Omi's admin routes show it (`AdminUser.events`, `AdminCase`): our fields, with
/// Omi's beside them. Omi's `trigger` is the first window over its cap (`daily`, `3day`,
/// `weekly`; `daily` when none is, as Omi wrote it), so ours moves to `trigger_detail`;
/// `window_speech_ms`, `thresholds_ms` (the caps of the user's plan, where Omi used the default
/// tier's), `classifier`, `enforcement_action`, `admin_notes`, `resolved`, `resolved_at`,
/// `resolved_by` and `id` follow Omi's event document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OmiEventBody {
    pub event_id: String,
    pub case_ref: CaseRef,
    pub uid: String,
    pub created_at: Timestamp,
    pub kind: EventKind,
    /// Omi's field: the first window over its cap, `None` for an event without a trigger.
    pub trigger: Option<String>,
    pub verdict: Option<VerdictBody>,
    pub previous_stage: Stage,
    pub new_stage: Stage,
    pub stage_until: Option<Timestamp>,
    pub actor: String,
    pub shadow: bool,
    pub session_id: Option<String>,
    pub notes: Option<String>,
    pub budget: Option<BudgetSnapshotBody>,
    pub resolution: Option<ResolutionBody>,
    pub evidence_redacted_at: Option<Timestamp>,
    /// Our `trigger`, renamed because Omi's name holds Omi's value.
    pub trigger_detail: Option<TriggerBody>,
    /// Omi's: totals per window (`<window>_ms`); only on events with a trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_speech_ms: Option<BTreeMap<String, i64>>,
    /// Omi's: the caps of the user's plan by window; only on events with a trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds_ms: Option<BTreeMap<String, i64>>,
    /// Omi's name of `event_id`.
    pub id: String,
    /// Omi's name of `verdict`.
    pub classifier: Option<VerdictBody>,
    pub enforcement_action: Stage,
    pub resolved: bool,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub admin_notes: Option<String>,
}

impl From<&Event> for OmiEventBody {
    fn from(e: &Event) -> Self {
        let trigger = e
            .trigger
            .as_ref()
            .map(|t| t.windows.iter().find(|w| w.over).map_or("daily", |w| omi_trigger_name(&w.window)).to_owned());
        let window_speech_ms =
            e.trigger.as_ref().map(|t| t.windows.iter().map(|w| (format!("{}_ms", w.window), w.total_ms)).collect());
        let thresholds_ms = e
            .trigger
            .as_ref()
            .map(|t| t.windows.iter().filter_map(|w| w.cap_ms.map(|c| (w.window.clone(), c))).collect());
        let verdict = e.verdict.as_ref().map(VerdictBody::from);
        let resolution = e.resolution.as_ref();
        OmiEventBody {
            event_id: e.event_id.clone(),
            case_ref: e.case_ref.clone(),
            uid: e.uid.clone(),
            created_at: e.created_at,
            kind: e.kind,
            trigger,
            verdict: verdict.clone(),
            previous_stage: e.previous_stage,
            new_stage: e.new_stage,
            stage_until: e.stage_until,
            actor: e.actor.clone(),
            shadow: e.shadow,
            session_id: e.session_id.clone(),
            notes: e.notes.clone(),
            budget: e.budget.as_ref().map(BudgetSnapshotBody::from),
            resolution: resolution.map(ResolutionBody::from),
            evidence_redacted_at: e.evidence_redacted_at,
            trigger_detail: e.trigger.as_ref().map(TriggerBody::from),
            window_speech_ms,
            thresholds_ms,
            id: e.event_id.clone(),
            classifier: verdict,
            enforcement_action: if e.changes_stage() { e.new_stage } else { Stage::None },
            resolved: resolution.is_some(),
            resolved_at: resolution.map(|r| r.resolved_at),
            resolved_by: resolution.map(|r| r.resolved_by.clone()),
            admin_notes: resolution.map(|r| r.notes.clone()),
        }
    }
}

// ---- admin ------------------------------------------------------------------------------------

/// `VerdictRecord`: a qualifying verdict on the ladder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictRecordBody {
    pub event_id: String,
    pub at: Timestamp,
    pub overturned: bool,
    pub usage_type: UsageType,
    /// Measured on duplicate audio: the ladder's next step comes after `[fingerprint] cooldown`.
    pub measured: bool,
}

impl From<&VerdictRecord> for VerdictRecordBody {
    fn from(v: &VerdictRecord) -> Self {
        VerdictRecordBody {
            event_id: v.event_id.clone(),
            at: v.at,
            overturned: v.overturned,
            usage_type: v.usage_type,
            measured: v.measured,
        }
    }
}

/// `EnforcementState`: a user's enforcement state as admins see it (`state` of the admin
/// answers), internals included on purpose: `qualifying` and `last_job_id` explain the ladder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnforcementStateBody {
    pub stage: Stage,
    pub stage_until: Option<Timestamp>,
    pub manual: bool,
    pub stage_since: Option<Timestamp>,
    pub period_start: Option<Timestamp>,
    pub qualifying: Vec<VerdictRecordBody>,
    pub last_case_ref: Option<CaseRef>,
    pub last_usage_type: Option<UsageType>,
    pub last_score: Option<f64>,
    pub plan: Option<String>,
    pub credits_exhausted: bool,
    pub exempt: bool,
    pub last_job_id: Option<String>,
    pub updated_at: Option<Timestamp>,
}

impl From<&EnforcementState> for EnforcementStateBody {
    fn from(s: &EnforcementState) -> Self {
        EnforcementStateBody {
            stage: s.stage,
            stage_until: s.stage_until,
            manual: s.manual,
            stage_since: s.stage_since,
            period_start: s.period_start,
            qualifying: s.qualifying.iter().map(VerdictRecordBody::from).collect(),
            last_case_ref: s.last_case_ref.clone(),
            last_usage_type: s.last_usage_type,
            last_score: s.last_score,
            plan: s.plan.clone(),
            credits_exhausted: s.credits_exhausted,
            exempt: s.exempt,
            last_job_id: s.last_job_id.clone(),
            updated_at: s.updated_at,
        }
    }
}
