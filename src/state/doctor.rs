//! The queries of `fepd doctor`: SQLite's own integrity check, and the
//! rows whose files or bodies must exist beside the database.

use rusqlite::{Connection, params};

use super::batches::{self, BatchRow};
use super::files::FileState;
use crate::outbox::BatchState;

/// SQLite's `PRAGMA integrity_check`, at most `max` messages; empty when
/// the database is sound.
pub fn integrity(conn: &Connection, max: usize) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA integrity_check({max})"))?;
    let found = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(found.into_iter().filter(|m| m != "ok").collect())
}

/// Every batch written to the outbox folder and not yet acknowledged, in
/// delivery order.
pub fn exported(conn: &Connection) -> rusqlite::Result<Vec<BatchRow>> {
    batches::list(conn, Some(BatchState::Exported), None, i64::MAX)
}

/// A batch still to be delivered whose wire body is not in the database.
#[derive(Debug, Clone)]
pub struct Bodiless {
    pub batch_id: String,
    pub dataset: String,
    pub state: BatchState,
    pub count: i64,
    /// The name the source file was dropped under, if known.
    pub file: Option<String>,
}

/// Pending and parked batches without their body.
pub fn pending_without_body(conn: &Connection) -> rusqlite::Result<Vec<Bodiless>> {
    let mut stmt = conn.prepare(
        "SELECT b.batch_id, b.dataset, b.state, b.count, f.name
         FROM batch b
         LEFT JOIN batch_body bb ON bb.seq = b.seq
         LEFT JOIN file f ON f.id = b.file_id
         WHERE b.state IN (?1, ?2, ?3) AND bb.seq IS NULL
         ORDER BY b.sort_key",
    )?;
    let rows = stmt.query_map(
        params![BatchState::Sealed, BatchState::Exported, BatchState::Parked],
        |r| {
            Ok(Bodiless {
                batch_id: r.get(0)?,
                dataset: r.get(1)?,
                state: r.get(2)?,
                count: r.get(3)?,
                file: r.get(4)?,
            })
        },
    )?;
    rows.collect()
}

/// A file row and where its file should be.
#[derive(Debug, Clone)]
pub struct FilePlace {
    pub id: i64,
    pub dataset: String,
    pub name: String,
    pub work_name: String,
    pub state: FileState,
    pub final_name: Option<String>,
    pub records_done: i64,
    /// Unix seconds of the verdict, for finished files.
    pub finished: Option<i64>,
}

/// Files still being processed, and finished files whose verdict came
/// after `since` (Unix seconds): each must be in `work/` or, finished, in
/// its verdict folder under its final name. Pages of a SQL source
/// (`format = 'sql'`) have no file of their own and are left out.
pub fn file_places(conn: &Connection, since: i64) -> rusqlite::Result<Vec<FilePlace>> {
    let mut stmt = conn.prepare(
        "SELECT id, dataset, name, work_name, state, final_name, records_done,
                CAST(strftime('%s', finished_at) AS INTEGER)
         FROM file
         WHERE (state IN (?1, ?2)
            OR CAST(strftime('%s', finished_at) AS INTEGER) >= ?3)
           AND format IS NOT 'sql'
         ORDER BY id",
    )?;
    let rows = stmt.query_map(
        params![FileState::Claimed, FileState::Processing, since],
        |r| {
            Ok(FilePlace {
                id: r.get(0)?,
                dataset: r.get(1)?,
                name: r.get(2)?,
                work_name: r.get(3)?,
                state: r.get(4)?,
                final_name: r.get(5)?,
                records_done: r.get(6)?,
                finished: r.get(7)?,
            })
        },
    )?;
    rows.collect()
}

/// Whether `work_name` is a file fepd has a row for.
pub fn knows_work_name(conn: &Connection, work_name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM file WHERE work_name = ?1)",
        [work_name],
        |r| r.get(0),
    )
}

/// What a finished file's row says of the file `final_name` under a
/// dataset's `done/` or `rejected/`.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub state: FileState,
    pub format: Option<String>,
    /// Unix seconds of the verdict.
    pub finished: Option<i64>,
}

/// The finished file of `dataset` that got the final name `final_name`.
pub fn verdict_named(
    conn: &Connection,
    dataset: &str,
    final_name: &str,
) -> rusqlite::Result<Option<Verdict>> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT state, format, CAST(strftime('%s', finished_at) AS INTEGER)
         FROM file
         WHERE dataset = ?1 AND final_name = ?2 AND state IN (?3, ?4)
         ORDER BY id DESC LIMIT 1",
        params![dataset, final_name, FileState::Done, FileState::Rejected],
        |r| {
            Ok(Verdict {
                state: r.get(0)?,
                format: r.get(1)?,
                finished: r.get(2)?,
            })
        },
    )
    .optional()
}

/// Whether batch `batch_id` is recorded as delivered.
pub fn is_delivered(conn: &Connection, batch_id: &str) -> rusqlite::Result<bool> {
    Ok(batches::get(conn, batch_id)?.is_some_and(|b| b.state == BatchState::Delivered))
}
