//! The library's answers back to a batch's origin in cluster mode
//! (docs/cluster.md "Answers"), against a real three-server JetStream
//! cluster on loopback and `fepd simulate-library`: another node pushes
//! the batches one node sealed; once the origin is back, its batches are
//! delivered, parked or split on it as if it had pushed them itself, the
//! records the library refused are reported beside their file, and a
//! parked batch is retried with `fepd batches retry`.

use std::time::Duration;

use crate::cluster::file;
use crate::data::{self, Enc};
use crate::harness::*;
use crate::nats::Nats;

/// Every route but evaluation's: the library answers its batches 400.
const NO_EVALUATION: &str = "zwfw/item_catalog,zwfw/item_task,zwfw/case_accept,zwfw/case_process,zwfw/case_result,culture/service_stats,cgdsj/event_report";

/// A node named `name` pushing to the library at `addr`.
fn node_at(nats: &Nats, addr: &str, name: &str) -> Env {
    let env = Env::new(&format!(
        "{}{}",
        http_sink(&format!("http://{addr}"), ""),
        nats.cluster_toml(name, "ack_wait_secs = 5")
    ));
    env.set("sink.mode", "http");
    env
}

/// The node's batches as `fepd batches list --json` shows them.
fn batches(env: &Env) -> Vec<serde_json::Value> {
    let out = env.fepd(&["batches", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The one batch of `dataset` in state `state` on `env`.
fn batch_of(env: &Env, dataset: &str, state: &str) -> String {
    let all = batches(env);
    let found: Vec<_> = all
        .iter()
        .filter(|b| b["dataset"] == dataset && b["state"] == state)
        .collect();
    assert_eq!(found.len(), 1, "{all:#?}");
    found[0]["batch_id"].as_str().unwrap().to_string()
}

#[test]
fn another_node_s_answers_reach_the_origin_and_a_parked_batch_is_retried() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lib.db");
    let addr = free_addr();
    // Node a seals while the library is away: its pushes fail, and every
    // batch it sealed waits in the stream.
    let a = node_at(&nats, &addr, "a");
    let da = a.start_ready();
    let refused = data::jsonl(
        &(0..10).map(data::case_accept).collect::<Vec<_>>(),
        Enc::Utf8,
    );
    a.drop_file("case_accept", "small.jsonl", &refused);
    a.drop_file("case_accept", "big.jsonl", &file(1000, 300));
    let ev: Vec<_> = (0..3).map(data::evaluation).collect();
    a.drop_file("evaluation", "e.jsonl", &data::jsonl(&ev, Enc::Utf8));
    a.wait(
        "a handed off three batches",
        Duration::from_secs(60),
        || a.batches_in("handed_off") == 3,
    );
    da.stop();
    // The library comes: it refuses record 3, does not know evaluation's
    // route, and takes at most 200 records a batch. Node b pushes a's
    // batches.
    let args = [
        "--reject-keys-matching",
        "000003",
        "--routes",
        NO_EVALUATION,
        "--max-records",
        "200",
    ];
    let lib = Library::start_on(&addr, &db, &args);
    let b = node_at(&nats, &addr, "b");
    let db_ = b.start_ready();
    let from_a = |env: &Env| -> Vec<serde_json::Value> {
        env.log_entries(&["--event", "cluster_pushed"])
            .into_iter()
            .filter(|p| p["details"]["origin"] == "a")
            .collect()
    };
    // (A push whose ack came late on a loaded machine is pushed again and
    // answered `duplicate`.)
    let outcomes = || -> std::collections::BTreeSet<String> {
        from_a(&b)
            .iter()
            .map(|p| match p["details"]["outcome"].as_str().unwrap() {
                "duplicate" => "delivered".to_string(),
                o => o.to_string(),
            })
            .collect()
    };
    b.wait(
        "b pushed a's three batches",
        Duration::from_secs(60),
        || outcomes().len() == 3,
    );
    let outcomes = outcomes();
    assert!(outcomes.contains("delivered"), "{outcomes:?}");
    assert!(outcomes.contains("parked"), "{outcomes:?}");
    assert!(outcomes.contains("too_large"), "{outcomes:?}");
    // While a is away its batches stay handed off there.
    assert_eq!(a.batches_in("handed_off"), 3);

    // Back, a applies the answers: the small file's batch is delivered,
    // with the refused record reported beside the file; evaluation's is
    // parked; the big one is split, and its halves are handed off and
    // delivered.
    let da = a.start_ready();
    a.wait("a's answers applied", Duration::from_secs(60), || {
        a.batches_in("delivered") == 3 && a.batches_in("parked") == 1
    });
    assert_eq!(a.batches_in("split"), 1);
    assert_eq!(a.batches_in("handed_off"), 0);
    let done = a.spool("case_accept", "done");
    let report = done.join("small.jsonl.library-rejected.json");
    a.wait("the refusal report", Duration::from_secs(10), || {
        report.exists()
    });
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["libraryRejected"], 1, "{doc:#}");
    assert_eq!(doc["records"][0]["code"], "422001");
    let delivered = a.log_entries(&["--event", "batch_delivered"]);
    assert!(
        delivered.iter().all(|e| e["details"]["via"] == "cluster"),
        "{delivered:#?}"
    );
    let st = lib.stats();
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");

    // The operator fixes the library's routes and retries the parked
    // batch: it is handed off again under a new message id (the stream
    // would drop its first one for a day) and delivered.
    lib.stop();
    let lib = Library::start_on(&addr, &db, &["--reject-keys-matching", "000003"]);
    let parked = batch_of(&a, "evaluation", "parked");
    let out = a.fepd(&["batches", "retry", &parked]);
    assert!(out.status.success(), "{out:?}");
    a.wait(
        "the retried batch delivered",
        Duration::from_secs(60),
        || a.batches_in("delivered") == 4,
    );
    let handoffs = a
        .log_entries(&["--event", "batch_handed_off"])
        .into_iter()
        .filter(|e| e["batch"] == parked.as_str())
        .count();
    assert_eq!(handoffs, 2);
    let st = lib.stats();
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");
    drop((da, db_));
}
