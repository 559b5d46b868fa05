//! Operator actions and sink changes: bulk retry/park with who did it,
//! pull → push → pull switches that keep every batch and the seal order,
//! and pull-mode acknowledgements fepd did not expect.

use std::process::Command;
use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

/// Drops `name` with case_accept records `from..from+n` and waits until it
/// is done, so batches are sealed in the order files are dropped.
fn drop_done(env: &Env, name: &str, from: u64, n: u64) {
    let recs: Vec<_> = (from..from + n).map(data::case_accept).collect();
    env.drop_file("case_accept", name, &data::jsonl(&recs, Enc::Utf8));
    env.wait(&format!("{name} done"), Duration::from_secs(20), || {
        env.log_entries(&["--event", "file_done", "--file", name])
            .len()
            == 1
    });
}

/// Batch ids of `dataset` in seal order.
fn sealed_order(env: &Env, dataset: &str) -> Vec<String> {
    env.batches(None)
        .iter()
        .filter(|b| b["dataset"] == dataset)
        .map(|b| b["batch_id"].as_str().unwrap().to_string())
        .collect()
}

/// The `by` of every entry of `event`.
fn by_of(env: &Env, event: &str) -> Vec<String> {
    let out = env.fepd(&["audit", "show", "--event", event, "--json"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["details"]["by"].as_str().unwrap_or("-").to_string()
        })
        .collect()
}

fn set_mode(env: &Env, from: &str, to: &str) {
    env.edit_config(|t| {
        let sink = t["sink"].as_table_mut().unwrap();
        assert_eq!(sink["mode"].as_str(), Some(from));
        sink.insert("mode".into(), to.into());
    });
}

#[test]
fn bulk_park_and_retry_are_logged_with_who_did_it() {
    let env = Env::new("");
    let d = env.start();
    drop_done(&env, "a.jsonl", 0, 5);
    drop_done(&env, "b.jsonl", 5, 5);
    env.drop_file(
        "evaluation",
        "e.jsonl",
        &data::jsonl(&(0..3).map(data::evaluation).collect::<Vec<_>>(), Enc::Utf8),
    );
    env.wait("3 batches exported", Duration::from_secs(20), || {
        env.batches_in("exported") == 3
    });

    let out = env.fepd(&[
        "batches",
        "park",
        "--dataset",
        "case_accept",
        "--by",
        "张三",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 batch(es) parked (by 张三)"));
    assert_eq!(env.batches_in("parked"), 2);
    assert_eq!(env.batches_in("exported"), 1, "evaluation is untouched");
    assert_eq!(by_of(&env, "batch_parked"), ["张三", "张三"]);

    let out = env.fepd(&[
        "batches", "retry", "--all", "--state", "parked", "--by", "李四",
    ]);
    assert!(out.status.success(), "{out:?}");
    env.wait("re-exported", Duration::from_secs(20), || {
        env.batches_in("exported") == 3
    });
    assert_eq!(by_of(&env, "batch_retried"), ["李四", "李四"]);

    // Without --by: the OS user.
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let id = sealed_order(&env, "evaluation").remove(0);
    let out = env.fepd(&["batches", "park", &id]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(by_of(&env, "batch_parked").last().unwrap(), me.trim());

    // Mistakes are refused, naming what is wrong, and change nothing.
    let out = env.fepd(&["batches", "retry"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = env.fepd(&["batches", "retry", "--all", "--state", "sealed"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = env.fepd(&["batches", "park", "--dataset", "case_acept"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("case_acept"));
    assert_eq!(env.batches_in("parked"), 1);
    assert!(env.fepd(&["audit", "verify"]).status.success());
    d.stop();
}

#[test]
fn pull_to_push_delivers_every_exported_batch_in_seal_order_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    // `inflight = 1`: strict seal order, which the end checks (with more in
    // flight, batches with disjoint keys may pass each other: push_order.rs).
    let env = Env::new(&http_sink(&lib.base_url, "inflight = 1"));
    let d = env.start();
    drop_done(&env, "a.jsonl", 0, 10);
    drop_done(&env, "b.jsonl", 10, 10);
    drop_done(&env, "c.jsonl", 20, 10);
    env.wait("3 batches exported", Duration::from_secs(20), || {
        env.batches_in("exported") == 3
    });
    let order = sealed_order(&env, "case_accept");
    d.stop();
    // The collector took the first batch before the switch.
    env.ack(
        "case_accept",
        &order[0],
        r#"{"receiptId":"R-pull-1","accepted":10,"rejected":[]}"#,
    );

    set_mode(&env, "outbox", "http");
    let d = env.start();
    env.wait("switch done", Duration::from_secs(20), || {
        env.events("sink_switched") == 1
    });
    drop_done(&env, "d.jsonl", 30, 10);
    env.wait("all delivered", Duration::from_secs(30), || {
        env.batches_in("delivered") == 4
    });
    let stored: Vec<String> = lib
        .get("/sim/batches")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["batchId"].as_str().unwrap().to_string())
        .collect();
    let order = sealed_order(&env, "case_accept");
    assert_eq!(
        stored,
        order[1..],
        "pushed in seal order, the acked one not again"
    );
    assert_eq!(lib.stats()["records"], 30);
    // The outbox holds no batch for the collector any more.
    assert!(
        !files_in(&env.outbox("case_accept"))
            .iter()
            .any(|n| n.ends_with(".json")),
        "{:?}",
        files_in(&env.outbox("case_accept"))
    );
    d.stop();

    // Push → pull: a batch push mode could not deliver is exported.
    lib.stop();
    let d = env.start();
    drop_done(&env, "e.jsonl", 40, 10);
    d.stop();
    assert_eq!(env.batches_in("sealed"), 1);
    set_mode(&env, "http", "outbox");
    let d = env.start();
    env.wait(
        "exported after the switch back",
        Duration::from_secs(20),
        || env.batches_in("exported") == 1,
    );
    let last = sealed_order(&env, "case_accept").pop().unwrap();
    assert!(
        env.outbox("case_accept")
            .join(format!("{last}.json"))
            .exists()
    );
    assert!(env.fepd(&["audit", "verify"]).status.success());
    d.stop();
}

#[test]
fn a_short_ack_is_a_discrepancy_and_an_ack_for_a_parked_batch_delivers_it() {
    let env = Env::new("");
    let d = env.start();
    drop_done(&env, "a.jsonl", 0, 10);
    drop_done(&env, "b.jsonl", 10, 4);
    env.wait("2 batches exported", Duration::from_secs(20), || {
        env.batches_in("exported") == 2
    });
    let order = sealed_order(&env, "case_accept");

    // The collector accounts for 1 record of 10.
    env.ack(
        "case_accept",
        &order[0],
        r#"{"receiptId":"R-short","accepted":1,"rejected":[]}"#,
    );
    // The operator parks the second, but the collector had taken it.
    assert!(
        env.fepd(&["batches", "park", &order[1], "--by", "ops"])
            .status
            .success()
    );
    env.ack(
        "case_accept",
        &order[1],
        r#"{"receiptId":"R-late","accepted":4,"rejected":[]}"#,
    );
    env.wait("both delivered", Duration::from_secs(20), || {
        env.batches_in("delivered") == 2
    });
    // The files move to delivered/ once the delivery is committed.
    let delivered = env.outbox("case_accept").join("delivered");
    env.wait("the late ack filed", Duration::from_secs(10), || {
        delivered.join(format!("{}.ack", order[1])).exists()
    });

    let out = env.fepd(&["audit", "show", "--event", "ack_discrepancy", "--json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["batch"], order[0].as_str());
    assert_eq!(lines[0]["counts"]["unaccounted"], 9);

    let out = env.fepd(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ca = st["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dataset"] == "case_accept")
        .unwrap();
    assert_eq!(ca["ack_discrepancies"], 1, "{st}");
    let text = String::from_utf8_lossy(&env.fepd(&["status"]).stdout).to_string();
    assert!(text.contains("does not account for every record"), "{text}");

    // The late ack is recorded with its receipt, saying it was parked.
    let out = env.fepd(&["audit", "show", "--batch", &order[1], "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("R-late") && text.contains("wasParked"),
        "{text}"
    );
    d.stop();
}

#[test]
fn listing_and_showing_batches_never_create_or_migrate_the_state() {
    let env = Env::new("");
    // Before the daemon ever ran: no batch, and no database made for it.
    let out = env.fepd(&["batches", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = env.fepd(&["batches", "show", "01M8R45P8XRAGHV3V37AGVE8P1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !env.db().exists(),
        "a read command created the state database"
    );

    // A database an older release wrote is read as it is, not upgraded:
    // that is the daemon's to do, under its lock.
    std::fs::create_dir_all(env.db().parent().unwrap()).unwrap();
    std::fs::copy(
        repo().join("tests/fixtures/exchange-log-v0.1.0/fepd.db"),
        env.db(),
    )
    .unwrap();
    let before = std::fs::read(env.db()).unwrap();
    let out = env.fepd(&["batches", "list", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
    assert_eq!(
        std::fs::read(env.db()).unwrap(),
        before,
        "the listing changed the database"
    );
}
