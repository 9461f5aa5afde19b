//! The print index (`PrintStore`) in PostgreSQL: `print_sessions` numbers each (uid, session) once,
//! `prints` holds four integers per sampled code under the primary key (key, heard_at, session,
//! code). A batch is one statement per session (idempotent, so a retry after a lost answer is
//! harmless); a lookup is one statement for all keys, each key's range read backwards and cut at
//! the per-key limit.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use fairuse_domain::error::StoreError;
use fairuse_domain::prints::{Print, print_key};
use fairuse_domain::store::PrintStore;
use fairuse_domain::time::Timestamp;

use crate::error::{Phase, sql_limit, store_error};
use crate::{OnTimeout, PostgresStore};

#[async_trait]
impl PrintStore for PostgresStore {
    async fn add_prints(&self, prints: &[Print]) -> Result<(), StoreError> {
        const ACTION: &str = "add prints";
        let mut by_session: BTreeMap<(&str, &str), (Vec<i32>, Vec<i64>, Vec<i64>)> = BTreeMap::new();
        for p in prints {
            let (keys, heard, codes) = by_session.entry((&p.uid, &p.session_id)).or_default();
            keys.push(print_key(p.code) as i32);
            heard.push(p.heard_at.millis());
            codes.push(i64::from(p.code));
        }
        self.bounded(ACTION, OnTimeout::Write, async {
            for ((uid, session_id), (keys, heard, codes)) in by_session {
                let last = heard.iter().copied().max().unwrap_or(0);
                sqlx::query(
                    "WITH s AS (
                         INSERT INTO print_sessions (uid, session_id, last_heard) VALUES ($1, $2, $3)
                         ON CONFLICT (uid, session_id)
                             DO UPDATE SET last_heard = GREATEST(print_sessions.last_heard, excluded.last_heard)
                         RETURNING id)
                     INSERT INTO prints (key, heard_at, session, code)
                     SELECT t.key, t.heard_at, s.id, t.code
                     FROM s, UNNEST($4::int[], $5::bigint[], $6::bigint[]) AS t(key, heard_at, code)
                     ON CONFLICT DO NOTHING",
                )
                .bind(uid)
                .bind(session_id)
                .bind(last)
                .bind(&keys)
                .bind(&heard)
                .bind(&codes)
                .execute(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::Write, e))?;
            }
            Ok(())
        })
        .await
    }

    async fn lookup_prints(&self, keys: &[u32], since: Timestamp, per_key: usize) -> Result<Vec<Print>, StoreError> {
        const ACTION: &str = "look up prints";
        let keys: Vec<i32> = keys.iter().map(|&k| k as i32).collect::<BTreeSet<i32>>().into_iter().collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.bounded(ACTION, OnTimeout::Read, async {
            let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
                "SELECT p.heard_at, p.code, s.uid, s.session_id
                 FROM UNNEST($1::int[]) AS k(key)
                 CROSS JOIN LATERAL (SELECT heard_at, code, session FROM prints
                                     WHERE prints.key = k.key AND heard_at >= $2
                                     ORDER BY heard_at DESC LIMIT $3) AS p
                 JOIN print_sessions s ON s.id = p.session",
            )
            .bind(&keys)
            .bind(since.millis())
            .bind(sql_limit(per_key))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            Ok(rows
                .into_iter()
                .map(|(heard_at, code, uid, session_id)| Print {
                    uid,
                    session_id,
                    heard_at: Timestamp::from_millis(heard_at),
                    // Stored from a u32: always in range.
                    code: u32::try_from(code).unwrap_or_default(),
                })
                .collect())
        })
        .await
    }

    async fn prune_prints(&self, before: Timestamp) -> Result<u64, StoreError> {
        const ACTION: &str = "prune prints";
        self.bounded(ACTION, OnTimeout::Write, async {
            let removed = sqlx::query("DELETE FROM prints WHERE heard_at < $1")
                .bind(before.millis())
                .execute(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::Write, e))?
                .rows_affected();
            sqlx::query("DELETE FROM print_sessions WHERE last_heard < $1")
                .bind(before.millis())
                .execute(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::Write, e))?;
            Ok(removed)
        })
        .await
    }
}
