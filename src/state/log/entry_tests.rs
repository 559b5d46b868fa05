//! Every variant's canonical text (what its hash covers), written out as
//! the JSON the call sites' `json!` construction wrote before entries were
//! typed: the bytes of the exchange log did not change (README, "Audit";
//! `tests/it/audit_bytes.rs` checks a log written by v0.1.0).

use std::collections::BTreeSet;

use super::*;
use crate::canon;
use crate::state::log::{Columns, canonical_entry};

/// The canonical text of `entry` as entry 1 at time `T`; also checks that
/// each stored `counts`/`details` text is that same canonical text.
fn text(entry: LogEntry<'_>) -> (&'static str, String) {
    let event = entry.event().as_str();
    let c: Columns<'_> = entry.columns();
    for v in [&c.counts, &c.details].into_iter().flatten() {
        assert_eq!(v.to_string(), canon::to_canonical(v), "stored text");
    }
    let t = canonical_entry(
        1,
        "T",
        event,
        c.dataset,
        c.file,
        c.batch,
        c.counts.as_ref(),
        c.details.as_ref(),
    );
    (event, t)
}

fn read(
    counts: Counts,
    fault: Option<&'static str>,
    changed: Option<Changed<'static>>,
) -> Verdict<'static> {
    Verdict {
        dataset: "ds",
        file: "a.csv",
        counts,
        file_id: 7,
        sha256: "ab",
        final_name: "a.csv",
        fault,
        changed_after_claim: changed,
    }
}

fn delivered(
    attempts: Option<i64>,
    duplicate: bool,
    was_parked: Option<Option<&'static str>>,
) -> LogEntry<'static> {
    LogEntry::BatchDelivered {
        dataset: "ds",
        batch: "B1",
        records: 2,
        accepted: 1,
        rejected: 1,
        receipt_id: "R1",
        duplicate,
        via: if duplicate { "outbox" } else { "http" },
        attempts,
        was_parked,
    }
}

fn parked(why: Parking<'static>) -> LogEntry<'static> {
    LogEntry::BatchParked {
        dataset: "ds",
        batch: "B1",
        records: 2,
        why,
    }
}

#[test]
fn every_variant_writes_the_text_it_always_wrote() {
    let three = Counts {
        received: 3,
        sealed: 3,
        ..Counts::default()
    };
    let claimed = |encoding| LogEntry::FileClaimed {
        dataset: "ds",
        file: "a.csv",
        file_id: 7,
        work_name: "w1~a.csv",
        sha256: "ab",
        size: 4,
        format: "csv",
        encoding,
    };
    let sealed = |file_id| LogEntry::BatchSealed {
        dataset: "ds",
        batch: "B1",
        records: 2,
        bytes: 120,
        digest: "dg",
        route: "r1",
        file_id,
    };
    let retried = |previous_error| LogEntry::BatchRetried {
        dataset: "ds",
        batch: "B1",
        previous_error,
        by: "ops",
    };
    let selftest = |library| LogEntry::Selftest {
        library,
        routes: vec!["r1", "r2"],
        by: "ops",
    };
    let problems = ["p1".to_string(), "p2".to_string()];
    let requeued = [("a".to_string(), 2), ("b".to_string(), 1)];
    let cases: Vec<(LogEntry<'_>, &str)> = vec![
        (
            LogEntry::DaemonStarted {
                version: "0.1.0",
                pid: 42,
            },
            r#"{"details":{"pid":42,"version":"0.1.0"},"event":"daemon_started","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::DaemonStopped,
            r#"{"event":"daemon_stopped","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::DaemonRecovered { files: 3 },
            r#"{"counts":{"files":3},"event":"daemon_recovered","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConfigLoaded(ConfigSummary {
                datasets: vec!["a", "b"],
                sink: "outbox",
            }),
            r#"{"details":{"datasets":["a","b"],"sink":"outbox"},"event":"config_loaded","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConfigReloaded(ConfigSummary {
                datasets: vec![],
                sink: "http",
            }),
            r#"{"details":{"datasets":[],"sink":"http"},"event":"config_reloaded","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConfigRefused {
                stage: "check",
                problems: &problems,
            },
            r#"{"details":{"problems":["p1","p2"],"stage":"check"},"event":"config_refused","seq":1,"time":"T"}"#,
        ),
        (
            claimed(Some("UTF-8")),
            r#"{"dataset":"ds","details":{"encoding":"UTF-8","fileId":7,"format":"csv","sha256":"ab","size":4,"workName":"w1~a.csv"},"event":"file_claimed","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            claimed(None),
            r#"{"dataset":"ds","details":{"fileId":7,"format":"csv","sha256":"ab","size":4,"workName":"w1~a.csv"},"event":"file_claimed","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::RecordsSkipped {
                dataset: "ds",
                file: "a.csv",
                unchanged: 1,
                stale: 2,
            },
            r#"{"counts":{"stale":2,"unchanged":1},"dataset":"ds","event":"records_skipped","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::FileDone(read(three, None, None)),
            r#"{"counts":{"ignored_fields":0,"received":3,"rejected":0,"sealed":3,"skipped":0,"stale":0},"dataset":"ds","details":{"changedAfterClaim":null,"fault":null,"fileId":7,"finalName":"a.csv","sha256":"ab"},"event":"file_done","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::FileEmpty(read(
                Counts::default(),
                None,
                Some(Changed {
                    change: "grew",
                    from_bytes: Some(4),
                    to_bytes: Some(9),
                    returned_as: "a.1.csv",
                }),
            )),
            r#"{"counts":{"ignored_fields":0,"received":0,"rejected":0,"sealed":0,"skipped":0,"stale":0},"dataset":"ds","details":{"changedAfterClaim":{"change":"grew","fromBytes":4,"returnedAs":"a.1.csv","toBytes":9},"fault":null,"fileId":7,"finalName":"a.csv","sha256":"ab"},"event":"file_empty","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::FileRejected(read(
                three,
                Some("bad"),
                Some(Changed {
                    change: "rewritten",
                    from_bytes: None,
                    to_bytes: None,
                    returned_as: "a.1.csv",
                }),
            )),
            r#"{"counts":{"ignored_fields":0,"received":3,"rejected":0,"sealed":3,"skipped":0,"stale":0},"dataset":"ds","details":{"changedAfterClaim":{"change":"rewritten","fromBytes":null,"returnedAs":"a.1.csv","toBytes":null},"fault":"bad","fileId":7,"finalName":"a.csv","sha256":"ab"},"event":"file_rejected","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::FileSetAside {
                dataset: "ds",
                file: "a.csv",
                counts: Counts::default(),
                file_id: 7,
                sha256: "ab",
                final_name: "a.2.csv",
                fault: "x",
                dead_attempts: 2,
            },
            r#"{"counts":{"ignored_fields":0,"received":0,"rejected":0,"sealed":0,"skipped":0,"stale":0},"dataset":"ds","details":{"deadAttempts":2,"fault":"x","fileId":7,"finalName":"a.2.csv","sha256":"ab"},"event":"file_rejected","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::FileTakenOver {
                dataset: "ds",
                file: "a.csv",
                file_id: 7,
                records_done: 300,
            },
            r#"{"counts":{"recordsDone":300},"dataset":"ds","details":{"fileId":7},"event":"file_taken_over","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::FileDuplicate {
                dataset: "ds",
                file: "a.csv",
                file_id: 7,
                sha256: "ab",
                duplicate_of: "a.csv",
                duplicate_of_id: 6,
                final_name: "a.3.csv",
            },
            r#"{"dataset":"ds","details":{"duplicateOf":"a.csv","duplicateOfId":6,"fileId":7,"finalName":"a.3.csv","sha256":"ab"},"event":"file_duplicate","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            sealed(Some(7)),
            r#"{"batch":"B1","counts":{"bytes":120,"records":2},"dataset":"ds","details":{"digest":"dg","fileId":7,"route":"r1"},"event":"batch_sealed","seq":1,"time":"T"}"#,
        ),
        (
            sealed(None),
            r#"{"batch":"B1","counts":{"bytes":120,"records":2},"dataset":"ds","details":{"digest":"dg","fileId":null,"route":"r1"},"event":"batch_sealed","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::BatchExported {
                dataset: "ds",
                batch: "B1",
                records: 2,
            },
            r#"{"batch":"B1","counts":{"records":2},"dataset":"ds","event":"batch_exported","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::BatchSent {
                dataset: "ds",
                batch: "B1",
                records: 2,
                attempt: 3,
                reason: "HTTP 503",
                retry_in_ms: 4000,
                via: "http",
            },
            r#"{"batch":"B1","counts":{"records":2},"dataset":"ds","details":{"attempt":3,"outcome":"failed","reason":"HTTP 503","retryInMs":4000,"via":"http"},"event":"batch_sent","seq":1,"time":"T"}"#,
        ),
        (
            delivered(Some(2), false, None),
            r#"{"batch":"B1","counts":{"accepted":1,"records":2,"rejected":1},"dataset":"ds","details":{"attempts":2,"duplicate":false,"receiptId":"R1","via":"http"},"event":"batch_delivered","seq":1,"time":"T"}"#,
        ),
        (
            delivered(None, true, Some(Some("parked by operator"))),
            r#"{"batch":"B1","counts":{"accepted":1,"records":2,"rejected":1},"dataset":"ds","details":{"attempts":null,"duplicate":true,"receiptId":"R1","via":"outbox","wasParked":"parked by operator"},"event":"batch_delivered","seq":1,"time":"T"}"#,
        ),
        (
            delivered(None, true, Some(None)),
            r#"{"batch":"B1","counts":{"accepted":1,"records":2,"rejected":1},"dataset":"ds","details":{"attempts":null,"duplicate":true,"receiptId":"R1","via":"outbox","wasParked":null},"event":"batch_delivered","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::RecordsLibraryRejected {
                dataset: "ds",
                batch: "B1",
                codes: vec!["E1", "E2"],
                file_id: Some(7),
            },
            r#"{"batch":"B1","counts":{"records":2},"dataset":"ds","details":{"codes":["E1","E2"],"fileId":7},"event":"records_library_rejected","seq":1,"time":"T"}"#,
        ),
        (
            parked(Parking::Operator {
                reason: "parked by operator",
                by: "ops",
            }),
            r#"{"batch":"B1","counts":{"records":2},"dataset":"ds","details":{"by":"ops","reason":"parked by operator"},"event":"batch_parked","seq":1,"time":"T"}"#,
        ),
        (
            parked(Parking::Library {
                reason: "HTTP 400",
                via: "http",
            }),
            r#"{"batch":"B1","counts":{"records":2},"dataset":"ds","details":{"reason":"HTTP 400","via":"http"},"event":"batch_parked","seq":1,"time":"T"}"#,
        ),
        (
            parked(Parking::Refused {
                code: "400001",
                message: "bad",
                via: "outbox",
            }),
            r#"{"batch":"B1","counts":{"records":2},"dataset":"ds","details":{"code":"400001","message":"bad","via":"outbox"},"event":"batch_parked","seq":1,"time":"T"}"#,
        ),
        (
            retried(Some("HTTP 400")),
            r#"{"batch":"B1","dataset":"ds","details":{"by":"ops","previousError":"HTTP 400"},"event":"batch_retried","seq":1,"time":"T"}"#,
        ),
        (
            retried(None),
            r#"{"batch":"B1","dataset":"ds","details":{"by":"ops","previousError":null},"event":"batch_retried","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::BatchSplit {
                dataset: "ds",
                batch: "B1",
                records: 5,
                first: ("B1.1", 3),
                second: ("B1.2", 2),
            },
            r#"{"batch":"B1","counts":{"first":3,"records":5,"second":2},"dataset":"ds","details":{"halves":["B1.1","B1.2"],"routeMaxRecords":3},"event":"batch_split","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::LogPruned {
                entries: 5,
                archived: Archived {
                    archive: "a1.jsonl",
                    archive_sha256: "s",
                    until: "u",
                    by: "ops",
                },
                pruned_seq: 5,
                pruned_hash: "h",
                first_seq: 1,
            },
            r#"{"counts":{"entries":5},"details":{"archive":"a1.jsonl","archiveSha256":"s","by":"ops","firstSeq":1,"prunedHash":"h","prunedSeq":5,"until":"u"},"event":"log_pruned","seq":1,"time":"T"}"#,
        ),
        (
            selftest(Some("https://lib")),
            r#"{"details":{"by":"ops","library":"https://lib","routes":["r1","r2"]},"event":"selftest","seq":1,"time":"T"}"#,
        ),
        (
            selftest(None),
            r#"{"details":{"by":"ops","library":null,"routes":["r1","r2"]},"event":"selftest","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::RetentionPass(Retained {
                batch_bodies: 1,
                body_bytes: 2,
                record_rows: 3,
                done_files: 4,
                done_bytes: 5,
                rejected_files: 6,
                rejected_bytes: 7,
                delivered_files: 8,
                delivered_bytes: 9,
                db_pages_freed: 10,
                db_bytes: 11,
                keep_batch_bodies: "30days",
                keep_record_rows: "1year",
                keep_done_files: "7days",
                keep_rejected_files: "90days",
                keep_delivered_files: "never",
                auto_vacuum: "incremental",
            }),
            r#"{"counts":{"batchBodies":1,"bodyBytes":2,"dbBytes":11,"dbPagesFreed":10,"deliveredBytes":9,"deliveredFiles":8,"doneBytes":5,"doneFiles":4,"recordRows":3,"rejectedBytes":7,"rejectedFiles":6},"details":{"autoVacuum":"incremental","keep":{"batch_bodies":"30days","delivered_files":"never","done_files":"7days","record_rows":"1year","rejected_files":"90days"}},"event":"retention_pass","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::CredentialsRefused {
                reason: "HTTP 401",
                route: "r1",
                retry_in_secs: 60,
            },
            r#"{"details":{"reason":"HTTP 401","retryInSecs":60,"route":"r1"},"event":"credentials_refused","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::CredentialsAccepted { routes: 2 },
            r#"{"counts":{"routes":2},"event":"credentials_accepted","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::AckDiscrepancy {
                dataset: "ds",
                batch: "B1",
                records: 4,
                accepted: 1,
                rejected: 1,
                unaccounted: 2,
                receipt_id: "R1",
                via: "outbox",
            },
            r#"{"batch":"B1","counts":{"accepted":1,"records":4,"rejected":1,"unaccounted":2},"dataset":"ds","details":{"receiptId":"R1","via":"outbox"},"event":"ack_discrepancy","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::SinkSwitched {
                requeued: &requeued,
            },
            r#"{"counts":{"batches":3},"details":{"requeued":{"a":2,"b":1},"to":"http"},"event":"sink_switched","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::BatchReplayed {
                dataset: "ds",
                batch: "B2",
                replay_of: "B1",
                records: 4,
                by: "ops",
                reason: "library lost it",
            },
            r#"{"batch":"B2","counts":{"records":4},"dataset":"ds","details":{"by":"ops","reason":"library lost it","replayOf":["B1"]},"event":"batch_replayed","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::AlertRaised(super::AlertEpisode {
                kind: "batch_parked",
                subject: "case_accept",
                since: "T0",
            }),
            r#"{"details":{"kind":"batch_parked","since":"T0","subject":"case_accept"},"event":"alert_raised","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::AlertResolved(super::AlertEpisode {
                kind: "batch_parked",
                subject: "case_accept",
                since: "T0",
            }),
            r#"{"details":{"kind":"batch_parked","since":"T0","subject":"case_accept"},"event":"alert_resolved","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConsoleLogin {
                user: "张三",
                role: "operator",
            },
            r#"{"details":{"role":"operator","user":"张三"},"event":"console_login","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConsoleLoginFailed {
                user: "张三",
                reason: "password",
            },
            r#"{"details":{"reason":"password","user":"张三"},"event":"console_login_failed","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConsoleLockedOut {
                user: "张三",
                failures: 5,
                until: "T1",
            },
            r#"{"counts":{"failures":5},"details":{"until":"T1","user":"张三"},"event":"console_locked_out","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConsoleLogout {
                user: "张三",
                reason: "idle",
            },
            r#"{"details":{"reason":"idle","user":"张三"},"event":"console_logout","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConsoleRefused {
                user: "李四",
                role: "auditor",
                action: "batch_retry",
                reason: "role",
            },
            r#"{"details":{"action":"batch_retry","reason":"role","role":"auditor","user":"李四"},"event":"console_refused","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConsoleUpload {
                user: "王五",
                dataset: "ds",
                file: "a.csv",
                size: 120,
                records: 3,
                rejected: 1,
                enqueued: false,
            },
            r#"{"counts":{"records":3,"rejected":1},"dataset":"ds","details":{"enqueued":false,"size":120,"user":"王五"},"event":"console_upload","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::UserChanged {
                user: "王五",
                change: "added",
                role: "data_staff",
                by: "root",
            },
            r#"{"details":{"by":"root","change":"added","role":"data_staff","user":"王五"},"event":"user_changed","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ConsoleReveal {
                user: "审计员",
                dataset: "ds",
                file: "a.csv",
                record: 2,
                field: "applyer_page_code",
            },
            r#"{"dataset":"ds","details":{"field":"applyer_page_code","record":2,"user":"审计员"},"event":"console_reveal","file":"a.csv","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::BatchHandedOff {
                dataset: "ds",
                batch: "B1",
                records: 3,
                route: "zwfw/ds",
                node: "n1",
                stream_seq: 7,
            },
            r#"{"batch":"B1","counts":{"records":3},"dataset":"ds","details":{"node":"n1","route":"zwfw/ds","streamSeq":7},"event":"batch_handed_off","seq":1,"time":"T"}"#,
        ),
        (
            LogEntry::ClusterPushed(ClusterPush {
                dataset: "ds",
                batch: "B1",
                route: "zwfw/ds",
                origin: "n1",
                node: "n2",
                outcome: "delivered",
                receipt_id: Some("R1"),
                accepted: Some(3),
                library_rejected: 0,
                delivery: 2,
                reason: None,
            }),
            r#"{"batch":"B1","counts":{"accepted":3,"libraryRejected":0},"dataset":"ds","details":{"delivery":2,"node":"n2","origin":"n1","outcome":"delivered","reason":null,"receiptId":"R1","route":"zwfw/ds"},"event":"cluster_pushed","seq":1,"time":"T"}"#,
        ),
    ];
    let mut events = BTreeSet::new();
    for (entry, want) in cases {
        let (event, got) = text(entry);
        assert_eq!(got, want, "{event}");
        events.insert(event);
    }
    assert_eq!(events.len(), 41, "every event has a case: {events:?}");
}
