//! The periodic workers' steps: timers that ran out, evidence past its retention, old prints.

use fairuse_domain::StoreError;
use fairuse_domain::ids::Uid;
use fairuse_domain::time::Timestamp;

use super::{Service, ServiceResult};

impl Service {
    /// Timer worker step: applies timers that ran out (and sends their webhooks).
    pub async fn apply_due_timers(&self, limit: usize) -> ServiceResult<usize> {
        let due = self.stores.durable.due_timers(self.now(), limit).await?;
        let mut applied = 0;
        for raw in &due {
            let Ok(uid) = Uid::parse(raw) else { continue };
            // One user's failure must not hold back everyone else's timers and webhooks.
            match self.current_state(&uid).await {
                Ok(_) => applied += 1,
                Err(e) => {
                    tracing::warn!(%uid, error = %e, "applying an expired timer failed; will retry");
                    metrics::counter!("fairuse_store_errors_total", "op" => "timer_sweep").increment(1);
                }
            }
        }
        Ok(applied)
    }

    /// Redacts evidence text of events recorded before `cutoff`; answers how many were redacted.
    pub async fn redact_evidence_before(&self, cutoff: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        self.stores.durable.redact_evidence_before(cutoff, now).await
    }

    /// Deletes fingerprint prints heard before `before`; answers how many were deleted.
    pub async fn prune_prints(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.stores.prints.prune_prints(before).await
    }
}
