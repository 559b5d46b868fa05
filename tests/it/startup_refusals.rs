//! What fepd refuses before it starts, and how it says so: a state
//! database it cannot use (named, with the recovery steps, exit 3, for
//! `run` and the commands that read it), and a secret file that breaks the
//! rule (`check-config` states the rule).

use std::os::unix::fs::PermissionsExt;

use crate::data::{self, Enc};
use crate::harness::*;

fn run(env: &Env, args: &[&str]) -> (i32, String) {
    let out = env.fepd(args);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn assert_refused_with_steps(env: &Env, args: &[&str], what: &str) {
    let (code, out) = run(env, args);
    assert_eq!(code, 3, "{args:?}: {out}");
    let db = env.db().display().to_string();
    assert!(out.contains(&db), "{args:?} does not name {db}: {out}");
    assert!(out.contains(what), "{args:?}: {out}");
    assert!(out.contains("fepd doctor"), "{args:?}: {out}");
    assert!(out.contains("backup"), "{args:?}: {out}");
}

#[test]
fn a_deleted_wal_after_a_crash_is_refused_instead_of_losing_its_changes() {
    let env = Env::new("");
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&[data::case_accept(1)], Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    d.kill();
    let wal = env.db().with_file_name("fepd.db-wal");
    assert!(wal.exists(), "a crash leaves the -wal behind");
    std::fs::remove_file(&wal).unwrap();

    for args in [
        &["run"][..],
        &["status"],
        &["audit", "verify"],
        &["batches", "list"],
    ] {
        assert_refused_with_steps(&env, args, "-wal is missing");
    }
    // Nothing was opened: the -shm is still there for the operator.
    assert!(env.db().with_file_name("fepd.db-shm").exists());
}

#[test]
fn a_file_that_is_not_a_database_is_named_with_the_recovery_steps() {
    let env = Env::new("");
    std::fs::create_dir_all(env.db().parent().unwrap()).unwrap();
    std::fs::write(env.db(), vec![b'x'; 8192]).unwrap();
    for args in [&["run"][..], &["status"], &["audit", "verify"]] {
        assert_refused_with_steps(&env, args, "not an SQLite database");
    }
}

#[test]
fn a_damaged_database_is_named_with_the_recovery_steps() {
    let env = Env::new("");
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&[data::case_accept(1)], Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    d.stop();
    // Overwrite the schema page (page 1 after the 100-byte header).
    let mut bytes = std::fs::read(env.db()).unwrap();
    for b in &mut bytes[100..4096] {
        *b = 0x55;
    }
    std::fs::write(env.db(), bytes).unwrap();
    assert_refused_with_steps(&env, &["run"], "cannot be used");
    assert_refused_with_steps(&env, &["status"], "cannot be used");
}

#[test]
fn check_config_refuses_a_directory_or_an_empty_secret_file_and_states_the_rule() {
    let env = Env::http("http://127.0.0.1:9", "");
    let secret = env.root.join("client_secret");
    env.unset("sink.http.client_secret_env");
    env.set("sink.http.client_secret_file", secret.display().to_string());
    let rule = "owned by the user fepd runs as or by root";

    std::fs::create_dir(&secret).unwrap();
    let (code, out) = run(&env, &["check-config"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("is a directory") && out.contains(rule),
        "{out}"
    );
    std::fs::remove_dir(&secret).unwrap();

    for body in ["", "\n"] {
        std::fs::write(&secret, body).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (code, out) = run(&env, &["check-config"]);
        assert_eq!(code, 1, "{body:?}: {out}");
        assert!(
            out.contains("is empty") && out.contains(rule),
            "{body:?}: {out}"
        );
    }

    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = run(&env, &["check-config"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("mode 0644") && out.contains(rule), "{out}");
    assert!(!out.contains("s3cret"), "the secret was printed: {out}");

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out) = run(&env, &["check-config"]);
    assert_eq!(code, 0, "{out}");
}
