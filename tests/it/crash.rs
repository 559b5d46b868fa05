//! Crash safety: resume from the last committed chunk after SIGKILL, and a
//! graceful drain on SIGTERM (ARCHITECTURE.md invariants: a file leaves work/ only when committed; one transaction per chunk).

use std::time::{Duration, Instant};

use crate::data::{self, Enc};
use crate::harness::*;

/// Records in the file killed mid-way (issue 5: a 1,000,000-record file);
/// `FEPD_RESUME_RECORDS` overrides it.
fn resume_n() -> u64 {
    std::env::var("FEPD_RESUME_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A generous bound for `n` records through a debug build.
fn bound(n: u64) -> Duration {
    Duration::from_secs(60 + n / 2000)
}

/// No collector acknowledges in these tests: the back-pressure marks are
/// off so that a file bigger than the default high-water mark completes.
const NO_HIGH_WATER: &str = "\n[backpressure]\nhigh_water_records = 0\nhigh_water_bytes = 0\n";

fn committed(env: &Env) -> i64 {
    env.records_committed()
}

/// Records in the sealed-record ledger (`batch_record`), and how many
/// distinct keys: these tests check that the ledger matches the intake
/// checkpoint after a crash, an internal invariant no command shows.
fn ledger(env: &Env) -> (i64, i64) {
    (
        env.sql_count("SELECT COUNT(*) FROM batch_record"),
        env.sql_count("SELECT COUNT(DISTINCT key) FROM batch_record"),
    )
}

#[test]
fn kill_mid_file_resumes_from_the_last_committed_chunk() {
    let n = resume_n();
    let env = Env::new(NO_HIGH_WATER);
    let d = env.start();
    let recs: Vec<_> = (0..n).map(data::case_accept).collect();
    env.drop_file("case_accept", "big.jsonl", &data::jsonl(&recs, Enc::Utf8));
    drop(recs);
    // Killed in the middle of the file.
    env.wait("a third of the file committed", bound(n), || {
        committed(&env) >= (n / 3) as i64
    });
    d.kill();
    let at_kill = committed(&env);
    assert!(
        at_kill < n as i64,
        "file finished before the kill; raise FEPD_RESUME_RECORDS"
    );
    let d = env.start();
    let t = Instant::now();
    let receipt = env
        .spool("case_accept", "done")
        .join("big.jsonl.receipt.json");
    env.wait("the big file's receipt", bound(n), || receipt.exists());
    eprintln!("resumed and finished in {:?}", t.elapsed());
    let r = env.receipt("case_accept", "big.jsonl");
    assert_eq!(r["counts"]["received"].as_u64(), Some(n));
    assert_eq!(r["counts"]["sealed"].as_u64(), Some(n));
    // Every record sealed exactly once, none lost.
    assert_eq!(ledger(&env), (n as i64, n as i64));
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
    let n = 40_000;
    let env = Env::new(NO_HIGH_WATER);
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
    assert_eq!(ledger(&env).0, at_stop);
    let _d = env.start();
    let r = env.receipt("case_accept", "big.jsonl");
    assert_eq!(r["counts"]["sealed"].as_u64(), Some(n));
    assert_eq!(ledger(&env), (n as i64, n as i64));
    env.wait_outbox_records("case_accept", n as usize);
}

#[test]
fn a_full_outbox_pauses_intake_until_acknowledgements_drain_it() {
    let admin = free_addr();
    let env = Env::new(&format!(
        "\n[backpressure]\nhigh_water_records = 500\nlow_water_percent = 50\n[admin]\nlisten = \"{admin}\"\n"
    ));
    let _d = env.start();
    let recs = |from: u64| {
        (from..from + 300)
            .map(data::case_accept)
            .collect::<Vec<_>>()
    };
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs(0), Enc::Utf8));
    env.receipt("case_accept", "a.jsonl");
    env.drop_file(
        "case_accept",
        "b.jsonl",
        &data::jsonl(&recs(300), Enc::Utf8),
    );
    env.receipt("case_accept", "b.jsonl");
    // 600 records wait for the library's collector: over the high-water mark.
    env.drop_file(
        "case_accept",
        "c.jsonl",
        &data::jsonl(&recs(600), Enc::Utf8),
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        env.spool("case_accept", "inbox").join("c.jsonl").exists(),
        "claimed while paused"
    );
    let out = env.fepd(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["intake_paused"], true, "{status}");
    assert_eq!(status["disk_low"], false, "{status}");
    assert!(status["disk_free_bytes"].as_u64().unwrap() > 0, "{status}");
    let log = std::fs::read_to_string(env.log_path()).unwrap();
    assert!(log.contains("intake paused"), "{log}");
    let (status_line, metrics) = http_get(&admin, "/metrics");
    assert!(status_line.contains("200"), "{status_line}");
    assert!(metrics.contains("fepd_intake_paused 1"), "{metrics}");
    assert!(
        metrics.contains("fepd_backlog_records{dataset=\"case_accept\"} 600"),
        "{metrics}"
    );
    // Paused intake is not healthy: nothing new flows (issue 12).
    let (line, body) = http_get(&admin, "/healthz");
    assert!(line.contains("503"), "{line}");
    assert!(body.contains("intake paused"), "{body}");
    // The collector acknowledges everything: intake resumes.
    for name in files_in(&env.outbox("case_accept")) {
        if let Some(id) = name.strip_suffix(".json") {
            std::fs::write(
                env.outbox("case_accept").join(format!("{id}.ack")),
                r#"{"receiptId":"R"}"#,
            )
            .unwrap();
        }
    }
    assert_eq!(
        env.receipt("case_accept", "c.jsonl")["counts"]["sealed"],
        300
    );
    assert!(
        std::fs::read_to_string(env.log_path())
            .unwrap()
            .contains("intake resumed")
    );
    env.wait("/healthz 200 again", Duration::from_secs(20), || {
        http_get(&admin, "/healthz").0.contains("200")
    });
}

/// A write failure (here: `done/` replaced by a file, as a stand-in for a
/// full or broken disk) leaves the file in `work/` with its checkpoint,
/// logs a clear error, and processing recovers by itself once the cause
/// is gone — without sealing anything twice.
#[test]
fn a_write_failure_is_retried_from_the_checkpoint_until_it_clears() {
    let env = Env::new("");
    let _d = env.start();
    env.wait("spool created", Duration::from_secs(10), || {
        env.spool("case_accept", "done").is_dir()
    });
    let done = env.spool("case_accept", "done");
    std::fs::remove_dir(&done).unwrap();
    std::fs::write(&done, "not a folder").unwrap();
    let recs: Vec<_> = (0..50).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("the failure logged", Duration::from_secs(20), || {
        env.log_has("retrying from its last checkpoint")
    });
    assert_eq!(files_in(&env.spool("case_accept", "work")).len(), 1);
    std::fs::remove_file(&done).unwrap();
    std::fs::create_dir(&done).unwrap();
    assert_eq!(
        env.receipt("case_accept", "a.jsonl")["counts"]["sealed"],
        50
    );
    assert_eq!(ledger(&env).0, 50);
    assert!(files_in(&env.spool("case_accept", "work")).is_empty());
}
