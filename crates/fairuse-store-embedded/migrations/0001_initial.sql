-- fairuse embedded store, schema version 1. Instants are Unix milliseconds (UTC), minutes are
-- floor(unix_seconds / 60), days are UTC day numbers. JSON columns hold the domain types as
-- serde writes them; the plain columns beside them exist only for lookups and admin queries.

-- Enforcement state, one row per user, with an optimistic-concurrency version.
CREATE TABLE user_state (
    uid          TEXT PRIMARY KEY NOT NULL,
    version      INTEGER NOT NULL,
    stage        TEXT NOT NULL,
    stage_until  INTEGER,
    stage_since  INTEGER,
    updated_at   INTEGER,
    state        TEXT NOT NULL
);
CREATE INDEX user_state_by_stage ON user_state (stage, stage_since);
CREATE INDEX user_state_by_timer ON user_state (stage_until) WHERE stage_until IS NOT NULL;

-- Append-only audit events. Only the resolution (inside body) and the redaction of evidence
-- ever change. The implicit rowid is the append order.
CREATE TABLE events (
    event_id              TEXT PRIMARY KEY NOT NULL,
    case_ref              TEXT NOT NULL UNIQUE,
    uid                   TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    kind                  TEXT NOT NULL,
    evidence_redacted_at  INTEGER,
    body                  TEXT NOT NULL
);
CREATE INDEX events_by_uid ON events (uid, created_at);
CREATE INDEX events_to_redact ON events (created_at) WHERE evidence_redacted_at IS NULL;

-- Webhooks waiting for delivery; delivered ones are deleted, dead letters kept (dead = 1).
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY NOT NULL,
    body             TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    last_error       TEXT,
    leased_until     INTEGER NOT NULL DEFAULT 0,
    dead             INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE dead = 0;

-- Classifier jobs; due_at is both the retry time and the end of a claim's lease.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY NOT NULL,
    uid         TEXT NOT NULL,
    lock_token  TEXT NOT NULL,
    session_id  TEXT,
    attempts    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    due_at      INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs (due_at);

-- Conversation metadata the host sends (never transcripts).
CREATE TABLE conversations (
    uid              TEXT NOT NULL,
    conversation_id  TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    body             TEXT NOT NULL,
    PRIMARY KEY (uid, conversation_id)
);
CREATE INDEX conversations_by_start ON conversations (uid, started_at);

-- Speech per user, lane and minute.
CREATE TABLE meter_buckets (
    uid     TEXT NOT NULL,
    lane    TEXT NOT NULL,
    minute  INTEGER NOT NULL,
    ms      INTEGER NOT NULL,
    PRIMARY KEY (uid, lane, minute)
) WITHOUT ROWID;
CREATE INDEX meter_buckets_by_minute ON meter_buckets (minute);

-- Idempotency keys per user and lane, with when they were first seen.
CREATE TABLE meter_idempotency (
    uid      TEXT NOT NULL,
    lane     TEXT NOT NULL,
    key      TEXT NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (uid, lane, key)
) WITHOUT ROWID;
CREATE INDEX meter_idempotency_by_seen ON meter_idempotency (seen_at);

-- The largest cumulative totals seen per streaming session.
CREATE TABLE meter_sessions (
    uid         TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    speech_max  INTEGER NOT NULL,
    stt_max     INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (uid, session_id)
) WITHOUT ROWID;
CREATE INDEX meter_sessions_by_last_seen ON meter_sessions (last_seen);

-- STT audio forwarded per user and UTC day, and whether budget_exhausted was noted that day.
CREATE TABLE budgets (
    uid              TEXT NOT NULL,
    day              INTEGER NOT NULL,
    used_ms          INTEGER NOT NULL,
    exhausted_noted  INTEGER NOT NULL,
    PRIMARY KEY (uid, day)
) WITHOUT ROWID;
CREATE INDEX budgets_by_day ON budgets (day);

-- Locks with a token and an expiry (the classifier lock is its cooldown, so it must survive
-- restarts).
CREATE TABLE locks (
    key         TEXT PRIMARY KEY NOT NULL,
    token       TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX locks_by_expiry ON locks (expires_at);
