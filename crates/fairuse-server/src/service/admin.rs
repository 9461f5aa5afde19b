//! Cases, appeals and admin actions: the rate limits of case lookups and appeals, an appeal, an
//! admin's resolution, reset, stage and exemption, and the admin pages' reads.

use std::collections::BTreeMap;

use fairuse_domain::StoreError;
use fairuse_domain::engine::{self, EnforcementState, Event, Outcome};
use fairuse_domain::ids::{CaseRef, Lane, Uid};
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;

use super::{Service, ServiceError, ServiceResult};

impl Service {
    /// The public case lookup, rate-limited per client across replicas through the hot store.
    pub async fn case_lookup_allowed(&self, client: &str, limit_per_minute: u32) -> ServiceResult<()> {
        let r = self.stores.rates.hit(&format!("case-lookup:{client}"), limit_per_minute, 60_000, self.now()).await?;
        if r.allowed {
            Ok(())
        } else {
            Err(ServiceError::RateLimited { retry_after_s: (r.retry_after_ms + 999) / 1000 })
        }
    }

    /// Appeals per user: `limit_per_day` in a fixed day-long window shared by every replica.
    pub async fn appeal_allowed(&self, uid: &Uid, limit_per_day: u32) -> ServiceResult<()> {
        let r = self.stores.rates.hit(&format!("appeal:{uid}"), limit_per_day, 86_400_000, self.now()).await?;
        if r.allowed {
            Ok(())
        } else {
            Err(ServiceError::RateLimited { retry_after_s: (r.retry_after_ms + 999) / 1000 })
        }
    }

    pub async fn case_event(&self, case_ref: &str) -> ServiceResult<Event> {
        let case = CaseRef::parse(case_ref)?;
        self.stores
            .durable
            .event_by_case_ref(case.as_str())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("case {case} not found")))
    }

    pub async fn appeal(&self, uid: &Uid, case_ref: &str, text: &str) -> ServiceResult<Event> {
        let event = self.case_event(case_ref).await?;
        if event.uid != uid.as_str() {
            // The same answer as a case that does not exist: owners only, and no probing.
            return Err(ServiceError::NotFound(format!("case {case_ref} not found")));
        }
        let (_, events) = self.update(uid, |s, ctx| Ok(vec![engine::appeal(s, &event.case_ref, text, ctx)?])).await?;
        events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("appeal was not recorded".into()))
    }

    pub async fn resolve(
        &self,
        uid: &Uid,
        event_id: &str,
        outcome: Outcome,
        notes: String,
        actor: &str,
    ) -> ServiceResult<(Event, Event)> {
        let mut target = self
            .stores
            .durable
            .event_by_id(uid, event_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("event {event_id} of user {uid} not found")))?;
        let (_, events) = self
            .update(uid, |s, ctx| Ok(engine::resolve_event(s, &mut target, outcome, notes.clone(), actor, ctx)))
            .await?;
        self.stores.durable.update_event(&target).await?;
        let audit =
            events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("resolution was not recorded".into()))?;
        Ok((target, audit))
    }

    pub async fn reset(
        &self,
        uid: &Uid,
        actor: &str,
        reason: Option<String>,
    ) -> ServiceResult<(EnforcementState, Event)> {
        let (state, events) = self.update(uid, |s, ctx| Ok(engine::admin_reset(s, actor, reason.clone(), ctx))).await?;
        let audit =
            events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("reset was not recorded".into()))?;
        // A reset also lifts the classifier cooldown's effect on the new counting period only
        // through the ladder; the lock itself is left to expire.
        Ok((state, audit))
    }

    pub async fn set_stage(
        &self,
        uid: &Uid,
        stage: Stage,
        until: Option<Timestamp>,
        actor: &str,
        reason: Option<String>,
    ) -> ServiceResult<(EnforcementState, Event)> {
        let (state, events) = self
            .update(uid, |s, ctx| Ok(engine::admin_set_stage(s, stage, until, actor, reason.clone(), ctx)?))
            .await?;
        let audit =
            events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("stage was not recorded".into()))?;
        Ok((state, audit))
    }

    pub async fn set_exempt(&self, uid: &Uid, exempt: bool, actor: &str) -> ServiceResult<(EnforcementState, Event)> {
        let (state, events) = self.update(uid, |s, ctx| Ok(engine::set_exempt(s, exempt, actor, ctx))).await?;
        let audit =
            events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("exemption was not recorded".into()))?;
        Ok((state, audit))
    }

    /// Minute-level usage of the last `days` per lane, for the admin charts: `(unix minute, ms)`.
    pub async fn usage_series(&self, uid: &Uid, days: i64) -> ServiceResult<BTreeMap<&'static str, Vec<(i64, i64)>>> {
        let now = self.now();
        let to = now.minute();
        let from = to - days * 1440 + 1;
        let mut out = BTreeMap::new();
        for lane in Lane::ALL {
            out.insert(lane.as_str(), self.stores.meter.minute_series(uid, lane, from, to).await?);
        }
        Ok(out)
    }

    /// A user's newest `limit` events, newest first (the admin user page).
    pub async fn events(&self, uid: &Uid, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.stores.durable.events(uid, limit).await
    }

    /// Users not at stage none (or at `stage`), most recently changed first: the admin list.
    pub async fn flagged(
        &self,
        stage: Option<Stage>,
        limit: usize,
    ) -> Result<Vec<(String, EnforcementState)>, StoreError> {
        self.stores.durable.flagged(stage, limit).await
    }
}
