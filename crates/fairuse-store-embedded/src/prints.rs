//! The print index (`PrintStore`) in SQLite: `print_sessions` numbers each (uid, session) once,
//! `prints` holds four integers per sampled code under the primary key (key, heard_at, session,
//! code), which is also the lookup order. Writes go through the writer thread like every other
//! write; lookups run on a reader connection, one indexed range per key.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use fairuse_domain::error::StoreError;
use fairuse_domain::prints::{Print, print_key};
use fairuse_domain::store::PrintStore;
use fairuse_domain::time::Timestamp;
use rusqlite::params;

use crate::EmbeddedStore;
use crate::error::{Effect, sql_limit, store_error};

/// Prints pruned per writer batch, by time: five minutes of them, so pruning never holds the
/// writer (and the usage reports behind it) for long; `bench/results/prints.md` measures it.
const PRUNE_SLICE_MS: i64 = 5 * 60_000;

#[async_trait]
impl PrintStore for EmbeddedStore {
    async fn add_prints(&self, prints: &[Print]) -> Result<(), StoreError> {
        const ACTION: &str = "add prints";
        if prints.is_empty() {
            return Ok(());
        }
        let mut by_session: BTreeMap<(String, String), Vec<(i64, u32)>> = BTreeMap::new();
        for p in prints {
            by_session.entry((p.uid.clone(), p.session_id.clone())).or_default().push((p.heard_at.millis(), p.code));
        }
        self.writer
            .write(ACTION, move |conn| {
                let failed = |e| store_error(ACTION, Effect::NotApplied, e);
                for ((uid, session_id), codes) in by_session {
                    let last = codes.iter().map(|c| c.0).max().unwrap_or(0);
                    let id: i64 = conn
                        .prepare_cached(
                            "INSERT INTO print_sessions (uid, session_id, last_heard) VALUES (?1, ?2, ?3)
                             ON CONFLICT (uid, session_id) DO UPDATE SET last_heard = max(last_heard, excluded.last_heard)
                             RETURNING id",
                        )
                        .and_then(|mut st| st.query_row(params![uid, session_id, last], |r| r.get(0)))
                        .map_err(failed)?;
                    let mut insert = conn
                        .prepare_cached(
                            "INSERT OR IGNORE INTO prints (key, heard_at, session, code) VALUES (?1, ?2, ?3, ?4)",
                        )
                        .map_err(failed)?;
                    for (heard_at, code) in codes {
                        insert.execute(params![print_key(code), heard_at, id, code]).map_err(failed)?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn lookup_prints(&self, keys: &[u32], since: Timestamp, per_key: usize) -> Result<Vec<Print>, StoreError> {
        let keys: BTreeSet<u32> = keys.iter().copied().collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.readers
            .read("look up prints", move |conn| {
                let mut st = conn.prepare_cached(
                    "SELECT p.heard_at, p.code, s.uid, s.session_id
                     FROM (SELECT heard_at, code, session FROM prints
                           WHERE key = ?1 AND heard_at >= ?2 ORDER BY heard_at DESC LIMIT ?3) p
                     JOIN print_sessions s ON s.id = p.session",
                )?;
                let mut out = Vec::new();
                for key in keys {
                    let rows = st.query_map(params![key, since.millis(), sql_limit(per_key)], |r| {
                        Ok(Print {
                            heard_at: Timestamp::from_millis(r.get(0)?),
                            code: r.get(1)?,
                            uid: r.get(2)?,
                            session_id: r.get(3)?,
                        })
                    })?;
                    for row in rows {
                        out.push(row?);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn prune_prints(&self, before: Timestamp) -> Result<u64, StoreError> {
        const ACTION: &str = "prune prints";
        let oldest: Option<i64> = self
            .readers
            .read(ACTION, |conn| conn.query_row("SELECT min(heard_at) FROM prints", [], |r| r.get(0)))
            .await?;
        let mut removed = 0u64;
        let mut from = oldest.unwrap_or(before.millis());
        while from < before.millis() {
            let to = from.saturating_add(PRUNE_SLICE_MS).min(before.millis());
            removed += self
                .writer
                .write(ACTION, move |conn| {
                    conn.prepare_cached("DELETE FROM prints WHERE heard_at >= ?1 AND heard_at < ?2")
                        .and_then(|mut st| st.execute(params![from, to]))
                        .map(|n| n as u64)
                        .map_err(|e| store_error(ACTION, Effect::NotApplied, e))
                })
                .await?;
            from = to;
        }
        self.writer
            .write(ACTION, move |conn| {
                conn.execute("DELETE FROM print_sessions WHERE last_heard < ?1", params![before.millis()])
                    .map(|_| ())
                    .map_err(|e| store_error(ACTION, Effect::NotApplied, e))
            })
            .await?;
        Ok(removed)
    }
}
