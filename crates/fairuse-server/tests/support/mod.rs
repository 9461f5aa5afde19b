//! What several of this crate's test binaries share: the instant they start at, uids, a
//! conversation a verdict can cite, and a writer that keeps what a log subscriber writes.
//!
//! Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use fairuse_domain::classifier::Conversation;
use fairuse_domain::ids::Uid;
use fairuse_domain::time::MS_PER_MINUTE;
use fairuse_server::service::Service;

/// 2026-03-20T09:46:40Z.
pub const T0: i64 = 1_774_000_000_000;

pub fn uid(s: &str) -> Uid {
    Uid::parse(s).unwrap()
}

/// A conversation of `u` that ended a minute before now and describes narration: something a
/// verdict can cite.
pub async fn heard(svc: &Service, u: &str) {
    let end = svc.now().minus_ms(MS_PER_MINUTE);
    let c = Conversation {
        conversation_id: format!("{u}-c1"),
        title: "The Long Road - Chapter 3".into(),
        overview: "The narrator reads the third chapter.".into(),
        category: "entertainment".into(),
        started_at: end.minus_ms(60 * MS_PER_MINUTE),
        finished_at: end,
        source: "omi".into(),
        speaker_count: Some(1),
        word_count: None,
    };
    svc.upsert_conversation(&uid(u), &c).await.unwrap();
}

/// Collects what a log subscriber writes.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
