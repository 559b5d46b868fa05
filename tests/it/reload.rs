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

#[test]
fn sighup_applies_a_valid_config_and_refuses_a_broken_one() {
    let env = Env::new("");
    let d = env.start();
    let recs = |from: u64| (from..from + 25).map(data::case_accept).collect::<Vec<_>>();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs(0), Enc::Utf8));
    env.receipt("case_accept", "a.jsonl");
    assert_eq!(env.batches_of("a.jsonl"), 1);

    // Smaller batches: the next file is sealed in batches of 10.
    env.set("batch.max_records", 10);
    hup(&d);
    env.wait("the reload", Duration::from_secs(20), || {
        env.events("config_reloaded") == 1
    });
    env.drop_file("case_accept", "b.jsonl", &data::jsonl(&recs(25), Enc::Utf8));
    env.receipt("case_accept", "b.jsonl");
    assert_eq!(env.batches_of("b.jsonl"), 3);

    // A broken config is refused; the daemon keeps the one it has.
    env.set("no_such_key", 1);
    hup(&d);
    // With the config file broken, fepd's commands cannot run: the journal
    // is the one surface until it is mended (the exchange-log entry is
    // checked below, once it is).
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
    // The file was read under the refused config; fepd's commands need a
    // valid one back.
    env.unset("no_such_key");
    assert_eq!(env.batches_of("c.jsonl"), 3);
    let refused = env.log_entries(&["--event", "config_refused"]);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]["details"]["problems"]
            .to_string()
            .contains("no_such_key"),
        "{}",
        refused[0]
    );
    // Every record sealed once, none twice, across the reloads.
    let sealed = env.wait_outbox_records("case_accept", 75);
    let keys: std::collections::HashSet<&str> =
        sealed.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 75);

    let (status, _) = d.stop();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(env.events("config_reloaded"), 1);
    assert_eq!(env.events("daemon_started"), 1);
    assert_eq!(env.events("daemon_stopped"), 1);
    let out = env.fepd(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
