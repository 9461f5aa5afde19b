//! `fairuse gen-trace`: realistic synthetic JSON-lines traces for `fairuse simulate` (SPEC sections
//! 1 and 8), for backtests and benchmarks.
//!
//! The model, in one place so a reader can judge how realistic it is:
//!
//! * **Honest users** speak a daily amount (VAD speech over `realtime + sync_fresh`) drawn from a
//!   log-normal fitted to Omi's numbers (median 12.7 min, P95 2.1 h) whose tail above the P95 is
//!   compressed so that the P99 is 3.4 h and the heaviest of 100,000 users lands near Omi's worst
//!   (11.7 h). A user's level persists: 70 % of the log-variance is drawn once per user, 30 % day to
//!   day. Sessions fall in the user's waking hours in their own time zone, at 30-60 % speech
//!   density. Some users upload offline recordings (`sync_fresh`, with an idempotency key) instead
//!   of streaming, and a few uploads are retried with the same key, as real clients do. One
//!   conversation in fifty is media the device happened to pick up (a podcast in the car, a film
//!   with a friend).
//! * **Heavy honest users** (the `--heavy` share, default 3 %, round-robin over five kinds) speak
//!   2-6 h a day, above the caps, for what the product is for: a manager in meetings all day (now
//!   and then a board meeting split into "part 1" and "part 2"), a student with five live courses
//!   ("CS101 lecture — week 3", "MATH 221 Lecture 14": numbered, same length every time), a
//!   support rep on thirty short calls a day in two categories, a night-shift nurse speaking from
//!   22:00 to 07:00, and a family sharing one device (many speakers, every category, cartoons
//!   after school, a bedtime chapter, a weekly movie night).
//! * **Abusers** (the `--abusers` share, round-robin over the five usage types) stream 16-22 h a
//!   day from the first hour, in sessions of several hours at 75-95 % density, and their
//!   conversation titles look like what they play: sequential chapters, episodes, lectures of one
//!   length, many short client files. Each abuser's app titles items in one of three styles (one
//!   without numbers or media words in the title), and one description in five names no media
//!   at all, because summaries of recorded media do not always say what it is.
//!
//! `--labels FILE` writes who each user is (`{"uid":..,"kind":..}`, kinds in [`LABELS`]) for
//! `fairuse eval`; the trace itself stays a plain `simulate` trace, with `verdict` lines (the
//! truth for `--classifier scripted`) unless `--verdicts false`.
//!
//! Generation has two phases so that 100,000 users x 7 days fits in memory. First every user's
//! sessions are planned (compact records, a few dozen per user). Then the trace is written one
//! simulated hour at a time: each user's cursor emits its compact records up to the end of the
//! hour, the hour is sorted by (time, kind, user, sequence) and rendered, and a `tick` closes it.
//! The output is a pure function of the arguments: the same seed gives the same bytes.
//!
//! It depends only on the domain crate's time helpers, and never reads the clock.
//!
//! One file per job: `args.rs` (the command line), `progress.rs` (the bar), `rng.rs` (the PRNG),
//! `model.rs` (the usage distribution and the populations), `corpus.rs` (word lists), `plan.rs` and
//! `heavy.rs` (the planners), `emit.rs` (records per hour), `render.rs` (JSON lines) and `describe.rs`
//! (titles and overviews). This file holds the two phases that tie them together.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context;
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR};

mod args;
mod corpus;
mod describe;
mod emit;
mod heavy;
mod model;
mod plan;
mod progress;
mod render;
pub(crate) mod rng;
#[cfg(test)]
mod tests;

pub use args::{GenSummary, GenTraceArgs};
pub use model::LABELS;

use args::validate;
use emit::{Cursor, Emitter, Rec, RecKind, emit_until};
use heavy::plan_heavy;
use model::{ABUSE_TYPES, HEAVY_KINDS, Population};
use plan::{Period, UserPlan, plan_abuser, plan_honest, to_u32};
use progress::progress_bar;
use render::Renderer;
use rng::{Rng, stream_seed};

/// Writes the trace to `--out` (`-` is standard output), with a progress bar on standard error.
pub fn run(args: &GenTraceArgs) -> anyhow::Result<GenSummary> {
    validate(args)?;
    let bar = progress_bar(args)?;
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let mut labels = match &args.labels {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("--labels: cannot create {path}"))?;
            Some(BufWriter::new(file))
        }
        None => None,
    };
    let labels_out = labels.as_mut().map(|w| w as &mut dyn Write);
    let summary = if args.out == "-" {
        let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let summary = generate_with_labels(args, &mut out, labels_out, &mut progress)?;
        out.flush().context("writing the trace to standard output")?;
        summary
    } else {
        let file = File::create(&args.out).with_context(|| format!("--out: cannot create {}", args.out))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let summary = generate_with_labels(args, &mut out, labels_out, &mut progress)
            .with_context(|| format!("writing {}", args.out))?;
        out.flush().with_context(|| format!("writing {}", args.out))?;
        summary
    };
    if let (Some(mut w), Some(path)) = (labels, args.labels.as_ref()) {
        w.flush().with_context(|| format!("writing {path}"))?;
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// The core: writes the trace to `out` and calls `progress` with (users done, users total) now
/// and then. Users are planned up front and written an hour at a time, so "users done" is the
/// share of simulated hours written, scaled to the user count.
pub fn generate(
    args: &GenTraceArgs,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<GenSummary> {
    generate_with_labels(args, out, None, progress)
}

/// [`generate`], and the labels (one `{"uid":..,"kind":..}` line per user, kinds from [`LABELS`])
/// to `labels` when given.
pub fn generate_with_labels(
    args: &GenTraceArgs,
    out: &mut dyn Write,
    labels: Option<&mut dyn Write>,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<GenSummary> {
    let start = validate(args)?.millis();
    let users = args.users;
    let period = Period {
        start,
        end: start + i64::from(args.days) * MS_PER_DAY,
        first_midnight: start.div_euclid(MS_PER_DAY) * MS_PER_DAY,
        days: args.days,
    };
    progress(0, users);

    // Who abuses: a seeded shuffle, the first `n` of it, types round-robin.
    let abuser_count = ((users as f64 * args.abusers).round() as u64).min(users);
    let mut order: Vec<u32> = (0..to_u32(users as i64)).collect();
    let mut rng = Rng::new(stream_seed(args.seed, 1, 0));
    for i in 0..abuser_count as usize {
        let j = i + rng.below(order.len() - i);
        order.swap(i, j);
    }
    let mut population: Vec<Population> = vec![Population::Honest; users as usize];
    for (i, &u) in order[..abuser_count as usize].iter().enumerate() {
        population[u as usize] = Population::Abuser(ABUSE_TYPES[i % ABUSE_TYPES.len()]);
    }
    // Heavy honest users: a second seeded shuffle of the rest (its own stream, so the abusers are
    // the same with or without them), kinds round-robin.
    let rest = &mut order[abuser_count as usize..];
    let heavy_count = ((users as f64 * args.heavy).round() as u64).min(rest.len() as u64);
    let mut rng = Rng::new(stream_seed(args.seed, 3, 0));
    for i in 0..heavy_count as usize {
        let j = i + rng.below(rest.len() - i);
        rest.swap(i, j);
        population[rest[i] as usize] = Population::Heavy(HEAVY_KINDS[i % HEAVY_KINDS.len()]);
    }
    drop(order);

    if let Some(w) = labels {
        let mut text = Vec::with_capacity(40 * population.len());
        for (u, who) in population.iter().enumerate() {
            text.extend_from_slice(b"{\"uid\":\"");
            text.extend_from_slice(format!("u{u:06}").as_bytes());
            text.extend_from_slice(b"\",\"kind\":\"");
            text.extend_from_slice(who.label().as_bytes());
            text.extend_from_slice(b"\"}\n");
        }
        w.write_all(&text).context("writing the labels")?;
    }

    let plans: Vec<UserPlan> = population
        .iter()
        .enumerate()
        .map(|(u, who)| {
            let mut rng = Rng::new(stream_seed(args.seed, 2, u as u64));
            match who {
                Population::Abuser(ty) => plan_abuser(&mut rng, &period, *ty),
                Population::Heavy(kind) => plan_heavy(&mut rng, &period, *kind),
                Population::Honest => plan_honest(&mut rng, &period),
            }
        })
        .collect();
    drop(population);

    let mut renderer = Renderer {
        uids: (0..users).map(|u| format!("u{u:06}")).collect(),
        time_ms: i64::MIN,
        time_text: String::new(),
    };
    let mut summary = GenSummary { users, abusers: abuser_count, heavy: heavy_count, lines: 0, usage_lines: 0 };
    let mut text: Vec<u8> = Vec::with_capacity(1 << 21);
    for (u, plan) in plans.iter().enumerate() {
        renderer.plan(&mut text, start, u, plan);
        summary.lines += 1;
        if let Some((score, usage_type)) = plan.verdict
            && args.verdicts
        {
            renderer.verdict(&mut text, start, u, score, usage_type);
            summary.lines += 1;
        }
        if text.len() >= 1 << 20 {
            out.write_all(&text)?;
            text.clear();
        }
    }

    let mut cursors: Vec<Cursor> = plans
        .iter()
        .map(|p| Cursor { conv: p.sessions.first().map_or(0, |s| s.conv_lo), ..Cursor::default() })
        .collect();
    let hours = u64::from(args.days) * 24;
    let mut recs: Vec<Rec> = Vec::new();
    for hour in 1..=hours {
        let until = start + hour as i64 * MS_PER_HOUR;
        recs.clear();
        for (u, (plan, cursor)) in plans.iter().zip(cursors.iter_mut()).enumerate() {
            let mut e = Emitter { start, user: u as u32, cursor, out: &mut recs };
            emit_until(plan, &mut e, until, args.conversations);
        }
        recs.sort_unstable_by_key(|r| (r.key, r.order));
        for rec in &recs {
            renderer.record(&mut text, start, rec, &plans)?;
            if rec.kind != RecKind::Conversation {
                summary.usage_lines += 1;
            }
            if text.len() >= 1 << 20 {
                out.write_all(&text)?;
                text.clear();
            }
        }
        summary.lines += recs.len() as u64;
        renderer.tick(&mut text, until);
        summary.lines += 1;
        progress(users * hour / hours, users);
    }
    out.write_all(&text)?;
    Ok(summary)
}
