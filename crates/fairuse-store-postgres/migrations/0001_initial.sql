-- fairuse PostgreSQL store, schema version 1. Every table lives in the store's schema (the
-- connection's search_path). Instants are BIGINT Unix milliseconds (UTC), the domain's
-- `Timestamp` exactly: TIMESTAMPTZ cannot hold the saturated far-future instants the domain may
-- compute, and a round trip through it would have to convert on every row. JSONB columns hold the
-- domain types as serde writes them; the plain columns beside them exist for lookups and the
-- admin queries. Identifiers sort bytewise (COLLATE "C"), like the other backends, whatever the
-- database's locale.

-- Enforcement state, one row per user, with an optimistic-concurrency version.
CREATE TABLE user_state (
    uid          TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL CHECK (version > 0),
    stage        TEXT NOT NULL CHECK (stage IN ('none', 'warning', 'throttle', 'restrict')),
    stage_until  BIGINT,
    stage_since  BIGINT,
    updated_at   BIGINT,
    state        JSONB NOT NULL,
    CONSTRAINT user_state_pkey PRIMARY KEY (uid)
);
-- flagged(None): everyone not in none, newest stage change first. Partial, since most users are
-- in none; the queries repeat `stage <> 'none'` literally so even a generic plan can use these.
CREATE INDEX user_state_flagged ON user_state (stage_since DESC NULLS LAST, uid) WHERE stage <> 'none';
-- flagged(Some(stage)).
CREATE INDEX user_state_flagged_by_stage ON user_state (stage, stage_since DESC NULLS LAST, uid)
    WHERE stage <> 'none';
-- due_timers: the oldest expiry first.
CREATE INDEX user_state_due_timers ON user_state (stage_until, uid)
    WHERE stage <> 'none' AND stage_until IS NOT NULL;

-- Append-only audit events. Only the resolution (inside body) and the redaction of evidence ever
-- change. `seq` is the append order: commits of one user are serialized by the user_state row,
-- so it orders a user's events of the same instant.
CREATE TABLE events (
    seq                   BIGSERIAL NOT NULL,
    event_id              TEXT COLLATE "C" NOT NULL,
    case_ref              TEXT COLLATE "C" NOT NULL,
    uid                   TEXT COLLATE "C" NOT NULL,
    created_at            BIGINT NOT NULL,
    kind                  TEXT NOT NULL,
    evidence_redacted_at  BIGINT,
    body                  JSONB NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (event_id),
    -- Also the index of the public case lookup.
    CONSTRAINT events_case_ref_key UNIQUE (case_ref)
);
CREATE INDEX events_by_uid ON events (uid, created_at DESC, seq DESC);
CREATE INDEX events_to_redact ON events (created_at) WHERE evidence_redacted_at IS NULL;

-- Webhooks waiting for delivery; delivered ones are deleted, dead letters kept (dead = true).
-- body is TEXT, not JSONB: it is signed byte for byte, and JSONB would reorder its keys.
CREATE TABLE outbox (
    seq              BIGSERIAL NOT NULL,
    id               TEXT COLLATE "C" NOT NULL,
    body             TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    leased_until     BIGINT NOT NULL DEFAULT 0,
    dead             BOOLEAN NOT NULL DEFAULT FALSE,
    last_error       TEXT,
    CONSTRAINT outbox_pkey PRIMARY KEY (id)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, seq) WHERE NOT dead;

-- Classifier jobs; due_at is both the retry time and the end of a claim's lease.
CREATE TABLE jobs (
    seq         BIGSERIAL NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    uid         TEXT COLLATE "C" NOT NULL,
    lock_token  TEXT NOT NULL,
    session_id  TEXT,
    attempts    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    due_at      BIGINT NOT NULL,
    CONSTRAINT jobs_pkey PRIMARY KEY (id)
);
CREATE INDEX jobs_due ON jobs (due_at, seq);

-- Conversation metadata the host sends (never transcripts).
CREATE TABLE conversations (
    uid              TEXT COLLATE "C" NOT NULL,
    conversation_id  TEXT COLLATE "C" NOT NULL,
    started_at       BIGINT NOT NULL,
    body             JSONB NOT NULL,
    CONSTRAINT conversations_pkey PRIMARY KEY (uid, conversation_id)
);
CREATE INDEX conversations_by_start ON conversations (uid, started_at, conversation_id);
