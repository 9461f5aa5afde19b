//! The one place where Redis failures become domain [`StoreError`]s.
//!
//! The service picks fail-open or fail-closed from the variant, so the split matters:
//!
//! | failure | read | write |
//! | --- | --- | --- |
//! | connection refused, not connected, no node for the slot, bad client config, auth failed | Unavailable | Unavailable |
//! | the server refused before running anything: NOSCRIPT (after the EVAL fallback), MOVED, ASK, TRYAGAIN, CLUSTERDOWN, CROSSSLOT, MASTERDOWN, READONLY, LOADING, BUSY, OOM, MISCONF, NOPERM, NOAUTH, NOREPLICAS, EXECABORT | Unavailable | Unavailable |
//! | timeout (ours or the client's), connection reset or closed mid-call | Unavailable | **Unknown** |
//! | any other server error (ERR, WRONGTYPE: a script may have failed half-way) | Unavailable | **Unknown** |
//! | a reply we cannot parse (the command ran, we cannot read its result) | Unavailable | **Unknown** |
//!
//! A read has no effect to be unsure about, so every failed read is `Unavailable`. A write is
//! `Unknown` whenever the command may have reached the server: a Lua script is atomic against
//! other clients but not rolled back by an error, and a timeout says nothing about the server.
//! Redis refuses an out-of-memory script at its first write, before it changed anything, which
//! is why OOM is certain.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use fairuse_domain::error::StoreError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Whether a failed call could have changed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Read,
    Write,
}

/// Why a call to Redis failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Redis(RedisError),
    /// Our own `tokio::time::timeout` around the call ran out.
    TimedOut(Duration),
    /// The reply had an unexpected shape (the command did run).
    Reply(String),
}

/// Error codes of refusals: the server answered without executing the command or script.
const REFUSALS: &[&str] = &[
    "NOSCRIPT",
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "CROSSSLOT",
    "MASTERDOWN",
    "READONLY",
    "LOADING",
    "BUSY",
    "OOM",
    "MISCONF",
    "NOPERM",
    "NOAUTH",
    "WRONGPASS",
    "NOREPLICAS",
    "EXECABORT",
];

/// Whether the call certainly had no effect on the server.
fn certainly_not_applied(err: &RedisError) -> bool {
    if err.is_connection_refusal() {
        return true;
    }
    match err.kind() {
        // Raised by the client before anything was sent.
        ErrorKind::Client
        | ErrorKind::InvalidClientConfig
        | ErrorKind::AuthenticationFailed
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::RESP3NotSupported
        | ErrorKind::EmptySentinelList
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel => true,
        ErrorKind::Server(
            ServerErrorKind::NoScript
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::CrossSlot
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::NoPerm
            | ServerErrorKind::ExecAbort,
        ) => true,
        ErrorKind::Server(_) | ErrorKind::Extension => err.code().is_some_and(|code| REFUSALS.contains(&code)),
        ErrorKind::Io => io_kind(err).is_some_and(|k| k == io::ErrorKind::NotConnected),
        _ => false,
    }
}

/// The I/O error kind behind a Redis error. redis-rs keeps it as an `Arc<dyn Error>` source and
/// only exposes a few predicates publicly, so look through the `Arc` as well.
fn io_kind(err: &RedisError) -> Option<io::ErrorKind> {
    let source = std::error::Error::source(err)?;
    if let Some(io) = source.downcast_ref::<io::Error>() {
        return Some(io.kind());
    }
    source
        .downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()
        .and_then(|inner| inner.downcast_ref::<io::Error>())
        .map(io::Error::kind)
}

/// Converts a failure. `action` says what was attempted, for the message.
pub(crate) fn store_error(action: &str, effect: Effect, failure: Failure) -> StoreError {
    let (certain, detail) = match &failure {
        Failure::Redis(err) => (certainly_not_applied(err), err.to_string()),
        Failure::TimedOut(after) => (false, format!("no answer within {} ms", after.as_millis())),
        Failure::Reply(why) => (false, format!("unexpected reply: {why}")),
    };
    let message = format!("redis: {action}: {detail}");
    match (effect, certain) {
        (Effect::Read, _) | (Effect::Write, true) => StoreError::Unavailable(message),
        (Effect::Write, false) => StoreError::Unknown(message),
    }
}

/// Whether the server does not know the script (EVALSHA before the script was loaded there).
pub(crate) fn is_noscript(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) || err.code() == Some("NOSCRIPT")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(err: RedisError) -> StoreError {
        store_error("test", Effect::Write, Failure::Redis(err))
    }

    #[test]
    fn refused_connections_are_certain_failures() {
        let err = RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(write(err), StoreError::Unavailable(_)));
        let err = RedisError::from(io::Error::from(io::ErrorKind::NotConnected));
        assert!(matches!(write(err), StoreError::Unavailable(_)));
    }

    #[test]
    fn a_connection_lost_mid_write_leaves_the_outcome_unknown() {
        for kind in [io::ErrorKind::ConnectionReset, io::ErrorKind::BrokenPipe, io::ErrorKind::UnexpectedEof] {
            let err = RedisError::from(io::Error::from(kind));
            assert!(write(err).is_unknown(), "{kind:?}");
            let err = RedisError::from(io::Error::from(kind));
            let read = store_error("test", Effect::Read, Failure::Redis(err));
            assert!(matches!(read, StoreError::Unavailable(_)), "a read has nothing to be unsure about");
        }
    }

    #[test]
    fn timeouts_of_writes_are_unknown() {
        let e = store_error("test", Effect::Write, Failure::TimedOut(Duration::from_millis(250)));
        assert!(e.is_unknown());
        assert!(e.to_string().contains("250 ms"), "{e}");
        let err = RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        assert!(write(err).is_unknown());
    }

    #[test]
    fn server_refusals_are_certain_and_script_errors_are_not() {
        for kind in [
            ServerErrorKind::NoScript,
            ServerErrorKind::Moved,
            ServerErrorKind::TryAgain,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::CrossSlot,
        ] {
            let err = RedisError::from((ErrorKind::Server(kind), "refused"));
            assert!(matches!(write(err), StoreError::Unavailable(_)), "{kind:?}");
        }
        let oom = redis::make_extension_error("OOM".into(), Some("command not allowed".into()));
        assert!(matches!(write(oom), StoreError::Unavailable(_)));
        let wrongtype = redis::make_extension_error("WRONGTYPE".into(), Some("script: ...".into()));
        assert!(write(wrongtype).is_unknown(), "a script may have written before failing");
        let err = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "user_script:12"));
        assert!(write(err).is_unknown());
    }

    #[test]
    fn client_side_errors_are_certain() {
        let err = RedisError::from((ErrorKind::ClusterConnectionNotFound, "no node"));
        assert!(matches!(write(err), StoreError::Unavailable(_)));
        let err = RedisError::from((ErrorKind::InvalidClientConfig, "bad url"));
        assert!(matches!(write(err), StoreError::Unavailable(_)));
    }

    #[test]
    fn unreadable_replies_of_writes_are_unknown() {
        let e = store_error("test", Effect::Write, Failure::Reply("3 values, expected 4".into()));
        assert!(e.is_unknown());
    }
}
