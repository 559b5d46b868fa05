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

pub mod backup;
pub mod batches;
pub mod files;
pub mod log;
pub mod records;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

pub use rusqlite::{Transaction, params};

/// Errors from the state database, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "state database was written by a newer fepd (schema {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
}

pub type Result<T> = std::result::Result<T, StateError>;

const SCHEMA_VERSION: i64 = 2;

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

-- Per record: what was last sealed for its key (dedupe and version order).
CREATE TABLE IF NOT EXISTS record_state (
    dataset  TEXT NOT NULL,
    key      TEXT NOT NULL,
    hash     TEXT NOT NULL,
    version  INTEGER,
    op       TEXT NOT NULL,
    batch_id TEXT NOT NULL,
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
    PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_record_key ON batch_record(key);

-- Records the library refused inside an accepted batch (never resent).
CREATE TABLE IF NOT EXISTS remote_rejection (
    batch_id TEXT NOT NULL,
    idx      INTEGER NOT NULL,
    key      TEXT NOT NULL,
    code     TEXT NOT NULL,
    message  TEXT NOT NULL,
    PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;

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
"#;

/// Opens (creating if needed) the state database at `path`, applying the
/// pragmas every connection needs.
pub fn open(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut conn = Connection::open(path).map_err(|source| StateError::Open {
        path: path.display().to_string(),
        source,
    })?;
    configure(&mut conn)?;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StateError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        migrate(conn)
    } else {
        Ok(conn)
    }
}

/// Creates the schema, or brings an older one up to date, in one
/// transaction that holds the write lock (several connections open the
/// database at start-up).
fn migrate(mut conn: Connection) -> Result<Connection> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found == 1 {
        // v1 kept the body in the batch row.
        tx.execute_batch(
            "CREATE TABLE batch_body (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
             INSERT INTO batch_body (seq, body) SELECT seq, body FROM batch;
             ALTER TABLE batch DROP COLUMN body;",
        )?;
    }
    if found < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(conn)
}

/// Opens an existing state database for reading only (status, audit
/// commands while the daemon runs).
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StateError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

fn configure(conn: &mut Connection) -> Result<()> {
    // WAL lets readers (status, audit) run beside the writer. FULL makes
    // every commit durable: a commit is the point where a checkpoint or a
    // delivery is promised, and there are few of them (one per chunk).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -8192)?;
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    // Several connections write (a worker per dataset, the forwarder): a
    // writer that finds the lock taken retries every half millisecond, for
    // up to ~30 s. SQLite's own busy_timeout backs off to 100 ms sleeps,
    // which left a delivery waiting ~50–130 ms behind each chunk commit.
    conn.busy_handler(Some(wait_for_lock))?;
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

/// Now, in the wire form of PROTOCOL.md §1, in the configured offset.
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
mod tests {
    use super::*;

    /// A state DB written by schema v1 (body inside the batch row) opens as
    /// v2 with every body kept.
    #[test]
    fn a_v1_database_is_migrated_with_its_bodies() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("fepd.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE batch (
                    seq INTEGER PRIMARY KEY, sort_key TEXT NOT NULL, batch_id TEXT NOT NULL UNIQUE,
                    dataset TEXT NOT NULL, route TEXT NOT NULL, file_id INTEGER, parent_id TEXT,
                    count INTEGER NOT NULL, bytes INTEGER NOT NULL, digest TEXT NOT NULL,
                    body BLOB NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_ms INTEGER NOT NULL DEFAULT 0, last_error TEXT, receipt_id TEXT,
                    accepted INTEGER, lib_rejected INTEGER NOT NULL DEFAULT 0,
                    sealed_at TEXT NOT NULL, delivered_at TEXT);
                 CREATE INDEX batch_pending ON batch(state, route, sort_key);
                 INSERT INTO batch (sort_key, batch_id, dataset, route, count, bytes, digest, body, state, sealed_at)
                 VALUES ('1', 'B1', 'case_accept', 'zwfw/case_accept', 1, 2, 'd', x'7b7d', 'sealed', 't');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let c = open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(
            batches::body(&c, "B1").unwrap().as_deref(),
            Some(&b"{}"[..])
        );
        let cols: Vec<String> = c
            .prepare("SELECT name FROM pragma_table_info('batch')")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(!cols.iter().any(|c| c == "body"), "{cols:?}");
        assert_eq!(batches::get(&c, "B1").unwrap().unwrap().state, "sealed");
        drop(c);
        // A second open finds it current.
        assert!(open(&path).is_ok());
    }
}
