//! Which engine events notify the host, and the exact JSON the host receives (SPEC section 3).
//!
//! Pure functions of the event: the server calls them inside the same commit that records the
//! event, so the outbox message exists if and only if the event does.

use fairuse_domain::engine::{Event, EventKind};
use fairuse_domain::ids::CaseRef;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::OutboxMessage;
use fairuse_domain::time::Timestamp;
use serde::Serialize;

/// The `type` of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum WebhookKind {
    #[serde(rename = "fair_use.stage_changed")]
    StageChanged,
    #[serde(rename = "fair_use.budget_exhausted")]
    BudgetExhausted,
    #[serde(rename = "fair_use.restriction_lifted")]
    RestrictionLifted,
}

impl WebhookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::StageChanged => "fair_use.stage_changed",
            WebhookKind::BudgetExhausted => "fair_use.budget_exhausted",
            WebhookKind::RestrictionLifted => "fair_use.restriction_lifted",
        }
    }
}

/// Whether `event` notifies the host, and as what.
///
/// Shadow events never notify: in shadow mode nothing reaches users. A `budget_exhausted` event
/// notifies although the stage stays put. Otherwise only stage changes notify: back to `none`
/// (timer expiry, reset, upgrade clearing, admin set-stage) is a lifted restriction, any other
/// change (up, or down to a lower non-`none` stage) is a stage change.
pub fn webhook_kind(event: &Event) -> Option<WebhookKind> {
    if event.shadow {
        return None;
    }
    if event.kind == EventKind::BudgetExhausted {
        return Some(WebhookKind::BudgetExhausted);
    }
    if !event.changes_stage() {
        return None;
    }
    if event.new_stage == Stage::None { Some(WebhookKind::RestrictionLifted) } else { Some(WebhookKind::StageChanged) }
}

/// The SPEC fields, in the SPEC's order (serde keeps struct field order).
#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: WebhookKind,
    uid: &'a str,
    case_ref: &'a CaseRef,
    stage: Stage,
    previous_stage: Stage,
    shadow: bool,
    title: &'a str,
    body: &'a str,
    created_at: Timestamp,
}

/// The webhook body for `event`: exactly the SPEC's fields, `title` and `body` being the
/// user-facing text for the stage, so the host only forwards them.
pub fn payload(event: &Event, kind: WebhookKind, title: &str, body: &str) -> String {
    let p = Payload {
        id: &event.event_id,
        kind,
        uid: &event.uid,
        case_ref: &event.case_ref,
        stage: event.new_stage,
        previous_stage: event.previous_stage,
        shadow: event.shadow,
        title,
        body,
        created_at: event.created_at,
    };
    // Strings, bools and unit enums into a String: serde_json only fails on non-string map keys
    // or on a `Serialize` impl that errors, and none of these types has either.
    serde_json::to_string(&p).expect("the webhook payload always serializes")
}

/// The outbox message for `event`, due at once. Its age for giving up counts from `now` (when it
/// is enqueued), not from the event: a timer applied late has an event time in the past, and its
/// notification still deserves the full retry period.
pub fn outbox_message(event: &Event, kind: WebhookKind, title: &str, body: &str, now: Timestamp) -> OutboxMessage {
    OutboxMessage {
        id: event.event_id.clone(),
        body: payload(event, kind, title, body),
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
        last_error: None,
    }
}
