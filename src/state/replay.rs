//! The queries of `fepd replay` (补传): which delivered batches a request
//! names, and whether their bodies are still kept.

use rusqlite::{Connection, params};

use super::batches::{BatchRow, COLS, row};
use crate::outbox::BatchState;

/// The batches of `dataset` delivered from `since` up to (not including)
/// `until` (Unix seconds; delivery times are compared as instants), in
/// the route's order (seal order).
pub fn delivered_between(
    conn: &Connection,
    dataset: &str,
    since: i64,
    until: i64,
) -> rusqlite::Result<Vec<BatchRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLS} FROM batch
         WHERE dataset = ?1 AND state = ?2
           AND CAST(strftime('%s', delivered_at) AS INTEGER) >= ?3
           AND CAST(strftime('%s', delivered_at) AS INTEGER) < ?4
         ORDER BY sort_key"
    ))?;
    let rows = stmt.query_map(params![dataset, BatchState::Delivered, since, until], row)?;
    rows.collect()
}

/// The delivered batches sealed from the files dropped as `name` (of
/// `dataset` when given), in the route's order (seal order).
pub fn delivered_of_file(
    conn: &Connection,
    name: &str,
    dataset: Option<&str>,
) -> rusqlite::Result<Vec<BatchRow>> {
    let cols = COLS
        .split(',')
        .map(|c| format!("b.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT {cols} FROM batch b JOIN file f ON f.id = b.file_id
         WHERE f.name = ?1 AND (?2 IS NULL OR b.dataset = ?2) AND b.state = ?3
         ORDER BY b.sort_key"
    ))?;
    let rows = stmt.query_map(params![name, dataset, BatchState::Delivered], row)?;
    rows.collect()
}

/// The halves a split batch was delivered as (recursively), in order.
pub fn halves_of(conn: &Connection, batch_id: &str) -> rusqlite::Result<Vec<BatchRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLS} FROM batch WHERE parent_id = ?1 ORDER BY sort_key"
    ))?;
    let direct = stmt
        .query_map([batch_id], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for b in direct {
        if b.state == BatchState::Split {
            out.extend(halves_of(conn, &b.batch_id)?);
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

/// Whether the body of the batch with `seq` is still kept (retention
/// deletes those of delivered batches after `[retention] batch_bodies`).
pub fn has_body(conn: &Connection, seq: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM batch_body WHERE seq = ?1)",
        [seq],
        |r| r.get(0),
    )
}

/// The earliest delivery time of a `dataset` batch whose body is still
/// kept, if any: where a replay can start.
pub fn first_kept_delivery(conn: &Connection, dataset: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT b.delivered_at FROM batch b JOIN batch_body bb ON bb.seq = b.seq
         WHERE b.dataset = ?1 AND b.state = ?2
         ORDER BY CAST(strftime('%s', b.delivered_at) AS INTEGER) LIMIT 1",
        params![dataset, BatchState::Delivered],
        |r| r.get(0),
    )
    .or_else(|e| match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        e => Err(e),
    })
}

/// Whether batch `batch_id` is itself a replay: its `batch_replayed`
/// exchange-log entry, or (once the log before it was pruned) the
/// `replayOf` member of its body.
pub fn is_replay(conn: &Connection, batch_id: &str) -> rusqlite::Result<bool> {
    let logged: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM exchange_log WHERE event = 'batch_replayed' AND batch = ?1)",
        [batch_id],
        |r| r.get(0),
    )?;
    if logged {
        return Ok(true);
    }
    let body = super::batches::body(conn, batch_id)?;
    Ok(body.is_some_and(|b| {
        serde_json::from_slice::<serde_json::Value>(&b).is_ok_and(|v| v.get("replayOf").is_some())
    }))
}
