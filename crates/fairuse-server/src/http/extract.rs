//! Extractors: bodies, path parameters and who is calling. Each rejection is an [`ApiError`], so
//! a request refused here gets the same JSON error shape as one refused by a handler. Depends on
//! the state, the error table and Omi's route marker only; no handler, no router.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use fairuse_auth::AdminIdentity;
use fairuse_domain::ids::Uid;
use serde::de::DeserializeOwned;

use super::omi::OmiRoute;
use super::state::AppState;
use crate::error::{ApiError, ApiResult};

/// The largest body a request may carry (413 beyond): the router's limit, which [`JsonBody`] and
/// [`OptionalJson`] report.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A JSON body: size-limited (413), and a parse error names the field that is wrong.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be absent (Omi sends admin parameters in the query): empty means
/// `T::default()`; too large is 413 and a bad field is 400, as for [`JsonBody`].
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(OptionalJson(T::default()))
        } else {
            parse_json(&bytes).map(OptionalJson)
        }
    }
}

/// A body as bytes, size-limited (413) like [`JsonBody`], for a handler that parses it itself.
pub struct BodyBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(BodyBytes)
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> ApiResult<Bytes> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        } else {
            ApiError::BadRequest(format!("could not read the body: {rejection}"))
        }
    })
}

/// A strict JSON body (`crate::strict_json`): one value, no repeated key, errors naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    Ok(crate::strict_json::parse(bytes)?)
}

fn header_str<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A caller holding a service key.
pub struct ServiceCaller;

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.auth.service(header_str(parts, "authorization"))?;
        Ok(ServiceCaller)
    }
}

/// The admin key of a request: on Omi's routes a wrong key is 403 "Invalid admin key", as Omi
/// answers it (our own routes say 401: the credentials are not valid).
fn admin_identity(parts: &Parts, state: &AppState) -> ApiResult<AdminIdentity> {
    match state.auth.admin(header_str(parts, "x-admin-key")) {
        Err(fairuse_auth::AuthError::Invalid(_)) if parts.extensions.get::<OmiRoute>().is_some() => {
            Err(ApiError::Forbidden("Invalid admin key".into()))
        }
        other => Ok(other?),
    }
}

/// An admin (any role), from the `X-Admin-Key` header only: a key in the query never counts.
pub struct Admin(pub AdminIdentity);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Admin(admin_identity(parts, state)?))
    }
}

/// An admin whose role may change things.
pub struct Operator(pub AdminIdentity);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let id = admin_identity(parts, state)?;
        if !id.role.can_write() {
            return Err(ApiError::Auth(fairuse_auth::AuthError::Forbidden));
        }
        Ok(Operator(id))
    }
}

/// Path parameters whose rejection (e.g. a segment that is not UTF-8) is our JSON error.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|rejection| ApiError::Input(fairuse_domain::InputError::new("path", rejection.body_text())))
    }
}

/// A `{uid}` path parameter, checked.
pub(crate) fn uid_param(raw: &str) -> ApiResult<Uid> {
    Ok(Uid::parse(raw)?)
}

/// The peer address when the server was started with connect info (absent in router-only tests).
pub struct PeerAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

/// The user of a verified token; the uid never comes from a parameter.
pub struct User(pub Uid);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let now_s = state.service.now().secs().max(0) as u64;
        let uid = state.auth.user(header_str(parts, "authorization"), now_s).await?;
        Ok(User(Uid::parse(&uid)?))
    }
}
