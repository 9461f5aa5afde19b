//! The two error types of this crate: `AuthError` for a request that cannot be let in, and
//! `AuthConfigError` for configuration that must stop the process at startup.
//!
//! Messages are written for the caller and for logs alike, so none of them ever contains key
//! material: parse errors name an entry by position, token errors say why without echoing the
//! token or a secret.

/// Why a request was not authenticated. Each variant maps to one HTTP status and one stable error
/// code (`status()`, `code()`), so the server's error table needs no knowledge of auth internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials were presented (header absent or empty).
    #[error("missing credentials")]
    Missing,
    /// Credentials were presented but are not acceptable; the reason is safe to show the caller.
    #[error("{0}")]
    Invalid(String),
    /// The caller is known but its role does not allow the action.
    #[error("this key's role does not allow this action")]
    Forbidden,
    /// The mode this route needs has no configuration; the message says which variables to set.
    /// Routes answer 503 rather than letting anyone in: never open by default.
    #[error("{0}")]
    NotConfigured(String),
    /// Verification needs something we cannot reach right now (a JWKS endpoint with nothing
    /// cached). 503 because retrying later may succeed and the token may well be valid.
    #[error("{0}")]
    Unavailable(String),
}

impl AuthError {
    /// The HTTP status this error should be answered with.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Invalid(_) => 401,
            AuthError::Forbidden => 403,
            AuthError::NotConfigured(_) | AuthError::Unavailable(_) => 503,
        }
    }

    /// The stable machine-readable code for the `{"error": {"code": ...}}` body.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing | AuthError::Invalid(_) => "unauthorized",
            AuthError::Forbidden => "forbidden",
            AuthError::NotConfigured(_) => "auth_not_configured",
            AuthError::Unavailable(_) => "auth_unavailable",
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        AuthError::Invalid(reason.into())
    }
}

/// Configuration that cannot be used. Raised at load time so a bad deployment fails fast instead
/// of answering 401 to everyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// One entry of a comma-separated key list is malformed. `position` is 1-based; the entry's
    /// text is deliberately not included because it may contain the key.
    #[error("{var} entry {position}: {reason}")]
    BadEntry { var: &'static str, position: usize, reason: String },
    /// A whole setting is unusable (empty list, malformed URL, inconsistent combination).
    #[error("{var}: {reason}")]
    BadSetting { var: &'static str, reason: String },
    /// The HTTP client used for JWKS fetches could not be built.
    #[error("could not build the HTTP client for JWKS fetches: {0}")]
    HttpClient(String),
}
