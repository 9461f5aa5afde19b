-- fairuse embedded store, schema version 2: the streaming gateway's session summaries for the
-- classifier. The body is the StreamSession as serde writes it; `closed` and the three totals are
-- columns beside it so the upsert can ignore an update that is behind the stored session (it would
-- reopen it or lower a total), and the instants serve the classifier's lookback query.
CREATE TABLE stream_sessions (
    uid          TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    closed       INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    speech_ms    INTEGER NOT NULL,
    stt_ms       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (uid, session_id)
);
CREATE INDEX stream_sessions_by_update ON stream_sessions (uid, updated_at);
