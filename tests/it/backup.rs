//! `fepd state backup --to FILE` of a running daemon (push mode, against
//! `fepd simulate-library`): the copy restores into a state that
//! `fepd audit verify` accepts, and the daemon resumes from it without
//! resending what the library already has.

use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

fn recs(from: u64, n: u64) -> Vec<data::Record> {
    (from..from + n).map(data::case_accept).collect()
}

fn ready_count(env: &Env) -> usize {
    std::fs::read_to_string(env.log_path())
        .unwrap_or_default()
        .matches("fepd ready")
        .count()
}

#[test]
fn a_backup_of_a_running_daemon_restores_verifies_and_resumes_without_resending() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    let daemon = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&recs(0, 40), Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    env.wait("40 records delivered", Duration::from_secs(30), || {
        lib.stats()["records"] == 40 && env.batches_in("sealed") == 0
    });

    // The backup is taken while the daemon runs.
    let copy = env.root.join("backups/fepd-backup.db");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let out = env.fepd(&["state", "backup", "--to", copy.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seq: i64 = stdout
        .split("exchange log up to seq ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no log head in the backup's output: {stdout}"));
    assert!(seq > 0, "{stdout}");
    let batches_before = lib.stats()["batches"].as_u64().unwrap();

    // Restore, as docs/zh/安装与运维手册.md says: stop, replace fepd.db,
    // drop its -wal/-shm, start.
    let (st, _) = daemon.stop();
    assert!(st.success());
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", env.db().display()));
    }
    std::fs::copy(&copy, env.db()).unwrap();

    let verify = env.fepd(&["audit", "verify"]);
    let vout = String::from_utf8_lossy(&verify.stdout).to_string();
    assert_eq!(verify.status.code(), Some(0), "{vout}");
    assert!(
        vout.contains(&format!("–{seq}),")),
        "verify ends at the head {seq}: {vout}"
    );

    let starts = ready_count(&env);
    let _d = env.start();
    env.wait(
        "the restored daemon is ready",
        Duration::from_secs(20),
        || ready_count(&env) > starts,
    );
    // Nothing the library has is sent again...
    std::thread::sleep(Duration::from_secs(2));
    let st = lib.stats();
    assert_eq!(st["batches"].as_u64().unwrap(), batches_before, "{st}");
    assert_eq!(st["duplicates_answered"], 0, "{st}");
    // ...and new data flows on from the restored state.
    env.drop_file(
        "case_accept",
        "b.jsonl",
        &data::jsonl(&recs(40, 10), Enc::Utf8),
    );
    env.receipt("case_accept", "b.jsonl");
    env.wait("50 records delivered", Duration::from_secs(30), || {
        lib.stats()["records"] == 50
    });
    let st = lib.stats();
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");
    assert_eq!(st["duplicates_answered"], 0, "{st}");
    let verify = env.fepd(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0));
}

#[test]
fn a_backup_without_a_state_database_names_it_and_writes_nothing() {
    let env = Env::new("");
    let copy = env.root.join("b.db");
    let out = env.fepd(&["state", "backup", "--to", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fepd.db"), "{err}");
    assert!(!copy.exists());
}
