//! Opening `fairuse.db`: connection settings, the schema migrations, the one writer thread that
//! group-commits every write, and the reader connections for the queries no cache answers.
//!
//! Every write of the store is a closure sent to one dedicated thread that owns the only write
//! connection. The thread takes all requests waiting at that moment, runs each inside its own
//! savepoint of one `BEGIN IMMEDIATE` transaction, commits once, and only then answers each
//! caller. So a batch of N reports costs one commit instead of N, a report is acknowledged only
//! after the commit that contains it returned (WAL appended: it survives `kill -9`), and one
//! request that fails rolls back to its savepoint without touching the others in the batch.
//! Writes never meet SQLITE_BUSY from each other, since there is one writer connection.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fairuse_domain::error::StoreError;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Effect, store_error};

/// How long a statement waits for SQLite's own file lock (only an outside process such as a
/// backup tool can hold it, since every write of ours goes through one connection).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle reader connections kept open; more are opened when that many reads run at once.
const READER_CONNECTIONS: usize = 4;
/// Requests committed together at most: bounds how long the first of a batch waits for the rest.
const MAX_BATCH: usize = 512;
/// Prepared statements kept per connection (every statement of the store fits).
const STATEMENT_CACHE: usize = 96;

/// Ordered migrations: (version, description, SQL). Append only; never edit a shipped one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial schema", include_str!("../migrations/0001_initial.sql")),
    (2, "stream sessions", include_str!("../migrations/0002_stream_sessions.sql")),
    (3, "print index", include_str!("../migrations/0003_prints.sql")),
];

/// Opens a connection with the store's settings.
///
/// WAL with synchronous=NORMAL: a commit is appended to the WAL without an fsync. The pages are in
/// the OS page cache once `COMMIT` returns, so a kill -9 (or any crash of this process) loses
/// nothing acknowledged; only an OS crash or power cut may lose the last transactions, and even
/// then the database stays consistent. FULL would fsync on every commit.
fn connect(db_path: &Path, create: bool) -> Result<Connection, rusqlite::Error> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(db_path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // `journal_mode` answers with the mode now in force; WAL is persistent in the file.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}, not wal")));
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Opens the write connection (creating the file), applies pending migrations and starts the
/// writer thread; the reader connections are opened on demand.
pub(crate) fn open(db_path: &Path, on_failed_commit: FailedCommitHook) -> Result<(Writer, Readers), StoreError> {
    let opening = format!("open {}", db_path.display());
    let conn = connect(db_path, true).map_err(|e| store_error(&opening, Effect::NotApplied, e))?;
    migrate(&conn)?;
    let readers = Readers::new(db_path.to_path_buf());
    // Fail now rather than on the first read if the file cannot be opened twice.
    let first = connect(db_path, false).map_err(|e| store_error(&opening, Effect::NotApplied, e))?;
    readers.give_back(first);
    Ok((Writer::start(conn, on_failed_commit)?, readers))
}

/// Applies the migrations this database has not seen, each in its own transaction. A database
/// written by a newer build is refused rather than misread. The bookkeeping table is the one the
/// sqlx-based builds wrote, so their data directories open unchanged.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    const ACTION: &str = "migrate the database";
    let failed = |e| store_error(ACTION, Effect::NotApplied, e);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY NOT NULL,
             description TEXT NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(failed)?;
    let current: Option<i64> =
        conn.query_row("SELECT max(version) FROM schema_migrations", [], |row| row.get(0)).map_err(failed)?;
    let current = current.unwrap_or(0);
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::Unavailable(format!(
            "the database has schema version {current}, newer than this build's {latest}; use a newer fairuse"
        )));
    }
    for &(version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(failed)?;
        let applied = conn
            .execute_batch(sql)
            .map_err(|e| store_error(&format!("apply migration {version} ({description})"), Effect::NotApplied, e))
            .and_then(|()| {
                conn.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
                    rusqlite::params![version, description, wall_clock_ms()],
                )
                .map_err(failed)
            });
        if let Err(e) = applied {
            // Nothing of this migration was committed; the rollback's own failure adds nothing.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        conn.execute_batch("COMMIT").map_err(|e| store_error(ACTION, Effect::MaybeApplied, e))?;
        tracing::info!(version, description, "applied database migration");
    }
    Ok(())
}

/// Only for the `applied_at` column, which is for people reading the database; no decision
/// depends on it, so it does not come from the injected clock.
fn wall_clock_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Called on the writer thread when a batch's `COMMIT` failed, before any caller hears of it:
/// whatever the caches learned inside that batch may not be in the database.
pub(crate) type FailedCommitHook = Box<dyn Fn() + Send>;

/// One request to the writer thread. `run` executes it inside the batch's transaction and says
/// whether it succeeded (a failure rolls back to its savepoint); `finish` answers the caller with
/// the outcome of the commit; `refuse` answers a request that never ran or whose batch was rolled
/// back whole.
trait Request: Send {
    fn run(&mut self, conn: &Connection) -> bool;
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
    fn refuse(self: Box<Self>, error: StoreError);
}

type After<T> = Box<dyn FnOnce(&T) + Send>;

struct Pending<T, F> {
    work: Option<F>,
    /// Runs on the writer thread after a successful commit and before the answer, so caches
    /// are updated in commit order.
    after: Option<After<T>>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Request for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match self.work.take() {
            Some(work) => work(conn),
            None => Err(StoreError::Unavailable("a write request ran twice".into())),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &StoreError>) {
        let answer = match (self.result, commit) {
            (Some(Ok(value)), Ok(())) => {
                if let Some(after) = self.after {
                    after(&value);
                }
                Ok(value)
            }
            (Some(Ok(_)), Err(e)) => Err(e.clone()),
            // Rolled back to its savepoint: its own error stands whatever the commit did.
            (Some(Err(e)), _) => Err(e),
            (None, _) => Err(StoreError::Unavailable("a write request was not run".into())),
        };
        // The caller may have gone away (a cancelled request); the write stands regardless.
        let _ = self.reply.send(answer);
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

enum Message {
    Request(Box<dyn Request>),
    Stop,
}

/// The handle to the writer thread.
pub(crate) struct Writer {
    sender: mpsc::UnboundedSender<Message>,
    closed: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    counters: Arc<Counters>,
}

/// What the writer thread has done, for tests and diagnostics.
#[derive(Default)]
struct Counters {
    /// Requests sent (counted once the send completed) and taken into a batch.
    sent: AtomicUsize,
    taken: AtomicUsize,
    /// Transactions committed.
    commits: AtomicU64,
}

impl Writer {
    fn start(conn: Connection, on_failed_commit: FailedCommitHook) -> Result<Writer, StoreError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("fairuse-sqlite-writer".into())
            .spawn(move || writer_loop(conn, receiver, &thread_counters, on_failed_commit))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the database writer thread: {e}")))?;
        Ok(Writer { sender, closed: AtomicBool::new(false), thread: Mutex::new(Some(thread)), counters })
    }

    /// Transactions committed so far.
    #[cfg(test)]
    fn commits(&self) -> u64 {
        self.counters.commits.load(Ordering::Acquire)
    }

    /// Requests waiting for the writer thread.
    #[cfg(test)]
    fn queued(&self) -> usize {
        let taken = self.counters.taken.load(Ordering::Acquire);
        self.counters.sent.load(Ordering::Acquire).saturating_sub(taken)
    }

    /// Runs `work` in the next batch and answers after that batch committed.
    pub(crate) async fn write<T, F>(&self, action: &str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(action, work, None).await
    }

    /// [`Writer::write`], and `after` runs with the result on the writer thread once the batch
    /// committed, before the answer: cache updates happen in commit order.
    pub(crate) async fn write_then<T, F, A>(&self, action: &str, work: F, after: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        self.submit(action, work, Some(Box::new(after))).await
    }

    async fn submit<T, F>(&self, action: &str, work: F, after: Option<After<T>>) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(format!("{action}: the store is closed")));
        }
        let (reply, answer) = oneshot::channel();
        let request = Pending { work: Some(work), after, result: None, reply };
        if self.sender.send(Message::Request(Box::new(request))).is_err() {
            return Err(StoreError::Unavailable(format!("{action}: the database writer has stopped")));
        }
        self.counters.sent.fetch_add(1, Ordering::AcqRel);
        // The writer answers every request it received, even refused ones; no answer means the
        // thread died mid-batch, which may or may not have committed.
        answer.await.unwrap_or_else(|_| Err(StoreError::Unknown(format!("{action}: the database writer stopped"))))
    }

    /// Lets the requests already queued finish, then stops the thread. Later calls fail with
    /// `Unavailable`.
    pub(crate) async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.sender.send(Message::Stop);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            // Joining blocks; the queue ahead of `Stop` is bounded by the callers waiting on it.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn writer_loop(
    conn: Connection,
    mut receiver: mpsc::UnboundedReceiver<Message>,
    counters: &Counters,
    on_failed_commit: FailedCommitHook,
) {
    let mut batch: Vec<Box<dyn Request>> = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    while !stopping {
        match receiver.blocking_recv() {
            Some(Message::Request(request)) => batch.push(request),
            Some(Message::Stop) | None => break,
        }
        // Everything already waiting joins this batch: the group commit.
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(Message::Request(request)) => batch.push(request),
                Ok(Message::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        counters.taken.fetch_add(batch.len(), Ordering::AcqRel);
        run_batch(&conn, &mut batch, counters, &on_failed_commit);
    }
    // Requests sent between `close` and the thread's exit never ran: certain failures.
    receiver.close();
    while let Ok(message) = receiver.try_recv() {
        if let Message::Request(request) = message {
            request.refuse(StoreError::Unavailable("the store is closed".into()));
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs one batch in one transaction and answers every request in it.
fn run_batch(
    conn: &Connection,
    batch: &mut Vec<Box<dyn Request>>,
    counters: &Counters,
    on_failed_commit: &FailedCommitHook,
) {
    const ACTION: &str = "write to the database";
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        let error = store_error(ACTION, Effect::NotApplied, e);
        batch.drain(..).for_each(|r| r.refuse(error.clone()));
        return;
    }
    // A batch of one needs no savepoint: if it fails, the whole transaction is rolled back.
    let single = batch.len() == 1;
    let mut broken = None;
    for request in batch.iter_mut() {
        let step = if single {
            if request.run(conn) { Ok(()) } else { exec(conn, "ROLLBACK") }
        } else {
            exec(conn, "SAVEPOINT request").and_then(|()| {
                if request.run(conn) {
                    exec(conn, "RELEASE request")
                } else {
                    exec(conn, "ROLLBACK TO request").and_then(|()| exec(conn, "RELEASE request"))
                }
            })
        };
        if let Err(e) = step {
            broken = Some(store_error(ACTION, Effect::NotApplied, e));
            break;
        }
    }
    if let Some(error) = broken {
        // The transaction is in no known state: roll it all back, so nothing of it happened.
        let _ = exec(conn, "ROLLBACK");
        on_failed_commit();
        batch.drain(..).for_each(|r| r.refuse(error.clone()));
        return;
    }
    if single && conn.is_autocommit() {
        // Its failure rolled the transaction back already.
        batch.drain(..).for_each(|r| r.finish(Ok(())));
        return;
    }
    match exec(conn, "COMMIT") {
        Ok(()) => {
            // Counted before anyone hears of the commit.
            counters.commits.fetch_add(1, Ordering::AcqRel);
            batch.drain(..).for_each(|r| r.finish(Ok(())));
        }
        Err(e) => {
            let error = store_error("commit to the database", Effect::MaybeApplied, e);
            let _ = exec(conn, "ROLLBACK");
            on_failed_commit();
            batch.drain(..).for_each(|r| r.finish(Err(&error)));
        }
    }
}

/// Connections for the reads that no cache answers (events, lists, charts, counts). In WAL mode
/// they run beside the writer and see what it committed.
pub(crate) struct Readers {
    db_path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    closed: Arc<AtomicBool>,
}

impl Readers {
    fn new(db_path: PathBuf) -> Readers {
        Readers { db_path, idle: Mutex::new(Vec::new()), closed: Arc::new(AtomicBool::new(false)) }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // A push or a pop: poisoning carries no information.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle();
        if idle.len() < READER_CONNECTIONS && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
    }

    /// Runs `query` on a reader connection on the blocking pool.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, action: &str, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(format!("{action}: the store is closed")));
        }
        let this = Arc::clone(self);
        let owned_action = action.to_owned();
        tokio::task::spawn_blocking(move || {
            let popped = this.idle().pop();
            let conn = match popped {
                Some(conn) => conn,
                None => connect(&this.db_path, false).map_err(|e| store_error(&owned_action, Effect::NotApplied, e))?,
            };
            let result = query(&conn).map_err(|e| store_error(&owned_action, Effect::NotApplied, e));
            this.give_back(conn);
            result
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("{action}: the read did not run: {e}"))))
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(conn: &Connection, k: i64) -> Result<(), StoreError> {
        conn.execute("INSERT INTO t (k) VALUES (?1)", [k])
            .map(|_| ())
            .map_err(|e| store_error("insert", Effect::NotApplied, e))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_waiting_together_share_one_commit_and_a_failed_one_rolls_back_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, _readers) = open(&dir.path().join("t.db"), Box::new(|| {})).expect("open");
        let writer = Arc::new(writer);
        writer
            .write("create", |c| {
                c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
                    .map_err(|e| store_error("create", Effect::NotApplied, e))
            })
            .await
            .expect("create");
        let commits_before = writer.commits();

        // Hold the writer thread inside one request until the others are all queued.
        let (started, started_rx) = oneshot::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn({
            let writer = Arc::clone(&writer);
            async move {
                writer
                    .write("block", move |_| {
                        let _ = started.send(());
                        let _ = release_rx.recv();
                        Ok(())
                    })
                    .await
            }
        });
        started_rx.await.expect("the blocker runs");
        let mut inserts = Vec::new();
        for k in 0..50 {
            let writer = Arc::clone(&writer);
            inserts.push(tokio::spawn(async move { writer.write("insert", move |c| insert(c, k)).await }));
        }
        let duplicate = tokio::spawn({
            let writer = Arc::clone(&writer);
            async move { writer.write("insert again", |c| insert(c, 7).and_then(|()| insert(c, 7))).await }
        });
        while writer.queued() < 51 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        release.send(()).expect("release");

        blocker.await.expect("blocker").expect("blocker committed");
        for insert in inserts {
            insert.await.expect("task").expect("insert committed");
        }
        let refused = duplicate.await.expect("task");
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
        assert_eq!(writer.commits() - commits_before, 2, "the blocker's commit, then one for all 51 waiting");
        let rows: i64 = writer
            .write("count", |c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(|e| store_error("count", Effect::NotApplied, e))
            })
            .await
            .expect("count");
        assert_eq!(rows, 50, "every insert is there once; the failed request left nothing behind");
    }

    #[tokio::test]
    async fn a_closed_writer_refuses_with_a_certain_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, _readers) = open(&dir.path().join("t.db"), Box::new(|| {})).expect("open");
        writer.close().await;
        let got = writer.write("late", |_| Ok(())).await;
        assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
    }
}
