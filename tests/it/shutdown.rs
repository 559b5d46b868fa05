//! SIGTERM with a request in flight (issue 5, README.md: `SIGTERM` drains
//! and exits 0): within `[shutdown] grace_secs` the request is finished and
//! recorded; past it, it is abandoned and its batch is resent at the next
//! start under the same id, which the library de-duplicates.

use std::time::{Duration, Instant};

use crate::data::{self, Enc};
use crate::harness::*;

fn recs(n: u64) -> Vec<data::Record> {
    (0..n).map(data::case_accept).collect()
}

/// Waits until the daemon has a push request out.
fn wait_in_flight(env: &Env) {
    env.wait("a push request in flight", Duration::from_secs(30), || {
        env.log_has("sending batch")
    });
}

#[test]
fn sigterm_waits_for_the_answer_within_the_grace_period_and_nothing_is_resent() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &["--latency-ms", "1500"]);
    let env = Env::http(&lib.base_url, "[shutdown]\ngrace_secs = 20\n");
    let d = env.start();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs(10), Enc::Utf8));
    wait_in_flight(&env);
    let t = Instant::now();
    let (status, log) = d.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "drain took {:?}",
        t.elapsed()
    );
    assert!(!log.contains("abandoned"), "{log}");
    // The answer was awaited and recorded before the exit.
    assert_eq!(env.batches_in("delivered"), 1);
    assert_eq!(lib.stats()["batches"], 1);
    // The next start has nothing to resend.
    let _d = env.start();
    env.receipt("case_accept", "a.jsonl");
    std::thread::sleep(Duration::from_secs(3));
    let st = lib.stats();
    assert_eq!(st["records"], 10, "{st}");
    assert_eq!(st["duplicates_answered"], 0, "resent: {st}");
    assert_eq!(env.batches_in("delivered"), 1);
}

#[test]
fn past_the_grace_period_the_request_is_abandoned_and_resent_once_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lib.db");
    let lib = Library::start(&db, &["--latency-ms", "8000"]);
    let env = Env::http(&lib.base_url, "[shutdown]\ngrace_secs = 1\n");
    let d = env.start();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs(10), Enc::Utf8));
    wait_in_flight(&env);
    let t = Instant::now();
    let (status, log) = d.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "exit took {:?} with a 1 s grace period",
        t.elapsed()
    );
    assert!(
        log.contains("shutdown grace period over: in-flight request abandoned"),
        "{log}"
    );
    // The batch waits, pending, under its id; the attempt is in the
    // exchange log.
    assert_eq!(env.batches_in("sealed"), 1);
    let abandoned = env
        .log_entries(&["--event", "batch_sent"])
        .into_iter()
        .filter(|e| e["details"].to_string().contains("abandoned"))
        .count();
    assert_eq!(abandoned, 1);
    // A library that answers at once; the next start resends the batch.
    let addr = lib.addr.clone();
    lib.stop();
    let lib = Library::start_on(&addr, &db, &[]);
    let _d = env.start();
    env.wait(
        "delivered after the restart",
        Duration::from_secs(30),
        || env.batches_in("delivered") == 1,
    );
    let st = lib.stats();
    assert_eq!(st["records"], 10, "{st}");
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");
    assert_eq!(st["batches"], 1, "{st}");
}
