//! Model check of the outbox: random sequences of sealing, library answers
//! and operator actions drive the real transitions (`seal`, `apply`, the
//! operator's `retry` and `park`) on a real state database, and after every
//! step the outbox and its exchange log are compared with a simple
//! in-memory model of what docs/protocol.md §4 promises.
//!
//! The model knows nothing of SQL or sort keys: a batch's place in its
//! route is a path (`[seq]` for a sealed batch, the parent's path plus
//! `1`/`2` for the halves of a split), compared lexicographically.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use chrono::FixedOffset;
use proptest::prelude::*;
use rusqlite::{Connection, TransactionBehavior};
use serde_json::{Value, json};

use super::{BatchState, RemoteRejected, Reply, Sealing};
use crate::canon;
use crate::seal::Staged;
use crate::state::batches::{self, BatchRow};
use crate::state::entries;
use crate::state::log::{self, Parking};
use crate::validate::Op as RecordOp;

const ROUTES: [&str; 2] = ["case/accept", "case/process"];
const DATASETS: [&str; 2] = ["case_accept", "case_process"];

/// One step of a run.
#[derive(Debug, Clone)]
enum Step {
    /// Seal a batch of `records` new records on a route.
    Seal { route: usize, records: usize },
    /// The library answers for the route's next pending batch.
    Answer { route: usize, answer: Answer },
    /// An answer arrives for a batch that is no longer pending (the
    /// operator parked it mid-request, or a stale duplicate reply).
    LateAnswer { pick: usize, answer: Answer },
    /// `fepd batches retry` on a parked batch.
    OperatorRetry { pick: usize },
    /// `fepd batches park` on a pending batch.
    OperatorPark { pick: usize },
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Delivered { rejected_first: bool },
    Duplicate,
    Park,
    TooLarge,
    Retry,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => any::<bool>().prop_map(|rejected_first| Answer::Delivered { rejected_first }),
        1 => Just(Answer::Duplicate),
        1 => Just(Answer::Park),
        2 => Just(Answer::TooLarge),
        1 => Just(Answer::Retry),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..ROUTES.len(), 1usize..6).prop_map(|(route, records)| Step::Seal { route, records }),
        6 => (0..ROUTES.len(), answer()).prop_map(|(route, answer)| Step::Answer { route, answer }),
        1 => (any::<usize>(), answer()).prop_map(|(pick, answer)| Step::LateAnswer { pick, answer }),
        1 => any::<usize>().prop_map(|pick| Step::OperatorRetry { pick }),
        1 => any::<usize>().prop_map(|pick| Step::OperatorPark { pick }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Delivered,
    Parked,
    Split,
}

impl State {
    /// The stored state the model's state stands for (nothing is exported:
    /// this is push mode).
    fn stored(self) -> BatchState {
        match self {
            State::Pending => BatchState::Sealed,
            State::Delivered => BatchState::Delivered,
            State::Parked => BatchState::Parked,
            State::Split => BatchState::Split,
        }
    }
}

#[derive(Debug, Clone)]
struct ModelBatch {
    route: usize,
    path: Vec<u32>,
    keys: Vec<String>,
    state: State,
    /// Failed attempts since it was sealed or last retried by an operator.
    attempts: i64,
}

/// The in-memory model: every batch ever sealed or split off, by id.
#[derive(Default)]
struct Model {
    batches: BTreeMap<String, ModelBatch>,
    /// Every record key sealed so far (keys are never reused).
    sealed_keys: Vec<String>,
    next_key: u64,
    next_seq: u32,
    /// The exchange-log entries so far: (event, batch), in order.
    log: Vec<(&'static str, String)>,
}

impl Model {
    /// The route's oldest pending batch, in seal order.
    fn next_pending(&self, route: usize) -> Option<&str> {
        self.batches
            .iter()
            .filter(|(_, b)| b.route == route && b.state == State::Pending)
            .min_by(|a, b| a.1.path.cmp(&b.1.path))
            .map(|(id, _)| id.as_str())
    }

    /// The ids in `state`, in a stable order, for picking one.
    fn in_state(&self, pred: impl Fn(State) -> bool) -> Vec<String> {
        self.batches
            .iter()
            .filter(|(_, b)| pred(b.state))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn logged(&mut self, event: &'static str, batch: &str) {
        self.log.push((event, batch.to_owned()));
    }

    fn set(&mut self, id: &str, state: State) {
        self.batches.get_mut(id).expect("model batch").state = state;
    }
}

/// What the real side remembers to check that nothing written once
/// changes: bodies and delivery receipts.
#[derive(Default)]
struct Written {
    bodies: HashMap<String, Vec<u8>>,
    receipts: HashMap<String, (Option<String>, Option<String>)>,
}

struct Harness {
    _dir: tempfile::TempDir,
    spool: PathBuf,
    conn: Connection,
    tz: FixedOffset,
    model: Model,
    written: Written,
    receipt_no: u64,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::state::open(&dir.path().join("state/fepd.db")).expect("state db");
        // Durability is not what is checked here; fsyncs would only make
        // the run slow.
        conn.pragma_update(None, "synchronous", "OFF")
            .expect("pragma");
        Harness {
            spool: dir.path().join("spool"),
            _dir: dir,
            conn,
            tz: FixedOffset::east_opt(8 * 3600).expect("offset"),
            model: Model::default(),
            written: Written::default(),
            receipt_no: 0,
        }
    }

    fn row(&self, id: &str) -> BatchRow {
        batches::get(&self.conn, id)
            .expect("get")
            .expect("batch exists")
    }

    /// Runs `f` in a transaction of its own and commits it.
    fn tx<T>(&mut self, f: impl FnOnce(&Connection, FixedOffset) -> rusqlite::Result<T>) -> T {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("tx");
        let out = f(&tx, self.tz).expect("transition");
        tx.commit().expect("commit");
        out
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Seal { route, records } => self.seal(route, records),
            Step::Answer { route, answer } => {
                let Some(id) = self.model.next_pending(route).map(str::to_owned) else {
                    return;
                };
                self.answer(&id, answer, true);
            }
            Step::LateAnswer { pick, answer } => {
                let ids = self.model.in_state(|s| s != State::Pending);
                if ids.is_empty() {
                    return;
                }
                let id = ids[pick % ids.len()].clone();
                self.answer(&id, answer, false);
            }
            Step::OperatorRetry { pick } => {
                let ids = self.model.in_state(|s| s == State::Parked);
                if ids.is_empty() {
                    return;
                }
                let id = &ids[pick % ids.len()];
                self.operator_retry(id);
                let m = self.model.batches.get_mut(id).expect("model batch");
                (m.state, m.attempts) = (State::Pending, 0);
                self.model.logged("batch_retried", id);
            }
            Step::OperatorPark { pick } => {
                let ids = self.model.in_state(|s| s == State::Pending);
                if ids.is_empty() {
                    return;
                }
                let id = &ids[pick % ids.len()];
                self.operator_park(id);
                self.model.set(id, State::Parked);
                self.model.logged("batch_parked", id);
            }
        }
    }

    /// Seals a batch through `outbox::seal`, in a transaction of its own
    /// as the daemon's chunk does.
    fn seal(&mut self, route: usize, n: usize) {
        let records: Vec<Staged> = (0..n)
            .map(|_| {
                self.model.next_key += 1;
                let key = format!("K{:05}", self.model.next_key);
                let canonical = canon::to_canonical(&json!({"project_no": key, "n": n}));
                Staged {
                    op: if self.model.next_key.is_multiple_of(7) {
                        RecordOp::Delete
                    } else {
                        RecordOp::Upsert
                    },
                    hash: canon::sha256_hex(canonical.as_bytes()),
                    key,
                    version: None,
                    fallback_version: None,
                    canonical,
                }
            })
            .collect();
        let batch_id = self.tx(|tx, tz| {
            let s = Sealing {
                tz,
                sender: "230000-zwfw",
                dataset: DATASETS[route],
                schema_version: "1",
                route: ROUTES[route],
                file_id: None,
                batch_id: None,
            };
            let mut keys = crate::state::recent::RecentKeys::new(DATASETS[route]);
            keys.sync(tx)?;
            super::seal(tx, &s, &mut keys, &records)
        });
        self.model.logged("batch_sealed", &batch_id);

        self.model.next_seq += 1;
        let keys: Vec<String> = records.iter().map(|r| r.key.clone()).collect();
        self.model.sealed_keys.extend(keys.iter().cloned());
        self.model.batches.insert(
            batch_id,
            ModelBatch {
                route,
                path: vec![self.model.next_seq],
                keys,
                state: State::Pending,
                attempts: 0,
            },
        );
    }

    /// Applies a library answer through `outbox::apply` with the batch's
    /// row as the sender last read it; `pending` says whether the model
    /// expects the answer to take effect.
    fn answer(&mut self, id: &str, answer: Answer, pending: bool) {
        let row = self.row(id);
        let reply = match answer {
            Answer::Delivered { rejected_first } => {
                self.receipt_no += 1;
                Reply::Delivered {
                    receipt_id: format!("R{}", self.receipt_no),
                    accepted: None,
                    rejected: if rejected_first {
                        vec![RemoteRejected {
                            index: 0,
                            key: None,
                            code: "422001".into(),
                            message: "refused".into(),
                        }]
                    } else {
                        vec![]
                    },
                    duplicate: false,
                }
            }
            Answer::Duplicate => Reply::Delivered {
                receipt_id: "R-original".into(),
                accepted: Some(row.count),
                rejected: vec![],
                duplicate: true,
            },
            Answer::Park => Reply::Park {
                reason: "HTTP 400 400002 digest mismatch".into(),
            },
            Answer::TooLarge => Reply::TooLarge,
            Answer::Retry => Reply::Retry {
                wait: Some(Duration::ZERO),
                reason: "HTTP 503".into(),
            },
        };
        super::apply(
            &mut self.conn,
            self.tz,
            &self.spool,
            &Default::default(),
            &row,
            reply,
        )
        .expect("apply");
        let m = self.model.batches.get_mut(id).expect("model batch");
        if !pending {
            // A late answer changes nothing, but a failed attempt still
            // counts on a parked batch (it was on the wire).
            if matches!(answer, Answer::Retry) && m.state == State::Parked {
                m.attempts += 1;
                self.model.logged("batch_sent", id);
            }
            return;
        }
        match answer {
            Answer::Delivered { rejected_first } => {
                m.state = State::Delivered;
                self.model.logged("batch_delivered", id);
                if rejected_first {
                    self.model.logged("records_library_rejected", id);
                }
            }
            Answer::Duplicate => {
                m.state = State::Delivered;
                self.model.logged("batch_delivered", id);
            }
            Answer::Park => {
                m.state = State::Parked;
                self.model.logged("batch_parked", id);
            }
            Answer::Retry => {
                m.attempts += 1;
                self.model.logged("batch_sent", id);
            }
            Answer::TooLarge if m.keys.len() < 2 => {
                m.state = State::Parked;
                self.model.logged("batch_parked", id);
            }
            Answer::TooLarge => {
                m.state = State::Split;
                let (route, path, keys) = (m.route, m.path.clone(), m.keys.clone());
                let mid = keys.len().div_ceil(2);
                for (n, part) in [(1u32, &keys[..mid]), (2, &keys[mid..])] {
                    let mut p = path.clone();
                    p.push(n);
                    self.model.batches.insert(
                        format!("{id}.{n}"),
                        ModelBatch {
                            route,
                            path: p,
                            keys: part.to_vec(),
                            state: State::Pending,
                            attempts: 0,
                        },
                    );
                }
                self.model.logged("batch_split", id);
            }
        }
    }

    /// `fepd batches retry ID`: `outbox::retry`, as cli/batches.rs calls it.
    fn operator_retry(&mut self, id: &str) {
        let row = self.row(id);
        let done = self.tx(|tx, tz| super::retry(tx, tz, &row, "operator"));
        assert!(done, "{id} was parked");
    }

    /// `fepd batches park ID`: `outbox::park`, as cli/batches.rs calls it.
    fn operator_park(&mut self, id: &str) {
        let row = self.row(id);
        let why = "parked by operator";
        let by = Parking::Operator {
            reason: why,
            by: "operator",
        };
        let done = self.tx(|tx, tz| super::park(tx, tz, &row, by));
        assert!(done, "{id} was pending");
    }

    /// Every invariant, after a step.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let all = batches::list(&self.conn, None, None, i64::MAX).expect("list");

        // The outbox holds exactly the model's batches, in the model's states.
        let real: BTreeMap<&str, &BatchRow> =
            all.iter().map(|b| (b.batch_id.as_str(), b)).collect();
        prop_assert_eq!(
            real.keys().copied().collect::<Vec<_>>(),
            self.model
                .batches
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
        for (id, m) in &self.model.batches {
            let b = real[id.as_str()];
            prop_assert_eq!(b.state, m.state.stored(), "state of {}", id);
            prop_assert_eq!(b.route.as_str(), ROUTES[m.route]);
            prop_assert_eq!(b.count as usize, m.keys.len());
            prop_assert_eq!(b.attempts, m.attempts, "attempts of {}", id);
        }

        // Every outcome, and nothing else, is an exchange-log entry, in
        // the order the steps happened.
        let mut logged: Vec<(String, String)> = Vec::new();
        entries::each_matching(&self.conn, &Default::default(), |e| {
            logged.push((e.event, e.batch.unwrap_or_default()));
            Ok::<_, rusqlite::Error>(std::ops::ControlFlow::Continue(()))
        })
        .expect("log");
        let want: Vec<(String, String)> = self
            .model
            .log
            .iter()
            .map(|(e, b)| (e.to_string(), b.clone()))
            .collect();
        prop_assert_eq!(logged, want);

        // Per route, the next pending batch is the model's oldest pending
        // one (so a parked batch never blocks its route).
        for (r, route) in ROUTES.iter().enumerate() {
            let next = batches::next_for_route(&self.conn, route).expect("next");
            prop_assert_eq!(
                next.as_ref().map(|b| b.batch_id.as_str()),
                self.model.next_pending(r),
                "next on {}",
                route
            );
            if let Some(b) = next {
                prop_assert_eq!(b.state, BatchState::Sealed);
            }
        }

        // No record lost or duplicated: every sealed key is in exactly one
        // live batch (split parents do not count, their halves do), and in
        // the batch the model says.
        let mut live: Vec<(String, String)> = Vec::new();
        for b in real.values().filter(|b| b.state != BatchState::Split) {
            for idx in 0..b.count {
                let key = batches::record_key(&self.conn, &b.batch_id, idx).expect("key");
                live.push((key.expect("a key per record"), b.batch_id.clone()));
            }
        }
        live.sort();
        let mut want: Vec<(String, String)> = self
            .model
            .batches
            .iter()
            .filter(|(_, b)| b.state != State::Split)
            .flat_map(|(id, b)| b.keys.iter().map(move |k| (k.clone(), id.clone())))
            .collect();
        want.sort();
        prop_assert_eq!(&live, &want);
        let mut keys: Vec<&String> = live.iter().map(|(k, _)| k).collect();
        keys.dedup();
        prop_assert_eq!(keys.len(), self.model.sealed_keys.len(), "each key once");

        for b in &all {
            // Bodies never change once written.
            let body = batches::body(&self.conn, &b.batch_id)
                .expect("body")
                .expect("has body");
            let first = self
                .written
                .bodies
                .entry(b.batch_id.clone())
                .or_insert_with(|| body.clone());
            prop_assert!(*first == body, "body of {} changed", b.batch_id);

            // A delivered batch keeps its receipt and delivery time.
            if b.state == BatchState::Delivered {
                let now = (b.receipt_id.clone(), b.delivered_at.clone());
                let first = self
                    .written
                    .receipts
                    .entry(b.batch_id.clone())
                    .or_insert_with(|| now.clone());
                prop_assert_eq!(&*first, &now, "receipt of {}", b.batch_id);
            } else {
                prop_assert!(
                    !self.written.receipts.contains_key(&b.batch_id),
                    "{} left delivered",
                    b.batch_id
                );
            }

            // Every body verifies as the library would check it: record
            // hashes over the data, the digest over the hashes, the count,
            // and the keys the model expects, in order.
            let v: Value = serde_json::from_slice(&body).expect("body is JSON");
            let recs = v["records"].as_array().expect("records");
            let hashes: Vec<&str> = recs
                .iter()
                .map(|r| r["hash"].as_str().unwrap_or(""))
                .collect();
            for r in recs {
                prop_assert_eq!(
                    canon::record_hash(&r["data"]),
                    r["hash"].as_str().unwrap_or("")
                );
            }
            let digest = canon::batch_digest(hashes.iter().copied());
            prop_assert_eq!(v["digest"].as_str(), Some(digest.as_str()));
            prop_assert_eq!(&b.digest, &digest);
            prop_assert_eq!(v["count"].as_u64(), Some(recs.len() as u64));
            prop_assert_eq!(v["batchId"].as_str(), Some(b.batch_id.as_str()));
            let body_keys: Vec<&str> = recs
                .iter()
                .map(|r| r["key"].as_str().unwrap_or(""))
                .collect();
            let model_keys: Vec<&str> = self.model.batches[&b.batch_id]
                .keys
                .iter()
                .map(String::as_str)
                .collect();
            prop_assert_eq!(body_keys, model_keys);
        }

        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    /// The outbox against its model, checked after every step.
    #[test]
    fn outbox_follows_its_model(steps in prop::collection::vec(step(), 1..60)) {
        let mut h = Harness::new();
        for s in &steps {
            h.apply(s);
            h.check()?;
        }
        // Every outcome went into the exchange log, and the chain holds
        // (checked once: recomputing the chain is the slow part).
        prop_assert!(log::verify(&h.conn).expect("verify").is_ok());
    }
}

/// A 413 answered for a batch the operator parked while it was in flight
/// must not split it: its records would then be both parked and pending.
#[test]
fn late_too_large_does_not_split_a_parked_batch() {
    let mut h = Harness::new();
    h.seal(0, 4);
    let id = h.model.next_pending(0).expect("pending").to_owned();
    h.operator_park(&id);
    h.model.set(&id, State::Parked);
    h.model.logged("batch_parked", &id);
    h.answer(&id, Answer::TooLarge, false);
    h.check().expect("invariants hold");
}
