//! The one table from errors to HTTP: every failure becomes `{"error": {"code", "message"}}`
//! with the status below. Handlers return `ApiError`; nothing else builds error responses.
//! The service layer's own `ServiceError` becomes an `ApiError` in one `From` impl here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fairuse_domain::{InputError, StoreError};
use serde::Serialize;

use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Auth(#[from] fairuse_auth::AuthError),
    #[error("{0}")]
    NotFound(String),
    /// Refused outright (Omi's admin routes answer a wrong key with 403).
    #[error("{0}")]
    Forbidden(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("too many requests; retry in {retry_after_s} s")]
    RateLimited { retry_after_s: i64 },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Conflict(String),
    #[error("fair use is not available: {0}")]
    Unavailable(String),
}

impl ApiError {
    /// The table: (status, code).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Input(_) | ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Auth(e) => (StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED), e.code()),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Conflict(_) | ApiError::Store(StoreError::Conflict) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Store(StoreError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Store(StoreError::Invalid(_)) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

/// `Error` in `openapi.json`: every JSON error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    pub code: &'static str,
    pub message: String,
    /// The field that is wrong, on input errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(error = %self, code, "request failed");
        }
        // A store's "not found", "conflict" or "invalid" is an answer about the request (a 4xx),
        // not a failing store: counting those would page operators for a mistyped event id.
        if let ApiError::Store(e) = &self
            && status.is_server_error()
        {
            let kind = if e.is_unknown() { "unknown" } else { "certain" };
            metrics::counter!("fairuse_store_errors_total", "op" => "request", "kind" => kind).increment(1);
        }
        let field = match &self {
            ApiError::Input(e) => Some(e.field.clone()),
            _ => None,
        };
        let body = ErrorBody { error: ErrorDetail { code, message: self.to_string(), field } };
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_s } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_s.max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The service layer's errors, mapped to the table above here and nowhere else (each keeps its
/// message, so a response reads the same whichever layer built it).
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Input(e) => ApiError::Input(e),
            ServiceError::NotFound(m) => ApiError::NotFound(m),
            ServiceError::Conflict(m) => ApiError::Conflict(m),
            ServiceError::RateLimited { retry_after_s } => ApiError::RateLimited { retry_after_s },
            ServiceError::Store(e) => ApiError::Store(e),
            ServiceError::Unavailable(m) => ApiError::Unavailable(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders the store-error counter after turning `errors` into responses.
    fn store_errors_after(errors: Vec<ApiError>) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for e in errors {
                let _ = e.into_response();
            }
        });
        handle.render().lines().filter(|l| l.starts_with("fairuse_store_errors_total")).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn service_errors_keep_their_message_and_take_their_status_from_the_table() {
        let cases = [
            (ServiceError::Input(InputError::new("speech_ms", "must not be negative")), 400, "invalid_request"),
            (ServiceError::NotFound("case X not found".into()), 404, "not_found"),
            (ServiceError::Conflict("too many concurrent updates".into()), 409, "conflict"),
            (ServiceError::RateLimited { retry_after_s: 7 }, 429, "rate_limited"),
            (ServiceError::Store(StoreError::Conflict), 409, "conflict"),
            (ServiceError::Store(StoreError::NotFound("event e1".into())), 404, "not_found"),
            (ServiceError::Store(StoreError::Unavailable("refused".into())), 503, "store_unavailable"),
            (ServiceError::Unavailable("appeal was not recorded".into()), 503, "unavailable"),
        ];
        for (e, status, code) in cases {
            let message = e.to_string();
            let api = ApiError::from(e);
            assert_eq!(api.to_string(), message);
            assert_eq!(api.status_and_code(), (StatusCode::from_u16(status).unwrap(), code), "{message}");
        }
    }

    #[test]
    fn a_failing_store_is_counted_and_a_store_answer_about_the_request_is_not() {
        let counted = store_errors_after(vec![
            ApiError::Store(StoreError::NotFound("event e1".into())),
            ApiError::Store(StoreError::Conflict),
            ApiError::Store(StoreError::Invalid("duplicate".into())),
        ]);
        assert_eq!(counted, "", "404, 409 and 400 answers are not store failures");
        let counted = store_errors_after(vec![
            ApiError::Store(StoreError::Unavailable("refused".into())),
            ApiError::Store(StoreError::Unknown("timeout".into())),
            ApiError::Store(StoreError::Unknown("timeout".into())),
        ]);
        assert!(counted.contains(r#"fairuse_store_errors_total{op="request",kind="certain"} 1"#), "{counted}");
        assert!(counted.contains(r#"fairuse_store_errors_total{op="request",kind="unknown"} 2"#), "{counted}");
    }
}
