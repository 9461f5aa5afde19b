//! `fairuse serve`: builds the stores, the service, auth and workers from the configuration and
//! runs the HTTP server until SIGINT/SIGTERM, then drains in-flight requests and the outbox.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use fairuse_auth::Authenticator;
use fairuse_domain::classifier::HeuristicClassifier;
use fairuse_domain::policy::ClassifierBackend;
use fairuse_server::clock::SystemClock;
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, PolicyCell, Service, Stores};
use fairuse_server::workers;
use fairuse_store_embedded::EmbeddedStore;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::config::{Config, apply_omi_aliases, load_policy};

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
        })
        .clone()
}

pub fn env_map() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

pub async fn run(args: ServeArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref(), &env)?;
    if let Some(l) = args.listen {
        config.server.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.server.data_dir = d;
    }
    init_logging(&config.server.log_format);
    let policy_path = config.policy_path();
    let policy = load_policy(policy_path.as_deref(), &env)?;
    if matches!(policy.classifier.backend, ClassifierBackend::Scripted) {
        anyhow::bail!("policy classifier.backend = \"scripted\" is for `fairuse simulate` only");
    }
    let listen: SocketAddr = config.server.listen.parse().context("server.listen")?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let store = Arc::new(
        EmbeddedStore::open(&config.server.data_dir)
            .await
            .with_context(|| format!("opening the data directory {}", config.server.data_dir.display()))?,
    );
    tracing::info!(data_dir = %config.server.data_dir.display(), db = %store.db_path().display(), "embedded store open");
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
    let webhook_enabled = !config.webhook.url.is_empty();
    let service = Arc::new(Service {
        stores: Stores::single(store.clone()),
        policy: PolicyCell::from_pointee(policy),
        clock: Arc::new(SystemClock),
        classifier: Arc::new(HeuristicClassifier),
        notifications: Notifications { enabled: webhook_enabled },
        jobs_ready: Default::default(),
        recent_evaluations: Default::default(),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
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
    {
        let store = store.clone();
        let service = service.clone();
        let every = dur(config.workers.prune_interval);
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let retention = service.policy().metering.retention.ms();
                if let Err(e) = store.prune(service.now(), retention).await {
                    tracing::warn!(error = %e, "pruning old buckets failed");
                }
                tokio::select! { _ = tokio::time::sleep(every) => {}, _ = rx.changed() => break }
            }
        }));
    }
    let deliverer = if webhook_enabled {
        let mut cfg =
            fairuse_webhook::WebhookConfig::new(config.webhook.url.clone(), config.webhook.secret.clone().into_bytes());
        cfg.timeout = dur(config.webhook.timeout);
        cfg.base_backoff = dur(config.webhook.base_backoff);
        cfg.max_backoff = dur(config.webhook.max_backoff);
        cfg.validate().context("webhook configuration")?;
        let d = Arc::new(fairuse_webhook::WebhookDeliverer::new(cfg, store.clone(), Arc::new(SystemClock))?);
        tasks.push(tokio::spawn(d.clone().run(shutdown_rx.clone(), Duration::from_secs(1))));
        Some(d)
    } else {
        tracing::info!("no webhook URL configured: stage changes are recorded, not sent");
        None
    };
    let ready_store = store.clone();
    let state = AppState {
        service: service.clone(),
        auth: Arc::new(auth),
        settings: HttpSettings {
            case_lookups_per_minute: config.server.case_lookups_per_minute,
            trusted_proxy_header: Some(config.server.trusted_proxy_header.to_ascii_lowercase())
                .filter(|h| !h.is_empty()),
        },
        metrics: metrics_handle(),
        ready: Arc::new(move || {
            let s = ready_store.clone();
            Box::pin(async move { s.ping().await.map_err(|e| e.to_string()) })
        }),
    };
    let app = router(state);
    let local = listener.local_addr()?;
    tracing::info!(%local, "fairuse listening");
    println!("fairuse listening on http://{local}");
    let grace = dur(config.server.shutdown_grace);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("http server")?;
    tracing::info!("draining workers and the outbox");
    shutdown_tx.send(true).ok();
    if let Some(d) = deliverer {
        d.drain(grace).await;
    }
    let _ = tokio::time::timeout(grace, async {
        for t in tasks {
            t.await.ok();
        }
    })
    .await;
    tracing::info!("stopped");
    Ok(())
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
