//! The Redis benchmark of issue 4: fairuse's `RedisHotStore` record-and-check against a replay of
//! Omi's v1 Redis command sequence, in one run, against one Redis, for users with 10, 1,440 and
//! 10,080 active minutes of history.
//!
//! Usage: bench_redis <redis-url> [seconds per measured run, default 5] [warm-up seconds, default 1]
//! [connections of the concurrent mode, default 50]
//!
//! The URL must point at a PRIVATE Redis: the benchmark resets its statistics (`CONFIG RESETSTAT`)
//! before every measured run and reads `INFO commandstats` / `INFO cpu` after it, so any other
//! client would be counted too. `bench/redis.sh` starts such a server and runs this. The keys of
//! every size are written under a fresh prefix and deleted (SCAN + UNLINK) once it is measured.
//!
//! What one operation is:
//! - fairuse: `record_and_read` of one realtime report of 60,000 ms at `now`, returning the totals
//!   of the default policy's windows (24 h / 72 h / 168 h): one EVALSHA.
//! - Omi: `record_speech_ms` then `get_rolling_speech_ms`, written here with redis-rs, following
//!   the v1 code (`backend/utils/fair_use.py` after the "#5748 reviewer fix"; reference sections
//!   3.2 and 3.4, and 11.1 item 1):
//!   - write: a separate, non-pipelined `ZRANGEBYSCORE speech 0 (now - 691200)` fetching the
//!     stale members, then ONE non-transactional pipeline (one round trip, as redis-py's
//!     `pipeline(transaction=False)`): `HINCRBY bucket <minute> ms`, `EXPIRE bucket 691200`,
//!     `ZADD speech <minute*60> <minute>`, `EXPIRE speech 691200`,
//!     `ZREMRANGEBYSCORE speech 0 (now - 691200)`, and `HDEL bucket <stale...>` only if there are
//!     stale members. The field and member are the bucket number `floor(now / 60)` (not the
//!     minute's epoch second; that is the score), and the prune horizon is the 8-day retention
//!     `FAIR_USE_REDIS_RETENTION_SECONDS` = 691200, not 7 days: both as in the reference.
//!   - check: `ZRANGEBYSCORE speech (now - 604800) +inf` (inclusive), then, if anything came
//!     back, one `HMGET bucket <every member>`; summed here like Omi: every bucket counts toward
//!     weekly, toward 3-day if its start >= now - 259200 and toward daily if >= now - 86400;
//!     null values are skipped.
//!
//!   That is 4 round trips and 8 commands per operation (9 when a member is stale). Omi's
//!   Python client also parses replies in Python; this replay uses the same Rust client as the
//!   fairuse side, so the baseline here is, if anything, faster than Omi's real one.
//!
//! Each size gets its own users, all with the same history: `minutes` contiguous active minutes
//! of 60,000 ms ending one minute before the user's start instant (users start at different
//! minutes of the day, the same ones for every size). Operations cycle over the users, and every
//! user has its own clock that advances by one minute per operation on that user, so each
//! operation writes a new minute bucket as a live stream would (and the 10,080-minute users stay
//! at a full week). Small histories get more users so that the minutes a run adds stay small next
//! to the history (the report says what the checks actually read and how far the clocks moved).
//!
//! Measured per size and system, on one connection, sequentially, after a warm-up: operations
//! per second and latency; round trips per operation (fairuse: `commands_sent()` deltas; Omi:
//! counted by the replay); Redis commands per operation from `INFO commandstats` deltas, both
//! those the client sent and those executed (which includes the commands a Lua script runs);
//! Redis CPU per operation (`INFO cpu` deltas). A second pass measures the check alone
//! (fairuse `read_totals`, Omi `get_rolling_speech_ms`). The markdown report goes to stdout,
//! progress to stderr.
//!
//! The concurrent mode (issue 12; the fourth argument, N connections) runs fairuse's
//! record-and-check on N connections at once against a trivial EVALSHA (`return 1`) on as many,
//! and a design probe that is not the product: the native MULTI/EXEC a fast path for users far
//! under every cap would send instead of the script.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::policy::Policy;
use fairuse_domain::store::UsageMeterStore;
use fairuse_domain::time::{MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::UsageReport;
use fairuse_store_redis::{RedisHotStore, RedisOptions};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

type Res<T> = Result<T, Box<dyn Error>>;

/// (active minutes of history, users cycled over). Sized so that a run adds few minutes per user
/// next to the history (a 10-minute user would otherwise be a 500-minute user by the end).
const SIZES: [(i64, usize); 3] = [(10, 10_000), (1_440, 1_000), (10_080, 100)];

/// Speech per minute of history and per operation: a fully active minute.
const SPEECH_MS: i64 = 60_000;

/// Omi's `FAIR_USE_REDIS_RETENTION_SECONDS` (key TTL and prune horizon) and bucket width.
const OMI_RETENTION_S: i64 = 691_200;
const OMI_BUCKET_S: i64 = 60;

/// Users' clocks start `user * this % 1440` minutes before the run's start instant.
const START_SPREAD_STEP: i64 = 601;

/// Reports per `record_and_read` call while loading fairuse's history.
const PRELOAD_BATCH: usize = 1_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    Fairuse,
    Omi,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Fairuse => "fairuse",
            System::Omi => "Omi v1",
        }
    }

    /// Whether a `cmdstat_<name>` counts commands this system's client sent itself (the rest
    /// were run by a Lua script).
    fn sends(self, command: &str) -> bool {
        match self {
            System::Fairuse => command == "evalsha" || command == "eval",
            System::Omi => true,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    RecordAndCheck,
    CheckOnly,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::RecordAndCheck => "record-and-check",
            Kind::CheckOnly => "check only",
        }
    }
}

/// Omi's v1 meter, replayed with redis-rs (see the module docs for what it follows).
struct Omi {
    con: MultiplexedConnection,
    prefix: String,
    round_trips: u64,
    commands: u64,
    checks: u64,
    members_read: u64,
}

impl Omi {
    fn bucket_key(&self, uid: &str) -> String {
        format!("{}:fair_use:bucket:{uid}", self.prefix)
    }

    fn zset_key(&self, uid: &str) -> String {
        format!("{}:fair_use:speech:{uid}", self.prefix)
    }

    /// `record_speech_ms(uid, speech_ms)` at `now` (epoch seconds).
    async fn record_speech_ms(&mut self, uid: &str, speech_ms: i64, now: i64) -> redis::RedisResult<()> {
        if speech_ms <= 0 {
            return Ok(());
        }
        let bucket_minute = now / OMI_BUCKET_S;
        let field = bucket_minute.to_string();
        let bucket_key = self.bucket_key(uid);
        let zset_key = self.zset_key(uid);
        let cutoff = now - OMI_RETENTION_S;
        // The stale members, fetched on their own before the pipeline runs ("#5748 reviewer fix").
        let stale: Vec<String> =
            redis::cmd("ZRANGEBYSCORE").arg(&zset_key).arg(0).arg(cutoff).query_async(&mut self.con).await?;
        self.round_trips += 1;
        self.commands += 1;
        let mut pipe = redis::pipe(); // not atomic: redis-py's pipeline(transaction=False)
        pipe.cmd("HINCRBY").arg(&bucket_key).arg(&field).arg(speech_ms).ignore();
        pipe.cmd("EXPIRE").arg(&bucket_key).arg(OMI_RETENTION_S).ignore();
        pipe.cmd("ZADD").arg(&zset_key).arg(bucket_minute * OMI_BUCKET_S).arg(&field).ignore();
        pipe.cmd("EXPIRE").arg(&zset_key).arg(OMI_RETENTION_S).ignore();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&zset_key).arg(0).arg(cutoff).ignore();
        let mut commands = 5;
        if !stale.is_empty() {
            pipe.cmd("HDEL").arg(&bucket_key).arg(&stale).ignore();
            commands += 1;
        }
        pipe.query_async::<()>(&mut self.con).await?;
        self.round_trips += 1;
        self.commands += commands;
        Ok(())
    }

    /// `get_rolling_speech_ms(uid)` at `now` (epoch seconds): `[daily, three_day, weekly]` ms.
    async fn get_rolling_speech_ms(&mut self, uid: &str, now: i64) -> redis::RedisResult<[i64; 3]> {
        let mut result = [0i64; 3];
        let bucket_key = self.bucket_key(uid);
        let zset_key = self.zset_key(uid);
        let cutoff_weekly = now - 7 * 24 * 3600;
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&zset_key)
            .arg(cutoff_weekly)
            .arg("+inf")
            .query_async(&mut self.con)
            .await?;
        self.round_trips += 1;
        self.commands += 1;
        self.checks += 1;
        self.members_read += members.len() as u64;
        if members.is_empty() {
            return Ok(result);
        }
        let values: Vec<Option<i64>> =
            redis::cmd("HMGET").arg(&bucket_key).arg(&members).query_async(&mut self.con).await?;
        self.round_trips += 1;
        self.commands += 1;
        let cutoff_daily = now - 24 * 3600;
        let cutoff_3day = now - 3 * 24 * 3600;
        for (member, value) in members.iter().zip(values) {
            let Some(ms) = value else { continue };
            let bucket_ts = member.parse::<i64>().map_err(|_| bad_reply("a non-numeric bucket member"))? * OMI_BUCKET_S;
            result[2] += ms;
            if bucket_ts >= cutoff_3day {
                result[1] += ms;
            }
            if bucket_ts >= cutoff_daily {
                result[0] += ms;
            }
        }
        Ok(result)
    }
}

fn bad_reply(what: &str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "unexpected reply", what.to_owned()))
}

/// One size: its users, both systems' keys and connections, and every user's clock per system.
struct SizeBench {
    minutes: i64,
    uids: Vec<Uid>,
    policy: Policy,
    /// The run's start instant; each user starts at its own minute of the day before it.
    t0: Timestamp,
    fairuse: RedisHotStore,
    omi: Omi,
    /// Operations done on each user, per system: its clock is its start + that many minutes.
    clock_fu: Vec<i64>,
    clock_omi: Vec<i64>,
    next_fu: usize,
    next_omi: usize,
    /// Hash fields fairuse's checks read (from `read_totals_with_cost`), and how many checks.
    fu_fields_read: i64,
    fu_checks: i64,
}

impl SizeBench {
    /// Where a user's clock starts: `t0` minus a minute of the day that differs per user
    /// (601 is prime to 1440), so every size's checks fall at the same spread of times of day. The
    /// hash fields a fairuse check reads depend on where `now` falls in the hour and the day.
    fn start(&self, user: usize) -> Timestamp {
        self.t0.minus_ms((user as i64 * START_SPREAD_STEP).rem_euclid(1_440) * MS_PER_MINUTE)
    }

    fn now_fu(&self, user: usize) -> Timestamp {
        self.start(user).plus_ms(self.clock_fu[user] * MS_PER_MINUTE)
    }

    fn now_omi_secs(&self, user: usize) -> i64 {
        self.start(user).plus_ms(self.clock_omi[user] * MS_PER_MINUTE).secs()
    }

    async fn op(&mut self, system: System, kind: Kind) -> Res<()> {
        match system {
            System::Fairuse => {
                let user = self.next_fu;
                self.next_fu = (user + 1) % self.uids.len();
                match kind {
                    Kind::RecordAndCheck => {
                        self.clock_fu[user] += 1;
                        let report = UsageReport::delta(Lane::Realtime, SPEECH_MS);
                        let now = self.now_fu(user);
                        let (_, totals, read) = self
                            .fairuse
                            .record_and_read_with_cost(&self.uids[user], &[report], &self.policy, now)
                            .await?;
                        if totals.len() != 3 || totals[2] <= 0 {
                            return Err(format!("fairuse returned totals {totals:?}").into());
                        }
                        self.fu_fields_read += read;
                        self.fu_checks += 1;
                    }
                    Kind::CheckOnly => {
                        let now = self.now_fu(user);
                        let (totals, read) =
                            self.fairuse.read_totals_with_cost(&self.uids[user], &self.policy, now).await?;
                        if totals.len() != 3 || totals[2] <= 0 {
                            return Err(format!("fairuse returned totals {totals:?}").into());
                        }
                        self.fu_fields_read += read;
                        self.fu_checks += 1;
                    }
                }
            }
            System::Omi => {
                let user = self.next_omi;
                self.next_omi = (user + 1) % self.uids.len();
                if kind == Kind::RecordAndCheck {
                    self.clock_omi[user] += 1;
                }
                let now = self.now_omi_secs(user);
                let uid = self.uids[user].as_str();
                if kind == Kind::RecordAndCheck {
                    self.omi.record_speech_ms(uid, SPEECH_MS, now).await?;
                }
                let totals = self.omi.get_rolling_speech_ms(uid, now).await?;
                if totals[2] <= 0 {
                    return Err(format!("Omi returned totals {totals:?}").into());
                }
            }
        }
        Ok(())
    }
}

/// What `INFO commandstats` and `INFO cpu` say, from the admin connection.
struct ServerStats {
    /// command -> (calls, usec); INFO and CONFIG (the benchmark's own probes) left out.
    commands: BTreeMap<String, (u64, u64)>,
    cpu_secs: f64,
}

async fn server_stats(admin: &mut MultiplexedConnection) -> Res<ServerStats> {
    let text: String = redis::cmd("INFO").arg("commandstats").query_async(admin).await?;
    let mut commands = BTreeMap::new();
    for line in text.lines() {
        let Some((name, fields)) = line.trim().strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
            continue;
        };
        if name.starts_with("info") || name.starts_with("config") {
            continue;
        }
        let field = |key: &str| -> u64 {
            fields
                .split(',')
                .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        commands.insert(name.to_owned(), (field("calls"), field("usec")));
    }
    let text: String = redis::cmd("INFO").arg("cpu").query_async(admin).await?;
    let mut cpu_secs = 0.0;
    for line in text.lines() {
        if let Some((key, value)) = line.trim().split_once(':')
            && (key == "used_cpu_sys" || key == "used_cpu_user")
        {
            cpu_secs += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok(ServerStats { commands, cpu_secs })
}

/// One measured run.
struct Run {
    minutes: i64,
    users: usize,
    system: System,
    kind: Kind,
    ops: u64,
    secs: f64,
    /// Per-operation latencies, sorted.
    latencies_us: Vec<f64>,
    round_trips: u64,
    /// Commands the client counted itself (fairuse `commands_sent()`, Omi's replay counter).
    client_commands: u64,
    /// command -> (calls, usec) during the run (the stats were reset just before it).
    commandstats: BTreeMap<String, (u64, u64)>,
    cpu_us: f64,
    /// Mean Omi members / fairuse hash fields read per check.
    read_per_check: Option<f64>,
}

impl Run {
    fn per_op(&self, x: f64) -> f64 {
        x / self.ops as f64
    }

    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us.get(i).copied().unwrap_or(f64::NAN)
    }

    /// Commands the client sent, by `INFO commandstats`.
    fn sent(&self) -> u64 {
        self.commandstats.iter().filter(|(name, _)| self.system.sends(name)).map(|(_, (calls, _))| calls).sum()
    }

    /// Commands Redis executed, those a Lua script ran included.
    fn executed(&self) -> u64 {
        self.commandstats.values().map(|(calls, _)| calls).sum()
    }

    /// Redis time inside the commands the client sent (a script's time includes its commands).
    fn command_usec(&self) -> u64 {
        self.commandstats.iter().filter(|(name, _)| self.system.sends(name)).map(|(_, (_, usec))| usec).sum()
    }

    fn breakdown(&self) -> String {
        let mut text = String::new();
        for (name, (calls, _)) in &self.commandstats {
            if !text.is_empty() {
                text.push_str(", ");
            }
            let _ = write!(text, "{name} {:.2}", self.per_op(*calls as f64));
        }
        text
    }
}

async fn measure(
    bench: &mut SizeBench,
    admin: &mut MultiplexedConnection,
    system: System,
    kind: Kind,
    warmup: Duration,
    duration: Duration,
) -> Res<Run> {
    let started = Instant::now();
    while started.elapsed() < warmup {
        bench.op(system, kind).await?;
    }
    redis::cmd("CONFIG").arg("RESETSTAT").query_async::<()>(admin).await?;
    let before = server_stats(admin).await?;
    let sent_before = bench.fairuse.commands_sent();
    let (rt_before, cmd_before, checks_before, members_before) =
        (bench.omi.round_trips, bench.omi.commands, bench.omi.checks, bench.omi.members_read);
    let (fields_before, fu_checks_before) = (bench.fu_fields_read, bench.fu_checks);
    let mut latencies_us = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    loop {
        let t = Instant::now();
        bench.op(system, kind).await?;
        latencies_us.push(t.elapsed().as_secs_f64() * 1e6);
        if start.elapsed() >= duration {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let after = server_stats(admin).await?;
    let ops = latencies_us.len() as u64;
    latencies_us.sort_by(f64::total_cmp);
    let mut commandstats = after.commands;
    for (name, (calls, usec)) in commandstats.iter_mut() {
        if let Some((c, u)) = before.commands.get(name) {
            *calls -= c;
            *usec -= u;
        }
    }
    commandstats.retain(|_, (calls, _)| *calls > 0);
    let (round_trips, client_commands, read_per_check) = match system {
        System::Fairuse => {
            let sent = bench.fairuse.commands_sent() - sent_before;
            let checks = bench.fu_checks - fu_checks_before;
            let read = (checks > 0).then(|| (bench.fu_fields_read - fields_before) as f64 / checks as f64);
            (sent, sent, read)
        }
        System::Omi => {
            let checks = bench.omi.checks - checks_before;
            let read = (checks > 0).then(|| (bench.omi.members_read - members_before) as f64 / checks as f64);
            (bench.omi.round_trips - rt_before, bench.omi.commands - cmd_before, read)
        }
    };
    let run = Run {
        minutes: bench.minutes,
        users: bench.uids.len(),
        system,
        kind,
        ops,
        secs,
        latencies_us,
        round_trips,
        client_commands,
        commandstats,
        cpu_us: (after.cpu_secs - before.cpu_secs) * 1e6,
        read_per_check,
    };
    eprintln!(
        "  {:>6} min {:<8} {:<16} {:>9.0} ops/s  {:.2} round trips/op  {}",
        run.minutes,
        system.name(),
        kind.name(),
        run.ops_per_sec(),
        run.per_op(run.round_trips as f64),
        run.breakdown()
    );
    Ok(run)
}

/// Loads `minutes` contiguous active minutes ending one minute before its start for every user, on
/// both sides, through each side's own write path (fairuse: `record_and_read` with stamped
/// reports at the start instant; Omi: the end state of its HINCRBY/ZADD writes, in bulk).
async fn preload(bench: &mut SizeBench) -> Res<()> {
    let history = |start: Timestamp| start.minute() - bench.minutes..start.minute();
    for (user, uid) in bench.uids.iter().enumerate() {
        let start = bench.start(user);
        let reports: Vec<UsageReport> = history(start)
            .map(|m| UsageReport {
                at: Some(Timestamp::from_millis(m * MS_PER_MINUTE)),
                ..UsageReport::delta(Lane::Realtime, SPEECH_MS)
            })
            .collect();
        for batch in reports.chunks(PRELOAD_BATCH) {
            bench.fairuse.record_and_read(uid, batch, &bench.policy, start).await?;
        }
    }
    let users_per_pipeline = (20_000 / bench.minutes as usize).max(1);
    let users: Vec<usize> = (0..bench.uids.len()).collect();
    for chunk in users.chunks(users_per_pipeline) {
        let mut pipe = redis::pipe();
        for &user in chunk {
            let uid = bench.uids[user].as_str();
            let bucket_key = bench.omi.bucket_key(uid);
            let zset_key = bench.omi.zset_key(uid);
            let hset = pipe.cmd("HSET").arg(&bucket_key);
            for m in history(bench.start(user)) {
                hset.arg(m.to_string()).arg(SPEECH_MS);
            }
            pipe.ignore();
            pipe.cmd("EXPIRE").arg(&bucket_key).arg(OMI_RETENTION_S).ignore();
            let zadd = pipe.cmd("ZADD").arg(&zset_key);
            for m in history(bench.start(user)) {
                zadd.arg(m * OMI_BUCKET_S).arg(m.to_string());
            }
            pipe.ignore();
            pipe.cmd("EXPIRE").arg(&zset_key).arg(OMI_RETENTION_S).ignore();
        }
        pipe.query_async::<()>(&mut bench.omi.con).await?;
    }
    Ok(())
}

/// Both sides must see the same history: at a user's start their totals may differ by the one minute at a
/// window's left edge (Omi counts a bucket starting exactly at the cutoff, fairuse's windows are
/// `now - M < minute <= now`). Returns a line for the report.
async fn cross_check(bench: &mut SizeBench) -> Res<String> {
    let mut line = String::new();
    for user in [0, bench.uids.len() - 1] {
        let uid = bench.uids[user].clone();
        let start = bench.start(user);
        let fu = bench.fairuse.read_totals(&uid, &bench.policy, start).await?;
        let omi = bench.omi.get_rolling_speech_ms(uid.as_str(), start.secs()).await?;
        for w in 0..3 {
            if (fu[w] - omi[w]).abs() > SPEECH_MS {
                return Err(format!("{uid}: fairuse totals {fu:?} but Omi totals {omi:?} for the same history").into());
            }
        }
        if line.is_empty() {
            let _ = write!(line, "fairuse {fu:?}, Omi {omi:?} (daily, 3-day, weekly ms at the start)");
        }
    }
    Ok(line)
}

/// Deletes every key under both prefixes of a size.
async fn delete_keys(admin: &mut MultiplexedConnection, pattern: &str) -> Res<u64> {
    let mut cursor = 0u64;
    let mut deleted = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1_000).query_async(admin).await?;
        if !keys.is_empty() {
            deleted += redis::cmd("UNLINK").arg(&keys).query_async::<u64>(admin).await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// The trivial script the concurrent mode measures against: one key, no command.
const TRIVIAL_SCRIPT: &str = "return 1";

/// Users of the concurrent mode (10 active minutes each, the typical user).
const CONCURRENT_USERS: usize = 10_000;
const CONCURRENT_MINUTES: i64 = 10;

/// One system's result in the concurrent mode.
struct ConcurrentRun {
    name: &'static str,
    ops: u64,
    secs: f64,
    cpu_us: f64,
    commandstats: BTreeMap<String, (u64, u64)>,
    latencies_us: Vec<f64>,
}

impl ConcurrentRun {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us.get(i).copied().unwrap_or(f64::NAN)
    }

    fn executed_per_op(&self) -> f64 {
        self.commandstats.values().map(|(calls, _)| calls).sum::<u64>() as f64 / self.ops as f64
    }
}

/// Runs `op(connection index, operation number)` on `conns` tasks at once until `duration` has
/// passed (after a warm-up of the same), with the server's statistics around the measured part.
async fn run_concurrent<F, Fut>(
    name: &'static str,
    conns: usize,
    admin: &mut MultiplexedConnection,
    warmup: Duration,
    duration: Duration,
    op: F,
) -> Res<ConcurrentRun>
where
    F: Fn(usize, u64) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = Res<()>> + 'static,
{
    let mut next_op = vec![0u64; conns];
    for (phase, length) in [("warm-up", warmup), ("measured", duration)] {
        let before = if phase == "measured" {
            redis::cmd("CONFIG").arg("RESETSTAT").query_async::<()>(admin).await?;
            Some(server_stats(admin).await?)
        } else {
            None
        };
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (c, first) in next_op.iter().enumerate() {
            let (op, first) = (op.clone(), *first);
            tasks.spawn_local(async move {
                let mut n = first;
                let mut latencies = Vec::with_capacity(1 << 14);
                loop {
                    let t = Instant::now();
                    op(c, n).await.map_err(|e| e.to_string())?;
                    latencies.push(t.elapsed().as_secs_f64() * 1e6);
                    n += 1;
                    if start.elapsed() >= length {
                        return Ok::<_, String>((c, n, latencies));
                    }
                }
            });
        }
        let mut latencies_us = Vec::new();
        let mut ops = 0;
        while let Some(done) = tasks.join_next().await {
            let (c, n, latencies) = done??;
            ops += n - next_op[c];
            next_op[c] = n;
            latencies_us.extend(latencies);
        }
        let secs = start.elapsed().as_secs_f64();
        if let Some(before) = before {
            let after = server_stats(admin).await?;
            let mut commandstats = after.commands;
            for (name, (calls, usec)) in commandstats.iter_mut() {
                if let Some((c, u)) = before.commands.get(name) {
                    *calls -= c;
                    *usec -= u;
                }
            }
            commandstats.retain(|_, (calls, _)| *calls > 0);
            latencies_us.sort_by(f64::total_cmp);
            let run = ConcurrentRun {
                name,
                ops,
                secs,
                cpu_us: (after.cpu_secs - before.cpu_secs) * 1e6,
                commandstats,
                latencies_us,
            };
            eprintln!("  {conns} connections, {name}: {:.0} ops/s", run.ops_per_sec());
            return Ok(run);
        }
    }
    Err("no measured phase".into())
}

/// The concurrent mode: `conns` connections at once, each cycling over its own share of
/// 10,000 users with 10 active minutes (every user's clock advancing a minute per report),
/// against a trivial EVALSHA (`return 1` naming one key) on as many connections, same Redis,
/// same run.
async fn concurrent(
    url: &str,
    client: &redis::Client,
    admin: &mut MultiplexedConnection,
    run_id: &str,
    t0: Timestamp,
    conns: usize,
    (warmup, duration): (Duration, Duration),
) -> Res<String> {
    let prefix = format!("{run_id}-conc");
    let options = RedisOptions {
        key_prefix: prefix.clone(),
        command_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
    };
    let policy = std::rc::Rc::new(Policy::default());
    let uids: std::rc::Rc<Vec<Uid>> = std::rc::Rc::new(
        (0..CONCURRENT_USERS).map(|i| Uid::parse(&format!("user{i}"))).collect::<Result<Vec<_>, _>>()?,
    );
    eprintln!("concurrent mode: loading {CONCURRENT_USERS} users of {CONCURRENT_MINUTES} active minutes");
    let loader = RedisHotStore::connect(url, options.clone()).await?;
    for uid in uids.iter() {
        let reports: Vec<UsageReport> = (1..=CONCURRENT_MINUTES)
            .map(|m| UsageReport {
                at: Some(t0.minus_ms(m * MS_PER_MINUTE)),
                ..UsageReport::delta(Lane::Realtime, SPEECH_MS)
            })
            .collect();
        loader.record_and_read(uid, &reports, &policy, t0).await?;
    }
    let mut stores = Vec::with_capacity(conns);
    let mut plain = Vec::with_capacity(conns);
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    for _ in 0..conns {
        stores.push(RedisHotStore::connect(url, options.clone()).await?);
        plain.push(client.get_multiplexed_async_connection_with_config(&config).await?);
    }
    let stores = std::rc::Rc::new(stores);
    let trivial = redis::Script::new(TRIVIAL_SCRIPT);
    let sha = trivial.get_hash().to_owned();
    let _: () = redis::cmd("SCRIPT").arg("LOAD").arg(TRIVIAL_SCRIPT).query_async(admin).await?;
    let key_of = {
        let uids = uids.clone();
        let layout = loader.layout().clone();
        move |i: usize| layout.meter(&uids[i])
    };

    let local = tokio::task::LocalSet::new();
    let (fairuse, baseline, probe) = local
        .run_until(async {
            // Connection c serves users c, c + conns, ...; its n-th report goes to the
            // (n mod share)-th of them, at that user's minute n / share after t0.
            let share = move |c: usize| (CONCURRENT_USERS - c).div_ceil(conns);
            let fairuse = {
                let (stores, uids, policy) = (stores.clone(), uids.clone(), policy.clone());
                run_concurrent("fairuse record-and-check", conns, admin, warmup, duration, move |c, n| {
                    let (stores, uids, policy) = (stores.clone(), uids.clone(), policy.clone());
                    async move {
                        let share = share(c) as u64;
                        let user = c + conns * (n % share) as usize;
                        let now = t0.plus_ms((n / share + 1) as i64 * MS_PER_MINUTE);
                        let report = UsageReport::delta(Lane::Realtime, SPEECH_MS);
                        let (_, totals) = stores[c].record_and_read(&uids[user], &[report], &policy, now).await?;
                        if totals.len() != 3 || totals[2] <= 0 {
                            return Err(format!("fairuse returned totals {totals:?}").into());
                        }
                        Ok(())
                    }
                })
                .await?
            };
            let baseline = {
                let (plain, sha, key_of) = (plain.clone(), sha.clone(), key_of.clone());
                run_concurrent("trivial EVALSHA", conns, admin, warmup, duration, move |c, n| {
                    let (mut con, sha) = (plain[c].clone(), sha.clone());
                    let share = share(c) as u64;
                    let key = key_of(c + conns * (n % share) as usize);
                    async move {
                        let one: i64 = redis::cmd("EVALSHA").arg(&sha).arg(1).arg(&key).query_async(&mut con).await?;
                        if one != 1 {
                            return Err(format!("the trivial script returned {one}").into());
                        }
                        Ok(())
                    }
                })
                .await?
            };
            // A design probe, not the product: what a native fast path for a user far under
            // every cap would send in one round trip (issue 12), on the same users' meter
            // hashes: the capped minute, hour and day roll-ups incremented, a counter telling
            // the scripts their running sums are stale, the eight day totals that bound every
            // window from above, and the expiry. No script runs.
            let probe = {
                let (plain, key_of) = (plain.clone(), key_of.clone());
                run_concurrent("probe: native MULTI fast path", conns, admin, warmup, duration, move |c, n| {
                    let mut con = plain[c].clone();
                    let share = share(c) as u64;
                    let key = key_of(c + conns * (n % share) as usize);
                    let minute = t0.plus_ms((n / share + 1) as i64 * MS_PER_MINUTE).millis() / MS_PER_MINUTE;
                    let (hour, day) = (minute / 60, minute / 1440);
                    async move {
                        let days: Vec<String> = (day - 7..=day).map(|d| format!("d{d}")).collect();
                        let mut pipe = redis::pipe();
                        pipe.atomic()
                            .hincr(&key, minute.to_string(), SPEECH_MS)
                            .ignore()
                            .hincr(&key, format!("h{hour}"), SPEECH_MS)
                            .ignore()
                            .hincr(&key, format!("d{day}"), SPEECH_MS)
                            .ignore()
                            .hincr(&key, "fv", 1)
                            .ignore()
                            .cmd("HMGET")
                            .arg(&key)
                            .arg(&days)
                            .pexpire(&key, 8 * 86_400_000)
                            .ignore();
                        let (bound,): (Vec<Option<i64>>,) = pipe.query_async(&mut con).await?;
                        if bound.len() != 8 || bound[7].unwrap_or(0) < SPEECH_MS {
                            return Err(format!("the probe read day totals {bound:?}").into());
                        }
                        Ok(())
                    }
                })
                .await?
            };
            Ok::<_, Box<dyn Error>>((fairuse, baseline, probe))
        })
        .await?;
    let deleted = delete_keys(admin, &format!("{{{prefix}:*")).await?;
    eprintln!("  deleted {deleted} keys");

    let mut t = String::new();
    let _ = writeln!(
        t,
        "{conns} connections at once (one task each on the client's single thread), each cycling over its share of \
         {CONCURRENT_USERS} users with {CONCURRENT_MINUTES} active minutes, every user's clock advancing a minute per \
         report. fairuse: `record_and_read` of one realtime report of 60,000 ms with the 24 h / 72 h / 168 h totals. \
         Baseline: `EVALSHA` of `{TRIVIAL_SCRIPT}` naming one user's meter key, on as many connections, same Redis, \
         same run.\n"
    );
    t.push_str("| system | connections | ops | ops/s | p50 µs | p99 µs | commands executed/op | Redis CPU µs/op |\n");
    t.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in [&fairuse, &baseline, &probe] {
        let _ = writeln!(
            t,
            "| {} | {conns} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} |",
            r.name,
            r.ops,
            r.ops_per_sec(),
            r.percentile(0.5),
            r.percentile(0.99),
            r.executed_per_op(),
            r.cpu_us / r.ops as f64
        );
    }
    let _ = writeln!(
        t,
        "\nfairuse / trivial EVALSHA: {} of the ops/s, {} of the Redis CPU per op.",
        ratio(fairuse.ops_per_sec(), baseline.ops_per_sec()),
        ratio(fairuse.cpu_us / fairuse.ops as f64, baseline.cpu_us / baseline.ops as f64)
    );
    let _ = writeln!(
        t,
        "\nDesign probe (not the product; issue 12): one MULTI/EXEC of native commands per report (HINCRBY of the \
         minute, hour and day roll-ups and of a staleness counter, HMGET of the eight day totals that bound every \
         window from above, PEXPIRE), on the same meter hashes after the runs above: {} of the trivial EVALSHA's \
         ops/s, {} of its Redis CPU per op.",
        ratio(probe.ops_per_sec(), baseline.ops_per_sec()),
        ratio(probe.cpu_us / probe.ops as f64, baseline.cpu_us / baseline.ops as f64)
    );
    Ok(t)
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 { "n/a".into() } else { format!("{:.2}", a / b) }
}

fn table(runs: &[Run]) -> String {
    let mut t = String::new();
    t.push_str(
        "| active minutes | system | users | ops | ops/s | p50 µs | p99 µs | round trips/op | \
         commands sent/op (client count) | commands sent/op (commandstats) | commands executed/op \
         (commandstats, incl. Lua) | Redis CPU µs/op | Redis command µs/op | read per check |\n",
    );
    t.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in runs {
        let read = match (r.system, r.read_per_check) {
            (System::Fairuse, Some(x)) => format!("{x:.1} hash fields"),
            (System::Omi, Some(x)) => format!("{x:.0} members"),
            (_, None) => "n/a".into(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
            r.minutes,
            r.system.name(),
            r.users,
            r.ops,
            r.ops_per_sec(),
            r.percentile(0.5),
            r.percentile(0.99),
            r.per_op(r.round_trips as f64),
            r.per_op(r.client_commands as f64),
            r.per_op(r.sent() as f64),
            r.per_op(r.executed() as f64),
            r.per_op(r.cpu_us),
            r.per_op(r.command_usec() as f64),
            read
        );
    }
    t
}

fn ratios(record: &[Run], check: &[Run]) -> String {
    let mut t = String::new();
    t.push_str(
        "| active minutes | ops/s (record-and-check) | round trips/op | commands sent/op | commands executed/op | \
         Redis CPU µs/op | ops/s (check only) | Redis CPU µs/op (check only) |\n",
    );
    t.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for pair in record.chunks(2).zip(check.chunks(2)) {
        let ([fu, omi], [cfu, comi]) = pair else { continue };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            fu.minutes,
            ratio(fu.ops_per_sec(), omi.ops_per_sec()),
            ratio(fu.per_op(fu.round_trips as f64), omi.per_op(omi.round_trips as f64)),
            ratio(fu.per_op(fu.sent() as f64), omi.per_op(omi.sent() as f64)),
            ratio(fu.per_op(fu.executed() as f64), omi.per_op(omi.executed() as f64)),
            ratio(fu.per_op(fu.cpu_us), omi.per_op(omi.cpu_us)),
            ratio(cfu.ops_per_sec(), comi.ops_per_sec()),
            ratio(cfu.per_op(cfu.cpu_us), comi.per_op(comi.cpu_us)),
        );
    }
    t
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bench_redis <redis-url of a PRIVATE redis> [seconds per measured run, default 5] \
                 [warm-up seconds, default 1] [connections of the concurrent mode, default 50]";
    let Some(url) = args.get(1) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let parse_secs = |i: usize, default: f64| -> Res<Duration> {
        let secs = match args.get(i) {
            Some(text) => text.parse::<f64>().map_err(|_| format!("{text:?} is not a number of seconds\n{usage}"))?,
            None => default,
        };
        Ok(Duration::from_secs_f64(secs))
    };
    let duration = parse_secs(2, 5.0)?;
    let warmup = parse_secs(3, 1.0)?;
    let conns = match args.get(4) {
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=CONCURRENT_USERS).contains(&n) => n,
            _ => return Err(format!("connections must be 1-{CONCURRENT_USERS}, got {text:?}\n{usage}").into()),
        },
        None => 50,
    };

    let client = redis::Client::open(url.as_str())?;
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    let mut admin = client.get_multiplexed_async_connection_with_config(&config).await?;
    let version: String = redis::cmd("INFO").arg("server").query_async(&mut admin).await?;
    let version = version.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_owned();

    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let run_id = format!("bench-{}-{:x}", std::process::id(), nanos);
    // A real instant, on a minute boundary; users start up to a day before it (`SizeBench::start`).
    let t0 = Timestamp::from_millis((nanos / 1_000_000) as i64 / MS_PER_MINUTE * MS_PER_MINUTE);
    let policy = Policy::default();
    eprintln!("bench_redis: redis {version} at {url}, key prefix {run_id}-*, {duration:?} per run after {warmup:?}");

    let mut record_runs = Vec::new();
    let mut check_runs = Vec::new();
    let mut notes = Vec::new();
    for (minutes, users) in SIZES {
        let prefix = format!("{run_id}-{minutes}");
        let options = RedisOptions {
            key_prefix: format!("{prefix}-fu"),
            command_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
        };
        let fairuse = RedisHotStore::connect(url, options).await?;
        let omi = Omi {
            con: client.get_multiplexed_async_connection_with_config(&config).await?,
            prefix: format!("{prefix}-omi"),
            round_trips: 0,
            commands: 0,
            checks: 0,
            members_read: 0,
        };
        let uids = (0..users).map(|i| Uid::parse(&format!("user{i}"))).collect::<Result<Vec<_>, _>>()?;
        let mut bench = SizeBench {
            minutes,
            uids,
            policy: policy.clone(),
            t0,
            fairuse,
            omi,
            clock_fu: vec![0; users],
            clock_omi: vec![0; users],
            next_fu: 0,
            next_omi: 0,
            fu_fields_read: 0,
            fu_checks: 0,
        };
        let loading = Instant::now();
        eprintln!("{minutes} active minutes: loading {users} users on both sides");
        preload(&mut bench).await?;
        eprintln!("  loaded in {:.1} s", loading.elapsed().as_secs_f64());
        notes.push(format!("- {minutes} minutes, same history on both sides: {}", cross_check(&mut bench).await?));

        for system in [System::Fairuse, System::Omi] {
            record_runs.push(measure(&mut bench, &mut admin, system, Kind::RecordAndCheck, warmup, duration).await?);
        }
        for system in [System::Fairuse, System::Omi] {
            check_runs.push(measure(&mut bench, &mut admin, system, Kind::CheckOnly, warmup, duration).await?);
        }
        let mean_ops = |clock: &[i64]| clock.iter().sum::<i64>() as f64 / clock.len() as f64;
        notes.push(format!(
            "- {minutes} minutes: by the end a user had written {:.1} (fairuse) and {:.1} (Omi) more minutes \
             (warm-ups included)",
            mean_ops(&bench.clock_fu),
            mean_ops(&bench.clock_omi)
        ));
        let deleted = delete_keys(&mut admin, &format!("{{{prefix}-fu:*")).await?
            + delete_keys(&mut admin, &format!("{prefix}-omi:*")).await?;
        eprintln!("  deleted {deleted} keys");
    }

    let concurrent_section = concurrent(url, &client, &mut admin, &run_id, t0, conns, (warmup, duration)).await?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Redis {version}, one connection per system, operations sequential, {duration:?} per measured run after a {warmup:?} warm-up; users cycled round-robin, each with its own clock advancing one minute per operation.\n"
    );
    out.push_str("## Record-and-check\n\n");
    out.push_str(
        "fairuse: `record_and_read` of one realtime report of 60,000 ms, returning the 24 h / 72 h / 168 h \
         totals. Omi v1: `record_speech_ms` (ZRANGEBYSCORE for pruning, then one non-transactional pipeline \
         HINCRBY, EXPIRE, ZADD, EXPIRE, ZREMRANGEBYSCORE [, HDEL]) followed by `get_rolling_speech_ms` \
         (ZRANGEBYSCORE over 7 days, HMGET of every member, summed in Rust).\n\n",
    );
    out.push_str(&table(&record_runs));
    out.push_str("\n## Check only\n\n");
    out.push_str("fairuse: `read_totals` (one EVALSHA). Omi v1: `get_rolling_speech_ms`.\n\n");
    out.push_str(&table(&check_runs));
    out.push_str("\n## Ratios fairuse / Omi\n\n");
    out.push_str(&ratios(&record_runs, &check_runs));
    out.push_str("\n## Many clients\n\n");
    out.push_str(&concurrent_section);
    out.push_str("\n## Redis commands per operation (INFO commandstats)\n\n");
    for r in record_runs.iter().chain(&check_runs) {
        let agree = if r.sent() == r.client_commands { "" } else { " (client count and commandstats DISAGREE)" };
        let _ = writeln!(out, "- {} min, {}, {}: {}{agree}", r.minutes, r.system.name(), r.kind.name(), r.breakdown());
    }
    out.push_str("\n## Notes\n\n");
    for note in &notes {
        let _ = writeln!(out, "{note}");
    }
    out.push_str(
        "- Round trips: fairuse counts them with `commands_sent()` (one EVALSHA each); the Omi replay counts \
         its own (a pipeline is one). \"Commands executed\" includes the commands fairuse's Lua script runs \
         inside its one EVALSHA; \"Redis command µs\" is the time Redis spent in the commands the client sent \
         (a script's time includes its inner commands); \"Redis CPU µs\" is `used_cpu_user + used_cpu_sys` \
         of the whole server, socket I/O included.\n",
    );
    print!("{out}");
    Ok(())
}
