//! fairuse-webhook: delivers fair-use notifications to the host's webhook from the durable
//! outbox (SPEC section 3, "Notifications").
//!
//! Its job: decide which engine events notify ([`webhook_kind`]), build the exact SPEC payload
//! ([`payload`], [`outbox_message`]), sign it ([`sign`], [`verify_signature`]) and deliver it at
//! least once with exponential backoff ([`WebhookDeliverer`], [`backoff`]). It talks to storage only
//! through the domain's [`OutboxStore`](fairuse_domain::store::OutboxStore) port and reads time only
//! from the injected [`Clock`](fairuse_domain::time::Clock), so it must not depend on axum, on any
//! store adapter or on the server crate: the composition root wires it up.
#![forbid(unsafe_code)]

mod config;
mod deliver;
mod payload;
mod signature;

pub use config::{WebhookConfig, WebhookError, backoff};
pub use deliver::{DeliveryReport, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookDeliverer};
pub use payload::{WebhookKind, outbox_message, payload, webhook_kind};
pub use signature::{sign, verify_signature};
