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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fairuse_domain::sessions::{SpeechShape, StreamSession};
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND, Timestamp};

use serde::{Deserialize, Serialize};

use crate::heard::AudioSegment;

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

/// Whether a family's users abuse the service or use it honestly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Abuser,
    Honest,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Abuser => "abuser",
            Kind::Honest => "honest",
        }
    }
}

/// `[audio]`: what the streaming gateway hears in a family's sessions. Optional: without it the
/// family streams nothing through the gateway and only the host's metadata is seen. With it,
/// every session of a user is one gateway stream, written as a `stream_session` line (with the
/// stream's `audio`) when it ends; `simulate` and `eval` turn the audio into fingerprint codes
/// ([`crate::heard`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioPlan {
    pub source: AudioSource,
    /// `shared` and `own_loop`: recordings in the pool.
    #[serde(default)]
    pub recordings: u32,
    /// `shared`: the pool's name, `[a-z0-9_]+`; families naming the same pool hear the same
    /// recordings. The family's own name when absent.
    #[serde(default)]
    pub pool: Option<String>,
    /// `shared` and `own_loop`: minutes of each recording.
    #[serde(default)]
    pub recording_minutes: Option<[f64; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioSource {
    /// People talking: audio nobody else ever hears.
    Live,
    /// Recordings from one pool shared by the family's users (the same books, episodes, videos),
    /// played through; at the end of one, a random one of the pool.
    Shared,
    /// Each user's own playlist of recordings, played in order and over again.
    OwnLoop,
    /// Users in pairs (users 1 and 2, 3 and 4, ...) who spend their days together: the same
    /// schedule and the same live audio at the same moment (two wearers in one room).
    CoLocated,
}

/// Who may look at a family: the heuristic's author (tuning) or nobody before the report (held out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FamilySet {
    #[value(name = "tuning")]
    Tuning,
    #[value(name = "held_out")]
    HeldOut,
}

impl FamilySet {
    pub fn as_str(self) -> &'static str {
        match self {
            FamilySet::Tuning => "tuning",
            FamilySet::HeldOut => "held_out",
        }
    }
}

/// How a user's conversations are titled, as weights.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StyleWeights {
    /// An LLM summary of the content ("Elizabeth Rejects Mr. Darcy's Proposal").
    pub summary: f64,
    /// A media-style or numbered title ("Kapitel 12", "Session 14 with client").
    pub media: f64,
    /// A plain title that says little ("Afternoon", "Quick chat").
    pub neutral: f64,
}

/// One language's titles and summaries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// How likely a user of the family has this as their main language.
    #[serde(default = "one")]
    pub weight: f64,
    /// `[title, overview]` pairs written as a host's summariser would.
    #[serde(default)]
    pub summaries: Vec<(String, String)>,
    /// Media-style or numbered title templates.
    #[serde(default)]
    pub media_titles: Vec<String>,
    /// Plain title templates.
    #[serde(default)]
    pub neutral_titles: Vec<String>,
    /// Overview templates for media and neutral titles.
    #[serde(default)]
    pub overviews: Vec<String>,
    /// What `{phrase}` becomes.
    #[serde(default)]
    pub phrases: Vec<String>,
    /// What `{name}` becomes.
    #[serde(default)]
    pub names: Vec<String>,
}

fn one() -> f64 {
    1.0
}

fn default_spread() -> f64 {
    0.1
}

/// One family file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// `[a-z0-9_]+`; the label kind is `<kind>_<name>`, user ids `<name>-NNN`.
    pub name: String,
    pub kind: Kind,
    pub set: FamilySet,
    pub description: String,
    /// For abusers: the usage type a right verdict names (audiobook, podcast, prerecorded,
    /// tv_movie, commercial).
    #[serde(default)]
    pub usage_type: Option<String>,
    /// Plan name -> weight.
    pub plans: BTreeMap<String, f64>,
    /// Category (free text the host sets) -> weight.
    pub categories: BTreeMap<String, f64>,
    pub style_weights: StyleWeights,
    /// Hours of wall time in sessions per day.
    pub daily_hours: [f64; 2],
    pub session_minutes: [f64; 2],
    pub session_gap_minutes: [f64; 2],
    pub conversation_minutes: [f64; 2],
    pub conversation_gap_minutes: [f64; 2],
    /// Speech per minute of conversation, as a share.
    pub density: [f64; 2],
    /// How much one minute's density strays from its conversation's (uniform +-).
    #[serde(default = "default_spread")]
    pub minute_spread: f64,
    /// Speakers the host reports per conversation.
    pub speakers: [u32; 2],
    /// Share of conversations whose host reports a speaker count at all.
    #[serde(default = "one")]
    pub speaker_count_share: f64,
    /// Words per minute of speech, for `word_count`; absent means no word count.
    #[serde(default)]
    pub words_per_minute: Option<[f64; 2]>,
    /// Honest users: the local hour their day starts.
    #[serde(default)]
    pub start_hour: Option<[f64; 2]>,
    /// Honest users: the UTC offsets (hours) they live in.
    #[serde(default)]
    pub utc_offsets: Vec<i32>,
    /// Share of users who also use a second language of the family now and then.
    #[serde(default)]
    pub second_language_share: f64,
    /// What the gateway hears, if the family streams through it.
    #[serde(default)]
    pub audio: Option<AudioPlan>,
    /// The day of the trace (0 = the first) the family's users start: later arrivals find the
    /// service, and its print index, already in use.
    #[serde(default)]
    pub start_day: u32,
    /// Language code -> titles.
    pub languages: BTreeMap<String, Language>,
}

const PLACEHOLDERS: [&str; 5] = ["n", "season", "day", "phrase", "name"];
const PLANS: [&str; 3] = ["free", "paid", "unlimited"];

impl Family {
    /// Parses and checks one family file's text.
    pub fn from_toml_str(text: &str) -> anyhow::Result<Family> {
        let f: Family = toml::from_str(text)?;
        f.check()?;
        Ok(f)
    }

    /// `<kind>_<name>`, the label kind `fairuse eval` reports.
    pub fn label_kind(&self) -> String {
        format!("{}_{}", self.kind.as_str(), self.name)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.name.is_empty()
            || self.name.len() > 100
            || !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            bail!("name: {:?} must be 1-100 characters of [a-z0-9_]", self.name);
        }
        let range = |field: &str, r: [f64; 2], lo: f64, hi: f64| -> anyhow::Result<()> {
            if !(r[0].is_finite() && r[1].is_finite() && lo <= r[0] && r[0] <= r[1] && r[1] <= hi) {
                bail!("{field}: [{}, {}] must be an increasing pair within [{lo}, {hi}]", r[0], r[1]);
            }
            Ok(())
        };
        range("daily_hours", self.daily_hours, 0.1, 24.0)?;
        range("session_minutes", self.session_minutes, 1.0, 24.0 * 60.0)?;
        range("session_gap_minutes", self.session_gap_minutes, 0.0, 24.0 * 60.0)?;
        range("conversation_minutes", self.conversation_minutes, 1.0, 24.0 * 60.0)?;
        range("conversation_gap_minutes", self.conversation_gap_minutes, 0.0, 24.0 * 60.0)?;
        range("density", self.density, 0.0, 1.0)?;
        range("minute_spread", [0.0, self.minute_spread], 0.0, 1.0)?;
        range("speaker_count_share", [0.0, self.speaker_count_share], 0.0, 1.0)?;
        range("second_language_share", [0.0, self.second_language_share], 0.0, 1.0)?;
        if let Some(w) = self.words_per_minute {
            range("words_per_minute", w, 1.0, 400.0)?;
        }
        if self.speakers[0] == 0 || self.speakers[0] > self.speakers[1] || self.speakers[1] > 50 {
            bail!("speakers: [{}, {}] must be an increasing pair within [1, 50]", self.speakers[0], self.speakers[1]);
        }
        match (self.kind, self.start_hour) {
            (Kind::Honest, Some(h)) => range("start_hour", h, 0.0, 23.99)?,
            (Kind::Honest, None) => bail!("start_hour: honest families need the local hour their day starts"),
            (Kind::Abuser, Some(_)) => bail!("start_hour: abusers stream from the first hour; leave it out"),
            (Kind::Abuser, None) => {}
        }
        if self.kind == Kind::Honest && self.utc_offsets.is_empty() {
            bail!("utc_offsets: honest families need at least one");
        }
        if let Some(o) = self.utc_offsets.iter().find(|o| !(-12..=14).contains(*o)) {
            bail!("utc_offsets: {o} is not a UTC offset");
        }
        if let Some(t) = &self.usage_type
            && !["audiobook", "podcast", "prerecorded", "tv_movie", "commercial"].contains(&t.as_str())
        {
            bail!("usage_type: {t:?} is not audiobook, podcast, prerecorded, tv_movie or commercial");
        }
        if let Some(a) = &self.audio
            && matches!(a.source, AudioSource::Shared | AudioSource::OwnLoop)
        {
            if a.recordings == 0 || a.recordings > 10_000 {
                bail!("audio.recordings: {} must be 1-10000 for a shared or own_loop source", a.recordings);
            }
            if let Some(p) = &a.pool
                && (p.is_empty()
                    || p.len() > 100
                    || !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            {
                bail!("audio.pool: {p:?} must be 1-100 characters of [a-z0-9_]");
            }
            match a.recording_minutes {
                Some(m) => range("audio.recording_minutes", m, 1.0, 24.0 * 60.0)?,
                None => bail!("audio.recording_minutes: needed for a shared or own_loop source"),
            }
        }
        weights("plans", &self.plans)?;
        if let Some(p) = self.plans.keys().find(|p| !PLANS.contains(&p.as_str())) {
            bail!("plans: {p:?} is not a shipped plan ({})", PLANS.join(", "));
        }
        weights("categories", &self.categories)?;
        let s = self.style_weights;
        if ![s.summary, s.media, s.neutral].iter().all(|w| w.is_finite() && *w >= 0.0)
            || s.summary + s.media + s.neutral <= 0.0
        {
            bail!("style_weights: weights must be >= 0 and not all 0");
        }
        if self.languages.is_empty() {
            bail!("languages: at least one");
        }
        for (code, l) in &self.languages {
            let at = |field: &str| format!("languages.{code}.{field}");
            if !(l.weight.is_finite() && l.weight > 0.0) {
                bail!("{}: must be > 0", at("weight"));
            }
            if (!l.media_titles.is_empty() || !l.neutral_titles.is_empty()) && l.overviews.is_empty() {
                bail!("{}: media and neutral titles need overviews", at("overviews"));
            }
            if styles_available(l, s).iter().all(|w| *w <= 0.0) {
                bail!("languages.{code}: no title style with a positive weight has titles");
            }
            let texts = l
                .summaries
                .iter()
                .flat_map(|(t, o)| [t, o])
                .chain(&l.media_titles)
                .chain(&l.neutral_titles)
                .chain(&l.overviews);
            for text in texts {
                if text.trim().is_empty() {
                    bail!("languages.{code}: an empty title or overview");
                }
                for p in placeholders(text) {
                    if !PLACEHOLDERS.contains(&p) {
                        bail!("languages.{code}: unknown placeholder {{{p}}} in {text:?}");
                    }
                    if p == "phrase" && l.phrases.is_empty() {
                        bail!("{}: {{phrase}} is used but there are no phrases", at("phrases"));
                    }
                    if p == "name" && l.names.is_empty() {
                        bail!("{}: {{name}} is used but there are no names", at("names"));
                    }
                }
            }
        }
        Ok(())
    }
}

fn weights(field: &str, w: &BTreeMap<String, f64>) -> anyhow::Result<()> {
    if w.is_empty() || !w.values().all(|v| v.is_finite() && *v >= 0.0) || w.values().sum::<f64>() <= 0.0 {
        bail!("{field}: needs at least one entry, weights >= 0 and not all 0");
    }
    Ok(())
}

/// The family's style weights, zero where the language has no titles of that style.
fn styles_available(l: &Language, s: StyleWeights) -> [f64; 3] {
    [
        if l.summaries.is_empty() { 0.0 } else { s.summary },
        if l.media_titles.is_empty() { 0.0 } else { s.media },
        if l.neutral_titles.is_empty() { 0.0 } else { s.neutral },
    ]
}

/// The names inside `{...}` of a template.
fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push(&after[..close]);
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    out
}

/// Reads every family: `<dir>/tuning/*.toml` and `<dir>/held_out/*.toml` (a file's `set` must
/// match its folder), sorted by name. Names are unique.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<Family>> {
    let mut families: Vec<Family> = Vec::new();
    for set in [FamilySet::Tuning, FamilySet::HeldOut] {
        let sub = dir.join(set.as_str());
        if !sub.is_dir() {
            continue;
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&sub)
            .with_context(|| format!("reading {}", sub.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", sub.display()))?;
        paths.retain(|p| p.extension().is_some_and(|e| e == "toml"));
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let f = Family::from_toml_str(&text).with_context(|| format!("family file {}", path.display()))?;
            if f.set != set {
                bail!(
                    "family file {}: set = {:?} but it is in the {} folder",
                    path.display(),
                    f.set.as_str(),
                    set.as_str()
                );
            }
            if families.iter().any(|g| g.name == f.name) {
                bail!("family file {}: another family is also named {:?}", path.display(), f.name);
            }
            families.push(f);
        }
    }
    if families.is_empty() {
        bail!("no family files in {}/tuning or {}/held_out", dir.display(), dir.display());
    }
    families.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(families)
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

/// A small deterministic generator (splitmix64): no dependency, same numbers on every platform.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, r: [f64; 2]) -> f64 {
        r[0] + (r[1] - r[0]) * self.uniform()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
    /// An integer in the range, small values likelier (most meetings are small, a few are crowds).
    fn skewed_int(&mut self, r: [u32; 2]) -> u32 {
        let u = self.uniform();
        (r[0] + (f64::from(r[1] - r[0] + 1) * u * u) as u32).min(r[1])
    }
    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
    /// An index drawn by weight (weights >= 0, not all 0).
    fn weighted(&mut self, w: &[f64]) -> usize {
        let total: f64 = w.iter().sum();
        let mut x = self.uniform() * total;
        for (i, v) in w.iter().enumerate() {
            if x < *v {
                return i;
            }
            x -= v;
        }
        w.iter().rposition(|v| *v > 0.0).unwrap_or(0)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// FNV-1a, to give each family its own random stream whatever other families exist.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3))
}

/// The conversation metadata as the host reports it (SPEC section 3).
#[derive(Debug, Clone, Serialize)]
struct ConversationOut {
    conversation_id: String,
    title: String,
    overview: String,
    category: String,
    started_at: String,
    finished_at: String,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    word_count: Option<u32>,
}

enum Payload {
    Plan,
    Usage {
        speech_ms: u32,
        stt_ms: u32,
    },
    Conversation(usize),
    /// A gateway stream ended: its session and what it heard.
    Session(usize),
    Tick,
}

struct Ev {
    t: i64,
    user: u32,
    seq: u32,
    payload: Payload,
}

impl Ev {
    fn rank(&self) -> u8 {
        match self.payload {
            Payload::Plan => 0,
            Payload::Usage { .. } => 1,
            Payload::Conversation(_) => 2,
            Payload::Session(_) => 3,
            Payload::Tick => 4,
        }
    }
}

struct UserOut {
    uid: String,
    plan: String,
    conversations: Vec<ConversationOut>,
    /// Gateway streams (families with `[audio]`).
    sessions: Vec<(StreamSession, Vec<AudioSegment>)>,
}

/// A stream's snapshots are written this often while it runs, and once when it ends.
const SNAPSHOT_MS: i64 = 15 * MS_PER_MINUTE;

/// The closed `session` as the snapshots a gateway would have recorded every `every_ms`: totals
/// growing in proportion to the time elapsed, each carrying the audio heard since the one before
/// (segments cut at the snapshot instants); the last is the closed session itself.
fn snapshots(
    session: &StreamSession,
    heard: Vec<AudioSegment>,
    every_ms: i64,
) -> Vec<(StreamSession, Vec<AudioSegment>)> {
    let duration = session.duration_ms.max(1);
    let mut out = Vec::new();
    let mut rest = heard.into_iter().peekable();
    let mut cut: Option<AudioSegment> = None;
    let mut from = 0;
    while from < duration {
        let to = (from + every_ms).min(duration);
        let mut audio = Vec::new();
        while let Some(seg) = cut.take().or_else(|| rest.next()) {
            if seg.at_ms >= to {
                cut = Some(seg);
                break;
            }
            if seg.at_ms + seg.ms > to {
                let head = to - seg.at_ms;
                audio.push(AudioSegment { ms: head, ..seg.clone() });
                let from_ms = if seg.recording.is_some() { seg.from_ms + head } else { 0 };
                cut = Some(AudioSegment { at_ms: to, ms: seg.ms - head, recording: seg.recording, from_ms });
                break;
            }
            audio.push(seg);
        }
        let mut snap = session.clone();
        if to < duration {
            let share = |v: i64| (i128::from(v) * i128::from(to) / i128::from(duration)) as i64;
            snap.updated_at = session.started_at.plus_ms(to);
            snap.duration_ms = to;
            snap.speech_ms = share(session.speech_ms);
            snap.stt_ms = to;
            snap.longest_speech_ms = session.longest_speech_ms.min(snap.speech_ms);
            snap.pause_count = (share(session.pause_count as i64)).unsigned_abs();
            snap.closed = false;
        }
        out.push((snap, audio));
        from = to;
    }
    out
}

/// A recording of a pool of `n`, by popularity: recording `j` is chosen with weight `1 / (j + 1)`
/// (Zipf), as plays concentrate on a catalogue's best sellers.
fn popular(rng: &mut Rng, n: u32) -> u32 {
    let total: f64 = (1..=n).map(|j| 1.0 / f64::from(j)).sum();
    let mut left = rng.uniform() * total;
    for j in 0..n {
        left -= 1.0 / f64::from(j + 1);
        if left <= 0.0 {
            return j;
        }
    }
    n - 1
}

/// Where a user is in the recordings they play.
struct Player {
    recording: u32,
    at_ms: i64,
}

/// The length of recording `j` of a pool: fixed per pool and recording, whoever plays it.
fn recording_ms(pool: &str, j: u32, minutes: [f64; 2]) -> i64 {
    let mut rng = Rng(fnv1a(pool) ^ u64::from(j).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.next_u64();
    (rng.range(minutes) * 60.0).round() as i64 * MS_PER_SECOND
}

/// What a stream hears during one conversation `[s, e)` of a session that started at `session_start`.
#[allow(clippy::too_many_arguments)]
fn hear(
    a: &AudioPlan,
    family: &str,
    uid: &str,
    pair: u32,
    day: u32,
    conversation: usize,
    player: &mut Player,
    rng: &mut Rng,
    (session_start, s, e): (i64, i64, i64),
    out: &mut Vec<AudioSegment>,
) {
    match a.source {
        AudioSource::Live => {
            out.push(AudioSegment { at_ms: s - session_start, ms: e - s, recording: None, from_ms: 0 })
        }
        AudioSource::CoLocated => out.push(AudioSegment {
            at_ms: s - session_start,
            ms: e - s,
            recording: Some(format!("{family}-room{pair}-d{day}-c{conversation}")),
            from_ms: 0,
        }),
        AudioSource::Shared | AudioSource::OwnLoop => {
            let pool = match a.source {
                AudioSource::Shared => a.pool.clone().unwrap_or_else(|| family.to_owned()),
                _ => uid.to_owned(),
            };
            let minutes = a.recording_minutes.unwrap_or([60.0, 60.0]); // checked at load
            let mut t = s;
            while t < e {
                let len = recording_ms(&pool, player.recording, minutes);
                let take = (len - player.at_ms).min(e - t);
                if take <= 0 {
                    // The recording ended: the next one of the playlist, or any of the pool.
                    player.recording = if a.source == AudioSource::Shared {
                        popular(rng, a.recordings)
                    } else {
                        (player.recording + 1) % a.recordings
                    };
                    player.at_ms = 0;
                    continue;
                }
                out.push(AudioSegment {
                    at_ms: t - session_start,
                    ms: take,
                    recording: Some(format!("{pool}-r{}", player.recording)),
                    from_ms: player.at_ms,
                });
                player.at_ms += take;
                t += take;
            }
        }
    }
}

/// One user's way of titling things.
struct Voice<'f> {
    family: &'f Family,
    /// Main language first.
    langs: Vec<&'f str>,
    second_share: f64,
    styles: [f64; 3],
    n: u32,
    season: u32,
    /// Per language: a shuffled order of its summaries and how far the user got.
    bags: BTreeMap<&'f str, (Vec<usize>, usize)>,
}

impl<'f> Voice<'f> {
    fn new(family: &'f Family, rng: &mut Rng) -> Voice<'f> {
        let codes: Vec<&str> = family.languages.keys().map(String::as_str).collect();
        let w: Vec<f64> = family.languages.values().map(|l| l.weight).collect();
        let main = codes[rng.weighted(&w)];
        let mut langs = vec![main];
        if codes.len() > 1 && rng.chance(family.second_language_share) {
            let others: Vec<&str> = codes.iter().copied().filter(|c| *c != main).collect();
            langs.push(*rng.pick(&others));
        }
        let s = family.style_weights;
        let styles = [s.summary, s.media, s.neutral].map(|w| w * (0.25 + 1.5 * rng.uniform()));
        let mut bags = BTreeMap::new();
        for (code, l) in &family.languages {
            let mut order: Vec<usize> = (0..l.summaries.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            bags.insert(code.as_str(), (order, 0));
        }
        Voice {
            family,
            langs,
            second_share: 0.15 + 0.2 * rng.uniform(),
            styles,
            n: 1 + rng.below(20) as u32,
            season: 1 + rng.below(5) as u32,
            bags,
        }
    }

    /// A title and overview for one conversation on day `day` (0-based).
    fn describe(&mut self, rng: &mut Rng, day: u32) -> (String, String) {
        let code = if self.langs.len() > 1 && rng.chance(self.second_share) { self.langs[1] } else { self.langs[0] };
        let Some(l) = self.family.languages.get(code) else {
            return (String::new(), String::new()); // unreachable: langs come from the map
        };
        let avail = styles_available(l, self.family.style_weights);
        let w: Vec<f64> = self.styles.iter().zip(avail).map(|(u, a)| if a > 0.0 { *u } else { 0.0 }).collect();
        // Every language has at least one style with titles (checked at load).
        let style = if w.iter().sum::<f64>() > 0.0 { rng.weighted(&w) } else { rng.weighted(&avail) };
        let phrase = if l.phrases.is_empty() { "" } else { rng.pick(&l.phrases).as_str() };
        let name = if l.names.is_empty() { "" } else { rng.pick(&l.names).as_str() };
        let (title, overview) = match style {
            0 => {
                let (order, pos) = self.bags.entry(code).or_default();
                let i = order.get(*pos % order.len().max(1)).copied().unwrap_or(0);
                *pos += 1;
                let (t, o) = &l.summaries[i];
                (t.as_str(), o.as_str())
            }
            1 => (rng.pick(&l.media_titles).as_str(), rng.pick(&l.overviews).as_str()),
            _ => (rng.pick(&l.neutral_titles).as_str(), rng.pick(&l.overviews).as_str()),
        };
        let fill = |text: &str| {
            text.replace("{n}", &self.n.to_string())
                .replace("{season}", &self.season.to_string())
                .replace("{day}", &(day + 1).to_string())
                .replace("{phrase}", phrase)
                .replace("{name}", name)
        };
        let out = (fill(title), fill(overview));
        if title.contains("{n}") || overview.contains("{n}") {
            self.n += 1;
        }
        out
    }
}

/// Plans one user: their plan, conversations and the trace events they cause.
fn plan_user(f: &Family, user: u32, index: u32, opts: &Options, events: &mut Vec<Ev>) -> UserOut {
    // Co-located pairs share one schedule: the same random numbers.
    let co_located = f.audio.as_ref().is_some_and(|a| a.source == AudioSource::CoLocated);
    let pair = if co_located { index / 2 } else { index };
    let mut rng = Rng(opts.seed ^ fnv1a(&f.name) ^ (u64::from(pair) << 40).wrapping_mul(0x2545_F491_4F6C_DD1D));
    rng.next_u64();
    let uid = format!("{}-{:03}", f.name, index + 1);
    let mut sessions: Vec<(StreamSession, Vec<AudioSegment>)> = Vec::new();
    let mut player =
        Player { recording: f.audio.as_ref().map_or(0, |a| popular(&mut rng, a.recordings.max(1))), at_ms: 0 };
    let plan_names: Vec<&String> = f.plans.keys().collect();
    let plan_w: Vec<f64> = f.plans.values().copied().collect();
    let plan = plan_names[rng.weighted(&plan_w)].clone();
    let cats: Vec<&String> = f.categories.keys().collect();
    let cat_w: Vec<f64> = f.categories.values().copied().collect();
    let mut voice = Voice::new(f, &mut rng);
    let offset_h = if f.utc_offsets.is_empty() { 0 } else { *rng.pick(&f.utc_offsets) };
    let end = opts.start_ms + i64::from(opts.days) * MS_PER_DAY;
    let mut seq = 0u32;
    let mut push = |events: &mut Vec<Ev>, t: i64, payload: Payload| {
        events.push(Ev { t, user, seq, payload });
        seq += 1;
    };
    push(events, opts.start_ms, Payload::Plan);
    let mut conversations = Vec::new();
    // Whole seconds, as a host's clock reports them.
    let minutes = |m: f64| (m * 60.0).round() as i64 * MS_PER_SECOND;
    for day in f.start_day..opts.days {
        let window = opts.start_ms + i64::from(day) * MS_PER_DAY;
        let day_start = match f.start_hour {
            None => window + minutes(rng.range([0.0, 12.0])),
            Some(h) => {
                let local = rng.range(h) - f64::from(offset_h);
                window + minutes(local.rem_euclid(24.0) * 60.0)
            }
        };
        // Abusers keep inside their 24 hours; honest days end within 20 hours of their start.
        let day_end = if f.start_hour.is_none() { window + MS_PER_DAY } else { day_start + 20 * MS_PER_HOUR };
        let target = minutes(rng.range(f.daily_hours) * 60.0);
        let (mut t, mut used) = (day_start, 0i64);
        while used < target && t < day_end {
            let session_end = (t + minutes(rng.range(f.session_minutes)).min(target - used)).min(day_end);
            used += session_end - t;
            let mut heard: Vec<AudioSegment> = Vec::new();
            let mut session_speech = 0i64;
            let mut c = t;
            while session_end - c >= MS_PER_MINUTE {
                let len = minutes(rng.range(f.conversation_minutes)).min(session_end - c);
                let (s, e) = (c, c + len);
                c = e + minutes(rng.range(f.conversation_gap_minutes));
                if e > end {
                    continue; // past the trace's last day
                }
                let density = rng.range(f.density);
                let mut speech_total = 0i64;
                let mut a = s;
                while a < e {
                    let b = (a + MS_PER_MINUTE).min(e);
                    let d = (density + f.minute_spread * (2.0 * rng.uniform() - 1.0)).clamp(0.0, 1.0);
                    let speech = (d * (b - a) as f64).round() as i64;
                    speech_total += speech;
                    push(events, b, Payload::Usage { speech_ms: speech as u32, stt_ms: (b - a) as u32 });
                    a = b;
                }
                session_speech += speech_total;
                if let Some(a) = &f.audio {
                    let k = conversations.len();
                    hear(a, &f.name, &uid, pair, day, k, &mut player, &mut rng, (t, s, e), &mut heard);
                }
                let (title, overview) = voice.describe(&mut rng, day);
                let speaker_count = rng.chance(f.speaker_count_share).then(|| rng.skewed_int(f.speakers));
                let word_count = f
                    .words_per_minute
                    .map(|w| (speech_total as f64 / MS_PER_MINUTE as f64 * rng.range(w)).round() as u32);
                let k = conversations.len();
                conversations.push(ConversationOut {
                    conversation_id: format!("{uid}-c{}", k + 1),
                    title,
                    overview,
                    category: cats[rng.weighted(&cat_w)].clone(),
                    started_at: Timestamp::from_millis(s).to_rfc3339(),
                    finished_at: Timestamp::from_millis(e).to_rfc3339(),
                    source: "omi",
                    speaker_count,
                    word_count,
                });
                let delay = (10 + rng.below(111) as i64) * MS_PER_SECOND;
                push(events, e + delay, Payload::Conversation(k));
            }
            if f.audio.is_some() && !heard.is_empty() && session_end <= end {
                let mut session =
                    StreamSession::open(format!("{uid}-s{}", sessions.len() + 1), Timestamp::from_millis(t));
                session.updated_at = Timestamp::from_millis(session_end);
                session.duration_ms = session_end - t;
                session.speech_ms = session_speech;
                session.stt_ms = session.duration_ms;
                // A shape that says nothing either way: the audio is what this family tests.
                let speech_minutes = (session_speech / MS_PER_MINUTE).max(1);
                session.set_shape(&SpeechShape {
                    longest_speech_ms: session_speech.min(3 * MS_PER_MINUTE),
                    pause_count: speech_minutes.unsigned_abs() * 6,
                    pause_mean_ms: 1_500,
                    pause_median_ms: 1_000,
                    longest_pause_ms: 10_000,
                });
                session.closed = true;
                // The gateway records a stream as it goes; a snapshot every quarter hour here.
                for (snapshot, audio) in snapshots(&session, heard, SNAPSHOT_MS) {
                    let at = snapshot.updated_at.millis();
                    let k = sessions.len();
                    sessions.push((snapshot, audio));
                    push(events, at + MS_PER_SECOND, Payload::Session(k));
                }
            }
            t = session_end + minutes(rng.range(f.session_gap_minutes));
        }
    }
    UserOut { uid, plan, conversations, sessions }
}

#[derive(Serialize)]
struct Line<'a> {
    t: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lane: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speech_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stt_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits_exhausted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation: Option<&'a ConversationOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a StreamSession>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio: Option<&'a [AudioSegment]>,
}

#[derive(Serialize)]
struct LabelOut<'a> {
    uid: &'a str,
    kind: String,
    family: &'a str,
    set: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_type: Option<&'a str>,
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
