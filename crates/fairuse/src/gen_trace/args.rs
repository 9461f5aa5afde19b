//! The command line of `fairuse gen-trace`, what a run reports, and the checks on the arguments.

use anyhow::{anyhow, bail};
use fairuse_domain::time::Timestamp;

/// Arguments of `fairuse gen-trace`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenTraceArgs {
    /// Number of users.
    #[arg(long, default_value_t = 1000)]
    pub users: u64,
    /// Days of usage.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Share of users who abuse (0..=1), spread over the abuse types.
    #[arg(long, default_value_t = 0.02)]
    pub abusers: f64,
    /// Share of users who are heavy but honest (0..=1), spread over meetings all day, live
    /// lectures, calls, a night shift and a family sharing one device.
    #[arg(long, default_value_t = 0.03)]
    pub heavy: f64,
    /// Start instant, RFC 3339.
    #[arg(long, default_value = "2026-03-02T00:00:00Z")]
    pub start: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write conversation metadata lines too (for the heuristic classifier).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub conversations: bool,
    /// Write `verdict` lines so `simulate --classifier scripted` knows the truth.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub verdicts: bool,
    /// Output file; `-` for stdout.
    #[arg(long, short, default_value = "-")]
    pub out: String,
    /// Also write who each user is, one JSON line per user (`{"uid":..,"kind":..}`), for
    /// `fairuse eval`. The trace itself stays a plain `simulate` trace.
    #[arg(long)]
    pub labels: Option<String>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a generated trace holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenSummary {
    pub users: u64,
    pub abusers: u64,
    /// Heavy honest users (meetings, lectures, calls, night shift, family).
    pub heavy: u64,
    /// Every line written, ticks included.
    pub lines: u64,
    /// `usage` lines (realtime flushes, offline uploads and their retries).
    pub usage_lines: u64,
}

const MAX_USERS: u64 = 10_000_000;
const MAX_DAYS: u32 = 366;

pub(super) fn validate(args: &GenTraceArgs) -> anyhow::Result<Timestamp> {
    if !(1..=MAX_USERS).contains(&args.users) {
        bail!("--users must be between 1 and {MAX_USERS}, got {}", args.users);
    }
    if !(1..=MAX_DAYS).contains(&args.days) {
        bail!("--days must be between 1 and {MAX_DAYS}, got {}", args.days);
    }
    if !(0.0..=1.0).contains(&args.abusers) {
        bail!("--abusers must be between 0 and 1, got {}", args.abusers);
    }
    if !(0.0..=1.0).contains(&args.heavy) {
        bail!("--heavy must be between 0 and 1, got {}", args.heavy);
    }
    Timestamp::parse_rfc3339(&args.start)
        .map_err(|e| anyhow!("--start must be an RFC 3339 instant such as 2026-03-02T00:00:00Z: {e}"))
}
