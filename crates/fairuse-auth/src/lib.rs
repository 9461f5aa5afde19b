//! Who is calling: service keys, named admin keys with roles, and user JWTs (HS256 for
//! self-hosting, Firebase ID tokens, or any OIDC provider's JWKS).
//!
//! The job of this crate is to turn a header value into an identity (`()` for a service, an
//! [`AdminIdentity`], or a uid) or an [`AuthError`] that already knows its HTTP status and error
//! code. It must not depend on axum (handlers pass raw header values) nor on the domain crate
//! (a uid is a string here): the server wires both sides together.
//!
//! Security stance, relied on by every route:
//! - never open by default: a mode without configuration answers 503 saying what to set;
//! - keys are stored as SHA-256 digests and compared in constant time;
//! - token algorithms are fixed by configuration, never chosen by the token;
//! - nothing here prints a secret, in errors or `Debug`.

#![forbid(unsafe_code)]

mod authenticator;
mod error;
mod jwks;
mod keys;
mod token;

pub use authenticator::{Authenticator, bearer_token};
pub use error::{AuthConfigError, AuthError};
pub use keys::{AdminIdentity, AdminKeys, Role, ServiceKeys};
pub use token::{
    CLOCK_SKEW_LEEWAY_SECS, DEFAULT_HTTP_TIMEOUT, GOOGLE_SECURETOKEN_JWKS_URL, UserAuthConfig, UserTokenVerifier,
};
