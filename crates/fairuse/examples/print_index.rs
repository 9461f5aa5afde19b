//! Print index benchmark (issue 11): what one stream-minute of speech costs the print index, and
//! how much storage a user-day takes, on the embedded store (SQLite) and on PostgreSQL.
//!
//! Usage (`bench/prints.sh` runs it and writes `bench/results/prints.md`):
//!
//! ```text
//! cargo build --release -p fairuse --example print_index
//! target/release/examples/print_index [--users 800] [--days 3] [--heavy 0.02] [--minutes 150]
//!     [--stores embedded,postgres] [--database-url postgres://postgres@127.0.0.1:5432/test] [--keep]
//! ```
//!
//! **Population.** `--users` users over `--days` days ending at `T_END`; a share `--heavy` of them
//! speak 8 h a day (8 sessions of an hour of speech), the others 13 min (3 sessions), at 50%
//! speech density. One sampled code per 495 ms of speech (a Chromaprint code every 123.8 ms, one
//! in four kept), so 121 per speech-minute. Codes are pseudo-random 32-bit values, so keys spread
//! evenly over the 65,536 keys (real Chromaprint keys are less even). One session in ten replays
//! part of one of 50 shared two-hour recordings (with a low bit flipped in a third of its codes,
//! as a replay through another channel does), so lookups find real postings. Prints are added the
//! way the index receives them: in time order, in the gateway's 60 s flush chunks (several chunks
//! per call, to prefill quickly). PostgreSQL is then `ANALYZE`d, as autovacuum would.
//!
//! **One stream-minute** is 121 samples of continuous speech, replaying a minute of a shared
//! recording, at `T_END` plus the iteration's minute, looked up with `since` = now − 8 days (the
//! default retention) and `POSTING_LIMIT`:
//! - *1 flush*: `lookup_prints` of the 121 keys then `add_prints` of the 121 prints, as
//!   `Service::match_prints` does once per flush at the gateway's default `flush_interval` (60 s);
//! - *4 flushes*: the same in 4 batches of 30-31 (a 15 s `flush_interval`).
//!
//! PostgreSQL is measured twice: as loaded (`ANALYZE`d, no `VACUUM`: the visibility map is unset,
//! so its index-only scans also read the heap, as they do for prints newer than the last
//! autovacuum) and after a `VACUUM` of both tables (prints older than the last autovacuum).
//!
//! The **baseline**, in the same run on the same store, is one `upsert_stream_session` of an
//! advancing snapshot: the store call the gateway already makes once per flush. Each iteration runs
//! the three in a rotating order; the first tenth of the iterations warms up and is not counted.
//! Wall time per call (median, p99), and CPU time from `/proc/.../schedstat` (ns): this process
//! (every thread) and, for PostgreSQL, the server backend of the single connection used.
//!
//! **Storage**: for SQLite `dbstat` (pages of each table with its indexes) and the file growth;
//! for PostgreSQL `pg_total_relation_size` of `prints` and `print_sessions`. Per print and per
//! session, then per user-day from the prints and sessions a typical or heavy user-day adds.
//!
//! **Prune**: `prune_prints` of the oldest prefilled day, timed, while a task calls the baseline
//! every 20 ms (how long a write waits behind the prune). PostgreSQL runs it with the service's
//! default `database_timeout` (5 s); if that times out, again with no practical limit, for its time.
//!
//! Prints markdown on stdout, progress on stderr. The SQLite store lives in a fresh temporary
//! directory; PostgreSQL in a fresh schema `fu_bench_<hex>` dropped at the end (`--keep` keeps both
//! and prints where, for `EXPLAIN`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use fairuse_domain::ids::Uid;
use fairuse_domain::prints::{HIT_MAX_BITS, HIT_SPAN_MS, POSTING_LIMIT, Print, SIMULTANEOUS_MS, print_key};
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::store::{ConversationStore, PrintStore};
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Timestamp};
use fairuse_store_embedded::EmbeddedStore;
use fairuse_store_postgres::{PgOptions, PostgresStore};
use sqlx::Connection;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The end of the prefilled history, "now" when the measurement starts: 2026-03-20T00:00:00Z.
const T_END: Timestamp = Timestamp::from_millis(1_773_964_800_000);
/// The default `[fingerprint] retention`.
const RETENTION_MS: i64 = 8 * MS_PER_DAY;
/// Wall time between two samples of a session at 50% speech density.
const SAMPLE_WALL_MS: i64 = 2 * HIT_SPAN_MS;
/// Samples in a minute of continuous speech: 60 s / 495 ms.
const SAMPLES_PER_SPEECH_MINUTE: usize = (MS_PER_MINUTE / HIT_SPAN_MS) as usize;
const TYPICAL_SESSIONS: u64 = 3;
/// 13 min a day in 3 sessions.
const TYPICAL_SESSION_SAMPLES: u32 = (13 * MS_PER_MINUTE / 3 / HIT_SPAN_MS) as u32;
const HEAVY_SESSIONS: u64 = 8;
/// 8 h a day in 8 sessions of an hour of speech.
const HEAVY_SESSION_SAMPLES: u32 = (MS_PER_HOUR / HIT_SPAN_MS) as u32;
const RECORDINGS: u64 = 50;
/// Two hours of speech each.
const RECORDING_SAMPLES: u64 = 2 * MS_PER_HOUR as u64 / HIT_SPAN_MS as u64;
/// The gateway's default flush interval: what one `match_prints` call covers.
const FLUSH_MS: i64 = MS_PER_MINUTE;
/// Prints per `add_prints` call while prefilling (whole flush chunks, several sessions).
const PREFILL_CALL_PRINTS: usize = 8_192;
const PREFILL_IN_FLIGHT: usize = 3;
/// Live sessions the measured stream-minutes rotate over (a session is flushed once a minute).
const LIVE_SESSIONS: usize = 20;
/// The service's default `[store] database_timeout`.
const SERVICE_PG_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(about = "The print index: cost per stream-minute and storage per user-day, embedded and PostgreSQL")]
struct Args {
    /// Users in the prefilled index.
    #[arg(long, default_value_t = 800)]
    users: u64,
    /// Days of history in the prefilled index (at most the 8-day retention).
    #[arg(long, default_value_t = 3)]
    days: i64,
    /// Share of users who speak 8 h a day instead of 13 min.
    #[arg(long, default_value_t = 0.02)]
    heavy: f64,
    /// Measured stream-minutes per store (the first tenth more warm up).
    #[arg(long, default_value_t = 150)]
    minutes: usize,
    /// Stores to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "embedded,postgres")]
    stores: Vec<String>,
    /// PostgreSQL server; the benchmark creates and drops its own schema there.
    #[arg(long, env = "FAIRUSE_TEST_DATABASE_URL", default_value = DEFAULT_URL)]
    database_url: String,
    /// Keep the SQLite directory and the PostgreSQL schema (for `EXPLAIN`); their names go to stderr.
    #[arg(long)]
    keep: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// splitmix64: cheap, well-mixed, reproducible.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn recording_code(recording: u64, i: u64) -> u32 {
    mix(0x5EC0_4D00_0000_0000 ^ (recording << 32) ^ i) as u32
}

/// A replay keeps the key and flips one low bit in a third of the codes.
fn replayed(code: u32, noise: u64) -> u32 {
    if noise.is_multiple_of(3) { code ^ (1 << ((noise >> 8) % 16)) } else { code }
}

/// A UUID-shaped session id (the gateway's are v4 UUIDs: 36 characters).
fn session_id(seed: u64) -> String {
    let (a, b) = (mix(seed ^ 0xA), mix(seed ^ 0xB));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFF,
        b >> 52,
        b & 0xFFFF_FFFF_FFFF
    )
}

/// 28 characters, like a Firebase uid.
fn uid(user: u64) -> String {
    format!("pbuser{user:022}")
}

#[derive(Clone, Copy)]
enum Source {
    Fresh,
    Recording { id: u64, from: u64 },
}

#[derive(Clone)]
struct SessionPlan {
    user: u64,
    seed: u64,
    start: Timestamp,
    samples: u32,
    source: Source,
}

impl SessionPlan {
    fn code(&self, i: u32) -> u32 {
        match self.source {
            Source::Fresh => mix(self.seed ^ (u64::from(i) << 40)) as u32,
            Source::Recording { id, from } => {
                replayed(recording_code(id, from + u64::from(i)), mix(self.seed ^ u64::from(i)))
            }
        }
    }

    fn print(&self, i: u32) -> Print {
        Print {
            uid: uid(self.user),
            session_id: session_id(self.seed),
            heard_at: self.start.plus_ms(i64::from(i) * SAMPLE_WALL_MS),
            code: self.code(i),
        }
    }
}

struct Population {
    users: u64,
    heavy_users: u64,
    days: i64,
    seed: u64,
}

impl Population {
    fn is_heavy(&self, user: u64) -> bool {
        user < self.heavy_users
    }

    fn day_start(&self, day: i64) -> Timestamp {
        T_END.minus_ms((self.days - day) * MS_PER_DAY)
    }

    /// Every session of one day: heavy users back to back from 06:00 (an hour of speech in two of
    /// wall time), typical users at random times between 07:00 and 22:00.
    fn sessions(&self, day: i64) -> Vec<SessionPlan> {
        let start = self.day_start(day);
        let mut out = Vec::new();
        for user in 0..self.users {
            let heavy = self.is_heavy(user);
            let count = if heavy { HEAVY_SESSIONS } else { TYPICAL_SESSIONS };
            for k in 0..count {
                let seed = mix(self.seed ^ (user << 24) ^ ((day as u64) << 8) ^ k);
                let (samples, at) = if heavy {
                    (HEAVY_SESSION_SAMPLES, 6 * MS_PER_HOUR + k as i64 * 2 * MS_PER_HOUR + (seed % 300_000) as i64)
                } else {
                    (TYPICAL_SESSION_SAMPLES, 7 * MS_PER_HOUR + (seed % (15 * MS_PER_HOUR as u64)) as i64)
                };
                let r = mix(seed ^ 0x5EC);
                let source = if r.is_multiple_of(10) {
                    let id = (r >> 8) % RECORDINGS;
                    Source::Recording { id, from: (r >> 16) % (RECORDING_SAMPLES - u64::from(samples) + 1) }
                } else {
                    Source::Fresh
                };
                out.push(SessionPlan { user, seed, start: start.plus_ms(at), samples, source });
            }
        }
        out
    }
}

#[derive(Default, Clone, Copy)]
struct Counts {
    typical_prints: u64,
    heavy_prints: u64,
    typical_sessions: u64,
    heavy_sessions: u64,
    first_day_prints: u64,
}

impl Counts {
    fn prints(&self) -> u64 {
        self.typical_prints + self.heavy_prints
    }
    fn sessions(&self) -> u64 {
        self.typical_sessions + self.heavy_sessions
    }
}

/// Adds every day's prints in time order, in the gateway's flush chunks.
async fn prefill(store: Arc<dyn PrintStore>, pop: &Population) -> Result<(Counts, Duration)> {
    let began = Instant::now();
    let mut counts = Counts::default();
    for day in 0..pop.days {
        let sessions = Arc::new(pop.sessions(day));
        // (chunk start, session, first sample, end sample): a session's samples of one flush.
        let mut chunks: Vec<(Timestamp, usize, u32, u32)> = Vec::new();
        for (s, plan) in sessions.iter().enumerate() {
            let per_flush = (FLUSH_MS / SAMPLE_WALL_MS) as u32;
            let mut i = 0;
            while i < plan.samples {
                let end = (i + per_flush).min(plan.samples);
                chunks.push((plan.start.plus_ms(i64::from(i) * SAMPLE_WALL_MS), s, i, end));
                i = end;
            }
            let n = u64::from(plan.samples);
            if pop.is_heavy(plan.user) {
                counts.heavy_prints += n;
                counts.heavy_sessions += 1;
            } else {
                counts.typical_prints += n;
                counts.typical_sessions += 1;
            }
            if day == 0 {
                counts.first_day_prints += n;
            }
        }
        chunks.sort_by_key(|c| (c.0, c.1));
        let mut calls: Vec<Vec<(usize, u32, u32)>> = vec![Vec::new()];
        let mut in_call = 0;
        for &(_, s, from, to) in &chunks {
            if in_call >= PREFILL_CALL_PRINTS {
                calls.push(Vec::new());
                in_call = 0;
            }
            calls.last_mut().expect("starts with one").push((s, from, to));
            in_call += (to - from) as usize;
        }
        let mut running = tokio::task::JoinSet::new();
        for call in calls {
            while running.len() >= PREFILL_IN_FLIGHT {
                running.join_next().await.expect("not empty")??;
            }
            let (store, sessions) = (Arc::clone(&store), Arc::clone(&sessions));
            running.spawn(async move {
                let mut prints: Vec<Print> = Vec::new();
                for &(s, from, to) in &call {
                    prints.extend((from..to).map(|i| sessions[s].print(i)));
                }
                store.add_prints(&prints).await.context("add_prints while prefilling")
            });
        }
        while let Some(done) = running.join_next().await {
            done??;
        }
        eprintln!(
            "  day {}/{}: {} prints so far, {:.0} s, {:.0} prints/s",
            day + 1,
            pop.days,
            counts.prints(),
            began.elapsed().as_secs_f64(),
            counts.prints() as f64 / began.elapsed().as_secs_f64()
        );
    }
    Ok((counts, began.elapsed()))
}

/// CPU time in ns: this process (every thread) and, optionally, a PostgreSQL backend.
struct CpuProbe {
    backend_pid: Option<u32>,
}

fn schedstat_ns(path: &Path) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

impl CpuProbe {
    fn read(&self) -> (u64, u64) {
        let mut own = 0;
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for t in tasks.flatten() {
                own += schedstat_ns(&t.path().join("schedstat"));
            }
        }
        let backend = self.backend_pid.map_or(0, |pid| schedstat_ns(&PathBuf::from(format!("/proc/{pid}/schedstat"))));
        (own, backend)
    }
}

#[derive(Default)]
struct Series {
    wall_us: Vec<f64>,
    own_cpu_ns: u64,
    backend_cpu_ns: u64,
}

impl Series {
    fn median(&self) -> f64 {
        quantile(&self.wall_us, 0.5)
    }
    fn p99(&self) -> f64 {
        quantile(&self.wall_us, 0.99)
    }
    fn own_cpu_us(&self) -> f64 {
        self.own_cpu_ns as f64 / 1e3 / self.wall_us.len().max(1) as f64
    }
    fn backend_cpu_us(&self) -> f64 {
        self.backend_cpu_ns as f64 / 1e3 / self.wall_us.len().max(1) as f64
    }
}

fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (q * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

/// What the lookups of the 1-flush stream-minutes found.
#[derive(Default)]
struct Found {
    rows: u64,
    keys: u64,
    saturated_keys: u64,
    /// For saturated keys: how far back the oldest returned print was heard (ms).
    horizons_ms: Vec<f64>,
    samples: u64,
    samples_with_hit: u64,
}

impl Found {
    fn note(&mut self, batch: &[Print], found: &[Print], now: Timestamp) {
        let mut by_key: HashMap<u32, Vec<&Print>> = HashMap::new();
        for p in found {
            by_key.entry(print_key(p.code)).or_default().push(p);
        }
        self.rows += found.len() as u64;
        self.keys += by_key.len() as u64;
        for prints in by_key.values() {
            if prints.len() >= POSTING_LIMIT {
                self.saturated_keys += 1;
                let oldest = prints.iter().map(|p| p.heard_at.millis()).min().unwrap_or(now.millis());
                self.horizons_ms.push((now.millis() - oldest) as f64);
            }
        }
        for s in batch {
            self.samples += 1;
            let hit = by_key.get(&print_key(s.code)).is_some_and(|ps| {
                ps.iter().any(|p| {
                    (s.code ^ p.code).count_ones() <= HIT_MAX_BITS
                        && (s.heard_at.millis() - p.heard_at.millis()).abs() >= SIMULTANEOUS_MS
                })
            });
            self.samples_with_hit += u64::from(hit);
        }
    }
}

fn warmup(minutes: usize) -> usize {
    (minutes / 10).max(3)
}

struct Measured {
    one_flush: Series,
    four_flushes: Series,
    baseline: Series,
    found: Found,
}

/// One live stream-minute: 121 samples of a shared recording at `now`.
fn live_minute(seed: u64, iteration: usize, session: &str, now: Timestamp) -> Vec<Print> {
    let r = mix(seed ^ 0x11FE ^ ((iteration as u64) << 20));
    let id = iteration as u64 % RECORDINGS;
    let from = (r >> 8) % (RECORDING_SAMPLES - SAMPLES_PER_SPEECH_MINUTE as u64);
    (0..SAMPLES_PER_SPEECH_MINUTE as u64)
        .map(|i| Print {
            uid: "pbliveuser0000000000000000000".into(),
            session_id: session.to_owned(),
            heard_at: now.plus_ms(i as i64 * HIT_SPAN_MS),
            code: replayed(recording_code(id, from + i), mix(r ^ i)),
        })
        .collect()
}

async fn match_prints(store: &dyn PrintStore, batch: &[Print], now: Timestamp) -> Result<Vec<Print>> {
    let keys: Vec<u32> = batch.iter().map(|p| print_key(p.code)).collect();
    let found = store.lookup_prints(&keys, now.minus_ms(RETENTION_MS), POSTING_LIMIT).await?;
    store.add_prints(batch).await?;
    Ok(found)
}

fn snapshot(session: &str, n: i64, now: Timestamp) -> StreamSession {
    let mut s = StreamSession::open(session, T_END);
    s.updated_at = now;
    s.duration_ms = n * MS_PER_MINUTE;
    s.speech_ms = n * MS_PER_MINUTE / 2;
    s.stt_ms = n * MS_PER_MINUTE / 2;
    s.longest_speech_ms = 20_000;
    s.pause_count = n as u64 * 6;
    s.pause_mean_ms = 1_500;
    s.pause_median_ms = 1_200;
    s.longest_pause_ms = 9_000;
    s
}

async fn measure(
    prints: &dyn PrintStore,
    conversations: &dyn ConversationStore,
    probe: &CpuProbe,
    minutes: usize,
    seed: u64,
    first_minute: usize,
) -> Result<Measured> {
    let warmup = warmup(minutes);
    let live = Uid::parse("pbliveuser0000000000000000000").context("live uid")?;
    let mut m = Measured {
        one_flush: Series::default(),
        four_flushes: Series::default(),
        baseline: Series::default(),
        found: Found::default(),
    };
    // A second measurement on the same store continues where the first stopped (new prints).
    for i in first_minute..first_minute + warmup + minutes {
        let now = T_END.plus_ms(i as i64 * MS_PER_MINUTE);
        let counted = i >= first_minute + warmup;
        for step in 0..3 {
            let which = (i + step) % 3;
            let before = probe.read();
            let started = Instant::now();
            let found = match which {
                0 => {
                    let batch = live_minute(seed, 2 * i, &format!("live-a-{}", i % LIVE_SESSIONS), now);
                    let found = match_prints(prints, &batch, now).await?;
                    Some((batch, found))
                }
                1 => {
                    let batch = live_minute(seed, 2 * i + 1, &format!("live-b-{}", i % LIVE_SESSIONS), now);
                    for part in [&batch[..30], &batch[30..60], &batch[60..90], &batch[90..]] {
                        match_prints(prints, part, now).await?;
                    }
                    None
                }
                _ => {
                    let s = snapshot(&format!("live-u-{}", i % LIVE_SESSIONS), (i / LIVE_SESSIONS + 1) as i64, now);
                    conversations.upsert_stream_session(&live, &s).await?;
                    None
                }
            };
            let wall_us = started.elapsed().as_secs_f64() * 1e6;
            let after = probe.read();
            if !counted {
                continue;
            }
            let series = match which {
                0 => &mut m.one_flush,
                1 => &mut m.four_flushes,
                _ => &mut m.baseline,
            };
            series.wall_us.push(wall_us);
            series.own_cpu_ns += after.0.saturating_sub(before.0);
            series.backend_cpu_ns += after.1.saturating_sub(before.1);
            if let Some((batch, found)) = found {
                m.found.note(&batch, &found, now);
            }
        }
    }
    Ok(m)
}

struct Storage {
    prints_bytes: u64,
    sessions_bytes: u64,
    /// How it was counted, for the report.
    detail: String,
}

struct Pruned {
    removed: u64,
    took: Duration,
    /// The service's default timeout, for PostgreSQL: `Err` when the prune did not fit it.
    within_default_timeout: Option<Result<(), String>>,
    baseline_calls: usize,
    baseline_max_us: f64,
}

/// Prunes the oldest prefilled day while a task calls the baseline every 20 ms.
async fn prune_one_day(
    prints: Arc<dyn PrintStore>,
    conversations: Arc<dyn ConversationStore>,
    pop: &Population,
) -> Result<(u64, Duration, usize, f64)> {
    let before = pop.day_start(1);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let live = Uid::parse("pbliveuser0000000000000000000").expect("a valid uid");
            let mut latencies = Vec::new();
            let mut n = 10_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let s = snapshot("live-prune", n, T_END.plus_ms(n * 1000));
                let started = Instant::now();
                if conversations.upsert_stream_session(&live, &s).await.is_err() {
                    break;
                }
                latencies.push(started.elapsed().as_secs_f64() * 1e6);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        })
    };
    let started = Instant::now();
    let removed = prints.prune_prints(before).await;
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let latencies = prober.await.context("the baseline task during the prune")?;
    let removed = removed?;
    Ok((removed, took, latencies.len(), latencies.iter().copied().fold(0.0, f64::max)))
}

struct Report {
    name: &'static str,
    counts: Counts,
    prefill: Duration,
    /// One or more measurements of the store, each with what it was.
    measured: Vec<(&'static str, Measured)>,
    storage: Storage,
    pruned: Pruned,
    cpu_note: &'static str,
}

async fn run_embedded(args: &Args, pop: &Population) -> Result<Report> {
    let dir = tempfile::Builder::new().prefix("fairuse-print-bench-").tempdir().context("a temporary directory")?;
    let store = Arc::new(EmbeddedStore::open(dir.path()).await.context("opening the embedded store")?);
    let db = store.db_path();
    let file_size = |p: &Path| {
        let wal = PathBuf::from(format!("{}-wal", p.display()));
        std::fs::metadata(p).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
    };
    checkpoint(&db)?;
    let empty = file_size(&db);
    let (counts, prefill_took) = prefill(store.clone(), pop).await?;
    checkpoint(&db)?;
    let grown = file_size(&db).saturating_sub(empty);
    let (prints_bytes, sessions_bytes) = dbstat(&db)?;
    let storage = Storage {
        prints_bytes,
        sessions_bytes,
        detail: format!(
            "`dbstat` pages of each table with its indexes; the file grew {:.1} MiB ({:.1} B per print, all tables)",
            grown as f64 / 1_048_576.0,
            grown as f64 / counts.prints() as f64
        ),
    };
    eprintln!("  measuring {} stream-minutes", args.minutes);
    let probe = CpuProbe { backend_pid: None };
    let measured = vec![("", measure(store.as_ref(), store.as_ref(), &probe, args.minutes, args.seed, 0).await?)];
    eprintln!("  pruning one day");
    let (removed, took, baseline_calls, baseline_max_us) = prune_one_day(store.clone(), store.clone(), pop).await?;
    let pruned = Pruned { removed, took, within_default_timeout: None, baseline_calls, baseline_max_us };
    store.close().await;
    if args.keep {
        eprintln!("  kept the SQLite database: {}", db.display());
        let _ = dir.keep();
    }
    Ok(Report {
        name: "embedded (SQLite)",
        counts,
        prefill: prefill_took,
        measured,
        storage,
        pruned,
        cpu_note: "this process, every thread (SQLite runs in it)",
    })
}

fn checkpoint(db: &Path) -> Result<()> {
    let conn = rusqlite::Connection::open(db).context("opening the database for a checkpoint")?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).context("checkpoint")?;
    Ok(())
}

/// Bytes of the pages of `prints` and of `print_sessions`, each with its indexes.
fn dbstat(db: &Path) -> Result<(u64, u64)> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .context("opening the database for dbstat")?;
    let bytes = |table: &str| -> Result<u64> {
        conn.query_row(
            "SELECT COALESCE(SUM(d.pgsize), 0) FROM dbstat d JOIN sqlite_schema m ON m.name = d.name
             WHERE m.tbl_name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map(|b| b as u64)
        .with_context(|| format!("dbstat of {table}"))
    };
    Ok((bytes("prints")?, bytes("print_sessions")?))
}

/// `fu_bench_` and 16 hex digits.
fn unique_schema(seed: u64) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("fu_bench_{:016x}", mix(seed ^ nanos as u64 ^ (u64::from(std::process::id()) << 40)))
}

fn pg_options(schema: &str, max_connections: u32, timeout: Duration) -> PgOptions {
    PgOptions {
        schema: schema.to_owned(),
        max_connections,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: timeout,
    }
}

async fn run_postgres(args: &Args, pop: &Population) -> Result<Report> {
    let schema = unique_schema(args.seed);
    let outcome = postgres_in(args, pop, &schema).await;
    if args.keep {
        eprintln!("  kept the PostgreSQL schema: {schema}");
    } else if let Err(e) = drop_schema(&args.database_url, &schema).await {
        eprintln!("  could not drop the schema {schema}: {e:#}");
    }
    outcome
}

async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    // `schema` comes from `unique_schema`: lowercase hex and underscores only.
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

async fn postgres_in(args: &Args, pop: &Population, schema: &str) -> Result<Report> {
    let url = &args.database_url;
    let connect = |n, timeout| async move {
        PostgresStore::connect(url, pg_options(schema, n, timeout))
            .await
            .with_context(|| format!("connecting to PostgreSQL at {url}"))
    };
    // Prefill and the prune's retry: no practical time limit.
    let bulk = Arc::new(connect(4, Duration::from_secs(3_600)).await?);
    bulk.migrate().await.context("migrating the benchmark schema")?;
    eprintln!("  schema {schema}");
    let (counts, prefill_took) = prefill(bulk.clone(), pop).await?;
    for table in ["ANALYZE prints", "ANALYZE print_sessions"] {
        sqlx::query(table).execute(bulk.pool()).await.context("ANALYZE")?;
    }
    let (prints_bytes, sessions_bytes, table, indexes): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('prints'), pg_total_relation_size('print_sessions'),
                pg_relation_size('prints'), pg_indexes_size('prints')",
    )
    .fetch_one(bulk.pool())
    .await
    .context("relation sizes")?;
    let storage = Storage {
        prints_bytes: prints_bytes as u64,
        sessions_bytes: sessions_bytes as u64,
        detail: format!(
            "`pg_total_relation_size`; of `prints`, the heap is {:.1} B per print and its indexes {:.1} B",
            table as f64 / counts.prints() as f64,
            indexes as f64 / counts.prints() as f64
        ),
    };
    // The measurement and the prune run as the service would: its default timeout, and one
    // connection, so the server CPU of every call is that backend's.
    let service = Arc::new(connect(1, SERVICE_PG_TIMEOUT).await?);
    let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()").fetch_one(service.pool()).await?;
    let probe = CpuProbe { backend_pid: u32::try_from(pid).ok() };
    eprintln!("  measuring {} stream-minutes (backend pid {pid})", args.minutes);
    let fresh = measure(service.as_ref(), service.as_ref(), &probe, args.minutes, args.seed, 0).await?;
    // An index-only scan reads the heap for rows on pages not yet marked all-visible, which only
    // VACUUM does; the lookups read the newest prints, the ones autovacuum has not reached yet
    // once the index is large (see the results file). After a VACUUM is the other bound.
    eprintln!("  VACUUM, then measuring again");
    for table in ["VACUUM prints", "VACUUM print_sessions"] {
        sqlx::query(table).execute(bulk.pool()).await.context("VACUUM")?;
    }
    let first_minute = args.minutes + warmup(args.minutes);
    let vacuumed = measure(service.as_ref(), service.as_ref(), &probe, args.minutes, args.seed, first_minute).await?;
    let measured = vec![("", fresh), (", after VACUUM", vacuumed)];
    let (after,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()").fetch_one(service.pool()).await?;
    if after != pid {
        bail!("the measuring connection changed backend ({pid} -> {after}): its CPU was not all counted");
    }
    eprintln!("  pruning one day (service timeout {} s)", SERVICE_PG_TIMEOUT.as_secs());
    // The baseline during the prune has its own connections, as other requests would.
    let pruned = match prune_one_day(service.clone(), bulk.clone(), pop).await {
        Ok((removed, took, baseline_calls, baseline_max_us)) => {
            Pruned { removed, took, within_default_timeout: Some(Ok(())), baseline_calls, baseline_max_us }
        }
        Err(e) => {
            eprintln!("  the prune did not fit the service timeout ({e:#}); again with no limit");
            let (removed, took, baseline_calls, baseline_max_us) =
                prune_one_day(bulk.clone(), bulk.clone(), pop).await?;
            Pruned {
                removed,
                took,
                within_default_timeout: Some(Err(format!("{e:#}"))),
                baseline_calls,
                baseline_max_us,
            }
        }
    };
    service.close().await;
    bulk.close().await;
    Ok(Report {
        name: "PostgreSQL",
        counts,
        prefill: prefill_took,
        measured,
        storage,
        pruned,
        cpu_note: "the server backend (client process in brackets)",
    })
}

fn mib(b: f64) -> String {
    if b >= 1_048_576.0 { format!("{:.1} MiB", b / 1_048_576.0) } else { format!("{:.0} KiB", b / 1024.0) }
}

fn print_report(args: &Args, pop: &Population, reports: &[Report]) {
    let c = reports.first().map(|r| r.counts).unwrap_or_default();
    let typical_days = ((pop.users - pop.heavy_users) as i64 * pop.days) as f64;
    let heavy_days = (pop.heavy_users as i64 * pop.days) as f64;
    println!(
        "Population: {} users ({} speaking 13 min a day, {} speaking 8 h) x {} days = {} prints ({:.1} M) in {} sessions, \
         {:.0} prints per key on average; one session in ten replays one of {RECORDINGS} shared recordings. \
         {} measured stream-minutes per store after {} of warm-up.",
        pop.users,
        pop.users - pop.heavy_users,
        pop.heavy_users,
        pop.days,
        c.prints(),
        c.prints() as f64 / 1e6,
        c.sessions(),
        c.prints() as f64 / 65_536.0,
        args.minutes,
        warmup(args.minutes),
    );
    println!();
    println!("## One stream-minute (121 sampled codes: lookups, then inserts)");
    println!();
    println!("| store | call | wall median | wall p99 | CPU per call | median / baseline | CPU / baseline |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in reports {
        let pg = r.name == "PostgreSQL";
        for (what, m) in &r.measured {
            let cpu_us = |s: &Series| if pg { s.backend_cpu_us() } else { s.own_cpu_us() };
            let cpu = |s: &Series| {
                if pg {
                    format!("{:.0} µs ({:.0})", s.backend_cpu_us(), s.own_cpu_us())
                } else {
                    format!("{:.0} µs", s.own_cpu_us())
                }
            };
            let base = &m.baseline;
            for (call, s) in [
                ("stream-minute, 1 flush of 121 (the default 60 s flush)", &m.one_flush),
                ("stream-minute, 4 flushes of 30 (a 15 s flush)", &m.four_flushes),
                ("baseline: `upsert_stream_session`", base),
            ] {
                let strong = if std::ptr::eq(s, &m.one_flush) { "**" } else { "" };
                println!(
                    "| {}{what} | {call} | {:.0} µs | {:.0} µs | {} | {strong}{:.1}x{strong} | {strong}{:.0}x{strong} |",
                    r.name,
                    s.median(),
                    s.p99(),
                    cpu(s),
                    s.median() / base.median(),
                    cpu_us(s) / cpu_us(base),
                );
            }
        }
    }
    println!();
    for r in reports {
        println!("- CPU, {}: {}; a mean over the calls, from `schedstat`.", r.name, r.cpu_note);
    }
    println!(
        "- The baseline is one committed write, like each flush's `add_prints`; on PostgreSQL each waits for a WAL flush, so their wall times follow the disk's other load, while CPU per call does not."
    );
    // What the lookups find depends on the population only; the first measurement speaks for all.
    if let Some((_, m)) = reports.first().and_then(|r| r.measured.first()) {
        let f = &m.found;
        let n = m.one_flush.wall_us.len().max(1) as f64;
        let horizon = if f.horizons_ms.is_empty() {
            "no key reached the limit".to_owned()
        } else {
            format!(
                "the oldest print a key at the limit returned was heard {:.1} h before (median): at this population a lookup sees that far back",
                quantile(&f.horizons_ms, 0.5) / MS_PER_HOUR as f64
            )
        };
        println!(
            "- Per 1-flush stream-minute the lookup returned {:.0} prints ({:.0} distinct keys, {:.0}% of them at the {POSTING_LIMIT}-print limit) and the store added 121. {:.0}% of the samples found their recording heard earlier (≤ {HIT_MAX_BITS} bits apart, ≥ 5 min before); {horizon}.",
            f.rows as f64 / n,
            f.keys as f64 / n,
            100.0 * f.saturated_keys as f64 / f.keys.max(1) as f64,
            100.0 * f.samples_with_hit as f64 / f.samples.max(1) as f64,
        );
    }
    println!();
    println!("## Storage");
    println!();
    println!(
        "| store | bytes per print | bytes per session | typical user-day (13 min, {:.0} prints, {} sessions) | heavy user-day (8 h, {:.0} prints, {} sessions) | typical user over the 8-day retention | prefill |",
        c.typical_prints as f64 / typical_days.max(1.0),
        TYPICAL_SESSIONS,
        c.heavy_prints as f64 / heavy_days.max(1.0),
        HEAVY_SESSIONS
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let per_print = r.storage.prints_bytes as f64 / r.counts.prints() as f64;
        let per_session = r.storage.sessions_bytes as f64 / r.counts.sessions() as f64;
        let day = |prints: u64, sessions: u64, days: f64| {
            (prints as f64 * per_print + sessions as f64 * per_session) / days.max(1.0)
        };
        let typical = day(r.counts.typical_prints, r.counts.typical_sessions, typical_days);
        let heavy = day(r.counts.heavy_prints, r.counts.heavy_sessions, heavy_days);
        println!(
            "| {} | {:.1} | {:.0} | **{}** | **{}** | {} | {:.0} s ({:.0} prints/s) |",
            r.name,
            per_print,
            per_session,
            mib(typical),
            mib(heavy),
            mib(typical * 8.0),
            r.prefill.as_secs_f64(),
            r.counts.prints() as f64 / r.prefill.as_secs_f64(),
        );
    }
    println!();
    for r in reports {
        println!("- {}: {}.", r.name, r.storage.detail);
    }
    println!();
    println!("## Prune of one day");
    println!();
    println!(
        "| store | prints deleted | time | per million prints | baseline calls during it (every 20 ms), longest | within the service's 5 s `database_timeout` |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for r in reports {
        let p = &r.pruned;
        let within = match &p.within_default_timeout {
            None => "(no timeout)".to_owned(),
            Some(Ok(())) => "yes".to_owned(),
            Some(Err(e)) => format!("**no**: {e}"),
        };
        println!(
            "| {} | {} | {:.2} s | {:.2} s | {}, {:.0} ms | {} |",
            r.name,
            p.removed,
            p.took.as_secs_f64(),
            p.took.as_secs_f64() / (p.removed.max(1) as f64 / 1e6),
            p.baseline_calls,
            p.baseline_max_us / 1e3,
            within
        );
        if p.removed != r.counts.first_day_prints {
            println!("\n(expected {} prints of the first day)", r.counts.first_day_prints);
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.heavy) {
        bail!("--heavy must be between 0 and 1, got {}", args.heavy);
    }
    if !(2..=8).contains(&args.days) {
        bail!(
            "--days must be 2 to 8 (one day is pruned, the rest stays within the 8-day retention), got {}",
            args.days
        );
    }
    if args.users == 0 || args.minutes == 0 {
        bail!("--users and --minutes must be positive");
    }
    let pop = Population {
        users: args.users,
        heavy_users: (args.users as f64 * args.heavy).round() as u64,
        days: args.days,
        seed: args.seed,
    };
    let mut reports = Vec::new();
    for store in &args.stores {
        eprintln!("{store}:");
        let report = match store.as_str() {
            "embedded" => run_embedded(&args, &pop).await?,
            "postgres" => run_postgres(&args, &pop).await?,
            other => bail!("unknown store {other:?}: embedded or postgres"),
        };
        reports.push(report);
    }
    print_report(&args, &pop, &reports);
    Ok(())
}
