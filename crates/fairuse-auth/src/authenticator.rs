//! The one object route handlers ask "who is calling?": service keys, admin keys and user tokens,
//! configured from the variables of SPEC section 7.
//!
//! It takes raw header values, not framework types, so the server decides how headers are read
//! and this crate stays free of axum. Every mode without configuration answers `NotConfigured`
//! (503) saying what to set: a route is never open because nobody configured it.

use std::collections::HashMap;
use std::fmt;

use crate::error::{AuthConfigError, AuthError};
use crate::keys::{ADMIN_KEYS_VAR, AdminIdentity, AdminKeys, SERVICE_KEYS_VAR, ServiceKeys};
use crate::token::{UserAuthConfig, UserTokenVerifier, users_not_configured};

/// The token of an `Authorization: Bearer <token>` header value. The scheme is matched
/// case-insensitively (RFC 9110 says schemes are case-insensitive) and surrounding whitespace is
/// ignored. `None` when the value is not a bearer credential or the token is empty.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let value = authorization.trim();
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace()).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// Reads an `Authorization` header: `Missing` when absent or blank, `Invalid` when it is not a
/// bearer credential.
fn required_bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.map(str::trim).filter(|v| !v.is_empty()).ok_or(AuthError::Missing)?;
    match bearer_token(value) {
        Some(token) => Ok(token),
        // `Bearer` with nothing after it is an absent credential, not a wrong one.
        None if value.eq_ignore_ascii_case("bearer") => Err(AuthError::Missing),
        None => Err(AuthError::invalid("expected an Authorization: Bearer credential")),
    }
}

/// Service, admin and user authentication for the HTTP layer. Each part is `None` when its mode
/// is not configured.
pub struct Authenticator {
    pub service: Option<ServiceKeys>,
    pub admin: Option<AdminKeys>,
    pub users: Option<UserTokenVerifier>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The parts' own Debug impls already hide key material.
        f.debug_struct("Authenticator")
            .field("service", &self.service)
            .field("admin", &self.admin)
            .field("users", &self.users)
            .finish()
    }
}

impl Authenticator {
    /// Builds from a map of variable names to values (the process environment, or the `[auth]`
    /// section of the config file merged under it by the binary). Blank values count as unset.
    pub fn from_env_map<S: std::hash::BuildHasher>(env: &HashMap<String, String, S>) -> Result<Self, AuthConfigError> {
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let service = get(SERVICE_KEYS_VAR).map(ServiceKeys::parse).transpose()?;
        let admin = get(ADMIN_KEYS_VAR).map(AdminKeys::parse).transpose()?;
        let user_config = UserAuthConfig::from_env_map(env);
        // OIDC issuer/audience alone are still handed to the verifier, which rejects them: they
        // signal an intent to configure user tokens that would otherwise silently do nothing.
        let any_user_setting =
            user_config.is_configured() || user_config.oidc_issuer.is_some() || user_config.oidc_audience.is_some();
        let users = if any_user_setting { Some(UserTokenVerifier::new(user_config)?) } else { None };
        Ok(Authenticator { service, admin, users })
    }

    /// `from_env_map` over the process environment. Variables that are not valid UTF-8 are
    /// skipped rather than panicking (as `std::env::vars` would).
    pub fn from_env() -> Result<Self, AuthConfigError> {
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        Self::from_env_map(&env)
    }

    /// Checks a service route's `Authorization` header.
    pub fn service(&self, authorization: Option<&str>) -> Result<(), AuthError> {
        let keys = self.service.as_ref().ok_or_else(|| {
            AuthError::NotConfigured(format!("service routes are not configured: set {SERVICE_KEYS_VAR}"))
        })?;
        let key = required_bearer(authorization)?;
        if keys.verify(key) { Ok(()) } else { Err(AuthError::invalid("invalid service key")) }
    }

    /// Checks an admin route's `X-Admin-Key` header and returns who is calling. Whether the role
    /// may write is the route's question: see [`AdminIdentity::require_write`].
    pub fn admin(&self, x_admin_key: Option<&str>) -> Result<AdminIdentity, AuthError> {
        let keys = self.admin.as_ref().ok_or_else(|| {
            AuthError::NotConfigured(format!("admin routes are not configured: set {ADMIN_KEYS_VAR}"))
        })?;
        let key = x_admin_key.map(str::trim).filter(|k| !k.is_empty()).ok_or(AuthError::Missing)?;
        keys.verify(key).ok_or_else(|| AuthError::invalid("invalid admin key"))
    }

    /// Checks a user route's `Authorization: Bearer <JWT>` header at `now_unix` and returns the uid.
    pub async fn user(&self, authorization: Option<&str>, now_unix: u64) -> Result<String, AuthError> {
        let users = self.users.as_ref().filter(|u| u.is_configured()).ok_or_else(users_not_configured)?;
        let token = required_bearer(authorization)?;
        users.verify(token, now_unix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("  bEaReR   abc  "), Some("abc"));
        assert_eq!(bearer_token("BEARER\tabc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn absent_or_empty_authorization_is_missing_and_other_schemes_are_invalid() {
        assert_eq!(required_bearer(None), Err(AuthError::Missing));
        assert_eq!(required_bearer(Some("   ")), Err(AuthError::Missing));
        assert_eq!(required_bearer(Some("Bearer")), Err(AuthError::Missing));
        assert!(matches!(required_bearer(Some("Basic dXNlcjpwdw==")), Err(AuthError::Invalid(_))));
        assert_eq!(required_bearer(Some("bearer tok")), Ok("tok"));
    }
}
