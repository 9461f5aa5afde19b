//! One user's plan: their voice (how they title things), conversations and trace events.

use std::collections::BTreeMap;

use fairuse_domain::sessions::{SpeechShape, StreamSession};
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND, Timestamp};

use serde::Serialize;

use super::Options;
use super::audio::*;
use super::model::*;
use super::rng::*;
use crate::heard::AudioSegment;

/// The conversation metadata as the host reports it (SPEC section 3).
#[derive(Debug, Clone, Serialize)]
pub(super) struct ConversationOut {
    pub(super) conversation_id: String,
    pub(super) title: String,
    pub(super) overview: String,
    pub(super) category: String,
    pub(super) started_at: String,
    pub(super) finished_at: String,
    pub(super) source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) speaker_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) word_count: Option<u32>,
}

pub(super) enum Payload {
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

pub(super) struct Ev {
    pub(super) t: i64,
    pub(super) user: u32,
    pub(super) seq: u32,
    pub(super) payload: Payload,
}

impl Ev {
    pub(super) fn rank(&self) -> u8 {
        match self.payload {
            Payload::Plan => 0,
            Payload::Usage { .. } => 1,
            Payload::Conversation(_) => 2,
            Payload::Session(_) => 3,
            Payload::Tick => 4,
        }
    }
}

pub(super) struct UserOut {
    pub(super) uid: String,
    pub(super) plan: String,
    pub(super) conversations: Vec<ConversationOut>,
    /// Gateway streams (families with `[audio]`).
    pub(super) sessions: Vec<(StreamSession, Vec<AudioSegment>)>,
}

/// One user's way of titling things.
pub(super) struct Voice<'f> {
    pub(super) family: &'f Family,
    /// Main language first.
    pub(super) langs: Vec<&'f str>,
    pub(super) second_share: f64,
    pub(super) styles: [f64; 3],
    pub(super) n: u32,
    pub(super) season: u32,
    /// Per language: a shuffled order of its summaries and how far the user got.
    pub(super) bags: BTreeMap<&'f str, (Vec<usize>, usize)>,
}

impl<'f> Voice<'f> {
    pub(super) fn new(family: &'f Family, rng: &mut Rng) -> Voice<'f> {
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
    pub(super) fn describe(&mut self, rng: &mut Rng, day: u32) -> (String, String) {
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
pub(super) fn plan_user(f: &Family, user: u32, index: u32, opts: &Options, events: &mut Vec<Ev>) -> UserOut {
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
pub(super) struct Line<'a> {
    pub(super) t: &'a str,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) lane: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) speech_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stt_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) plan: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) credits_exhausted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) conversation: Option<&'a ConversationOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) session: Option<&'a StreamSession>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) audio: Option<&'a [AudioSegment]>,
}

#[derive(Serialize)]
pub(super) struct LabelOut<'a> {
    pub(super) uid: &'a str,
    pub(super) kind: String,
    pub(super) family: &'a str,
    pub(super) set: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) usage_type: Option<&'a str>,
}
