//! The tail index and the merge against a model of what dedupe must
//! answer: for any sequence of seals (some rolled back, some by another
//! connection), split halves or replays, and merges, each key's last
//! sealed version and history are what sealing them one by one into
//! `record_state` gave.

use std::collections::HashMap;

use chrono::FixedOffset;
use proptest::prelude::*;
use rusqlite::{Connection, TransactionBehavior};

use super::*;
use crate::outbox::{Sealing, seal};
use crate::seal::Staged;
use crate::state::batches::{self, BatchRecord, NewBatch};
use crate::state::records;
use crate::validate::Op;

const DS: &str = "case_accept";

#[derive(Debug, Clone)]
struct Rec {
    key: u8,
    hash: u8,
    version: Option<i64>,
}

#[derive(Debug, Clone)]
enum Step {
    /// A chunk that seals these records, as one batch, by the first
    /// connection (`other`: by the second).
    Seal {
        recs: Vec<Rec>,
        other: bool,
    },
    /// The same, rolled back.
    RolledBack(Vec<Rec>),
    /// A split half or replay carrying these keys (places only).
    Places(Vec<u8>),
    Merge,
    /// The worker's merge when intake idles: the first connection merges
    /// and gives its index's memory back.
    IdleMerge,
}

fn rec() -> impl Strategy<Value = Rec> {
    (0u8..8, 0u8..3, prop::option::of(0i64..4)).prop_map(|(key, hash, version)| Rec {
        key,
        hash,
        version,
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (prop::collection::vec(rec(), 1..5), any::<bool>())
            .prop_map(|(recs, other)| Step::Seal { recs, other }),
        1 => prop::collection::vec(rec(), 1..4).prop_map(Step::RolledBack),
        1 => prop::collection::vec(0u8..8, 1..3).prop_map(Step::Places),
        1 => Just(Step::Merge),
        1 => Just(Step::IdleMerge),
    ]
}

/// What sealing each version straight into `record_state` gave.
#[derive(Default)]
struct Model {
    last: HashMap<String, Sealed>,
    history: HashMap<String, Vec<(String, i64)>>,
}

fn key(k: u8) -> String {
    format!("K{k}")
}

fn hash(h: u8) -> String {
    format!("{h:064x}")
}

struct Node {
    conn: Connection,
    keys: RecentKeys,
}

fn node(path: &std::path::Path, bits: u32) -> Node {
    Node {
        conn: crate::state::open(path).unwrap(),
        keys: RecentKeys::colliding(DS, bits),
    }
}

/// A chunk as the daemon's: decide every record against the state before
/// it, seal those to seal as one batch, commit or roll back. Returns the
/// batch id and the records sealed with their decisions' versions.
fn chunk(n: &mut Node, recs: &[Rec], commit: bool) -> Option<(String, Vec<Staged>)> {
    let tx = n
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    n.keys.sync(&tx).unwrap();
    let mut staged = Vec::new();
    for r in recs {
        let (k, h) = (key(r.key), hash(r.hash));
        let last = n.keys.last_sealed(&tx, &k).unwrap();
        let fallback = match &last {
            None => None,
            Some(l) if l.hash == h => continue,
            Some(l) => match (r.version, l.version) {
                (Some(now), Some(then)) if now < then => continue,
                _ => l.version,
            },
        };
        staged.push(Staged {
            op: Op::Upsert,
            key: k,
            hash: h,
            version: r.version,
            fallback_version: fallback,
            canonical: "{}".into(),
        });
    }
    if staged.is_empty() {
        return None;
    }
    let id = seal(
        &tx,
        &Sealing {
            tz: FixedOffset::east_opt(8 * 3600).unwrap(),
            sender: "230000-zwfw",
            dataset: DS,
            schema_version: "1",
            route: "zwfw/case_accept",
            file_id: None,
            batch_id: None,
        },
        &mut n.keys,
        &staged,
    )
    .unwrap();
    if commit {
        tx.commit().unwrap();
        n.keys.committed();
    }
    Some((id, staged))
}

impl Model {
    /// The model's decisions, made against the state before the chunk as
    /// the daemon's are.
    fn chunk(&mut self, recs: &[Rec]) -> Vec<(String, String, Option<i64>)> {
        let mut out = Vec::new();
        for r in recs {
            let (k, h) = (key(r.key), hash(r.hash));
            match self.last.get(&k) {
                Some(l) if l.hash == h => continue,
                Some(l) if matches!((r.version, l.version), (Some(a), Some(b)) if a < b) => {
                    continue;
                }
                _ => out.push((k, h, r.version)),
            }
        }
        out
    }

    fn sealed(&mut self, batch: &str, recs: &[(String, String, Option<i64>)]) {
        for (i, (k, h, v)) in recs.iter().enumerate() {
            let version = v.or_else(|| self.last.get(k).and_then(|l| l.version));
            self.last.insert(
                k.clone(),
                Sealed {
                    hash: h.clone(),
                    version,
                },
            );
            self.history
                .entry(k.clone())
                .or_default()
                .push((batch.to_string(), i as i64));
        }
    }
}

fn check(n: &mut Node, model: &Model) {
    let tx = n
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    n.keys.sync(&tx).unwrap();
    for k in (0u8..8).map(key) {
        let want = model.last.get(&k).cloned();
        assert_eq!(n.keys.last_sealed(&tx, &k).unwrap(), want, "{k}: index");
        assert_eq!(
            records::last_sealed(&tx, DS, &k).unwrap(),
            want,
            "{k}: read"
        );
        let places = model.history.get(&k).cloned().unwrap_or_default();
        assert_eq!(
            records::history(&tx, DS, &k).unwrap(),
            places,
            "{k}: history"
        );
    }
    drop(tx);
}

fn run(steps: Vec<Step>, bits: u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fepd.db");
    let mut a = node(&path, bits);
    let mut b = node(&path, bits);
    let mut model = Model::default();
    let mut replays = 0;
    for s in steps {
        match s {
            Step::Seal { recs, other } => {
                let n = if other { &mut b } else { &mut a };
                let want = model.chunk(&recs);
                let got = chunk(n, &recs, true);
                let sealed: Vec<_> = got
                    .as_ref()
                    .map(|(_, s)| {
                        s.iter()
                            .map(|r| (r.key.clone(), r.hash.clone(), r.version))
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(sealed, want, "the decisions of {recs:?}");
                if let Some((id, _)) = got {
                    model.sealed(&id, &want);
                }
            }
            Step::RolledBack(recs) => {
                chunk(&mut a, &recs, false);
            }
            Step::Places(ks) => {
                // A replay's batch: the keys' places, their last sealed
                // version unchanged (only a key sealed before has one).
                let ks: Vec<String> = ks
                    .into_iter()
                    .map(key)
                    .filter(|k| model.last.contains_key(k))
                    .collect();
                if ks.is_empty() {
                    continue;
                }
                replays += 1;
                let id = format!("R{replays:04}");
                let h = hash(9);
                batches::insert(
                    &a.conn,
                    &NewBatch {
                        sort_key: None,
                        batch_id: &id,
                        dataset: DS,
                        route: "zwfw/case_accept",
                        file_id: None,
                        parent_id: None,
                        count: ks.len(),
                        digest: "d",
                        body: b"{}",
                        sealed_at: "2026-01-01T08:00:00+08:00",
                    },
                    ks.iter().map(|k| BatchRecord {
                        key: k,
                        hash: &h,
                        op: "upsert",
                    }),
                )
                .unwrap();
                for (i, k) in ks.iter().enumerate() {
                    model
                        .history
                        .entry(k.clone())
                        .or_default()
                        .push((id.clone(), i as i64));
                }
            }
            Step::Merge => {
                merge(&mut b.conn).unwrap();
            }
            Step::IdleMerge => {
                merge(&mut a.conn).unwrap();
                a.keys.release();
                assert!(a.keys.is_empty());
            }
        }
        check(&mut a, &model);
    }
    merge(&mut a.conn).unwrap();
    assert!(!tail_waiting(&a.conn).unwrap());
    for k in (0u8..8).map(key) {
        assert_eq!(
            records::merged(&a.conn, DS, &k).unwrap(),
            model.last.get(&k).cloned(),
            "{k}: merged"
        );
    }
    check(&mut b, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn dedupe_through_the_tail_and_merges_answers_as_record_state_alone(
        steps in prop::collection::vec(step(), 1..24),
    ) {
        run(steps, 64);
    }

    #[test]
    fn keys_that_share_a_fingerprint_are_told_apart(
        steps in prop::collection::vec(step(), 1..24),
    ) {
        run(steps, 1);
    }
}

#[test]
fn a_merge_leaves_the_index_empty_and_dedupe_reads_record_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fepd.db");
    let mut a = node(&path, 64);
    let recs: Vec<Rec> = (0..8)
        .map(|k| Rec {
            key: k,
            hash: 1,
            version: Some(2),
        })
        .collect();
    chunk(&mut a, &recs, true).unwrap();
    assert_eq!(a.keys.len(), 8);
    crate::state::set_cache_mib(&a.conn, 8).unwrap();
    assert_eq!(merge(&mut a.conn).unwrap(), 8);
    // The merge ran on a small cache and gave the sealing one back.
    let cache: i64 = a
        .conn
        .query_row("PRAGMA cache_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cache, -8 * 1024);
    // The same records again: unchanged, from record_state.
    assert!(chunk(&mut a, &recs, true).is_none());
    assert_eq!(a.keys.len(), 0, "the merged keys left the index");
    // An older version: stale.
    let old = Rec {
        key: 3,
        hash: 2,
        version: Some(1),
    };
    assert!(chunk(&mut a, &[old], true).is_none());
}

#[test]
fn an_older_database_is_marked_merged_up_to_its_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fepd.db");
    {
        let c = crate::state::open(&path).unwrap();
        // v8: no version or sets_last in batch_record, no merge mark.
        c.execute_batch(
            "DROP TABLE record_merge;
             ALTER TABLE batch_record DROP COLUMN version;
             ALTER TABLE batch_record DROP COLUMN sets_last;
             INSERT INTO batch (seq, sort_key, batch_id, dataset, route, count, bytes, digest, state, sealed_at)
             VALUES (7, '7', 'B7', 'case_accept', 'r', 1, 1, 'd', 'delivered', 't');
             INSERT INTO batch_record (batch_id, idx, key, hash, op) VALUES ('B7', 0, 'K', 'h', 'upsert');
             INSERT INTO record_state (dataset, key, hash, version, op, batch_id, history)
             VALUES ('case_accept', 'K', 'h', 3, 'upsert', 'B7', 'B7:0');
             PRAGMA user_version = 8;",
        )
        .unwrap();
    }
    let mut c = crate::state::open(&path).unwrap();
    assert_eq!(merged_seq(&c).unwrap(), 7);
    assert!(!tail_waiting(&c).unwrap());
    assert_eq!(merge(&mut c).unwrap(), 0);
    assert_eq!(
        records::history(&c, DS, "K").unwrap(),
        [("B7".to_string(), 0)],
        "the old batch's place once, not again from the tail"
    );
    assert_eq!(
        records::last_sealed(&c, DS, "K").unwrap().unwrap().version,
        Some(3)
    );
}
