//! Evaluations and classifier jobs: the gate and the cooldown lock before a job is queued, due
//! evaluations, a classifier run and its verdict, and a failed job's retries.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use fairuse_domain::StoreError;
use fairuse_domain::classifier::{ClassifierInput, Verdict};
use fairuse_domain::engine::{self, ClassifyGate};
use fairuse_domain::ids::Uid;
use fairuse_domain::pipeline::{self, Judgement};
use fairuse_domain::policy::Policy;
use fairuse_domain::store::Job;
use fairuse_domain::time::Timestamp;
use futures_util::FutureExt;

use super::{Service, ServiceResult, token};

impl Service {
    /// Step 3: the gate as of now, then the classifier lock (the cooldown), then a job.
    pub(super) async fn evaluate(
        &self,
        uid: &Uid,
        session: Option<String>,
        policy: &Policy,
        now: Timestamp,
    ) -> ServiceResult<()> {
        let state = self.current_state_tripping(uid).await?;
        let totals = self.stores.meter.read_totals(uid, policy, now).await?;
        let check = engine::check_caps(totals, state.plan_id(policy), policy);
        let exempt = state.exempt || policy.is_exempt_in_config(uid.as_str());
        if engine::classify_gate(&state, &check, exempt, true, policy) != ClassifyGate::Run {
            return Ok(());
        }
        let lock_token = token();
        let lock_key = classifier_lock_key(uid);
        if !self.stores.locks.try_acquire(&lock_key, &lock_token, policy.classifier.cooldown.ms(), now).await? {
            // Classified within the cooldown, or running elsewhere. A user on the ladder who is
            // still over a cap is judged again when the cooldown ends, whether or not they report.
            if let Some(at) = pipeline::rejudge_at(&state, policy, now) {
                self.queue_due_evaluation(&pipeline::rejudge_job(uid.as_str(), session, now), at).await?;
            }
            return Ok(());
        }
        let job =
            Job { id: token(), uid: uid.to_string(), lock_token, session_id: session, attempts: 0, created_at: now };
        if let Err(e) = self.stores.jobs.enqueue(&job, now).await {
            self.stores.locks.release(&lock_key, &job.lock_token).await.ok();
            return Err(e.into());
        }
        self.jobs_ready.notify_one();
        Ok(())
    }

    /// Runs a due evaluation: takes the user's evaluation slot like a report would. If the slot is
    /// taken, the user was judged after the report that queued this, and nothing is left to do.
    pub async fn run_due_evaluation(&self, job: &Job) -> ServiceResult<()> {
        let uid = Uid::parse(&job.uid)?;
        let policy = self.policy();
        let now = self.now();
        let interval = policy.metering.check_interval.ms();
        if self.stores.locks.try_acquire(&eval_key(&uid), &token(), interval, now).await? {
            self.recent_evaluations.note(&uid, interval, now);
            self.evaluate(&uid, job.session_id.clone(), &policy, now).await?;
        } else if let Some(at) = pipeline::retry_due_evaluation(job, &policy, now) {
            self.stores.jobs.retry(&job.id, at).await?;
            return Ok(());
        }
        metrics::counter!("fairuse_due_evaluations_run_total").increment(1);
        self.stores.jobs.complete(&job.id).await?;
        Ok(())
    }

    /// Runs one job from the queue: a due evaluation or a classifier run.
    pub async fn run_job(&self, job: &Job) -> ServiceResult<()> {
        if job.is_due_evaluation() { self.run_due_evaluation(job).await } else { self.run_classifier_job(job).await }
    }

    /// Runs one classifier job (step 4 of [`pipeline`]). A classifier failure gives no verdict,
    /// is recorded, and releases the lock so the next check may try again (fail open).
    pub async fn run_classifier_job(&self, job: &Job) -> ServiceResult<()> {
        let uid = Uid::parse(&job.uid)?;
        let policy = self.policy();
        let now = self.now();
        let state = self.current_state(&uid).await?;
        let plan = state.plan_id(&policy);
        let totals = self.stores.meter.read_totals(&uid, &policy, now).await?;
        let check = engine::check_caps(totals, plan, &policy);
        let exempt = state.exempt || policy.is_exempt_in_config(uid.as_str());
        if !pipeline::job_still_wanted(&state, &check, exempt, &job.id, &policy) {
            self.stores.jobs.complete(&job.id).await?;
            return Ok(());
        }
        let lookback = policy.classifier.lookback.ms();
        let from = now.minus_ms(lookback);
        let stored = self.stores.conversations.since(&uid, from, pipeline::CLASSIFIER_CONVERSATIONS).await?;
        // Sessions updated in the lookback, so a stream that started before it still counts.
        let sessions =
            self.stores.conversations.stream_sessions_since(&uid, from, pipeline::CLASSIFIER_STREAM_SESSIONS).await?;
        let shape = self.stores.meter.usage_shape(&uid, lookback, now).await?;
        let input = ClassifierInput {
            uid: uid.to_string(),
            plan: policy.plan_name(plan).to_owned(),
            conversations: pipeline::select_conversations(stored, &policy, now),
            shape,
            window_totals_ms: check.totals.as_slice().to_vec(),
            sessions,
        };
        let verdict: Result<Verdict, String> = match pipeline::judgement(&state, &input, &policy) {
            Judgement::Given(v) => Ok(v),
            Judgement::Ask => {
                let started = std::time::Instant::now();
                // Awaited here, on the worker's runtime. A classifier that panics is a failed run
                // like any other (no verdict, lock released), not a dead job worker.
                let r = AssertUnwindSafe(self.classifier.classify(&input))
                    .catch_unwind()
                    .await
                    .map_err(|panic| format!("classifier panicked: {}", panic_message(panic.as_ref())))
                    .and_then(|r| r.map_err(|e| e.to_string()));
                metrics::histogram!("fairuse_classifier_seconds").record(started.elapsed().as_secs_f64());
                r.map(|v| pipeline::admit(v.clamped(), &input, &policy))
            }
        };
        let verdict = match verdict {
            Ok(v) => v,
            Err(reason) => {
                metrics::counter!("fairuse_classifier_runs_total", "outcome" => "failed").increment(1);
                tracing::warn!(%uid, %reason, "classifier failed; no verdict, lock released");
                self.stores.locks.release(&classifier_lock_key(&uid), &job.lock_token).await?;
                self.stores.jobs.complete(&job.id).await?;
                return Ok(());
            }
        };
        let outcome = if verdict.demoted.is_some() { "demoted" } else { "ok" };
        metrics::counter!("fairuse_classifier_runs_total", "outcome" => outcome).increment(1);
        let trigger = check.trigger("soft_cap", plan, &policy);
        self.update(&uid, |s, ctx| Ok(pipeline::apply_job_verdict(s, job, verdict.clone(), trigger.clone(), ctx)))
            .await?;
        let hold = pipeline::lock_hold(&verdict, pipeline::repeats_earlier_audio(&input), &policy);
        if hold.ms() < policy.classifier.cooldown.ms() {
            self.stores.locks.renew(&classifier_lock_key(&uid), &job.lock_token, hold.ms(), now).await?;
        }
        self.stores.jobs.complete(&job.id).await?;
        Ok(())
    }

    /// After a failed run of `job`: retry it later (30 s more per attempt, at most 10 min), or
    /// after [`MAX_CLASSIFIER_JOB_ATTEMPTS`] abandon it and release its lock. Store errors here
    /// are logged; the job's lease runs out and it is claimed again.
    pub async fn classifier_job_failed(&self, job: &Job, error: &str) {
        let attempts = job.attempts + 1;
        let outcome = if attempts >= MAX_CLASSIFIER_JOB_ATTEMPTS {
            tracing::error!(uid = %job.uid, attempts, error, "classifier job abandoned after repeated failures");
            metrics::counter!("fairuse_classifier_runs_total", "outcome" => "abandoned").increment(1);
            let released = match Uid::parse(&job.uid) {
                Ok(uid) => self.stores.locks.release(&classifier_lock_key(&uid), &job.lock_token).await.map(|_| ()),
                Err(_) => Ok(()),
            };
            released.and(self.stores.jobs.complete(&job.id).await)
        } else {
            tracing::warn!(uid = %job.uid, attempts, error, "classifier job failed; will retry");
            let retry_at = self.now().plus_ms(30_000 * i64::from(attempts).min(20));
            self.stores.jobs.retry(&job.id, retry_at).await
        };
        if let Err(e) = outcome {
            tracing::warn!(uid = %job.uid, error = %e, "could not record the classifier job's failure");
        }
    }

    /// Claims up to `limit` due classifier jobs for `lease_ms` (the classifier worker).
    pub async fn claim_jobs(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<Job>, StoreError> {
        self.stores.jobs.claim(now, limit, lease_ms).await
    }

    /// Resolves when a classifier job was queued in this process since the last wake-up (one
    /// stored permit, so a job queued while the worker is busy is not missed).
    pub async fn job_queued(&self) {
        self.jobs_ready.notified().await
    }
}

/// A classifier job whose run failed (a store error: classifier failures are verdict-less runs,
/// not failures) is run this many times in all, 30 s more apart each time (about 25 minutes), then
/// abandoned: its lock is released so the next evaluation can queue a fresh job.
pub const MAX_CLASSIFIER_JOB_ATTEMPTS: u32 = 10;

/// The user's evaluation slot: held for one check interval by whoever judges the user.
pub(super) fn eval_key(uid: &Uid) -> String {
    format!("eval:{uid}")
}

pub fn classifier_lock_key(uid: &Uid) -> String {
    format!("classifier:{uid}")
}

/// The text a panic was raised with (`panic!` with a literal or a format string), for the log.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}
