//! Read-only queries behind `fepd audit report --day` (`audit::report`):
//! the files finished and the batches sealed in a window of local times
//! (the caller decides, by instant, which of them fall on its day), and
//! the delivery state of a file's batches.

use rusqlite::Connection;

use super::files::{Counts, FileState};

/// A file with its verdict, as the daily report counts it.
#[derive(Debug, Clone)]
pub struct FinishedFile {
    pub id: i64,
    pub dataset: String,
    pub state: FileState,
    pub finished_at: String,
    /// `received`, `sealed`, `skipped`, `stale`, `rejected`; the others 0.
    pub counts: Counts,
}

/// The files whose `finished_at` text sorts in `[lo, hi)`.
pub fn files_finished(
    conn: &Connection,
    lo: &str,
    hi: &str,
) -> rusqlite::Result<Vec<FinishedFile>> {
    let mut stmt = conn.prepare(
        "SELECT id, dataset, state, finished_at, received, sealed, skipped, stale, rejected
         FROM file WHERE finished_at >= ?1 AND finished_at < ?2",
    )?;
    stmt.query_map([lo, hi], |r| {
        Ok(FinishedFile {
            id: r.get(0)?,
            dataset: r.get(1)?,
            state: r.get(2)?,
            finished_at: r.get(3)?,
            counts: Counts {
                received: r.get(4)?,
                sealed: r.get(5)?,
                skipped: r.get(6)?,
                stale: r.get(7)?,
                rejected: r.get(8)?,
                ignored_fields: 0,
            },
        })
    })?
    .collect()
}

/// A batch of a file that holds records (a split batch's records are its
/// halves').
#[derive(Debug, Clone)]
pub struct FileBatch {
    pub state: String,
    pub count: i64,
    /// Records the library refused.
    pub lib_rejected: i64,
}

/// The batches of file `file_id` that hold records, split ones apart.
pub fn batches_of_file(conn: &Connection, file_id: i64) -> rusqlite::Result<Vec<FileBatch>> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, count, lib_rejected FROM batch WHERE file_id = ?1 AND state <> 'split'",
    )?;
    stmt.query_map([file_id], |r| {
        Ok(FileBatch {
            state: r.get(0)?,
            count: r.get(1)?,
            lib_rejected: r.get(2)?,
        })
    })?
    .collect()
}

/// A batch sealed from a file (not a split half).
#[derive(Debug, Clone)]
pub struct Sealed {
    pub dataset: String,
    pub sealed_at: String,
    pub count: i64,
}

/// The batches sealed from files whose `sealed_at` text sorts in
/// `[lo, hi)`.
pub fn sealed(conn: &Connection, lo: &str, hi: &str) -> rusqlite::Result<Vec<Sealed>> {
    let mut stmt = conn.prepare(
        "SELECT dataset, sealed_at, count FROM batch
         WHERE parent_id IS NULL AND sealed_at >= ?1 AND sealed_at < ?2",
    )?;
    stmt.query_map([lo, hi], |r| {
        Ok(Sealed {
            dataset: r.get(0)?,
            sealed_at: r.get(1)?,
            count: r.get(2)?,
        })
    })?
    .collect()
}

/// Hand-made rows for the daily report's tests: states and counts that
/// would take a whole pipeline run to reach otherwise.
#[cfg(test)]
pub mod fixtures {
    use super::*;
    use rusqlite::params;

    /// A `done` file of `case_accept` with counts `c` (received, sealed,
    /// skipped, stale, rejected), claimed and finished at `finished`.
    pub fn finished_file(conn: &Connection, id: i64, finished: &str, c: [i64; 5]) {
        conn.execute(
            "INSERT INTO file (id, dataset, name, work_name, state, received, sealed, skipped, stale, rejected, claimed_at, finished_at)
             VALUES (?1, 'case_accept', 'f', ?2, 'done', ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            params![id, format!("w{id}"), c[0], c[1], c[2], c[3], c[4], finished],
        )
        .unwrap();
    }

    /// A `case_accept` batch of `file` in `state`.
    pub fn batch(
        conn: &Connection,
        id: &str,
        file: i64,
        state: &str,
        count: i64,
        lib: i64,
        parent: Option<&str>,
    ) {
        conn.execute(
            "INSERT INTO batch (sort_key, batch_id, dataset, route, file_id, parent_id, count, bytes, digest, state, lib_rejected, sealed_at)
             VALUES (?1, ?1, 'case_accept', 'zwfw/case_accept', ?2, ?3, ?4, 0, '', ?5, ?6, '2026-11-20T10:00:00+08:00')",
            params![id, file, parent, count, state, lib],
        )
        .unwrap();
    }
}
