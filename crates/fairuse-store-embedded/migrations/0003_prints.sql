-- fairuse embedded store, schema version 3: the print index of the streaming gateway (issue 11),
-- sampled acoustic fingerprint codes of each session, keyed by the code's top 24 bits so a new
-- session finds earlier ones that heard the same audio. Sessions are numbered once in
-- print_sessions, so a print row is four integers; the primary key is the lookup order (key, most
-- recently heard first) and makes a retried batch a no-op.
CREATE TABLE print_sessions (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    last_heard  INTEGER NOT NULL,
    UNIQUE (uid, session_id)
);
CREATE INDEX print_sessions_by_last_heard ON print_sessions (last_heard);
CREATE TABLE prints (
    key       INTEGER NOT NULL,
    heard_at  INTEGER NOT NULL,
    session   INTEGER NOT NULL,
    code      INTEGER NOT NULL,
    PRIMARY KEY (key, heard_at, session, code)
) WITHOUT ROWID;
-- The retention deletes by time, an hour at a time.
CREATE INDEX prints_by_heard_at ON prints (heard_at);
