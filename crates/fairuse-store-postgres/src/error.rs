//! The one place where PostgreSQL and sqlx failures become domain [`StoreError`]s.
//!
//! The service chooses fail-open or fail-closed from the variant, so the distinction matters:
//! `Unavailable` promises the call had no effect, `Unknown` says it may have. The rules:
//!
//! | failure | classified as |
//! | --- | --- |
//! | unique violation of `user_state_pkey` (two first commits of one user) | `Conflict` |
//! | any other unique violation (event id, case reference, outbox id) | `Invalid` |
//! | other integrity (class 23) or data (class 22, e.g. `\u0000` in JSONB) errors | `Invalid` |
//! | pool timed out or closed, bad configuration, TLS, encoding, connection refused | `Unavailable`: nothing was sent |
//! | any failure of a read, or of a statement inside a transaction not yet committed | `Unavailable`: PostgreSQL rolls back a transaction that never commits |
//! | an error answer from the server to an autocommit write (timeout, cancel, shutdown) | `Unavailable`: the statement's implicit transaction was rolled back |
//! | an I/O, protocol or decoding error after an autocommit write was sent | `Unknown` |
//! | any failure while sending `COMMIT` | `Unknown` |
//!
//! `COMMIT` is treated as unknown even when the server answers with an error: a connection
//! terminated while committing can have flushed the commit record, and a caller that assumes
//! "not written" there could, for example, send a second escalation. Unknown is the safe side.

use fairuse_domain::error::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::error::ErrorKind;
use sqlx::postgres::PgDatabaseError;

/// Where in a call a failure happened, which decides whether the database may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A read, or a statement inside a transaction that has not been committed: nothing written.
    NoEffect,
    /// A single autocommit statement that writes: it may have been applied if the answer was lost.
    Write,
    /// `COMMIT` of a transaction: it may have been applied whatever went wrong.
    Commit,
}

/// The primary key of `user_state`: a violation means another writer created the user first.
const USER_STATE_PKEY: &str = "user_state_pkey";

/// Converts a driver error. `action` says what was attempted, for the message.
pub(crate) fn store_error(action: &str, phase: Phase, err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) => {
            let detail = db.try_downcast_ref::<PgDatabaseError>().and_then(PgDatabaseError::detail);
            let message = match detail {
                Some(d) => format!("{action}: {} ({d})", db.message()),
                None => format!("{action}: {}", db.message()),
            };
            if db.kind() == ErrorKind::UniqueViolation {
                return if db.constraint() == Some(USER_STATE_PKEY) {
                    StoreError::Conflict
                } else {
                    StoreError::Invalid(message)
                };
            }
            let code = db.code().unwrap_or_default();
            // Classes 22 (data exception) and 23 (integrity): this input is refused, certainly
            // and for good; retrying the same call cannot help.
            if code.starts_with("22") || code.starts_with("23") {
                return StoreError::Invalid(message);
            }
            match phase {
                // The server answered, so it has decided: the statement (and, for a write in
                // autocommit mode, its implicit transaction) failed and was rolled back.
                Phase::NoEffect | Phase::Write => StoreError::Unavailable(message),
                Phase::Commit => StoreError::Unknown(message),
            }
        }
        // Nothing reached the server: no connection was available, or the call could not even be
        // encoded.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Configuration(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::Encode(_) => StoreError::Unavailable(format!("{action}: {err}")),
        sqlx::Error::Io(io) if refused_before_sending(io.kind()) => StoreError::Unavailable(format!("{action}: {err}")),
        _ => match phase {
            Phase::NoEffect => StoreError::Unavailable(format!("{action}: {err}")),
            Phase::Write | Phase::Commit => StoreError::Unknown(format!("{action}: {err}")),
        },
    }
}

/// I/O errors that can only happen while opening a connection, before any statement was sent.
fn refused_before_sending(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(kind, K::ConnectionRefused | K::AddrNotAvailable | K::HostUnreachable | K::NetworkUnreachable)
}

/// A call that ran past its client-side deadline (the server is unreachable without the TCP
/// connection noticing, for example). `sent_write` says whether a write or `COMMIT` had been sent.
pub(crate) fn deadline_error(action: &str, limit: std::time::Duration, sent_write: bool) -> StoreError {
    let message = format!("{action}: no answer from PostgreSQL within {} ms", limit.as_millis());
    if sent_write { StoreError::Unknown(message) } else { StoreError::Unavailable(message) }
}

/// Serializes a domain value for a JSON column. The domain types have string map keys only, so
/// this fails only on a bug (or a non-finite float); it is reported as invalid input, not a panic.
pub(crate) fn to_json<T: Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("cannot encode {what}: {e}")))
}

/// Reads a JSON column back. A row that no longer parses is a failed read: nothing was changed.
pub(crate) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Unavailable(format!("stored {what} is not readable: {e}")))
}

/// Limits cross into SQL as `BIGINT`.
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Counters read back as `BIGINT`; a negative or huge value (only by manual edits) saturates.
pub(crate) fn to_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(kind, "test"))
    }

    #[test]
    fn pool_timeouts_are_certain_failures_even_while_committing() {
        for phase in [Phase::NoEffect, Phase::Write, Phase::Commit] {
            let e = store_error("commit", phase, sqlx::Error::PoolTimedOut);
            assert!(matches!(e, StoreError::Unavailable(_)), "{phase:?}: {e:?}");
            let e = store_error("commit", phase, sqlx::Error::PoolClosed);
            assert!(matches!(e, StoreError::Unavailable(_)), "{phase:?}: {e:?}");
        }
    }

    #[test]
    fn a_refused_connection_is_certain() {
        let e = store_error("claim", Phase::Write, io(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }

    #[test]
    fn io_errors_after_a_write_was_sent_leave_the_outcome_unknown() {
        for phase in [Phase::Write, Phase::Commit] {
            let e = store_error("write", phase, io(std::io::ErrorKind::ConnectionReset));
            assert!(e.is_unknown(), "{phase:?}: {e:?}");
        }
        let e = store_error("load", Phase::NoEffect, io(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }

    #[test]
    fn a_deadline_is_unknown_only_once_a_write_was_sent() {
        let limit = std::time::Duration::from_secs(1);
        assert!(deadline_error("commit", limit, true).is_unknown());
        assert!(matches!(deadline_error("commit", limit, false), StoreError::Unavailable(_)));
    }

    #[test]
    fn counters_saturate() {
        assert_eq!(to_u32(-1), 0);
        assert_eq!(to_u32(i64::MAX), u32::MAX);
        assert_eq!(sql_limit(usize::MAX), i64::MAX);
    }
}
