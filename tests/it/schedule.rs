//! `[[dataset]] schedule`: a scheduled dataset's inbox is collected by a
//! rescan only at its cron times, while files the watcher saw complete are
//! taken at once whatever the schedule (README.md, "Watching it run": schedule).

use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

/// Puts a file into an inbox the way a rescan alone finds it (as on an
/// NFS share): a hard link, which the watcher reports as a bare creation.
fn link_in(env: &Env, dataset: &str, name: &str, bytes: &[u8]) {
    let staging = env.root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let src = staging.join(format!("{dataset}-{name}"));
    std::fs::write(&src, bytes).unwrap();
    let inbox = env.spool(dataset, "inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::hard_link(&src, inbox.join(name)).unwrap();
}

#[test]
fn a_scheduled_inbox_is_collected_at_its_times_and_watched_files_go_at_once() {
    let env = Env::new("");
    env.set_intake("rescan_secs", 3600);
    env.set_dataset("case_accept", "schedule", "*/2 * * * * *");
    env.set_dataset("evaluation", "schedule", "0 0 0 1 1 *");
    // Files go in once the daemon watches its inboxes.
    let _d = env.start_ready();
    let cases: Vec<_> = (0..10).map(data::case_accept).collect();
    let evals: Vec<_> = (0..10).map(data::evaluation).collect();
    link_in(
        &env,
        "case_accept",
        "a.jsonl",
        &data::jsonl(&cases, Enc::Utf8),
    );
    link_in(
        &env,
        "evaluation",
        "e.csv",
        &data::csv(&evals, true, Enc::Utf8),
    );
    // Collected at the next even second (plus the settle time).
    assert_eq!(
        env.receipt("case_accept", "a.jsonl")["counts"]["sealed"],
        10
    );
    // Not due until New Year: left in the inbox...
    std::thread::sleep(Duration::from_secs(3));
    assert!(env.spool("evaluation", "inbox").join("e.csv").exists());
    // ...but a file the watcher sees renamed in is taken at once.
    env.drop_file("evaluation", "f.csv", &data::csv(&evals, true, Enc::Utf8));
    env.receipt("evaluation", "f.csv");
    assert!(env.spool("evaluation", "inbox").join("e.csv").exists());
}

#[test]
fn check_config_names_a_schedule_that_is_not_cron() {
    let env = Env::new("");
    env.set_dataset("case_accept", "schedule", "every night");
    let out = env.fepd(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("dataset case_accept: schedule \"every night\""),
        "{text}"
    );
}
