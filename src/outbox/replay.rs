//! Replays (补传, docs/protocol.md §3 *Replays*): a delivered batch's
//! records re-sent in a new batch — a new `batchId`, the same records with
//! the same keys and hashes, marked `"replayOf": ["<batchId>"]`. The new
//! batch is born `sealed` at the end of its route's order and is delivered
//! like any other; the dedupe state (`record_state`) is left as it was,
//! since nothing new was sealed, and it belongs to no file (the file's
//! records were counted once, in the batches sealed from it).

use chrono::FixedOffset;
use rusqlite::Connection;
use serde_json::Value;

use crate::seal;
use crate::state;
use crate::state::batches::{self, BatchRecord, BatchRow, NewBatch};
use crate::state::log::{self, LogEntry};

/// → `sealed`: a new batch carrying again the records of the delivered
/// batch `original`, whose stored body is `body`, with its exchange-log
/// entry naming who asked and why. Returns the new batch's id, or `None`
/// (writing nothing) when `body` is not a batch body.
pub fn replay(
    tx: &Connection,
    tz: FixedOffset,
    original: &BatchRow,
    body: &[u8],
    by: &str,
    reason: &str,
) -> rusqlite::Result<Option<String>> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let Some(records) = v.get("records").and_then(Value::as_array) else {
        return Ok(None);
    };
    let recs: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (text("key"), text("hash"), text("op"))
        })
        .collect();
    let batch_id = seal::new_batch_id();
    let now = state::now_text(tz);
    let head = log::head(tx)?;
    v["batchId"] = Value::from(batch_id.clone());
    v["createdAt"] = Value::from(now.clone());
    v["auditHead"] = serde_json::json!({"seq": head.seq, "hash": head.hash});
    v["replayOf"] = serde_json::json!([original.batch_id]);
    let new_body = serde_json::to_vec(&v).expect("a parsed body re-serialises");
    batches::insert(
        tx,
        &NewBatch {
            sort_key: None,
            batch_id: &batch_id,
            dataset: &original.dataset,
            route: &original.route,
            // Not the file's: the daily reconciliation counts a file's
            // records once, in the batches sealed from it.
            file_id: None,
            parent_id: None,
            count: recs.len(),
            digest: &original.digest,
            body: &new_body,
            sealed_at: &now,
        },
        recs.iter()
            .map(|(key, hash, op)| BatchRecord { key, hash, op }),
    )?;
    log::append(
        tx,
        tz,
        LogEntry::BatchReplayed {
            dataset: &original.dataset,
            batch: &batch_id,
            replay_of: &original.batch_id,
            records: recs.len() as i64,
            by,
            reason,
        },
    )?;
    Ok(Some(batch_id))
}

/// Why a delivered batch's records cannot be sealed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreplayable {
    /// Retention deleted its stored body (`[retention] batch_bodies`).
    BodyGone,
    /// Its stored body is not a batch body.
    NotABody,
}

/// [`replay`] of `original` from its stored body, in a transaction of its
/// own: what `fepd replay` and the console's 补传 do for each batch.
pub fn replay_stored(
    conn: &mut Connection,
    tz: FixedOffset,
    original: &BatchRow,
    by: &str,
    reason: &str,
) -> rusqlite::Result<Result<String, Unreplayable>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some(body) = batches::body(&tx, &original.batch_id)? else {
        return Ok(Err(Unreplayable::BodyGone));
    };
    let Some(id) = replay(&tx, tz, original, &body, by, reason)? else {
        return Ok(Err(Unreplayable::NotABody));
    };
    tx.commit()?;
    Ok(Ok(id))
}
