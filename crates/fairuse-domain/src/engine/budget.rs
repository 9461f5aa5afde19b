//! The daily STT budget: today's forwarded-audio counter, its status, and [`record_stt`], which
//! splits each report's audio into forwarded and held back.

use serde::{Deserialize, Serialize};

use super::{BudgetSnapshot, Ctx, EnforcementState, Event, EventKind, Forwarding};
use crate::time::Timestamp;

/// Today's forwarded-audio counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetDay {
    pub day: i64,
    pub used_ms: i64,
    pub exhausted_noted: bool,
}

impl BudgetDay {
    /// The counter as of `now`: a new UTC day starts at zero.
    pub fn today(self, now: Timestamp) -> BudgetDay {
        if self.day == now.utc_day() {
            self
        } else {
            BudgetDay { day: now.utc_day(), used_ms: 0, exhausted_noted: false }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub daily_limit_ms: i64,
    pub used_ms: i64,
    pub remaining_ms: i64,
    pub exhausted: bool,
    pub resets_at: Timestamp,
}

pub fn budget_status(limit_ms: i64, used_ms: i64, now: Timestamp) -> BudgetStatus {
    BudgetStatus {
        daily_limit_ms: limit_ms,
        used_ms,
        remaining_ms: (limit_ms - used_ms).max(0),
        exhausted: used_ms >= limit_ms,
        resets_at: now.next_utc_midnight(),
    }
}

/// How [`record_stt`] split one report's STT audio.
#[derive(Debug, Clone, PartialEq)]
pub struct SttSplit {
    /// Audio that went to the vendor and counts toward today's budget.
    pub forwarded_ms: i64,
    /// Audio held back (the ceiling, or the budget used up); `forwarded_ms + held_back_ms` is the
    /// report's `stt_ms`.
    pub held_back_ms: i64,
    /// `budget_exhausted`, the first time today's budget runs out.
    pub event: Option<Event>,
}

/// Forwarded audio for one report: what went to the vendor and what was held back, and the
/// `budget_exhausted` event the first time today's budget runs out (recorded with `shadow: true`
/// and nothing held back in shadow mode).
pub fn record_stt(
    state: &EnforcementState,
    budget: &mut BudgetDay,
    stt_ms: i64,
    fwd: &Forwarding,
    ctx: &mut Ctx<'_>,
) -> SttSplit {
    *budget = budget.today(ctx.now);
    let forwarded = if fwd.ceiling_enforced {
        0
    } else if let Some(limit) = fwd.budget_limit_ms {
        stt_ms.min((limit - budget.used_ms).max(0))
    } else {
        stt_ms
    };
    budget.used_ms += forwarded;
    let mut event = None;
    if let Some(limit) = fwd.budget_limit_ms.or(fwd.recorded_budget_limit_ms)
        && budget.used_ms >= limit
        && !budget.exhausted_noted
    {
        budget.exhausted_noted = true;
        let mut e = ctx.event(EventKind::BudgetExhausted, ctx.now, state.stage, state.stage);
        e.budget = Some(BudgetSnapshot { used_ms: budget.used_ms, limit_ms: limit });
        e.stage_until = state.stage_until;
        event = Some(e);
    }
    SttSplit { forwarded_ms: forwarded, held_back_ms: stt_ms - forwarded, event }
}
