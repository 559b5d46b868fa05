//! `fepd doctor`: each consistency rule broken on purpose is named, `--fix`
//! repairs the safe ones, and the daemon then runs clean (rules in
//! ARCHITECTURE.md's codemap under `src/doctor/`).

use std::time::Duration;

use serde_json::Value;

use crate::data::{self, Enc};
use crate::harness::*;

fn recs(from: u64, n: u64) -> Vec<data::Record> {
    (from..from + n).map(data::case_accept).collect()
}

/// The findings of `fepd doctor --json`, with its exit code.
fn doctor(env: &Env, args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let out = env.fepd(&all);
    let found = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code(), found)
}

fn rules(found: &[Value]) -> Vec<String> {
    let mut r: Vec<String> = found
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect();
    r.sort();
    r
}

#[test]
fn each_broken_rule_is_named_fix_repairs_the_safe_ones_and_the_daemon_runs_clean() {
    let env = Env::new("");
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&recs(0, 30), Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    env.wait_outbox_records("case_accept", 30);
    // Running and consistent: nothing found, nothing repaired.
    let (code, found) = doctor(&env, &[]);
    assert_eq!((code, found.len()), (Some(0), 0), "{found:?}");
    let fix = env.fepd(&["doctor", "--fix"]);
    assert_eq!(fix.status.code(), Some(3), "--fix ran beside the daemon");
    assert!(String::from_utf8_lossy(&fix.stderr).contains("Stop it first"));
    let (status, _) = d.stop();
    assert!(status.success());

    // Break three rules: an exported batch's file deleted, a file dropped
    // by hand into work/, a half-written temporary file left in done/.
    let outbox = env.outbox("case_accept");
    let batch = files_in(&outbox)
        .into_iter()
        .find(|n| n.ends_with(".json"))
        .expect("an exported batch file");
    std::fs::remove_file(outbox.join(&batch)).unwrap();
    let batch_id = batch.trim_end_matches(".json").to_string();
    let b = data::jsonl(&recs(100, 5), Enc::Utf8);
    std::fs::write(env.spool("case_accept", "work").join("b.jsonl"), &b).unwrap();
    let tmp = env
        .spool("case_accept", "done")
        .join(".a.jsonl.receipt.json.tmp");
    std::fs::write(&tmp, b"{\"half").unwrap();

    let (code, found) = doctor(&env, &[]);
    assert_eq!(code, Some(1), "{found:?}");
    assert_eq!(
        rules(&found),
        ["outbox_file", "temp_leftover", "work_orphan"],
        "{found:?}"
    );
    let missing = found.iter().find(|f| f["rule"] == "outbox_file").unwrap();
    assert_eq!(missing["subject"], format!("batch {batch_id}"));
    assert_eq!(missing["action"]["kind"], "repair");
    assert_eq!(missing["action"]["repair"], "export_again");
    let orphan = found.iter().find(|f| f["rule"] == "work_orphan").unwrap();
    assert!(
        orphan["subject"]
            .as_str()
            .unwrap()
            .ends_with("work/b.jsonl")
    );
    // The text form says what it means and what fixes it.
    let text = env.fepd(&["doctor"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("the collector will never take it"), "{text}");
    assert!(text.contains("fix: fepd doctor --fix"), "{text}");

    let fix = env.fepd(&["doctor", "--fix"]);
    let out = String::from_utf8_lossy(&fix.stdout);
    assert_eq!(fix.status.code(), Some(0), "{out}");
    assert_eq!(out.matches("✓ fixed").count(), 3, "{out}");
    assert!(!tmp.exists());
    assert!(env.spool("case_accept", "inbox").join("b.jsonl").exists());
    assert_eq!(env.batch(&batch_id)["state"], "sealed");
    let retried = env.log_entries(&["--event", "batch_retried"]);
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert_eq!(retried[0]["details"]["by"], "fepd doctor --fix");

    // The daemon writes the batch again and takes the file from the inbox.
    let d = env.start();
    env.wait(
        "the batch file written again",
        Duration::from_secs(20),
        || outbox.join(&batch).exists(),
    );
    env.receipt("case_accept", "b.jsonl");
    env.wait_outbox_records("case_accept", 35);
    let (status, _) = d.stop();
    assert!(status.success());
    let (code, found) = doctor(&env, &[]);
    assert_eq!((code, found.len()), (Some(0), 0), "{found:?}");
}

#[test]
fn what_an_interrupted_retention_pass_left_is_named_and_removed_by_fix() {
    // Retention keeps done/ and delivered/ files a second, but its first
    // pass is a minute away: the test plays the interrupted pass.
    let env = Env::new("\n[retention]\ndone_files = \"1s\"\ndelivered_files = \"1s\"\n");
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&recs(0, 3), Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    env.wait_outbox_records("case_accept", 3);
    let outbox = env.outbox("case_accept");
    let id = files_in(&outbox)
        .into_iter()
        .find_map(|n| n.strip_suffix(".json").map(str::to_string))
        .expect("an exported batch");
    env.ack(
        "case_accept",
        &id,
        r#"{"receiptId":"R-1","accepted":3,"rejected":[]}"#,
    );
    let delivered = outbox.join("delivered");
    env.wait("the batch delivered", Duration::from_secs(20), || {
        delivered.join(format!("{id}.ack")).exists()
    });
    let (status, _) = d.stop();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(2100));

    // Before anything is deleted, old files are no finding: the next pass
    // takes them.
    let (code, found) = doctor(&env, &[]);
    assert_eq!((code, found.len()), (Some(0), 0), "{found:?}");
    // The pass deleted the original and the batch file, then died.
    let done = env.spool("case_accept", "done");
    std::fs::remove_file(done.join("a.jsonl")).unwrap();
    std::fs::remove_file(delivered.join(format!("{id}.json"))).unwrap();
    let (code, found) = doctor(&env, &[]);
    assert_eq!(code, Some(1), "{found:?}");
    let mut left: Vec<String> = found
        .iter()
        .inspect(|f| assert_eq!(f["rule"], "half_deleted", "{f}"))
        .map(|f| {
            f["subject"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            format!("{id}.ack"),
            "a.jsonl.receipt.json".to_string(),
            "a.jsonl.回执.txt".to_string()
        ],
        "{found:?}"
    );
    let text = String::from_utf8_lossy(&env.fepd(&["doctor"]).stdout).to_string();
    assert!(text.contains("retention deleted"), "{text}");

    let fix = env.fepd(&["doctor", "--fix"]);
    let out = String::from_utf8_lossy(&fix.stdout);
    assert_eq!(fix.status.code(), Some(0), "{out}");
    assert_eq!(out.matches("✓ fixed").count(), 3, "{out}");
    assert!(files_in(&done).is_empty(), "{:?}", files_in(&done));
    assert!(files_in(&delivered).is_empty());
    let (code, found) = doctor(&env, &[]);
    assert_eq!((code, found.len()), (Some(0), 0), "{found:?}");
    // The delivery is still on record.
    assert_eq!(env.batch(&id)["state"], "delivered");
}

#[test]
fn a_damaged_page_in_a_copy_of_the_state_database_is_named_before_it_is_restored() {
    let env = Env::new("");
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&recs(0, 200), Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    let copy = env.root.join("copy.db");
    let out = env.fepd(&["state", "backup", "--to", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let (status, _) = d.stop();
    assert!(status.success());

    let (code, found) = doctor(&env, &["--db", copy.to_str().unwrap()]);
    assert_eq!((code, found.len()), (Some(0), 0), "{found:?}");

    // Scribble over the middle of the last page (a table or index page of
    // the records just sealed).
    let mut bytes = std::fs::read(&copy).unwrap();
    let page = 4096;
    assert!(bytes.len() >= 4 * page, "{} bytes", bytes.len());
    let last = bytes.len() - page;
    for b in &mut bytes[last..last + 64] {
        *b = 0xA5;
    }
    std::fs::write(&copy, &bytes).unwrap();
    let (code, found) = doctor(&env, &["--db", copy.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{found:?}");
    assert_eq!(rules(&found), ["database"], "{found:?}");
    let steps = found[0]["action"]["steps"].as_str().unwrap();
    assert!(steps.contains("Restore the state folder"), "{steps}");
    // The live database is untouched and sound.
    let (code, found) = doctor(&env, &[]);
    assert_eq!((code, found.len()), (Some(0), 0), "{found:?}");
}
