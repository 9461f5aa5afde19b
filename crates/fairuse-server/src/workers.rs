//! Background workers: the job queue (classifier runs and due evaluations), timers, evidence redaction, policy reload and the
//! webhook outbox. Each stops when the shutdown signal flips, after finishing what it holds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fairuse_domain::policy::Policy;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::service::Service;

/// How long a claimed classifier job stays leased before another worker may take it again:
/// well over the longest classifier call (two attempts of the LLM timeout). Jobs are claimed one
/// at a time so a lease never runs out while the job waits behind others; even then, the state
/// records the last job applied, so a job run twice is applied once.
const JOB_LEASE_MS: i64 = 300_000;

pub fn spawn_classifier_worker(service: Arc<Service>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = service.now();
            let jobs = match service.claim_jobs(now, 1, JOB_LEASE_MS).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim classifier jobs");
                    metrics::counter!("fairuse_store_errors_total", "op" => "claim_jobs").increment(1);
                    Vec::new()
                }
            };
            let idle = jobs.is_empty();
            for job in jobs {
                // One span per job: what the classifier, the stores and the ladder log while it
                // runs names the job and the user.
                let kind = if job.is_due_evaluation() { "due_evaluation" } else { "classifier" };
                let span = tracing::info_span!("job", id = %job.id, uid = %job.uid, kind, attempt = job.attempts);
                async {
                    if let Err(e) = service.run_job(&job).await {
                        service.classifier_job_failed(&job, &e.to_string()).await;
                    }
                }
                .instrument(span)
                .await;
            }
            if idle {
                tokio::select! {
                    _ = service.job_queued() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    })
}

/// Applies expired timers even for users nobody reads, so their webhooks go out on time.
pub fn spawn_timer_worker(
    service: Arc<Service>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match service.apply_due_timers(500).await {
                Ok(n) if n > 0 => tracing::info!(users = n, "applied expired stage timers"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "timer sweep failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => break,
            }
        }
    })
}

/// Redacts evidence text older than the policy's retention, and deletes fingerprint prints older
/// than `[fingerprint] retention`.
pub fn spawn_redaction_worker(
    service: Arc<Service>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = service.now();
            let cutoff = now.minus_ms(service.policy().classifier.evidence_retention.ms());
            match service.redact_evidence_before(cutoff, now).await {
                Ok(n) if n > 0 => tracing::info!(events = n, "redacted evidence past its retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "evidence redaction failed"),
            }
            let before = now.minus_ms(service.policy().fingerprint.retention.ms());
            match service.prune_prints(before).await {
                Ok(n) if n > 0 => tracing::info!(prints = n, "deleted fingerprint prints past their retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "fingerprint print retention failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => break,
            }
        }
    })
}

/// Adjusts a freshly loaded policy (the composition root applies Omi's variables here).
pub type PolicyOverrides = Arc<dyn Fn(&mut Policy) -> Result<(), String> + Send + Sync>;

/// Hot-reloads the policy file: a bad file keeps the last good policy and logs why.
pub fn spawn_policy_reload(
    service: Arc<Service>,
    path: PathBuf,
    apply_overrides: PolicyOverrides,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut last = modified(&path);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => break,
            }
            let now = modified(&path);
            if now == last {
                continue;
            }
            last = now;
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| Policy::from_toml_str(&text).map_err(|e| e.to_string()))
                .and_then(|mut p| {
                    apply_overrides(&mut p)?;
                    Ok(p)
                });
            match loaded {
                Ok(p) => {
                    service.set_policy(p);
                    tracing::info!(path = %path.display(), "policy reloaded");
                    metrics::counter!("fairuse_policy_reloads_total", "outcome" => "ok").increment(1);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "policy reload refused; keeping the last good policy");
                    metrics::counter!("fairuse_policy_reloads_total", "outcome" => "refused").increment(1);
                }
            }
        }
    })
}
