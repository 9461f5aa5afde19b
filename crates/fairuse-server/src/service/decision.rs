//! The decision a host asks for before it forwards audio, with the reads behind it: window
//! recoveries and the day's STT budget. Stores that fail make it fail open, except where the
//! policy says to fail closed.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use fairuse_domain::StoreError;
use fairuse_domain::engine::{self, CapCheck, Decision, EnforcementState};
use fairuse_domain::ids::Uid;
use fairuse_domain::pipeline::DecisionWithHealth;
use fairuse_domain::policy::Policy;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;
use fairuse_domain::windows::WindowTotals;

use super::{Service, ServiceError, ServiceResult};

impl Service {
    /// The decision for the host before it forwards audio. Stores that fail make it fail open,
    /// except the STT budget of users already throttled or restricted (policy switch).
    pub async fn decision(&self, uid: &Uid) -> ServiceResult<Decision> {
        self.decision_with_health(uid).await.map(|h| h.decision)
    }

    /// [`Self::decision`], and whether a denial is only the budget store failing closed: the
    /// gateway holds such a stream rather than stopping it ([`pipeline::lease`](fairuse_domain::pipeline::lease)).
    pub async fn decision_with_health(&self, uid: &Uid) -> ServiceResult<DecisionWithHealth> {
        let policy = self.policy();
        let now = self.now();
        let mut degraded = Vec::new();
        // While the durable store is unavailable, the last stage this process read still sets
        // the budget (fail closed for throttle/restrict); a user never read here fails open.
        let fallback = |why: String, degraded: &mut Vec<String>| match self.known_stages.get(uid) {
            Some(known) => {
                degraded.push(format!("enforcement state unavailable ({why}); using the last stage read here"));
                known
            }
            None => {
                degraded.push(format!("enforcement state unavailable ({why}); failing open"));
                EnforcementState::default()
            }
        };
        let state = if self.durable_breaker.is_open(now) {
            fallback("store recently failed".into(), &mut degraded)
        } else {
            match self.current_state(uid).await {
                Ok(s) => s,
                Err(e) => {
                    if matches!(e, ServiceError::Store(ref se) if !matches!(se, StoreError::Conflict | StoreError::Invalid(_) | StoreError::NotFound(_)))
                    {
                        self.durable_breaker.trip(self.now());
                    }
                    fallback(e.to_string(), &mut degraded)
                }
            }
        };
        let totals = match self.stores.meter.read_totals(uid, &policy, now).await {
            Ok(t) => t,
            Err(e) => {
                degraded.push(format!("usage meter unavailable ({e}); caps not applied"));
                WindowTotals::zeros(&policy)
            }
        };
        let check = engine::check_caps(totals, state.plan_id(&policy), &policy);
        let (used, budget_down) = match self.stores.budget.used(uid, now.utc_day()).await {
            Ok(u) => (u, false),
            Err(_) => (0, true),
        };
        let recoveries = self.recoveries(uid, &check, &state, &policy, now).await;
        let mut d = engine::decide(&state, uid.as_str(), &check, used, &policy, now, &|w, cap| {
            recoveries.get(&(w, cap)).copied().flatten()
        });
        let budget_unavailable = budget_down && d.stt_budget.is_some() && policy.budget.fail_closed_when_store_down;
        if budget_unavailable {
            d.stt_allowed = false;
            d.reasons.push("STT budget store unavailable; failing closed for this stage".into());
        }
        d.reasons.extend(degraded);
        self.decision_counters.increment(d.stt_allowed, d.effective_stage);
        Ok(DecisionWithHealth { decision: d, budget_unavailable })
    }

    async fn recoveries(
        &self,
        uid: &Uid,
        check: &CapCheck,
        state: &EnforcementState,
        policy: &Policy,
        now: Timestamp,
    ) -> BTreeMap<(usize, i64), Option<Timestamp>> {
        let caps = policy.caps(state.plan_id(policy));
        let mut wanted: Vec<(usize, i64)> =
            check.triggered.iter().filter_map(|&i| caps.get(i).copied().flatten().map(|c| (i, c))).collect();
        if let Some(limit) = policy.ceiling_limit_ms().filter(|_| check.ceiling_exceeded) {
            wanted.push((policy.ceiling_window(), limit - 1));
        }
        let mut out = BTreeMap::new();
        for (w, cap) in wanted {
            let minutes = policy.window_minutes()[w];
            let r = self.stores.meter.recovery_at(uid, minutes, cap, now).await.ok().flatten();
            out.insert((w, cap), r);
        }
        out
    }

    /// When a window's capped total falls back to `cap_ms` if the user stops now.
    pub async fn recovery_at(
        &self,
        uid: &Uid,
        window_minutes: i64,
        cap_ms: i64,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.stores.meter.recovery_at(uid, window_minutes, cap_ms, now).await
    }

    /// Forwarded audio counted against the STT budget on UTC day `day`.
    pub async fn budget_used(&self, uid: &Uid, day: i64) -> Result<i64, StoreError> {
        self.stores.budget.used(uid, day).await
    }
}

/// `fairuse_decisions_total` by outcome and effective stage. Each series is registered on its
/// first decision and its handle kept: registering a labelled counter hashes its key and looks it
/// up in the recorder, which on every decision was a few per cent of the route's CPU.
#[derive(Default)]
pub(super) struct DecisionCounters([[OnceLock<metrics::Counter>; Stage::ALL.len()]; 2]);

impl DecisionCounters {
    fn increment(&self, allowed: bool, stage: Stage) {
        let outcome = if allowed { "allowed" } else { "denied" };
        let at = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
        self.0[usize::from(!allowed)][at]
            .get_or_init(
                || metrics::counter!("fairuse_decisions_total", "outcome" => outcome, "stage" => stage.as_str()),
            )
            .increment(1);
    }
}
