//! The outbox: sealed batches, their bodies and their delivery state.
//!
//! A batch row is written once, with its exact body (in `batch_body`), in the transaction
//! that seals it, and its body never changes. Delivery only moves `state`
//! forward: `sealed` → (`exported` in pull mode) → `delivered`, or →
//! `parked` (dead letter, an operator may retry it) or → `split` (replaced
//! by two halves after a 413). Which moves are allowed, and what each
//! logs, is `crate::outbox`'s to decide: these are its queries, typed by
//! [`BatchState`].

use rusqlite::{Connection, OptionalExtension, params};

use crate::outbox::BatchState;

/// A batch as the outbox holds it (without its body).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchRow {
    pub seq: i64,
    pub sort_key: String,
    pub batch_id: String,
    pub dataset: String,
    pub route: String,
    pub file_id: Option<i64>,
    pub parent_id: Option<String>,
    pub count: i64,
    pub bytes: i64,
    pub digest: String,
    pub state: BatchState,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub receipt_id: Option<String>,
    pub lib_rejected: i64,
    pub sealed_at: String,
    pub delivered_at: Option<String>,
}

pub(super) const COLS: &str = "seq, sort_key, batch_id, dataset, route, file_id, parent_id, count, bytes, digest, state, \
                    attempts, next_attempt_ms, last_error, receipt_id, lib_rejected, sealed_at, delivered_at";

pub(super) fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BatchRow> {
    Ok(BatchRow {
        seq: r.get(0)?,
        sort_key: r.get(1)?,
        batch_id: r.get(2)?,
        dataset: r.get(3)?,
        route: r.get(4)?,
        file_id: r.get(5)?,
        parent_id: r.get(6)?,
        count: r.get(7)?,
        bytes: r.get(8)?,
        digest: r.get(9)?,
        state: r.get(10)?,
        attempts: r.get(11)?,
        next_attempt_ms: r.get(12)?,
        last_error: r.get(13)?,
        receipt_id: r.get(14)?,
        lib_rejected: r.get(15)?,
        sealed_at: r.get(16)?,
        delivered_at: r.get(17)?,
    })
}

/// A batch ready to be written to the outbox table.
pub struct NewBatch<'a> {
    /// Delivery order within the route; `None` = after everything sealed
    /// so far (the zero-padded `seq`).
    pub sort_key: Option<&'a str>,
    pub batch_id: &'a str,
    pub dataset: &'a str,
    pub route: &'a str,
    pub file_id: Option<i64>,
    pub parent_id: Option<&'a str>,
    pub count: usize,
    pub digest: &'a str,
    pub body: &'a [u8],
    pub sealed_at: &'a str,
}

/// One record's line in `batch_record`.
pub struct BatchRecord<'a> {
    pub key: &'a str,
    pub hash: &'a str,
    pub op: &'a str,
}

/// Inserts the batch, its body and `records` (places only: split halves
/// and replays, `sets_last` 0). Returns its `seq`.
pub fn insert<'r>(
    conn: &Connection,
    b: &NewBatch<'_>,
    records: impl IntoIterator<Item = BatchRecord<'r>>,
) -> rusqlite::Result<i64> {
    // The default sort key is the zero-padded `seq`, so `seq` is chosen
    // here (max + 1, as SQLite itself would) and both go in with the row.
    let mut stmt = conn.prepare_cached(
        "WITH next(seq) AS (SELECT COALESCE(MAX(seq), 0) + 1 FROM batch)
         INSERT INTO batch (seq, sort_key, batch_id, dataset, route, file_id, parent_id, count, bytes, digest, state, sealed_at)
         SELECT seq, COALESCE(?10, printf('%020d', seq)), ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'sealed', ?9 FROM next",
    )?;
    stmt.execute(params![
        b.batch_id,
        b.dataset,
        b.route,
        b.file_id,
        b.parent_id,
        b.count as i64,
        b.body.len() as i64,
        b.digest,
        b.sealed_at,
        b.sort_key
    ])?;
    let seq = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO batch_body (seq, body) VALUES (?1, ?2)")?
        .execute(params![seq, super::packed::pack(b.body)])?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO batch_record (batch_id, idx, key, hash, op) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (i, r) in records.into_iter().enumerate() {
        stmt.execute(params![b.batch_id, i as i64, r.key, r.hash, r.op])?;
    }
    Ok(seq)
}

/// The row of a record sealed at `idx` of `batch_id`: the key's new last
/// sealed version (`sets_last`), with its version order (`state::recent`).
pub fn insert_sealed_record(
    conn: &Connection,
    batch_id: &str,
    idx: usize,
    r: &BatchRecord<'_>,
    version: Option<i64>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO batch_record (batch_id, idx, key, hash, op, version, sets_last)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
    )?
    .execute(params![batch_id, idx as i64, r.key, r.hash, r.op, version])?;
    Ok(())
}

pub fn get(conn: &Connection, batch_id: &str) -> rusqlite::Result<Option<BatchRow>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM batch WHERE batch_id = ?1"),
        [batch_id],
        row,
    )
    .optional()
}

/// The wire body of `batch_id`, as sealed (`packed`).
pub fn body(conn: &Connection, batch_id: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached(
        "SELECT bb.body FROM batch b JOIN batch_body bb ON bb.seq = b.seq WHERE b.batch_id = ?1",
    )?
    .query_row([batch_id], |r| r.get(0))
    .optional()?
    .map(super::packed::unpack)
    .transpose()
}

/// Batches in `state`, oldest first, optionally for one dataset.
pub fn list(
    conn: &Connection,
    state: Option<BatchState>,
    dataset: Option<&str>,
    limit: i64,
) -> rusqlite::Result<Vec<BatchRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLS} FROM batch WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR dataset = ?2)
         ORDER BY sort_key LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![state, dataset, limit], row)?;
    rows.collect()
}

/// Moves a batch from `from` to `to`; false, changing nothing, if it was
/// not in `from`.
pub fn move_state(
    conn: &Connection,
    batch_id: &str,
    from: BatchState,
    to: BatchState,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("UPDATE batch SET state = ?3 WHERE batch_id = ?1 AND state = ?2")?
        .execute(params![batch_id, from, to])?;
    Ok(n == 1)
}

/// Marks a pending or handed-off batch delivered (`parked` too when
/// `from_parked`: the collector took a batch the operator had parked);
/// false if it was in none of those states.
pub fn mark_delivered(
    conn: &Connection,
    batch_id: &str,
    receipt_id: &str,
    accepted: i64,
    lib_rejected: i64,
    delivered_at: &str,
    from_parked: bool,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE batch SET state = 'delivered', receipt_id = ?2, accepted = ?3, lib_rejected = ?4,
         delivered_at = ?5, last_error = NULL
         WHERE batch_id = ?1
           AND (state IN ('sealed', 'exported', 'handed_off') OR (?6 AND state = 'parked'))",
        params![
            batch_id,
            receipt_id,
            accepted,
            lib_rejected,
            delivered_at,
            from_parked
        ],
    )?;
    Ok(n == 1)
}

/// Delivered batches of `dataset` whose acknowledgement accounted for a
/// different number of records than the batch holds (accepted + refused
/// ≠ records): shown by `fepd status` as discrepancies.
pub fn ack_discrepancies(conn: &Connection, dataset: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM batch WHERE dataset = ?1 AND state = 'delivered'
         AND accepted IS NOT NULL AND accepted + lib_rejected != count",
        [dataset],
        |r| r.get(0),
    )
}

/// Parks a pending batch with `reason` (and a handed-off one when
/// `from_handed_off`: the library's answer in cluster mode); false if it
/// was in none of those states.
pub fn park(
    conn: &Connection,
    batch_id: &str,
    reason: &str,
    from_handed_off: bool,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE batch SET state = 'parked', last_error = ?2
         WHERE batch_id = ?1
           AND (state IN ('sealed', 'exported') OR (?3 AND state = 'handed_off'))",
        params![batch_id, reason, from_handed_off],
    )?;
    Ok(n == 1)
}

/// How many times batch `batch_id` was handed off to the cluster's stream.
pub fn handoffs(conn: &Connection, batch_id: &str) -> rusqlite::Result<i64> {
    Ok(conn
        .prepare_cached("SELECT times FROM batch_handoff WHERE batch_id = ?1")?
        .query_row([batch_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Counts one more hand-off of batch `batch_id`.
pub fn count_handoff(conn: &Connection, batch_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO batch_handoff (batch_id, times) VALUES (?1, 1)
         ON CONFLICT (batch_id) DO UPDATE SET times = times + 1",
    )?
    .execute([batch_id])?;
    Ok(())
}

/// Queues a parked batch for resending (operator retry): back to `sealed`
/// with a fresh attempt count, in its original place in the route's order.
/// False if the batch is not parked.
pub fn requeue_parked(conn: &Connection, batch_id: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE batch SET state = 'sealed', attempts = 0, next_attempt_ms = 0 WHERE batch_id = ?1 AND state = 'parked'",
        [batch_id],
    )?;
    Ok(n == 1)
}

/// Takes every `exported` batch back to `sealed` (the sink switched from
/// pull to push), in its original place in its route's order, with a fresh
/// attempt count. Returns how many per dataset.
pub fn requeue_exported(conn: &Connection) -> rusqlite::Result<Vec<(String, usize)>> {
    let mut stmt = conn.prepare(
        "SELECT dataset, COUNT(*) FROM batch WHERE state = 'exported' GROUP BY dataset ORDER BY dataset",
    )?;
    let counts = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    conn.execute(
        "UPDATE batch SET state = 'sealed', attempts = 0, next_attempt_ms = 0 WHERE state = 'exported'",
        [],
    )?;
    Ok(counts)
}

/// The batches an operator's bulk action applies to: in one of `states`,
/// of `dataset` if given, in delivery order.
pub fn select(
    conn: &Connection,
    states: &[BatchState],
    dataset: Option<&str>,
) -> rusqlite::Result<Vec<BatchRow>> {
    let mut out = Vec::new();
    for s in states {
        out.extend(list(conn, Some(*s), dataset, i64::MAX)?);
    }
    out.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    Ok(out)
}

/// Records a failed attempt and when to try again; false, changing
/// nothing, for a batch delivered or split.
pub fn record_failure(
    conn: &Connection,
    batch_id: &str,
    error: &str,
    next_attempt_ms: i64,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE batch SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3
         WHERE batch_id = ?1 AND state IN ('sealed', 'exported', 'parked')",
        params![batch_id, error, next_attempt_ms],
    )?;
    Ok(n == 1)
}

/// The key of record `idx` of a batch.
pub fn record_key(conn: &Connection, batch_id: &str, idx: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT key FROM batch_record WHERE batch_id = ?1 AND idx = ?2",
        params![batch_id, idx],
        |r| r.get(0),
    )
    .optional()
}

/// The key and content hash (`canon::record_hash` of its `data`, as the
/// validator computed it) of record `idx` of a batch: how the console
/// finds a record the library refused in its original file. `None` once
/// retention deleted the batch's per-record rows.
pub fn record_line(
    conn: &Connection,
    batch_id: &str,
    idx: i64,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.query_row(
        "SELECT key, hash FROM batch_record WHERE batch_id = ?1 AND idx = ?2",
        params![batch_id, idx],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

pub fn insert_remote_rejection(
    conn: &Connection,
    batch_id: &str,
    idx: i64,
    key: &str,
    code: &str,
    message: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO remote_rejection (batch_id, idx, key, code, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![batch_id, idx, key, code, message],
    )?;
    Ok(())
}

/// Backlog per dataset: batches and records not yet delivered nor parked.
pub fn backlog(conn: &Connection, dataset: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM batch WHERE dataset = ?1 AND state IN ('sealed', 'exported')",
        [dataset],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Total backlog, all datasets: (batches, records, bytes).
pub fn total_backlog(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM batch WHERE state IN ('sealed', 'exported')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The oldest pending (`sealed`) batch of a route, in delivery order.
pub fn next_for_route(conn: &Connection, route: &str) -> rusqlite::Result<Option<BatchRow>> {
    conn.query_row(
        &format!(
            "SELECT {COLS} FROM batch WHERE state = 'sealed' AND route = ?1 ORDER BY sort_key LIMIT 1"
        ),
        [route],
        row,
    )
    .optional()
}

/// A route's oldest `limit` pending batches, in delivery order (the push
/// scheduler's window, `forward::push::order`).
pub fn pending_window(
    conn: &Connection,
    route: &str,
    limit: usize,
) -> rusqlite::Result<Vec<BatchRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM batch WHERE state = 'sealed' AND route = ?1 ORDER BY sort_key LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![route, limit as i64], row)?;
    rows.collect()
}

/// The record keys a batch carries (its `batch_record` rows), distinct.
pub fn keys(conn: &Connection, batch_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT key FROM batch_record WHERE batch_id = ?1")?;
    let rows = stmt.query_map([batch_id], |r| r.get(0))?;
    rows.collect()
}

/// Routes with pending batches.
pub fn routes_with_pending(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT route FROM batch WHERE state = 'sealed'")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// The record count a route accepts, if a 413 taught us one.
pub fn route_limit(conn: &Connection, route: &str) -> rusqlite::Result<Option<usize>> {
    conn.query_row(
        "SELECT max_records FROM route_limit WHERE route = ?1",
        [route],
        |r| r.get::<_, i64>(0).map(|n| n as usize),
    )
    .optional()
}

pub fn lower_route_limit(
    conn: &Connection,
    route: &str,
    max_records: usize,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO route_limit (route, max_records) VALUES (?1, ?2)
         ON CONFLICT(route) DO UPDATE SET max_records = MIN(max_records, excluded.max_records)",
        params![route, max_records as i64],
    )?;
    Ok(())
}

/// A record the library refused, with the batch it was sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub batch_id: String,
    pub idx: i64,
    pub key: String,
    pub code: String,
    pub message: String,
}

/// Every record of a file's batches the library refused, in seal order.
pub fn refusals_of_file(conn: &Connection, file_id: i64) -> rusqlite::Result<Vec<Refusal>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rr.batch_id, rr.idx, rr.key, rr.code, rr.message
         FROM remote_rejection rr JOIN batch b ON b.batch_id = rr.batch_id
         WHERE b.file_id = ?1 ORDER BY b.sort_key, rr.idx",
    )?;
    stmt.query_map([file_id], |r| {
        Ok(Refusal {
            batch_id: r.get(0)?,
            idx: r.get(1)?,
            key: r.get(2)?,
            code: r.get(3)?,
            message: r.get(4)?,
        })
    })?
    .collect()
}

/// The oldest `limit` pending (`sealed`) batches of every route, in seal
/// order (cluster mode's hand-off, docs/cluster.md).
pub fn sealed_in_order(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<BatchRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM batch WHERE state = 'sealed' ORDER BY sort_key LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], row)?;
    rows.collect()
}

/// How many batches were sealed from file `file_id` (halves of a split not
/// counted): the position of its next batch (cluster mode's batch ids).
pub fn sealed_of_file(conn: &Connection, file_id: i64) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM batch WHERE file_id = ?1 AND parent_id IS NULL",
        [file_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}
