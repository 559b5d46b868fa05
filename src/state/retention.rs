//! Retention's deletions in the state database, a few at a time.
//!
//! Each function deletes at most `limit` items and says how many, so the
//! caller commits small transactions and never holds the write lock long
//! against the workers. Times are compared as instants (`strftime('%s')`
//! reads the stored offset), so a changed `timezone` does not shift them.
//! Never touched: `record_state` (dedupe), `file` and `batch` rows (the
//! daily report and trace), the exchange log.

use rusqlite::{Connection, params};

/// Deletes the bodies of up to `limit` batches that are delivered (or
/// split, whose halves carry the records) since before `before` (Unix
/// seconds). Returns (bodies, their bytes).
pub fn prune_bodies(
    conn: &Connection,
    before: i64,
    limit: usize,
) -> rusqlite::Result<(usize, i64)> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.seq, b.bytes FROM batch_body bb JOIN batch b ON b.seq = bb.seq
         WHERE b.state IN ('delivered', 'split')
           AND b.seq <= (SELECT seq FROM record_merge)
           AND CAST(strftime('%s', COALESCE(b.delivered_at, b.sealed_at)) AS INTEGER) < ?1
         LIMIT ?2",
    )?;
    let victims: Vec<(i64, i64)> = stmt
        .query_map(params![before, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut del = conn.prepare_cached("DELETE FROM batch_body WHERE seq = ?1")?;
    let mut bytes = 0;
    for (seq, b) in &victims {
        del.execute([seq])?;
        bytes += b;
    }
    Ok((victims.len(), bytes))
}

/// Deletes the per-record rows (`batch_record`, `remote_rejection`) of up
/// to `limit` batches delivered or split before `before`, merged into
/// `record_state` (`state::recent`). Returns (batches,
/// rows).
pub fn prune_batch_records(
    conn: &Connection,
    before: i64,
    limit: usize,
) -> rusqlite::Result<(usize, usize)> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.batch_id FROM batch b
         WHERE b.state IN ('delivered', 'split')
           AND CAST(strftime('%s', COALESCE(b.delivered_at, b.sealed_at)) AS INTEGER) < ?1
           AND (EXISTS (SELECT 1 FROM batch_record r WHERE r.batch_id = b.batch_id)
             OR EXISTS (SELECT 1 FROM remote_rejection r WHERE r.batch_id = b.batch_id))
         LIMIT ?2",
    )?;
    let ids: Vec<String> = stmt
        .query_map(params![before, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rows = 0;
    for id in &ids {
        rows += conn
            .prepare_cached("DELETE FROM batch_record WHERE batch_id = ?1")?
            .execute([id])?;
        rows += conn
            .prepare_cached("DELETE FROM remote_rejection WHERE batch_id = ?1")?
            .execute([id])?;
    }
    Ok((ids.len(), rows))
}

/// Deletes the validation verdicts (`rejection` rows) of up to `limit`
/// files finished before `before`. Returns (files, rows).
pub fn prune_rejections(
    conn: &Connection,
    before: i64,
    limit: usize,
) -> rusqlite::Result<(usize, usize)> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.id FROM file f
         WHERE f.finished_at IS NOT NULL
           AND CAST(strftime('%s', f.finished_at) AS INTEGER) < ?1
           AND EXISTS (SELECT 1 FROM rejection r WHERE r.file_id = f.id)
         LIMIT ?2",
    )?;
    let ids: Vec<i64> = stmt
        .query_map(params![before, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rows = 0;
    for id in &ids {
        rows += conn
            .prepare_cached("DELETE FROM rejection WHERE file_id = ?1")?
            .execute([id])?;
    }
    Ok((ids.len(), rows))
}

/// Gives free pages back to the file system when the database is in
/// `auto_vacuum = INCREMENTAL` mode (every database since schema v3).
/// Returns (pages given back, whether the mode is incremental).
pub fn give_back_space(conn: &Connection) -> rusqlite::Result<(i64, bool)> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != 2 {
        return Ok((0, false));
    }
    let before: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    // The pragma steps once per page freed; run it to completion.
    let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    let after: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    Ok((before - after, true))
}

/// The database's size in bytes (pages × page size; the WAL aside).
pub fn db_bytes(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )
}

/// Rows retention may delete, still held: (batch bodies, batch records),
/// for tests that check what a pass left.
#[cfg(test)]
pub fn held(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT (SELECT COUNT(*) FROM batch_body), (SELECT COUNT(*) FROM batch_record)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Moves the WAL into the database file and empties it, so that the
/// file's size on disk shows what a pass gave back (tests only).
#[cfg(test)]
pub fn checkpoint_wal(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
}
