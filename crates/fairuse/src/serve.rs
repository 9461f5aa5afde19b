//! `fairuse serve`: builds the stores, the service, auth and workers from the configuration and
//! runs the HTTP server until SIGINT/SIGTERM, then drains in-flight requests and the outbox.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use fairuse_auth::Authenticator;
use fairuse_domain::classifier::{Classifier, HeuristicClassifier};
use fairuse_domain::policy::{ClassifierBackend, Policy};
use fairuse_domain::time::Clock;
use fairuse_server::clock::SystemClock;
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, Service, Stores};
use fairuse_server::workers;
use fairuse_store_embedded::EmbeddedStore;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use fairuse_store_postgres::PostgresStore;
use fairuse_store_redis::RedisHotStore;

use crate::config::{Config, StoreSection, apply_omi_aliases, load_policy};

/// Command-line overrides of the configuration.
#[derive(Debug, Default, Clone)]
pub struct ServeArgs {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// The Prometheus recorder is process-global: install it once (tests start several servers).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
                .ok()?
                .install_recorder()
                .ok()
                .inspect(|_| crate::telemetry::register())
        })
        .clone()
}

pub fn env_map() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// The composition root, step by step. The order is the start-up contract: logging and the metrics
/// recorder before anything records, the listener bound before the stores open (a busy port fails
/// fast), and every worker stopped and the outbox drained after the last request.
pub async fn run(args: ServeArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let mut config = load_config(args, &env)?;
    init_logging(&config.server.log_format);
    // Before any worker starts: a metric recorded before the recorder is installed is lost (the
    // webhook worker's first backlog count was).
    let metrics = metrics_handle();
    let first_run = crate::first_run::apply(&mut config)?;
    let policy_path = config.policy_path();
    let policy = load_policy(policy_path.as_deref(), &env)?;
    let listener = bind_listener(&config).await?;
    let built = build_stores(&config).await?;
    let auth = build_auth(&config)?;
    let service = build_service(&config, &built, policy, &env)?;
    let workers = spawn_workers(&config, &service, &built, policy_path, &env)?;
    let state = AppState {
        service,
        auth: Arc::new(auth),
        settings: http_settings(&config),
        metrics,
        ready: built.ready.clone(),
    };
    let app = with_gateway(router(state), &config)?;
    announce(&listener, &first_run)?;
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("http server")?;
    workers.drain(dur(config.server.shutdown_grace)).await;
    tracing::info!("stopped");
    Ok(())
}

/// The configuration file and environment, with the command line's flags on top.
fn load_config(args: ServeArgs, env: &BTreeMap<String, String>) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref(), env)?;
    if let Some(l) = args.listen {
        config.server.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.server.data_dir = d;
    }
    Ok(config)
}

async fn bind_listener(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let listen: SocketAddr = config.server.listen.parse().context("server.listen")?;
    tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))
}

/// The authenticator of the `auth` section. `Authenticator` reads environment-variable names,
/// so the typed section is turned back into them; an unset mode is warned about, not refused.
fn build_auth(config: &Config) -> anyhow::Result<Authenticator> {
    let auth_env: HashMap<String, String> = [
        ("FAIRUSE_SERVICE_KEYS", &config.auth.service_keys),
        ("FAIRUSE_ADMIN_KEYS", &config.auth.admin_keys),
        ("FAIRUSE_JWT_HS256_SECRET", &config.auth.jwt_hs256_secret),
        ("FAIRUSE_FIREBASE_PROJECT_ID", &config.auth.firebase_project_id),
        ("FAIRUSE_OIDC_JWKS_URL", &config.auth.oidc_jwks_url),
        ("FAIRUSE_OIDC_ISSUER", &config.auth.oidc_issuer),
        ("FAIRUSE_OIDC_AUDIENCE", &config.auth.oidc_audience),
        ("FAIRUSE_GOOGLE_JWKS_URL", &config.auth.google_jwks_url),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect();
    let auth = Authenticator::from_env_map(&auth_env).context("auth configuration")?;
    for (mode, configured) in
        [("service", auth.service.is_some()), ("admin", auth.admin.is_some()), ("user", auth.users.is_some())]
    {
        if !configured {
            tracing::warn!(mode, "auth mode not configured: its routes answer 503 until it is");
        }
    }
    Ok(auth)
}

/// The service over the chosen stores, with the classifier the policy names and the system clock.
fn build_service(
    config: &Config,
    built: &BuiltStores,
    policy: Policy,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Arc<Service>> {
    let classifier = build_classifier(&policy.classifier.backend, env)?;
    Ok(Arc::new(Service::new(
        built.stores.clone(),
        policy,
        Arc::new(SystemClock),
        classifier,
        Notifications { enabled: webhook_enabled(config) },
    )))
}

fn webhook_enabled(config: &Config) -> bool {
    !config.webhook.url.is_empty()
}

/// The background work of a running server, and how to stop it.
struct Workers {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Drained first on shutdown: it holds the stage changes not yet sent.
    deliverer: Option<Arc<fairuse_webhook::WebhookDeliverer>>,
}

impl Workers {
    /// Stops every worker, gives the outbox up to `grace` to drain, then waits at most `grace`
    /// more for the workers to finish.
    async fn drain(self, grace: Duration) {
        tracing::info!("draining workers and the outbox");
        self.shutdown.send(true).ok();
        if let Some(d) = self.deliverer {
            d.drain(grace).await;
        }
        let _ = tokio::time::timeout(grace, async {
            for t in self.tasks {
                t.await.ok();
            }
        })
        .await;
    }
}

/// The classifier, timer and redaction workers; the policy reload when the policy is a file;
/// pruning when the embedded store holds usage; the webhook deliverer when a URL is set.
fn spawn_workers(
    config: &Config,
    service: &Arc<Service>,
    built: &BuiltStores,
    policy_path: Option<PathBuf>,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Workers> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = vec![
        workers::spawn_classifier_worker(service.clone(), shutdown_rx.clone()),
        workers::spawn_timer_worker(service.clone(), dur(config.workers.timer_interval), shutdown_rx.clone()),
        workers::spawn_redaction_worker(service.clone(), dur(config.workers.redaction_interval), shutdown_rx.clone()),
    ];
    if let Some(path) = policy_path {
        let env_for_reload = env.clone();
        tasks.push(workers::spawn_policy_reload(
            service.clone(),
            path,
            Arc::new(move |p| apply_omi_aliases(p, &env_for_reload)),
            dur(config.workers.policy_reload_interval),
            shutdown_rx.clone(),
        ));
    }
    if let Some(store) = built.embedded.clone() {
        tasks.push(spawn_prune_worker(service.clone(), store, dur(config.workers.prune_interval), shutdown_rx.clone()));
    }
    let deliverer = if webhook_enabled(config) {
        let d = build_deliverer(config, built)?;
        tasks.push(tokio::spawn(d.clone().run(shutdown_rx, Duration::from_secs(1))));
        Some(d)
    } else {
        tracing::info!("no webhook URL configured: stage changes are recorded, not sent");
        None
    };
    Ok(Workers { shutdown, tasks, deliverer })
}

/// Drops the embedded store's buckets older than the policy's retention, every `every`.
fn spawn_prune_worker(
    service: Arc<Service>,
    store: Arc<EmbeddedStore>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let retention = service.policy().metering.retention.ms();
            if let Err(e) = store.prune(service.now(), retention).await {
                tracing::warn!(error = %e, "pruning old buckets failed");
            }
            tokio::select! { _ = tokio::time::sleep(every) => {}, _ = shutdown.changed() => break }
        }
    })
}

fn build_deliverer(config: &Config, built: &BuiltStores) -> anyhow::Result<Arc<fairuse_webhook::WebhookDeliverer>> {
    let mut cfg =
        fairuse_webhook::WebhookConfig::new(config.webhook.url.clone(), config.webhook.secret.clone().into_bytes());
    cfg.timeout = dur(config.webhook.timeout);
    cfg.base_backoff = dur(config.webhook.base_backoff);
    cfg.max_backoff = dur(config.webhook.max_backoff);
    cfg.validate().context("webhook configuration")?;
    Ok(Arc::new(fairuse_webhook::WebhookDeliverer::new(cfg, built.stores.outbox.clone(), Arc::new(SystemClock))?))
}

fn http_settings(config: &Config) -> HttpSettings {
    HttpSettings {
        case_lookups_per_minute: config.server.case_lookups_per_minute,
        appeals_per_day: config.server.appeals_per_day.max(1),
        trusted_proxy_header: Some(config.server.trusted_proxy_header.to_ascii_lowercase()).filter(|h| !h.is_empty()),
    }
}

/// Adds the streaming gateway on `/v1/listen` when an upstream STT URL is configured.
fn with_gateway(app: axum::Router, config: &Config) -> anyhow::Result<axum::Router> {
    let g = &config.gateway;
    if g.upstream_url.is_empty() {
        return Ok(app);
    }
    let key = Some(g.upstream_api_key.as_str()).filter(|k| !k.is_empty());
    let mut upstream =
        fairuse_server::gateway::Upstream::from_config(&g.upstream_url, key).map_err(anyhow::Error::msg)?;
    if !g.upstream_ca_file.is_empty() {
        upstream = upstream.with_extra_roots(std::path::Path::new(&g.upstream_ca_file)).map_err(anyhow::Error::msg)?;
    }
    let settings = fairuse_server::gateway::GatewaySettings {
        upstream,
        flush_interval: dur(g.flush_interval),
        max_streams_per_user: g.max_streams_per_user.max(1) as usize,
        idle_timeout: dur(g.idle_timeout).max(std::time::Duration::from_secs(15)),
        ..Default::default()
    };
    let gateway = fairuse_server::gateway::Gateway::new(settings, Arc::new(crate::speech::VadMeters::new()?));
    tracing::info!(upstream = ?gateway_upstream_label(&g.upstream_url), "streaming gateway enabled on /v1/listen");
    Ok(app.layer(axum::Extension(Arc::new(gateway))))
}

/// Logs the address and prints it on stdout (scripts and the tests read the `fairuse listening
/// on` line), followed by what a first run generated.
fn announce(listener: &tokio::net::TcpListener, first_run: &crate::first_run::FirstRun) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!(%local, "fairuse listening");
    println!("fairuse listening on http://{local}");
    if let Some(text) = crate::first_run::announce(first_run, &format!("http://{local}")) {
        println!("{text}");
    }
    Ok(())
}

/// The classifier the policy names: `heuristic` (offline, the default), `openai` (any
/// OpenAI-compatible endpoint: FAIRUSE_LLM_BASE_URL, FAIRUSE_LLM_API_KEY, FAIRUSE_LLM_MODEL or
/// Omi's FAIR_USE_CLASSIFIER_MODEL), or `ensemble` (the heuristic settles clear cases, the model
/// the doubtful ones). The backend is read at start-up; a policy reload does not switch it.
pub fn build_classifier(
    backend: &ClassifierBackend,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Arc<dyn Classifier>> {
    let heuristic: Arc<dyn Classifier> = Arc::new(HeuristicClassifier);
    let model = || -> anyhow::Result<Arc<dyn Classifier>> {
        let cfg = fairuse_llm::LlmConfig::from_lookup(|k| env.get(k).cloned())
            .context("classifier.backend needs the LLM endpoint")?;
        tracing::info!(model = %cfg.model, "classifier: openai-compatible endpoint");
        Ok(Arc::new(fairuse_llm::OpenAiClassifier::new(cfg).context("building the LLM client")?))
    };
    Ok(match backend {
        ClassifierBackend::Heuristic => heuristic,
        ClassifierBackend::Openai => model()?,
        ClassifierBackend::Ensemble => Arc::new(fairuse_llm::EnsembleClassifier::new(heuristic, model()?)),
        ClassifierBackend::Scripted => {
            anyhow::bail!("policy classifier.backend = \"scripted\" is for `fairuse simulate` only")
        }
    })
}

/// The readiness probe's question: does every store in use answer?
type Ready = Arc<dyn Fn() -> fairuse_server::http::futures_ready::ReadyFuture + Send + Sync>;

/// The stores chosen by the configuration, and how to ask whether they answer.
pub struct BuiltStores {
    pub stores: Stores,
    /// The embedded store when any role lives in the data directory (it needs pruning).
    pub embedded: Option<Arc<EmbeddedStore>>,
    pub ready: Ready,
}

/// Hot roles on Redis when `store.redis_url` is set, durable roles on PostgreSQL when
/// `store.database_url` is set, the embedded store for whatever is left.
pub async fn build_stores(config: &Config) -> anyhow::Result<BuiltStores> {
    let s = &config.store;
    let needs_embedded = s.redis_url.is_empty() || s.database_url.is_empty();
    if s.redis_url.is_empty() != s.database_url.is_empty() {
        tracing::warn!(
            "only one of FAIRUSE_REDIS_URL and FAIRUSE_DATABASE_URL is set: the other role stays in this process's data directory, so run one replica only"
        );
    }
    let embedded = if needs_embedded { Some(open_embedded(config).await?) } else { None };
    let redis = if s.redis_url.is_empty() { None } else { Some(connect_redis(s).await?) };
    let postgres = if s.database_url.is_empty() { None } else { Some(connect_postgres(s).await?) };
    let stores = assign_roles(&embedded, &redis, &postgres)?;
    let ready = readiness(embedded.clone(), redis, postgres);
    Ok(BuiltStores { stores, embedded, ready })
}

async fn open_embedded(config: &Config) -> anyhow::Result<Arc<EmbeddedStore>> {
    let store = EmbeddedStore::open(&config.server.data_dir)
        .await
        .with_context(|| format!("opening the data directory {}", config.server.data_dir.display()))?;
    tracing::info!(data_dir = %config.server.data_dir.display(), db = %store.db_path().display(), "embedded store open");
    Ok(Arc::new(store))
}

async fn connect_redis(s: &StoreSection) -> anyhow::Result<Arc<RedisHotStore>> {
    let opts = fairuse_store_redis::RedisOptions {
        key_prefix: s.redis_prefix.clone(),
        command_timeout: dur(s.redis_timeout),
        connect_timeout: Duration::from_secs(5),
    };
    let store = RedisHotStore::connect(&s.redis_url, opts).await.context("connecting to Redis")?;
    check_meter_layout(&store, &s.redis_prefix).await?;
    tracing::info!(prefix = %s.redis_prefix, "redis hot store connected");
    Ok(Arc::new(store))
}

async fn connect_postgres(s: &StoreSection) -> anyhow::Result<Arc<PostgresStore>> {
    let opts = fairuse_store_postgres::PgOptions {
        schema: s.database_schema.clone(),
        max_connections: s.database_max_connections,
        acquire_timeout: dur(s.database_timeout),
        statement_timeout: dur(s.database_timeout),
    };
    let store = PostgresStore::connect(&s.database_url, opts).await.context("connecting to PostgreSQL")?;
    // An empty schema (nothing recorded: a fresh database) is migrated at start whatever
    // migrate_on_start says: there is nothing to upgrade or roll back, and migrations take an
    // advisory lock, so replicas starting together do not race. Upgrades of a schema that
    // holds data stay the explicit step (`fairuse migrate`, or migrate_on_start).
    let fresh = store.schema_version().await.context("reading the schema version")?.is_none();
    if s.migrate_on_start || fresh {
        if fresh {
            tracing::info!(schema = %s.database_schema, "empty PostgreSQL schema: creating it");
        }
        store.migrate().await.context("migrating PostgreSQL")?;
    }
    let version = store.schema_version().await.context("reading the schema version")?;
    if version != Some(fairuse_store_postgres::LATEST_VERSION) {
        anyhow::bail!(
            "PostgreSQL schema {} is at version {version:?}, this build needs {}: run `fairuse migrate` (or set store.migrate_on_start = true)",
            s.database_schema,
            fairuse_store_postgres::LATEST_VERSION
        );
    }
    tracing::info!(schema = %s.database_schema, "postgres durable store connected");
    Ok(Arc::new(store))
}

/// Which backend serves each role. Redis takes the hot roles, PostgreSQL the durable ones (the
/// print index included: it is durable data, kept for the retention and shared by replicas); the
/// embedded store, when open, serves whatever is left.
fn assign_roles(
    embedded: &Option<Arc<EmbeddedStore>>,
    redis: &Option<Arc<RedisHotStore>>,
    postgres: &Option<Arc<PostgresStore>>,
) -> anyhow::Result<Stores> {
    let mut stores = match embedded {
        Some(e) => Stores::single(e.clone()),
        None => {
            // Both distributed: every role is assigned below.
            let r = redis.clone().context("redis")?;
            let p = postgres.clone().context("postgres")?;
            Stores {
                meter: r.clone(),
                budget: r.clone(),
                locks: r.clone(),
                rates: r,
                durable: p.clone(),
                conversations: p.clone(),
                outbox: p.clone(),
                jobs: p.clone(),
                prints: p,
            }
        }
    };
    if let Some(r) = redis {
        stores.meter = r.clone();
        stores.budget = r.clone();
        stores.locks = r.clone();
        stores.rates = r.clone();
    }
    if let Some(p) = postgres {
        stores.durable = p.clone();
        stores.conversations = p.clone();
        stores.outbox = p.clone();
        stores.jobs = p.clone();
        stores.prints = p.clone();
    }
    Ok(stores)
}

/// Pings every store in use, in order; the first that does not answer is the reason.
fn readiness(
    embedded: Option<Arc<EmbeddedStore>>,
    redis: Option<Arc<RedisHotStore>>,
    postgres: Option<Arc<PostgresStore>>,
) -> Ready {
    Arc::new(move || {
        let (e, r, p) = (embedded.clone(), redis.clone(), postgres.clone());
        Box::pin(async move {
            if let Some(e) = e {
                e.ping().await.map_err(|err| format!("embedded store: {err}"))?;
            }
            if let Some(r) = r {
                r.ping().await.map_err(|err| format!("redis: {err}"))?;
            }
            if let Some(p) = p {
                p.ping().await.map_err(|err| format!("postgres: {err}"))?;
            }
            Ok(())
        })
    })
}

/// Refuses to serve from a Redis whose usage meters are not all in the layout this build reads:
/// the usage in old-layout (`fu1`) meters would not count, so every window of those users would
/// start from zero. Not converted here even with `store.migrate_on_start`: replicas of the old
/// build may still be recording during a rolling start, and their usage would land in old keys
/// after the conversion; the upgrade is the explicit step that runs once they are stopped.
async fn check_meter_layout(store: &fairuse_store_redis::RedisHotStore, prefix: &str) -> anyhow::Result<()> {
    use fairuse_store_redis::MeterLayoutCheck;
    match store.check_meter_layout().await.context("checking the Redis meter layout")? {
        MeterLayoutCheck::Current => Ok(()),
        MeterLayoutCheck::OldMeters { example } => anyhow::bail!(
            "Redis (prefix {prefix}) holds usage meters in the old layout {} (user {example}, and maybe others): \
             this build would not count that usage. Stop the replicas of the old version, run `fairuse migrate` \
             (it converts every meter and keeps all usage), then start this version",
            fairuse_store_redis::LAYOUT_VERSION
        ),
        MeterLayoutCheck::Unknown { layout } => anyhow::bail!(
            "Redis (prefix {prefix}) meters are in layout {layout:?}, written by a newer fairuse; this build reads {}",
            fairuse_store_redis::METER_LAYOUT_VERSION
        ),
    }
}

/// `fairuse migrate`: applies PostgreSQL migrations (the embedded store migrates itself on open)
/// and, when the hot store is Redis, converts old-layout usage meters (`fu1`) into the current
/// layout, reading the policy for its windows and retention. Returns what was done, a line each.
pub async fn migrate(config: &Config, env: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let mut done = vec![migrate_durable(config).await?];
    if !config.store.redis_url.is_empty() {
        let policy = load_policy(config.policy_path().as_deref(), env)?;
        let opts = fairuse_store_redis::RedisOptions {
            key_prefix: config.store.redis_prefix.clone(),
            // A user's conversion is one script over up to the retention's minutes of five
            // hashes: allow it more than a report's command timeout.
            command_timeout: dur(config.store.redis_timeout).max(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(5),
        };
        let store = fairuse_store_redis::RedisHotStore::connect(&config.store.redis_url, opts)
            .await
            .context("connecting to Redis")?;
        let migrated = store
            .migrate_meter_layout(&policy, SystemClock.now())
            .await
            .context("converting the Redis usage meters to the current layout")?;
        tracing::info!(?migrated, "redis meter layout migrated");
        done.push(migrated.to_string());
    }
    Ok(done.join("\n"))
}

async fn migrate_durable(config: &Config) -> anyhow::Result<String> {
    if config.store.database_url.is_empty() {
        let store = EmbeddedStore::open(&config.server.data_dir).await.context("opening the data directory")?;
        store.close().await;
        return Ok(format!("embedded store at {} is up to date", config.server.data_dir.display()));
    }
    let opts = fairuse_store_postgres::PgOptions {
        schema: config.store.database_schema.clone(),
        ..fairuse_store_postgres::PgOptions::default()
    };
    let store = fairuse_store_postgres::PostgresStore::connect(&config.store.database_url, opts)
        .await
        .context("connecting to PostgreSQL")?;
    store.migrate().await.context("migrating PostgreSQL")?;
    let version = store.schema_version().await?.unwrap_or_default();
    store.close().await;
    Ok(format!("PostgreSQL schema {} is at version {version}", config.store.database_schema))
}

/// The upstream for the log: scheme and host only (a URL may carry credentials).
fn gateway_upstream_label(url: &str) -> String {
    url.split('?').next().unwrap_or_default().rsplit('@').next().unwrap_or_default().to_owned()
}

fn dur(d: fairuse_domain::time::DurationMs) -> Duration {
    Duration::from_millis(d.ms().max(1) as u64)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received");
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FAIRUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second call (tests) finds a subscriber already set; that is fine.
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data pointer of an `Arc`, whatever trait object it is seen through.
    fn addr<T: ?Sized>(a: &Arc<T>) -> *const () {
        Arc::as_ptr(a).cast::<()>()
    }

    /// PostgreSQL without Redis (one replica): every durable role, the print index included, is in
    /// PostgreSQL; only the hot roles stay in the data directory.
    #[tokio::test]
    async fn with_postgresql_alone_every_durable_role_and_the_print_index_are_in_postgresql() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let schema = format!("fu_test_roles_{}_{nanos}", std::process::id());
        let url = "postgres://postgres@127.0.0.1:5432/test";
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_owned();
        config.store.database_url = url.into();
        config.store.database_schema = schema.clone();
        let built = build_stores(&config).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url}; start it with: \
                 pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start ({e:#})"
            )
        });
        let (s, embedded) = (&built.stores, built.embedded.as_ref().expect("hot roles stay embedded"));
        let durable = addr(&s.durable);
        assert_ne!(durable, addr(embedded), "the durable store is PostgreSQL");
        for (role, at) in [
            ("conversations", addr(&s.conversations)),
            ("outbox", addr(&s.outbox)),
            ("jobs", addr(&s.jobs)),
            ("prints", addr(&s.prints)),
        ] {
            assert_eq!(at, durable, "{role} is in PostgreSQL");
        }
        for (role, at) in [("meter", addr(&s.meter)), ("budget", addr(&s.budget)), ("locks", addr(&s.locks))] {
            assert_eq!(at, addr(embedded), "{role} stays embedded");
        }
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
            // `schema` is letters, digits and underscores only.
            let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await;
        }
    }
}
