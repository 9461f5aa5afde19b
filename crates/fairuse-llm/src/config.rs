//! Where the model lives, what it may see, and how long we wait for it.
//!
//! The API key is a secret: it is kept out of `Debug`, and error texts are scrubbed of it
//! (see [`LlmConfig::scrub`]) in case an endpoint echoes it back.

use std::fmt;
use std::time::Duration;

/// The default model, as Omi's `FAIR_USE_CLASSIFIER_MODEL`.
pub const DEFAULT_MODEL: &str = "gpt-5.1";
/// The default bound on one attempt (connect, send, answer); a call makes at most two.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default number of conversations shown to the model (the most recent ones).
pub const DEFAULT_MAX_CONVERSATIONS: usize = 50;

/// The OpenAI-compatible endpoint and what the classifier sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// `FAIRUSE_LLM_BASE_URL`: the API root, e.g. `https://api.openai.com/v1`; requests go to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    /// `FAIRUSE_LLM_API_KEY`: sent as `Authorization: Bearer …`. Empty sends no Authorization
    /// header (local servers that need none). Never logged.
    pub api_key: String,
    /// `FAIRUSE_LLM_MODEL` (alias `FAIR_USE_CLASSIFIER_MODEL`).
    pub model: String,
    /// The bound on one attempt; with the one retry a call takes at most about twice this.
    pub timeout: Duration,
    /// `false` (the default) sends metadata only: titles, categories, sources, times, durations
    /// and counts. `true` also sends each overview (truncated to 200 characters). Titles are
    /// metadata and are always sent: they are what the classifier mostly judges.
    pub include_text: bool,
    /// The most recent conversations shown to the model; older ones only count in the totals.
    pub max_conversations: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("llm classifier config: {0}")]
    Config(String),
    #[error("llm classifier http client: {0}")]
    Client(String),
}

impl LlmConfig {
    /// The defaults for everything but the endpoint and the key.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            model: DEFAULT_MODEL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            include_text: false,
            max_conversations: DEFAULT_MAX_CONVERSATIONS,
        }
    }

    /// Reads the `FAIRUSE_LLM_*` variables from the process environment; see [`LlmConfig::from_lookup`].
    pub fn from_env() -> Result<Self, LlmError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the config from variables: `FAIRUSE_LLM_BASE_URL` (required), `FAIRUSE_LLM_API_KEY`,
    /// `FAIRUSE_LLM_MODEL` (or Omi's `FAIR_USE_CLASSIFIER_MODEL`), `FAIRUSE_LLM_TIMEOUT_SECONDS`,
    /// `FAIRUSE_LLM_INCLUDE_TEXT` (`true`/`false`) and `FAIRUSE_LLM_MAX_CONVERSATIONS`, then validates it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let base_url =
            get("FAIRUSE_LLM_BASE_URL").ok_or_else(|| LlmError::Config("FAIRUSE_LLM_BASE_URL is not set".into()))?;
        // The key is taken as given (not trimmed into a different secret), only surrounding
        // whitespace from shell quoting is dropped.
        let mut cfg = LlmConfig::new(base_url, get("FAIRUSE_LLM_API_KEY").unwrap_or_default());
        if let Some(model) = get("FAIRUSE_LLM_MODEL").or_else(|| get("FAIR_USE_CLASSIFIER_MODEL")) {
            cfg.model = model;
        }
        if let Some(text) = get("FAIRUSE_LLM_TIMEOUT_SECONDS") {
            let secs: f64 =
                text.parse().ok().filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0).ok_or_else(|| {
                    LlmError::Config(format!("FAIRUSE_LLM_TIMEOUT_SECONDS must be 0 < s <= 3600, got {text:?}"))
                })?;
            cfg.timeout = Duration::from_secs_f64(secs);
        }
        if let Some(text) = get("FAIRUSE_LLM_INCLUDE_TEXT") {
            cfg.include_text = match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(LlmError::Config(format!(
                        "FAIRUSE_LLM_INCLUDE_TEXT must be true or false, got {text:?}"
                    )));
                }
            };
        }
        if let Some(text) = get("FAIRUSE_LLM_MAX_CONVERSATIONS") {
            cfg.max_conversations = text.parse().map_err(|_| {
                LlmError::Config(format!("FAIRUSE_LLM_MAX_CONVERSATIONS must be a whole number, got {text:?}"))
            })?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what would otherwise fail at the first classification, or never finish.
    pub fn validate(&self) -> Result<(), LlmError> {
        let bad = |m: String| Err(LlmError::Config(m));
        match reqwest::Url::parse(&self.base_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            // The URL is not echoed: it may carry credentials (`https://user:pass@host`).
            Ok(_) => return bad("base_url must be an http or https url".into()),
            Err(e) => return bad(format!("base_url is not a url: {e}")),
        }
        if self.api_key.chars().any(|c| c.is_control()) {
            return bad("api_key contains control characters".into());
        }
        if self.model.trim().is_empty() {
            return bad("model is empty".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout must be positive".into());
        }
        if self.max_conversations == 0 {
            return bad("max_conversations must be at least 1".into());
        }
        Ok(())
    }

    /// `{base_url}/chat/completions`, whether or not the base URL ends with a slash.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }

    /// Replaces the API key wherever it occurs in `text`: endpoints have been known to echo the
    /// key in error bodies, and our error texts end up in logs and events.
    pub fn scrub(&self, text: &str) -> String {
        if self.api_key.is_empty() { text.to_owned() } else { text.replace(&self.api_key, "[redacted]") }
    }
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.scrub(&self.base_url))
            .field("api_key", &if self.api_key.is_empty() { "[empty]" } else { "[redacted]" })
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("include_text", &self.include_text)
            .field("max_conversations", &self.max_conversations)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_match_the_spec_and_omi() {
        let cfg = LlmConfig::new("https://api.openai.com/v1", "sk-x");
        assert_eq!(cfg.model, "gpt-5.1");
        assert_eq!(cfg.timeout, Duration::from_secs(30));
        assert!(!cfg.include_text);
        assert_eq!(cfg.max_conversations, 50);
        assert_eq!(cfg.endpoint(), "https://api.openai.com/v1/chat/completions");
        assert_eq!(LlmConfig::new("http://h/v1/", "").endpoint(), "http://h/v1/chat/completions");
    }

    #[test]
    fn environment_variables_fill_the_config_and_omis_model_name_is_an_alias() {
        let cfg = LlmConfig::from_lookup(lookup(&[
            ("FAIRUSE_LLM_BASE_URL", "http://localhost:11434/v1"),
            ("FAIRUSE_LLM_API_KEY", "sk-secret"),
            ("FAIR_USE_CLASSIFIER_MODEL", "gpt-6-luna"),
            ("FAIRUSE_LLM_TIMEOUT_SECONDS", "2.5"),
            ("FAIRUSE_LLM_INCLUDE_TEXT", "true"),
            ("FAIRUSE_LLM_MAX_CONVERSATIONS", "20"),
        ]))
        .unwrap();
        assert_eq!(cfg.model, "gpt-6-luna");
        assert_eq!(cfg.timeout, Duration::from_millis(2500));
        assert!(cfg.include_text);
        assert_eq!(cfg.max_conversations, 20);
        let both = lookup(&[
            ("FAIRUSE_LLM_BASE_URL", "http://h"),
            ("FAIRUSE_LLM_MODEL", "ours"),
            ("FAIR_USE_CLASSIFIER_MODEL", "omis"),
        ]);
        assert_eq!(LlmConfig::from_lookup(both).unwrap().model, "ours");
    }

    #[test]
    fn bad_settings_are_rejected_at_load() {
        assert!(LlmConfig::from_lookup(lookup(&[])).is_err());
        for (k, v) in [
            ("FAIRUSE_LLM_TIMEOUT_SECONDS", "0"),
            ("FAIRUSE_LLM_INCLUDE_TEXT", "maybe"),
            ("FAIRUSE_LLM_MAX_CONVERSATIONS", "0"),
            ("FAIRUSE_LLM_MAX_CONVERSATIONS", "-1"),
        ] {
            assert!(
                LlmConfig::from_lookup(lookup(&[("FAIRUSE_LLM_BASE_URL", "http://h"), (k, v)])).is_err(),
                "{k}={v}"
            );
        }
        assert!(LlmConfig::new("ftp://h", "k").validate().is_err());
        assert!(LlmConfig::new("not a url", "k").validate().is_err());
    }

    #[test]
    fn debug_and_scrub_hide_the_key() {
        let cfg = LlmConfig::new("https://api.example/v1", "sk-very-secret");
        let text = format!("{cfg:?}");
        assert!(!text.contains("sk-very-secret"), "{text}");
        assert!(text.contains("[redacted]"));
        assert_eq!(cfg.scrub("bad key sk-very-secret!"), "bad key [redacted]!");
    }
}
