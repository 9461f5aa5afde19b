//! The wall clock and random identifiers: the only place the server reads time or randomness.

use fairuse_domain::ids::{CaseRef, IdSource};
use fairuse_domain::time::{Clock, Timestamp};

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Timestamp::from_millis(ms)
    }
}

/// Event ids are UUIDv7 (time-ordered); case references are 48 random bits. The durable store
/// refuses a duplicate case reference, and the caller retries with fresh ids.
#[derive(Debug, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn event_id(&mut self) -> String {
        uuid::Uuid::now_v7().to_string()
    }

    fn case_ref(&mut self) -> CaseRef {
        CaseRef::from_bits(rand::random::<u64>())
    }
}
