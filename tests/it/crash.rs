//! Crash safety: resume from the last committed chunk after SIGKILL, and a
//! graceful drain on SIGTERM (PRODUCT.md guarantees 1 and 2).

use std::time::{Duration, Instant};

use crate::data::{self, Enc};
use crate::harness::*;

/// Records in the big file; the long form of this check (1,000,000
/// records) is part of `scripts/killtest.sh`.
fn big_n() -> u64 {
    std::env::var("FEPD_RESUME_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000)
}

fn committed(env: &Env) -> i64 {
    env.sql_count("SELECT COALESCE(MAX(records_done), 0) FROM file")
}

#[test]
fn kill_mid_file_resumes_from_the_last_committed_chunk() {
    let n = big_n();
    let env = Env::new("");
    let d = env.start();
    let recs: Vec<_> = (0..n).map(data::case_accept).collect();
    env.drop_file("case_accept", "big.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("first chunks committed", Duration::from_secs(60), || {
        committed(&env) >= 2000
    });
    d.kill();
    let at_kill = committed(&env);
    assert!(
        at_kill < n as i64,
        "file finished before the kill; raise FEPD_RESUME_RECORDS"
    );
    let d = env.start();
    let r = env.receipt("case_accept", "big.jsonl");
    assert_eq!(r["counts"]["received"].as_u64(), Some(n));
    assert_eq!(r["counts"]["sealed"].as_u64(), Some(n));
    // Every record sealed exactly once, none lost.
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM batch_record"), n as i64);
    assert_eq!(
        env.sql_count("SELECT COUNT(DISTINCT key) FROM batch_record"),
        n as i64
    );
    let (_, log) = d.stop();
    let line = log
        .lines()
        .find(|l| l.contains("records already committed are skipped"))
        .unwrap_or_else(|| panic!("no resume line in the log:\n{log}"));
    let skipped: i64 = line
        .split("skipped=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        skipped > 0 && skipped >= at_kill,
        "skipped {skipped}, committed at kill {at_kill}"
    );
    assert!(files_in(&env.spool("case_accept", "work")).is_empty());
}

#[test]
fn sigterm_drains_and_the_next_start_finishes_without_resending() {
    let n = big_n();
    let env = Env::new("");
    let d = env.start();
    let recs: Vec<_> = (0..n).map(data::case_accept).collect();
    env.drop_file("case_accept", "big.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("first chunks committed", Duration::from_secs(60), || {
        committed(&env) >= 2000
    });
    let t = Instant::now();
    let (status, _) = d.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "drain took {:?}",
        t.elapsed()
    );
    let at_stop = committed(&env);
    assert!(at_stop < n as i64);
    // What was committed is whole: the checkpoint matches the sealed records.
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM batch_record"), at_stop);
    let _d = env.start();
    let r = env.receipt("case_accept", "big.jsonl");
    assert_eq!(r["counts"]["sealed"].as_u64(), Some(n));
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM batch_record"), n as i64);
    assert_eq!(
        env.sql_count("SELECT COUNT(DISTINCT key) FROM batch_record"),
        n as i64
    );
    env.wait_outbox_records("case_accept", n as usize);
}
