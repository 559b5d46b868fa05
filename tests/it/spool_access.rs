//! `[spool] group`: a member of the data-staff group (not root, not the
//! daemon's user) drops a file into `inbox/` and reads its receipt; an
//! account outside the group can do neither. The daemon runs with the
//! unit's `UMask=0027`. Uses Debian's base accounts `daemon` (group
//! `daemon`) as the data-staff member and `nobody` as the outsider.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

const UMASK_0027: &[&str] = &["sh", "-c", "umask 0027; exec \"$0\" \"$@\""];

fn as_user(user: &str, script: &str) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", user, "--", "sh", "-c", script])
        .output()
        .expect("runuser (util-linux)")
}

/// A group's id, from `getent group` (Debian's base `daemon` group is 1).
fn group_id(name: &str) -> u32 {
    let out = Command::new("getent")
        .args(["group", name])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    line.split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| panic!("no group {name} on this host: {line:?}"))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_data_staff_member_drops_a_file_and_reads_its_receipt_an_outsider_cannot() {
    let staff_gid = group_id("daemon");
    let env = Env::new("\n[spool]\ngroup = \"daemon\"\n");
    // The temp folder itself is private to root: let the accounts reach it.
    std::fs::set_permissions(&env.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _d = env.start_wrapped(UMASK_0027, &[]);
    let inbox = env.spool("case_accept", "inbox");
    env.wait(
        "the inbox given to the group",
        Duration::from_secs(20),
        || inbox.is_dir() && std::fs::metadata(&inbox).unwrap().gid() == staff_gid,
    );
    assert_eq!(mode(&inbox), 0o2770);
    for sub in ["done", "rejected", "work"] {
        let p = env.spool("case_accept", sub);
        assert_eq!(
            (mode(&p), std::fs::metadata(&p).unwrap().gid()),
            (0o2750, staff_gid),
            "{sub}"
        );
    }
    // The outbox holds personal data in clear: not the group's.
    let outbox = env.data.join("spool/outbox");
    env.wait("the outbox", Duration::from_secs(10), || outbox.is_dir());
    assert_ne!(std::fs::metadata(&outbox).unwrap().gid(), staff_gid);

    let sample = repo().join("samples/case_accept.csv");
    let drop = format!(
        "cp {} {inbox}/x.csv.part && mv {inbox}/x.csv.part {inbox}/x.csv",
        sample.display(),
        inbox = inbox.display()
    );
    let outsider = as_user("nobody", &drop);
    assert!(
        !outsider.status.success(),
        "nobody could write into the inbox"
    );
    let member = as_user("daemon", &drop);
    assert!(
        member.status.success(),
        "{}",
        String::from_utf8_lossy(&member.stderr)
    );

    let receipt = env.receipt("case_accept", "x.csv");
    assert_eq!(receipt["verdict"], "done");
    let path = env.spool("case_accept", "done").join("x.csv.receipt.json");
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (m.gid(), m.permissions().mode() & 0o777),
        (staff_gid, 0o640)
    );
    let read = as_user("daemon", &format!("cat {}", path.display()));
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert!(String::from_utf8_lossy(&read.stdout).contains("\"verdict\": \"done\""));
    let denied = as_user("nobody", &format!("cat {}", path.display()));
    assert!(!denied.status.success(), "nobody could read the receipt");
}

#[test]
fn an_unknown_data_staff_group_is_a_config_problem() {
    let env = Env::new("\n[spool]\ngroup = \"no-such-group-fepd\"\n");
    let out = env.fepd(&["check-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("✗ spool.group: no group \"no-such-group-fepd\""),
        "{stdout}"
    );
}
