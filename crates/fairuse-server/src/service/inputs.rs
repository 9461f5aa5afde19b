//! What hosts tell the service besides usage: a user's plan, conversations for the classifier,
//! the gateway's stream summaries and its batches of fingerprint codes.

use fairuse_domain::StoreError;
use fairuse_domain::classifier::Conversation;
use fairuse_domain::engine::{self, EnforcementState};
use fairuse_domain::ids::Uid;
use fairuse_domain::pipeline;
use fairuse_domain::prints::{POSTING_LIMIT, Print, print_key};
use fairuse_domain::sessions::{HashSample, StreamSession};
use fairuse_domain::time::Timestamp;

use super::{Service, ServiceResult};

impl Service {
    pub async fn set_plan(&self, uid: &Uid, plan: &str, credits_exhausted: bool) -> ServiceResult<EnforcementState> {
        let policy = self.policy();
        let plan = policy.plan_or_error(plan)?;
        Ok(self.update(uid, |s, ctx| Ok(engine::plan_changed(s, plan, credits_exhausted, ctx))).await?.0)
    }

    pub async fn upsert_conversation(&self, uid: &Uid, c: &Conversation) -> ServiceResult<()> {
        pipeline::validate_conversation(c, &self.policy(), self.now())?;
        self.stores.conversations.upsert(uid, &c.for_classifier()).await?;
        Ok(())
    }

    /// One batch of a gateway stream's sampled fingerprint codes: looks their keys up in the print
    /// index (prints heard within the policy's `[fingerprint] retention`, at most
    /// [`POSTING_LIMIT`] per key), then adds the batch, and answers what was found for the
    /// stream's duplicate tracker. Nothing is looked up or stored while fair use is switched off.
    pub async fn match_prints(
        &self,
        uid: &Uid,
        session_id: &str,
        started_at: Timestamp,
        batch: &[HashSample],
    ) -> Result<Vec<Print>, StoreError> {
        let policy = self.policy();
        if !policy.switches.enabled || batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let keys: Vec<u32> = batch.iter().map(|h| print_key(h.code)).collect();
        let since = now.minus_ms(policy.fingerprint.retention.ms());
        let found = self.stores.prints.lookup_prints(&keys, since, POSTING_LIMIT).await?;
        let prints: Vec<Print> = batch
            .iter()
            .map(|h| Print {
                uid: uid.as_str().to_owned(),
                session_id: session_id.to_owned(),
                heard_at: started_at.plus_ms(h.offset_ms),
                code: h.code,
            })
            .collect();
        self.stores.prints.add_prints(&prints).await?;
        metrics::counter!("fairuse_print_codes_indexed_total").increment(prints.len() as u64);
        Ok(found)
    }

    /// Records the streaming gateway's summary of one stream for the classifier: validated (a
    /// 400 naming the field), then upserted by `(uid, session_id)`. The store keeps the newest
    /// snapshot: an update that would reopen a closed session or lower a total is ignored, so the
    /// gateway may send the same or an older snapshot again without harm (see
    /// `ConversationStore::upsert_stream_session`). Nothing is stored while fair use is switched
    /// off (`enabled = false`), like usage.
    pub async fn record_stream_session(&self, uid: &Uid, session: StreamSession) -> ServiceResult<()> {
        if !self.policy().switches.enabled {
            return Ok(());
        }
        session.validate()?;
        self.stores.conversations.upsert_stream_session(uid, &session).await?;
        metrics::counter!("fairuse_stream_sessions_recorded_total", "closed" => if session.closed { "true" } else { "false" })
            .increment(1);
        Ok(())
    }
}
