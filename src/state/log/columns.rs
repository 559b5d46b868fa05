//! The columns of an exchange-log entry: the one place the `counts` and
//! `details` objects are built, member for member, from a [`LogEntry`]
//! (ARCHITECTURE.md, "No exchange-log entry is built from loose JSON
//! outside `state/log/`"). The names, and which members are absent and
//! which `null`, are those fepd has always written, so entries already in
//! a log keep verifying and new ones hash the same way; `entry_tests.rs`
//! pins the text of every variant.

use serde_json::{Map, Value, json};

use super::entry::{LogEntry, Parking};
use crate::state::files::Counts;

/// The columns an entry is stored in (and its hash covers), absent ones
/// `None`.
#[derive(Debug, Clone, Default)]
pub struct Columns<'a> {
    pub dataset: Option<&'a str>,
    pub file: Option<&'a str>,
    pub batch: Option<&'a str>,
    pub counts: Option<Value>,
    pub details: Option<Value>,
}

impl Columns<'_> {
    fn of<'a>(
        dataset: Option<&'a str>,
        file: Option<&'a str>,
        batch: Option<&'a str>,
        counts: Option<Value>,
        details: Option<Value>,
    ) -> Columns<'a> {
        Columns {
            dataset,
            file,
            batch,
            counts,
            details,
        }
    }
}

impl<'a> LogEntry<'a> {
    /// The entry's columns: the members and values fepd has always written
    /// for its event (the `counts` and `details` objects are stored as
    /// serde_json's compact text of these values).
    pub fn columns(self) -> Columns<'a> {
        use LogEntry as E;
        match self {
            E::DaemonStarted { version, pid } => Columns::of(
                None,
                None,
                None,
                None,
                Some(json!({"version": version, "pid": pid})),
            ),
            E::DaemonStopped => Columns::default(),
            E::DaemonRecovered { files } => {
                Columns::of(None, None, None, Some(json!({"files": files})), None)
            }
            E::ConfigLoaded(c) | E::ConfigReloaded(c) => Columns::of(
                None,
                None,
                None,
                None,
                Some(json!({"datasets": c.datasets, "sink": c.sink})),
            ),
            E::ConfigRefused { stage, problems } => Columns::of(
                None,
                None,
                None,
                None,
                Some(json!({"stage": stage, "problems": problems})),
            ),
            E::FileClaimed {
                dataset,
                file,
                file_id,
                work_name,
                sha256,
                size,
                format,
                encoding,
            } => {
                let mut details = json!({
                    "fileId": file_id, "workName": work_name, "sha256": sha256,
                    "size": size, "format": format,
                });
                if let Some(e) = encoding {
                    details["encoding"] = json!(e);
                }
                Columns::of(Some(dataset), Some(file), None, None, Some(details))
            }
            E::RecordsSkipped {
                dataset,
                file,
                unchanged,
                stale,
            } => Columns::of(
                Some(dataset),
                Some(file),
                None,
                Some(json!({"unchanged": unchanged, "stale": stale})),
                None,
            ),
            E::FileDone(v) | E::FileEmpty(v) | E::FileRejected(v) => Columns::of(
                Some(v.dataset),
                Some(v.file),
                None,
                Some(counts(&v.counts)),
                Some(json!({
                    "fileId": v.file_id, "sha256": v.sha256, "finalName": v.final_name,
                    "fault": v.fault,
                    "changedAfterClaim": v.changed_after_claim.map(|c| json!({
                        "change": c.change, "fromBytes": c.from_bytes,
                        "toBytes": c.to_bytes, "returnedAs": c.returned_as,
                    })),
                })),
            ),
            E::FileTakenOver {
                dataset,
                file,
                file_id,
                records_done,
            } => Columns::of(
                Some(dataset),
                Some(file),
                None,
                Some(json!({"recordsDone": records_done})),
                Some(json!({"fileId": file_id})),
            ),
            E::FileSetAside {
                dataset,
                file,
                counts: c,
                file_id,
                sha256,
                final_name,
                fault,
                dead_attempts,
            } => Columns::of(
                Some(dataset),
                Some(file),
                None,
                Some(counts(&c)),
                Some(json!({
                    "fileId": file_id, "sha256": sha256, "finalName": final_name,
                    "fault": fault, "deadAttempts": dead_attempts,
                })),
            ),
            E::FileDuplicate {
                dataset,
                file,
                file_id,
                sha256,
                duplicate_of,
                duplicate_of_id,
                final_name,
            } => Columns::of(
                Some(dataset),
                Some(file),
                None,
                None,
                Some(json!({
                    "fileId": file_id, "sha256": sha256, "duplicateOf": duplicate_of,
                    "duplicateOfId": duplicate_of_id, "finalName": final_name,
                })),
            ),
            E::BatchSealed {
                dataset,
                batch,
                records,
                bytes,
                digest,
                route,
                file_id,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                Some(json!({"records": records, "bytes": bytes})),
                Some(json!({"digest": digest, "route": route, "fileId": file_id})),
            ),
            E::BatchHandedOff {
                dataset,
                batch,
                records,
                route,
                node,
                stream_seq,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                Some(json!({"records": records})),
                Some(json!({"route": route, "node": node, "streamSeq": stream_seq})),
            ),
            E::ClusterPushed(p) => Columns::of(
                Some(p.dataset),
                None,
                Some(p.batch),
                Some(json!({"accepted": p.accepted, "libraryRejected": p.library_rejected})),
                Some(json!({
                    "route": p.route, "origin": p.origin, "node": p.node,
                    "outcome": p.outcome, "receiptId": p.receipt_id,
                    "delivery": p.delivery, "reason": p.reason,
                })),
            ),
            E::BatchExported {
                dataset,
                batch,
                records,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                Some(json!({"records": records})),
                None,
            ),
            E::BatchSent {
                dataset,
                batch,
                records,
                attempt,
                reason,
                retry_in_ms,
                via,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                Some(json!({"records": records})),
                Some(json!({
                    "outcome": "failed", "attempt": attempt, "reason": reason,
                    "retryInMs": retry_in_ms, "via": via,
                })),
            ),
            E::BatchDelivered {
                dataset,
                batch,
                records,
                accepted,
                rejected,
                receipt_id,
                duplicate,
                via,
                attempts,
                was_parked,
            } => {
                let mut details = json!({
                    "receiptId": receipt_id, "duplicate": duplicate, "via": via,
                    "attempts": attempts,
                });
                if let Some(last_error) = was_parked {
                    details["wasParked"] = json!(last_error);
                }
                Columns::of(
                    Some(dataset),
                    None,
                    Some(batch),
                    Some(json!({"records": records, "accepted": accepted, "rejected": rejected})),
                    Some(details),
                )
            }
            E::RecordsLibraryRejected {
                dataset,
                batch,
                codes,
                file_id,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                Some(json!({"records": codes.len()})),
                Some(json!({"codes": codes, "fileId": file_id})),
            ),
            E::BatchParked {
                dataset,
                batch,
                records,
                why,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                Some(json!({"records": records})),
                Some(match why {
                    Parking::Operator { reason, by } => json!({"reason": reason, "by": by}),
                    Parking::Library { reason, via } => json!({"reason": reason, "via": via}),
                    Parking::Refused { code, message, via } => {
                        json!({"code": code, "message": message, "via": via})
                    }
                }),
            ),
            E::BatchRetried {
                dataset,
                batch,
                previous_error,
                by,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                None,
                Some(json!({"previousError": previous_error, "by": by})),
            ),
            E::BatchSplit {
                dataset,
                batch,
                records,
                first,
                second,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                Some(json!({"records": records, "first": first.1, "second": second.1})),
                Some(json!({"halves": [first.0, second.0], "routeMaxRecords": first.1})),
            ),
            E::LogPruned {
                entries,
                archived: a,
                pruned_seq,
                pruned_hash,
                first_seq,
            } => Columns::of(
                None,
                None,
                None,
                Some(json!({"entries": entries})),
                Some(json!({
                    "archive": a.archive, "archiveSha256": a.archive_sha256,
                    "until": a.until, "by": a.by,
                    "prunedSeq": pruned_seq, "prunedHash": pruned_hash, "firstSeq": first_seq,
                })),
            ),
            E::Selftest {
                library,
                routes,
                by,
            } => Columns::of(
                None,
                None,
                None,
                None,
                Some(json!({"library": library, "routes": routes, "by": by})),
            ),
            E::RetentionPass(r) => Columns::of(
                None,
                None,
                None,
                Some(json!({
                    "batchBodies": r.batch_bodies, "bodyBytes": r.body_bytes,
                    "recordRows": r.record_rows,
                    "doneFiles": r.done_files, "doneBytes": r.done_bytes,
                    "rejectedFiles": r.rejected_files, "rejectedBytes": r.rejected_bytes,
                    "deliveredFiles": r.delivered_files, "deliveredBytes": r.delivered_bytes,
                    "dbPagesFreed": r.db_pages_freed, "dbBytes": r.db_bytes,
                })),
                Some(json!({
                    "keep": {
                        "batch_bodies": r.keep_batch_bodies, "record_rows": r.keep_record_rows,
                        "done_files": r.keep_done_files, "rejected_files": r.keep_rejected_files,
                        "delivered_files": r.keep_delivered_files,
                    },
                    "autoVacuum": r.auto_vacuum,
                })),
            ),
            E::CredentialsRefused {
                reason,
                route,
                retry_in_secs,
            } => Columns::of(
                None,
                None,
                None,
                None,
                Some(json!({"reason": reason, "route": route, "retryInSecs": retry_in_secs})),
            ),
            E::CredentialsAccepted { routes } => {
                Columns::of(None, None, None, Some(json!({"routes": routes})), None)
            }
            E::AckDiscrepancy {
                dataset,
                batch,
                records,
                accepted,
                rejected,
                unaccounted,
                receipt_id,
                via,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                Some(json!({
                    "records": records, "accepted": accepted, "rejected": rejected,
                    "unaccounted": unaccounted,
                })),
                Some(json!({"receiptId": receipt_id, "via": via})),
            ),
            E::BatchReplayed {
                dataset,
                batch,
                replay_of,
                records,
                by,
                reason,
            } => Columns::of(
                Some(dataset),
                None,
                Some(batch),
                Some(json!({"records": records})),
                Some(json!({"replayOf": [replay_of], "by": by, "reason": reason})),
            ),
            E::SinkSwitched { requeued } => Columns::of(
                None,
                None,
                None,
                Some(json!({"batches": requeued.iter().map(|(_, n)| n).sum::<usize>()})),
                Some(json!({
                    "to": "http",
                    "requeued": requeued
                        .iter()
                        .map(|(d, n)| (d.clone(), json!(n)))
                        .collect::<Map<_, _>>(),
                })),
            ),
            E::AlertRaised(a) | E::AlertResolved(a) => Columns::of(
                None,
                None,
                None,
                None,
                Some(json!({"kind": a.kind, "subject": a.subject, "since": a.since})),
            ),
            E::ConsoleLogin { user, role } => Columns::of(
                None,
                None,
                None,
                None,
                Some(json!({"user": user, "role": role})),
            ),
            E::ConsoleLoginFailed { user, reason } | E::ConsoleLogout { user, reason } => {
                Columns::of(
                    None,
                    None,
                    None,
                    None,
                    Some(json!({"user": user, "reason": reason})),
                )
            }
            E::ConsoleLockedOut {
                user,
                failures,
                until,
            } => Columns::of(
                None,
                None,
                None,
                Some(json!({"failures": failures})),
                Some(json!({"user": user, "until": until})),
            ),
            E::ConsoleRefused {
                user,
                role,
                action,
                reason,
            } => Columns::of(
                None,
                None,
                None,
                None,
                Some(json!({"user": user, "role": role, "action": action, "reason": reason})),
            ),
            E::ConsoleUpload {
                user,
                dataset,
                file,
                size,
                records,
                rejected,
                enqueued,
            } => Columns::of(
                Some(dataset),
                Some(file),
                None,
                Some(json!({"records": records, "rejected": rejected})),
                Some(json!({"user": user, "size": size, "enqueued": enqueued})),
            ),
            E::UserChanged {
                user,
                change,
                role,
                by,
            } => Columns::of(
                None,
                None,
                None,
                None,
                Some(json!({"user": user, "change": change, "role": role, "by": by})),
            ),
            E::ConsoleReveal {
                user,
                dataset,
                file,
                record,
                field,
            } => Columns::of(
                Some(dataset),
                Some(file),
                None,
                None,
                Some(json!({"user": user, "record": record, "field": field})),
            ),
        }
    }
}

/// A file's counts, member for member as `Counts` serialises.
fn counts(c: &Counts) -> Value {
    serde_json::to_value(c).expect("counts serialise")
}
