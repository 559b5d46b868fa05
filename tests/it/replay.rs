//! `fepd replay` (补传): delivered records re-sent as new batches marked
//! `replayOf` (docs/protocol.md §3 *Replays*), which `simulate-library`
//! counts as replays and not as records delivered twice in effect; and a
//! replay that needs bodies retention deleted is refused with the range.

use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

fn recs(from: u64, n: u64) -> Vec<data::Record> {
    (from..from + n).map(data::case_accept).collect()
}

/// Today in the test config's timezone (+08:00).
fn today() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
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
    let out = env.fepd(&[
        "replay",
        "--dataset",
        "case_accept",
        "--since",
        &day,
        "--until",
        &day,
        "--reason",
        "x",
    ]);
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
