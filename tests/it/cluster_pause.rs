//! Cluster mode partitions (docs/cluster.md, "What each failure looks
//! like"), made by pausing a node (SIGSTOP … SIGCONT) rather than with
//! network namespaces: a paused node stops renewing its claim leases and
//! answering its pushes exactly as a node cut off from the cluster does,
//! and then comes back with its old view of the world. Against the real
//! three-server cluster (`nats.rs`) and `fepd simulate-library`.

use std::time::Duration;

use crate::cluster::{file, in_progress, node};
use crate::harness::*;
use crate::nats::Nats;

fn signal(d: &Daemon, sig: i32) {
    // SAFETY: a plain kill(2) to the daemon's own pid.
    let rc = unsafe { libc::kill(d.pid() as i32, sig) };
    assert_eq!(rc, 0, "kill({}, {sig})", d.pid());
}

/// Node a is paused while it reads a file from the shared spool, long
/// enough for its lease to expire; node b takes the file over. When a
/// wakes, it finds its lease gone and leaves the file to b: it seals no
/// more of it, never gives it a verdict, and marks its own row
/// `taken_over`, so its status shows nothing stuck.
#[test]
fn a_node_paused_mid_file_leaves_it_to_the_node_that_took_it_over() {
    const RECORDS: u64 = 40_000;
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let extra = "ack_wait_secs = 3\nlease_secs = 3";
    let (a, b) = (node(&nats, &lib, "a", extra), node(&nats, &lib, "b", extra));
    let spool = a.data.join("spool");
    for env in [&a, &b] {
        env.set("spool_dir", spool.to_str().unwrap());
        env.set_intake("chunk_records", 500);
        env.set("batch.max_records", 500);
    }
    let da = a.start_ready();
    a.drop_file("case_accept", "big.jsonl", &file(0, RECORDS));
    let work = spool.join("case_accept").join("work");
    a.wait(
        "node a at work on the file",
        Duration::from_secs(60),
        || a.events("batch_handed_off") > 0 && !files_in(&work).is_empty(),
    );
    signal(&da, libc::SIGSTOP);
    assert_eq!(files_in(&work).len(), 1, "a was paused mid-file");
    let _db = b.start_ready();
    b.wait("b takes the file over", Duration::from_secs(60), || {
        b.log_has("taking over a file whose claim lease expired")
    });
    // a wakes while b reads the file.
    signal(&da, libc::SIGCONT);
    a.wait("a leaves the file to b", Duration::from_secs(60), || {
        a.events("file_taken_over") == 1
    });
    assert!(a.log_has(
        "another node took over a file whose claim lease this node could not renew in time"
    ));
    b.wait("every record delivered", Duration::from_secs(240), || {
        lib.stats()["records"] == RECORDS
    });
    a.receipt("case_accept", "big.jsonl");
    let st = lib.stats();
    assert_eq!(st["records"], RECORDS, "{st}");
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");
    assert_eq!(st["keys_out_of_order"], 0, "{st}");
    // Finished by b alone; nothing left in work/.
    assert_eq!(b.events("file_done"), 1);
    assert_eq!(a.events("file_done"), 0);
    assert!(files_in(&work).is_empty());
    // a sealed no more of the file after it woke: what it committed is
    // what its file_taken_over entry records, and every batch it sealed
    // is one of the file's (the same ids b sealed).
    let left = &a.log_entries(&["--event", "file_taken_over"])[0];
    let done = left["counts"]["recordsDone"].as_i64().unwrap();
    assert!(done > 0 && (done as u64) < RECORDS, "{left}");
    assert_eq!(a.events("batch_sealed") * 500, done, "{left}");
    let b_ids: std::collections::BTreeSet<String> = b
        .log_entries(&["--event", "batch_sealed"])
        .iter()
        .map(|e| e["batch"].as_str().unwrap().to_string())
        .collect();
    for e in a.log_entries(&["--event", "batch_sealed"]) {
        assert!(b_ids.contains(e["batch"].as_str().unwrap()), "{e}");
    }
    // a's row is not stuck in progress, and a runs on.
    assert_eq!(in_progress(&a), 0);
    let mut da = da;
    assert!(
        da.wait_exit(Duration::from_millis(100)).is_none(),
        "a still runs"
    );
    for env in [&a, &b] {
        let out = env.fepd(&["audit", "verify"]);
        assert!(out.status.success(), "{out:?}");
    }
}

/// Node a is paused mid-push for longer than `ack_wait_secs`: node b
/// pushes the batch; when a wakes it reads the library's late answer,
/// records it, and goes on working. The library holds the records once
/// (batch-id idempotency).
#[test]
fn a_node_paused_mid_push_does_not_double_its_batch() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    // Every push is answered 4 s late: node a is paused while it waits.
    let lib = Library::start(&dir.path().join("lib.db"), &["--latency-ms", "4000"]);
    let a = node(&nats, &lib, "a", "ack_wait_secs = 3");
    let b = node(&nats, &lib, "b", "ack_wait_secs = 3");
    let da = a.start_ready();
    a.drop_file("case_accept", "a.jsonl", &file(0, 40));
    a.wait("batch handed off", Duration::from_secs(30), || {
        a.events("batch_handed_off") == 1
    });
    std::thread::sleep(Duration::from_millis(1500));
    signal(&da, libc::SIGSTOP);
    let _db = b.start_ready();
    b.wait("b pushed a's batch", Duration::from_secs(60), || {
        b.events("cluster_pushed") >= 1
    });
    let p = &b.log_entries(&["--event", "cluster_pushed"])[0];
    assert_eq!(p["details"]["origin"], "a");
    assert!(p["details"]["delivery"].as_i64().unwrap() >= 2, "{p}");
    signal(&da, libc::SIGCONT);
    a.wait("a records its late answer", Duration::from_secs(30), || {
        a.events("cluster_pushed") >= 1
    });
    // The library took the batch once: b's push was taken or answered
    // as a duplicate; a's push, overdue when it woke, is recorded as a
    // retry (its request timed out) or with the library's late answer, and
    // its nak or ack of a message it no longer held changes nothing.
    wait_for("the batch at the library", Duration::from_secs(30), || {
        lib.stats()["records"] == 40
    });
    let b_outcome = p["details"]["outcome"].as_str().unwrap().to_string();
    assert!(
        ["delivered", "duplicate"].contains(&b_outcome.as_str()),
        "{p}"
    );
    let late = &a.log_entries(&["--event", "cluster_pushed"])[0];
    let a_outcome = late["details"]["outcome"].as_str().unwrap();
    assert!(
        ["delivered", "duplicate", "retry"].contains(&a_outcome),
        "{late}"
    );
    // a goes on: its next file is delivered too, and nothing is doubled.
    a.drop_file("case_accept", "a2.jsonl", &file(40, 40));
    a.wait("a's next file delivered", Duration::from_secs(90), || {
        lib.stats()["records"] == 80
    });
    let st = lib.stats();
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");
    let mut da = da;
    assert!(
        da.wait_exit(Duration::from_millis(100)).is_none(),
        "a still runs"
    );
}
