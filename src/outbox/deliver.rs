//! Delivery: the one path that records an accepted batch, for both
//! delivery modes (a 200 answer in push mode, an `.ack` file in pull mode;
//! docs/protocol.md §3 and §5).

use std::path::Path;

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};
use serde::Deserialize;

use super::BatchState;
use crate::state::batches::{self, BatchRow};
use crate::state::log::{self, LogEntry};
use crate::validate::Catalog;

/// A record the library refused inside an accepted batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct RemoteRejected {
    pub index: i64,
    #[serde(default)]
    pub key: Option<String>,
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// What the library said when it accepted a batch (a 200 answer in push
/// mode, an `.ack` file in pull mode).
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub receipt_id: &'a str,
    pub accepted: Option<i64>,
    pub rejected: &'a [RemoteRejected],
    pub duplicate: bool,
    /// `"http"` or `"outbox"`, for the exchange log.
    pub via: &'static str,
    /// Send attempts so far, where known.
    pub attempts: Option<i64>,
    /// Whether a batch the operator parked is recorded as delivered: true
    /// for a collector's `.ack` (it took the batch file before the park;
    /// the library holds the records, so the receipt is the truth).
    pub accept_parked: bool,
}

/// The states a receipt moves to `delivered`: pending, and handed off (in
/// cluster mode the node that pushed the batch sends the library's answer
/// back to the batch's origin, docs/cluster.md "Answers").
fn accepts(s: BatchState) -> bool {
    s.is_pending() || s == BatchState::HandedOff
}

/// Pending or handed off (or parked, when `d.accept_parked`) → `delivered`, inside the
/// caller's transaction: the row with the receipt, the records the library
/// refused (kept in state with its code and message, never resent) and the
/// exchange-log entries. Returns false, writing nothing, when the batch
/// was no longer pending (delivered before, split, or parked unless
/// `accept_parked`). A receipt whose counts do not add up to the batch
/// (accepted + refused ≠ records) is recorded as it is, with an
/// `ack_discrepancy` entry and a warning: the library's word is not
/// silently taken for the whole batch.
pub fn deliver(
    tx: &Connection,
    tz: FixedOffset,
    b: &BatchRow,
    d: &Delivery<'_>,
) -> rusqlite::Result<bool> {
    let id = b.batch_id.as_str();
    let was_parked = b.state == BatchState::Parked;
    if !(accepts(b.state) || (was_parked && d.accept_parked)) {
        return Ok(false);
    }
    let now = crate::state::now_text(tz);
    let accepted = d.accepted.unwrap_or(b.count - d.rejected.len() as i64);
    if !batches::mark_delivered(
        tx,
        id,
        d.receipt_id,
        accepted,
        d.rejected.len() as i64,
        &now,
        d.accept_parked,
    )? {
        return Ok(false);
    }
    for r in d.rejected {
        let key = match &r.key {
            Some(k) => k.clone(),
            None => batches::record_key(tx, id, r.index)?.unwrap_or_default(),
        };
        batches::insert_remote_rejection(tx, id, r.index, &key, &r.code, &r.message)?;
    }
    log::append(
        tx,
        tz,
        LogEntry::BatchDelivered {
            dataset: &b.dataset,
            batch: id,
            records: b.count,
            accepted,
            rejected: d.rejected.len(),
            receipt_id: d.receipt_id,
            duplicate: d.duplicate,
            via: d.via,
            attempts: d.attempts,
            was_parked: was_parked.then_some(b.last_error.as_deref()),
        },
    )?;
    if was_parked {
        tracing::warn!(dataset = %b.dataset, batch = id, receipt = %d.receipt_id, "the collector acknowledged a batch that was parked: recorded as delivered with its receipt (the library holds it)");
    }
    let accounted = accepted + d.rejected.len() as i64;
    if accounted != b.count {
        log::append(
            tx,
            tz,
            LogEntry::AckDiscrepancy {
                dataset: &b.dataset,
                batch: id,
                records: b.count,
                accepted,
                rejected: d.rejected.len(),
                unaccounted: b.count - accounted,
                receipt_id: d.receipt_id,
                via: d.via,
            },
        )?;
        tracing::warn!(dataset = %b.dataset, batch = id, records = b.count, accepted, rejected = d.rejected.len(), receipt = %d.receipt_id, "ALERT: the library's receipt does not account for the batch (accepted + refused ≠ records); recorded as a discrepancy, check with the library");
    }
    if !d.rejected.is_empty() {
        log::append(
            tx,
            tz,
            LogEntry::RecordsLibraryRejected {
                dataset: &b.dataset,
                batch: id,
                codes: d.rejected.iter().map(|r| r.code.as_str()).collect(),
                file_id: b.file_id,
            },
        )?;
        tracing::warn!(dataset = %b.dataset, batch = id, records = d.rejected.len(), "library refused records; reported beside their file, not resent");
    }
    Ok(true)
}

/// [`deliver`] in a transaction of its own, the same way for both delivery
/// modes; once it is committed the refusals go back to their source file
/// as a masked report beside it (`report::library`; `catalog` gives the
/// masking). Returns false when the batch was no longer pending, and then
/// changes nothing.
pub fn record_delivery(
    conn: &mut Connection,
    tz: FixedOffset,
    spool: &Path,
    catalog: &Catalog,
    b: &BatchRow,
    d: &Delivery<'_>,
) -> rusqlite::Result<bool> {
    if !(accepts(b.state) || (b.state == BatchState::Parked && d.accept_parked)) {
        return Ok(false);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !deliver(&tx, tz, b, d)? {
        return Ok(false);
    }
    tx.commit()?;
    let id = b.batch_id.as_str();
    if !d.rejected.is_empty()
        && let Some(file_id) = b.file_id
    {
        let schema = catalog.get(&b.dataset);
        // The refusals are committed in state; a report that cannot be
        // written now is written again with the file's next refusal or
        // verdict, so delivery goes on.
        if let Err(e) =
            crate::report::library::write_for_file(conn, spool, schema.as_deref(), file_id)
        {
            tracing::error!(dataset = %b.dataset, batch = id, error = %e, "cannot write the library-refusal report");
        }
    }
    tracing::info!(dataset = %b.dataset, batch = id, receipt = %d.receipt_id, duplicate = d.duplicate, via = d.via, "batch delivered");
    Ok(true)
}
