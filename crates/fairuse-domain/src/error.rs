//! Domain errors. Input errors name the field they are about; store errors say whether the
//! failure is certain (the write did not happen) or unknown (it may have), so callers choose
//! fail-open or fail-closed explicitly.

/// Bad input from a caller: always names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    pub field: String,
    pub message: String,
}

impl InputError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        InputError { field: field.into(), message: message.into() }
    }

    /// The same error for a field nested in a list: `reports[3].lane`.
    pub fn at_index(self, list: &str, index: usize) -> Self {
        InputError { field: format!("{list}[{index}].{}", self.field), message: self.message }
    }
}

/// A failure of a store adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The operation certainly did not take effect (refused, not connected, bad request).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The operation may or may not have taken effect (timeout, connection lost mid-call).
    #[error("store outcome unknown: {0}")]
    Unknown(String),
    /// Optimistic concurrency: someone else wrote first; reload and retry.
    #[error("version conflict")]
    Conflict,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the failure leaves the effect of the call unknown.
    pub fn is_unknown(&self) -> bool {
        matches!(self, StoreError::Unknown(_))
    }
}
