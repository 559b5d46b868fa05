//! Each transition refuses a move the state machine does not allow: it
//! returns false (or changes nothing), leaves the row as it was and
//! writes no exchange-log entry. And the stored words stay those of every
//! release.

use std::time::Duration;

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};
use serde_json::json;

use super::*;
use crate::canon;
use crate::seal::Staged;
use crate::state::batches::{self, BatchRow};
use crate::state::log::{self, Parking};
use crate::validate::Op;

struct Db {
    _dir: tempfile::TempDir,
    conn: Connection,
    tz: FixedOffset,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::state::open(&dir.path().join("state/fepd.db")).unwrap();
        Db {
            _dir: dir,
            conn,
            tz: FixedOffset::east_opt(8 * 3600).unwrap(),
        }
    }

    /// A sealed batch of `n` records.
    fn seal(&mut self, n: usize) -> BatchRow {
        let recs: Vec<Staged> = (0..n)
            .map(|i| {
                let canonical = canon::to_canonical(&json!({"project_no": format!("P{i}")}));
                Staged {
                    op: Op::Upsert,
                    key: format!("P{i}"),
                    hash: canon::sha256_hex(canonical.as_bytes()),
                    version: None,
                    fallback_version: None,
                    canonical,
                }
            })
            .collect();
        let id = self.tx(|tx, tz| {
            let mut keys = crate::state::recent::RecentKeys::new("case_accept");
            keys.sync(tx)?;
            seal(
                tx,
                &Sealing {
                    tz,
                    sender: "230000-zwfw",
                    dataset: "case_accept",
                    schema_version: "1",
                    route: "case/accept",
                    file_id: None,
                    batch_id: None,
                },
                &mut keys,
                &recs,
            )
        });
        self.row(&id)
    }

    fn tx<T>(&mut self, f: impl FnOnce(&Connection, FixedOffset) -> rusqlite::Result<T>) -> T {
        let tz = self.tz;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let out = f(&tx, tz).unwrap();
        tx.commit().unwrap();
        out
    }

    fn row(&self, id: &str) -> BatchRow {
        batches::get(&self.conn, id).unwrap().unwrap()
    }

    /// Everything a refused move must leave alone: every row and the log.
    fn snapshot(&self) -> (Vec<BatchRow>, i64) {
        (
            batches::list(&self.conn, None, None, i64::MAX).unwrap(),
            log::head(&self.conn).unwrap().seq,
        )
    }

    fn delivery(&self) -> Delivery<'static> {
        Delivery {
            receipt_id: "R1",
            accepted: None,
            rejected: &[],
            duplicate: false,
            via: "http",
            attempts: Some(1),
            accept_parked: false,
        }
    }

    /// A batch moved into `state` by the legal path.
    fn batch_in(&mut self, state: BatchState) -> BatchRow {
        let b = self.seal(4);
        let d = self.delivery();
        let moved = match state {
            BatchState::Sealed => true,
            BatchState::Exported => self.tx(|tx, tz| export(tx, tz, &b)),
            BatchState::Delivered => self.tx(|tx, tz| deliver(tx, tz, &b, &d)),
            BatchState::Parked => self.tx(|tx, tz| {
                park(
                    tx,
                    tz,
                    &b,
                    Parking::Operator {
                        reason: "why",
                        by: "x",
                    },
                )
            }),
            BatchState::Split => {
                let body = batches::body(&self.conn, &b.batch_id).unwrap().unwrap();
                let two = halves(&b.batch_id, &body).unwrap();
                self.tx(|tx, tz| split(tx, tz, &b, &two))
            }
            BatchState::HandedOff => self.tx(|tx, tz| hand_off(tx, tz, &b, "n1", 1)),
        };
        assert!(moved, "legal move to {state}");
        let b = self.row(&b.batch_id);
        assert_eq!(b.state, state);
        b
    }
}

/// Runs `f` on a batch in each of `states`, expecting it refused with
/// nothing written.
fn refused(states: &[BatchState], f: impl Fn(&mut Db, &BatchRow) -> bool) {
    for &st in states {
        let mut db = Db::new();
        let b = db.batch_in(st);
        let before = db.snapshot();
        assert!(!f(&mut db, &b), "refused from {st}");
        assert_eq!(db.snapshot(), before, "nothing written from {st}");
    }
}

#[test]
fn export_only_from_sealed() {
    use BatchState::*;
    refused(&[Exported, Delivered, Parked, Split, HandedOff], |db, b| {
        db.tx(|tx, tz| export(tx, tz, b))
    });
}

#[test]
fn park_only_a_pending_batch() {
    use BatchState::*;
    refused(&[Delivered, Parked, Split, HandedOff], |db, b| {
        db.tx(|tx, tz| {
            park(
                tx,
                tz,
                b,
                Parking::Operator {
                    reason: "operator",
                    by: "x",
                },
            )
        })
    });
}

#[test]
fn retry_only_a_parked_batch() {
    use BatchState::*;
    refused(&[Sealed, Exported, Delivered, Split, HandedOff], |db, b| {
        db.tx(|tx, tz| retry(tx, tz, b, "x"))
    });
}

#[test]
fn export_again_only_an_exported_batch_and_it_is_logged_as_a_retry() {
    use BatchState::*;
    refused(&[Sealed, Delivered, Parked, Split, HandedOff], |db, b| {
        db.tx(|tx, tz| export_again(tx, tz, b, "file lost", "doctor"))
    });
    let mut db = Db::new();
    let b = db.batch_in(Exported);
    let seq = log::head(&db.conn).unwrap().seq;
    assert!(db.tx(|tx, tz| export_again(tx, tz, &b, "file lost", "doctor")));
    assert_eq!(db.row(&b.batch_id).state, Sealed);
    assert_eq!(log::head(&db.conn).unwrap().seq, seq + 1);
    // Sealed again, it is exported again by the legal path.
    assert!(db.tx(|tx, tz| export(tx, tz, &b)));
}

#[test]
fn deliver_only_a_pending_batch_or_a_parked_one_a_collector_took() {
    use BatchState::*;
    refused(&[Delivered, Parked, Split], |db, b| {
        let d = db.delivery();
        db.tx(|tx, tz| deliver(tx, tz, b, &d))
    });
    // In cluster mode the library's answer, sent back by the node that
    // pushed it, delivers a handed-off batch on its origin.
    let mut db = Db::new();
    let b = db.batch_in(HandedOff);
    let d = db.delivery();
    assert!(db.tx(|tx, tz| deliver(tx, tz, &b, &d)));
    assert_eq!(db.row(&b.batch_id).state, Delivered);
    // The row as read before a concurrent change: still refused by the
    // database, with nothing written.
    refused(&[Delivered, Split], |db, b| {
        let d = Delivery {
            accept_parked: true,
            ..db.delivery()
        };
        let stale = BatchRow {
            state: Sealed,
            ..b.clone()
        };
        db.tx(|tx, tz| deliver(tx, tz, &stale, &d))
    });
    // A collector's `.ack` for a parked batch is the library's word.
    let mut db = Db::new();
    let b = db.batch_in(Parked);
    let d = Delivery {
        accept_parked: true,
        ..db.delivery()
    };
    assert!(db.tx(|tx, tz| deliver(tx, tz, &b, &d)));
    assert_eq!(db.row(&b.batch_id).state, Delivered);
}

#[test]
fn hand_off_only_a_sealed_batch_and_it_is_logged() {
    use BatchState::*;
    refused(&[Exported, Delivered, Parked, Split, HandedOff], |db, b| {
        db.tx(|tx, tz| hand_off(tx, tz, b, "n1", 9))
    });
    let mut db = Db::new();
    let b = db.batch_in(Sealed);
    let seq = log::head(&db.conn).unwrap().seq;
    assert!(db.tx(|tx, tz| hand_off(tx, tz, &b, "n1", 9)));
    assert_eq!(db.row(&b.batch_id).state, HandedOff);
    assert!(!db.row(&b.batch_id).state.is_pending());
    assert_eq!(log::head(&db.conn).unwrap().seq, seq + 1);
}

#[test]
fn split_only_a_sealed_or_handed_off_batch() {
    use BatchState::*;
    refused(&[Exported, Delivered, Parked, Split], |db, b| {
        let body = batches::body(&db.conn, &b.batch_id).unwrap().unwrap();
        let two = halves(&b.batch_id, &body).unwrap();
        db.tx(|tx, tz| split(tx, tz, b, &two))
    });
    // A 413 another node got for a batch this node handed off.
    let mut db = Db::new();
    let b = db.batch_in(HandedOff);
    let body = batches::body(&db.conn, &b.batch_id).unwrap().unwrap();
    let two = halves(&b.batch_id, &body).unwrap();
    assert!(db.tx(|tx, tz| split(tx, tz, &b, &two)));
    assert_eq!(db.row(&b.batch_id).state, Split);
    assert_eq!(db.row(&two[0].batch_id).state, Sealed);
}

#[test]
fn a_handed_off_batch_is_parked_by_the_library_only_and_retried_for_a_new_hand_off() {
    use BatchState::*;
    let mut db = Db::new();
    let b = db.batch_in(HandedOff);
    assert_eq!(batches::handoffs(&db.conn, &b.batch_id).unwrap(), 1);
    let library = Parking::Library {
        reason: "HTTP 400 400003",
        via: "cluster",
    };
    assert!(db.tx(|tx, tz| park(tx, tz, &b, library.clone())));
    let b = db.row(&b.batch_id);
    assert_eq!(b.state, Parked);
    assert_eq!(b.last_error.as_deref(), Some("HTTP 400 400003"));
    assert!(db.tx(|tx, tz| retry(tx, tz, &b, "x")));
    let b = db.row(&b.batch_id);
    assert!(db.tx(|tx, tz| hand_off(tx, tz, &b, "n1", 2)));
    assert_eq!(batches::handoffs(&db.conn, &b.batch_id).unwrap(), 2);
}

#[test]
fn fail_counts_no_attempt_on_a_batch_past_sending() {
    use BatchState::*;
    refused(&[Delivered, Split, HandedOff], |db, b| {
        db.tx(|tx, tz| fail(tx, tz, b, "HTTP 503", Duration::ZERO, "http"))
    });
    // An attempt on the wire when the operator parked the batch still counts.
    let mut db = Db::new();
    let b = db.batch_in(Parked);
    assert!(db.tx(|tx, tz| fail(tx, tz, &b, "HTTP 503", Duration::ZERO, "http")));
    let after = db.row(&b.batch_id);
    assert_eq!((after.state, after.attempts), (Parked, 1));
}

#[test]
fn requeue_exported_touches_nothing_else() {
    use BatchState::*;
    for st in [Sealed, Delivered, Parked, Split] {
        let mut db = Db::new();
        db.batch_in(st);
        let before = db.snapshot();
        assert!(db.tx(requeue_exported).is_empty(), "from {st}");
        assert_eq!(db.snapshot(), before, "nothing written from {st}");
    }
    let mut db = Db::new();
    let b = db.batch_in(Exported);
    assert_eq!(
        db.tx(requeue_exported),
        vec![("case_accept".to_string(), 1)]
    );
    assert_eq!(db.row(&b.batch_id).state, Sealed);
}

/// A late answer for a batch that is no longer pending changes nothing.
#[test]
fn apply_of_a_late_answer_changes_nothing() {
    use BatchState::*;
    let replies = || {
        [
            Reply::Park {
                reason: "HTTP 400".into(),
            },
            Reply::TooLarge,
            Reply::Delivered {
                receipt_id: "R9".into(),
                accepted: None,
                rejected: vec![],
                duplicate: false,
            },
        ]
    };
    for st in [Delivered, Parked, Split] {
        for reply in replies() {
            let mut db = Db::new();
            let b = db.batch_in(st);
            let before = db.snapshot();
            let spool = db._dir.path().join("spool");
            apply(&mut db.conn, db.tz, &spool, &Default::default(), &b, reply).unwrap();
            assert_eq!(db.snapshot(), before, "late answer to a batch {st}");
        }
    }
}

/// The words are those the schema documents and old databases hold.
#[test]
fn states_keep_their_stored_words() {
    let words: Vec<&str> = BatchState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        words,
        [
            "sealed",
            "exported",
            "delivered",
            "parked",
            "split",
            "handed_off"
        ]
    );
    for s in BatchState::ALL {
        assert_eq!(BatchState::parse(s.as_str()), Some(s));
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        assert_eq!(format!("{s:<10}|"), format!("{:<10}|", s.as_str()));
    }
    assert_eq!(BatchState::parse("pending"), None);
    assert_eq!(BatchState::parse("Sealed"), None);
    use rusqlite::types::{FromSql, ValueRef};
    let bad = BatchState::column_result(ValueRef::Text(b"shipped"));
    assert!(
        bad.is_err(),
        "an unknown stored word is an error, not a guess"
    );
}
