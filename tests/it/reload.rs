//! SIGHUP reloads the config (README.md, "Watching it run": SIGHUP): a valid new config
//! drains the running loop and starts it again with the new settings; a
//! config with problems is refused with the problems logged, and the daemon
//! goes on with the one it has.

use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

fn hup(d: &Daemon) {
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGHUP);
    }
}

fn batches_of(env: &Env, file: &str) -> i64 {
    env.sql_count(&format!(
        "SELECT COUNT(*) FROM batch b JOIN file f ON f.id = b.file_id WHERE f.name = '{file}'"
    ))
}

#[test]
fn sighup_applies_a_valid_config_and_refuses_a_broken_one() {
    let env = Env::new("");
    let d = env.start();
    let recs = |from: u64| (from..from + 25).map(data::case_accept).collect::<Vec<_>>();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs(0), Enc::Utf8));
    env.receipt("case_accept", "a.jsonl");
    assert_eq!(batches_of(&env, "a.jsonl"), 1);

    // Smaller batches: the next file is sealed in batches of 10.
    env.set("batch.max_records", 10);
    hup(&d);
    env.wait("the reload", Duration::from_secs(20), || {
        env.sql_count("SELECT COUNT(*) FROM exchange_log WHERE event = 'config_reloaded'") == 1
    });
    env.drop_file("case_accept", "b.jsonl", &data::jsonl(&recs(25), Enc::Utf8));
    env.receipt("case_accept", "b.jsonl");
    assert_eq!(batches_of(&env, "b.jsonl"), 3);

    // A broken config is refused; the daemon keeps the one it has.
    env.set("no_such_key", 1);
    hup(&d);
    env.wait("the refusal", Duration::from_secs(20), || {
        env.log_has("config reload refused")
    });
    let log = std::fs::read_to_string(env.log_path()).unwrap();
    assert!(
        log.contains("no_such_key"),
        "the problem is not named:\n{log}"
    );
    env.drop_file("case_accept", "c.jsonl", &data::jsonl(&recs(50), Enc::Utf8));
    env.receipt("case_accept", "c.jsonl");
    assert_eq!(batches_of(&env, "c.jsonl"), 3);

    let (status, _) = d.stop();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        env.sql_count("SELECT COUNT(*) FROM exchange_log WHERE event = 'config_reloaded'"),
        1
    );
    assert_eq!(
        env.sql_count("SELECT COUNT(*) FROM exchange_log WHERE event = 'daemon_started'"),
        1
    );
    assert_eq!(
        env.sql_count("SELECT COUNT(*) FROM exchange_log WHERE event = 'daemon_stopped'"),
        1
    );
    assert_eq!(
        env.sql_count("SELECT COUNT(DISTINCT key) FROM batch_record"),
        75
    );
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM batch_record"), 75);
    env.unset("no_such_key");
    let out = env.fepd(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
