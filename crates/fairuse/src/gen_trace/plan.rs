//! Planning: every user's sessions, uploads and conversations, as compact records; the planners of
//! regular honest users and of abusers (the heavy honest ones are in [`super::heavy`]).

use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND};

use super::corpus::{
    BOOKS, CAT_EDUCATION, CAT_ENTERTAINMENT, CLIENT_DOCUMENTS, CLIENTS, COMMERCIAL_CATEGORIES, HONEST_CATEGORY_WEIGHTS,
    HONEST_MEDIA_SHARE, HONEST_MEDIA_TOPICS, HONEST_TOPICS, LECTURE_SUBJECTS, MOVIES, NAMES, PODCAST_TOPICS, PODCASTS,
    TV_SHOWS,
};
use super::model::{AbuseType, TIME_ZONE_WEIGHTS, TIME_ZONES, user_day_speech_minutes};
use super::rng::{Rng, mix};

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
pub(super) const HONEST_VERDICT_HUNDREDTHS: u8 = 10;
const MAX_HONEST_SESSIONS_PER_DAY: usize = 16;

#[derive(Debug, Clone, Copy)]
pub(super) enum Content {
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
pub(super) struct ConvItem {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) content: Content,
    pub(super) category: u8,
    pub(super) a: u16,
    pub(super) b: u32,
    pub(super) c: u32,
    /// How titles are written (per abuser, per course, per family).
    pub(super) style: u8,
    /// The `speaker_count` the host sends; 0 when it sends none.
    pub(super) speakers: u8,
}

/// One streaming session; usage lines every 60 s of it and at its end.
#[derive(Debug, Clone, Copy)]
pub(super) struct Session {
    pub(super) start: i64,
    pub(super) wall_ms: u32,
    /// Session number, per user, from 1.
    pub(super) sid: u32,
    /// Mean share of each minute that is speech, and the spread of the per-minute noise.
    pub(super) density: f32,
    pub(super) spread: f32,
    /// The session's conversations: `items[conv_lo..conv_hi]`, ordered by end.
    pub(super) conv_lo: u32,
    pub(super) conv_hi: u32,
}

/// One offline recording reported as `sync_fresh` (or a retry of one: same key, no conversation).
#[derive(Debug, Clone, Copy)]
pub(super) struct Upload {
    pub(super) t: i64,
    pub(super) speech_ms: u32,
    pub(super) stt_ms: u32,
    pub(super) key: u32,
    pub(super) conv: Option<u32>,
}

#[derive(Debug)]
pub(super) struct UserPlan {
    pub(super) plan: &'static str,
    pub(super) credits_exhausted: bool,
    /// (misuse score in hundredths, usage type).
    pub(super) verdict: Option<(u8, &'static str)>,
    /// Seeds the per-minute speech noise.
    pub(super) seed: u64,
    pub(super) sessions: Vec<Session>,
    pub(super) uploads: Vec<Upload>,
    pub(super) items: Vec<ConvItem>,
}

impl UserPlan {
    pub(super) fn new(rng: &mut Rng) -> UserPlan {
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

    pub(super) fn push_session(&mut self, start: i64, wall_ms: i64, density: f64, spread: f64, conv_lo: usize) {
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
pub(super) fn to_u32(x: i64) -> u32 {
    u32::try_from(x.max(0)).unwrap_or(u32::MAX)
}

pub(super) fn whole_seconds(minutes: f64) -> i64 {
    (minutes * 60.0).round() as i64 * MS_PER_SECOND
}

/// The simulated period: `[start, end]`, and the UTC midnight at or before `start`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Period {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) first_midnight: i64,
    pub(super) days: u32,
}

pub(super) fn plan_honest(rng: &mut Rng, period: &Period) -> UserPlan {
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

pub(super) fn item(content: Content, category: u8, a: u16, b: u32, c: u32) -> ConvItem {
    ConvItem { start: 0, end: 0, content, category, a, b, c, style: 0, speakers: 0 }
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

pub(super) fn plan_abuser(rng: &mut Rng, period: &Period, ty: AbuseType) -> UserPlan {
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
