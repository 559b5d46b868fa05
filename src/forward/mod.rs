//! Forward: deliver sealed batches and record what the library said.
//!
//! Two sinks share the outbox table: [`outbox`] (pull mode, docs/protocol.md §5:
//! batch files the library's collector picks up and acknowledges with
//! `.ack`/`.nack` files) and, in push mode, the HTTP forwarder. Either way a
//! batch's body is sent exactly as sealed, and delivery state only moves
//! forward in a transaction with its exchange-log entry. Only `forward/`
//! talks to the library.

pub mod http;
pub mod outbox;
pub mod switch;

#[cfg(test)]
mod model_tests;

use std::path::Path;

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};
use serde_json::json;

use crate::state::batches::{self, BatchRow};
use crate::state::log::{self, Entry, Event};
use crate::validate::Catalog;
use outbox::{PassError, RemoteRejected};

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

/// Records a delivery, the same way for both sinks: the batch is marked
/// delivered with the records the library refused (kept in state, with the
/// library's code and message, never resent) and the exchange-log entries,
/// in one transaction. Then the refusals go back to their source file as a
/// masked report beside it (`report::library`; `catalog` gives the
/// masking). Returns false when the batch was no longer pending (delivered
/// before, or parked unless `accept_parked`), and then changes nothing. A
/// receipt whose counts do not add up to the batch (accepted + refused ≠
/// records) is recorded as it is, with an `ack_discrepancy` entry and a
/// warning: the library's word is not silently taken for the whole batch.
pub fn record_delivery(
    conn: &mut Connection,
    tz: FixedOffset,
    spool: &Path,
    catalog: &Catalog,
    b: &BatchRow,
    d: &Delivery<'_>,
) -> Result<bool, PassError> {
    let id = b.batch_id.as_str();
    let was_parked = b.state == "parked";
    if !(matches!(b.state.as_str(), "sealed" | "exported") || (was_parked && d.accept_parked)) {
        return Ok(false);
    }
    let now = crate::state::now_text(tz);
    let accepted = d.accepted.unwrap_or(b.count - d.rejected.len() as i64);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !batches::mark_delivered(
        &tx,
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
            None => batches::record_key(&tx, id, r.index)?.unwrap_or_default(),
        };
        batches::insert_remote_rejection(&tx, id, r.index, &key, &r.code, &r.message)?;
    }
    log::append(
        &tx,
        tz,
        Event::BatchDelivered,
        Entry {
            dataset: Some(&b.dataset),
            batch: Some(id),
            counts: Some(
                json!({"records": b.count, "accepted": accepted, "rejected": d.rejected.len()}),
            ),
            details: Some(if was_parked {
                json!({
                    "receiptId": d.receipt_id, "duplicate": d.duplicate, "via": d.via,
                    "attempts": d.attempts, "wasParked": b.last_error,
                })
            } else {
                json!({
                    "receiptId": d.receipt_id, "duplicate": d.duplicate, "via": d.via,
                    "attempts": d.attempts,
                })
            }),
            ..Default::default()
        },
    )?;
    if was_parked {
        tracing::warn!(dataset = %b.dataset, batch = id, receipt = %d.receipt_id, "the collector acknowledged a batch that was parked: recorded as delivered with its receipt (the library holds it)");
    }
    let accounted = accepted + d.rejected.len() as i64;
    if accounted != b.count {
        log::append(
            &tx,
            tz,
            Event::AckDiscrepancy,
            Entry {
                dataset: Some(&b.dataset),
                batch: Some(id),
                counts: Some(json!({
                    "records": b.count, "accepted": accepted, "rejected": d.rejected.len(),
                    "unaccounted": b.count - accounted,
                })),
                details: Some(json!({"receiptId": d.receipt_id, "via": d.via})),
                ..Default::default()
            },
        )?;
        tracing::warn!(dataset = %b.dataset, batch = id, records = b.count, accepted, rejected = d.rejected.len(), receipt = %d.receipt_id, "ALERT: the library's receipt does not account for the batch (accepted + refused ≠ records); recorded as a discrepancy, check with the library");
    }
    if !d.rejected.is_empty() {
        log::append(
            &tx,
            tz,
            Event::RecordsLibraryRejected,
            Entry {
                dataset: Some(&b.dataset),
                batch: Some(id),
                counts: Some(json!({"records": d.rejected.len()})),
                details: Some(json!({
                    "codes": d.rejected.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(),
                    "fileId": b.file_id,
                })),
                ..Default::default()
            },
        )?;
        tracing::warn!(dataset = %b.dataset, batch = id, records = d.rejected.len(), "library refused records; reported beside their file, not resent");
    }
    tx.commit()?;
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

/// Parks a pending batch (dead letter) with its reason and the
/// exchange-log entry, inside `tx`. Returns false, changing nothing, when
/// the batch was no longer pending.
pub fn park_logged(
    tx: &Connection,
    tz: FixedOffset,
    b: &BatchRow,
    reason: &str,
    details: serde_json::Value,
) -> rusqlite::Result<bool> {
    if !batches::park(tx, &b.batch_id, reason)? {
        return Ok(false);
    }
    log::append(
        tx,
        tz,
        Event::BatchParked,
        Entry {
            dataset: Some(&b.dataset),
            batch: Some(&b.batch_id),
            counts: Some(json!({"records": b.count})),
            details: Some(details),
            ..Default::default()
        },
    )?;
    Ok(true)
}
