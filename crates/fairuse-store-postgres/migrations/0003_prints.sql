-- fairuse PostgreSQL store, schema version 3: the print index of the streaming gateway (issue 11),
-- sampled acoustic fingerprint codes of each session, keyed by the code's top 24 bits so a new
-- session finds earlier ones that heard the same audio. Sessions are numbered once in
-- print_sessions, so a print row is four integers; the primary key is the lookup order (key, most
-- recently heard first) and makes a retried batch a no-op. Prints arrive roughly in time order, so
-- a BRIN index (a few pages) serves the retention's delete.
CREATE TABLE print_sessions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid         TEXT COLLATE "C" NOT NULL,
    session_id  TEXT COLLATE "C" NOT NULL,
    last_heard  BIGINT NOT NULL,
    CONSTRAINT print_sessions_uid_session UNIQUE (uid, session_id)
);
CREATE INDEX print_sessions_by_last_heard ON print_sessions (last_heard);
CREATE TABLE prints (
    key       INTEGER NOT NULL,
    heard_at  BIGINT NOT NULL,
    session   BIGINT NOT NULL,
    code      BIGINT NOT NULL,
    CONSTRAINT prints_pkey PRIMARY KEY (key, heard_at, session, code)
);
CREATE INDEX prints_by_heard_at ON prints USING BRIN (heard_at);
