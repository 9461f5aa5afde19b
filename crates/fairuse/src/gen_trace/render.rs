//! The JSON-lines writer: renders plan, verdict, usage, conversation and tick lines into a buffer.

use fairuse_domain::time::Timestamp;

use super::corpus::CATEGORIES;
use super::describe::describe;
use super::emit::{Rec, RecKind};
use super::plan::UserPlan;

/// Renders lines into a byte buffer; RFC 3339 text is cached because consecutive lines mostly
/// share their second.
pub(super) struct Renderer {
    pub(super) uids: Vec<String>,
    pub(super) time_ms: i64,
    pub(super) time_text: String,
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

    pub(super) fn plan(&mut self, buf: &mut Vec<u8>, t: i64, user: usize, plan: &UserPlan) {
        self.head(buf, t, "plan", Some(user));
        buf.extend_from_slice(b",\"plan\":\"");
        buf.extend_from_slice(plan.plan.as_bytes());
        buf.extend_from_slice(if plan.credits_exhausted {
            b"\",\"credits_exhausted\":true}\n"
        } else {
            b"\",\"credits_exhausted\":false}\n"
        });
    }

    pub(super) fn verdict(&mut self, buf: &mut Vec<u8>, t: i64, user: usize, hundredths: u8, usage_type: &str) {
        self.head(buf, t, "verdict", Some(user));
        buf.extend_from_slice(b",\"misuse_score\":");
        // The shortest text that reads back as the same f64 ("0.1", "0.92").
        buf.extend_from_slice(serde_json::Value::from(f64::from(hundredths) / 100.0).to_string().as_bytes());
        buf.extend_from_slice(b",\"usage_type\":\"");
        buf.extend_from_slice(usage_type.as_bytes());
        buf.extend_from_slice(b"\"}\n");
    }

    pub(super) fn tick(&mut self, buf: &mut Vec<u8>, t: i64) {
        self.head(buf, t, "tick", None);
        buf.extend_from_slice(b"}\n");
    }

    pub(super) fn record(
        &mut self,
        buf: &mut Vec<u8>,
        start: i64,
        rec: &Rec,
        plans: &[UserPlan],
    ) -> anyhow::Result<()> {
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
