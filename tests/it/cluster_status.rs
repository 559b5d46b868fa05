//! The fleet view (docs/cluster.md "Fleet view"), against the real
//! three-server JetStream cluster (`nats.rs`): two nodes running list with
//! their backlog and deliveries; a SIGKILLed node turns stale after three
//! heartbeats; a cleanly stopped one is `stopped`; without `[cluster]`,
//! or with no server answering, `fepd status --cluster` refuses clearly.
//! And the exchange log in the cluster (docs/cluster.md): each node's
//! entries in `FEPD_LOG`, as stored, without gaps or doubles across a
//! restart (`fepd audit show --cluster`), each verifying as its node's
//! chain (`fepd audit verify --cluster`).

use std::time::Duration;

use crate::cluster::{file, node};
use crate::harness::*;
use crate::nats::Nats;

/// `fepd status --cluster --json` as run by `env`: the nodes by name. It
/// exits 0, or 1 when a node is stale.
fn fleet(env: &Env) -> std::collections::BTreeMap<String, serde_json::Value> {
    let out = env.fepd(&["status", "--cluster", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes: std::collections::BTreeMap<_, _> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap().to_string(), n.clone()))
        .collect();
    let stale = nodes.values().any(|n| n["state"] == "stale");
    assert_eq!(out.status.code(), Some(i32::from(stale)), "{out:?}");
    nodes
}

#[test]
fn the_fleet_view_lists_running_stale_and_stopped_nodes() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let a = node(&nats, &lib, "a", "heartbeat_secs = 1");
    let b = node(&nats, &lib, "b", "heartbeat_secs = 1");
    let da = a.start_ready();
    let db = b.start_ready();
    a.drop_file("case_accept", "a1.jsonl", &file(0, 300));
    b.drop_file("case_accept", "b1.jsonl", &file(1000, 200));
    a.wait(
        "the library holds every record",
        Duration::from_secs(60),
        || lib.stats()["records"] == 500,
    );
    // Both nodes listed, running, with what they handed off and that
    // their pushes went through.
    a.wait(
        "both nodes report their hand-offs and deliveries",
        Duration::from_secs(30),
        || {
            let f = fleet(&a);
            let delivered = f
                .values()
                .filter(|n| n["last_delivery"].is_string())
                .count();
            f.len() == 2
                && f.values().all(|n| {
                    n["state"] == "running"
                        && n["handed_off_today"].as_i64().unwrap() > 0
                        && n["backlog_batches"] == 0
                })
                && delivered >= 1
        },
    );
    let f = fleet(&b);
    assert_eq!(f["a"]["version"], f["b"]["version"]);
    assert_eq!(f["a"]["alerts"], serde_json::json!([]));
    assert!(f["a"]["age_secs"].as_i64().unwrap() <= 3, "{f:?}");
    // The table names both.
    let out = a.fepd(&["status", "--cluster"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("running"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("a ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("b ")), "{text}");

    // a SIGKILLed: stale after three heartbeats; b stops cleanly: stopped.
    da.kill();
    let (st, _) = db.stop();
    assert!(st.success());
    a.wait("a turns stale", Duration::from_secs(20), || {
        fleet(&a)["a"]["state"] == "stale"
    });
    let f = fleet(&a);
    assert_eq!(f["b"]["state"], "stopped", "{f:?}");
    assert_eq!(f["b"]["stopped"], true);
    let out = a.fepd(&["status", "--cluster"]);
    assert_eq!(out.status.code(), Some(1), "a stale node: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("STALE") && text.contains("stopped"), "{text}");
}

#[test]
fn status_cluster_refuses_without_a_cluster_or_a_server() {
    // No [cluster] section: said so, exit 1.
    let env = Env::new("");
    let out = env.fepd(&["status", "--cluster"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no [cluster] section"), "{err}");
    // Servers that do not answer: named, exit 3, no backtrace.
    let (p1, p2) = (free_addr(), free_addr());
    let env = Env::new(&format!(
        "{}\n[cluster]\nnats = [\"nats://{p1}\", \"nats://{p2}\"]\nnode = \"a\"\nrequest_timeout_secs = 1\n",
        http_sink("http://127.0.0.1:9", "")
    ));
    env.set("sink.mode", "http");
    let out = env.fepd(&["status", "--cluster", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the cluster"), "{err}");
    assert!(err.contains(&p1) && err.contains(&p2), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("Backtrace"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// `fepd audit show --cluster` as run by `env`: `node`'s entries.
fn cluster_log(env: &Env, node: &str) -> Vec<serde_json::Value> {
    env.json_lines(&["audit", "show", "--cluster"])
        .into_iter()
        .filter(|l| l["node"] == node)
        .map(|l| l["entry"].clone())
        .collect()
}

#[test]
fn each_node_s_exchange_log_reaches_the_cluster_without_gaps_or_doubles_across_a_restart() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let a = node(&nats, &lib, "a", "");
    let b = node(&nats, &lib, "b", "");
    let da = a.start_ready();
    let _db = b.start_ready();
    a.drop_file("case_accept", "a1.jsonl", &file(0, 100));
    a.wait("the library holds a1", Duration::from_secs(60), || {
        lib.stats()["records"] == 100
    });
    // The cluster's copy of a's log is its log, entry for entry (hashes
    // included), in seq order.
    let same = |env: &Env, name: &str| {
        let local = env.log_entries(&[]);
        !local.is_empty() && cluster_log(env, name) == local
    };
    a.wait("a's log published", Duration::from_secs(30), || {
        same(&a, "a")
    });
    // A restart resumes after the last published entry.
    let (st, _) = da.stop();
    assert!(st.success());
    let _da = a.start_ready();
    a.drop_file("case_accept", "a2.jsonl", &file(500, 100));
    a.wait("the library holds a2", Duration::from_secs(60), || {
        lib.stats()["records"] == 200
    });
    a.wait("a's log published again", Duration::from_secs(30), || {
        same(&a, "a")
    });
    let seqs: Vec<i64> = cluster_log(&a, "a")
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // b publishes its own, beside a's.
    b.wait("b's log published", Duration::from_secs(30), || {
        same(&b, "b")
    });
    // Each node's copy verifies as its own chain (`audit verify --cluster`).
    let out = a.fepd(&["audit", "verify", "--cluster"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for n in ["a", "b"] {
        let head = format!("{n}: chain intact");
        assert!(text.lines().any(|l| l.starts_with(&head)), "{text}");
    }
    // An entry whose hash was changed on its way into the stream (here a
    // copy of a's first entry, published as node x's) breaks that node's
    // chain, and only that one: exit 1.
    let shown = a.fepd(&["audit", "show", "--json"]).stdout;
    let first = String::from_utf8(shown)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let at = first.find("\"hash\":\"").unwrap() + 8;
    let mut forged = first.clone();
    forged.replace_range(
        at..at + 1,
        if &first[at..at + 1] == "0" { "1" } else { "0" },
    );
    let url = nats.urls()[0].clone();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let ack = js.publish("fepd.log.x", forged.into()).await.unwrap();
        ack.await.unwrap();
    });
    let out = a.fepd(&["audit", "verify", "--cluster"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("x: CHAIN BROKEN"), "{text}");
    assert!(
        text.contains("entry 1: stored hash does not match"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("a: chain intact")),
        "{text}"
    );
}
