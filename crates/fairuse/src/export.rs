//! `fairuse export-trace`: writes what the stores recorded (minute buckets, STT per day, plans,
//! conversations, verdicts and admin actions) as a `simulate` trace (SPEC section 8), so that
//! `fairuse backtest` can replay an operator's own history under another policy.
//!
//! What the stores keep decides what a trace can say, and the README lists the gaps:
//! - usage is one `usage` line per (minute, lane) bucket at the start of its minute: reports within
//!   a minute, their idempotency keys and session totals are already folded into the bucket;
//! - STT audio is counted per user and UTC day (the budget counter), not per minute: each day's
//!   total is spread over that day's buckets in proportion to their speech, so daily totals are
//!   exact and the split within a day is an estimate;
//! - the plan is the user's plan now (plan changes leave no history), stated at the trace's start;
//! - `classified` events become `verdict` lines, at the start of their minute (before that minute's
//!   usage), which `--classifier scripted` replays; the heuristic ignores them and judges again;
//! - `admin_reset` and `admin_set_stage` events become `admin` lines; resolutions (an overturned
//!   verdict), exemptions and appeals have no trace line and are left out;
//! - exempt users (dynamically, or in the live policy's configuration) are left out: nothing was
//!   enforced on them, and a pseudonymised uid could no longer match the configured list;
//! - gateway stream sessions become `stream_session` lines (the last snapshot the store kept, at
//!   its `updated_at`), from one lookback before the period as conversations are; with
//!   pseudonymised uids their session ids are pseudonymised too.
//!
//! Everyone starts at `none` with no prior verdicts at the start of the trace, so export a week
//! more than the period to judge. Output is sorted and deterministic for a given store and `now`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use fairuse_domain::classifier::Conversation;
use fairuse_domain::engine::EventKind;
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::policy::Policy;
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::{Clock, DurationMs, MS_PER_DAY, MS_PER_MINUTE, Timestamp};
use fairuse_server::clock::SystemClock;
use fairuse_server::service::Stores;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::config::{Config, load_policy};
use crate::serve::build_stores;

/// A pseudonymisation key shorter than this is refused: a short key can be guessed, and then every
/// pseudonym reversed by hashing candidate uids.
pub const MIN_KEY_BYTES: usize = 16;

/// Conversations and stream sessions read per user at most.
const READ_LIMIT: usize = 100_000;

/// How far ahead of `now` a bucket may be (reports may be stamped up to 5 minutes ahead).
const FUTURE_MINUTES: i64 = 5;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// History from `now - since_ms` on.
    pub since_ms: i64,
    /// Only these users; every user with usage or events in the period when `None`.
    pub uids: Option<Vec<Uid>>,
    /// Replace every uid (and conversation id) by a keyed hash (HMAC-SHA256) with this key.
    pub pseudonymise_key: Option<Vec<u8>>,
}

/// What was written, and what was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub users: u64,
    pub lines: u64,
    pub usage_lines: u64,
    pub plan_lines: u64,
    pub conversation_lines: u64,
    pub verdict_lines: u64,
    pub admin_lines: u64,
    pub stt_ms: i64,
    pub stream_session_lines: u64,
    pub exempt_users_left_out: u64,
    /// Resolutions, exemptions and appeals: events with no trace line.
    pub events_left_out: u64,
    /// What the operator should know about the export (printed by the command).
    pub warnings: Vec<String>,
}

/// One trace line; the field order is the one SPEC section 8 shows.
#[derive(Serialize)]
struct Line<'a> {
    t: String,
    #[serde(rename = "type")]
    kind: &'static str,
    uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lane: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speech_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stt_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits_exhausted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation: Option<&'a Conversation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a StreamSession>,
    #[serde(skip_serializing_if = "Option::is_none")]
    misuse_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
}

impl<'a> Line<'a> {
    fn new(t: Timestamp, kind: &'static str, uid: &'a str) -> Self {
        Line {
            t: t.to_rfc3339(),
            kind,
            uid,
            lane: None,
            speech_ms: None,
            stt_ms: None,
            plan: None,
            credits_exhausted: None,
            conversation: None,
            session: None,
            misuse_score: None,
            usage_type: None,
            action: None,
            stage: None,
            until: None,
        }
    }
}

/// Lines of one instant are written in this order: admin actions first (as the replay test orders
/// them), a verdict before the usage it judges, conversations before usage. Plans come before all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Order {
    Admin,
    Verdict,
    Conversation,
    Session,
    Usage,
}

/// `HMAC-SHA256(key, text)`, hex, shortened to 96 bits: collisions are out of reach for any
/// population, and the result is a valid uid.
fn pseudonym(key: &[u8], tag: &str, text: &str) -> anyhow::Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).context("--pseudonymise-key")?;
    mac.update(tag.as_bytes());
    mac.update(&[0]);
    mac.update(text.as_bytes());
    Ok(format!("{tag}{}", &hex::encode(mac.finalize().into_bytes())[..24]))
}

/// The pseudonym `export-trace --pseudonymise-key` gives `uid`: to find a user of a backtest
/// report again, given the key.
pub fn pseudonym_of_uid(key: &[u8], uid: &str) -> anyhow::Result<String> {
    pseudonym(key, "p", uid)
}

/// Splits `total` over `weights` in proportion, in whole milliseconds that add up to `total`.
fn spread(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i128 = weights.iter().map(|&w| i128::from(w.max(0))).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let (mut acc, mut given) = (0i128, 0i64);
    weights
        .iter()
        .map(|&w| {
            acc += i128::from(w.max(0));
            // Exact: the running share is floor(total * acc / sum), so the last one ends at total.
            let upto = (i128::from(total) * acc / sum) as i64;
            let part = upto - given;
            given = upto;
            part
        })
        .collect()
}

/// Reads the stores and writes the trace to `out`. `policy` is the live policy: its retention,
/// classifier lookback and configured exemptions.
pub async fn export_trace(
    stores: &Stores,
    policy: &Policy,
    options: &ExportOptions,
    now: Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<ExportSummary> {
    if options.since_ms <= 0 {
        bail!("--since: must be longer than zero");
    }
    if let Some(key) = &options.pseudonymise_key
        && key.len() < MIN_KEY_BYTES
    {
        bail!("--pseudonymise-key: at least {MIN_KEY_BYTES} bytes, got {}", key.len());
    }
    let retention = policy.metering.retention.ms();
    let from = now.minus_ms(options.since_ms);
    let from_minute = from.minute();
    let uids: Vec<Uid> = match &options.uids {
        Some(list) => {
            let mut list = list.clone();
            list.sort();
            list.dedup();
            list
        }
        None => {
            let mut list = stores.meter.users_since(from_minute).await.context("listing users with usage")?;
            for u in stores.durable.users_with_events_since(from).await.context("listing users with events")? {
                list.push(Uid::parse(&u).with_context(|| format!("a stored event's uid {u:?}"))?);
            }
            list.sort();
            list.dedup();
            list
        }
    };

    let mut summary = ExportSummary::default();
    if options.since_ms > retention {
        summary.warnings.push(format!(
            "--since {} is longer than the retention ({}): older usage is already pruned",
            DurationMs(options.since_ms).human(),
            DurationMs(retention).human()
        ));
    }
    // (instant, order, user's name in the trace, sequence) -> line. By name, not by real uid, so
    // the order of pseudonymised lines says nothing about the uids behind them.
    let mut lines: BTreeMap<(i64, Order, String, u64), String> = BTreeMap::new();
    // (name, plan, credits exhausted) of users not on the default plan.
    let mut plans: Vec<(String, String, bool)> = Vec::new();
    let mut seq = 0u64;
    let mut push = |lines: &mut BTreeMap<_, _>, t: Timestamp, order: Order, line: &Line<'_>| {
        seq += 1;
        let text = serde_json::to_string(line).context("writing a trace line")?;
        lines.insert((t.millis(), order, line.uid.to_owned(), seq), text);
        anyhow::Ok(())
    };
    for uid in &uids {
        let state = stores.durable.load(uid).await.with_context(|| format!("reading the state of {uid}"))?;
        let state = state.map(|v| v.value).unwrap_or_default();
        if state.exempt || policy.is_exempt_in_config(uid.as_str()) {
            summary.exempt_users_left_out += 1;
            continue;
        }
        let name = match &options.pseudonymise_key {
            Some(key) => pseudonym_of_uid(key, uid.as_str())?,
            None => uid.to_string(),
        };
        let mut wrote_any = false;

        // Usage: every bucket from the start of the first day (its STT total covers the whole
        // day), written from `from` on.
        let day_start_minute = from.utc_day() * (MS_PER_DAY / MS_PER_MINUTE);
        let mut buckets: Vec<(i64, Lane, i64)> = Vec::new();
        for lane in Lane::ALL {
            let series = stores
                .meter
                .minute_series(uid, lane, day_start_minute.min(from_minute), now.minute() + FUTURE_MINUTES)
                .await
                .with_context(|| format!("reading the minute buckets of {uid}"))?;
            buckets.extend(series.into_iter().filter(|&(_, ms)| ms != 0).map(|(m, ms)| (m, lane, ms)));
        }
        buckets.sort_by_key(|&(m, lane, _)| (m, lane.index()));
        let mut by_day: BTreeMap<i64, Vec<(i64, Lane, i64)>> = BTreeMap::new();
        for b in buckets {
            by_day.entry(Timestamp::from_millis(b.0 * MS_PER_MINUTE).utc_day()).or_default().push(b);
        }
        for day in from.utc_day()..=now.utc_day() {
            let stt = stores.budget.used(uid, day).await.with_context(|| format!("reading the STT of {uid}"))?;
            let day_buckets = by_day.remove(&day).unwrap_or_default();
            let weights: Vec<i64> = day_buckets.iter().map(|b| b.2).collect();
            let mut shares = spread(stt, &weights);
            if weights.is_empty() && stt > 0 {
                // STT with no speech at all that day: one line at the day's first instant in range.
                let t = Timestamp::from_millis(day * MS_PER_DAY).max(from);
                let line = Line {
                    lane: Some("realtime"),
                    speech_ms: Some(0),
                    stt_ms: Some(stt),
                    ..Line::new(t, "usage", &name)
                };
                push(&mut lines, t, Order::Usage, &line)?;
                summary.usage_lines += 1;
                summary.stt_ms += stt;
                wrote_any = true;
                continue;
            }
            for ((minute, lane, ms), share) in day_buckets.into_iter().zip(shares.drain(..)) {
                if minute < from_minute {
                    continue; // counted for the day's proportions only
                }
                let t = Timestamp::from_millis(minute * MS_PER_MINUTE);
                let line = Line {
                    lane: Some(lane.as_str()),
                    speech_ms: Some(ms),
                    stt_ms: Some(share),
                    ..Line::new(t, "usage", &name)
                };
                push(&mut lines, t, Order::Usage, &line)?;
                summary.usage_lines += 1;
                summary.stt_ms += share;
                wrote_any = true;
            }
        }

        // Conversations the classifier could read during the period: from one lookback earlier,
        // each at the instant it finished (the earliest the host can have sent it).
        let lookback = policy.classifier.lookback.ms();
        let conversations = stores
            .conversations
            .since(uid, from.minus_ms(lookback), READ_LIMIT)
            .await
            .with_context(|| format!("reading the conversations of {uid}"))?;
        for mut c in conversations {
            if let Some(key) = &options.pseudonymise_key {
                c.conversation_id = pseudonym(key, "c", &format!("{}\0{}", uid.as_str(), c.conversation_id))?;
            }
            let t = c.finished_at;
            push(
                &mut lines,
                t,
                Order::Conversation,
                &Line { conversation: Some(&c), ..Line::new(t, "conversation", &name) },
            )?;
            summary.conversation_lines += 1;
            wrote_any = true;
        }

        // Verdicts and admin actions.
        let events =
            stores.durable.events_since(uid, from).await.with_context(|| format!("reading the events of {uid}"))?;
        for e in &events {
            match e.kind {
                EventKind::Classified => {
                    let Some(v) = &e.verdict else { continue };
                    let t = Timestamp::from_millis(e.created_at.minute() * MS_PER_MINUTE);
                    let line = Line {
                        misuse_score: Some(v.misuse_score),
                        usage_type: Some(v.usage_type.as_str()),
                        ..Line::new(t, "verdict", &name)
                    };
                    push(&mut lines, t, Order::Verdict, &line)?;
                    summary.verdict_lines += 1;
                }
                EventKind::AdminReset => {
                    let line = Line { action: Some("reset"), ..Line::new(e.created_at, "admin", &name) };
                    push(&mut lines, e.created_at, Order::Admin, &line)?;
                    summary.admin_lines += 1;
                }
                EventKind::AdminSetStage => {
                    let line = Line {
                        action: Some("set_stage"),
                        stage: Some(e.new_stage),
                        until: e.stage_until.map(Timestamp::to_rfc3339),
                        ..Line::new(e.created_at, "admin", &name)
                    };
                    push(&mut lines, e.created_at, Order::Admin, &line)?;
                    summary.admin_lines += 1;
                }
                EventKind::AdminResolve | EventKind::AdminExempt | EventKind::AdminUnexempt | EventKind::Appeal => {
                    summary.events_left_out += 1;
                    continue;
                }
                // What the simulator derives itself.
                EventKind::StageChanged | EventKind::BudgetExhausted | EventKind::TimerExpired => continue,
            }
            wrote_any = true;
        }

        // Gateway stream sessions, like conversations from one lookback earlier: the latest
        // snapshot of each, at the instant it was taken.
        let sessions = stores
            .conversations
            .stream_sessions_since(uid, from.minus_ms(lookback), READ_LIMIT)
            .await
            .with_context(|| format!("reading the stream sessions of {uid}"))?;
        for mut s in sessions {
            if let Some(key) = &options.pseudonymise_key {
                s.session_id = pseudonym(key, "s", &format!("{}\0{}", uid.as_str(), s.session_id))?;
            }
            let t = s.updated_at;
            push(&mut lines, t, Order::Session, &Line { session: Some(&s), ..Line::new(t, "stream_session", &name) })?;
            summary.stream_session_lines += 1;
            wrote_any = true;
        }

        let default_plan = policy.plan_name(policy.default_plan_id());
        let plan = state.plan.as_deref().unwrap_or(default_plan);
        if wrote_any {
            summary.users += 1;
            if plan != default_plan || state.credits_exhausted {
                plans.push((name, plan.to_owned(), state.credits_exhausted));
            }
        }
    }

    // Plans are stated at the trace's first instant, before anything else.
    plans.sort();
    let first = lines.keys().next().map_or(from, |k| Timestamp::from_millis(k.0));
    for (name, plan, credits_exhausted) in &plans {
        let line =
            Line { plan: Some(plan), credits_exhausted: Some(*credits_exhausted), ..Line::new(first, "plan", name) };
        writeln!(out, "{}", serde_json::to_string(&line).context("writing a trace line")?)
            .context("writing the trace")?;
        summary.lines += 1;
        summary.plan_lines += 1;
    }
    for text in lines.values() {
        writeln!(out, "{text}").context("writing the trace")?;
        summary.lines += 1;
    }
    out.flush().context("writing the trace")?;
    Ok(summary)
}

/// Arguments of `fairuse export-trace`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The process configuration file (fairuse.toml): it chooses the stores, as for `serve`.
    #[arg(long, env = "FAIRUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the embedded store keeps its data [default: ./data, or server.data_dir].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// How much history to export, back from now ("7d", "36h"; the retention keeps 8 days).
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// Only these users (comma-separated); every user with usage or events in the period by default.
    #[arg(long, value_delimiter = ',')]
    pub uids: Vec<String>,
    /// Replace uids and conversation ids by HMAC-SHA256 pseudonyms under this key (at least 16
    /// bytes; keep it to map results back). Conversation titles and overviews are kept: the
    /// classifier reads them.
    #[arg(long, env = "FAIRUSE_PSEUDONYMISE_KEY", hide_env_values = true)]
    pub pseudonymise_key: Option<String>,
    /// Where the trace goes; `-` is standard output.
    #[arg(long)]
    pub out: String,
}

impl ExportArgs {
    /// The options, with every flag checked (errors name the flag).
    pub fn options(&self) -> anyhow::Result<ExportOptions> {
        let since = DurationMs::parse(&self.since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
        let uids = if self.uids.is_empty() {
            None
        } else {
            let parsed: Result<Vec<Uid>, _> = self
                .uids
                .iter()
                .map(|u| Uid::parse(u.trim()).map_err(|e| anyhow::anyhow!("--uids: {u:?}: {e}")))
                .collect();
            Some(parsed?)
        };
        Ok(ExportOptions {
            since_ms: since.ms(),
            uids,
            pseudonymise_key: self.pseudonymise_key.as_ref().map(|k| k.as_bytes().to_vec()),
        })
    }
}

/// `fairuse export-trace`: the stores and the live policy as `serve` would build them, history up
/// to the wall clock's now.
pub async fn run(args: &ExportArgs, env: &BTreeMap<String, String>) -> anyhow::Result<ExportSummary> {
    let options = args.options()?;
    let mut config = Config::load(args.config.as_deref(), env)?;
    if let Some(d) = &args.data_dir {
        config.server.data_dir = d.clone();
    }
    let policy = load_policy(config.policy_path().as_deref(), env)?;
    let built = build_stores(&config).await?;
    let mut out: Box<dyn Write> = if args.out == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        let file = std::fs::File::create(&args.out).with_context(|| format!("--out: creating {}", args.out))?;
        Box::new(std::io::BufWriter::new(file))
    };
    let summary = export_trace(&built.stores, &policy, &options, SystemClock.now(), &mut out).await?;
    if let Some(store) = built.embedded {
        store.close().await;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_adds_up_and_follows_the_weights() {
        assert_eq!(spread(100, &[1, 1, 2]), vec![25, 25, 50]);
        assert_eq!(spread(10, &[1, 1, 1]), vec![3, 3, 4]);
        assert_eq!(spread(7, &[0, 0]), vec![0, 0]);
        let parts = spread(86_400_000, &[17, 3, 60_000, 1, 999]);
        assert_eq!(parts.iter().sum::<i64>(), 86_400_000);
    }

    #[test]
    fn pseudonyms_are_keyed_stable_and_valid_uids() {
        let a = pseudonym(b"0123456789abcdef", "p", "alice").unwrap();
        assert_eq!(a, pseudonym(b"0123456789abcdef", "p", "alice").unwrap());
        assert_ne!(a, pseudonym(b"0123456789abcdeX", "p", "alice").unwrap(), "another key, another name");
        assert_ne!(a, pseudonym(b"0123456789abcdef", "p", "bob").unwrap());
        assert_eq!(a.len(), 25);
        Uid::parse(&a).unwrap();
    }
}
