//! A disk that really fills up (issue 5): spool, outbox and state DB on a
//! small tmpfs, mounted in a private mount namespace of the daemon (with
//! `unshare`, as any user), which the test reaches through
//! `/proc/<pid>/root`. When a write fails for lack of space, intake pauses
//! with a clear error, nothing is half-written, and everything completes
//! exactly once when space returns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

const DISK_BYTES: u64 = 32 << 20;

fn free_bytes(p: &Path) -> u64 {
    fepd::daemon::backpressure::free_bytes(p).expect("statvfs")
}

/// Every file under `dir` whose name marks a partial write.
fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".tmp") || name.ends_with(".part") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_full_disk_pauses_intake_and_everything_completes_once_space_returns() {
    let admin = free_addr();
    let mut env = Env::new(&format!(
        "\n[backpressure]\nmin_free_bytes = 0\n[admin]\nlisten = \"{admin}\"\n"
    ));
    env.set_intake("ready", "marker");
    env.set("spool_dir", "disk/spool");
    env.set("state_dir", "disk/state");
    env.set("sink.outbox_dir", "disk/spool/outbox");
    let mount = env.root.join("disk");
    std::fs::create_dir(&mount).unwrap();
    let size = DISK_BYTES.to_string();
    let d = env.start_wrapped(
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            r#"mount -t tmpfs -o size="$1" fepd-test-disk "$2" && shift 2 && exec "$@""#,
            "sh",
            &size,
            mount.to_str().unwrap(),
        ],
        &[],
    );
    // The daemon's view of the tmpfs, from outside its namespace.
    env.data =
        PathBuf::from(format!("/proc/{}/root", d.pid())).join(mount.strip_prefix("/").unwrap());
    env.wait(
        "the daemon up on its own disk",
        Duration::from_secs(20),
        || env.spool("case_accept", "inbox").is_dir() && env.db().exists(),
    );
    assert!(
        free_bytes(&env.data) <= DISK_BYTES,
        "the spool is not on the size-limited filesystem"
    );

    // Two files wait for their markers; then the disk is filled up to
    // ~600 KB, far less than the 4,000 records of a.jsonl need.
    let a: Vec<_> = (0..4000).map(data::case_accept).collect();
    let b: Vec<_> = (4000..4005).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&a, Enc::Utf8));
    env.drop_file("case_accept", "b.jsonl", &data::jsonl(&b, Enc::Utf8));
    let ballast = env.data.join("ballast");
    let fill = free_bytes(&env.data).saturating_sub(600 << 10);
    std::fs::write(&ballast, vec![0u8; fill as usize]).unwrap();
    let inbox = env.spool("case_accept", "inbox");
    std::fs::write(inbox.join("a.jsonl.ok"), "").unwrap();

    let disk_full = || {
        let (_, status) = http_get(&admin, "/status");
        serde_json::from_str::<serde_json::Value>(&status).unwrap()["disk_full"] == true
    };
    env.wait("the disk-full pause", Duration::from_secs(30), disk_full);
    // The journal is the operator's surface here: it must say why intake
    // stopped.
    let log = std::fs::read_to_string(env.log_path()).unwrap();
    assert!(
        log.contains("intake paused: disk full"),
        "no pause logged:\n{log}"
    );
    let (_, metrics) = http_get(&admin, "/metrics");
    assert!(metrics.contains("fepd_disk_full 1"), "{metrics}");
    assert!(metrics.contains("fepd_intake_paused 1"), "{metrics}");
    let (_, status) = http_get(&admin, "/status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["disk_full"], true, "{status}");

    // Intake is paused: a file made ready now stays in the inbox.
    std::fs::write(inbox.join("b.jsonl.ok"), "").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        inbox.join("b.jsonl").exists(),
        "claimed while the disk is full"
    );
    // Nothing half-written: no partial file anywhere, every batch in the
    // outbox whole, no receipt yet for the file that did not fit.
    assert_eq!(partial_files(&env.data), Vec::<PathBuf>::new());
    let exported = env.outbox_records("case_accept").len();
    assert!(
        exported < 4000,
        "everything fit after all ({exported} records)"
    );
    assert!(!env.spool("case_accept", "done").join("a.jsonl").exists());
    assert_eq!(files_in(&env.spool("case_accept", "work")).len(), 1);

    // Space returns: both files complete, every record once.
    std::fs::remove_file(&ballast).unwrap();
    assert_eq!(
        env.receipt("case_accept", "a.jsonl")["counts"]["sealed"],
        4000
    );
    assert_eq!(env.receipt("case_accept", "b.jsonl")["counts"]["sealed"], 5);
    let recs = env.wait_outbox_records("case_accept", 4005);
    let keys: std::collections::HashSet<_> = recs
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 4005, "a record exported twice");
    assert_eq!(partial_files(&env.data), Vec::<PathBuf>::new());
    env.wait("intake resumed", Duration::from_secs(10), || {
        !disk_full() && env.log_has("intake resumed: disk space available again")
    });
    assert!(http_get(&admin, "/metrics").1.contains("fepd_disk_full 0"));
    let (status, _) = d.stop();
    assert!(status.success(), "exit status {status:?}");
}
