//! Delivery settings, their validation, and the retry schedule.
//!
//! The schedule is a pure function of (message id, attempts, settings): no clock, no global RNG,
//! so tests and the simulator get the same delays every run.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The SPEC's floor: a failing receiver is retried for at least this long.
const MIN_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Where and how webhooks are delivered.
#[derive(Clone)]
pub struct WebhookConfig {
    /// `FAIRUSE_WEBHOOK_URL`: http or https.
    pub url: String,
    /// `FAIRUSE_WEBHOOK_SECRET`: the HMAC key. Never logged (see the `Debug` impl).
    pub secret: Vec<u8>,
    /// No answer within this is a failed attempt (SPEC: 10 s).
    pub timeout: Duration,
    /// A message keeps being retried at least this long after it was enqueued; a failure after
    /// that moves it to the dead letters. Must be at least 24 h (SPEC).
    pub max_age: Duration,
    /// The retry delay after the first failure (before jitter); it doubles per failure.
    pub base_backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
    /// Messages claimed (and delivered concurrently) per pass.
    pub batch: usize,
    /// How long a claimed message is reserved for this worker; must exceed `timeout` so another
    /// replica does not take a message while this one is still sending it.
    pub lease: Duration,
}

impl WebhookConfig {
    /// The SPEC's defaults for everything but the endpoint and the key.
    pub fn new(url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        WebhookConfig {
            url: url.into(),
            secret: secret.into(),
            timeout: Duration::from_secs(10),
            // Two hours over the SPEC's 24 h, so a receiver that is down for a full day and
            // comes back at the same hour still gets the messages of the day before.
            max_age: Duration::from_secs(26 * 3600),
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30 * 60),
            batch: 32,
            lease: Duration::from_secs(60),
        }
    }

    /// Checks what would otherwise fail later, at the first delivery, or silently break the
    /// SPEC's guarantees (a too-short retry period, a lease shorter than a request).
    pub fn validate(&self) -> Result<(), WebhookError> {
        let bad = |m: String| Err(WebhookError::Config(m));
        match reqwest::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => return bad(format!("webhook url must be http or https, not {}", u.scheme())),
            Err(e) => return bad(format!("webhook url is not a url: {e}")),
        }
        if self.secret.is_empty() {
            return bad("webhook secret is empty; receivers could not verify signatures".into());
        }
        if self.timeout.is_zero() {
            return bad("webhook timeout must be positive".into());
        }
        if self.max_age < MIN_MAX_AGE {
            return bad(format!("webhook max_age must be at least 24h, got {:?}", self.max_age));
        }
        if self.base_backoff.is_zero() || self.max_backoff < self.base_backoff {
            return bad("webhook backoff needs 0 < base_backoff <= max_backoff".into());
        }
        if self.batch == 0 {
            return bad("webhook batch must be at least 1".into());
        }
        if self.lease <= self.timeout {
            return bad("webhook lease must be longer than the timeout".into());
        }
        Ok(())
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("max_age", &self.max_age)
            .field("base_backoff", &self.base_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("batch", &self.batch)
            .field("lease", &self.lease)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid webhook configuration: {0}")]
    Config(String),
    #[error("cannot build the webhook http client: {0}")]
    Client(String),
}

/// The delay before the next attempt of message `id` after its `attempts`-th failure (1 for the
/// first failure; 0 is treated as 1).
///
/// Exponential with "equal jitter": the ceiling is `base_backoff * 2^(attempts-1)` capped at
/// `max_backoff`, and the delay is uniform in `[ceiling/2, ceiling]`. The jitter spreads the
/// retries of many messages that failed together (a receiver outage) so they do not all come back
/// in the same second; the half that is fixed keeps a floor, so a failing receiver is never retried
/// at once, and makes delays non-decreasing until the cap. The jitter is a hash of the id and the
/// attempt number, so it is reproducible without a random number generator.
pub fn backoff(id: &str, attempts: u32, cfg: &WebhookConfig) -> Duration {
    let cap = millis(cfg.max_backoff).max(1);
    let base = millis(cfg.base_backoff).clamp(1, cap);
    let factor = 1u64.checked_shl(attempts.max(1) - 1).unwrap_or(u64::MAX);
    let ceiling = base.saturating_mul(factor).min(cap);
    let half = ceiling / 2;
    let spread = ceiling - half;
    Duration::from_millis(half + jitter(id, attempts) % (spread + 1))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// 64 well-mixed bits from (id, attempts). SHA-256 rather than `DefaultHasher`, whose output may
/// change between Rust releases and would make schedules differ across builds.
fn jitter(id: &str, attempts: u32) -> u64 {
    let digest = Sha256::new().chain_update(id.as_bytes()).chain_update(attempts.to_be_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WebhookConfig {
        WebhookConfig::new("http://127.0.0.1:9/hook", b"secret".to_vec())
    }

    #[test]
    fn defaults_are_valid_and_follow_the_spec() {
        let c = cfg();
        c.validate().unwrap();
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert!(c.max_age > Duration::from_secs(24 * 3600));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let c = WebhookConfig::new("http://h/x", b"super-secret-key".to_vec());
        let text = format!("{c:?}");
        assert!(!text.contains("super-secret-key"), "{text}");
        assert!(!text.contains(&format!("{:?}", b"super-secret-key".to_vec())), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn validation_refuses_settings_that_break_the_guarantees() {
        let mut c = cfg();
        c.url = "ftp://h/x".into();
        assert!(c.validate().is_err());
        c.url = "not a url".into();
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.secret.clear();
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.max_age = Duration::from_secs(23 * 3600);
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.lease = c.timeout;
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.batch = 0;
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.max_backoff = c.base_backoff / 2;
        assert!(c.validate().is_err());
    }

    #[test]
    fn backoff_stays_between_half_and_all_of_its_ceiling_even_for_huge_attempt_counts() {
        let c = cfg();
        for attempts in [0, 1, 2, 5, 20, 63, 64, 65, 1000, u32::MAX] {
            let d = backoff("ev-x", attempts, &c);
            assert!(d >= c.base_backoff / 2 && d <= c.max_backoff, "{attempts}: {d:?}");
        }
    }
}
