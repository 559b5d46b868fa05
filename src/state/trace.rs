//! Read-only queries behind `fepd audit trace KEY` (`audit::trace`): where
//! one business key appears — rejections, batch records, its last sealed
//! version, library refusals — and the file and batch rows and exchange-log
//! entries around it.

use rusqlite::{Connection, OptionalExtension, params};

use super::files::FileState;
use super::log::{ENTRY_COLS, StoredEntry};

/// A validation verdict on the key (an error, or a warning).
#[derive(Debug, Clone)]
pub struct KeyRejection {
    pub file_id: i64,
    pub ordinal: i64,
    pub position: String,
    pub field: String,
    pub title: String,
    pub rule: String,
    pub message: String,
    pub warning: bool,
}

/// The verdicts on `key` (in `dataset` only, if given), by file, then
/// record.
pub fn rejections_of_key(
    conn: &Connection,
    key: &str,
    dataset: Option<&str>,
) -> rusqlite::Result<Vec<KeyRejection>> {
    let mut stmt = conn.prepare(
        "SELECT r.file_id, r.ordinal, r.position, r.field, r.title, r.rule, r.message, r.warning
         FROM rejection r JOIN file f ON f.id = r.file_id
         WHERE r.key = ?1 AND (?2 IS NULL OR f.dataset = ?2) ORDER BY r.file_id, r.ordinal",
    )?;
    stmt.query_map(params![key, dataset], |r| {
        Ok(KeyRejection {
            file_id: r.get(0)?,
            ordinal: r.get(1)?,
            position: r.get(2)?,
            field: r.get(3)?,
            title: r.get(4)?,
            rule: r.get(5)?,
            message: r.get(6)?,
            warning: r.get::<_, i64>(7)? != 0,
        })
    })?
    .collect()
}

/// A batch that holds the key, as the trace shows it.
#[derive(Debug, Clone)]
pub struct TracedBatch {
    pub dataset: String,
    pub file_id: Option<i64>,
    pub parent_id: Option<String>,
    pub sealed_at: String,
    pub state: String,
    pub receipt_id: Option<String>,
    pub delivered_at: Option<String>,
    pub last_error: Option<String>,
}

/// The key's place in one batch.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub batch_id: String,
    /// Its index in the batch; `None` when only the key's last sealed
    /// version is known (retention deleted its per-record rows).
    pub idx: Option<i64>,
    pub op: String,
    pub hash: String,
    pub batch: TracedBatch,
}

const BATCH_COLS: &str = "b.dataset, b.file_id, b.parent_id, b.sealed_at, b.state, b.receipt_id, b.delivered_at, b.last_error";

fn batch_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<TracedBatch> {
    Ok(TracedBatch {
        dataset: r.get(at)?,
        file_id: r.get(at + 1)?,
        parent_id: r.get(at + 2)?,
        sealed_at: r.get(at + 3)?,
        state: r.get(at + 4)?,
        receipt_id: r.get(at + 5)?,
        delivered_at: r.get(at + 6)?,
        last_error: r.get(at + 7)?,
    })
}

/// The datasets to look for a key in: `dataset`, or every dataset that
/// sealed a batch (a handful; each lookup then uses `record_state`'s key).
/// Read once per trace and passed to [`records_of_key`] and
/// [`last_sealed_of_key`].
pub fn datasets(conn: &Connection, dataset: Option<&str>) -> rusqlite::Result<Vec<String>> {
    if let Some(d) = dataset {
        return Ok(vec![d.to_string()]);
    }
    conn.prepare("SELECT DISTINCT dataset FROM batch")?
        .query_map([], |r| r.get(0))?
        .collect()
}

/// The batch records of `key`, in seal order, then by index: the places
/// its history (`record_state.history`) names whose rows retention kept.
pub fn records_of_key(
    conn: &Connection,
    key: &str,
    datasets: &[String],
) -> rusqlite::Result<Vec<KeyRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT b.seq, br.op, br.hash, {BATCH_COLS}
         FROM batch_record br JOIN batch b ON b.batch_id = br.batch_id
         WHERE br.batch_id = ?1 AND br.idx = ?2 AND br.key = ?3"
    ))?;
    let mut found = Vec::new();
    for ds in datasets {
        for (batch_id, idx) in super::records::history(conn, ds, key)? {
            let row = stmt
                .query_row(params![batch_id, idx, key], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        KeyRecord {
                            batch_id: batch_id.clone(),
                            idx: Some(idx),
                            op: r.get(1)?,
                            hash: r.get(2)?,
                            batch: batch_at(r, 3)?,
                        },
                    ))
                })
                .optional()?;
            found.extend(row);
        }
    }
    found.sort_by_key(|(seq, r)| (*seq, r.idx));
    Ok(found.into_iter().map(|(_, r)| r).collect())
}

/// The last sealed version of `key`, kept for dedupe whatever retention
/// deleted: its newest row sealed since the last merge (`state::recent`),
/// else its `record_state` row. Looked up by `(dataset, key)` for each
/// dataset with batches (a record's batch is of its dataset), so a trace
/// without `--dataset` reads a few index entries instead of every row.
pub fn last_sealed_of_key(
    conn: &Connection,
    key: &str,
    datasets: &[String],
) -> rusqlite::Result<Vec<KeyRecord>> {
    let mut tail = conn.prepare(&format!(
        "SELECT br.batch_id, br.op, br.hash, {BATCH_COLS}
         FROM batch_record br JOIN batch b ON b.batch_id = br.batch_id
         WHERE b.seq > (SELECT seq FROM record_merge) AND b.dataset = ?1
           AND br.key = ?2 AND br.sets_last = 1
         ORDER BY b.seq DESC, br.idx DESC LIMIT 1"
    ))?;
    let mut stmt = conn.prepare(&format!(
        "SELECT rs.batch_id, rs.op, rs.hash, {BATCH_COLS}
         FROM record_state rs JOIN batch b ON b.batch_id = rs.batch_id
         WHERE rs.dataset = ?1 AND rs.key = ?2"
    ))?;
    // (batch_id, op, hash, the batch): the row's last sealed version.
    let sealed = |r: &rusqlite::Row<'_>| {
        Ok(KeyRecord {
            batch_id: r.get(0)?,
            idx: None,
            op: r.get(1)?,
            hash: r.get(2)?,
            batch: batch_at(r, 3)?,
        })
    };
    let mut found = Vec::new();
    for ds in datasets {
        match tail.query_row(params![ds, key], sealed).optional()? {
            Some(newest) => found.push(newest),
            None => {
                for r in stmt.query_map(params![ds, key], sealed)? {
                    found.push(r?);
                }
            }
        }
    }
    Ok(found)
}

/// A file the key came in, as the trace shows it.
#[derive(Debug, Clone)]
pub struct TracedFile {
    pub dataset: String,
    pub name: String,
    pub claimed_at: String,
    pub finished_at: Option<String>,
    pub state: FileState,
    pub final_name: Option<String>,
}

pub fn file(conn: &Connection, id: i64) -> rusqlite::Result<TracedFile> {
    conn.query_row(
        "SELECT dataset, name, claimed_at, finished_at, state, final_name FROM file WHERE id = ?1",
        [id],
        |r| {
            Ok(TracedFile {
                dataset: r.get(0)?,
                name: r.get(1)?,
                claimed_at: r.get(2)?,
                finished_at: r.get(3)?,
                state: r.get(4)?,
                final_name: r.get(5)?,
            })
        },
    )
}

/// A record of the key that the library refused.
#[derive(Debug, Clone)]
pub struct KeyRefusal {
    pub batch_id: String,
    pub idx: i64,
    pub code: String,
    pub message: String,
    pub dataset: String,
    pub delivered_at: Option<String>,
    pub file_id: Option<i64>,
}

pub fn refusals_of_key(
    conn: &Connection,
    key: &str,
    dataset: Option<&str>,
) -> rusqlite::Result<Vec<KeyRefusal>> {
    let mut stmt = conn.prepare(
        "SELECT rr.batch_id, rr.idx, rr.code, rr.message, b.dataset, b.delivered_at, b.file_id
         FROM remote_rejection rr JOIN batch b ON b.batch_id = rr.batch_id
         WHERE rr.key = ?1 AND (?2 IS NULL OR b.dataset = ?2)",
    )?;
    stmt.query_map(params![key, dataset], |r| {
        Ok(KeyRefusal {
            batch_id: r.get(0)?,
            idx: r.get(1)?,
            code: r.get(2)?,
            message: r.get(3)?,
            dataset: r.get(4)?,
            delivered_at: r.get(5)?,
            file_id: r.get(6)?,
        })
    })?
    .collect()
}

/// The exchange-log entries naming the file `name`, in log order.
pub fn entries_of_file(conn: &Connection, name: &str) -> rusqlite::Result<Vec<StoredEntry>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENTRY_COLS} FROM exchange_log WHERE file = ?1 ORDER BY seq"
    ))?;
    stmt.query_map([name], StoredEntry::from_row)?.collect()
}

/// The exchange-log entries naming the batch `id`, in log order.
pub fn entries_of_batch(conn: &Connection, id: &str) -> rusqlite::Result<Vec<StoredEntry>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENTRY_COLS} FROM exchange_log WHERE batch = ?1 ORDER BY seq"
    ))?;
    stmt.query_map([id], StoredEntry::from_row)?.collect()
}
