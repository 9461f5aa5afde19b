//! The trace split by population, one simulator per part on its own thread, and what each
//! part's output says about its users.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender};

use anyhow::{Context, anyhow};
use fairuse_domain::time::Timestamp;
use serde::Deserialize;

/// Bytes handed to a simulator at a time.
pub(super) const CHUNK: usize = 1 << 18;

/// Hands a part's buffered lines to its simulator.
pub(super) fn send(shard: usize, buffers: &mut [Vec<u8>], senders: &mut [Option<SyncSender<Vec<u8>>>]) {
    let chunk = std::mem::replace(&mut buffers[shard], Vec::with_capacity(CHUNK));
    // A simulator that stopped (a bad line) drops its receiver; its error comes with its result.
    if let Some(tx) = &senders[shard]
        && tx.send(chunk).is_err()
    {
        senders[shard] = None;
    }
}

/// The `t`, `type` and `uid` of a trace line: the fast path reads the layout `gen-trace` writes,
/// anything else goes through serde.
pub(super) struct Head<'a> {
    pub(super) t: Cow<'a, str>,
    pub(super) kind: Cow<'a, str>,
    pub(super) uid: Option<Cow<'a, str>>,
}

impl<'a> Head<'a> {
    pub(super) fn of(line: &'a [u8]) -> Option<Head<'a>> {
        Self::fast(line).or_else(|| {
            #[derive(Deserialize)]
            pub(super) struct Slow<'b> {
                #[serde(borrow)]
                t: Cow<'b, str>,
                #[serde(rename = "type", borrow)]
                kind: Cow<'b, str>,
                #[serde(borrow, default)]
                uid: Option<Cow<'b, str>>,
            }
            let s: Slow<'a> = serde_json::from_slice(line).ok()?;
            Some(Head { t: s.t, kind: s.kind, uid: s.uid })
        })
    }

    /// `{"t":"<t>","type":"<kind>"` then `,"uid":"<uid>"` or `}`, with no escapes in between.
    pub(super) fn fast(line: &'a [u8]) -> Option<Head<'a>> {
        let text = std::str::from_utf8(line).ok()?;
        let rest = text.strip_prefix("{\"t\":\"")?;
        let (t, rest) = rest.split_once('"')?;
        let rest = rest.strip_prefix(",\"type\":\"")?;
        let (kind, rest) = rest.split_once('"')?;
        let uid = match rest.strip_prefix(",\"uid\":\"") {
            Some(r) => Some(r.split_once('"')?.0),
            None if rest.trim_end() == "}" => None,
            None => return None, // another layout: let serde read it
        };
        if [t, kind].iter().chain(uid.iter()).any(|s| s.contains('\\')) {
            return None;
        }
        Some(Head { t: Cow::Borrowed(t), kind: Cow::Borrowed(kind), uid: uid.map(Cow::Borrowed) })
    }
}

/// A [`BufRead`] over the chunks a channel delivers; the end of input when the sender is gone.
pub(super) struct ChunkReader {
    pub(super) rx: Receiver<Vec<u8>>,
    pub(super) chunk: Vec<u8>,
    pub(super) pos: usize,
}

impl ChunkReader {
    pub(super) fn new(rx: Receiver<Vec<u8>>) -> ChunkReader {
        ChunkReader { rx, chunk: Vec::new(), pos: 0 }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chunk.len());
    }
}

/// What happened to one user, from the outcome lines.
#[derive(Debug, Default)]
pub(super) struct UserOutcome {
    pub(super) runs: u32,
    /// Qualifying misuse verdicts (not `free_exhausted`) by usage type.
    pub(super) types: BTreeMap<String, u32>,
    /// The last `classified` line: its instant and usage type.
    pub(super) last_classified: Option<(String, String)>,
    /// First instant the user reached warning, throttle, restrict: by any verdict, and by a
    /// misuse verdict (anything but `free_exhausted`).
    pub(super) any: [Option<i64>; 3],
    pub(super) by_misuse: [Option<i64>; 3],
}

#[derive(Debug, Default)]
pub(super) struct ShardOutcome {
    pub(super) users: HashMap<String, UserOutcome>,
}

/// The simulator's output, read as it is written.
#[derive(Default)]
pub(super) struct Collector {
    pub(super) pending: Vec<u8>,
    pub(super) out: ShardOutcome,
    pub(super) error: Option<anyhow::Error>,
}

#[derive(Deserialize)]
pub(super) struct OutcomeLine {
    #[serde(default)]
    pub(super) t: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) uid: Option<String>,
    #[serde(default)]
    pub(super) usage_type: Option<String>,
    #[serde(default)]
    pub(super) qualifies: Option<bool>,
    #[serde(default)]
    pub(super) from: Option<String>,
    #[serde(default)]
    pub(super) to: Option<String>,
}

pub(super) fn stage_level(stage: &str) -> Option<usize> {
    match stage {
        "none" => Some(0),
        "warning" => Some(1),
        "throttle" => Some(2),
        "restrict" => Some(3),
        _ => None,
    }
}

impl Collector {
    pub(super) fn line(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let l: OutcomeLine = serde_json::from_slice(bytes)
            .with_context(|| format!("unreadable outcome line {}", String::from_utf8_lossy(bytes)))?;
        let (Some(uid), Some(t)) = (l.uid, l.t) else { return Ok(()) }; // the summary
        let u = self.out.users.entry(uid).or_default();
        match l.kind.as_str() {
            "classified" => {
                u.runs += 1;
                let ty = l.usage_type.unwrap_or_default();
                if l.qualifies == Some(true) && ty != "free_exhausted" {
                    *u.types.entry(ty.clone()).or_default() += 1;
                }
                u.last_classified = Some((t, ty));
            }
            "stage_changed" => {
                let from = l.from.as_deref().and_then(stage_level);
                let to = l.to.as_deref().and_then(stage_level);
                let (Some(from), Some(to)) = (from, to) else { return Ok(()) };
                if to <= from {
                    return Ok(()); // a step down (a plan change clearing a free-credits stage)
                }
                let at = Timestamp::parse_rfc3339(&t).map_err(|e| anyhow!("outcome t {t}: {e}"))?.millis();
                let misuse = u.last_classified.as_ref().is_some_and(|(ct, ty)| *ct == t && ty != "free_exhausted");
                for level in 1..=to {
                    u.any[level - 1].get_or_insert(at);
                    if misuse {
                        u.by_misuse[level - 1].get_or_insert(at);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn finish(self) -> anyhow::Result<ShardOutcome> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

impl Write for Collector {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if self.error.is_none()
                && let Err(e) = self.line(&line[..end])
            {
                self.error = Some(e);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
