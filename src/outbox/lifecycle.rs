//! The transitions other than delivery and a library's answer: seal,
//! export, park, retry, fail and the requeue of exported batches. Each runs
//! inside the caller's transaction and writes its exchange-log entry with
//! the change it records.

use std::time::Duration;

use super::BatchState;
use crate::seal::{self, BatchHeader, Staged};
use crate::state;
use crate::state::batches::{self, BatchRecord, BatchRow, NewBatch};
use crate::state::log::{self, LogEntry, Parking};
use crate::state::recent::RecentKeys;
use chrono::FixedOffset;
use rusqlite::Connection;

/// What a batch being sealed belongs to.
pub struct Sealing<'a> {
    pub tz: FixedOffset,
    /// The sender's id, written in the body.
    pub sender: &'a str,
    pub dataset: &'a str,
    pub schema_version: &'a str,
    pub route: &'a str,
    /// The source file, for reports of the library's refusals.
    pub file_id: Option<i64>,
    /// The batch's id when the caller derived it (cluster mode,
    /// `seal::deterministic_batch_id`); `None`: a fresh ULID.
    pub batch_id: Option<String>,
}

/// → `sealed`: the batch is born with its final body (docs/protocol.md §3),
/// inside `tx`: dedupe state, batch row and body, exchange-log entry. The
/// body's `auditHead` is the log head before this batch's own entry.
/// Returns the batch's id.
/// Each record's row is the key's new last sealed version, noted in
/// `keys` (`state::recent`); its version order is its own, else that of
/// the key's version before it (`Staged::fallback_version` when dedupe
/// looked, or an earlier record of this chunk).
pub fn seal(
    tx: &Connection,
    s: &Sealing<'_>,
    keys: &mut RecentKeys,
    recs: &[Staged],
) -> rusqlite::Result<String> {
    let ds = s.dataset;
    let batch_id = s.batch_id.clone().unwrap_or_else(seal::new_batch_id);
    let now = state::now_text(s.tz);
    let head = log::head(tx)?;
    let (body, digest) = seal::build_body(
        &BatchHeader {
            batch_id: &batch_id,
            sender: s.sender,
            dataset: ds,
            schema_version: s.schema_version,
            created_at: &now,
            audit_head: &head,
        },
        recs,
    );
    let seq = batches::insert(
        tx,
        &NewBatch {
            sort_key: None,
            batch_id: &batch_id,
            dataset: ds,
            route: s.route,
            file_id: s.file_id,
            parent_id: None,
            count: recs.len(),
            digest: &digest,
            body: &body,
            sealed_at: &now,
        },
        [],
    )?;
    for (i, r) in recs.iter().enumerate() {
        let found = keys.find(tx, &r.key)?;
        let version = r
            .version
            .or_else(|| found.sealed().and_then(|s| s.version))
            .or(r.fallback_version);
        batches::insert_sealed_record(
            tx,
            &batch_id,
            i,
            &BatchRecord {
                key: &r.key,
                hash: &r.hash,
                op: r.op.as_str(),
            },
            version,
        )?;
        keys.note(&r.key, &found, seq, i);
    }
    log::append(
        tx,
        s.tz,
        LogEntry::BatchSealed {
            dataset: ds,
            batch: &batch_id,
            records: recs.len(),
            bytes: body.len(),
            digest: &digest,
            route: s.route,
            file_id: s.file_id,
        },
    )?;
    Ok(batch_id)
}

/// `sealed` → `exported` (pull mode, docs/protocol.md §5), once its file is
/// in the outbox folder. False, writing nothing, from any other state.
pub fn export(tx: &Connection, tz: FixedOffset, b: &BatchRow) -> rusqlite::Result<bool> {
    if !batches::move_state(tx, &b.batch_id, BatchState::Sealed, BatchState::Exported)? {
        return Ok(false);
    }
    log::append(
        tx,
        tz,
        LogEntry::BatchExported {
            dataset: &b.dataset,
            batch: &b.batch_id,
            records: b.count,
        },
    )?;
    Ok(true)
}

/// `sealed` → `handed_off` (cluster mode, docs/cluster.md): the batch's
/// body is in the cluster's replicated stream at `stream_seq`, as its
/// servers acknowledged; any node delivers it from there. False, writing
/// nothing, from any other state.
pub fn hand_off(
    tx: &Connection,
    tz: FixedOffset,
    b: &BatchRow,
    node: &str,
    stream_seq: u64,
) -> rusqlite::Result<bool> {
    if !batches::move_state(tx, &b.batch_id, BatchState::Sealed, BatchState::HandedOff)? {
        return Ok(false);
    }
    batches::count_handoff(tx, &b.batch_id)?;
    log::append(
        tx,
        tz,
        LogEntry::BatchHandedOff {
            dataset: &b.dataset,
            batch: &b.batch_id,
            records: b.count,
            route: &b.route,
            node,
            stream_seq,
        },
    )?;
    Ok(true)
}

/// Pending (`sealed` or `exported`) → `parked` (dead letter), and
/// `handed_off` → `parked` for the library's answer in cluster mode;
/// `why` (the library's answer or code, or the operator) is the stored
/// reason and goes in the exchange-log entry. False, writing nothing, when
/// the batch was in none of those states.
pub fn park(
    tx: &Connection,
    tz: FixedOffset,
    b: &BatchRow,
    why: Parking<'_>,
) -> rusqlite::Result<bool> {
    // A handed-off batch is parked only by the library's answer, which
    // the node that pushed it sends back (docs/cluster.md "Answers"): an
    // operator's park would not stop the stream delivering it.
    let by_library = matches!(why, Parking::Library { .. });
    if !batches::park(tx, &b.batch_id, &why.reason(), by_library)? {
        return Ok(false);
    }
    log::append(
        tx,
        tz,
        LogEntry::BatchParked {
            dataset: &b.dataset,
            batch: &b.batch_id,
            records: b.count,
            why,
        },
    )?;
    Ok(true)
}

/// `parked` → `sealed` (an operator's `fepd batches retry`, logged with
/// `by`): resent with a fresh attempt count, in its original place in the
/// route's order. False, writing nothing, when the batch is not parked.
pub fn retry(tx: &Connection, tz: FixedOffset, b: &BatchRow, by: &str) -> rusqlite::Result<bool> {
    if !batches::requeue_parked(tx, &b.batch_id)? {
        return Ok(false);
    }
    log::append(
        tx,
        tz,
        LogEntry::BatchRetried {
            dataset: &b.dataset,
            batch: &b.batch_id,
            previous_error: b.last_error.as_deref(),
            by,
        },
    )?;
    Ok(true)
}

/// `exported` → `sealed` for one batch whose file is gone from the outbox
/// folder with no acknowledgement beside it (`fepd doctor --fix`): the
/// pull forwarder writes it again. Logged as a retry `by` the doctor with
/// `why` as the previous error. False, writing nothing, when the batch is
/// not exported.
pub fn export_again(
    tx: &Connection,
    tz: FixedOffset,
    b: &BatchRow,
    why: &str,
    by: &str,
) -> rusqlite::Result<bool> {
    if !batches::move_state(tx, &b.batch_id, BatchState::Exported, BatchState::Sealed)? {
        return Ok(false);
    }
    log::append(
        tx,
        tz,
        LogEntry::BatchRetried {
            dataset: &b.dataset,
            batch: &b.batch_id,
            previous_error: Some(why),
            by,
        },
    )?;
    Ok(true)
}

/// A failed attempt (no state change): the attempt count, the error and
/// when to try again (`wait` from now), with its exchange-log entry. A
/// batch delivered or split is past failing: false, writing nothing.
pub fn fail(
    tx: &Connection,
    tz: FixedOffset,
    b: &BatchRow,
    reason: &str,
    wait: Duration,
    via: &str,
) -> rusqlite::Result<bool> {
    let next = state::now_ms() + wait.as_millis() as i64;
    if !batches::record_failure(tx, &b.batch_id, reason, next)? {
        return Ok(false);
    }
    // Each failed attempt is an exchange-log entry, committed with the
    // attempt count it increments.
    log::append(
        tx,
        tz,
        LogEntry::BatchSent {
            dataset: &b.dataset,
            batch: &b.batch_id,
            records: b.count,
            attempt: b.attempts + 1,
            reason,
            retry_in_ms: wait.as_millis() as u64,
            via,
        },
    )?;
    Ok(true)
}

/// Every `exported` → `sealed` (the sink switched from pull to push), in
/// its original place in its route's order, with a fresh attempt count and
/// one `sink_switched` entry when there were any. Returns how many per
/// dataset.
pub fn requeue_exported(
    tx: &Connection,
    tz: FixedOffset,
) -> rusqlite::Result<Vec<(String, usize)>> {
    let per_dataset = batches::requeue_exported(tx)?;
    let requeued: usize = per_dataset.iter().map(|(_, n)| n).sum();
    if requeued > 0 {
        log::append(
            tx,
            tz,
            LogEntry::SinkSwitched {
                requeued: &per_dataset,
            },
        )?;
    }
    Ok(per_dataset)
}
