//! `fepd replay` (补传): delivered records re-sent as new batches marked
//! `replayOf` (docs/protocol.md §3 *Replays*), which `simulate-library`
//! counts as replays and not as records delivered twice in effect; and a
//! replay that needs bodies retention deleted is refused with the range.

use std::time::Duration;

use serde_json::Value;

use crate::data::{self, Enc};
use crate::harness::*;

fn recs(from: u64, n: u64) -> Vec<data::Record> {
    (from..from + n).map(data::case_accept).collect()
}

/// `fepd replay` of the day's deliveries of case_accept, with `more`.
fn replay_day(env: &Env, day: &str, more: &[&str]) -> std::process::Output {
    let mut args = vec![
        "replay",
        "--dataset",
        "case_accept",
        "--since",
        day,
        "--until",
        day,
    ];
    args.extend_from_slice(more);
    env.fepd(&args)
}

/// Today in the test config's timezone (+08:00).
fn today() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn delivered_records_are_replayed_as_new_batches_the_library_counts_as_replays() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    env.set("batch.max_records", 10);
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&recs(0, 25), Enc::Utf8),
    );
    env.drop_file(
        "case_accept",
        "b.jsonl",
        &data::jsonl(&recs(100, 5), Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    env.receipt("case_accept", "b.jsonl");
    env.wait("30 records delivered", Duration::from_secs(30), || {
        lib.stats()["records"] == 30 && env.batches_in("delivered") == 4
    });

    // The day's deliveries of case_accept, asked for by a named operator.
    let day = today();
    let out = replay_day(
        &env,
        &day,
        &["--reason", "资源库恢复数据后要求补传", "--by", "张三"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("4 batch(es), 30 record(s)"), "{text}");
    // The library holds them a moment before fepd has recorded its
    // answers: wait for both.
    env.wait("the replays delivered", Duration::from_secs(30), || {
        lib.stats()["replay_batches"] == 4 && env.batches_in("delivered") == 8
    });
    let stats = lib.stats();
    assert_eq!(stats["records_replayed"], 30, "{stats}");
    assert_eq!(stats["records_delivered_more_than_once"], 0, "{stats}");
    assert_eq!(stats["distinct_keys"], 30, "{stats}");
    // Each replay names the batch it carries again, and is logged with
    // who asked and why.
    let replayed = env.log_entries(&["--event", "batch_replayed"]);
    assert_eq!(replayed.len(), 4);
    // In the route's order: seal order (deliveries overlap, several
    // batches being in flight).
    let originals: Vec<Value> = env
        .log_entries(&["--event", "batch_sealed"])
        .iter()
        .take(4)
        .map(|e| e["batch"].clone())
        .collect();
    for (r, orig) in replayed.iter().zip(&originals) {
        assert_eq!(r["details"]["by"], "张三");
        assert_eq!(r["details"]["reason"], "资源库恢复数据后要求补传");
        assert_eq!(&r["details"]["replayOf"][0], orig, "in the route's order");
        let sent = env.batch(r["batch"].as_str().unwrap());
        assert_eq!(sent["state"], "delivered", "{sent}");
    }

    // By source file, and by batch id.
    let out = env.fepd(&["replay", "--file", "b.jsonl", "--reason", "再补一次"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let one = originals[0].as_str().unwrap();
    let out = env.fepd(&["replay", "--batch", one, "--reason", "再补一次"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    env.wait(
        "the later replays delivered",
        Duration::from_secs(30),
        || lib.stats()["replay_batches"] == 6,
    );
    assert_eq!(lib.stats()["records_delivered_more_than_once"], 0);

    // A batch that is not delivered is not replayed.
    let out = env.fepd(&["replay", "--batch", "NO-SUCH", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no batch NO-SUCH"));
    let (status, _) = d.stop();
    assert!(status.success());
    let out = env.fepd(&["audit", "verify"]);
    assert!(out.status.success(), "{out:?}");
    // The day's reconciliation still balances: a replay is no file's.
    let out = env.fepd(&["audit", "report", "--day", &day]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_replay_needing_pruned_bodies_is_refused_with_the_range_and_sends_nothing() {
    let env = Env::new(
        "\n[retention]\nbatch_bodies = \"1s\"\ninterval = \"1s\"\n[batch]\nmax_records = 5\n",
    );
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&recs(0, 10), Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    env.wait("two batches exported", Duration::from_secs(20), || {
        env.batches_in("exported") == 2
    });
    for b in env.batches(Some("exported")) {
        let id = b["batch_id"].as_str().unwrap();
        std::fs::write(
            env.outbox("case_accept").join(format!("{id}.ack")),
            r#"{"receiptId":"R","accepted":5,"rejected":[]}"#,
        )
        .unwrap();
    }
    env.wait(
        "bodies deleted by retention",
        Duration::from_secs(30),
        || {
            env.batches_in("delivered") == 2
                && env
                    .batches(None)
                    .iter()
                    .all(|b| !env.has_body(b["batch_id"].as_str().unwrap()))
        },
    );
    let day = today();
    let out = replay_day(&env, &day, &["--reason", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let delivered: Vec<String> = env
        .batches(Some("delivered"))
        .iter()
        .map(|b| b["delivered_at"].as_str().unwrap().to_string())
        .collect();
    let (first, last) = (
        delivered.iter().min().unwrap(),
        delivered.iter().max().unwrap(),
    );
    assert!(
        err.contains(&format!(
            "deliveries from {first} to {last} cannot be replayed"
        )),
        "{err}"
    );
    assert!(err.contains("batch_bodies = 1s"), "{err}");
    assert!(err.contains("no delivered body is kept"), "{err}");
    assert_eq!(
        env.events("batch_replayed"),
        0,
        "a partial replay was sealed"
    );
    let (status, _) = d.stop();
    assert!(status.success());
}
