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
//!   of streaming, and a few uploads are retried with the same key, as real clients do.
//! * **Abusers** (the `--abusers` share, round-robin over the five usage types) stream 16-22 h a
//!   day from the first hour, in sessions of several hours at 75-95 % density, and their
//!   conversation titles look like what they play: sequential chapters, episodes, lectures of one
//!   length, many short client files.
//!
//! Generation has two phases so that 100,000 users x 7 days fits in memory. First every user's
//! sessions are planned (compact records, a few dozen per user). Then the trace is written one
//! simulated hour at a time: each user's cursor emits its compact records up to the end of the
//! hour, the hour is sorted by (time, kind, user, sequence) and rendered, and a `tick` closes it.
//! The output is a pure function of the arguments: the same seed gives the same bytes.
//!
//! It depends only on the domain crate's time helpers, and never reads the clock.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND, Timestamp};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

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
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a generated trace holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenSummary {
    pub users: u64,
    pub abusers: u64,
    /// Every line written, ticks included.
    pub lines: u64,
    /// `usage` lines (realtime flushes, offline uploads and their retries).
    pub usage_lines: u64,
}

const MAX_USERS: u64 = 10_000_000;
const MAX_DAYS: u32 = 366;

/// Writes the trace to `--out` (`-` is standard output), with a progress bar on standard error.
pub fn run(args: &GenTraceArgs) -> anyhow::Result<GenSummary> {
    validate(args)?;
    let bar = progress_bar(args)?;
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let summary = if args.out == "-" {
        let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let summary = generate(args, &mut out, &mut progress)?;
        out.flush().context("writing the trace to standard output")?;
        summary
    } else {
        let file = File::create(&args.out).with_context(|| format!("--out: cannot create {}", args.out))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let summary = generate(args, &mut out, &mut progress).with_context(|| format!("writing {}", args.out))?;
        out.flush().with_context(|| format!("writing {}", args.out))?;
        summary
    };
    bar.finish_and_clear();
    Ok(summary)
}

/// The bar is drawn on a terminal as usual; when standard error is not a terminal (a CI log) it
/// is shown only for long runs, as a plain line every few seconds (indicatif alone would hide it).
fn progress_bar(args: &GenTraceArgs) -> anyhow::Result<ProgressBar> {
    if args.quiet {
        return Ok(ProgressBar::hidden());
    }
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else if args.users >= 10_000 {
        ProgressDrawTarget::term_like_with_hz(Box::new(PlainLines::default()), 1)
    } else {
        return Ok(ProgressBar::hidden());
    };
    let style = ProgressStyle::with_template("gen-trace [{elapsed_precise}] {bar:40} {pos}/{len} users (eta {eta})")
        .context("progress bar template")?
        .progress_chars("=> ");
    Ok(ProgressBar::with_draw_target(Some(args.users), target).with_style(style))
}

/// A [`TermLike`] for logs: no cursor movement, one plain line at most every [`PlainLines::EVERY`].
#[derive(Debug, Default)]
struct PlainLines {
    state: Mutex<(String, Option<Instant>)>,
}

impl PlainLines {
    const EVERY: Duration = Duration::from_secs(5);

    fn with_state<T>(&self, f: impl FnOnce(&mut (String, Option<Instant>)) -> T) -> T {
        // A poisoned lock only means another draw panicked; the text is still usable.
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

impl TermLike for PlainLines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.with_state(|(text, _)| text.push_str(s.trim_matches('\r')));
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.with_state(|(text, _)| text.clear());
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        self.with_state(|(text, last)| {
            let line = text.trim();
            if !line.is_empty() && last.is_none_or(|at| at.elapsed() >= Self::EVERY) {
                eprintln!("{line}");
                *last = Some(Instant::now());
            }
            text.clear();
        });
        Ok(())
    }
}

fn validate(args: &GenTraceArgs) -> anyhow::Result<Timestamp> {
    if !(1..=MAX_USERS).contains(&args.users) {
        bail!("--users must be between 1 and {MAX_USERS}, got {}", args.users);
    }
    if !(1..=MAX_DAYS).contains(&args.days) {
        bail!("--days must be between 1 and {MAX_DAYS}, got {}", args.days);
    }
    if !(0.0..=1.0).contains(&args.abusers) {
        bail!("--abusers must be between 0 and 1, got {}", args.abusers);
    }
    Timestamp::parse_rfc3339(&args.start)
        .map_err(|e| anyhow!("--start must be an RFC 3339 instant such as 2026-03-02T00:00:00Z: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Randomness: a small deterministic PRNG, so traces do not change when a dependency does.

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A well-mixed 64-bit value from (seed, stream, index): independent streams per user.
fn stream_seed(seed: u64, stream: u64, index: u64) -> u64 {
    let mut s = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut t = splitmix64(&mut s) ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    splitmix64(&mut t)
}

/// xoshiro256**, seeded through SplitMix64 (as its authors recommend).
#[derive(Debug, Clone)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut sm = seed;
        Rng { s: [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)] }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box-Muller, one of the pair).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1], so the logarithm is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-space standard deviation.
    fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// An index drawn with the given weights (which need not sum to 1).
    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

// ---------------------------------------------------------------------------------------------
// The usage distribution of SPEC section 1.

const MEDIAN_DAILY_SPEECH_MIN: f64 = 12.7;
const P95_DAILY_SPEECH_MIN: f64 = 126.0;
const P99_DAILY_SPEECH_MIN: f64 = 204.0;
/// Nobody honest speaks more than this in a day (Omi's worst user: 11.7 h).
const MAX_DAILY_SPEECH_MIN: f64 = 720.0;
const Z95: f64 = 1.644_853_626_951_472;
const Z99: f64 = 2.326_347_874_040_841;
/// Share of the log-variance of daily speech that belongs to the user rather than the day.
const USER_SHARE_OF_VARIANCE: f64 = 0.7;

/// Daily speech (minutes) at standard-normal quantile `z`: log-normal with median 12.7 min and
/// P95 126 min; above the P95 the log-slope is flattened so the P99 is 204 min (a plain
/// log-normal through the first two points would put the P99 at 5.4 h and the worst user at days).
fn daily_speech_minutes(z: f64) -> f64 {
    let body_sigma = (P95_DAILY_SPEECH_MIN / MEDIAN_DAILY_SPEECH_MIN).ln() / Z95;
    let ln = if z <= Z95 {
        MEDIAN_DAILY_SPEECH_MIN.ln() + body_sigma * z
    } else {
        let tail_sigma = (P99_DAILY_SPEECH_MIN / P95_DAILY_SPEECH_MIN).ln() / (Z99 - Z95);
        P95_DAILY_SPEECH_MIN.ln() + tail_sigma * (z - Z95)
    };
    ln.exp().min(MAX_DAILY_SPEECH_MIN)
}

/// One user-day's speech in minutes: the user's persistent level plus the day's variation, mixed
/// so that the quantile is still standard normal and the population matches SPEC section 1.
fn user_day_speech_minutes(z_user: f64, rng: &mut Rng) -> f64 {
    let z = USER_SHARE_OF_VARIANCE.sqrt() * z_user + (1.0 - USER_SHARE_OF_VARIANCE).sqrt() * rng.normal();
    daily_speech_minutes(z)
}

// ---------------------------------------------------------------------------------------------
// Vocabulary. Honest titles avoid the media words and sequence markers the heuristic classifier
// looks for; abuser titles are what hosts really see for such usage.

const CATEGORIES: [&str; 9] =
    ["work", "personal", "education", "health", "social", "entertainment", "business", "finance", "legal"];
const CAT_EDUCATION: u8 = 2;
const CAT_ENTERTAINMENT: u8 = 5;
/// Honest categories are the first five, drawn with these weights.
const HONEST_CATEGORY_WEIGHTS: [f64; 5] = [0.40, 0.25, 0.12, 0.08, 0.15];
/// Commercial transcription lands in one or two of these.
const COMMERCIAL_CATEGORIES: [u8; 4] = [0, 6, 7, 8];

/// (title, overview); `{name}` is replaced by a name.
type Topic = (&'static str, &'static str);

const HONEST_TOPICS: [&[Topic]; 5] = [
    &[
        (
            "Weekly team meeting",
            "The team went through last week's progress, blockers and priorities for the next sprint.",
        ),
        ("Daily standup", "Quick round of updates from each team member; two blockers noted for follow-up."),
        ("1:1 with {name}", "Regular one-on-one with {name} covering goals, feedback and workload."),
        (
            "Call with {name} about the contract",
            "Went through contract terms, pricing and the signing timeline with {name}.",
        ),
        ("Project sync with {name}", "Synced with {name} on the project plan, open tasks and the next milestones."),
        (
            "Interview with a candidate",
            "Interviewed a candidate for the open engineering role; notes on experience and fit.",
        ),
        ("Quarterly planning meeting", "Planning for next quarter: goals, headcount and budget trade-offs."),
        ("Design review", "Reviewed the new design proposal and agreed on changes to the onboarding flow."),
        ("Customer call with {name}", "Customer call with {name} about feature requests and a billing question."),
    ],
    &[
        ("Family dinner", "Dinner with the family about school, weekend plans and relatives visiting."),
        ("Catch-up with {name}", "Caught up with {name} on recent news, work and travel plans."),
        ("Planning the weekend trip", "Talked through the route, bookings and packing list for the weekend trip."),
        ("Errands and to-do list", "Voice notes about groceries, bills to pay and errands for the week."),
        ("Phone call with {name}", "Phone call with {name} about the move and who helps on Saturday."),
    ],
    &[
        ("Statistics class", "In-person class on hypothesis testing, with questions from students."),
        ("Study group with {name}", "Study group with {name} working through practice problems before the exam."),
        (
            "Office hours with Professor {name}",
            "Asked Professor {name} about assignment feedback and the final project.",
        ),
        ("Spanish class", "Conversation practice in Spanish class, role-playing ordering at a restaurant."),
    ],
    &[
        ("Doctor visit", "Appointment about recurring headaches; new prescription and a follow-up in a month."),
        ("Physiotherapy appointment", "The physiotherapist reviewed the knee exercises and adjusted the routine."),
        ("Dentist appointment", "Routine check-up; the dentist recommended a cleaning in six months."),
        ("Therapy session", "Weekly therapy session about stress at work and sleep habits."),
    ],
    &[
        ("Coffee with {name}", "Coffee with {name}, talking about their new job and a friend's wedding."),
        ("Dinner with friends", "Dinner with friends: travel stories, a new restaurant and weekend plans."),
        ("Birthday party for {name}", "Conversations at {name}'s birthday party with family and friends."),
        ("Neighborhood meeting", "Neighbors discussed street parking, a summer party and the community garden."),
    ],
];

const NAMES: [&str; 16] = [
    "Priya", "Marco", "Aisha", "Tom", "Mei", "Lucas", "Sofia", "Daniel", "Fatima", "Jonas", "Elena", "Kenji", "Olivia",
    "Ravi", "Grace", "Mateo",
];
const BOOKS: [&str; 8] = [
    "The Silent Orchard",
    "Harbor of Glass",
    "A Winter in Lisbon",
    "The Cartographer's Daughter",
    "Echoes of the Deep",
    "The Last Lighthouse",
    "Salt and Iron",
    "The Clockmaker's Secret",
];
const PODCASTS: [&str; 8] = [
    "The Morning Brief",
    "Deep Dive Tech",
    "History Uncovered",
    "The Money Hour",
    "Mindful Minutes",
    "True Crime Tonight",
    "Startup Stories",
    "Curious Science",
];
const PODCAST_TOPICS: [&str; 8] = [
    "interest rates",
    "AI chips",
    "the Roman empire",
    "sleep science",
    "startup funding",
    "ocean exploration",
    "ancient cities",
    "personal finance",
];
const TV_SHOWS: [&str; 8] = [
    "Northern Lights",
    "Harbor Town",
    "The Crown Jewels",
    "Space Rangers",
    "Kitchen Wars",
    "Detective Lane",
    "Blue Valley",
    "The Heist Crew",
];
const MOVIES: [&str; 6] = [
    "Midnight Express Run",
    "The Long Road Home",
    "Galaxy Drift",
    "Iron Harbor",
    "Summer of Storms",
    "The Quiet Witness",
];
const LECTURE_SUBJECTS: [&str; 6] =
    ["linear algebra", "organic chemistry", "macroeconomics", "world history", "machine learning", "thermodynamics"];
const CLIENTS: [&str; 6] = [
    "Acme Legal LLP",
    "Northside Clinic",
    "Brightway Insurance",
    "Kessler & Sons",
    "Metro Realty",
    "Summit Consulting",
];
const CLIENT_DOCUMENTS: [&str; 5] = [
    "deposition recording",
    "medical dictation",
    "insurance claim recording",
    "board minutes",
    "focus group recording",
];

/// UTC offsets (minutes) of the user base, with weights: the Americas, Europe, India, East Asia.
const TIME_ZONES: [i64; 10] = [-480, -360, -300, -180, 0, 60, 120, 330, 480, 540];
const TIME_ZONE_WEIGHTS: [f64; 10] = [0.10, 0.05, 0.15, 0.05, 0.10, 0.20, 0.05, 0.10, 0.10, 0.10];

// ---------------------------------------------------------------------------------------------
// Planning: every user's sessions, uploads and conversations, as compact records.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AbuseType {
    Audiobook,
    Podcast,
    TvMovie,
    Prerecorded,
    Commercial,
}

const ABUSE_TYPES: [AbuseType; 5] =
    [AbuseType::Audiobook, AbuseType::Podcast, AbuseType::TvMovie, AbuseType::Prerecorded, AbuseType::Commercial];

impl AbuseType {
    fn as_str(self) -> &'static str {
        match self {
            AbuseType::Audiobook => "audiobook",
            AbuseType::Podcast => "podcast",
            AbuseType::TvMovie => "tv_movie",
            AbuseType::Prerecorded => "prerecorded",
            AbuseType::Commercial => "commercial",
        }
    }
}

const PLANS: [&str; 3] = ["free", "paid", "unlimited"];
const PLAN_WEIGHTS: [f64; 3] = [0.6, 0.3, 0.1];
const CREDITS_EXHAUSTED_SHARE_OF_FREE: f64 = 0.05;
/// Honest users who sometimes record offline and upload later.
const UPLOADER_SHARE: f64 = 0.15;
/// Share of an uploader's recordings that are offline rather than streamed.
const OFFLINE_SHARE: f64 = 0.25;
const UPLOAD_RETRY_SHARE: f64 = 0.02;
/// An honest user with a day over the default 24-hour soft cap (2 h) gets an explicit "not abuse"
/// verdict line; everyone else relies on the scripted classifier's default (0.0, none).
const HEAVY_HONEST_MIN: f64 = 120.0;
const HONEST_VERDICT_HUNDREDTHS: u8 = 10;
const MAX_HONEST_SESSIONS_PER_DAY: usize = 16;

#[derive(Debug, Clone, Copy)]
enum Content {
    /// `a`: template index within the category, `b`: name index.
    Honest,
    /// `a`: book, `b`: chapter.
    Chapter,
    /// `a`: show, `b`: episode, `c`: topic.
    PodcastEpisode,
    /// `a`: show, `b`: season, `c`: episode.
    TvEpisode,
    /// `a`: movie.
    Movie,
    /// `a`: subject, `b`: lecture number.
    Lecture,
    /// `a`: client, `b`: file number, `c`: document kind.
    ClientFile,
}

/// One conversation; its id is its index in the user's list plus one.
#[derive(Debug, Clone, Copy)]
struct ConvItem {
    start: i64,
    end: i64,
    content: Content,
    category: u8,
    a: u16,
    b: u32,
    c: u32,
}

/// One streaming session; usage lines every 60 s of it and at its end.
#[derive(Debug, Clone, Copy)]
struct Session {
    start: i64,
    wall_ms: u32,
    /// Session number, per user, from 1.
    sid: u32,
    /// Mean share of each minute that is speech, and the spread of the per-minute noise.
    density: f32,
    spread: f32,
    /// The session's conversations: `items[conv_lo..conv_hi]`, ordered by end.
    conv_lo: u32,
    conv_hi: u32,
}

/// One offline recording reported as `sync_fresh` (or a retry of one: same key, no conversation).
#[derive(Debug, Clone, Copy)]
struct Upload {
    t: i64,
    speech_ms: u32,
    stt_ms: u32,
    key: u32,
    conv: Option<u32>,
}

#[derive(Debug)]
struct UserPlan {
    plan: &'static str,
    credits_exhausted: bool,
    /// (misuse score in hundredths, usage type).
    verdict: Option<(u8, &'static str)>,
    /// Seeds the per-minute speech noise.
    seed: u64,
    sessions: Vec<Session>,
    uploads: Vec<Upload>,
    items: Vec<ConvItem>,
}

impl UserPlan {
    fn new(rng: &mut Rng) -> UserPlan {
        let plan = PLANS[rng.weighted(&PLAN_WEIGHTS)];
        let credits_exhausted = plan == "free" && rng.chance(CREDITS_EXHAUSTED_SHARE_OF_FREE);
        UserPlan {
            plan,
            credits_exhausted,
            verdict: None,
            seed: rng.next_u64(),
            sessions: Vec::new(),
            uploads: Vec::new(),
            items: Vec::new(),
        }
    }

    fn push_session(&mut self, start: i64, wall_ms: i64, density: f64, spread: f64, conv_lo: usize) {
        self.sessions.push(Session {
            start,
            wall_ms: to_u32(wall_ms),
            sid: to_u32(self.sessions.len() as i64 + 1),
            density: density as f32,
            spread: spread as f32,
            conv_lo: to_u32(conv_lo as i64),
            conv_hi: to_u32(self.items.len() as i64),
        });
    }
}

/// Every quantity stored as `u32` is bounded far below `u32::MAX` (milliseconds of one session or
/// one day, counts per user); saturate rather than wrap should that ever change.
fn to_u32(x: i64) -> u32 {
    u32::try_from(x.max(0)).unwrap_or(u32::MAX)
}

fn whole_seconds(minutes: f64) -> i64 {
    (minutes * 60.0).round() as i64 * MS_PER_SECOND
}

/// The simulated period: `[start, end]`, and the UTC midnight at or before `start`.
#[derive(Debug, Clone, Copy)]
struct Period {
    start: i64,
    end: i64,
    first_midnight: i64,
    days: u32,
}

fn plan_honest(rng: &mut Rng, period: &Period) -> UserPlan {
    let mut p = UserPlan::new(rng);
    let tz_ms = TIME_ZONES[rng.weighted(&TIME_ZONE_WEIGHTS)] * MS_PER_MINUTE;
    let wake_base = (420.0 + 60.0 * rng.normal()).clamp(300.0, 600.0); // local minutes, 5:00-10:00
    let waking_len = rng.range(900.0, 1050.0); // 15-17.5 h awake
    let z_user = rng.normal();
    let uploader = rng.chance(UPLOADER_SHARE);
    let session_speech_median = rng.range(6.0, 15.0);
    let mut heaviest: f64 = 0.0;
    let mut walls = [0i64; MAX_HONEST_SESSIONS_PER_DAY];
    let mut densities = [0f64; MAX_HONEST_SESSIONS_PER_DAY];
    let mut gaps = [0f64; MAX_HONEST_SESSIONS_PER_DAY + 1];
    // Local days from the one holding the start; one more than `days` so that users west of UTC
    // also fill the last UTC day. Whatever falls outside the period is dropped.
    for day in 0..=i64::from(period.days) {
        let speech_min = user_day_speech_minutes(z_user, rng);
        heaviest = heaviest.max(speech_min);
        let n = ((speech_min / rng.log_normal(session_speech_median, 0.3)).round() as usize)
            .clamp(1, MAX_HONEST_SESSIONS_PER_DAY);
        let mut shares = [0f64; MAX_HONEST_SESSIONS_PER_DAY];
        for i in 0..n {
            shares[i] = rng.range(0.5, 1.5);
            densities[i] = rng.range(0.30, 0.60);
        }
        let share_sum: f64 = shares[..n].iter().sum();
        let speech_of = |i: usize| speech_min * shares[i] / share_sum;
        let mut wall_min: f64 = (0..n).map(|i| speech_of(i) / densities[i]).sum();
        // A very heavy day does not fit the waking hours at conversational density: denser speech.
        let room = 0.9 * waking_len;
        if wall_min > room {
            let factor = wall_min / room;
            for d in &mut densities[..n] {
                *d = (*d * factor).min(0.95);
            }
            wall_min = (0..n).map(|i| speech_of(i) / densities[i]).sum();
        }
        for i in 0..n {
            walls[i] = whole_seconds(speech_of(i) / densities[i]).max(10 * MS_PER_SECOND);
        }
        let free_ms = (whole_seconds(waking_len) - whole_seconds(wall_min)).max(0);
        for g in &mut gaps[..=n] {
            *g = -(1.0 - rng.uniform()).ln();
        }
        let gap_sum: f64 = gaps[..=n].iter().sum();
        let wake = (wake_base + 30.0 * rng.normal()).clamp(300.0, 660.0);
        let local_midnight = period.first_midnight + day * MS_PER_DAY - tz_ms;
        let mut cursor = local_midnight + whole_seconds(wake);
        for i in 0..n {
            cursor += ((free_ms as f64 * gaps[i] / gap_sum) / 1000.0).floor() as i64 * MS_PER_SECOND;
            let start = cursor;
            cursor += walls[i];
            let offline = uploader && rng.chance(OFFLINE_SHARE);
            let category = rng.weighted(&HONEST_CATEGORY_WEIGHTS);
            let template = rng.below(HONEST_TOPICS[category].len());
            let name = rng.below(NAMES.len());
            if start < period.start || start >= period.end {
                continue;
            }
            let wall = walls[i].min(period.end - start);
            let item = ConvItem {
                start,
                end: start + wall,
                content: Content::Honest,
                category: category as u8,
                a: template as u16,
                b: name as u32,
                c: 0,
            };
            if offline {
                let t = start + wall + whole_seconds(rng.range(2.0, 90.0));
                let retry = rng.chance(UPLOAD_RETRY_SHARE).then(|| t + whole_seconds(rng.range(0.3, 2.0)));
                if t > period.end {
                    continue; // recorded, but not uploaded within the period
                }
                let speech_ms = to_u32((densities[i] * wall as f64).round() as i64);
                let key = to_u32(p.uploads.len() as i64 + 1);
                p.uploads.push(Upload {
                    t,
                    speech_ms,
                    stt_ms: to_u32(wall),
                    key,
                    conv: Some(to_u32(p.items.len() as i64)),
                });
                if let Some(again) = retry.filter(|&r| r <= period.end) {
                    p.uploads.push(Upload { t: again, speech_ms, stt_ms: to_u32(wall), key, conv: None });
                }
                p.items.push(item);
            } else {
                let lo = p.items.len();
                p.items.push(item);
                p.push_session(start, wall, densities[i], 0.25, lo);
            }
        }
    }
    // Upload delays can reorder uploads; emission wants them by time (stable: a retry stays after).
    p.uploads.sort_by_key(|u| u.t);
    if heaviest >= HEAVY_HONEST_MIN {
        p.verdict = Some((HONEST_VERDICT_HUNDREDTHS, "none"));
    }
    p
}

/// What an abuser plays next, with the running counters that make titles sequential.
struct Playlist {
    ty: AbuseType,
    a: u16,
    b: u32,
    c: u32,
    per_unit: u32,
    lecture_min: f64,
    categories: [u8; 2],
    category_count: usize,
}

impl Playlist {
    fn new(ty: AbuseType, rng: &mut Rng) -> Playlist {
        let mut p = Playlist {
            ty,
            a: 0,
            b: 0,
            c: 0,
            per_unit: 0,
            lecture_min: rng.range(45.0, 90.0),
            categories: [0, 0],
            category_count: 1,
        };
        match ty {
            AbuseType::Audiobook => {
                p.a = rng.below(BOOKS.len()) as u16;
                p.per_unit = 15 + rng.below(26) as u32;
            }
            AbuseType::Podcast => {
                p.a = rng.below(PODCASTS.len()) as u16;
                p.b = rng.below(300) as u32;
            }
            AbuseType::TvMovie => {
                p.a = rng.below(TV_SHOWS.len()) as u16;
                p.b = 1 + rng.below(3) as u32;
                p.per_unit = 8 + rng.below(5) as u32;
            }
            AbuseType::Prerecorded => p.a = rng.below(LECTURE_SUBJECTS.len()) as u16,
            AbuseType::Commercial => {
                p.b = 1000 + rng.below(4000) as u32;
                p.category_count = 1 + rng.below(2);
                let first = rng.below(COMMERCIAL_CATEGORIES.len());
                let second = (first + 1 + rng.below(COMMERCIAL_CATEGORIES.len() - 1)) % COMMERCIAL_CATEGORIES.len();
                p.categories = [COMMERCIAL_CATEGORIES[first], COMMERCIAL_CATEGORIES[second]];
            }
        }
        p
    }

    /// The next item: its length in minutes and its conversation (times filled in by the caller).
    fn next(&mut self, rng: &mut Rng) -> (f64, ConvItem) {
        let item = |content, category, a, b, c| ConvItem { start: 0, end: 0, content, category, a, b, c };
        match self.ty {
            AbuseType::Audiobook => {
                self.b += 1;
                if self.b > self.per_unit {
                    self.a = (self.a + 1) % BOOKS.len() as u16;
                    self.b = 1;
                    self.per_unit = 15 + rng.below(26) as u32;
                }
                (rng.range(35.0, 95.0), item(Content::Chapter, CAT_ENTERTAINMENT, self.a, self.b, 0))
            }
            AbuseType::Podcast => {
                if rng.chance(0.15) {
                    self.a = rng.below(PODCASTS.len()) as u16;
                    self.b = rng.below(300) as u32;
                }
                self.b += 1;
                let topic = rng.below(PODCAST_TOPICS.len()) as u32;
                (rng.range(30.0, 80.0), item(Content::PodcastEpisode, CAT_ENTERTAINMENT, self.a, self.b, topic))
            }
            AbuseType::TvMovie => {
                if rng.chance(0.2) {
                    let movie = rng.below(MOVIES.len()) as u16;
                    return (rng.range(90.0, 150.0), item(Content::Movie, CAT_ENTERTAINMENT, movie, 0, 0));
                }
                self.c += 1;
                if self.c > self.per_unit {
                    self.b += 1;
                    self.c = 1;
                    if self.b > 6 {
                        self.a = (self.a + 1) % TV_SHOWS.len() as u16;
                        self.b = 1;
                    }
                }
                (rng.range(40.0, 60.0), item(Content::TvEpisode, CAT_ENTERTAINMENT, self.a, self.b, self.c))
            }
            AbuseType::Prerecorded => {
                self.b += 1;
                let minutes = self.lecture_min * rng.range(0.97, 1.03);
                (minutes, item(Content::Lecture, CAT_EDUCATION, self.a, self.b, 0))
            }
            AbuseType::Commercial => {
                self.b += 1;
                let category = self.categories[rng.below(self.category_count)];
                let client = rng.below(CLIENTS.len()) as u16;
                let document = rng.below(CLIENT_DOCUMENTS.len()) as u32;
                (rng.range(4.0, 20.0), item(Content::ClientFile, category, client, self.b, document))
            }
        }
    }
}

fn plan_abuser(rng: &mut Rng, period: &Period, ty: AbuseType) -> UserPlan {
    let mut p = UserPlan::new(rng);
    p.verdict = Some((85 + rng.below(14) as u8, ty.as_str()));
    let density = rng.range(0.75, 0.95);
    let mut playlist = Playlist::new(ty, rng);
    let mut t = period.start + whole_seconds(rng.range(0.0, 60.0));
    while t < period.end {
        let day_start = t;
        let active_target = whole_seconds(rng.range(16.0, 22.0) * 60.0);
        let mut active = 0;
        while active < active_target && t < period.end {
            let session_target =
                whole_seconds(rng.range(2.0, 6.0) * 60.0).min(active_target - active).max(30 * MS_PER_MINUTE);
            let start = t;
            let conv_lo = p.items.len();
            let mut cursor = start;
            loop {
                let (minutes, mut item) = playlist.next(rng);
                item.start = cursor;
                item.end = cursor + whole_seconds(minutes).max(MS_PER_MINUTE);
                cursor = item.end;
                p.items.push(item);
                if cursor - start >= session_target {
                    break;
                }
                cursor += whole_seconds(rng.range(5.0, 60.0) / 60.0); // between items, still streaming
            }
            if cursor > period.end {
                while p.items.len() > conv_lo + 1 && p.items.last().is_some_and(|i| i.start >= period.end) {
                    p.items.pop();
                }
                if let Some(last) = p.items.last_mut() {
                    last.end = last.end.min(period.end);
                }
                cursor = period.end;
            }
            p.push_session(start, cursor - start, density, 0.08, conv_lo);
            active += cursor - start;
            t = cursor + whole_seconds(rng.range(2.0, 20.0));
        }
        // Sleep until about the same time tomorrow (at least an hour).
        t = (day_start + MS_PER_DAY + whole_seconds(rng.range(-30.0, 30.0))).max(t + MS_PER_HOUR);
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Emission: compact records per simulated hour, sorted, then rendered.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecKind {
    /// `a`: session number, `b`: cumulative speech, `c`: cumulative stt.
    Realtime,
    /// `a`: idempotency key number, `b`: speech, `c`: stt.
    Sync,
    /// `a`: conversation index.
    Conversation,
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    /// Milliseconds since the start, shifted left once; the low bit puts a conversation after the
    /// usage line of the same instant.
    key: u64,
    /// User index in the high half, the user's own record counter in the low half.
    order: u64,
    kind: RecKind,
    a: u32,
    b: u32,
    c: u32,
}

/// How far a user's plan has been emitted.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    session: usize,
    /// Flushes of the current session already emitted.
    flushes: u32,
    cumulative_speech_ms: u32,
    conv: u32,
    upload: usize,
    seq: u32,
}

/// Speech in one flush interval of a session: the session's density plus triangular noise, per
/// interval, from a hash (so it needs no state between hours).
fn interval_speech_ms(seed: u64, session: &Session, index: u32, interval_ms: i64) -> u32 {
    let mut s = seed ^ ((u64::from(session.sid) << 32) | u64::from(index));
    let h = splitmix64(&mut s);
    let u1 = (h >> 40) as f64 / (1u64 << 24) as f64;
    let u2 = ((h >> 16) & 0xFF_FFFF) as f64 / (1u64 << 24) as f64;
    let d = (f64::from(session.density) + f64::from(session.spread) * (u1 + u2 - 1.0)).clamp(0.0, 1.0);
    to_u32((d * interval_ms as f64).round() as i64)
}

struct Emitter<'a> {
    start: i64,
    user: u32,
    cursor: &'a mut Cursor,
    out: &'a mut Vec<Rec>,
}

impl Emitter<'_> {
    fn push(&mut self, t: i64, kind: RecKind, a: u32, b: u32, c: u32) {
        let since_start = (t - self.start).max(0) as u64;
        let key = (since_start << 1) | u64::from(kind == RecKind::Conversation);
        let order = (u64::from(self.user) << 32) | u64::from(self.cursor.seq);
        self.cursor.seq += 1;
        self.out.push(Rec { key, order, kind, a, b, c });
    }
}

/// Emits the user's records with `t <= until` that were not emitted yet.
fn emit_until(plan: &UserPlan, e: &mut Emitter<'_>, until: i64, conversations: bool) {
    while let Some(s) = plan.sessions.get(e.cursor.session) {
        if s.start >= until {
            break; // every record of a session comes after its start
        }
        let wall = i64::from(s.wall_ms);
        let flushes = (wall + MS_PER_MINUTE - 1) / MS_PER_MINUTE;
        let mut finished = true;
        while i64::from(e.cursor.flushes) < flushes {
            let done = i64::from(e.cursor.flushes) * MS_PER_MINUTE;
            let elapsed = (done + MS_PER_MINUTE).min(wall);
            let t = s.start + elapsed;
            if t > until {
                finished = false;
                break;
            }
            let speech = interval_speech_ms(plan.seed, s, e.cursor.flushes, elapsed - done);
            e.cursor.cumulative_speech_ms = e.cursor.cumulative_speech_ms.saturating_add(speech);
            let total = e.cursor.cumulative_speech_ms;
            e.push(t, RecKind::Realtime, s.sid, total, to_u32(elapsed));
            e.cursor.flushes += 1;
        }
        while e.cursor.conv < s.conv_hi {
            let item = &plan.items[e.cursor.conv as usize];
            if item.end > until {
                finished = false;
                break;
            }
            if conversations {
                e.push(item.end, RecKind::Conversation, e.cursor.conv, 0, 0);
            }
            e.cursor.conv += 1;
        }
        if !finished {
            break;
        }
        e.cursor.session += 1;
        e.cursor.flushes = 0;
        e.cursor.cumulative_speech_ms = 0;
        e.cursor.conv = plan.sessions.get(e.cursor.session).map_or(0, |next| next.conv_lo);
    }
    while let Some(u) = plan.uploads.get(e.cursor.upload) {
        if u.t > until {
            break;
        }
        e.push(u.t, RecKind::Sync, u.key, u.speech_ms, u.stt_ms);
        if let Some(conv) = u.conv
            && conversations
        {
            e.push(u.t, RecKind::Conversation, conv, 0, 0);
        }
        e.cursor.upload += 1;
    }
}

/// Renders lines into a byte buffer; RFC 3339 text is cached because consecutive lines mostly
/// share their second.
struct Renderer {
    uids: Vec<String>,
    time_ms: i64,
    time_text: String,
}

impl Renderer {
    fn time(&mut self, buf: &mut Vec<u8>, t: i64) {
        if t != self.time_ms {
            self.time_ms = t;
            self.time_text = Timestamp::from_millis(t).to_rfc3339();
        }
        buf.extend_from_slice(self.time_text.as_bytes());
    }

    /// `{"t":"...","type":"<kind>"` and, with a user, `,"uid":"..."`.
    fn head(&mut self, buf: &mut Vec<u8>, t: i64, kind: &str, user: Option<usize>) {
        buf.extend_from_slice(b"{\"t\":\"");
        self.time(buf, t);
        buf.extend_from_slice(b"\",\"type\":\"");
        buf.extend_from_slice(kind.as_bytes());
        buf.push(b'"');
        if let Some(u) = user {
            buf.extend_from_slice(b",\"uid\":\"");
            buf.extend_from_slice(self.uids[u].as_bytes());
            buf.push(b'"');
        }
    }

    fn plan(&mut self, buf: &mut Vec<u8>, t: i64, user: usize, plan: &UserPlan) {
        self.head(buf, t, "plan", Some(user));
        buf.extend_from_slice(b",\"plan\":\"");
        buf.extend_from_slice(plan.plan.as_bytes());
        buf.extend_from_slice(if plan.credits_exhausted {
            b"\",\"credits_exhausted\":true}\n"
        } else {
            b"\",\"credits_exhausted\":false}\n"
        });
    }

    fn verdict(&mut self, buf: &mut Vec<u8>, t: i64, user: usize, hundredths: u8, usage_type: &str) {
        self.head(buf, t, "verdict", Some(user));
        buf.extend_from_slice(b",\"misuse_score\":");
        // The shortest text that reads back as the same f64 ("0.1", "0.92").
        buf.extend_from_slice(serde_json::Value::from(f64::from(hundredths) / 100.0).to_string().as_bytes());
        buf.extend_from_slice(b",\"usage_type\":\"");
        buf.extend_from_slice(usage_type.as_bytes());
        buf.extend_from_slice(b"\"}\n");
    }

    fn tick(&mut self, buf: &mut Vec<u8>, t: i64) {
        self.head(buf, t, "tick", None);
        buf.extend_from_slice(b"}\n");
    }

    fn record(&mut self, buf: &mut Vec<u8>, start: i64, rec: &Rec, plans: &[UserPlan]) -> anyhow::Result<()> {
        let t = start + (rec.key >> 1) as i64;
        let user = (rec.order >> 32) as usize;
        match rec.kind {
            RecKind::Realtime => {
                self.head(buf, t, "usage", Some(user));
                buf.extend_from_slice(b",\"lane\":\"realtime\",\"session_id\":\"");
                buf.extend_from_slice(self.uids[user].as_bytes());
                buf.extend_from_slice(b"-s");
                push_uint(buf, rec.a.into());
                buf.extend_from_slice(b"\",\"cumulative_speech_ms\":");
                push_uint(buf, rec.b.into());
                buf.extend_from_slice(b",\"stt_ms\":");
                push_uint(buf, rec.c.into());
                buf.extend_from_slice(b"}\n");
            }
            RecKind::Sync => {
                self.head(buf, t, "usage", Some(user));
                buf.extend_from_slice(b",\"lane\":\"sync_fresh\",\"speech_ms\":");
                push_uint(buf, rec.b.into());
                buf.extend_from_slice(b",\"stt_ms\":");
                push_uint(buf, rec.c.into());
                buf.extend_from_slice(b",\"idempotency_key\":\"");
                buf.extend_from_slice(self.uids[user].as_bytes());
                buf.extend_from_slice(b"-r");
                push_uint(buf, rec.a.into());
                buf.extend_from_slice(b"\"}\n");
            }
            RecKind::Conversation => {
                let item = &plans[user].items[rec.a as usize];
                let (title, overview) = describe(item);
                self.head(buf, t, "conversation", Some(user));
                buf.extend_from_slice(b",\"conversation\":{\"conversation_id\":\"");
                buf.extend_from_slice(self.uids[user].as_bytes());
                buf.extend_from_slice(b"-c");
                push_uint(buf, u64::from(rec.a) + 1);
                buf.extend_from_slice(b"\",\"title\":");
                serde_json::to_writer(&mut *buf, &title)?;
                buf.extend_from_slice(b",\"overview\":");
                serde_json::to_writer(&mut *buf, &overview)?;
                buf.extend_from_slice(b",\"category\":\"");
                buf.extend_from_slice(CATEGORIES[usize::from(item.category)].as_bytes());
                buf.extend_from_slice(b"\",\"started_at\":\"");
                buf.extend_from_slice(Timestamp::from_millis(item.start).to_rfc3339().as_bytes());
                buf.extend_from_slice(b"\",\"finished_at\":\"");
                buf.extend_from_slice(Timestamp::from_millis(item.end).to_rfc3339().as_bytes());
                buf.extend_from_slice(b"\",\"source\":\"omi\"}}\n");
            }
        }
        Ok(())
    }
}

fn push_uint(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// The title and overview a host would store for this conversation.
fn describe(item: &ConvItem) -> (String, String) {
    let (a, b, c) = (usize::from(item.a), item.b, item.c as usize);
    match item.content {
        Content::Honest => {
            let topics = HONEST_TOPICS[usize::from(item.category)];
            let (title, overview) = topics[a % topics.len()];
            let name = NAMES[b as usize % NAMES.len()];
            (title.replace("{name}", name), overview.replace("{name}", name))
        }
        Content::Chapter => (
            format!("{} - Chapter {b}", BOOKS[a]),
            format!("A single narrator reads chapter {b} of \"{}\"; continuous narration, no other voices.", BOOKS[a]),
        ),
        Content::PodcastEpisode => (
            format!("{} Episode {b}", PODCASTS[a]),
            format!(
                "Podcast episode: two hosts and a guest talk about {}; opens with an ad read.",
                PODCAST_TOPICS[c % PODCAST_TOPICS.len()]
            ),
        ),
        Content::TvEpisode => (
            format!("{} Season {b} Episode {c}", TV_SHOWS[a]),
            format!(
                "Dialogue from the TV show {}: several characters, background music and a laugh track.",
                TV_SHOWS[a]
            ),
        ),
        Content::Movie => (
            format!("{} (movie)", MOVIES[a]),
            format!("The movie {} playing on the TV: dialogue, soundtrack and sound effects.", MOVIES[a]),
        ),
        Content::Lecture => (
            format!("Recorded lecture {b}"),
            format!(
                "Recorded lecture {b} on {} played back from a video; one speaker, no questions or interaction.",
                LECTURE_SUBJECTS[a]
            ),
        ),
        Content::ClientFile => (
            format!("Client file #{b} transcription job"),
            format!(
                "Paid transcription job: {} for client {}, delivered as a text file.",
                CLIENT_DOCUMENTS[c % CLIENT_DOCUMENTS.len()],
                CLIENTS[a]
            ),
        ),
    }
}

/// The core: writes the trace to `out` and calls `progress` with (users done, users total) now
/// and then. Users are planned up front and written an hour at a time, so "users done" is the
/// share of simulated hours written, scaled to the user count.
pub fn generate(
    args: &GenTraceArgs,
    out: &mut dyn Write,
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
    let mut abuse: Vec<Option<AbuseType>> = vec![None; users as usize];
    for (i, &u) in order[..abuser_count as usize].iter().enumerate() {
        abuse[u as usize] = Some(ABUSE_TYPES[i % ABUSE_TYPES.len()]);
    }
    drop(order);

    let plans: Vec<UserPlan> = abuse
        .iter()
        .enumerate()
        .map(|(u, ty)| {
            let mut rng = Rng::new(stream_seed(args.seed, 2, u as u64));
            match ty {
                Some(ty) => plan_abuser(&mut rng, &period, *ty),
                None => plan_honest(&mut rng, &period),
            }
        })
        .collect();
    drop(abuse);

    let mut renderer = Renderer {
        uids: (0..users).map(|u| format!("u{u:06}")).collect(),
        time_ms: i64::MIN,
        time_text: String::new(),
    };
    let mut summary = GenSummary { users, abusers: abuser_count, lines: 0, usage_lines: 0 };
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use fairuse_domain::classifier::{Conversation, Recipe, select_recipes};
    use serde_json::Value;

    use super::*;

    fn args(users: u64, days: u32, abusers: f64, seed: u64) -> GenTraceArgs {
        GenTraceArgs {
            users,
            days,
            abusers,
            start: "2026-03-02T00:00:00Z".into(),
            seed,
            conversations: true,
            verdicts: true,
            out: "-".into(),
            quiet: true,
        }
    }

    fn trace(a: &GenTraceArgs) -> (Vec<u8>, GenSummary) {
        let mut buf = Vec::new();
        let summary = generate(a, &mut buf, &mut |_, _| {}).expect("generate");
        (buf, summary)
    }

    fn lines(bytes: &[u8]) -> Vec<Value> {
        std::str::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    fn quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    #[test]
    fn same_seed_gives_the_same_bytes_and_another_seed_does_not() {
        let (a, sa) = trace(&args(40, 2, 0.1, 7));
        let (b, sb) = trace(&args(40, 2, 0.1, 7));
        let (c, _) = trace(&args(40, 2, 0.1, 8));
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_ne!(a, c);
    }

    #[test]
    fn lines_are_json_in_time_order_with_t_and_type_first() {
        let a = args(60, 2, 0.05, 1);
        let (bytes, summary) = trace(&a);
        let text = std::str::from_utf8(&bytes).expect("utf-8");
        let mut previous = i64::MIN;
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for line in text.lines() {
            let after_t = line.strip_prefix("{\"t\":\"").unwrap_or_else(|| panic!("t first: {line}"));
            let t_end = after_t.find('"').expect("t closes");
            assert!(after_t[t_end..].starts_with("\",\"type\":\""), "type second: {line}");
            let v: Value = serde_json::from_str(line).expect("JSON");
            let t = Timestamp::parse_rfc3339(v["t"].as_str().expect("t")).expect("RFC 3339").millis();
            assert!(t >= previous, "out of order: {line}");
            previous = t;
            *kinds.entry(v["type"].as_str().expect("type").to_owned()).or_default() += 1;
        }
        assert_eq!(summary.lines, text.lines().count() as u64);
        assert_eq!(summary.usage_lines, kinds["usage"]);
        assert_eq!(kinds["tick"], 48);
        assert_eq!(kinds["plan"], 60);
        assert!(kinds["conversation"] > 0);
        let end = Timestamp::parse_rfc3339("2026-03-04T00:00:00Z").expect("end").millis();
        assert_eq!(previous, end, "the last line is the last tick");
    }

    #[test]
    fn session_totals_never_decrease_and_speech_fits_in_forwarded_audio() {
        let (bytes, _) = trace(&args(80, 2, 0.05, 3));
        let mut last: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut sync = 0;
        for v in lines(&bytes) {
            if v["type"] != "usage" {
                continue;
            }
            let stt = v["stt_ms"].as_i64().expect("stt_ms");
            match v["lane"].as_str() {
                Some("realtime") => {
                    let sid = v["session_id"].as_str().expect("session_id").to_owned();
                    let speech = v["cumulative_speech_ms"].as_i64().expect("cumulative_speech_ms");
                    assert!(speech <= stt, "more speech than audio: {v}");
                    if let Some(&(s, a)) = last.get(&sid) {
                        assert!(speech >= s && stt > a, "a session total went down: {v}");
                        assert!(stt - a <= 60_000, "flushes are at most 60 s apart: {v}");
                    }
                    last.insert(sid, (speech, stt));
                }
                Some("sync_fresh") => {
                    sync += 1;
                    let speech = v["speech_ms"].as_i64().expect("speech_ms");
                    assert!(speech <= stt && v["idempotency_key"].is_string(), "{v}");
                }
                other => panic!("unexpected lane {other:?}"),
            }
        }
        assert!(!last.is_empty() && sync > 0, "both lanes appear");
    }

    #[test]
    fn daily_speech_matches_the_section_1_percentiles() {
        let mut rng = Rng::new(2026);
        let mut draws: Vec<f64> = (0..200_000)
            .map(|_| {
                let z_user = rng.normal();
                user_day_speech_minutes(z_user, &mut rng)
            })
            .collect();
        draws.sort_by(f64::total_cmp);
        let (median, p95, p99) = (quantile(&draws, 0.5), quantile(&draws, 0.95), quantile(&draws, 0.99));
        let near = |x: f64, want: f64| (x - want).abs() <= 0.1 * want;
        assert!(near(median, 12.7), "median {median:.1} min");
        assert!(near(p95, 126.0), "P95 {p95:.1} min");
        assert!(near(p99, 204.0), "P99 {p99:.1} min");
        assert!(draws[draws.len() - 1] <= MAX_DAILY_SPEECH_MIN);
    }

    #[test]
    fn abusers_are_the_requested_share_spread_over_the_types_and_far_over_the_caps() {
        let a = args(100, 2, 0.05, 11);
        let (bytes, summary) = trace(&a);
        assert_eq!(summary.abusers, 5);
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut speech: BTreeMap<String, i64> = BTreeMap::new();
        let mut last_session: BTreeMap<String, i64> = BTreeMap::new();
        for v in lines(&bytes) {
            let uid = v["uid"].as_str().unwrap_or_default().to_owned();
            match v["type"].as_str() {
                Some("verdict") if v["usage_type"] != "none" => {
                    assert!(v["misuse_score"].as_f64().expect("score") >= 0.85);
                    types.insert(uid, v["usage_type"].as_str().expect("type").to_owned());
                }
                Some("verdict") => assert_eq!(v["misuse_score"].as_f64(), Some(0.1)),
                Some("usage") if v["lane"] == "realtime" => {
                    let total = v["cumulative_speech_ms"].as_i64().expect("total");
                    let sid = v["session_id"].as_str().expect("sid").to_owned();
                    last_session.insert(sid, total);
                }
                _ => {}
            }
        }
        for (sid, total) in &last_session {
            let uid = sid.split('-').next().expect("uid").to_owned();
            *speech.entry(uid).or_default() += total;
        }
        let kinds: BTreeSet<&str> = types.values().map(String::as_str).collect();
        assert_eq!(kinds, BTreeSet::from(["audiobook", "podcast", "tv_movie", "prerecorded", "commercial"]));
        for uid in types.keys() {
            let per_day_h = speech[uid] as f64 / 2.0 / MS_PER_HOUR as f64;
            assert!(per_day_h > 10.0, "{uid} speaks only {per_day_h:.1} h/day");
        }
        // No abusers requested, none generated; all of them when the share is 1.
        assert_eq!(trace(&args(30, 1, 0.0, 1)).1.abusers, 0);
        assert_eq!(trace(&args(30, 1, 1.0, 1)).1.abusers, 30);
        assert_eq!(trace(&args(30, 1, 0.02, 1)).1.abusers, 1, "rounded to nearest");
    }

    #[test]
    fn conversations_parse_as_domain_metadata_and_abusers_meet_their_recipes() {
        let (bytes, _) = trace(&args(20, 3, 0.25, 5));
        let mut convs: BTreeMap<String, Vec<Conversation>> = BTreeMap::new();
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        for v in lines(&bytes) {
            let uid = v["uid"].as_str().unwrap_or_default().to_owned();
            match v["type"].as_str() {
                Some("conversation") => {
                    let c: Conversation = serde_json::from_value(v["conversation"].clone()).expect("conversation");
                    assert!(c.finished_at >= c.started_at && c.finished_at.to_rfc3339() == v["t"]);
                    convs.entry(uid).or_default().push(c);
                }
                Some("verdict") => {
                    types.insert(uid, v["usage_type"].as_str().expect("type").to_owned());
                }
                _ => {}
            }
        }
        let want = [
            ("audiobook", Recipe::Audiobook),
            ("podcast", Recipe::Podcast),
            ("prerecorded", Recipe::Prerecorded),
            ("commercial", Recipe::Commercial),
        ];
        for (ty, recipe) in want {
            let uid = types.iter().find(|(_, t)| t.as_str() == ty).map(|(u, _)| u.clone()).expect(ty);
            assert!(select_recipes(&convs[&uid]).contains(&recipe), "{ty} abuser {uid} misses {recipe:?}");
        }
    }

    #[test]
    fn flags_can_drop_conversations_and_verdicts() {
        let mut a = args(30, 1, 0.1, 2);
        a.conversations = false;
        a.verdicts = false;
        let (bytes, _) = trace(&a);
        assert!(lines(&bytes).iter().all(|v| v["type"] != "conversation" && v["type"] != "verdict"));
    }

    #[test]
    fn bad_arguments_are_refused_naming_the_flag() {
        let check = |a: GenTraceArgs, flag: &str| {
            let e = generate(&a, &mut Vec::new(), &mut |_, _| {}).expect_err("refused").to_string();
            assert!(e.contains(flag), "{e}");
        };
        check(args(10, 1, 1.5, 1), "--abusers must be between 0 and 1");
        check(args(10, 1, f64::NAN, 1), "--abusers");
        check(args(0, 1, 0.0, 1), "--users");
        check(args(10, 0, 0.0, 1), "--days");
        let mut a = args(10, 1, 0.0, 1);
        a.start = "monday".into();
        check(a, "--start");
    }
}
