//! The connection: standalone (a `ConnectionManager`, which reconnects by itself) or Cluster
//! (`cluster_async::ClusterConnection`), with a timeout around every command and the
//! EVALSHA-then-EVAL script protocol. Every command the store sends goes through [`Connection::query`],
//! which counts it, so "one round trip per record-and-check" can be checked and not just claimed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fairuse_domain::error::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue};

use crate::error::{Effect, Failure, is_noscript, store_error};
use crate::scripts::LuaScript;

/// Reconnect attempts of the standalone `ConnectionManager` after a lost connection. Few and
/// quick, so that while Redis is down a call fails fast with "connection refused" (certain)
/// instead of waiting out its timeout (which would leave a write's outcome unknown).
const STANDALONE_RECONNECT_RETRIES: usize = 2;
const STANDALONE_RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);

/// Where the URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `redis://host:port[/db]`, passed to redis-rs as it is.
    Standalone(String),
    /// One `redis://[auth@]host:port` per seed node of `redis+cluster://[auth@]h1:p1,h2:p2,...`.
    Cluster(Vec<String>),
}

/// The URL without its password, for messages and logs.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://***@{}", &url[..scheme_end], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

pub(crate) fn parse_url(url: &str) -> Result<Target, StoreError> {
    let invalid = |why: &str| {
        StoreError::Invalid(format!(
            "redis url {}: {why}; expected redis://host:port[/db] or redis+cluster://host1:port,host2:port,...",
            redacted(url)
        ))
    };
    if let Some(rest) = url.strip_prefix("redis+cluster://") {
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (Some(auth), hosts),
            None => (None, rest),
        };
        // Cluster mode has only database 0: accept a trailing "/" or "/0" and nothing else.
        let hosts = rest.strip_suffix("/0").or_else(|| rest.strip_suffix('/')).unwrap_or(rest);
        if hosts.contains('/') || hosts.contains('?') {
            return Err(invalid("a cluster url takes no database or options"));
        }
        let mut nodes = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            let valid_port = host.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !valid_port {
                return Err(invalid(&format!("{host:?} is not host:port")));
            }
            nodes.push(match auth {
                Some(auth) => format!("redis://{auth}@{host}"),
                None => format!("redis://{host}"),
            });
        }
        return Ok(Target::Cluster(nodes));
    }
    if url.starts_with("redis://") {
        return Ok(Target::Standalone(url.to_owned()));
    }
    Err(invalid("unsupported scheme"))
}

/// One server a `SCAN` runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanTarget {
    /// The standalone server.
    Server,
    /// A Cluster master, by the address the cluster announces.
    Node { host: String, port: u16 },
}

impl std::fmt::Display for ScanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanTarget::Server => f.write_str("the server"),
            ScanTarget::Node { host, port } => write!(f, "master {host}:{port}"),
        }
    }
}

/// The masters of a `CLUSTER NODES` reply that serve slots: lines of
/// `<id> <host:port@cport[,hostname]> <flags> <master id> ... <slots>`; failed masters and masters
/// without slots are skipped (a failed master's slots are served by its promoted replica).
fn cluster_masters(text: &str) -> Vec<ScanTarget> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else { continue };
        let flags: Vec<&str> = flags.split(',').collect();
        if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail") || *f == "noaddr") {
            continue;
        }
        if fields.len() < 9 {
            continue; // no slots
        }
        let hostport = addr.split(['@', ',']).next().unwrap_or_default();
        if let Some((host, port)) = hostport.rsplit_once(':')
            && let Ok(port) = port.parse::<u16>()
            && !host.is_empty()
        {
            out.push(ScanTarget::Node { host: host.to_owned(), port });
        }
    }
    out
}

enum Backend {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

pub(crate) struct Connection {
    backend: Backend,
    command_timeout: Duration,
    sent: AtomicU64,
}

impl Connection {
    pub(crate) async fn open(
        url: &str,
        command_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let connecting = |failure| store_error(&format!("connect to {}", redacted(url)), Effect::Read, failure);
        let backend = match parse_url(url)? {
            Target::Standalone(url) => {
                let client = redis::Client::open(url.as_str()).map_err(|e| {
                    StoreError::Invalid(format!("redis url {}: {}", redacted(&url), e.detail().unwrap_or("invalid")))
                })?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(command_timeout))
                    .set_number_of_retries(STANDALONE_RECONNECT_RETRIES)
                    .set_min_delay(STANDALONE_RECONNECT_MIN_DELAY);
                let manager = tokio::time::timeout(connect_timeout, ConnectionManager::new_with_config(client, config))
                    .await
                    .map_err(|_| connecting(Failure::TimedOut(connect_timeout)))?
                    .map_err(|e| connecting(Failure::Redis(e)))?;
                Backend::Standalone(manager)
            }
            Target::Cluster(nodes) => {
                // No automatic retries: after a dropped connection or a timeout the client would
                // send the same script again, and a batch of deltas would count twice. Refusals
                // (MOVED, TRYAGAIN...) come back as certain failures instead, and the client
                // refreshes its slot map so the next call goes to the right node.
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(connect_timeout)
                    .response_timeout(command_timeout)
                    .retries(0)
                    .build()
                    .map_err(|e| StoreError::Invalid(format!("redis cluster url {}: {e}", redacted(url))))?;
                let connection = tokio::time::timeout(connect_timeout, client.get_async_connection())
                    .await
                    .map_err(|_| connecting(Failure::TimedOut(connect_timeout)))?
                    .map_err(|e| connecting(Failure::Redis(e)))?;
                Backend::Cluster(connection)
            }
        };
        Ok(Connection { backend, command_timeout, sent: AtomicU64::new(0) })
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// Commands sent so far (each is one round trip).
    pub(crate) fn commands_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends one command, within the command timeout (the client has its own response timeout
    /// too; ours also bounds waiting for a reconnect or a cluster slot refresh).
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Failure> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let call = async {
            match &self.backend {
                // Both handles are cheap clones of a shared, multiplexed connection.
                Backend::Standalone(manager) => cmd.query_async(&mut manager.clone()).await,
                Backend::Cluster(cluster) => cmd.query_async(&mut cluster.clone()).await,
            }
        };
        match tokio::time::timeout(self.command_timeout, call).await {
            Ok(result) => result.map_err(Failure::Redis),
            Err(_) => Err(Failure::TimedOut(self.command_timeout)),
        }
    }

    /// The servers a `SCAN` must visit to see every key: the standalone server, or every Cluster
    /// master (a cursor does not span nodes), from `CLUSTER NODES` of any node.
    pub(crate) async fn scan_targets(&self) -> Result<Vec<ScanTarget>, Failure> {
        if !self.is_cluster() {
            return Ok(vec![ScanTarget::Server]);
        }
        let mut nodes = redis::cmd("CLUSTER");
        nodes.arg("NODES");
        let text: String = self.query(&nodes).await?;
        let masters = cluster_masters(&text);
        if masters.is_empty() {
            return Err(Failure::Reply(format!("CLUSTER NODES listed no reachable master: {text:?}")));
        }
        Ok(masters)
    }

    /// Sends one command to `target` (counted and timed out like [`Connection::query`]).
    pub(crate) async fn query_at<T: FromRedisValue>(&self, target: &ScanTarget, cmd: &Cmd) -> Result<T, Failure> {
        let (Backend::Cluster(cluster), ScanTarget::Node { host, port }) = (&self.backend, target) else {
            return self.query(cmd).await;
        };
        self.sent.fetch_add(1, Ordering::Relaxed);
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
        let mut cluster = cluster.clone();
        let call = cluster.route_command(cmd.clone(), routing);
        let value = match tokio::time::timeout(self.command_timeout, call).await {
            Ok(result) => result.map_err(Failure::Redis)?,
            Err(_) => return Err(Failure::TimedOut(self.command_timeout)),
        };
        T::from_redis_value(value).map_err(|e| Failure::Reply(e.to_string()))
    }

    /// Runs a script: EVALSHA, and EVAL only if this server (or cluster node) does not know the
    /// script yet (first use, restart, SCRIPT FLUSH). EVAL caches it, so the steady state is one
    /// EVALSHA per call; a refused EVALSHA did nothing, so sending EVAL after it cannot apply
    /// anything twice.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        script: &LuaScript,
        keys: &[String],
        args: &[String],
    ) -> Result<T, Failure> {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(script.sha()).arg(keys.len()).arg(keys).arg(args);
        match self.query(&evalsha).await {
            Err(Failure::Redis(e)) if is_noscript(&e) => {
                tracing::debug!(script = script.name(), "redis does not know the script yet; sending its source");
                let mut eval = redis::cmd("EVAL");
                eval.arg(script.source()).arg(keys.len()).arg(keys).arg(args);
                self.query(&eval).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_urls_pass_through() {
        assert_eq!(parse_url("redis://127.0.0.1:6379/2"), Ok(Target::Standalone("redis://127.0.0.1:6379/2".into())));
    }

    #[test]
    fn cluster_urls_list_their_seed_nodes_with_credentials() {
        assert_eq!(
            parse_url("redis+cluster://127.0.0.1:7001,127.0.0.1:7002/"),
            Ok(Target::Cluster(vec!["redis://127.0.0.1:7001".into(), "redis://127.0.0.1:7002".into()]))
        );
        assert_eq!(
            parse_url("redis+cluster://u:p@a:7001,b:7002"),
            Ok(Target::Cluster(vec!["redis://u:p@a:7001".into(), "redis://u:p@b:7002".into()]))
        );
    }

    #[test]
    fn cluster_masters_with_slots_are_the_scan_targets() {
        let text = "\
07c3 127.0.0.1:7002@17002 master - 0 1796527119546 2 connected 5461-10922
67ed 127.0.0.1:7001@17001,node-1.example myself,master - 0 1796527118000 1 connected 0-5460
292f 127.0.0.1:7004@17004 slave 07c3 0 1796527118542 2 connected
824f 127.0.0.1:7005@17005 master,fail - 0 1796527118542 4 disconnected 10923-16383
6ec2 127.0.0.1:7006@17006 master - 0 1796527118542 5 connected
";
        let node = |port| ScanTarget::Node { host: "127.0.0.1".into(), port };
        assert_eq!(cluster_masters(text), vec![node(7002), node(7001)]);
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for url in ["http://x:1", "redis+cluster://a:1/3", "redis+cluster://a", "redis+cluster://u:secret@a:1,b"] {
            match parse_url(url) {
                Err(StoreError::Invalid(msg)) => assert!(!msg.contains("secret"), "{msg}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(redacted("redis://user:pw@host:1/0"), "redis://***@host:1/0");
    }
}
