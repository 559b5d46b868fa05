//! Upgrading from the previous release: the daemon started on the state
//! database fepd 0.1.0 left (`tests/fixtures/exchange-log-v0.1.0/`, schema
//! v2, written in pull mode) migrates it, sends exactly the batches that
//! release had not had acknowledged, never the ones the library already
//! has, keeps its dedupe memory and continues its exchange log — the
//! upgrade procedure of docs/zh/安装与运维手册.md, with the sink switched
//! to push so that what reaches the library can be counted.

use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

/// Batches the fixture holds as `exported` (taken by no collector yet) and
/// their records; its two `delivered` batches hold 6 more records.
const PENDING_BATCHES: u64 = 4;
const PENDING_RECORDS: u64 = 7;

#[test]
fn the_previous_release_state_upgrades_and_the_daemon_resumes_without_resending() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    std::fs::create_dir_all(env.db().parent().unwrap()).unwrap();
    std::fs::copy(
        repo().join("tests/fixtures/exchange-log-v0.1.0/fepd.db"),
        env.db(),
    )
    .unwrap();

    // No outbox folder comes with it (as when a state is restored onto a
    // new host): the exported batches are taken back for pushing all the
    // same, not left `exported` for a collector that is no longer there.
    assert!(!env.outbox("case_accept").exists());
    let _daemon = env.start();
    env.wait(
        "the 0.1.0 release's pending batches delivered",
        Duration::from_secs(60),
        || {
            lib.stats()["records"] == PENDING_RECORDS
                && env.batches_in("exported") == 0
                && env.batches_in("sealed") == 0
        },
    );
    let st = lib.stats();
    assert_eq!(st["batches"], PENDING_BATCHES, "{st}");
    assert_eq!(st["duplicates_answered"], 0, "{st}");
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");
    assert_eq!(env.batches_in("delivered"), 6);

    // The dedupe memory came through: the same sample file dropped again is
    // a duplicate file, and the same records in new bytes are all skipped.
    let sample = std::fs::read(repo().join("samples/case_accept.csv")).unwrap();
    env.drop_file("case_accept", "again-after-upgrade.csv", &sample);
    let r = env.receipt("case_accept", "again-after-upgrade.csv");
    assert_eq!(r["verdict"], "duplicate", "{r}");
    assert_eq!(r["duplicateOf"]["file"], "办件-受理.csv", "{r}");
    let mut changed = sample.clone();
    changed.extend_from_slice(b"\n");
    env.drop_file("case_accept", "same-records.csv", &changed);
    let r = env.receipt("case_accept", "same-records.csv");
    assert_eq!(r["counts"]["sealed"], 0, "{r}");
    assert_eq!(r["counts"]["skipped"], 3, "{r}");

    // New data flows on from the upgraded state.
    let recs: Vec<_> = (0..10).map(data::case_accept).collect();
    env.drop_file("case_accept", "new.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.receipt("case_accept", "new.jsonl");
    env.wait("the new records delivered", Duration::from_secs(30), || {
        lib.stats()["records"] == PENDING_RECORDS + 10
    });
    let st = lib.stats();
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");
    assert_eq!(st["duplicates_answered"], 0, "{st}");

    // One chain from the 0.1.0 entries through the upgraded daemon's.
    let out = env.fepd(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("(seq 25–"), "{text}");
    assert!(text.contains("chain intact"), "{text}");
}
