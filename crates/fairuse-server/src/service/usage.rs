//! The report path: usage reports recorded in the meter, forwarded audio added to the STT budget,
//! and a user over a cap judged now or queued for a due evaluation.

use std::collections::BTreeMap;

use fairuse_domain::StoreError;
use fairuse_domain::engine;
use fairuse_domain::ids::Uid;
use fairuse_domain::pipeline::{self, AfterReport};
use fairuse_domain::policy::Policy;
use fairuse_domain::store::Job;
use fairuse_domain::time::Timestamp;
use fairuse_domain::windows::{RecordOutcome, SpeechAmount, UsageReport, WindowTotals};
use serde::Serialize;

use super::classifier::eval_key;
use super::{Service, ServiceResult, token};

/// What `POST /v1/usage` answers.
#[derive(Debug, Serialize)]
pub struct UsageAccepted {
    pub accepted: usize,
    pub duplicates: usize,
    pub metered: bool,
    pub results: Vec<RecordOutcome>,
}

/// One user's usage report, as [`Service::record_usage`] takes it. The session a classifier job
/// cites is the report's own: a streaming report (`SpeechAmount::Cumulative`) names it, a delta
/// names none.
#[derive(Debug, Clone)]
pub struct UserReport {
    pub uid: Uid,
    pub report: UsageReport,
}

/// One user's reports from a request, in order, and the position of each in the request.
#[derive(Default)]
struct UserBatch {
    positions: Vec<usize>,
    reports: Vec<UsageReport>,
}

/// The streaming session a report counts towards, if it is a session's running total.
fn stream_session(report: &UsageReport) -> Option<String> {
    match &report.amount {
        SpeechAmount::Cumulative { session_id, .. } => Some(session_id.clone()),
        SpeechAmount::Delta(_) => None,
    }
}

impl Service {
    /// Records validated reports; evaluates each user at most once per check interval.
    pub async fn record_usage(&self, reports: Vec<UserReport>) -> ServiceResult<UsageAccepted> {
        let policy = self.policy();
        if !policy.switches.enabled {
            return Ok(UsageAccepted { accepted: reports.len(), duplicates: 0, metered: false, results: vec![] });
        }
        let now = self.now();
        let total = reports.len();
        for (i, r) in reports.iter().enumerate() {
            r.report.validate(&policy, now).map_err(|e| if total > 1 { e.at_index("reports", i) } else { e })?;
        }
        // Group by user, keeping each user's reports in order.
        let mut by_user: BTreeMap<Uid, UserBatch> = BTreeMap::new();
        for (i, UserReport { uid, report }) in reports.into_iter().enumerate() {
            let batch = by_user.entry(uid).or_default();
            batch.positions.push(i);
            batch.reports.push(report);
        }
        let mut results = vec![RecordOutcome::default(); total];
        for (uid, batch) in by_user {
            let (outcomes, totals) = self.stores.meter.record_and_read(&uid, &batch.reports, &policy, now).await?;
            metrics::counter!("fairuse_usage_reports_total").increment(batch.reports.len() as u64);
            let stt: i64 = outcomes.iter().map(|o| o.stt_added_ms).sum();
            for (&i, o) in batch.positions.iter().zip(&outcomes) {
                results[i] = *o;
            }
            // The user's latest streaming session, for a classifier job to cite.
            let session = batch.reports.iter().rev().find_map(stream_session);
            // Metering is acknowledged; what follows must not fail the request (fail open).
            if let Err(e) = self.after_usage(&uid, stt, totals, session, &policy, now).await {
                tracing::warn!(%uid, error = %e, "evaluation after usage failed; metering was recorded");
                metrics::counter!("fairuse_store_errors_total", "op" => "after_usage").increment(1);
            }
        }
        let duplicates = results.iter().filter(|o| o.duplicate).count();
        Ok(UsageAccepted { accepted: total, duplicates, metered: true, results })
    }

    /// Adds forwarded audio to the day's STT budget. The meter has already recorded the report,
    /// so a repeat of it will be a duplicate that adds nothing: this call is the budget's only
    /// chance. A failure that certainly did not apply is retried twice (50 ms, then 200 ms); an
    /// unknown outcome is not, since it may have counted. What is finally not added is counted in
    /// `fairuse_budget_unrecorded_ms_total` so an operator can see it.
    async fn add_forwarded(&self, uid: &Uid, day: i64, ms: i64) -> Result<i64, StoreError> {
        let mut delay = std::time::Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            match self.stores.budget.add_forwarded(uid, day, ms).await {
                Err(StoreError::Unavailable(_)) if attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                Err(e) => {
                    metrics::counter!("fairuse_budget_unrecorded_ms_total").increment(ms.unsigned_abs());
                    tracing::warn!(%uid, ms, error = %e, "forwarded audio not added to the STT budget");
                    return Err(e);
                }
                Ok(used) => return Ok(used),
            }
        }
    }

    /// What follows a recorded report: the STT budget, then judging. A budget failure does not
    /// keep the report from being judged.
    async fn after_usage(
        &self,
        uid: &Uid,
        stt_ms: i64,
        totals: WindowTotals,
        session: Option<String>,
        policy: &Policy,
        now: Timestamp,
    ) -> ServiceResult<()> {
        let budget = if stt_ms > 0 { self.count_forwarded(uid, stt_ms, &totals, policy, now).await } else { Ok(()) };
        let judged = self.judge_if_over(uid, &totals, session, policy, now).await;
        budget.and(judged)
    }

    /// Adds forwarded audio to the day's budget and records `budget_exhausted` the first time the
    /// budget of the user's stage runs out that day.
    async fn count_forwarded(
        &self,
        uid: &Uid,
        stt_ms: i64,
        totals: &WindowTotals,
        policy: &Policy,
        now: Timestamp,
    ) -> ServiceResult<()> {
        let used = self.add_forwarded(uid, now.utc_day(), stt_ms).await?;
        if self.durable_breaker.is_open(now) {
            return Ok(()); // counted; the exhaustion event waits until the durable store answers
        }
        let state = self.current_state_tripping(uid).await?;
        let ceiling = totals.at_ceiling(policy);
        let fwd = engine::forwarding(&state, uid.as_str(), ceiling, policy);
        if let Some(limit) = fwd.budget_limit_ms.or(fwd.recorded_budget_limit_ms)
            && used >= limit
            && self.stores.budget.note_exhausted_once(uid, now.utc_day()).await?
        {
            self.update(uid, |s, ctx| {
                let mut day = engine::BudgetDay { day: ctx.now.utc_day(), used_ms: used, exhausted_noted: false };
                Ok(engine::record_stt(s, &mut day, 0, &fwd, ctx).event.into_iter().collect())
            })
            .await?;
        }
        Ok(())
    }

    /// Steps 1 and 2 of [`pipeline`]: a report under every cap of every plan needs nothing more;
    /// over the caps of the user's plan the user is judged now if their evaluation slot is free,
    /// and otherwise a due evaluation is queued, so the crossing is judged within the check
    /// interval even if no later report comes. An evaluation that cannot run now (the durable
    /// store is failing) is queued as due too.
    async fn judge_if_over(
        &self,
        uid: &Uid,
        totals: &WindowTotals,
        session: Option<String>,
        policy: &Policy,
        now: Timestamp,
    ) -> ServiceResult<()> {
        if !pipeline::may_trigger(totals, policy) {
            return Ok(());
        }
        let due = |session: Option<String>| pipeline::due_evaluation_job(uid.as_str(), session, now);
        let due_at = now.plus_ms(policy.metering.check_interval.ms());
        if self.durable_breaker.is_open(now) {
            // Metering is recorded; the judgement waits until the durable store answers.
            return self.queue_due_evaluation(&due(session), due_at).await;
        }
        let state = match self.stores.durable.load(uid).await {
            Ok(v) => v.map(|v| v.value).unwrap_or_default(),
            Err(e) => {
                self.durable_breaker.trip(self.now());
                self.queue_due_evaluation(&due(session), due_at).await.ok();
                return Err(e.into());
            }
        };
        let check = engine::check_caps(totals.clone(), state.plan_id(policy), policy);
        let AfterReport::Judge { due_at } = pipeline::after_report(&check, policy, now) else {
            return Ok(());
        };
        let interval = policy.metering.check_interval.ms();
        if self.recent_evaluations.recently(uid, interval, now) {
            // Judged here less than a check interval ago, before this report: judge again when due.
            return self.queue_due_evaluation(&due(session), due_at).await;
        }
        let acquired = self.stores.locks.try_acquire(&eval_key(uid), &token(), interval, now).await?;
        self.recent_evaluations.note(uid, interval, now);
        if !acquired {
            return self.queue_due_evaluation(&due(session), due_at).await;
        }
        self.evaluate(uid, session, policy, now).await
    }

    /// Records that `uid` must be judged at `due_at` (one pending per user: the job id is theirs).
    pub(super) async fn queue_due_evaluation(&self, job: &Job, due_at: Timestamp) -> ServiceResult<()> {
        self.stores.jobs.enqueue(job, due_at).await?;
        metrics::counter!("fairuse_due_evaluations_queued_total").increment(1);
        Ok(())
    }
}
