//! Emission: compact records per simulated hour, sorted, then rendered (by [`super::render`]).

use fairuse_domain::time::MS_PER_MINUTE;

use super::plan::{Session, UserPlan, to_u32};
use super::rng::splitmix64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecKind {
    /// `a`: session number, `b`: cumulative speech, `c`: cumulative stt.
    Realtime,
    /// `a`: idempotency key number, `b`: speech, `c`: stt.
    Sync,
    /// `a`: conversation index.
    Conversation,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Rec {
    /// Milliseconds since the start, shifted left once; the low bit puts a conversation after the
    /// usage line of the same instant.
    pub(super) key: u64,
    /// User index in the high half, the user's own record counter in the low half.
    pub(super) order: u64,
    pub(super) kind: RecKind,
    pub(super) a: u32,
    pub(super) b: u32,
    pub(super) c: u32,
}

/// How far a user's plan has been emitted.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cursor {
    pub(super) session: usize,
    /// Flushes of the current session already emitted.
    pub(super) flushes: u32,
    pub(super) cumulative_speech_ms: u32,
    pub(super) conv: u32,
    pub(super) upload: usize,
    pub(super) seq: u32,
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

pub(super) struct Emitter<'a> {
    pub(super) start: i64,
    pub(super) user: u32,
    pub(super) cursor: &'a mut Cursor,
    pub(super) out: &'a mut Vec<Rec>,
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
pub(super) fn emit_until(plan: &UserPlan, e: &mut Emitter<'_>, until: i64, conversations: bool) {
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
