//! One SQLite file, one writer thread, many readers.
//!
//! SQLite allows one writer at a time, so instead of letting tasks fight for
//! the lock, every write is a closure sent to a single writer thread. The
//! thread takes whatever writes are waiting, runs each in its own SAVEPOINT
//! inside ONE transaction and commits once ("group commit"): a failed write
//! rolls back alone, and the cost of a commit is shared by everyone in the
//! batch. Callers hear back only after COMMIT, so a 202 is never sent for
//! something a crash could still undo.
//!
//! Durability: WAL with `synchronous=NORMAL` by default. A committed write is
//! in the WAL file before the caller hears back, so it survives the process
//! being killed (kill -9); it may not survive a power cut, for which
//! `synchronous=FULL` (an fsync per commit) is one setting away.
//!
//! Checkpoints (copying committed pages from the WAL back into the database
//! file, with an fsync of each) run on their own thread. SQLite's default
//! runs them inside the COMMIT that crosses 1,000 WAL pages, on the writer:
//! every write waiting behind that commit waited 15–20 ms, up to 90 ms when
//! the disk was slow, and an order passes the writer about five times, so
//! those were the longest waits between a 202 and `confirmed`. The writer
//! now only nudges the checkpointer, and checkpoints itself for one reason:
//! under steady load the WAL restarts only when a write begins just after a
//! complete checkpoint, and only the writer can checkpoint with no write in
//! between (an earlier checkpointer without this let the WAL grow, and reads
//! slowed with it). It never waits for the checkpointer's pass, whose fsync
//! has taken 469 ms here, until the WAL reaches its hard bound.
//! (Measured: docs/benchmark.md.)

use std::any::Any;
use std::collections::HashMap;
use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Notify, oneshot};

use super::schema;
use orderly_core::ports::StoreError;

/// What a committed write should wake up.
#[derive(Debug, Default)]
pub struct Effects {
    pub queues: Vec<String>,
    pub outbox: bool,
}

impl Effects {
    /// Wakes `queue`'s consumers after the commit: once, however many of
    /// the write's statements made work for them.
    pub fn wake(&mut self, queue: &str) {
        if !self.queues.iter().any(|q| q == queue) {
            self.queues.push(queue.to_owned());
        }
    }
}

type Reply = Result<Box<dyn Any + Send>, StoreError>;
type JobFn = Box<dyn FnOnce(&Connection, &mut Effects) -> Reply + Send>;

struct WriteJob {
    run: JobFn,
    reply: oneshot::Sender<Reply>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// Survives a killed process; the last commits may be lost on power loss.
    Normal,
    /// Survives power loss too, at the price of an fsync per commit.
    Full,
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub synchronous: Synchronous,
    /// Most writes committed together.
    pub max_batch: usize,
    /// Writes that may wait for the writer before callers get backpressure.
    pub queue_capacity: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self { synchronous: Synchronous::Normal, max_batch: 256, queue_capacity: 16_384 }
    }
}

/// Wake-ups for consumers and the relay, so that nobody polls in a loop.
#[derive(Default)]
pub struct Wakers {
    by_name: Mutex<HashMap<String, Arc<Notify>>>,
}

pub const OUTBOX_WAKER: &str = "\u{0}outbox";

impl Wakers {
    pub fn get(&self, name: &str) -> Arc<Notify> {
        let mut map = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned()).or_default().clone()
    }

    fn fire(&self, effects: &Effects) {
        for queue in &effects.queues {
            self.get(queue).notify_one();
        }
        if effects.outbox {
            self.get(OUTBOX_WAKER).notify_one();
        }
    }
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    const MAX_IDLE: usize = 8;

    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(conn);
        }
        open_connection(&self.path, true)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < Self::MAX_IDLE {
            idle.push(conn);
        }
    }
}

#[derive(Clone)]
pub struct Database {
    writer: SyncSender<WriteJob>,
    readers: Arc<ReaderPool>,
    wakers: Arc<Wakers>,
    path: PathBuf,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("path", &self.path).finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(unavailable)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;").map_err(unavailable)?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON;").map_err(unavailable)?;
    }
    Ok(conn)
}

impl Database {
    /// Opens (creating if needed) the database and migrates its schema.
    pub fn open(path: &Path, options: DbOptions) -> Result<Self, StoreError> {
        let mut conn = open_connection(path, false)?;
        let synchronous = match options.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!("could not switch to WAL (journal_mode is {mode})")));
        }
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};")).map_err(unavailable)?;
        schema::migrate(&mut conn)?;
        conn.execute_batch("PRAGMA journal_size_limit = 67108864;").map_err(unavailable)?;
        let checkpointer = start_checkpointer(path)?;
        checkpoint_from_the_writer(&mut conn, checkpointer)?;

        let (tx, rx) = sync_channel(options.queue_capacity);
        let wakers = Arc::new(Wakers::default());
        let thread_wakers = wakers.clone();
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx, &thread_wakers, max_batch))
            .map_err(|e| StoreError::Unavailable(format!("could not start the writer: {e}")))?;

        Ok(Self {
            writer: tx,
            readers: Arc::new(ReaderPool { path: path.to_owned(), idle: Mutex::new(Vec::new()) }),
            wakers,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn wakers(&self) -> &Arc<Wakers> {
        &self.wakers
    }

    /// Runs `f` in the writer's transaction; resolves after COMMIT.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut Effects) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let run: JobFn = Box::new(move |conn, effects| f(conn, effects).map(|v| Box::new(v) as Box<dyn Any + Send>));
        let mut job = WriteJob { run, reply };
        // The channel is bounded: when the writer falls behind, callers wait
        // here (backpressure) instead of growing memory without limit.
        loop {
            match self.writer.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    job = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(StoreError::Unavailable("the writer has stopped".into()));
                }
            }
        }
        let value = answer.await.map_err(|_| StoreError::Unavailable("the writer has stopped".into()))??;
        value.downcast::<T>().map(|v| *v).map_err(|_| StoreError::Corrupt("writer returned the wrong type".into()))
    }

    /// Runs `f` on a pooled read connection, inline on the calling task.
    ///
    /// In WAL mode a reader never waits for the writer, and the reads here are
    /// index lookups served from the page cache in microseconds; handing each
    /// to the blocking pool cost a thread wake-up per read, which on two busy
    /// cores was most of a read's latency. (Measured: docs/benchmark.md.)
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.readers.take()?;
        let result = f(&conn);
        self.readers.give_back(conn);
        result
    }

    /// Runs `f` on a pooled read connection on the blocking pool: for reads
    /// that scan (the analytics counters), so that a caller's deadline can
    /// fire while one runs (the popular list answers its fallback in time)
    /// and a long scan never holds an async worker.
    pub async fn read_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = f(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a read stopped: {e}")))?
    }
}

/// WAL pages after which the checkpointer is nudged (SQLite's own default).
const CHECKPOINT_AFTER_PAGES: c_int = 1_000;
/// WAL pages past which the writer finishes a checkpoint itself, so that
/// the next write restarts the WAL: while passes are quick, the size the
/// WAL cycles at.
const WRITER_CHECKPOINTS_AFTER_PAGES: c_int = 4_000;
/// The most a pass may have left for the writer to copy. A checkpoint ends
/// with an fsync, and every write waits for the writer's: it only finishes
/// what the checkpointer's passes nearly did.
const WRITER_COPIES_AT_MOST_PAGES: c_int = 1_000;
/// WAL pages past which the writer waits out the checkpointer's pass and
/// copies whatever is left: the WAL's hard bound (256 MiB of 4 KiB pages),
/// so that writes slow down rather than the WAL growing without end while
/// the disk is slow. At half load the runner here writes 25,000–40,000
/// pages a second, and a pass's fsync has taken 440 ms: a quarter of this
/// bound filled during one (docs/benchmark.md). A reader's snapshot holds
/// up any checkpoint; the reads here are short.
const WRITER_WAITS_AFTER_PAGES: c_int = 65_536;
/// Least time between two of the checkpointer's passes: a page rewritten
/// many times in the meantime is copied once.
const CHECKPOINT_SPACING: Duration = Duration::from_millis(10);

/// The writer's side of the checkpointer thread.
struct Checkpointer {
    nudge: SyncSender<()>,
    /// Held for each checkpoint (SQLite answers a second, concurrent one
    /// with SQLITE_BUSY at once). It guards what the last checkpoint
    /// copied, so that the writer knows what one of its own would cost.
    pass: Arc<Mutex<Copied>>,
}

/// WAL frames the last checkpoint saw and copied.
#[derive(Debug, Default, Clone, Copy)]
struct Copied {
    frames: c_int,
    copied: c_int,
}

impl Copied {
    /// Frames of a WAL of `pages` a checkpoint would still copy. Fewer
    /// pages than the pass saw mean the WAL restarted since: all of them.
    fn left(self, pages: c_int) -> c_int {
        if pages >= self.frames { pages - self.copied } else { pages }
    }
}

/// Starts the checkpointer thread; it stops when the writer's connection,
/// which holds the [`Checkpointer`], is dropped.
fn start_checkpointer(path: &Path) -> Result<Checkpointer, StoreError> {
    let conn = open_connection(path, false)?;
    let (nudge, nudges) = sync_channel::<()>(1);
    let pass = Arc::new(Mutex::new(Copied::default()));
    let in_pass = pass.clone();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while nudges.recv().is_ok() {
                {
                    let mut last = in_pass.lock().unwrap_or_else(|e| e.into_inner());
                    // PASSIVE never waits for readers or the writer; what it
                    // cannot copy now is copied on a later pass.
                    let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok(Copied { frames: r.get(1)?, copied: r.get(2)? })
                    });
                    *last = pass.unwrap_or_else(|error| {
                        tracing::warn!(%error, "checkpoint failed; the writer's own checkpoint bounds the WAL");
                        Copied::default()
                    });
                }
                std::thread::sleep(CHECKPOINT_SPACING);
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("could not start the checkpointer: {e}")))?;
    Ok(Checkpointer { nudge, pass })
}

/// Replaces SQLite's checkpoint-on-commit with a nudge to the checkpointer.
/// The writer checkpoints only to finish what the checkpointer nearly
/// copied (which restarts the WAL), and waits for it only at the WAL's
/// hard bound: a pass's fsync has taken 469 ms here (docs/benchmark.md).
fn checkpoint_from_the_writer(conn: &mut Connection, checkpointer: Checkpointer) -> Result<(), StoreError> {
    let hook = move |wal: &mut Wal, pages: c_int| {
        if pages >= WRITER_WAITS_AFTER_PAGES {
            let mut last = checkpointer.pass.lock().unwrap_or_else(|e| e.into_inner());
            checkpoint_here(wal, pages, &mut last);
        } else if pages >= WRITER_CHECKPOINTS_AFTER_PAGES
            // Mid-pass, the checkpointer is copying already: let it finish alone.
            && let Some(mut last) = idle(&checkpointer.pass)
            && last.left(pages) <= WRITER_COPIES_AT_MOST_PAGES
        {
            checkpoint_here(wal, pages, &mut last);
        } else if pages >= CHECKPOINT_AFTER_PAGES {
            // Full means a nudge is already waiting.
            let _ = checkpointer.nudge.try_send(());
        }
        // The commit has happened whatever a checkpoint did: an error here
        // would make COMMIT report a failure for a write that is durable.
        Ok(())
    };
    conn.wal_hook(Some(hook)).map_err(unavailable)
}

/// The pass's guard, unless a pass holds it.
fn idle(pass: &Mutex<Copied>) -> Option<std::sync::MutexGuard<'_, Copied>> {
    match pass.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// The writer's own checkpoint. Afterwards nothing of the WAL's next
/// frames is known to be copied: the next pass says how far it got.
fn checkpoint_here(wal: &mut Wal, pages: c_int, last: &mut Copied) {
    if let Err(error) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
        tracing::warn!(%error, pages, "the writer's checkpoint failed; the next commit tries again");
    }
    *last = Copied::default();
}

fn write_loop(conn: Connection, jobs: Receiver<WriteJob>, wakers: &Wakers, max_batch: usize) {
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, batch, wakers);
    }
    tracing::debug!("sqlite writer stopped");
}

/// Runs a transaction-control statement from the statement cache: these run
/// for every job, and parsing them each time was a third of the writer's time.
fn control(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(unavailable)
}

fn commit_batch(conn: &Connection, batch: Vec<WriteJob>, wakers: &Wakers) {
    if let Err(error) = control(conn, "BEGIN IMMEDIATE") {
        for job in batch {
            let _ = job.reply.send(Err(error.clone()));
        }
        return;
    }
    let mut effects = Effects::default();
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        // SQLite rolls the whole transaction back on some errors (disk full,
        // I/O). Running the next job in autocommit mode would write it
        // outside any transaction, so stop instead.
        if conn.is_autocommit() {
            replies.push((job.reply, Err(StoreError::Unavailable("the transaction was aborted".into()))));
            continue;
        }
        let result = run_in_savepoint(conn, job.run, &mut effects);
        replies.push((job.reply, result));
    }
    let committed = if conn.is_autocommit() {
        Err(StoreError::Unavailable("the transaction was aborted".into()))
    } else {
        control(conn, "COMMIT")
    };
    match committed {
        Ok(()) => {
            for (reply, result) in replies {
                let _ = reply.send(result);
            }
            wakers.fire(&effects);
        }
        Err(error) => {
            if !conn.is_autocommit() {
                let _ = control(conn, "ROLLBACK");
            }
            for (reply, _) in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

fn run_in_savepoint(conn: &Connection, run: JobFn, effects: &mut Effects) -> Reply {
    control(conn, "SAVEPOINT job")?;
    let mut job_effects = Effects::default();
    let result = catch_unwind(AssertUnwindSafe(|| run(conn, &mut job_effects)))
        .unwrap_or_else(|_| Err(StoreError::Corrupt("a write panicked".into())));
    if conn.is_autocommit() {
        return Err(result.err().unwrap_or_else(|| StoreError::Unavailable("the transaction was aborted".into())));
    }
    match result {
        Ok(value) => {
            control(conn, "RELEASE job")?;
            job_effects.queues.iter().for_each(|queue| effects.wake(queue));
            effects.outbox |= job_effects.outbox;
            Ok(value)
        }
        Err(error) => {
            let _ = control(conn, "ROLLBACK TO job").and_then(|()| control(conn, "RELEASE job"));
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_wakes_each_queue_once_however_often_its_statements_ask() {
        let mut effects = Effects::default();
        for queue in ["inventory", "analytics", "inventory"] {
            effects.wake(queue);
        }
        assert_eq!(effects.queues, ["inventory", "analytics"]);
    }

    fn size_of(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// A read on the blocking pool leaves its caller free, so a deadline the
    /// caller set fires while the read runs (the popular list's, contract
    /// §7). The read here waits until released; inline on the task it would
    /// finish first (after its own 60 s), and the deadline would be missed.
    #[tokio::test]
    async fn a_blocking_read_lets_its_callers_deadline_fire_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("db"), DbOptions::default()).unwrap();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let read = db.read_blocking(move |_conn| {
            let _ = released.recv_timeout(Duration::from_secs(60));
            Ok(())
        });
        tokio::pin!(read);
        let early = tokio::time::timeout(Duration::from_millis(20), &mut read).await;
        assert!(early.is_err(), "the deadline fired while the read was still running");
        release.send(()).unwrap();
        read.await.unwrap();
    }

    /// A checkpoint pass can spend hundreds of milliseconds in its fsync.
    /// Below the hard bound the writer goes on meanwhile; before, it waited
    /// for the pass once the WAL reached 4,000 pages, and every write with it.
    #[test]
    fn a_long_checkpoint_pass_holds_up_no_write_below_the_hard_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, pass, _nudges) = writer_with_hook(&dir.path().join("orderly.db"));

        // A pass that lasts until the test ends it.
        let (end_pass, pass_ended) = std::sync::mpsc::channel::<()>();
        let (in_pass, pass_began) = std::sync::mpsc::channel::<()>();
        let checkpointer = std::thread::spawn(move || {
            let _pass = pass.lock().unwrap();
            in_pass.send(()).unwrap();
            let _ = pass_ended.recv();
        });
        pass_began.recv().unwrap();

        let (done, writes_done) = std::sync::mpsc::channel::<()>();
        let pages = WRITER_CHECKPOINTS_AFTER_PAGES as usize * 2;
        std::thread::spawn(move || {
            commit_pages(&conn, pages);
            done.send(()).unwrap();
        });
        let finished = writes_done.recv_timeout(Duration::from_secs(30));
        end_pass.send(()).unwrap();
        checkpointer.join().unwrap();
        assert!(finished.is_ok(), "writes of {pages} pages waited for the checkpointer's pass");
    }

    /// A writer's connection with the WAL hook, a filler table, the pass
    /// the hook consults, and the nudges it sends (no checkpointer reads them).
    fn writer_with_hook(path: &Path) -> (Connection, Arc<Mutex<Copied>>, Receiver<()>) {
        let mut conn = open_connection(path, false).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE filler (body BLOB NOT NULL)").unwrap();
        let (nudge, nudges) = sync_channel::<()>(1);
        let pass = Arc::new(Mutex::new(Copied::default()));
        checkpoint_from_the_writer(&mut conn, Checkpointer { nudge, pass: pass.clone() }).unwrap();
        (conn, pass, nudges)
    }

    fn commit_pages(conn: &Connection, pages: usize) {
        for _ in 0..pages / 40 {
            let tx = conn.unchecked_transaction().unwrap();
            for _ in 0..40 {
                tx.execute("INSERT INTO filler (body) VALUES (zeroblob(4000))", []).unwrap();
            }
            tx.commit().unwrap();
        }
    }

    /// The writer's checkpoint ends in an fsync that every write waits for,
    /// so it only finishes what a pass of the checkpointer nearly copied.
    #[test]
    fn the_writer_leaves_a_large_copy_to_the_checkpointer_and_finishes_a_small_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orderly.db");
        let (conn, pass, _nudges) = writer_with_hook(&path);

        // Past the writer's threshold, with no pass yet: nothing copied.
        commit_pages(&conn, WRITER_CHECKPOINTS_AFTER_PAGES as usize + 400);
        let database = size_of(&path);
        assert!(database < 100 * 4096, "the writer copied the WAL itself: the database file is {database} bytes");

        // A pass copied nearly all it saw. (The WAL holds a few hundred
        // frames more than rows: each commit also rewrites interior pages.)
        *pass.lock().unwrap() =
            Copied { frames: WRITER_CHECKPOINTS_AFTER_PAGES + 400, copied: WRITER_CHECKPOINTS_AFTER_PAGES + 400 - 40 };
        // The next commit leaves a small copy: the writer finishes it.
        commit_pages(&conn, 40);
        let database = size_of(&path);
        assert!(database > 4_000 * 4096, "the writer left its checkpoint: the database file is {database} bytes");
    }

    #[test]
    fn what_a_pass_left_counts_every_frame_of_a_wal_restarted_since() {
        let pass = Copied { frames: 21_000, copied: 20_900 };
        assert_eq!(pass.left(21_500), 600);
        // The WAL restarted after the pass: its 4,200 frames are all new.
        assert_eq!(pass.left(4_200), 4_200);
        assert_eq!(Copied::default().left(4_200), 4_200);
    }

    /// Checkpointing moved off the writer must still happen and still bound
    /// the WAL: with no checkpoint at all, these writes would leave a WAL of
    /// every page they wrote (~330 MB) and an empty database file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn steady_writes_reach_the_database_file_and_keep_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orderly.db");
        let db = Database::open(&path, DbOptions::default()).unwrap();
        db.write(|conn, _| {
            conn.execute_batch("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB NOT NULL)").map_err(unavailable)
        })
        .await
        .unwrap();
        let page = 4096_u64;
        let written_pages = 80_000_u64;
        let pages_per_write = 40_u64;
        for _ in 0..written_pages / pages_per_write {
            db.write(move |conn, _| {
                for _ in 0..pages_per_write {
                    conn.execute("INSERT INTO filler (body) VALUES (zeroblob(4000))", []).map_err(unavailable)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        }

        let wal = PathBuf::from(format!("{}-wal", path.display()));
        // A WAL frame is a page and a 24-byte header; the WAL restarts at
        // the first write after a checkpoint that copied all of it.
        let bound = (WRITER_WAITS_AFTER_PAGES as u64 + 2 * pages_per_write) * (page + 24);
        assert!(size_of(&wal) <= bound, "the WAL grew to {} bytes, over its bound of {bound}", size_of(&wal));

        // The rows reach the database file through checkpoints alone.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while size_of(&path) < written_pages / 2 * page {
            assert!(std::time::Instant::now() < deadline, "no checkpoint copied the rows: {} bytes", size_of(&path));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
