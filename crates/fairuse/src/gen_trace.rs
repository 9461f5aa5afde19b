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
    if !(0.0..=1.0).contains(&args.heavy) {
        bail!("--heavy must be between 0 and 1, got {}", args.heavy);
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
// Vocabulary. Regular honest titles are everyday conversations; the heavy honest populations
// (further down) have numbered titles and, now and then, media, as real lives do; abuser titles
// are what hosts see for such usage. The heavy honest vocabulary deliberately holds what trips a
// naive classifier: numbers after "lecture" and "part", a movie night, a TV show chatted about on a break.

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

// Vocabulary of the heavy honest populations. Titles are what a host's summarizer writes for such
// days: varied, sometimes numbered ("Sprint 14 planning", "CS101 lecture — week 3", "MATH 221
// Lecture 14", "Ticket #48213"), sometimes with a word that also describes media (a movie night, a
// bedtime chapter, a colleague's TV show), because real lives have those too.
//
// Placeholders: `{name}`/`{name2}` people, `{company}`, `{project}`, `{issue}`, `{n}` a number.

const MEETING_TOPICS: [Topic; 18] = [
    ("Weekly team meeting", "The team went through last week's progress, blockers and the priorities for next week."),
    ("Daily standup", "Quick round of updates; {name} is blocked on the API change and {name2} will pair with them."),
    ("1:1 with {name}", "Regular one-on-one with {name} about goals, feedback and workload."),
    ("Sprint {n} planning", "Estimated the backlog for sprint {n}; {name} raised the risk of the migration slipping."),
    ("Sprint {n} retro", "What went well and what did not in sprint {n}; agreed to keep code reviews under a day."),
    ("{project} design review", "Reviewed the {project} design; {name2} asked for a simpler rollout plan."),
    ("{project} status", "Status of {project}: two milestones done, the vendor integration is two weeks late."),
    ("Customer call with {company}", "{company} asked for single sign-on and a discount on the annual plan."),
    ("Interview: senior engineer candidate", "Interviewed a candidate for the senior role; strong on systems design."),
    ("Quarterly review with {company}", "Business review with {company}: usage is up, two escalations still open."),
    ("All-hands", "Company all-hands: results of the quarter, new hires and open questions for the CEO."),
    ("Budget for next quarter", "Went line by line through next quarter's budget with finance; travel is cut."),
    ("Hiring pipeline with {name}", "Pipeline review with {name}: three candidates in the final round."),
    ("Incident review #{n}", "Postmortem of incident {n}: a config push took login down for 20 minutes."),
    (
        "Vendor negotiation with {company}",
        "Negotiated renewal terms with {company}; they offered a three-year discount.",
    ),
    ("Roadmap priorities", "Debated which features make the next release and which move to the autumn."),
    ("Onboarding {name}", "Walked {name} through the codebase, the deploy process and who to ask for what."),
    ("Pricing options", "Compared three pricing options; sales wants a cheaper entry tier, finance does not."),
];
/// A long meeting the device split in two, recorded back to back.
const BOARD_MEETING: Topic =
    ("Board meeting part {n}", "Board meeting: financials, the hiring plan and the fundraising timeline.");

/// (code, name, topics): the courses a student attends.
const COURSES: [(&str, &str, [&str; 4]); 8] = [
    ("CS101", "Intro to Programming", ["recursion", "linked lists", "hash tables", "sorting algorithms"]),
    ("MATH 221", "Linear Algebra", ["eigenvalues", "matrix inverses", "vector spaces", "orthogonality"]),
    ("CHEM 210", "Organic Chemistry", ["reaction mechanisms", "stereochemistry", "alkenes", "spectroscopy"]),
    ("ECON 102", "Macroeconomics", ["inflation", "interest rates", "unemployment", "fiscal policy"]),
    ("HIST 130", "World History", ["the Silk Road", "the printing press", "the Ottoman empire", "the Cold War"]),
    ("PHYS 150", "Mechanics", ["Newton's laws", "momentum", "rotational motion", "oscillations"]),
    ("BIO 110", "Cell Biology", ["mitosis", "cell membranes", "protein synthesis", "enzymes"]),
    ("PSYC 100", "Intro to Psychology", ["memory", "conditioning", "perception", "child development"]),
];
const LECTURE_OVERVIEWS: [&str; 4] = [
    "Live lecture: Professor {name} covered {topic}; students asked about the homework.",
    "In-class lecture on {topic}, with a short quiz at the end.",
    "{topic}: the professor worked examples on the board and took questions from the room.",
    "Lecture in the main hall about {topic}; the next problem set is due on Friday.",
];
const STUDY_TOPICS: [Topic; 3] = [
    ("Study group with {name}", "Went through practice problems with {name} and {name2} before the quiz."),
    ("Office hours with Professor {name}", "Asked Professor {name} about the grading of the last assignment."),
    ("Group project meeting", "Split the group project into parts; {name} takes the slides, {name2} the data."),
];

const CALL_TOPICS: [Topic; 8] = [
    ("Call with {name} from {company}", "{name} from {company} asked about {issue}; promised a follow-up by e-mail."),
    ("Support call: {issue}", "A customer called about {issue}; walked them through the fix step by step."),
    ("Follow-up with {name}", "Followed up with {name} at {company} on {issue}; they decide next week."),
    ("Demo for {company}", "Product demo for {company}'s team; questions about integrations and pricing."),
    ("Renewal — {company}", "Renewal discussion with {company}; they want a longer contract at a lower price."),
    ("Ticket #{n} — {issue}", "Phone support for ticket {n}: {issue}; escalated to the second line."),
    ("Discovery call with {company}", "First call with {company} about their team size, current tools and budget."),
    ("Callback to {name}", "Called {name} back about {issue}; resolved on the call."),
];
const ISSUES: [&str; 8] = [
    "a billing error",
    "login problems",
    "a missing invoice",
    "the mobile app crashing",
    "an export that fails",
    "changing their plan",
    "a delayed delivery",
    "data privacy questions",
];
const COMPANIES: [&str; 8] =
    ["Northwind", "Globex", "Initech", "Umbrella Foods", "Vandelay Imports", "Stark Logistics", "Hooli", "Soylent"];
const PROJECTS: [&str; 6] = ["Checkout v2", "Atlas", "Data platform", "Mobile redesign", "Billing migration", "Falcon"];

const NIGHT_TOPICS: [Topic; 8] = [
    ("Night rounds", "Rounds on the ward: checked vitals, pain levels and drips; one patient needed fluids."),
    ("Call with the on-call doctor", "Called the on-call doctor about a patient's blood pressure; new orders given."),
    ("Admission from the emergency department", "Admitted a patient: history, allergies and current medication."),
    ("Break with {name}", "Coffee break with {name} about the rota, holidays and a TV show they both watch."),
    ("Medication round", "Night medication round; one patient refused a dose and it was documented."),
    ("Update for a patient's daughter", "A patient's daughter called for an update; explained the plan for tomorrow."),
    ("Incident report with {name}", "Wrote up a fall on the ward with {name}; no injury, the bed alarm is now on."),
    ("Patient could not sleep", "Sat with an anxious patient who could not sleep and talked through the surgery."),
];
const NIGHT_HANDOVERS: [Topic; 2] = [
    ("Shift handover with {name}", "Handover from the day team: two new admissions and one patient to watch."),
    ("Morning handover", "Handed over to the morning team: overnight events and pending lab results."),
];

const FAMILY_TOPICS: [Topic; 10] = [
    ("Breakfast with the kids", "Breakfast: the kids argued about cereal and planned the school day."),
    ("School run", "On the way to school: spelling practice and who picks up whom this afternoon."),
    ("Homework help", "Helped with math homework: fractions, then a reading log for {name}."),
    ("Kids playing", "The kids played a pretend shop game with a lot of shouting and laughter."),
    ("Call with grandma", "Video call with grandma about her garden and the kids' school play."),
    ("Dinner together", "Family dinner: the day at work and school, and the weekend plans."),
    ("Planning the weekend", "Swimming lessons, {name}'s birthday party and the groceries for Sunday."),
    ("Bath and bedtime", "Bedtime routine; the kids negotiated five more minutes and a glass of water."),
    ("Sorting out the bills", "The parents went through the bills, the car insurance and the holiday budget."),
    ("Cooking together", "Made pizza with the kids; flour everywhere and an argument about toppings."),
];
const CARTOONS: [&str; 5] = ["Bluey", "Paw Patrol", "Peppa Pig", "Octonauts", "Puffin Rock"];

/// What a regular honest user's device sometimes picks up: a podcast in the car, a film with a
/// friend. `{podcast}` and `{movie}` are filled from the media lists.
const HONEST_MEDIA_TOPICS: [Topic; 4] = [
    ("Podcast in the car", "A {podcast} episode played in the car on the way to work."),
    ("Watching {movie} with {name}", "Watched {movie} with {name}; mostly the movie's dialogue."),
    ("Audiobook while cooking", "An audiobook played while cooking dinner."),
    ("TV in the background", "The TV was on during dinner: the news and a sitcom."),
];
/// Share of a regular honest user's conversations that are such media.
const HONEST_MEDIA_SHARE: f64 = 0.02;

// Abusers' titles and overviews vary too: each abuser's app titles things in one style, and the
// summarizer describes each item in its own words (one of five descriptions names no media at all).

const CHAPTER_TITLES: [&str; 8] = [
    "The Storm",
    "A Letter from Home",
    "The Harbor at Night",
    "Old Debts",
    "The Crossing",
    "What the Tide Left",
    "Strangers",
    "The Return",
];
const PLOTS: [&str; 8] = [
    "the heroine finds a letter hidden in the lighthouse",
    "two brothers argue about selling the family farm",
    "a storm strands the travellers in a mountain village",
    "the detective questions the housekeeper again",
    "an old debt comes due and the captain must choose",
    "the sisters reunite after twenty years",
    "a stranger arrives with news from the capital",
    "the crew discovers the map is a forgery",
];
const EPISODE_TITLES: [&str; 6] = [
    "Why rates are not coming down",
    "The chip war",
    "How Rome really fell",
    "Sleep like a scientist",
    "Inside a seed round",
    "Cities under the sea",
];
const DOCUMENT_TITLES: [&str; 5] = [
    "Deposition of J. Alvarez",
    "Dictation: discharge summary",
    "Claim 7731 call",
    "Minutes, March board",
    "Focus group B",
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
    /// A regular honest user's device picking up media: `a` topic, `b` bits for the placeholders.
    HonestMedia,
    /// Heavy honest users: `a` topic (or course, cartoon, book, movie), `b` bits for the
    /// placeholders, `c` a number (sprint, lecture, week, ticket, episode, chapter, part).
    Meeting,
    BoardMeeting,
    LiveLecture,
    Study,
    Call,
    Night,
    NightHandover,
    Family,
    Cartoon,
    BedtimeStory,
    MovieNight,
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
    /// How titles are written (per abuser, per course, per family).
    style: u8,
    /// The `speaker_count` the host sends; 0 when it sends none.
    speakers: u8,
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
            let mut item = ConvItem {
                start,
                end: start + wall,
                content: Content::Honest,
                category: category as u8,
                a: template as u16,
                b: name as u32,
                c: 0,
                style: 0,
                speakers: 0,
            };
            // Now and then the device picks up a podcast in the car or a film with a friend. Drawn
            // from a hash, not the stream, so everything else about the user stays as it was.
            let noise = mix(&[p.seed, p.items.len() as u64, 0x004D_4544_4941]);
            if (noise >> 11) as f64 / (1u64 << 53) as f64 * 100.0 < HONEST_MEDIA_SHARE * 100.0 {
                item.content = Content::HonestMedia;
                item.category = CAT_ENTERTAINMENT;
                item.a = (noise % HONEST_MEDIA_TOPICS.len() as u64) as u16;
                item.b = (noise >> 32) as u32;
            }
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
    // Drawn from a hash so the usage stays what it was: how this abuser's app titles things, and
    // whether their host sends speaker counts.
    let style = (mix(&[p.seed, 1]) % 3) as u8;
    let speakers = (mix(&[p.seed, 2]) % 10 < 4).then_some(match ty {
        AbuseType::Audiobook | AbuseType::Prerecorded => 1,
        AbuseType::Podcast => 3,
        AbuseType::TvMovie => 6,
        AbuseType::Commercial => 2,
    });
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
                item.style = style;
                item.speakers = speakers.unwrap_or(0);
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

/// The heavy honest populations: daily speech far above the caps, for reasons the product is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeavyKind {
    /// A manager in meetings all day, with a board meeting split in two now and then.
    Meetings,
    /// A student with five live courses, numbered lectures, study groups.
    Lectures,
    /// A sales or support rep on the phone all day: thirty short calls in two categories.
    Calls,
    /// A night-shift nurse: speech from 22:00 to 07:00 five nights a week.
    NightShift,
    /// One device shared by a family: many speakers, every category, cartoons and a movie night.
    Family,
}

const HEAVY_KINDS: [HeavyKind; 5] =
    [HeavyKind::Meetings, HeavyKind::Lectures, HeavyKind::Calls, HeavyKind::NightShift, HeavyKind::Family];

/// Who a user is: the label `--labels` writes and `fairuse eval` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Population {
    Honest,
    Heavy(HeavyKind),
    Abuser(AbuseType),
}

impl Population {
    fn label(self) -> &'static str {
        match self {
            Population::Honest => "honest",
            Population::Heavy(HeavyKind::Meetings) => "honest_heavy_meetings",
            Population::Heavy(HeavyKind::Lectures) => "honest_lectures",
            Population::Heavy(HeavyKind::Calls) => "honest_calls",
            Population::Heavy(HeavyKind::NightShift) => "honest_night_shift",
            Population::Heavy(HeavyKind::Family) => "honest_family",
            Population::Abuser(AbuseType::Audiobook) => "abuser_audiobook",
            Population::Abuser(AbuseType::Podcast) => "abuser_podcast",
            Population::Abuser(AbuseType::TvMovie) => "abuser_tv_movie",
            Population::Abuser(AbuseType::Prerecorded) => "abuser_prerecorded",
            Population::Abuser(AbuseType::Commercial) => "abuser_commercial",
        }
    }
}

/// Every label `gen-trace --labels` can write, honest ones first.
pub const LABELS: [&str; 11] = [
    "honest",
    "honest_heavy_meetings",
    "honest_lectures",
    "honest_calls",
    "honest_night_shift",
    "honest_family",
    "abuser_audiobook",
    "abuser_podcast",
    "abuser_tv_movie",
    "abuser_prerecorded",
    "abuser_commercial",
];

/// A well-mixed value from a few numbers, for choices that must not consume the user's random
/// stream (so adding them leaves every other draw, and thus the usage, unchanged).
fn mix(parts: &[u64]) -> u64 {
    let mut s = 0x243F_6A88_85A3_08D3u64;
    for &p in parts {
        s ^= p;
        s = splitmix64(&mut s);
    }
    s
}

/// Where a heavy user's next conversation may start: conversations never overlap.
struct Layout {
    last_end: i64,
    sends_speakers: bool,
}

/// What a heavy user's day holds next: (local start minute, minutes, density, conversation).
struct Slot {
    start: f64,
    minutes: f64,
    density: f64,
    item: ConvItem,
    speakers: u8,
    offline: bool,
}

fn item(content: Content, category: u8, a: u16, b: u32, c: u32) -> ConvItem {
    ConvItem { start: 0, end: 0, content, category, a, b, c, style: 0, speakers: 0 }
}

/// Lays one conversation out at `start` (or right after the previous one): streamed as a
/// session, or recorded offline and uploaded a little later.
fn place(p: &mut UserPlan, rng: &mut Rng, period: &Period, lay: &mut Layout, start: i64, slot: Slot) {
    let start = start.max(lay.last_end + 30 * MS_PER_SECOND).div_euclid(MS_PER_SECOND) * MS_PER_SECOND;
    let wall = whole_seconds(slot.minutes).max(MS_PER_MINUTE);
    lay.last_end = start + wall;
    let delay = whole_seconds(rng.range(2.0, 90.0));
    if start < period.start || start >= period.end {
        return;
    }
    let wall = wall.min(period.end - start);
    let mut item = slot.item;
    item.start = start;
    item.end = start + wall;
    item.speakers = if lay.sends_speakers { slot.speakers } else { 0 };
    if slot.offline {
        let t = start + wall + delay;
        if t <= period.end {
            let speech_ms = to_u32((slot.density * wall as f64).round() as i64);
            let key = to_u32(p.uploads.len() as i64 + 1);
            let conv = Some(to_u32(p.items.len() as i64));
            p.uploads.push(Upload { t, speech_ms, stt_ms: to_u32(wall), key, conv });
            p.items.push(item);
        }
    } else {
        let lo = p.items.len();
        p.items.push(item);
        p.push_session(start, wall, slot.density, 0.25, lo);
    }
}

/// Monday = 0 for the local calendar day `day` after the first UTC midnight of the period.
fn weekday(period: &Period, day: i64) -> i64 {
    (period.first_midnight.div_euclid(MS_PER_DAY) + day + 3).rem_euclid(7) // 1970-01-01 was a Thursday
}

fn plan_heavy(rng: &mut Rng, period: &Period, kind: HeavyKind) -> UserPlan {
    let mut p = UserPlan::new(rng);
    p.verdict = Some((HONEST_VERDICT_HUNDREDTHS, "none"));
    let tz_ms = TIME_ZONES[rng.weighted(&TIME_ZONE_WEIGHTS)] * MS_PER_MINUTE;
    let mut lay = Layout { last_end: i64::MIN / 2, sends_speakers: rng.chance(0.4) };
    let mut state = HeavyState::new(kind, rng);
    for day in 0..=i64::from(period.days) {
        let midnight = period.first_midnight + day * MS_PER_DAY - tz_ms;
        let slots = state.day(rng, weekday(period, day), day);
        for slot in slots {
            let start = midnight + whole_seconds(slot.start);
            place(&mut p, rng, period, &mut lay, start, slot);
        }
    }
    p.uploads.sort_by_key(|u| u.t);
    p
}

/// A heavy user's standing facts: their courses, counters, habits.
struct HeavyState {
    kind: HeavyKind,
    /// Lectures: (course, local start minute, minutes, days mask, title style, next number).
    courses: Vec<(u16, f64, f64, u8, u8, u32)>,
    records_offline: bool,
    sprint: u32,
    /// Night shift: which weekdays are worked (bit per weekday).
    shift_mask: u8,
    /// Family: cartoon title style, next cartoon episode, next bedtime chapter, book, movie night day.
    cartoon_style: u8,
    cartoon: u16,
    cartoon_episode: u32,
    book: u16,
    bedtime_chapter: u32,
    movie_night: i64,
}

impl HeavyState {
    fn new(kind: HeavyKind, rng: &mut Rng) -> HeavyState {
        let mut s = HeavyState {
            kind,
            courses: Vec::new(),
            records_offline: rng.chance(0.3),
            sprint: 10 + rng.below(40) as u32,
            shift_mask: 0,
            cartoon_style: rng.below(2) as u8,
            cartoon: rng.below(CARTOONS.len()) as u16,
            cartoon_episode: 1 + rng.below(50) as u32,
            book: rng.below(BOOKS.len()) as u16,
            bedtime_chapter: 1 + rng.below(10) as u32,
            movie_night: 4 + rng.below(2) as i64,
        };
        match kind {
            HeavyKind::Lectures => {
                let mut order: Vec<u16> = (0..COURSES.len() as u16).collect();
                let mut slots = vec![480.0, 570.0, 660.0, 780.0, 870.0, 960.0];
                for i in 0..5 {
                    let j = i + rng.below(order.len() - i);
                    order.swap(i, j);
                    let slot = slots.remove(rng.below(slots.len()));
                    // Monday-Wednesday-Friday 50 min, Tuesday-Thursday 75 or 90 min, or four days 50 min.
                    let (mask, minutes) = match rng.below(3) {
                        0 => (0b10101, 50.0),
                        1 => (0b01010, if rng.chance(0.5) { 75.0 } else { 90.0 }),
                        _ => (0b01111, 50.0),
                    };
                    let style = rng.below(4) as u8;
                    s.courses.push((order[i], slot, minutes, mask, style, 6 + rng.below(12) as u32));
                }
                s.courses.sort_by(|a, b| a.1.total_cmp(&b.1));
            }
            HeavyKind::NightShift => {
                // Five nights on, two off, starting on any weekday.
                let first = rng.below(7);
                s.shift_mask = (0..5).fold(0u8, |m, i| m | (1 << ((first + i) % 7)));
            }
            _ => {}
        }
        s
    }

    fn day(&mut self, rng: &mut Rng, weekday: i64, day: i64) -> Vec<Slot> {
        let mut out = Vec::new();
        let weekend = weekday >= 5;
        match self.kind {
            HeavyKind::Meetings if !weekend => self.meetings(rng, &mut out),
            HeavyKind::Lectures if !weekend => self.lectures(rng, weekday, day, &mut out),
            HeavyKind::Calls if !weekend => self.calls(rng, &mut out),
            HeavyKind::NightShift if self.shift_mask & (1 << weekday) != 0 => self.night(rng, &mut out),
            HeavyKind::Family => self.family(rng, weekday, &mut out),
            HeavyKind::Lectures => {
                // Weekend: a long study session, sometimes.
                if rng.chance(0.6) {
                    let it = item(Content::Study, CAT_EDUCATION, 0, rng.next_u64() as u32, 0);
                    out.push(Slot {
                        start: rng.range(600.0, 900.0),
                        minutes: rng.range(90.0, 180.0),
                        density: rng.range(0.4, 0.6),
                        item: it,
                        speakers: 3,
                        offline: false,
                    });
                }
                let n = 1 + rng.below(2);
                self.personal(rng, n, &mut out);
            }
            _ => {
                let n = rng.below(3);
                self.personal(rng, n, &mut out);
            }
        }
        out
    }

    /// A few ordinary conversations in the afternoon and evening (days off).
    fn personal(&mut self, rng: &mut Rng, n: usize, out: &mut Vec<Slot>) {
        let mut t = rng.range(660.0, 780.0);
        for _ in 0..n {
            let category = if rng.chance(0.6) { 1 } else { 4 };
            let template = rng.below(HONEST_TOPICS[category].len()) as u16;
            let minutes = rng.range(20.0, 70.0);
            let it = item(Content::Honest, category as u8, template, rng.below(NAMES.len()) as u32, 0);
            out.push(Slot { start: t, minutes, density: rng.range(0.3, 0.5), item: it, speakers: 2, offline: false });
            t += minutes + rng.range(60.0, 240.0);
        }
    }

    fn meetings(&mut self, rng: &mut Rng, out: &mut Vec<Slot>) {
        let mut t = rng.range(480.0, 570.0);
        let end = rng.range(1050.0, 1170.0);
        let mut board = rng.chance(0.1);
        const LENGTHS: [f64; 7] = [25.0, 30.0, 45.0, 50.0, 55.0, 60.0, 90.0];
        const WEIGHTS: [f64; 7] = [2.0, 3.0, 2.0, 1.0, 1.0, 3.0, 1.0];
        while t < end {
            if board && t >= 600.0 {
                // A two-hour board meeting the device split into parts 1 and 2, back to back.
                board = false;
                for part in 1..=2 {
                    let minutes = rng.range(55.0, 70.0);
                    let it = item(Content::BoardMeeting, 6, 0, rng.next_u64() as u32, part);
                    let speakers = 6 + rng.below(5) as u8;
                    out.push(Slot {
                        start: t,
                        minutes,
                        density: rng.range(0.5, 0.7),
                        item: it,
                        speakers,
                        offline: false,
                    });
                    t += minutes + rng.range(0.5, 2.0);
                }
                continue;
            }
            let minutes = LENGTHS[rng.weighted(&WEIGHTS)] * rng.range(0.9, 1.1);
            if t + minutes > end {
                break;
            }
            let topic = rng.below(MEETING_TOPICS.len()) as u16;
            let n = match topic {
                3 | 4 => self.sprint,
                13 => 100 + rng.below(900) as u32,
                _ => 0,
            };
            let category = if rng.chance(0.7) { 0 } else { 6 };
            let it = item(Content::Meeting, category, topic, rng.next_u64() as u32, n);
            let speakers = 2 + rng.below(9) as u8;
            out.push(Slot { start: t, minutes, density: rng.range(0.45, 0.7), item: it, speakers, offline: false });
            let gap = match rng.below(3) {
                0 => rng.range(0.0, 2.0),
                1 => rng.range(5.0, 15.0),
                _ => rng.range(20.0, 60.0),
            };
            t += minutes + gap;
        }
    }

    fn lectures(&mut self, rng: &mut Rng, weekday: i64, day: i64, out: &mut Vec<Slot>) {
        let week = 3 + day.max(0) as u32 / 7;
        for course in &mut self.courses {
            let (c, start, minutes, mask, style, _) = *course;
            if mask & (1 << weekday) == 0 {
                continue;
            }
            // Now and then a double session: two numbered lectures back to back.
            let parts = if style == 1 && rng.chance(0.08) { 2 } else { 1 };
            let mut t = start + rng.range(-3.0, 5.0);
            for _ in 0..parts {
                let number = if style == 0 { week } else { course.5 };
                course.5 += 1;
                let mut it = item(Content::LiveLecture, CAT_EDUCATION, c, rng.next_u64() as u32, number);
                it.style = style;
                let length = minutes * rng.range(0.95, 1.05);
                let speakers = 10 + rng.below(50) as u8;
                let offline = self.records_offline && rng.chance(0.5);
                out.push(Slot { start: t, minutes: length, density: rng.range(0.6, 0.8), item: it, speakers, offline });
                t += length + rng.range(1.0, 4.0);
            }
        }
        if rng.chance(0.85) {
            let topic = if rng.chance(0.15) {
                1
            } else if rng.chance(0.3) {
                2
            } else {
                0
            };
            let it = item(Content::Study, CAT_EDUCATION, topic, rng.next_u64() as u32, 0);
            let minutes = if topic == 1 { rng.range(15.0, 35.0) } else { rng.range(90.0, 180.0) };
            let speakers = 2 + rng.below(4) as u8;
            out.push(Slot {
                start: rng.range(1050.0, 1140.0),
                minutes,
                density: rng.range(0.4, 0.6),
                item: it,
                speakers,
                offline: false,
            });
        }
    }

    fn calls(&mut self, rng: &mut Rng, out: &mut Vec<Slot>) {
        let mut t = rng.range(510.0, 545.0);
        let end = rng.range(1020.0, 1080.0);
        let lunch = rng.range(720.0, 780.0);
        let mut lunched = false;
        while t < end {
            if !lunched && t >= lunch {
                lunched = true;
                t += rng.range(30.0, 50.0);
            }
            let minutes = rng.log_normal(9.0, 0.5).clamp(2.0, 40.0);
            let topic = rng.below(CALL_TOPICS.len()) as u16;
            let n = if topic == 5 { 10_000 + rng.below(90_000) as u32 } else { 0 };
            let category = if rng.chance(0.6) { 0 } else { 6 };
            let it = item(Content::Call, category, topic, rng.next_u64() as u32, n);
            out.push(Slot { start: t, minutes, density: rng.range(0.5, 0.7), item: it, speakers: 2, offline: false });
            t += minutes + rng.range(1.0, 12.0);
        }
    }

    fn night(&mut self, rng: &mut Rng, out: &mut Vec<Slot>) {
        // Awake in the late afternoon, then the shift from about 22:00 to 07:00.
        if rng.chance(0.5) {
            self.personal(rng, 1, out);
        }
        let mut t = rng.range(1305.0, 1335.0);
        let handover = item(Content::NightHandover, 0, 0, rng.next_u64() as u32, 0);
        let minutes = rng.range(25.0, 40.0);
        out.push(Slot {
            start: t,
            minutes,
            density: rng.range(0.45, 0.6),
            item: handover,
            speakers: 3,
            offline: false,
        });
        t += minutes + rng.range(3.0, 20.0);
        while t < 1830.0 {
            let minutes = rng.range(10.0, 50.0);
            let topic = rng.below(NIGHT_TOPICS.len()) as u16;
            let it = item(Content::Night, 3, topic, rng.next_u64() as u32, 0);
            let speakers = 2 + rng.below(2) as u8;
            out.push(Slot { start: t, minutes, density: rng.range(0.4, 0.6), item: it, speakers, offline: false });
            t += minutes + rng.range(3.0, 35.0);
        }
        let morning = item(Content::NightHandover, 0, 1, rng.next_u64() as u32, 0);
        out.push(Slot {
            start: t.max(1830.0),
            minutes: rng.range(20.0, 30.0),
            density: rng.range(0.45, 0.6),
            item: morning,
            speakers: 3,
            offline: false,
        });
    }

    fn family(&mut self, rng: &mut Rng, weekday: i64, out: &mut Vec<Slot>) {
        let weekend = weekday >= 5;
        fn push(out: &mut Vec<Slot>, rng: &mut Rng, t: &mut f64, topic: u16, lo: f64, hi: f64) {
            let minutes = rng.range(lo, hi);
            let category = match topic {
                2 => CAT_EDUCATION,
                4 | 6 => 4,
                8 => 7,
                _ => 1,
            };
            let it = item(Content::Family, category, topic, rng.next_u64() as u32, 0);
            let speakers = 3 + rng.below(4) as u8;
            out.push(Slot { start: *t, minutes, density: rng.range(0.35, 0.55), item: it, speakers, offline: false });
            *t += minutes + rng.range(10.0, 50.0);
        }
        let mut t = rng.range(400.0, 450.0) + if weekend { 60.0 } else { 0.0 };
        push(out, rng, &mut t, 0, 30.0, if weekend { 70.0 } else { 45.0 });
        if weekend {
            t = t.max(rng.range(660.0, 720.0));
            push(out, rng, &mut t, 3, 40.0, 100.0);
            push(out, rng, &mut t, 9, 40.0, 70.0);
        } else {
            push(out, rng, &mut t, 1, 15.0, 25.0);
        }
        t = t.max(rng.range(930.0, 990.0));
        push(out, rng, &mut t, 2, 40.0, 80.0);
        push(out, rng, &mut t, 3, 30.0, 90.0);
        if rng.chance(0.45) {
            // The kids watch cartoons: one long stretch, or two episodes back to back.
            let parts = if self.cartoon_style == 1 { 2 } else { 1 };
            for _ in 0..parts {
                let minutes = if parts == 2 { rng.range(20.0, 25.0) } else { rng.range(40.0, 70.0) };
                let mut it = item(Content::Cartoon, CAT_ENTERTAINMENT, self.cartoon, 0, self.cartoon_episode);
                it.style = self.cartoon_style;
                self.cartoon_episode += 1;
                out.push(Slot {
                    start: t,
                    minutes,
                    density: rng.range(0.5, 0.7),
                    item: it,
                    speakers: 4,
                    offline: false,
                });
                t += minutes + rng.range(0.2, 1.0);
            }
            t += rng.range(10.0, 30.0);
        }
        if rng.chance(0.35) {
            push(out, rng, &mut t, 4, 20.0, 40.0);
        }
        if rng.chance(0.3) {
            push(out, rng, &mut t, 9, 40.0, 60.0);
        }
        t = t.max(rng.range(1080.0, 1130.0));
        push(out, rng, &mut t, 5, 45.0, 75.0);
        if weekday == self.movie_night {
            let it = item(Content::MovieNight, CAT_ENTERTAINMENT, rng.below(MOVIES.len()) as u16, 0, 0);
            let minutes = rng.range(100.0, 130.0);
            out.push(Slot { start: t, minutes, density: rng.range(0.5, 0.7), item: it, speakers: 6, offline: false });
            t += minutes + rng.range(5.0, 15.0);
        }
        if weekday == 3 || weekday == 4 {
            push(out, rng, &mut t, 6, 20.0, 40.0);
        }
        push(out, rng, &mut t, 7, 30.0, 45.0);
        if rng.chance(0.8) {
            let it = item(Content::BedtimeStory, CAT_ENTERTAINMENT, self.book, 0, self.bedtime_chapter);
            self.bedtime_chapter += 1;
            let minutes = rng.range(15.0, 25.0);
            out.push(Slot { start: t, minutes, density: rng.range(0.6, 0.8), item: it, speakers: 2, offline: false });
            t += minutes + rng.range(10.0, 30.0);
        }
        if rng.chance(0.25) {
            push(out, rng, &mut t, 8, 30.0, 60.0);
        }
    }
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
                let (title, overview) = describe(item, plans[user].seed);
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
                buf.extend_from_slice(b"\",\"source\":\"omi\"");
                if item.speakers > 0 {
                    buf.extend_from_slice(b",\"speaker_count\":");
                    push_uint(buf, item.speakers.into());
                }
                buf.extend_from_slice(b"}}\n");
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

/// `{name}`, `{name2}`, `{company}`, `{project}`, `{issue}` from the bits of `b`; `{n}` is `n`.
fn fill(template: &str, b: u32, n: u32) -> String {
    if !template.contains('{') {
        return template.to_owned();
    }
    let name = (b % 16) as usize;
    let mut name2 = ((b >> 4) % 16) as usize;
    if name2 == name {
        name2 = (name2 + 1) % NAMES.len();
    }
    template
        .replace("{name}", NAMES[name])
        .replace("{name2}", NAMES[name2])
        .replace("{company}", COMPANIES[(b >> 8) as usize % COMPANIES.len()])
        .replace("{project}", PROJECTS[(b >> 12) as usize % PROJECTS.len()])
        .replace("{issue}", ISSUES[(b >> 16) as usize % ISSUES.len()])
        .replace("{n}", &n.to_string())
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// The title and overview a host would store for this conversation; `salt` (the user's) makes
/// the summarizer's choices differ between users who play the same item.
fn describe(item: &ConvItem, salt: u64) -> (String, String) {
    let (a, b, c) = (usize::from(item.a), item.b, item.c as usize);
    // Which of the five descriptions the summarizer wrote for this item; the last names no media.
    let variant = (mix(&[salt, u64::from(item.a), u64::from(b), c as u64, item.content as u64]) % 5) as usize;
    let plot = PLOTS[(mix(&[salt, u64::from(b), c as u64, 7]) % PLOTS.len() as u64) as usize];
    match item.content {
        Content::Honest => {
            let topics = HONEST_TOPICS[usize::from(item.category)];
            let (title, overview) = topics[a % topics.len()];
            let name = NAMES[b as usize % NAMES.len()];
            (title.replace("{name}", name), overview.replace("{name}", name))
        }
        Content::HonestMedia => {
            let (title, overview) = HONEST_MEDIA_TOPICS[a % HONEST_MEDIA_TOPICS.len()];
            let movie = MOVIES[(b >> 20) as usize % MOVIES.len()];
            let podcast = PODCASTS[(b >> 24) as usize % PODCASTS.len()];
            let fill_media = |t: &str| fill(&t.replace("{movie}", movie).replace("{podcast}", podcast), b, 0);
            (fill_media(title), fill_media(overview))
        }
        Content::Meeting => {
            let (title, overview) = MEETING_TOPICS[a % MEETING_TOPICS.len()];
            (fill(title, b, c as u32), fill(overview, b, c as u32))
        }
        Content::BoardMeeting => (fill(BOARD_MEETING.0, b, c as u32), fill(BOARD_MEETING.1, b, c as u32)),
        Content::LiveLecture => {
            let (code, name, topics) = COURSES[a % COURSES.len()];
            let topic = topics[(b >> 20) as usize % topics.len()];
            let title = match item.style {
                0 => format!("{code} lecture — week {c}"),
                1 => format!("{code} Lecture {c}"),
                2 => format!("{name}: {topic}"),
                _ => format!("{name} class"),
            };
            let overview = LECTURE_OVERVIEWS[(b >> 24) as usize % LECTURE_OVERVIEWS.len()];
            (title, capitalized(&fill(overview, b, 0).replace("{topic}", topic)))
        }
        Content::Study => {
            let (title, overview) = STUDY_TOPICS[a % STUDY_TOPICS.len()];
            (fill(title, b, 0), fill(overview, b, 0))
        }
        Content::Call => {
            let (title, overview) = CALL_TOPICS[a % CALL_TOPICS.len()];
            (fill(title, b, c as u32), fill(overview, b, c as u32))
        }
        Content::Night => {
            let (title, overview) = NIGHT_TOPICS[a % NIGHT_TOPICS.len()];
            (fill(title, b, 0), fill(overview, b, 0))
        }
        Content::NightHandover => {
            let (title, overview) = NIGHT_HANDOVERS[a % NIGHT_HANDOVERS.len()];
            (fill(title, b, 0), fill(overview, b, 0))
        }
        Content::Family => {
            let (title, overview) = FAMILY_TOPICS[a % FAMILY_TOPICS.len()];
            (fill(title, b, 0), fill(overview, b, 0))
        }
        Content::Cartoon => {
            let cartoon = CARTOONS[a % CARTOONS.len()];
            if item.style == 1 {
                (
                    format!("{cartoon} Episode {c}"),
                    format!("An episode of {cartoon} playing on the TV while the kids had a snack."),
                )
            } else {
                (format!("Kids watching {cartoon}"), format!("The kids watched {cartoon}: cartoon voices and songs."))
            }
        }
        Content::BedtimeStory => (
            format!("Bedtime story: {} chapter {c}", BOOKS[a % BOOKS.len()]),
            format!("Read chapter {c} of \"{}\" to the kids; they asked what happens next.", BOOKS[a % BOOKS.len()]),
        ),
        Content::MovieNight => (
            format!("Family movie night: {}", MOVIES[a % MOVIES.len()]),
            format!("Watched the movie {} together; mostly the film's dialogue and music.", MOVIES[a % MOVIES.len()]),
        ),
        Content::Chapter => {
            let book = BOOKS[a % BOOKS.len()];
            let title = match item.style {
                0 => format!("{book} - Chapter {b}"),
                1 => format!("Chapter {b}: {}", CHAPTER_TITLES[b as usize % CHAPTER_TITLES.len()]),
                _ => format!("{book}, Part {b}"),
            };
            let overview = match variant {
                0 => {
                    format!("A single narrator reads chapter {b} of \"{book}\"; continuous narration, no other voices.")
                }
                1 => format!("Narration continues: {plot}."),
                2 => format!("The narrator describes how {plot}."),
                3 => format!("Audiobook chapter: {plot}."),
                _ => format!("{}; one voice throughout, no conversation.", capitalized(plot)),
            };
            (title, overview)
        }
        Content::PodcastEpisode => {
            let show = PODCASTS[a % PODCASTS.len()];
            let topic = PODCAST_TOPICS[c % PODCAST_TOPICS.len()];
            let headline = EPISODE_TITLES[c % EPISODE_TITLES.len()];
            let title = match item.style {
                0 => format!("{show} Episode {b}"),
                1 => format!("{show} Ep. {b}: {headline}"),
                _ => format!("{headline} | {show}"),
            };
            let overview = match variant {
                0 => format!("Podcast episode: two hosts and a guest talk about {topic}; opens with an ad read."),
                1 => format!("In this episode of {show}, the hosts discuss {topic}."),
                2 => format!(
                    "{show}: a conversation about {topic} with a guest expert, sponsored by a meal-kit company."
                ),
                3 => format!("The podcast {show} on {topic}, with listener questions at the end."),
                _ => format!("The hosts of {show} interview an author about {topic}."),
            };
            (title, overview)
        }
        Content::TvEpisode => {
            let show = TV_SHOWS[a % TV_SHOWS.len()];
            let title = match item.style {
                0 => format!("{show} Season {b} Episode {c}"),
                1 => format!("{show} S{b:02}E{c:02}"),
                _ => format!("{show}: {}", CHAPTER_TITLES[(b as usize * 31 + c) % CHAPTER_TITLES.len()]),
            };
            let overview = match variant {
                0 => {
                    format!("Dialogue from the TV show {show}: several characters, background music and a laugh track.")
                }
                1 => format!("An episode of {show}: {plot}."),
                2 => format!("Scenes from the sitcom {show}; {plot}."),
                3 => format!("{show}, season {b}: {plot}, with the show's soundtrack between scenes."),
                _ => format!("Several characters talk over music: {plot}."),
            };
            (title, overview)
        }
        Content::Movie => {
            let movie = MOVIES[a % MOVIES.len()];
            let title = if item.style == 2 { format!("Watching {movie}") } else { format!("{movie} (movie)") };
            let overview = match variant {
                0 => format!("The movie {movie} playing on the TV: dialogue, soundtrack and sound effects."),
                1 => format!("Film: {plot}."),
                2 => format!("{movie}, a feature film: {plot}."),
                3 => format!("Movie dialogue: {plot}."),
                _ => format!("Characters argue and music swells: {plot}."),
            };
            (title, overview)
        }
        Content::Lecture => {
            let subject = LECTURE_SUBJECTS[a % LECTURE_SUBJECTS.len()];
            let title = match item.style {
                0 => format!("Recorded lecture {b}"),
                1 => format!("{} — Lecture {b}", capitalized(subject)),
                _ => format!("{} lesson {b}", capitalized(subject)),
            };
            let overview = match variant {
                0 => format!(
                    "Recorded lecture {b} on {subject} played back from a video; one speaker, no questions or interaction."
                ),
                1 => {
                    format!("A lecture recording on {subject}: one speaker works through the material without pauses.")
                }
                2 => format!("YouTube lecture {b} from an online {subject} course."),
                3 => format!("Video lecture {b} of an online {subject} course, played at normal speed."),
                _ => format!("One speaker explains {subject} for the whole session, without pauses."),
            };
            (title, overview)
        }
        Content::ClientFile => {
            let client = CLIENTS[a % CLIENTS.len()];
            let document = CLIENT_DOCUMENTS[c % CLIENT_DOCUMENTS.len()];
            let title = match item.style {
                0 => format!("Client file #{b} transcription job"),
                1 => format!("{client} — {document} #{b}"),
                _ => format!("{} ({client})", DOCUMENT_TITLES[c % DOCUMENT_TITLES.len()]),
            };
            let overview = match variant {
                0 => format!("Paid transcription job: {document} for client {client}, delivered as a text file."),
                1 => format!("Transcription job {b}: {document} from {client}."),
                2 => format!("Client file {b}: {document}, speaker labels requested."),
                3 => format!("{}, transcription job for {client}, due tomorrow.", capitalized(document)),
                _ => format!("{} from {client}, transcribed for delivery.", capitalized(document)),
            };
            (title, overview)
        }
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
            heavy: 0.03,
            start: "2026-03-02T00:00:00Z".into(),
            seed,
            conversations: true,
            verdicts: true,
            out: "-".into(),
            labels: None,
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

    fn labelled(a: &GenTraceArgs) -> (Vec<u8>, BTreeMap<String, String>) {
        let (mut buf, mut labels) = (Vec::new(), Vec::new());
        generate_with_labels(a, &mut buf, Some(&mut labels), &mut |_, _| {}).expect("generate");
        let labels = lines(&labels)
            .into_iter()
            .map(|v| (v["uid"].as_str().expect("uid").to_owned(), v["kind"].as_str().expect("kind").to_owned()))
            .collect();
        (buf, labels)
    }

    #[test]
    fn labels_name_every_user_once_and_leave_the_trace_unchanged() {
        let a = args(400, 2, 0.05, 9);
        let (with, labels) = labelled(&a);
        let (without, summary) = trace(&a);
        assert_eq!(with, without, "labels go to their own writer");
        assert_eq!(labels.len(), 400);
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for kind in labels.values() {
            assert!(LABELS.contains(&kind.as_str()), "{kind}");
            *counts.entry(kind).or_default() += 1;
        }
        assert_eq!(
            counts.iter().filter(|(k, _)| k.starts_with("abuser_")).map(|(_, n)| n).sum::<u64>(),
            summary.abusers
        );
        assert_eq!(summary.abusers, 20);
        let heavy: u64 =
            counts.iter().filter(|(k, _)| **k != "honest" && !k.starts_with("abuser_")).map(|(_, n)| n).sum();
        assert_eq!((heavy, summary.heavy), (12, 12), "3 % of 400, round-robin over five kinds");
        assert_eq!(counts.len(), LABELS.len(), "every kind present: {counts:?}");
        // The abusers are the same users with or without heavy honest users.
        let mut b = a.clone();
        b.heavy = 0.0;
        let (_, plain) = labelled(&b);
        let abusers = |l: &BTreeMap<String, String>| {
            l.iter().filter(|(_, k)| k.starts_with("abuser_")).map(|(u, k)| (u.clone(), k.clone())).collect::<Vec<_>>()
        };
        assert_eq!(abusers(&labels), abusers(&plain));
    }

    #[test]
    fn heavy_honest_users_speak_above_the_caps_about_what_their_label_says() {
        let a = args(500, 7, 0.0, 4);
        let (bytes, labels) = labelled(&a);
        let mut speech: BTreeMap<String, i64> = BTreeMap::new();
        let mut sessions: BTreeMap<String, i64> = BTreeMap::new();
        let mut titles: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut night_minutes: BTreeMap<String, i64> = BTreeMap::new();
        for v in lines(&bytes) {
            let uid = v["uid"].as_str().unwrap_or_default().to_owned();
            match v["type"].as_str() {
                Some("usage") if v["lane"] == "realtime" => {
                    let sid = v["session_id"].as_str().expect("sid").to_owned();
                    sessions.insert(sid, v["cumulative_speech_ms"].as_i64().expect("total"));
                }
                Some("usage") => *speech.entry(uid).or_default() += v["speech_ms"].as_i64().expect("speech"),
                Some("conversation") => {
                    let kind = labels[&uid].as_str();
                    let kind = LABELS.iter().find(|l| **l == kind).expect("label");
                    titles.entry(kind).or_default().insert(v["conversation"]["title"].as_str().expect("title").into());
                    if kind == &"honest_night_shift" {
                        let c: Conversation = serde_json::from_value(v["conversation"].clone()).expect("conversation");
                        let hour = c.started_at.millis().rem_euclid(MS_PER_DAY) / MS_PER_HOUR;
                        *night_minutes.entry(uid).or_default() +=
                            i64::from(!(6..20).contains(&hour)) * c.duration_minutes() as i64;
                    }
                }
                _ => {}
            }
        }
        for (sid, total) in sessions {
            *speech.entry(sid.split('-').next().expect("uid").to_owned()).or_default() += total;
        }
        for kind in ["honest_heavy_meetings", "honest_lectures", "honest_calls", "honest_night_shift", "honest_family"]
        {
            let users: Vec<&String> = labels.iter().filter(|(_, k)| k.as_str() == kind).map(|(u, _)| u).collect();
            assert_eq!(users.len(), 3, "{kind}");
            let hours_per_day: f64 =
                users.iter().map(|u| speech[*u] as f64 / MS_PER_HOUR as f64 / 7.0).sum::<f64>() / users.len() as f64;
            // Above the 2 h daily cap on average (weekends included), and below an abuser's 16 h.
            assert!((2.0..10.0).contains(&hours_per_day), "{kind}: {hours_per_day:.1} h a day");
            assert!(titles[kind].len() >= 8, "{kind} titles are varied: {:?}", titles[kind]);
        }
        assert!(
            titles["honest_lectures"].iter().any(|t| t.contains("lecture — week")),
            "{:?}",
            titles["honest_lectures"]
        );
        assert!(night_minutes.values().all(|&m| m > 0), "night shifts speak at night (UTC hours vary by zone)");
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
