//! The one place where SQLite failures become domain [`StoreError`]s.
//!
//! The service chooses fail-open or fail-closed from the variant, so the distinction matters:
//! `Unavailable` promises the call had no effect, `Unknown` says it may have. SQLite is atomic
//! per transaction, and every write runs inside the writer thread's transaction (see [`crate::db`]),
//! so a failure before `COMMIT` (or a failed read) certainly wrote nothing; only a failure while
//! committing leaves the outcome open.

use fairuse_domain::error::StoreError;
use rusqlite::ErrorCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Whether a failed call could have changed the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// A read, or a statement inside a transaction that will be rolled back: nothing written.
    NotApplied,
    /// `COMMIT`: it may have reached the database.
    MaybeApplied,
}

/// Converts a driver error. `action` says what was attempted, for the message.
pub(crate) fn store_error(action: &str, effect: Effect, err: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, _) = &err {
        match failure.code {
            // Constraint violations are refusals of this input: certain, and not worth retrying.
            ErrorCode::ConstraintViolation => return StoreError::Invalid(format!("{action}: {err}")),
            // SQLITE_BUSY and SQLITE_LOCKED: the database refused before doing anything.
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Unavailable(format!("{action}: database busy: {err}"));
            }
            // The file could not be opened at all: nothing can have been written.
            ErrorCode::CannotOpen | ErrorCode::NotADatabase => {
                return StoreError::Unavailable(format!("{action}: {err}"));
            }
            _ => {}
        }
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

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("test".into()))
    }

    #[test]
    fn busy_databases_are_certain_failures_even_when_committing() {
        let e = store_error("commit", Effect::MaybeApplied, failure(rusqlite::ffi::SQLITE_BUSY));
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }

    #[test]
    fn constraint_violations_are_invalid_input() {
        let e = store_error("insert", Effect::NotApplied, failure(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY));
        assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
    }

    #[test]
    fn io_errors_while_committing_leave_the_outcome_unknown() {
        let e = store_error("commit", Effect::MaybeApplied, failure(rusqlite::ffi::SQLITE_IOERR));
        assert!(e.is_unknown(), "{e:?}");
        let e = store_error("load", Effect::NotApplied, failure(rusqlite::ffi::SQLITE_IOERR));
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }
}
