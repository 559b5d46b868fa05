//! State: the SQLite database that makes fepd resumable and auditable.
//!
//! One file, `state/fepd.db`, in WAL mode. It holds the files seen and their
//! checkpoints, every record's last sealed version (for dedupe), the sealed
//! batches with their exact bodies (the outbox), the records the library or
//! validation rejected, and the exchange log. Every change that moves data
//! forward is one transaction together with its exchange-log entry and,
//! for intake, the file's checkpoint; commits are `synchronous=FULL`.
//!
//! Only `state` writes SQL; the other stages call the functions here.

pub mod auth;
pub mod backup;
pub mod batches;
pub mod daily;
pub mod doctor;
pub mod entries;
pub mod episodes;
pub mod figures;
pub mod files;
pub mod listing;
pub mod log;
pub mod packed;
pub mod recent;
pub mod records;
pub mod replay;
pub mod retention;
pub mod trace;
pub mod users;
pub mod watermark;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

pub use rusqlite::{Transaction, params};

/// The one error of the store: the state database (opening it, or a
/// statement on it) or a file beside it (spool, outbox) at a named path.
/// A file's job, the pull-mode pass, backups and the audit commands all
/// fail with it; the cause stays the source, so a full disk is recognised
/// by [`StoreError::is_disk_full`] without walking an untyped chain.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "state database was written by a newer fepd (schema {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    /// The file is there but SQLite cannot use it (damaged, not a
    /// database): named with what to do, since nothing else will run.
    #[error("{}", unusable(path, problem))]
    Unusable { path: String, problem: String },
    /// The index of the write-ahead log is there but the log is not: the
    /// last committed changes were deleted after a crash, and SQLite would
    /// open the older state without a word.
    #[error("{}", wal_missing(path))]
    WalMissing { path: String },
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// The error-maker for a failed operation on `path`, for `map_err`.
    pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::io(path, source)
    }

    /// Whether this means "no space left": ENOSPC or EDQUOT from a write,
    /// or SQLite's SQLITE_FULL. Intake pauses on it rather than counting a
    /// failure (README `[backpressure]`).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => io_is_disk_full(source),
            StoreError::Open { source, .. } | StoreError::Sql(source) => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            _ => false,
        }
    }
}

/// Whether a write failed for want of space (ENOSPC) or quota (EDQUOT).
pub fn io_is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// What an operator can do about a damaged state database (also what
/// `fepd doctor` prints for one).
pub fn recovery_steps(path: &str) -> String {
    format!(
        "What to do:\n         \x20 1. Keep fepd stopped. Copy {path}, {path}-wal and {path}-shm (those that exist) somewhere safe before anything else.\n         \x20 2. Restore the state folder from your latest backup and start fepd. Source files finished after that backup are in done/: drop them into the inbox again if their records must still be sent (the library de-duplicates what it already has).\n         \x20 3. Without a backup: move the file aside (mv {path} {path}.damaged, with its -wal and -shm) and start fepd, which creates an empty state database; then drop the source files from done/ again as above. `sqlite3 {path}.damaged .recover` salvages what rows it can, for investigation.\n         \x20 4. `fepd doctor` checks the database, the exchange log and their agreement with the spool, and names each fix (`fepd doctor --db FILE` checks a backup copy before you restore it)."
    )
}

fn unusable(path: &str, problem: &str) -> String {
    format!(
        "state database {path} cannot be used: {problem}\n{}",
        recovery_steps(path)
    )
}

fn wal_missing(path: &str) -> String {
    format!(
        "state database {path}: its write-ahead log {path}-wal is missing while its index {path}-shm is there. \
         fepd did not stop cleanly and the -wal, which holds the last committed changes, was deleted or moved; \
         opening the database now would silently lose them.\n         \x20 0. If you have the -wal file (moved, or in a backup taken with the database), put it back as {path}-wal and start fepd again.\n{}\n         \x20 To accept the loss and go on from the state last written to {path} itself, delete {path}-shm and start fepd.",
        recovery_steps(path)
    )
}

pub type Result<T> = std::result::Result<T, StoreError>;

const SCHEMA_VERSION: i64 = 9;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS file (
    id            INTEGER PRIMARY KEY,
    dataset       TEXT NOT NULL,
    name          TEXT NOT NULL,           -- name as dropped in the inbox
    work_name     TEXT NOT NULL UNIQUE,    -- name under work/ while claimed
    sha256        TEXT,                    -- content identity, set after the hash pass
    size          INTEGER,
    format        TEXT,
    encoding      TEXT,
    state         TEXT NOT NULL,           -- claimed | processing | finishing | done | rejected | duplicate
    records_done  INTEGER NOT NULL DEFAULT 0, -- checkpoint: input records consumed
    received      INTEGER NOT NULL DEFAULT 0,
    sealed        INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0, -- unchanged
    stale         INTEGER NOT NULL DEFAULT 0, -- older version than sealed
    rejected      INTEGER NOT NULL DEFAULT 0,
    ignored_fields INTEGER NOT NULL DEFAULT 0,
    fault         TEXT,                    -- file-level rejection reason
    duplicate_of  INTEGER REFERENCES file(id),
    final_name    TEXT,                    -- name under done/ or rejected/
    claimed_at    TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX IF NOT EXISTS file_sha ON file(dataset, sha256);

-- Per record: what was last sealed for its key (dedupe and version order),
-- and where each of its versions went: `history` lists `batchId:idx` of
-- its batch_record rows in the order they were written (`fepd audit
-- trace`). It stands in for an index of batch_record by key, which cost a
-- second random-order B-tree insert for every record sealed.
-- It is written by the merge only (recent.rs, schema v9): a sealed
-- record's only row when it is sealed is its batch_record row, appended in
-- seal order; the batches after `record_merge.seq` are the tail, which
-- the sealing connection indexes in memory and the merge folds in here in
-- key order when the tail is long or intake idle.
CREATE TABLE IF NOT EXISTS record_state (
    dataset  TEXT NOT NULL,
    key      TEXT NOT NULL,
    hash     TEXT NOT NULL,
    version  INTEGER,
    op       TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    history  TEXT,
    PRIMARY KEY (dataset, key)
) WITHOUT ROWID;

-- Records rejected by validation, per file, for reports and tracing.
CREATE TABLE IF NOT EXISTS rejection (
    file_id  INTEGER NOT NULL REFERENCES file(id),
    ordinal  INTEGER NOT NULL,   -- record number in the file
    position TEXT NOT NULL,      -- as shown to people
    row      INTEGER NOT NULL,
    key      TEXT,
    field    TEXT NOT NULL,
    title    TEXT NOT NULL,
    value    TEXT,               -- masked when the field is personal data
    rule     TEXT NOT NULL,
    message  TEXT NOT NULL,
    warning  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rejection_file ON rejection(file_id, ordinal);
CREATE INDEX IF NOT EXISTS rejection_key ON rejection(key);

-- The outbox: every sealed batch; its exact wire body is in batch_body.
CREATE TABLE IF NOT EXISTS batch (
    seq          INTEGER PRIMARY KEY,   -- seal order
    sort_key     TEXT NOT NULL,         -- delivery order per route: seq zero-padded; halves of a split sort right after their parent
    batch_id     TEXT NOT NULL UNIQUE,
    dataset      TEXT NOT NULL,
    route        TEXT NOT NULL,
    file_id      INTEGER,
    parent_id    TEXT,
    count        INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    digest       TEXT NOT NULL,
    state        TEXT NOT NULL,         -- sealed | exported | delivered | parked | split
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    receipt_id   TEXT,
    accepted     INTEGER,
    lib_rejected INTEGER NOT NULL DEFAULT 0,
    sealed_at    TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS batch_pending ON batch(state, route, sort_key);
-- The body apart from the row whose state changes: an update of a row
-- rewrites all of it, and a body is up to max_bytes.
CREATE TABLE IF NOT EXISTS batch_body (
    seq  INTEGER PRIMARY KEY,           -- = batch.seq
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS batch_file ON batch(file_id);

-- Cluster mode (docs/cluster.md "Answers"): how many times each batch was
-- handed off to the cluster's stream. A batch retried after the library
-- parked it is published again under a message id of its own (the
-- stream drops a re-published id for a day).
CREATE TABLE IF NOT EXISTS batch_handoff (
    batch_id TEXT PRIMARY KEY,
    times    INTEGER NOT NULL
) WITHOUT ROWID;

-- Batch size learnt from 413 answers, per route.
CREATE TABLE IF NOT EXISTS route_limit (
    route       TEXT PRIMARY KEY,
    max_records INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS batch_record (
    batch_id TEXT NOT NULL,
    idx      INTEGER NOT NULL,
    key      TEXT NOT NULL,
    hash     TEXT NOT NULL,
    op       TEXT NOT NULL,
    version   INTEGER,                  -- the key's version order after this record (v9)
    sets_last INTEGER NOT NULL DEFAULT 0, -- 1: sealed here, the key's new last sealed version; 0: a split half or replay (history only) (v9)
    PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;
-- The last batch whose batch_record rows are folded into record_state
-- (recent.rs); one row.
CREATE TABLE IF NOT EXISTS record_merge (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO record_merge (one, seq) VALUES (1, 0);

-- Records the library refused inside an accepted batch (never resent).
CREATE TABLE IF NOT EXISTS remote_rejection (
    batch_id TEXT NOT NULL,
    idx      INTEGER NOT NULL,
    key      TEXT NOT NULL,
    code     TEXT NOT NULL,
    message  TEXT NOT NULL,
    PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;

-- Attempts on a file in work/, written before any work on it starts (the
-- crash-loop breaker, files.rs): the process that made the attempt, and
-- the file's checkpoint then. A row left by another process means that
-- process died during the attempt.
CREATE TABLE IF NOT EXISTS file_attempt (
    work_name   TEXT PRIMARY KEY,
    dataset     TEXT NOT NULL,
    process     TEXT NOT NULL,          -- id of the running fepd process
    checkpoint  INTEGER NOT NULL,       -- file.records_done when it started (0 before the claim row)
    dead        INTEGER NOT NULL,       -- attempts in a row that died with no checkpoint advance
    started_at  TEXT NOT NULL
) WITHOUT ROWID;
-- Routes whose token requests the library refuses (wrong credentials,
-- lock-out): one row per route while the episode lasts (see auth.rs).
CREATE TABLE IF NOT EXISTS credential_refusal (
    route   TEXT PRIMARY KEY,
    since   TEXT NOT NULL,       -- first refusal of the episode
    reason  TEXT NOT NULL,       -- the library's answer, no secrets
    next_attempt TEXT            -- when the next token request is allowed
);

-- The exchange log: append-only, hash-chained (see log.rs).
CREATE TABLE IF NOT EXISTS exchange_log (
    seq     INTEGER PRIMARY KEY,
    time    TEXT NOT NULL,
    event   TEXT NOT NULL,
    dataset TEXT,
    file    TEXT,
    batch   TEXT,
    counts  TEXT,
    details TEXT,
    hash    TEXT NOT NULL
);
-- The alert entries alone, for the episodes still open (`episodes`),
-- which the console's overview reads on every view.
CREATE INDEX IF NOT EXISTS exchange_log_alerts ON exchange_log(seq)
    WHERE event IN ('alert_raised', 'alert_resolved');
-- Entries by event and time: a cluster node's heartbeat reads its
-- hand-offs of today and its last delivery (`figures::cluster`) every
-- `heartbeat_secs`, which without it is a scan of the whole log (schema
-- v8).
CREATE INDEX IF NOT EXISTS exchange_log_event ON exchange_log(event, time);
"#;

/// Opens (creating if needed) the state database at `path`, applying the
/// pragmas every connection needs.
pub fn open(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    check_wal(path)?;
    let opened = (|| {
        let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        configure(&mut conn)?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            migrate(conn)
        } else {
            Ok(conn)
        }
    })();
    opened.map_err(|e| damaged(path, e))
}

/// Refuses to open a database whose `-wal` is gone while its `-shm` is
/// left: SQLite would rebuild the index from an empty log and serve the
/// state of the last checkpoint as if it were current. A clean close
/// removes both files, and a reader leaves both.
fn check_wal(path: &Path) -> Result<()> {
    let side = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    if path.exists() && side("-shm").exists() && !side("-wal").exists() {
        return Err(StoreError::WalMissing {
            path: path.display().to_string(),
        });
    }
    Ok(())
}

/// An error met while opening `path`, as the operator should read it: a
/// damaged or foreign file is named with the recovery steps.
fn damaged(path: &Path, e: StoreError) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    let code = match &e {
        StoreError::Open { source, .. } | StoreError::Sql(source) => source.sqlite_error_code(),
        _ => None,
    };
    match (code, &e) {
        (Some(DatabaseCorrupt), StoreError::Open { source, .. } | StoreError::Sql(source)) => {
            StoreError::Unusable {
                path: path.display().to_string(),
                problem: format!("it is damaged ({source})"),
            }
        }
        (Some(NotADatabase), _) => StoreError::Unusable {
            path: path.display().to_string(),
            problem: "it is not an SQLite database (file is not a database)".into(),
        },
        _ => e,
    }
}

/// Creates the schema, or brings an older one up to date, in one
/// transaction that holds the write lock (several connections open the
/// database at start-up).
fn migrate(mut conn: Connection) -> Result<Connection> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    // v2 → v3 adds two tables (file_attempt, credential_refusal), which
    // SCHEMA creates, and switches to incremental vacuum (below).
    if found == 1 {
        // v1 kept the body in the batch row.
        tx.execute_batch(
            "CREATE TABLE batch_body (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
             INSERT INTO batch_body (seq, body) SELECT seq, body FROM batch;
             ALTER TABLE batch DROP COLUMN body;",
        )?;
    }
    if (1..5).contains(&found) {
        records::history_into_record_state(&tx)?;
    }
    if found == 5 {
        // v5 → v6: a console user's grant to see personal values (`users`).
        tx.execute_batch(users::V6)?;
    }
    if (1..9).contains(&found) {
        // v8 → v9: sealed records' versions in batch_record, and the merge
        // mark; every batch so far is already in record_state.
        recent::v9(&tx)?;
    }
    if found < SCHEMA_VERSION {
        // v3 → v4 adds the SQL sources' tables (`watermark`); v4 → v5
        // the console's users (`users`), beside each key's history moved
        // into `record_state` above; the users' table is made with v6's
        // `reveal` column when it did not exist; v6 → v7 the cluster's
        // hand-off counts (`batch_handoff`); v7 → v8 the log's index by
        // event and time, built here once (~1 s a million entries); v8 → v9
        // the merge of sealed records into record_state (`recent::v9`).
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch(watermark::SCHEMA)?;
        tx.execute_batch(users::SCHEMA)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    if (1..3).contains(&found) {
        switch_to_incremental_vacuum(&conn);
    }
    Ok(conn)
}

/// Databases made before schema v3 give no space back: switch them to
/// `auto_vacuum = INCREMENTAL`, which takes one VACUUM (a rewrite of the
/// file, needing its size again in free space; ~1 s per 100 MB). The
/// daemon's first connection does it, before its workers start. If it
/// fails (no space, say), fepd works as before: freed pages are reused
/// but the file does not shrink; retention passes log the mode they found.
fn switch_to_incremental_vacuum(conn: &Connection) {
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap_or(0);
    if mode == 2 {
        return;
    }
    let started = std::time::Instant::now();
    let done = conn
        .pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .and_then(|()| conn.execute_batch("VACUUM"));
    match done {
        Ok(()) => tracing::info!(
            millis = started.elapsed().as_millis() as u64,
            "state database switched to incremental vacuum (one-time VACUUM)"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "state database could not switch to incremental vacuum; retention frees pages for reuse but the file will not shrink"
        ),
    }
}

/// Opens an existing state database for reading only (status, audit
/// commands while the daemon runs).
pub fn open_read_only(path: &Path) -> Result<Connection> {
    check_wal(path)?;
    let opened = (|| {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // SQLite reads the file lazily: read the schema now, so a damaged
        // or foreign file is named here rather than by the first query.
        conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(conn)
    })();
    opened.map_err(|e| damaged(path, e))
}

/// Page cache of a connection that seals, MiB (`[state] cache_mib`).
pub const DEFAULT_CACHE_MIB: u32 = 8;

/// Page cache of every other state connection, MiB: the forwarder reads
/// each body once, status and the console read indexes and a few rows,
/// and every connection's cache stays filled once it has filled.
pub const OTHER_CACHE_MIB: u32 = 2;

/// Gives `conn` a page cache of `mib` MiB (it fills only as pages are
/// read).
pub fn set_cache_mib(conn: &Connection, mib: u32) -> rusqlite::Result<()> {
    conn.pragma_update(None, "cache_size", -(mib as i64) * 1024)
}

fn configure(conn: &mut Connection) -> Result<()> {
    // Several connections write (a worker per dataset, the forwarder): a
    // writer that finds the lock taken retries every half millisecond, for
    // up to ~30 s. SQLite's own busy_timeout backs off to 100 ms sleeps,
    // which left a delivery waiting ~50–130 ms behind each chunk commit.
    // Installed first: the pragmas below wait for a lock too (the first
    // connection after a restart recovers the WAL holding an exclusive one
    // while the other threads open theirs).
    conn.busy_handler(Some(wait_for_lock))?;
    // WAL lets readers (status, audit) run beside the writer. FULL makes
    // every commit durable: a commit is the point where a checkpoint or a
    // delivery is promised, and there are few of them (one per chunk).
    // Pages freed by retention go back to the file system
    // (`incremental_vacuum` after each pass). The mode takes effect only on
    // a database not yet written (so before WAL mode writes its header);
    // older databases switch with a one-time VACUUM in `migrate`.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -(OTHER_CACHE_MIB as i64) * 1024)?;
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    Ok(())
}

/// Busy handler: `tries` is how many times the lock was found taken.
fn wait_for_lock(tries: i32) -> bool {
    const STEP: Duration = Duration::from_micros(500);
    if tries >= 60_000 {
        return false;
    }
    std::thread::sleep(STEP);
    true
}

/// Now, in the wire form of docs/protocol.md §1, in the configured offset.
pub fn now_text(tz: chrono::FixedOffset) -> String {
    chrono::Utc::now()
        .with_timezone(&tz)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Milliseconds since the Unix epoch (for retry schedules).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests;
