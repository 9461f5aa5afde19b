//! The one place where SQLite and sqlx failures become domain [`StoreError`]s.
//!
//! The service chooses fail-open or fail-closed from the variant, so the distinction matters:
//! `Unavailable` promises the call had no effect, `Unknown` says it may have. SQLite is atomic
//! per transaction, so a failure before `COMMIT` (or a failed read) certainly wrote nothing; only
//! a failure while committing, or a single autocommit write failing for a reason other than a
//! refusal, leaves the outcome open.

use fairuse_domain::error::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::error::ErrorKind;

/// Whether a failed call could have changed the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// A read, or a statement inside a transaction that will be rolled back: nothing written.
    NotApplied,
    /// `COMMIT`, or a write in autocommit mode: it may have reached the database.
    MaybeApplied,
}

/// SQLITE_BUSY and SQLITE_LOCKED: the database refused before doing anything.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
/// SQLITE_CONSTRAINT without a more specific extended code.
const SQLITE_CONSTRAINT: i32 = 19;

/// Converts a driver error. `action` says what was attempted, for the message.
pub(crate) fn store_error(action: &str, effect: Effect, err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) => {
            // Constraint violations are refusals of this input: certain, and not worth retrying.
            if !matches!(db.kind(), ErrorKind::Other) {
                return StoreError::Invalid(format!("{action}: {}", db.message()));
            }
            // Extended result codes keep the primary code in the low byte.
            let primary = db.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
            match primary {
                Some(SQLITE_CONSTRAINT) => return StoreError::Invalid(format!("{action}: {}", db.message())),
                Some(SQLITE_BUSY | SQLITE_LOCKED) => {
                    return StoreError::Unavailable(format!("{action}: database busy: {}", db.message()));
                }
                _ => {}
            }
        }
        // Never reached the database.
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Configuration(_) => {
            return StoreError::Unavailable(format!("{action}: {err}"));
        }
        _ => {}
    }
    match effect {
        Effect::NotApplied => StoreError::Unavailable(format!("{action}: {err}")),
        Effect::MaybeApplied => StoreError::Unknown(format!("{action}: {err}")),
    }
}

/// Serializes a domain value for a JSON column. The domain types have string map keys only, so
/// this fails only on a bug; it is reported as invalid input rather than a panic.
pub(crate) fn to_json<T: Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("cannot encode {what}: {e}")))
}

/// Reads a JSON column back. A row that no longer parses is a failed read: nothing was changed.
pub(crate) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Unavailable(format!("stored {what} is not readable: {e}")))
}

/// Limits and counts cross into SQLite as `INTEGER` (i64).
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Counters read back from SQLite; a negative or huge value (only by manual edits) saturates.
pub(crate) fn to_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeouts_are_certain_failures_even_for_writes() {
        let e = store_error("commit", Effect::MaybeApplied, sqlx::Error::PoolTimedOut);
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }

    #[test]
    fn io_errors_while_committing_leave_the_outcome_unknown() {
        let io = std::io::Error::other("disk went away");
        let e = store_error("commit", Effect::MaybeApplied, sqlx::Error::Io(io));
        assert!(e.is_unknown(), "{e:?}");
        let io = std::io::Error::other("disk went away");
        let e = store_error("load", Effect::NotApplied, sqlx::Error::Io(io));
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }
}
