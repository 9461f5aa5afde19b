//! Gateway load: how many concurrent real-time 16 kHz mono streams `fairuse serve` sustains with
//! the VAD on and forwarding to a local upstream, and the latency the gateway adds per frame.
//!
//! Usage (`bench/gateway.sh` runs it):
//!
//! ```text
//! cargo build --release --bin fairuse --example gateway_load
//! target/release/examples/gateway_load --wav crates/fairuse-vad/tests/fixtures/speech_16k.wav \
//!     [--fairuse target/release/fairuse] [--streams 50,100,200,400,800,...] [--seconds 20] [--refine 2]
//! ```
//!
//! In one process it runs a fake Deepgram-like upstream (accepts WebSockets, reads binary frames,
//! records the arrival time of every frame per (stream, frame index)) and starts a release
//! `fairuse serve` on an embedded store in a temporary directory, forwarding to that upstream,
//! with HS256 user tokens. For each stream count N it then runs, one after the other:
//!
//! 1. **direct** (the baseline): N clients straight to the upstream, no gateway;
//! 2. **gateway**: N clients to `/v1/listen`, each a different user.
//!
//! Every client sends 20 ms binary frames (640 bytes) of the WAV, looped, paced in real time for
//! `--seconds`, the streams' start times spread evenly over one frame period. The upstream and
//! the clients share one monotonic clock, so a frame's latency is its upstream arrival time minus
//! its client send time. A run is *sustained* when every stream connected, every frame arrived,
//! and no frame arrived more than `--late-ms` after its scheduled send time (which also catches a
//! load generator that fell behind). The ramp stops after the first N whose gateway run is not
//! sustained. Server CPU comes from `/proc/<pid>/stat` over the sending window.
//!
//! Prints a markdown table on stdout, progress on stderr.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Bytes, Message};

const FRAME_MS: u64 = 20;
const FRAME_BYTES: usize = 640; // 20 ms of 16 kHz mono PCM16
const JWT_SECRET: &str = "gateway-load-hs256-secret-0123456789abcdef";
const FORMAT: &str = "encoding=linear16&sample_rate=16000&channels=1";

#[derive(Parser, Debug)]
#[command(about = "Concurrent real-time streams through `fairuse serve` vs straight to the upstream")]
struct Args {
    /// 16 kHz mono 16-bit WAV; every stream sends it looped.
    #[arg(long)]
    wav: PathBuf,
    /// The fairuse binary to start (a release build).
    #[arg(long, default_value = "target/release/fairuse")]
    fairuse: PathBuf,
    /// Stream counts, in order; the ramp stops after the first that the gateway does not sustain.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,400,800,1200,1600,2400,3200")]
    streams: Vec<usize>,
    /// Seconds of audio every stream sends, paced in real time.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// A frame arriving more than this many ms after its scheduled send time is late.
    #[arg(long, default_value_t = 1000)]
    late_ms: u64,
    /// Run every stream count even after one is not sustained.
    #[arg(long)]
    no_stop: bool,
    /// A policy file for the server (`FAIRUSE_POLICY`); the shipped default when absent.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// After the ramp, this many bisection steps between the last sustained count and the first
    /// that was not (to a multiple of 10).
    #[arg(long, default_value_t = 2)]
    refine: usize,
}

/// Arrival times per stream key, filled by the fake upstream.
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// The fake Deepgram-like upstream: accepts any path, records when each binary frame arrives, and
/// closes a stream on `CloseStream` (as Deepgram does once it has sent its last results).
async fn run_upstream(listener: TcpListener, arrivals: Arrivals) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let mut key: Option<String> = None;
            // The error type is tungstenite's handshake callback's, not ours to shrink.
            #[allow(clippy::result_large_err)]
            let callback = |req: &Request, resp: Response| {
                key = query_value(req.uri().query().unwrap_or(""), "bench_stream");
                Ok(resp)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
            let mut times = Vec::with_capacity(2048);
            let mut saved = false;
            let mut save = |times: &mut Vec<Instant>| {
                if let Some(k) = key.take() {
                    arrivals.lock().unwrap().insert(k, std::mem::take(times));
                }
            };
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Binary(_) => times.push(Instant::now()),
                    Message::Text(t) if t.as_str().contains("CloseStream") => {
                        save(&mut times);
                        saved = true;
                        let _ = ws.close(None).await;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            if !saved {
                save(&mut times);
            }
        });
    }
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_owned())
}

/// The tests' harness for starting the binary (std only, so an example can include it).
#[allow(dead_code)]
#[path = "../tests/common/binary.rs"]
mod binary;

/// A `fairuse serve` child on an embedded store in a temporary directory.
struct Server {
    /// Declared before `_dir`: the process is killed before its data directory is removed.
    process: binary::ServeProcess,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(bin: &Path, upstream: SocketAddr, policy: Option<&PathBuf>) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env: Vec<(String, String)> = [
            ("FAIRUSE_SERVICE_KEYS", "gateway-load-service-key".to_owned()),
            ("FAIRUSE_JWT_HS256_SECRET", JWT_SECRET.to_owned()),
            ("FAIRUSE_UPSTREAM_STT_URL", format!("ws://{upstream}/v1/listen")),
            ("FAIRUSE_UPSTREAM_STT_API_KEY", "gateway-load-upstream-key".to_owned()),
            ("FAIRUSE_LOG", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(policy.map(|p| ("FAIRUSE_POLICY".to_owned(), p.display().to_string())));
        let process = binary::ServeProcess::start(bin, &dir.path().join("data"), &env);
        Server { process, _dir: dir }
    }

    fn base(&self) -> &str {
        &self.process.base
    }

    fn pid(&self) -> u32 {
        self.process.pid().expect("the server is running")
    }
}

/// User + system CPU seconds of a process, from `/proc/<pid>/stat` (clock ticks of 1/100 s).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / 100.0
}

/// CPU seconds the whole machine has spent busy (not idle or waiting for I/O), from `/proc/stat`.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...; guest time is already in user.
    let busy: u64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    busy as f64 / 100.0
}

fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn user_token(uid: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({"sub": uid, "iat": now, "exp": now + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign token")
}

/// The WAV's PCM16 payload as 20 ms frames (a canonical WAV: the samples follow the `data` tag).
fn wav_frames(path: &PathBuf) -> Vec<Bytes> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fmt = bytes.windows(4).position(|w| w == b"fmt ").expect("fmt chunk") + 8;
    let channels = u16::from_le_bytes([bytes[fmt + 2], bytes[fmt + 3]]);
    let rate = u32::from_le_bytes([bytes[fmt + 4], bytes[fmt + 5], bytes[fmt + 6], bytes[fmt + 7]]);
    let bits = u16::from_le_bytes([bytes[fmt + 14], bytes[fmt + 15]]);
    assert!(channels == 1 && rate == 16_000 && bits == 16, "{}: need 16 kHz mono PCM16", path.display());
    let data = bytes.windows(4).position(|w| w == b"data").expect("data chunk") + 8;
    bytes[data..].chunks_exact(FRAME_BYTES).map(Bytes::copy_from_slice).collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Direct,
    Gateway,
}

/// One client stream's record: when each frame was actually sent.
struct Sent {
    key: String,
    sent: Vec<Instant>,
}

struct RunResult {
    streams: usize,
    connected: usize,
    frames_expected: u64,
    frames_arrived: u64,
    dropped: u64,
    late: u64,
    latencies_us: Vec<u32>,
    /// The worst latency of the frames sent in each second of the run.
    worst_by_second: Vec<u32>,
    server_cpu_cores: f64,
    server_rss_mib: f64,
    tool_cpu_cores: f64,
    /// Every process on the machine (other work included), from `/proc/stat`.
    machine_cpu_cores: f64,
}

impl RunResult {
    fn sustained(&self) -> bool {
        self.connected == self.streams && self.dropped == 0 && self.late == 0
    }

    fn pct_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

struct Bench {
    args: Args,
    frames: Arc<Vec<Bytes>>,
    upstream: SocketAddr,
    arrivals: Arrivals,
    server: Server,
}

impl Bench {
    async fn run(&self, mode: Mode, n: usize) -> RunResult {
        let per_stream = (self.args.seconds * 1000 / FRAME_MS) as usize;
        let tag = format!("{}{}", if mode == Mode::Direct { "d" } else { "g" }, n);
        self.arrivals.lock().unwrap().clear();
        let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
        let connects = Arc::new(Semaphore::new(32));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(n.max(1));
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let key = format!("{tag}-{i}");
            let url = match mode {
                Mode::Direct => format!("ws://{}/v1/listen?{FORMAT}&bench_stream={key}", self.upstream),
                Mode::Gateway => format!(
                    "{}/v1/listen?{FORMAT}&bench_stream={key}",
                    self.server.base().replacen("http://", "ws://", 1)
                ),
            };
            let token = (mode == Mode::Gateway).then(|| user_token(&format!("load-{key}")));
            let frames = self.frames.clone();
            let connects = connects.clone();
            let ready = ready_tx.clone();
            let mut start_rx = start_rx.clone();
            // Spread the streams' frame clocks over one frame period, and their audio over the clip.
            let offset = Duration::from_micros(FRAME_MS * 1000 * i as u64 / n as u64);
            let first = (i * 37) % frames.len();
            tasks.push(tokio::spawn(async move {
                let mut record = Sent { key, sent: Vec::with_capacity(per_stream) };
                let ws = {
                    let _permit = connects.acquire().await.expect("semaphore");
                    let mut req = url.into_client_request().expect("url");
                    if let Some(t) = token {
                        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().expect("header"));
                    }
                    tokio::time::timeout(
                        Duration::from_secs(30),
                        tokio_tungstenite::connect_async_with_config(req, None, true),
                    )
                    .await
                };
                let ws = match ws {
                    Ok(Ok((ws, _))) => Some(ws),
                    Ok(Err(e)) => {
                        eprintln!("  stream {} did not connect: {e}", record.key);
                        None
                    }
                    Err(_) => {
                        eprintln!("  stream {} did not connect within 30 s", record.key);
                        None
                    }
                };
                let _ = ready.send(ws.is_some()).await;
                let start = loop {
                    if let Some(s) = *start_rx.borrow_and_update() {
                        break s;
                    }
                    if start_rx.changed().await.is_err() {
                        return record;
                    }
                };
                let Some(ws) = ws else { return record };
                let (mut sink, mut stream) = ws.split();
                let reader = tokio::spawn(async move {
                    while let Some(Ok(msg)) = stream.next().await {
                        if matches!(msg, Message::Close(_)) {
                            break;
                        }
                    }
                });
                for k in 0..per_stream {
                    let due = start + offset + Duration::from_millis(FRAME_MS * k as u64);
                    tokio::time::sleep_until(due.into()).await;
                    let frame = frames[(first + k) % frames.len()].clone();
                    record.sent.push(Instant::now());
                    if sink.send(Message::Binary(frame)).await.is_err() {
                        record.sent.pop();
                        break;
                    }
                }
                let _ = sink.send(Message::Text(r#"{"type":"CloseStream"}"#.into())).await;
                let _ = tokio::time::timeout(Duration::from_secs(30), reader).await;
                let _ = sink.close().await;
                record
            }));
        }
        drop(ready_tx);
        let mut connected = 0;
        for _ in 0..n {
            if ready_rx.recv().await == Some(true) {
                connected += 1;
            }
        }
        // Every stream is open: start the clocks together, and measure CPU over the sending window.
        let start = Instant::now() + Duration::from_millis(200);
        let pid = self.server.pid().to_string();
        let window = Duration::from_millis(self.args.seconds * 1000 + FRAME_MS);
        let cpu = tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let (s0, t0, m0) = (cpu_seconds(&pid), cpu_seconds("self"), machine_busy_seconds());
            tokio::time::sleep(window).await;
            let (s1, t1, m1) = (cpu_seconds(&pid), cpu_seconds("self"), machine_busy_seconds());
            let secs = window.as_secs_f64();
            ((s1 - s0) / secs, (t1 - t0) / secs, (m1 - m0) / secs, rss_mib(&pid))
        });
        start_tx.send(Some(start)).expect("clients are waiting");
        let mut records = Vec::with_capacity(n);
        for t in tasks {
            records.push(t.await.expect("client task"));
        }
        let (server_cpu_cores, tool_cpu_cores, machine_cpu_cores, server_rss_mib) = cpu.await.expect("cpu task");
        // The upstream saves a stream's arrivals when its CloseStream arrives; give stragglers time.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.arrivals.lock().unwrap().len() < connected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let arrivals = std::mem::take(&mut *self.arrivals.lock().unwrap());

        let late_after = Duration::from_millis(self.args.late_ms);
        let mut result = RunResult {
            streams: n,
            connected,
            frames_expected: (n * per_stream) as u64,
            frames_arrived: 0,
            dropped: 0,
            late: 0,
            latencies_us: Vec::with_capacity(n * per_stream),
            worst_by_second: vec![0; (self.args.seconds as usize).max(1) + 1],
            server_cpu_cores,
            server_rss_mib,
            tool_cpu_cores,
            machine_cpu_cores,
        };
        for (i, rec) in records.iter().enumerate() {
            let offset = Duration::from_micros(FRAME_MS * 1000 * i as u64 / n as u64);
            let arrived = arrivals.get(&rec.key).map(Vec::as_slice).unwrap_or(&[]);
            let matched = arrived.len().min(rec.sent.len());
            result.frames_arrived += matched as u64;
            result.dropped += (per_stream - matched) as u64;
            for (k, (at, sent)) in arrived.iter().zip(&rec.sent).enumerate() {
                let due = start + offset + Duration::from_millis(FRAME_MS * k as u64);
                if at.saturating_duration_since(due) > late_after {
                    result.late += 1;
                }
                let latency_us = at.saturating_duration_since(*sent).as_micros().min(u32::MAX as u128) as u32;
                result.latencies_us.push(latency_us);
                let second = k * FRAME_MS as usize / 1000;
                result.worst_by_second[second] = result.worst_by_second[second].max(latency_us);
            }
        }
        result.latencies_us.sort_unstable();
        result
    }

    /// `fairuse_gateway_prints_abandoned_total` from the server's `/metrics` (0 until a stream
    /// gives fingerprinting up: the counter is rendered from its first increment).
    async fn prints_abandoned(&self) -> u64 {
        let url = format!("{}/metrics", self.server.base());
        let text = match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => panic!("{url}: {e}"),
        };
        text.lines()
            .find_map(|l| l.strip_prefix("fairuse_gateway_prints_abandoned_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// The direct baseline and the gateway run for `n` streams; prints the table row and
    /// returns whether the gateway sustained them.
    async fn step(&self, n: usize) -> bool {
        eprintln!("{n} streams: direct (baseline)...");
        let direct = self.run(Mode::Direct, n).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        eprintln!("{n} streams: through the gateway...");
        let abandoned_before = self.prints_abandoned().await;
        let gw = self.run(Mode::Gateway, n).await;
        let abandoned = self.prints_abandoned().await.saturating_sub(abandoned_before);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let verdict = match (gw.sustained(), direct.sustained()) {
            (true, _) => "yes",
            (false, true) => "**no**",
            (false, false) => "**no** (nor the direct baseline)",
        };
        println!(
            "| {n} | {:.2} / {:.2} / {:.1} | {:.2} / {:.2} / {:.1} | {:+.2} / {:+.2} | {} / {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {verdict} | {abandoned} |",
            direct.pct_ms(0.5),
            direct.pct_ms(0.99),
            direct.pct_ms(1.0),
            gw.pct_ms(0.5),
            gw.pct_ms(0.99),
            gw.pct_ms(1.0),
            gw.pct_ms(0.5) - direct.pct_ms(0.5),
            gw.pct_ms(0.99) - direct.pct_ms(0.99),
            gw.frames_arrived,
            gw.frames_expected,
            gw.dropped,
            gw.late,
            gw.server_cpu_cores,
            gw.server_cpu_cores * 1000.0 / n as f64,
            gw.server_rss_mib,
            gw.tool_cpu_cores,
            gw.machine_cpu_cores,
        );
        eprintln!(
            "{n} streams: direct {}/{n} connected, {} dropped, {} late; gateway {}/{n} connected, {} dropped, {} late",
            direct.connected, direct.dropped, direct.late, gw.connected, gw.dropped, gw.late
        );
        let worst = |r: &RunResult| {
            r.worst_by_second.iter().map(|us| format!("{:.0}", *us as f64 / 1000.0)).collect::<Vec<_>>().join(" ")
        };
        eprintln!(
            "{n} streams: worst latency (ms) per second of sending: direct [{}], gateway [{}]",
            worst(&direct),
            worst(&gw)
        );
        gw.sustained()
    }
}

fn main() {
    let args = Args::parse();
    let frames = wav_frames(&args.wav);
    assert!(!frames.is_empty(), "the WAV holds less than one 20 ms frame");
    // Two workers: the load generator and the fake upstream share the machine with the server.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let upstream = listener.local_addr().expect("upstream addr");
        let arrivals: Arrivals = Arc::default();
        tokio::spawn(run_upstream(listener, arrivals.clone()));
        let server = Server::start(&args.fairuse, upstream, args.policy.as_ref());
        eprintln!("fairuse serve pid {} at {}, upstream ws://{upstream}", server.pid(), server.base());
        let bench = Bench { frames: Arc::new(frames), upstream, arrivals, server, args };

        println!(
            "| streams | direct p50 / p99 / max ms | gateway p50 / p99 / max ms | added p50 / p99 ms | \
             gateway frames arrived | dropped | late > {} s | server CPU (cores) | server CPU ms per stream-s | \
             server RSS MiB | load tool CPU (cores) | machine CPU (cores) | sustained | streams that gave up fingerprinting |",
            bench.args.late_ms as f64 / 1000.0
        );
        println!("|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
        let mut best: Option<usize> = None;
        let mut first_failed: Option<usize> = None;
        for &n in &bench.args.streams {
            if bench.step(n).await {
                best = best.max(Some(n));
            } else {
                first_failed = Some(n);
                if !bench.args.no_stop {
                    break;
                }
            }
        }
        // Narrow the gap between the last sustained count and the first that was not.
        if let (Some(mut ok), Some(mut failed)) = (best, first_failed) {
            for _ in 0..bench.args.refine {
                let mid = (ok + failed) / 2 / 10 * 10;
                if mid <= ok || mid >= failed {
                    break;
                }
                if bench.step(mid).await {
                    ok = mid;
                    best = best.max(Some(mid));
                } else {
                    failed = mid;
                }
            }
        }
        println!("\nsustained_streams={}", best.unwrap_or(0));
    });
}
