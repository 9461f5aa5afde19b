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
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND, Timestamp};
use serde::{Deserialize, Serialize};

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
    Usage { speech_ms: u32, stt_ms: u32 },
    Conversation(usize),
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
            Payload::Tick => 3,
        }
    }
}

struct UserOut {
    uid: String,
    plan: String,
    conversations: Vec<ConversationOut>,
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
    let mut rng = Rng(opts.seed ^ fnv1a(&f.name) ^ (u64::from(index) << 40).wrapping_mul(0x2545_F491_4F6C_DD1D));
    rng.next_u64();
    let uid = format!("{}-{:03}", f.name, index + 1);
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
    for day in 0..opts.days {
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
            t = session_end + minutes(rng.range(f.session_gap_minutes));
        }
    }
    UserOut { uid, plan, conversations }
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
