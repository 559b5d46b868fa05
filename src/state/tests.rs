//! The state database's opening rules: disk-full recognition, the WAL
//! checks, migrations from every older schema.

use super::*;

#[test]
fn no_space_is_recognised_from_a_write_or_from_sqlite() {
    let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC);
    assert!(StoreError::io(Path::new("outbox/b.json"), enospc).is_disk_full());
    let quota = std::io::Error::from_raw_os_error(libc::EDQUOT);
    assert!(StoreError::io(Path::new("work/f"), quota).is_disk_full());
    let full =
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
    assert!(StoreError::from(full).is_disk_full());
    let denied = std::io::Error::from_raw_os_error(libc::EACCES);
    assert!(!StoreError::io(Path::new("work/f"), denied).is_disk_full());
    let busy =
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
    assert!(!StoreError::from(busy).is_disk_full());
}

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
    assert_eq!(
        batches::get(&c, "B1").unwrap().unwrap().state,
        crate::outbox::BatchState::Sealed
    );
    assert_eq!(files::attempt_of(&c, "none").unwrap(), None);
    drop(c);
    // A second open finds it current.
    assert!(open(&path).is_ok());
}

/// A v2 database (no file_attempt table) opens as current with it.
#[test]
fn a_v2_database_gains_the_attempt_table() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("fepd.db");
    {
        let c = open(&path).unwrap();
        c.execute_batch("DROP TABLE file_attempt; PRAGMA user_version = 2;")
            .unwrap();
    }
    let c = open(&path).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert_eq!(files::begin_attempt(&c, "ds", "w", "p", 0, "t").unwrap(), 0);
}

fn auto_vacuum(c: &Connection) -> i64 {
    c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap()
}

/// New databases give space back; a v2 one is switched by the
/// migration (one VACUUM) and gains the v3 table.
#[test]
fn a_v2_database_switches_to_incremental_vacuum() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("fepd.db");
    let c = open(&path).unwrap();
    assert_eq!(auto_vacuum(&c), 2);
    c.execute_batch(
        "DROP TABLE credential_refusal; PRAGMA auto_vacuum = NONE; VACUUM; PRAGMA user_version = 2;",
    )
    .unwrap();
    assert_eq!(auto_vacuum(&c), 0);
    drop(c);
    let c = open(&path).unwrap();
    assert_eq!(auto_vacuum(&c), 2);
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert!(auth::refusals(&c).unwrap().is_empty());
}
