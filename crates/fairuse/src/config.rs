//! Process configuration: `fairuse.toml` (path by `--config`), overridden by environment
//! variables `FAIRUSE__SECTION__KEY`, with secrets from the variables of SPEC section 7 and Omi's
//! `FAIR_USE_*` names accepted as aliases for the policy settings they meant.
//! Unknown keys, in the file or in a `FAIRUSE__` variable, are errors that name the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fairuse_domain::policy::Policy;
use fairuse_domain::time::DurationMs;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerSection,
    pub store: StoreSection,
    pub gateway: GatewaySection,
    pub workers: WorkersSection,
    pub webhook: WebhookSection,
    pub auth: AuthSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: String,
    pub data_dir: PathBuf,
    /// The policy file; empty means the shipped default policy.
    pub policy: String,
    /// A proxy header carrying the client address for the public lookup's rate limit (for
    /// example `x-forwarded-for`); empty trusts none.
    pub trusted_proxy_header: String,
    pub case_lookups_per_minute: u32,
    /// Appeals per user per day.
    pub appeals_per_day: u32,
    /// How long shutdown waits for in-flight requests and the outbox.
    pub shutdown_grace: DurationMs,
    /// `text` or `json`.
    pub log_format: String,
    /// On the embedded store, generate the keys that are not configured into the data directory
    /// on the first start (`crate::first_run`); false keeps those routes answering 503.
    pub generate_keys: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            policy: String::new(),
            trusted_proxy_header: String::new(),
            case_lookups_per_minute: 10,
            appeals_per_day: 5,
            shutdown_grace: DurationMs::seconds(20),
            log_format: "text".into(),
            generate_keys: true,
        }
    }
}

/// Where the stores live. Both empty: the embedded store in the data directory (one process).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// The hot store: `redis://host:port` or `redis+cluster://host1:port,host2:port,...`.
    pub redis_url: String,
    /// The durable store: `postgres://...`.
    pub database_url: String,
    /// Starts every Redis key; replicas of one deployment share it.
    pub redis_prefix: String,
    /// The PostgreSQL schema holding fairuse's tables.
    pub database_schema: String,
    /// Apply PostgreSQL migrations at start-up (otherwise run `fairuse migrate` first). Not the
    /// Redis meter layout upgrade: `serve` refuses old-layout meters until `fairuse migrate` ran.
    pub migrate_on_start: bool,
    /// The longest one Redis command may take.
    pub redis_timeout: DurationMs,
    /// The longest one SQL statement may take.
    pub database_timeout: DurationMs,
    pub database_max_connections: u32,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            redis_url: String::new(),
            database_url: String::new(),
            redis_prefix: "fairuse".into(),
            database_schema: "fairuse".into(),
            migrate_on_start: false,
            redis_timeout: DurationMs(500),
            database_timeout: DurationMs::seconds(5),
            database_max_connections: 10,
        }
    }
}

impl std::fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may carry passwords: print only whether they are set.
        let set = |s: &str| if s.is_empty() { "unset" } else { "set" };
        f.debug_struct("StoreSection")
            .field("redis_url", &set(&self.redis_url))
            .field("database_url", &set(&self.database_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("database_schema", &self.database_schema)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

/// The streaming gateway (`/v1/listen`): off until an upstream is configured.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// The STT vendor's live endpoint (`wss://...`), or `none` to meter only; empty turns the
    /// gateway off (503).
    pub upstream_url: String,
    /// Sent upstream as `Authorization: Token <key>`; never reaches clients.
    pub upstream_api_key: String,
    /// A PEM file of extra certificates to trust for a `wss://` upstream (a private CA); the
    /// system's roots are always trusted. Empty: none.
    pub upstream_ca_file: String,
    /// How often a stream reports its cumulative totals and re-reads the decision.
    pub flush_interval: DurationMs,
    pub max_streams_per_user: u32,
    /// A stream with no client message (audio, `KeepAlive`, ping) for this long is closed.
    pub idle_timeout: DurationMs,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            upstream_url: String::new(),
            upstream_api_key: String::new(),
            upstream_ca_file: String::new(),
            flush_interval: DurationMs::seconds(60),
            max_streams_per_user: 4,
            idle_timeout: DurationMs::seconds(30),
        }
    }
}

impl std::fmt::Debug for GatewaySection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySection")
            .field("upstream_url", &self.upstream_url)
            .field("upstream_api_key", &if self.upstream_api_key.is_empty() { "unset" } else { "set" })
            .field("upstream_ca_file", &self.upstream_ca_file)
            .field("flush_interval", &self.flush_interval)
            .field("max_streams_per_user", &self.max_streams_per_user)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersSection {
    pub timer_interval: DurationMs,
    pub redaction_interval: DurationMs,
    pub policy_reload_interval: DurationMs,
    pub prune_interval: DurationMs,
}

impl Default for WorkersSection {
    fn default() -> Self {
        WorkersSection {
            timer_interval: DurationMs::seconds(30),
            redaction_interval: DurationMs::hours(1),
            policy_reload_interval: DurationMs::seconds(2),
            prune_interval: DurationMs::minutes(10),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSection {
    pub url: String,
    pub secret: String,
    pub timeout: DurationMs,
    /// The first retry delay; it doubles per failure up to `max_backoff`.
    pub base_backoff: DurationMs,
    pub max_backoff: DurationMs,
}

impl Default for WebhookSection {
    fn default() -> Self {
        WebhookSection {
            url: String::new(),
            secret: String::new(),
            timeout: DurationMs::seconds(10),
            base_backoff: DurationMs::seconds(5),
            max_backoff: DurationMs::minutes(30),
        }
    }
}

impl std::fmt::Debug for WebhookSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSection").field("url", &self.url).field("secret", &"<redacted>").finish()
    }
}

/// Secrets and auth settings: the same names as the variables of SPEC section 7, lower-cased.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub service_keys: String,
    pub admin_keys: String,
    pub jwt_hs256_secret: String,
    pub firebase_project_id: String,
    pub oidc_jwks_url: String,
    pub oidc_issuer: String,
    pub oidc_audience: String,
    /// Where Google's JWKS for Firebase tokens is fetched (overridable for tests).
    pub google_jwks_url: String,
}

impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &str| if s.is_empty() { "unset" } else { "set" };
        f.debug_struct("AuthSection")
            .field("service_keys", &set(&self.service_keys))
            .field("admin_keys", &set(&self.admin_keys))
            .field("jwt_hs256_secret", &set(&self.jwt_hs256_secret))
            .field("firebase_project_id", &self.firebase_project_id)
            .field("oidc_jwks_url", &self.oidc_jwks_url)
            .finish()
    }
}

/// The named variables (SPEC section 7's secrets table, and `FAIRUSE_POLICY`): variable -> key.
/// They win over the file and over `FAIRUSE__SECTION__KEY`.
const SECRET_VARS: [(&str, &str, &str); 15] = [
    ("FAIRUSE_POLICY", "server", "policy"),
    ("FAIRUSE_UPSTREAM_STT_URL", "gateway", "upstream_url"),
    ("FAIRUSE_UPSTREAM_STT_API_KEY", "gateway", "upstream_api_key"),
    ("FAIRUSE_REDIS_URL", "store", "redis_url"),
    ("FAIRUSE_DATABASE_URL", "store", "database_url"),
    ("FAIRUSE_SERVICE_KEYS", "auth", "service_keys"),
    ("FAIRUSE_ADMIN_KEYS", "auth", "admin_keys"),
    ("FAIRUSE_JWT_HS256_SECRET", "auth", "jwt_hs256_secret"),
    ("FAIRUSE_FIREBASE_PROJECT_ID", "auth", "firebase_project_id"),
    ("FAIRUSE_OIDC_JWKS_URL", "auth", "oidc_jwks_url"),
    ("FAIRUSE_OIDC_ISSUER", "auth", "oidc_issuer"),
    ("FAIRUSE_OIDC_AUDIENCE", "auth", "oidc_audience"),
    ("FAIRUSE_GOOGLE_JWKS_URL", "auth", "google_jwks_url"),
    ("FAIRUSE_WEBHOOK_URL", "webhook", "url"),
    ("FAIRUSE_WEBHOOK_SECRET", "webhook", "secret"),
];

fn scalar(text: &str) -> toml::Value {
    if let Ok(b) = text.parse::<bool>() {
        toml::Value::Boolean(b)
    } else if let Ok(i) = text.parse::<i64>() {
        toml::Value::Integer(i)
    } else {
        toml::Value::String(text.to_owned())
    }
}

impl Config {
    /// File, then `FAIRUSE__SECTION__KEY` variables, then the secret variables.
    pub fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> anyhow::Result<Config> {
        let mut root = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("config file {}", p.display()))?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default()).context("default configuration")?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("FAIRUSE__") else { continue };
            let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            let [section, key] = parts.as_slice() else {
                bail!("environment variable {name}: expected FAIRUSE__SECTION__KEY");
            };
            let table = root
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("environment variable {name}: [{section}] is not a table"))?;
            // A value is a string exactly where the default configuration has a string (paths,
            // durations, keys); otherwise it is read as a boolean or number if it looks like one.
            let is_string = defaults.get(section).and_then(|t| t.get(key)).is_some_and(toml::Value::is_str);
            let v = if is_string { toml::Value::String(value.clone()) } else { scalar(value) };
            table.insert(key.clone(), v);
        }
        for (var, section, key) in SECRET_VARS {
            if let Some(v) = env.get(var) {
                let table = root
                    .entry(section.to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .with_context(|| format!("[{section}] is not a table"))?;
                table.insert(key.to_owned(), toml::Value::String(v.clone()));
            }
        }
        // Deserialize with the path tracked, so a bad value names its key (and its variable).
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
            let key = e.path().to_string();
            let var = format!("FAIRUSE__{}", key.replace('.', "__").to_ascii_uppercase());
            let from_env = env.contains_key(&var);
            let source = if from_env { format!(" (from {var})") } else { String::new() };
            anyhow::anyhow!("configuration key {key}{source}: {}", e.into_inner())
        })?;
        if config.server.listen.parse::<std::net::SocketAddr>().is_err() {
            bail!("configuration key server.listen: {:?} is not an address like 127.0.0.1:8080", config.server.listen);
        }
        if !matches!(config.server.log_format.as_str(), "text" | "json") {
            bail!("configuration key server.log_format: must be text or json");
        }
        if !config.webhook.url.is_empty() && config.webhook.secret.is_empty() {
            bail!("a webhook URL is set but no secret: set FAIRUSE_WEBHOOK_SECRET so receivers can verify signatures");
        }
        Ok(config)
    }

    pub fn policy_path(&self) -> Option<PathBuf> {
        (!self.server.policy.is_empty()).then(|| PathBuf::from(&self.server.policy))
    }
}

/// Loads the policy (file or shipped default) and applies Omi's variables.
pub fn load_policy(path: Option<&Path>, env: &BTreeMap<String, String>) -> anyhow::Result<Policy> {
    let mut policy = match path {
        None => Policy::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading policy file {}", p.display()))?;
            Policy::from_toml_str(&text).with_context(|| format!("policy file {}", p.display()))?
        }
    };
    apply_omi_aliases(&mut policy, env).map_err(|e| anyhow::anyhow!(e))?;
    Ok(policy)
}

fn ms_var(env: &BTreeMap<String, String>, name: &str, scale: i64) -> Result<Option<i64>, String> {
    match env.get(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .and_then(|n| n.checked_mul(scale))
            .filter(|ms| *ms <= 100 * 366 * 86_400_000)
            .map(Some)
            .ok_or_else(|| format!("{name}: {v:?} is not a whole number from 0 to 100 years")),
    }
}

/// Omi's `FAIR_USE_*` variables, so an Omi deployment can switch over. Caps apply to the
/// default tier: every plan whose caps equal the default plan's (Omi's unlimited tier had its own
/// constants). Booleans are true only for "true", as in Omi.
pub fn apply_omi_aliases(policy: &mut Policy, env: &BTreeMap<String, String>) -> Result<(), String> {
    let truthy = |v: &String| v.trim().eq_ignore_ascii_case("true");
    if let Some(v) = env.get("FAIR_USE_ENABLED") {
        policy.switches.enabled = truthy(v);
    }
    if let Some(v) = env.get("FAIR_USE_KILL_SWITCH") {
        policy.switches.kill_switch = truthy(v);
    }
    if let Some(v) = env.get("FAIR_USE_EXEMPT_UIDS") {
        policy.switches.exempt_uids.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
    }
    // The default tier is decided once, before any variable changes a cap.
    let default_caps = policy.plans.get(&policy.default_plan).map(|p| p.caps.clone()).unwrap_or_default();
    let tier: Vec<String> =
        policy.plans.iter().filter(|(_, p)| p.caps == default_caps).map(|(n, _)| n.clone()).collect();
    for (var, window) in [
        ("FAIR_USE_DAILY_SPEECH_MS", "daily"),
        ("FAIR_USE_3DAY_SPEECH_MS", "three_day"),
        ("FAIR_USE_WEEKLY_SPEECH_MS", "weekly"),
    ] {
        if let Some(ms) = ms_var(env, var, 1)? {
            for name in &tier {
                if let Some(plan) = policy.plans.get_mut(name) {
                    plan.caps.insert(window.to_owned(), DurationMs(ms));
                }
            }
        }
    }
    // Re-read after the caps changed so the comparison above used the original default tier.
    if let Some(ms) = ms_var(env, "FAIR_USE_CHECK_INTERVAL_SECONDS", 1000)? {
        policy.metering.check_interval = DurationMs(ms);
    }
    if let Some(ms) = ms_var(env, "FAIR_USE_CLASSIFIER_COOLDOWN_SECONDS", 1000)? {
        policy.classifier.cooldown = DurationMs(ms);
    }
    if let Some(v) = env.get("FAIR_USE_CLASSIFIER_ABUSE_SCORE_THRESHOLD") {
        policy.classifier.qualify_score = v
            .trim()
            .parse()
            .map_err(|_| format!("FAIR_USE_CLASSIFIER_ABUSE_SCORE_THRESHOLD: {v:?} is not a number"))?;
    }
    if let Some(ms) = ms_var(env, "FAIR_USE_RESTRICT_DAILY_DG_MS", 1)? {
        policy.stages.restrict.stt_daily_budget = (ms > 0).then_some(DurationMs(ms));
    }
    if let Some(s) = ms_var(env, "FAIR_USE_BUCKET_SECONDS", 1)?
        && s != 60
    {
        return Err(format!(
            "FAIR_USE_BUCKET_SECONDS={s}: fairuse meters in exact one-minute buckets; only 60 is accepted"
        ));
    }
    if let Some(ms) = ms_var(env, "FAIR_USE_REDIS_RETENTION_SECONDS", 1000)? {
        policy.metering.retention = DurationMs(ms);
    }
    if let Some(v) = env.get("MAX_DAILY_AUDIO_HOURS") {
        // Omi reads hours (and 0 disables the ceiling); fairuse's `ceiling.limit = 0` means the same.
        let hours = v.trim().parse::<f64>().ok().filter(|h| h.is_finite() && (0.0..=24.0 * 366.0).contains(h));
        let hours =
            hours.ok_or_else(|| format!("MAX_DAILY_AUDIO_HOURS: {v:?} is not a number of hours from 0 to 8784"))?;
        policy.ceiling.limit = DurationMs((hours * 3_600_000.0).round() as i64);
    }
    // FAIR_USE_CLASSIFIER_MODEL names the model of the openai backend; it does not change the policy.
    policy.validate().map_err(|e| format!("after applying FAIR_USE_* variables: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn env_overrides_the_file_and_unknown_keys_are_named() {
        let c = Config::load(None, &env(&[("FAIRUSE__SERVER__LISTEN", "0.0.0.0:9000")])).unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:9000");
        let e = Config::load(None, &env(&[("FAIRUSE__SERVER__LISTN", "x")])).unwrap_err().to_string();
        assert!(e.contains("listn"), "{e}");
        let e = Config::load(None, &env(&[("FAIRUSE__SERVER__LISTEN", "nowhere")])).unwrap_err().to_string();
        assert!(e.contains("server.listen"), "{e}");
    }

    #[test]
    fn secrets_come_from_the_spec_variables_and_are_not_printed() {
        let c =
            Config::load(None, &env(&[("FAIRUSE_SERVICE_KEYS", "s3cret"), ("FAIRUSE_ADMIN_KEYS", "ann:operator:k")]))
                .unwrap();
        assert_eq!(c.auth.service_keys, "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn omi_variables_set_the_default_tier_and_switches() {
        let e = env(&[
            ("FAIR_USE_ENABLED", "TRUE"),
            ("FAIR_USE_KILL_SWITCH", "true"),
            ("FAIR_USE_DAILY_SPEECH_MS", "3600000"),
            ("FAIR_USE_3DAY_SPEECH_MS", "7200000"),
            ("FAIR_USE_WEEKLY_SPEECH_MS", "10800000"),
            ("FAIR_USE_EXEMPT_UIDS", "a, b"),
            ("FAIR_USE_RESTRICT_DAILY_DG_MS", "600000"),
            ("FAIR_USE_CHECK_INTERVAL_SECONDS", "60"),
        ]);
        let p = load_policy(None, &e).unwrap();
        assert!(p.switches.enabled && p.switches.kill_switch);
        assert_eq!(p.plans["free"].caps["daily"], DurationMs::hours(1));
        assert_eq!(p.plans["paid"].caps["daily"], DurationMs::hours(1));
        assert_eq!(p.plans["free"].caps["three_day"], DurationMs::hours(2), "every variable reaches the tier");
        assert_eq!(p.plans["paid"].caps["weekly"], DurationMs::hours(3));
        assert_eq!(p.plans["unlimited"].caps["daily"], DurationMs::hours(4), "unlimited tier keeps its own caps");
        assert!(p.switches.exempt_uids.contains("b"));
        assert_eq!(p.stages.restrict.stt_daily_budget, Some(DurationMs::minutes(10)));
        assert_eq!(p.metering.check_interval, DurationMs::seconds(60));
        let off = load_policy(None, &env(&[("FAIR_USE_ENABLED", "yes")])).unwrap();
        assert!(!off.switches.enabled, "as in Omi, only \"true\" is true");
        let bad = load_policy(None, &env(&[("FAIR_USE_BUCKET_SECONDS", "30")])).unwrap_err().to_string();
        assert!(bad.contains("FAIR_USE_BUCKET_SECONDS"), "{bad}");
    }

    #[test]
    fn omi_restrict_budget_zero_removes_the_budget_and_the_shipped_texts_still_load() {
        let p = load_policy(None, &env(&[("FAIR_USE_RESTRICT_DAILY_DG_MS", "0")])).unwrap();
        assert_eq!(p.stages.restrict.stt_daily_budget, None);
        let p = load_policy(None, &env(&[("FAIR_USE_RESTRICT_DAILY_DG_MS", "1")])).unwrap();
        assert_eq!(p.stages.restrict.stt_daily_budget, Some(DurationMs(1)));
    }

    #[test]
    fn omi_max_daily_audio_hours_sets_the_ceiling_and_zero_removes_it() {
        let p = load_policy(None, &env(&[("MAX_DAILY_AUDIO_HOURS", "12")])).unwrap();
        assert_eq!(p.ceiling.limit, DurationMs::hours(12));
        let p = load_policy(None, &env(&[("MAX_DAILY_AUDIO_HOURS", "1.5")])).unwrap();
        assert_eq!(p.ceiling.limit, DurationMs::minutes(90));
        let p = load_policy(None, &env(&[("MAX_DAILY_AUDIO_HOURS", "0")])).unwrap();
        assert_eq!(p.ceiling_limit_ms(), None, "0 means no ceiling, as in Omi");
        for bad in ["-1", "lots", "1e30"] {
            let e = load_policy(None, &env(&[("MAX_DAILY_AUDIO_HOURS", bad)])).unwrap_err().to_string();
            assert!(e.contains("MAX_DAILY_AUDIO_HOURS"), "{e}");
        }
    }
}
