-- fairuse PostgreSQL store, schema version 2: the streaming gateway's session summaries for the
-- classifier. The body is the StreamSession as serde writes it; `closed` and the three totals are
-- columns beside it so the upsert can ignore an update that is behind the stored session (it would
-- reopen it or lower a total), and the instants serve the classifier's lookback query.
CREATE TABLE stream_sessions (
    uid          TEXT COLLATE "C" NOT NULL,
    session_id   TEXT COLLATE "C" NOT NULL,
    started_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    closed       BOOLEAN NOT NULL,
    duration_ms  BIGINT NOT NULL,
    speech_ms    BIGINT NOT NULL,
    stt_ms       BIGINT NOT NULL,
    body         JSONB NOT NULL,
    CONSTRAINT stream_sessions_pkey PRIMARY KEY (uid, session_id)
);
CREATE INDEX stream_sessions_by_update ON stream_sessions (uid, updated_at);
