//! Planning the heavy honest populations: meetings all day, live lectures, calls, a night shift
//! and a family sharing one device, each with its own day and its own titles.

use fairuse_domain::time::{MS_PER_DAY, MS_PER_MINUTE, MS_PER_SECOND};

use super::corpus::{
    BOOKS, CALL_TOPICS, CARTOONS, CAT_EDUCATION, CAT_ENTERTAINMENT, COURSES, HONEST_TOPICS, MEETING_TOPICS, MOVIES,
    NAMES, NIGHT_TOPICS,
};
use super::model::{HeavyKind, TIME_ZONE_WEIGHTS, TIME_ZONES};
use super::plan::{
    Content, ConvItem, HONEST_VERDICT_HUNDREDTHS, Period, Upload, UserPlan, item, to_u32, whole_seconds,
};
use super::rng::Rng;

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

pub(super) fn plan_heavy(rng: &mut Rng, period: &Period, kind: HeavyKind) -> UserPlan {
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
