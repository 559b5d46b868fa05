//! A library's answer to a push (docs/protocol.md §3, "Answers") and the
//! transition it means for the batch: deliver, park, split or fail.

use std::path::Path;
use std::time::Duration;

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};

use super::split::{Half, halves};
use super::{BatchState, Delivery, RemoteRejected, backoff};
use crate::state::batches::{self, BatchRecord, BatchRow, NewBatch};
use crate::state::log::{self, LogEntry, Parking};
use crate::validate::Catalog;

/// The delivery mode answers come from, for the exchange log.
const VIA: &str = "http";

/// What the library's answer means for the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 `000000`: delivered (possibly a duplicate of an earlier send).
    Delivered {
        receipt_id: String,
        accepted: Option<i64>,
        rejected: Vec<RemoteRejected>,
        duplicate: bool,
    },
    /// 400 / 409: permanent for this batch; park it with the reason.
    Park { reason: String },
    /// 413: split it.
    TooLarge,
    /// 429, 503, other 5xx, timeouts, connection errors: try again later,
    /// after `wait` if the library said how long.
    Retry {
        wait: Option<Duration>,
        reason: String,
    },
}

/// Applies `reply` to batch `b` (its row as the sender read it before
/// sending): delivered, parked, split or scheduled for retry, each in one
/// transaction with its log entries. An answer for a batch that is no
/// longer pending (the operator parked it while the request was in flight)
/// changes nothing but a failed attempt's count.
pub fn apply(
    conn: &mut Connection,
    tz: FixedOffset,
    spool: &Path,
    catalog: &Catalog,
    b: &BatchRow,
    reply: Reply,
) -> rusqlite::Result<()> {
    apply_via(conn, tz, spool, catalog, b, reply, VIA)
}

/// [`apply`] for an answer that came `via` another way than this node's
/// own push: `"cluster"`, the answer another node got for a batch this
/// node handed off (docs/cluster.md "Answers"), which moves it from
/// `handed_off`.
pub fn apply_via(
    conn: &mut Connection,
    tz: FixedOffset,
    spool: &Path,
    catalog: &Catalog,
    b: &BatchRow,
    reply: Reply,
    via: &'static str,
) -> rusqlite::Result<()> {
    let id = b.batch_id.as_str();
    match reply {
        Reply::Delivered {
            receipt_id,
            accepted,
            rejected,
            duplicate,
        } => {
            super::record_delivery(
                conn,
                tz,
                spool,
                catalog,
                b,
                &Delivery {
                    receipt_id: &receipt_id,
                    accepted,
                    rejected: &rejected,
                    duplicate,
                    via,
                    attempts: Some(b.attempts + 1),
                    accept_parked: false,
                },
            )?;
        }
        Reply::Park { reason } => {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            super::park(
                &tx,
                tz,
                b,
                Parking::Library {
                    reason: &reason,
                    via,
                },
            )?;
            tx.commit()?;
            tracing::error!(dataset = %b.dataset, batch = id, reason = %reason, "ALERT: batch parked; `fepd batches retry` resends it");
        }
        Reply::TooLarge => {
            let body = batches::body(conn, id)?.unwrap_or_default();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            match halves(id, &body) {
                None => {
                    let reason =
                        "HTTP 413 413001 for a single record: it cannot be split".to_string();
                    super::park(
                        &tx,
                        tz,
                        b,
                        Parking::Library {
                            reason: &reason,
                            via,
                        },
                    )?;
                }
                Some(two) => {
                    if !split(&tx, tz, b, &two)? {
                        tracing::warn!(dataset = %b.dataset, batch = id, "library answered 413 for a batch that is no longer pending; not split");
                    }
                }
            }
            tx.commit()?;
        }
        Reply::Retry { wait, reason } => {
            let wait =
                wait.unwrap_or_else(|| backoff::delay(b.attempts as u32, rand::random::<f64>()));
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let counted = super::fail(&tx, tz, b, &reason, wait, VIA)?;
            tx.commit()?;
            if counted {
                tracing::warn!(dataset = %b.dataset, batch = id, attempts = b.attempts + 1, retry_in_ms = wait.as_millis() as u64, reason = %reason, "send failed; will retry");
            }
        }
    }
    Ok(())
}

/// `sealed` (or `handed_off`) → `split` (a 413, docs/protocol.md §3): the halves `ID.1`,
/// `ID.2` are born `sealed` in the parent's place in the route's order,
/// later batches of the route are sealed no larger than the bigger half,
/// and one `batch_split` entry records it, inside `tx`. Only a batch that
/// is still pending is split: if the operator parked it while the request
/// was in flight, halves beside the parked parent would send its records
/// twice. False, writing nothing, then.
pub fn split(
    tx: &Connection,
    tz: FixedOffset,
    b: &BatchRow,
    halves: &[Half; 2],
) -> rusqlite::Result<bool> {
    let id = b.batch_id.as_str();
    // In cluster mode a handed-off batch is split on the library's 413,
    // which the node that pushed it sends back (docs/cluster.md
    // "Answers"); its halves are born sealed here and handed off anew.
    let from = match b.state {
        BatchState::HandedOff => BatchState::HandedOff,
        _ => BatchState::Sealed,
    };
    if !batches::move_state(tx, id, from, BatchState::Split)? {
        return Ok(false);
    }
    for (n, h) in halves.iter().enumerate() {
        let sort_key = format!("{}.{}", b.sort_key, n + 1);
        batches::insert(
            tx,
            &NewBatch {
                sort_key: Some(&sort_key),
                batch_id: &h.batch_id,
                dataset: &b.dataset,
                route: &b.route,
                file_id: b.file_id,
                parent_id: Some(id),
                count: h.count,
                digest: &h.digest,
                body: &h.body,
                sealed_at: &b.sealed_at,
            },
            h.records
                .iter()
                .map(|(k, hash, op)| BatchRecord { key: k, hash, op }),
        )?;
    }
    batches::lower_route_limit(tx, &b.route, halves[0].count)?;
    log::append(
        tx,
        tz,
        LogEntry::BatchSplit {
            dataset: &b.dataset,
            batch: id,
            records: b.count,
            first: (&halves[0].batch_id, halves[0].count),
            second: (&halves[1].batch_id, halves[1].count),
        },
    )?;
    tracing::warn!(dataset = %b.dataset, batch = id, "library answered 413: batch split in two; route batch size lowered to {}", halves[0].count);
    Ok(true)
}
