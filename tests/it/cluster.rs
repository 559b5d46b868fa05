//! Cluster mode (docs/cluster.md) against a real three-server JetStream
//! cluster on loopback (`nats.rs`) and `fepd simulate-library`: sealed
//! batches handed off to the replicated stream and delivered by any node;
//! JetStream down (sealing goes on, the hand-off resumes); a server killed
//! mid-run; a node SIGKILLed mid-push, whose batch another node delivers.

use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;
use crate::nats::Nats;

/// A node `name` of the cluster, pushing to `lib`; `extra` is TOML for
/// `[cluster]`.
pub(crate) fn node(nats: &Nats, lib: &Library, name: &str, extra: &str) -> Env {
    let env = Env::new(&format!(
        "{}{}",
        http_sink(&lib.base_url, ""),
        nats.cluster_toml(name, extra)
    ));
    env.set("sink.mode", "http");
    env
}

/// `n` case_accept records from `from`, as a JSON Lines file.
pub(crate) fn file(from: u64, n: u64) -> Vec<u8> {
    data::jsonl(
        &(from..from + n).map(data::case_accept).collect::<Vec<_>>(),
        Enc::Utf8,
    )
}

/// The node's `cluster_pushed` entries.
fn pushes(env: &Env) -> Vec<serde_json::Value> {
    env.log_entries(&["--event", "cluster_pushed"])
}

/// Every record at the library exactly once, in order per key.
fn delivered_exactly_once(lib: &Library, records: u64) {
    let st = lib.stats();
    assert_eq!(st["records"], records, "{st}");
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");
    assert_eq!(st["keys_out_of_order"], 0, "{st}");
}

#[test]
fn batches_are_handed_off_and_delivered_by_any_node() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let a = node(&nats, &lib, "a", "");
    let b = node(&nats, &lib, "b", "");
    let _da = a.start_ready();
    let _db = b.start_ready();
    a.drop_file("case_accept", "a1.jsonl", &file(0, 300));
    b.drop_file("case_accept", "b1.jsonl", &file(1000, 200));
    a.drop_file(
        "evaluation",
        "e.csv",
        &data::csv(
            &(0..20).map(data::evaluation).collect::<Vec<_>>(),
            true,
            Enc::Utf8,
        ),
    );
    a.wait(
        "the library holds every record",
        Duration::from_secs(60),
        || lib.stats()["records"] == 520,
    );
    delivered_exactly_once(&lib, 520);
    // Each node handed off what it sealed, and the library's answers came
    // back to it, whichever node pushed: every batch it sealed is recorded
    // delivered on it, and nothing stays pending.
    for env in [&a, &b] {
        let sealed = env.events("batch_sealed");
        assert!(sealed > 0);
        env.wait(
            "every batch answered on its origin",
            Duration::from_secs(20),
            || env.batches_in("delivered") == sealed,
        );
        assert_eq!(env.batches_in("sealed") + env.batches_in("handed_off"), 0);
        assert_eq!(env.events("batch_handed_off"), sealed);
        assert_eq!(env.events("batch_delivered"), sealed);
    }
    // Every batch's push is in the exchange log of the node that made it,
    // with the node that sealed it.
    let all: Vec<_> = [&a, &b].iter().flat_map(|e| pushes(e)).collect();
    // (A push whose ack was lost is pushed again and answered `duplicate`.)
    let delivered: std::collections::BTreeSet<_> = all
        .iter()
        .filter(|p| ["delivered", "duplicate"].contains(&p["details"]["outcome"].as_str().unwrap()))
        .map(|p| p["batch"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        delivered.len() as i64,
        a.events("batch_sealed") + b.events("batch_sealed"),
        "{all:?}"
    );
    assert!(all.iter().any(|p| p["details"]["origin"] == "a"));
    assert!(all.iter().any(|p| p["details"]["origin"] == "b"));
    // Both chains still verify.
    for env in [&a, &b] {
        let out = env.fepd(&["audit", "verify"]);
        assert!(out.status.success(), "{out:?}");
    }
}

#[test]
fn jetstream_down_sealing_goes_on_and_the_hand_off_resumes() {
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let a = node(&nats, &lib, "a", "");
    let _d = a.start_ready();
    a.drop_file("case_accept", "first.jsonl", &file(0, 100));
    a.wait("first file delivered", Duration::from_secs(60), || {
        lib.stats()["records"] == 100
    });
    nats.kill_all();
    a.drop_file("case_accept", "second.jsonl", &file(100, 150));
    a.drop_file("case_accept", "third.jsonl", &file(250, 50));
    // Intake and sealing go on: the files get their receipts and their
    // batches wait, sealed, on this node.
    a.receipt("case_accept", "second.jsonl");
    a.receipt("case_accept", "third.jsonl");
    a.wait("batches sealed locally", Duration::from_secs(30), || {
        a.batches_in("sealed") >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lib.stats()["records"],
        100,
        "nothing is delivered meanwhile"
    );
    // The hand-off's publish fails once its wait for the servers'
    // acknowledgement (request_timeout_secs) is over.
    a.wait("the hand-off's warning", Duration::from_secs(30), || {
        a.log_has("cannot hand sealed batches off to JetStream")
    });
    assert_eq!(
        lib.stats()["records"],
        100,
        "nothing is delivered meanwhile"
    );
    nats.restart_all();
    a.wait("the rest delivered", Duration::from_secs(90), || {
        lib.stats()["records"] == 300
    });
    delivered_exactly_once(&lib, 300);
    a.wait("every batch handed off", Duration::from_secs(10), || {
        a.batches_in("sealed") == 0
    });
    // Handed off in seal order: stream sequences grow with seal order.
    let seqs: Vec<i64> = a
        .log_entries(&["--event", "batch_handed_off"])
        .iter()
        .map(|e| e["details"]["streamSeq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn a_nats_server_killed_mid_run_loses_nothing() {
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &["--latency-ms", "50"]);
    let a = node(&nats, &lib, "a", "");
    let b = node(&nats, &lib, "b", "");
    let _da = a.start_ready();
    let _db = b.start_ready();
    for i in 0..4 {
        a.drop_file("case_accept", &format!("a{i}.jsonl"), &file(i * 100, 100));
        b.drop_file(
            "case_accept",
            &format!("b{i}.jsonl"),
            &file(10_000 + i * 100, 100),
        );
    }
    a.wait("some records delivered", Duration::from_secs(60), || {
        lib.stats()["records"].as_u64().unwrap_or(0) > 0
    });
    nats.kill(0);
    for i in 4..8 {
        a.drop_file("case_accept", &format!("a{i}.jsonl"), &file(i * 100, 100));
        b.drop_file(
            "case_accept",
            &format!("b{i}.jsonl"),
            &file(10_000 + i * 100, 100),
        );
    }
    a.wait("every record delivered", Duration::from_secs(120), || {
        lib.stats()["records"] == 1600
    });
    delivered_exactly_once(&lib, 1600);
    // The killed server comes back into the cluster on its store.
    nats.restart(0);
    nats.wait_formed(Duration::from_secs(60));
}

#[test]
fn a_node_killed_mid_push_leaves_its_batch_to_another() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    // Every push is answered 4 s late: node a dies while it waits.
    let lib = Library::start(&dir.path().join("lib.db"), &["--latency-ms", "4000"]);
    let a = node(&nats, &lib, "a", "ack_wait_secs = 3");
    let b = node(&nats, &lib, "b", "ack_wait_secs = 3");
    let da = a.start_ready();
    a.drop_file("case_accept", "a.jsonl", &file(0, 40));
    a.wait("batch handed off", Duration::from_secs(30), || {
        a.events("batch_handed_off") == 1
    });
    // a holds the message (the only node running, it was given it and has
    // not acked): its push waits on the library.
    a.wait("a was given its batch", Duration::from_secs(30), || {
        nats.ack_pending("FEPD_BATCHES") == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    da.kill();
    assert_eq!(lib.stats()["records"], 0, "the push was still waiting");
    let _db = b.start_ready();
    b.wait("b delivered a's batch", Duration::from_secs(60), || {
        lib.stats()["records"] == 40
    });
    delivered_exactly_once(&lib, 40);
    b.wait("b recorded the push", Duration::from_secs(10), || {
        !pushes(&b).is_empty()
    });
    let p = &pushes(&b)[0];
    assert_eq!(p["details"]["origin"], "a");
    assert_eq!(p["details"]["node"], "b");
    assert_eq!(p["details"]["outcome"], "delivered");
    assert!(p["details"]["delivery"].as_i64().unwrap() >= 2, "{p}");
    assert_eq!(pushes(&a).len(), 0, "a died before its answer");
}

#[test]
fn check_config_lists_the_cluster_section_problems() {
    let env = Env::new("\n[cluster]\nnats = []\nnode = \"节点 1\"\nstream_replicas = 7\n");
    let out = env.fepd(&["check-config"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for want in [
        "cluster.nats: list at least one JetStream server",
        "cluster.node: \"节点 1\" must be 1–64 letters",
        "cluster.stream_replicas: must be 1..=5",
        "cluster mode delivers by push",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

/// The acceptance run: three nodes on one shared spool, files dropped
/// across the run, one node and one NATS server SIGKILLed mid-run. At the
/// library every record is there once, in order per key; every file was
/// finished by exactly one node, and the killed node, restarted, shows
/// none of its files stuck in progress. 100,000 records, as the issue's
/// acceptance asks (about 2 min 10 s in a debug build on a loaded 2-core
/// machine); `FEPD_CLUSTER_RECORDS` sets another number.
#[test]
fn three_nodes_on_one_spool_survive_a_node_and_a_server_killed() {
    const FILES: u64 = 8;
    let records: u64 = std::env::var("FEPD_CLUSTER_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let per_file = records.div_ceil(FILES);
    // Waits grow with the run (12,000 records: 1×).
    let scale = records.div_ceil(12_000) as u32;
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let extra = "ack_wait_secs = 3\nlease_secs = 3";
    let nodes: Vec<Env> = ["a", "b", "c"]
        .iter()
        .map(|n| node(&nats, &lib, n, extra))
        .collect();
    let spool = nodes[0].data.join("spool");
    for env in &nodes {
        env.set("spool_dir", spool.to_str().unwrap());
        env.set_intake("chunk_records", 100);
        env.set("batch.max_records", 100);
    }
    // Node a alone claims the first files, and dies holding them.
    let a = nodes[0].start_ready();
    let shared = &nodes[0];
    for f in 0..FILES / 2 {
        shared.drop_file(
            "case_accept",
            &format!("f{f}.jsonl"),
            &file(f * per_file, per_file),
        );
    }
    // Killed at once, while a file is still in work/: starting the other
    // nodes first gave a the seconds it needs to finish every file, and
    // then there was nothing to take over.
    let work = spool.join("case_accept").join("work");
    shared.wait("node a at work on a file", Duration::from_secs(60), || {
        nodes[0].events("batch_handed_off") > 0
            && std::fs::read_dir(&work).is_ok_and(|mut d| d.next().is_some())
    });
    a.kill();
    nats.kill(1);
    let daemons: Vec<Daemon> = nodes[1..].iter().map(|e| e.start_ready()).collect();
    for f in FILES / 2..FILES {
        shared.drop_file(
            "case_accept",
            &format!("f{f}.jsonl"),
            &file(f * per_file, per_file),
        );
    }
    let total = FILES * per_file;
    // Another node takes a's files over once their leases expired; then
    // a comes back (as systemd restarts it) and hands off what it had
    // sealed but not handed off before it died.
    nodes[1].wait("a take-over", Duration::from_secs(60), || {
        nodes[1..]
            .iter()
            .any(|e| e.log_has("taking over a file whose claim lease expired"))
    });
    let _a = nodes[0].start_ready();
    // The simulator's stats check every record (more than once, out of
    // order): asked once a second, not at every poll, beside the pushes.
    nodes[1].wait(
        "every record delivered",
        Duration::from_secs(240) * scale,
        || {
            std::thread::sleep(Duration::from_secs(1));
            lib.stats()["records"] == total
        },
    );
    delivered_exactly_once(&lib, total);
    // Every file finished once, by one node, and nothing left in work/.
    for f in 0..FILES {
        nodes[1].wait("receipt", Duration::from_secs(60), || {
            shared
                .spool("case_accept", "done")
                .join(format!("f{f}.jsonl.receipt.json"))
                .exists()
        });
    }
    shared.wait("work/ empty", Duration::from_secs(30), || {
        files_in(&shared.spool("case_accept", "work")).is_empty()
    });
    let finished: Vec<String> = nodes
        .iter()
        .flat_map(|e| e.log_entries(&["--event", "file_done"]))
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(finished.len() as u64, FILES, "{finished:?}");
    let distinct: std::collections::BTreeSet<_> = finished.iter().collect();
    assert_eq!(
        distinct.len() as u64,
        FILES,
        "a file finished twice: {finished:?}"
    );
    // The restarted node a left (`taken_over`) or finished every file it
    // had been reading: none stays in progress.
    nodes[0].wait("a's files settled", Duration::from_secs(30), || {
        in_progress(&nodes[0]) == 0
    });
    drop(daemons);
}

/// The files `env` shows in `work/` in progress (`fepd status --json`).
pub(crate) fn in_progress(env: &Env) -> usize {
    env.status()["work_files"].as_object().map_or(0, |m| {
        m.values().map(|v| v.as_array().map_or(0, Vec::len)).sum()
    })
}
