//! The STT vendor connection: where audio goes ([`Upstream`]), its TLS trust, and connecting,
//! sending to and reading from the vendor's WebSocket, each with a timeout.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Where audio goes.
#[derive(Clone)]
pub enum Upstream {
    /// Meter only: nothing is forwarded (`FAIRUSE_UPSTREAM_STT_URL=none`).
    None,
    /// A Deepgram-compatible live endpoint (`ws://` or `wss://`); the key is sent as
    /// `Authorization: Token <key>` and never reaches the client. A `wss://` endpoint is verified
    /// against the system's root certificates (plus any added with [`Upstream::with_extra_roots`]).
    Url { url: String, api_key: Option<String>, tls: Option<Arc<rustls::ClientConfig>> },
}

impl std::fmt::Debug for Upstream {
    // The key is a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::None => f.write_str("Upstream::None"),
            Upstream::Url { url, api_key, tls } => f
                .debug_struct("Upstream::Url")
                .field("url", url)
                .field("api_key", &api_key.as_ref().map(|_| "<redacted>"))
                .field("tls", &tls.is_some())
                .finish(),
        }
    }
}

impl Upstream {
    /// From `FAIRUSE_UPSTREAM_STT_URL` and `FAIRUSE_UPSTREAM_STT_API_KEY`: `none` (any case)
    /// meters only; anything else must be a `ws://` or `wss://` URL. For `wss://` the system's
    /// root certificates are loaded here, once.
    pub fn from_config(url: &str, api_key: Option<&str>) -> Result<Upstream, String> {
        let url = url.trim();
        if url.eq_ignore_ascii_case("none") {
            return Ok(Upstream::None);
        }
        let tls = if url.starts_with("wss://") {
            Some(Arc::new(tls_config(Vec::new())?))
        } else if url.starts_with("ws://") {
            None
        } else {
            return Err(format!("FAIRUSE_UPSTREAM_STT_URL must be a ws:// or wss:// URL or `none`, got {url:?}"));
        };
        let api_key = api_key.map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned);
        Ok(Upstream::Url { url: url.to_owned(), api_key, tls })
    }

    /// Also trusts the certificates of the PEM file at `path` for a `wss://` upstream (a private
    /// CA, or a test server's own certificate). Refused for `ws://` and `none`, where it would
    /// do nothing.
    pub fn with_extra_roots(self, path: &std::path::Path) -> Result<Upstream, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let Upstream::Url { url, api_key, tls: Some(_) } = self else {
            return Err("gateway.upstream_ca_file is set but the upstream is not a wss:// URL".into());
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("gateway.upstream_ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("gateway.upstream_ca_file {}: no certificate in the file", path.display()));
        }
        Ok(Upstream::Url { url, api_key, tls: Some(Arc::new(tls_config(certs)?)) })
    }
}

/// A rustls client configuration trusting the system's roots and `extra`.
fn tls_config(extra: Vec<rustls::pki_types::CertificateDer<'static>>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "a system root certificate could not be loaded");
    }
    let (_, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "system root certificates rustls could not parse were skipped");
    }
    for cert in extra {
        roots.add(cert).map_err(|e| format!("gateway.upstream_ca_file: unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        // Not fatal here: gateway.upstream_ca_file may be about to add the one root needed.
        tracing::warn!(
            "no system root certificates: a wss:// upstream can only be verified with gateway.upstream_ca_file \
             (or install the system's CA certificates; Debian: ca-certificates)"
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Read buffer of each WebSocket, client and upstream (see `listen`).
pub(super) const READ_BUFFER_BYTES: usize = 8 * 1024;

pub(super) type UpstreamSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(super) async fn connect_upstream(
    url: &str,
    api_key: Option<&str>,
    tls: Option<Arc<rustls::ClientConfig>>,
    query: &str,
    timeout: Duration,
) -> Result<UpstreamSocket, String> {
    let full = if query.is_empty() {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&{query}")
    } else {
        format!("{url}?{query}")
    };
    let mut request = full.as_str().into_client_request().map_err(|e| format!("upstream URL is not valid: {e}"))?;
    if let Some(key) = api_key {
        let value = tungstenite::http::HeaderValue::from_str(&format!("Token {key}"))
            .map_err(|_| "upstream API key is not a valid header value".to_owned())?;
        request.headers_mut().insert("authorization", value);
    }
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let config = tungstenite::protocol::WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let connect = tokio_tungstenite::connect_async_tls_with_config(request, Some(config), false, connector);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(e)) => Err(format!("could not connect to the upstream: {e}")),
        Err(_) => Err(format!("the upstream did not answer within {} s", timeout.as_secs())),
    }
}

/// Forwarding stopped: ask the upstream for its last results; the stream goes on metering.
pub(super) async fn stop_upstream(upstream: &mut Option<UpstreamSocket>, timeout: Duration) {
    if let Some(up) = upstream.as_mut() {
        let msg = tungstenite::Message::Text(r#"{"type":"CloseStream"}"#.into());
        let _ = send_upstream(up, msg, timeout).await;
    }
}

pub(super) async fn next_upstream(
    upstream: &mut Option<UpstreamSocket>,
) -> Option<Result<tungstenite::Message, tungstenite::Error>> {
    match upstream.as_mut() {
        Some(up) => up.next().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn send_upstream(
    up: &mut UpstreamSocket,
    msg: tungstenite::Message,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, up.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no progress within {} s", timeout.as_secs())),
    }
}
