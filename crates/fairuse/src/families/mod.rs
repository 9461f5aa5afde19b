//! `fairuse gen-families`: a labelled population written from outside the heuristic, for
//! leave-one-family-out evaluation of the classifier.
//!
//! A *family* is one kind of user (an audiobook listener, a physician seeing patients) described
//! as data in `bench/families/<set>/<name>.toml`: whether its users abuse or are honest, whether
//! the family is for *tuning* (the heuristic's author may look at it) or *held out* (never shown to
//! that author, reported as unseen), its languages with the conversation titles and summaries a
//! host app would write for it, its categories, speaker counts, session lengths, daily hours and
//! speech density. The files were written independently of the heuristic's word lists, from how
//! real media and real working days are titled.
//!
//! The model of a user, so a reader can judge it:
//!
//! * **Abusers** start in the first minutes of the trace and each day fill `daily_hours` of wall
//!   time with sessions of `session_minutes` separated by `session_gap_minutes`, inside the 24
//!   hours of that day. **Honest users** start their day at a local `start_hour` in one of the
//!   family's `utc_offsets` and fill `daily_hours` the same way, with longer breaks.
//! * A session is cut into conversations of `conversation_minutes` with
//!   `conversation_gap_minutes` between them (what the host app turns into one titled item).
//! * Each conversation has a speaker count from `speakers` (small counts likelier) and a density
//!   drawn from `density`; each minute of it reports `speech_ms` = (density ± `minute_spread`) x
//!   the minute, on the `realtime` lane, at the end of the minute, with `stt_ms` the whole minute
//!   forwarded. Overviews of media and neutral titles are drawn from the language's `overviews`
//!   independently of the title, so they are generic by design.
//! * When a conversation ends, its metadata line follows 10-120 s later (the host's summariser),
//!   never before `finished_at`. Its title and overview come from one of the user's languages
//!   and one of three styles: an LLM summary of the content, a media-style or numbered title
//!   (`{n}` counts up per user), or a plain neutral title. Each user mixes the styles in their
//!   own proportions around the family's `style_weights`.
//!
//! The output is a plain `fairuse simulate` trace (a `plan` line per user, `usage` and
//! `conversation` lines, an hourly `tick`), in time order, a pure function of the family files
//! and the arguments. `--labels` writes `{"uid","kind","family","set","usage_type"}` per user,
//! with `kind` = `abuser_<family>` or `honest_<family>`; `fairuse eval` reads the `set` to report
//! tuning and held-out families apart.

mod audio;
mod model;
mod plan;
mod rng;

pub use model::*;
use plan::*;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, Timestamp};

/// Arguments of `fairuse gen-families`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenFamiliesArgs {
    /// The family files: `<dir>/tuning/*.toml` and `<dir>/held_out/*.toml`.
    #[arg(long, default_value = "bench/families")]
    pub dir: PathBuf,
    /// Users written per family.
    #[arg(long, default_value_t = 20)]
    pub users_per_family: u32,
    /// Days of usage.
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Start instant, RFC 3339.
    #[arg(long, default_value = "2026-03-02T00:00:00Z")]
    pub start: String,
    /// Only the families of this set (e.g. `tuning` for the heuristic's author).
    #[arg(long, value_enum)]
    pub set: Option<FamilySet>,
    /// Output trace; `-` for standard output.
    #[arg(long, short, default_value = "-")]
    pub out: String,
    /// Who each user is, one JSON line per user, for `fairuse eval --labels`.
    #[arg(long)]
    pub labels: Option<String>,
}

/// What a generated population holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FamiliesSummary {
    pub families: u64,
    pub users: u64,
    pub lines: u64,
    pub usage_lines: u64,
    pub conversations: u64,
    pub stream_sessions: u64,
}

/// Generation settings besides the families.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub users_per_family: u32,
    pub days: u32,
    pub seed: u64,
    /// Unix milliseconds of the trace's first instant.
    pub start_ms: i64,
}

/// Runs `fairuse gen-families`.
pub fn run(args: &GenFamiliesArgs) -> anyhow::Result<FamiliesSummary> {
    if args.users_per_family == 0 || args.users_per_family > 10_000 {
        bail!("--users-per-family: {} must be 1-10000", args.users_per_family);
    }
    if args.days == 0 || args.days > 30 {
        bail!("--days: {} must be 1-30", args.days);
    }
    let start = Timestamp::parse_rfc3339(&args.start).map_err(|e| anyhow::anyhow!("--start: {e}"))?;
    let mut families = load_dir(&args.dir)?;
    if let Some(set) = args.set {
        families.retain(|f| f.set == set);
        if families.is_empty() {
            bail!("--set {}: no family of that set in {}", set.as_str(), args.dir.display());
        }
    }
    let opts =
        Options { users_per_family: args.users_per_family, days: args.days, seed: args.seed, start_ms: start.millis() };
    let mut labels = match &args.labels {
        Some(path) => {
            Some(BufWriter::new(File::create(path).with_context(|| format!("--labels: cannot create {path}"))?))
        }
        None => None,
    };
    let summary = if args.out == "-" {
        let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let s = generate(&families, &opts, &mut out, labels.as_mut().map(|w| w as &mut dyn Write))?;
        out.flush().context("writing the trace to standard output")?;
        s
    } else {
        let file = File::create(&args.out).with_context(|| format!("--out: cannot create {}", args.out))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let s = generate(&families, &opts, &mut out, labels.as_mut().map(|w| w as &mut dyn Write))
            .with_context(|| format!("writing {}", args.out))?;
        out.flush().with_context(|| format!("writing {}", args.out))?;
        s
    };
    if let (Some(mut w), Some(path)) = (labels, &args.labels) {
        w.flush().with_context(|| format!("writing {path}"))?;
    }
    Ok(summary)
}

/// Writes the trace of `users_per_family` users of every family (and their labels), in time order.
pub fn generate(
    families: &[Family],
    opts: &Options,
    out: &mut dyn Write,
    mut labels: Option<&mut dyn Write>,
) -> anyhow::Result<FamiliesSummary> {
    for f in families {
        f.check().with_context(|| format!("family {:?}", f.name))?; // fields are public
    }
    let mut events = Vec::new();
    let mut users: Vec<UserOut> = Vec::new();
    for f in families {
        for i in 0..opts.users_per_family {
            let u = plan_user(f, users.len() as u32, i, opts, &mut events);
            if let Some(w) = labels.as_deref_mut() {
                let l = LabelOut {
                    uid: &u.uid,
                    kind: f.label_kind(),
                    family: &f.name,
                    set: f.set.as_str(),
                    usage_type: f.usage_type.as_deref(),
                };
                serde_json::to_writer(&mut *w, &l)?;
                w.write_all(b"\n")?;
            }
            users.push(u);
        }
    }
    let end = opts.start_ms + i64::from(opts.days) * MS_PER_DAY;
    let mut t = opts.start_ms;
    while t <= end {
        events.push(Ev { t, user: u32::MAX, seq: 0, payload: Payload::Tick });
        t += MS_PER_HOUR;
    }
    events.sort_by_key(|e| (e.t, e.rank(), e.user, e.seq));
    let mut summary =
        FamiliesSummary { families: families.len() as u64, users: users.len() as u64, ..Default::default() };
    let (mut time_ms, mut time_text) = (i64::MIN, String::new());
    let mut buf = Vec::with_capacity(256);
    for e in &events {
        if e.t != time_ms {
            time_ms = e.t;
            time_text = Timestamp::from_millis(e.t).to_rfc3339();
        }
        let mut line = Line {
            t: &time_text,
            kind: "tick",
            uid: None,
            lane: None,
            speech_ms: None,
            stt_ms: None,
            plan: None,
            credits_exhausted: None,
            conversation: None,
            session: None,
            audio: None,
        };
        if let Some(u) = users.get(e.user as usize) {
            line.uid = Some(&u.uid);
            match e.payload {
                Payload::Plan => {
                    line.kind = "plan";
                    line.plan = Some(&u.plan);
                    line.credits_exhausted = Some(false);
                }
                Payload::Usage { speech_ms, stt_ms } => {
                    line.kind = "usage";
                    line.lane = Some("realtime");
                    line.speech_ms = Some(speech_ms);
                    line.stt_ms = Some(stt_ms);
                    summary.usage_lines += 1;
                }
                Payload::Conversation(k) => {
                    line.kind = "conversation";
                    line.conversation = u.conversations.get(k);
                    summary.conversations += 1;
                }
                Payload::Session(k) => {
                    line.kind = "stream_session";
                    if let Some((session, audio)) = u.sessions.get(k) {
                        line.session = Some(session);
                        line.audio = Some(audio);
                    }
                    summary.stream_sessions += 1;
                }
                Payload::Tick => {}
            }
        }
        buf.clear();
        serde_json::to_writer(&mut buf, &line)?;
        buf.push(b'\n');
        out.write_all(&buf)?;
        summary.lines += 1;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::rng::Rng;
    use super::*;

    const MINIMAL: &str = r#"
name = "tiny"
kind = "honest"
set = "tuning"
description = "a test family"
plans = { free = 1.0 }
categories = { work = 1.0 }
style_weights = { summary = 1.0, media = 1.0, neutral = 0.0 }
daily_hours = [1.0, 2.0]
session_minutes = [30.0, 60.0]
session_gap_minutes = [10.0, 20.0]
conversation_minutes = [10.0, 30.0]
conversation_gap_minutes = [1.0, 5.0]
density = [0.3, 0.5]
speakers = [2, 3]
start_hour = [8.0, 9.0]
utc_offsets = [0]

[languages.en]
summaries = [["Budget review", "The team goes over the budget."]]
media_titles = ["Meeting {n} about {phrase}"]
overviews = ["A meeting about {phrase}."]
phrases = ["hiring"]
"#;

    #[test]
    fn a_minimal_family_parses_and_bad_ones_name_their_field() {
        let f = Family::from_toml_str(MINIMAL).expect("parses");
        assert_eq!(f.label_kind(), "honest_tiny");
        for (from, to, field) in [
            ("density = [0.3, 0.5]", "density = [0.5, 0.3]", "density"),
            ("start_hour = [8.0, 9.0]\n", "", "start_hour"),
            ("{n} about", "{m} about", "placeholder"),
            ("plans = { free = 1.0 }", "plans = { gold = 1.0 }", "plans"),
            ("name = \"tiny\"", "name = \"Tiny Family\"", "name"),
            ("set = \"tuning\"", "set = \"secret\"", "set"),
            ("speakers = [2, 3]", "speakers = [0, 3]", "speakers"),
        ] {
            let text = MINIMAL.replace(from, to);
            assert_ne!(text, MINIMAL, "{from}");
            let e = Family::from_toml_str(&text).expect_err(field);
            assert!(format!("{e:#}").contains(field), "{field}: {e:#}");
        }
    }

    #[test]
    fn titles_fill_their_placeholders_and_count_up() {
        let f = Family::from_toml_str(&MINIMAL.replace("summary = 1.0", "summary = 0.0")).expect("parses");
        let mut rng = Rng(3);
        let mut voice = Voice::new(&f, &mut rng);
        let first = voice.n;
        let (t1, o1) = voice.describe(&mut rng, 0);
        let (t2, _) = voice.describe(&mut rng, 0);
        assert_eq!(t1, format!("Meeting {first} about hiring"));
        assert_eq!(o1, "A meeting about hiring.");
        assert_eq!(t2, format!("Meeting {} about hiring", first + 1));
    }
}
