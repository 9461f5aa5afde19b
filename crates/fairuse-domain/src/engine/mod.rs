//! What happens when a cap is exceeded, a verdict arrives, a timer runs out or an admin acts.
//!
//! Every function here is `(state, input, policy, now) -> (new state, events)`: no I/O, no clock.
//! The service wraps them with store reads and writes; the simulator calls them directly; both
//! therefore apply the same rules.
//!
//! One job a file: `state` (the stored state), `events` (the audit events and their context),
//! `ladder` (timers, verdicts, plan changes), `admin` (manual actions and appeals), `caps`
//! (the cap check and the classifier trigger), `decision` (the answer a host enforces) and
//! `budget` (the daily STT budget split).

mod admin;
mod budget;
mod caps;
mod decision;
mod events;
mod ladder;
mod state;

pub use admin::{admin_reset, admin_set_stage, appeal, check_appeal_text, resolve_event, set_exempt};
pub use budget::{BudgetDay, BudgetStatus, SttSplit, budget_status, record_stt};
pub use caps::{CapCheck, ClassifyGate, check_caps, classify_gate, evaluation_due, synthetic_verdict};
pub use decision::{Decision, Forwarding, bypass_reason, decide, forwarding};
pub use events::{BudgetSnapshot, Ctx, Event, EventKind, Outcome, Resolution, SYSTEM_ACTOR, Trigger, WindowCheck};
pub use ladder::{apply_timers, apply_verdict, plan_changed};
pub use state::{EnforcementState, VerdictRecord};
