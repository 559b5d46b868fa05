//! Retention (`[retention]`): the daemon deletes delivered batch bodies,
//! per-record history rows and old spool files on a schedule, logs each
//! pass, and dedupe keeps working on what it keeps.

use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

fn exported(env: &Env, dataset: &str) -> Vec<String> {
    files_in(&env.outbox(dataset))
        .into_iter()
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect()
}

const SHORT: &str = r#"
[retention]
batch_bodies = "1s"
record_rows = "1s"
done_files = "2s"
rejected_files = "2s"
delivered_files = "2s"
interval = "1s"
"#;

#[test]
fn old_bodies_files_and_rows_go_and_an_old_record_is_still_skipped() {
    let env = Env::new(SHORT);
    let d = env.start();
    let recs: Vec<_> = (0..20).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    // A file whose one record is invalid: rejected, with a rejection row.
    env.drop_file("case_accept", "bad.jsonl", b"{\"project_no\":\"BAD-1\"}\n");
    // Retention deletes internal rows no command lists (`rejection`,
    // `batch_record`, `record_state`, `file`): this test counts them.
    env.wait("bad.jsonl rejected", Duration::from_secs(20), || {
        env.sql_count("SELECT COUNT(*) FROM rejection") > 0
    });
    env.wait("batch exported", Duration::from_secs(20), || {
        exported(&env, "case_accept").len() == 1
    });
    let id = exported(&env, "case_accept").remove(0);
    // A pending batch keeps its body whatever its age.
    std::thread::sleep(Duration::from_secs(3));
    assert!(env.has_body(&id), "a pending batch lost its body");
    env.ack(
        "case_accept",
        &id,
        r#"{"receiptId":"R-1","accepted":20,"rejected":[]}"#,
    );
    env.wait(
        "body, rows and files deleted",
        Duration::from_secs(30),
        || {
            env.batches(None)
                .iter()
                .all(|b| !env.has_body(b["batch_id"].as_str().unwrap()))
                && env.sql_count("SELECT COUNT(*) FROM batch_record") == 0
                && env.sql_count("SELECT COUNT(*) FROM rejection") == 0
                && files_in(&env.spool("case_accept", "done")).is_empty()
                && files_in(&env.spool("case_accept", "rejected")).is_empty()
                && files_in(&env.outbox("case_accept").join("delivered")).is_empty()
        },
    );
    // What dedupe, the report and trace need stays.
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM record_state"), 20);
    assert_eq!(env.batches_in("delivered"), 1);
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM file"), 2);

    // Each pass is an exchange-log entry with its counts (the pass that
    // deleted the last files may still be committing its entry).
    let passes = || -> Vec<serde_json::Value> {
        let out = env.fepd(&["audit", "show", "--event", "retention_pass", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let total = |passes: &[serde_json::Value], k: &str| -> i64 {
        passes
            .iter()
            .map(|p| p["counts"][k].as_i64().unwrap_or(0))
            .sum()
    };
    env.wait("the passes logged", Duration::from_secs(10), || {
        total(&passes(), "deliveredFiles") == 2
    });
    let passes = passes();
    assert_eq!(total(&passes, "batchBodies"), 1, "{passes:#?}");
    assert_eq!(
        total(&passes, "doneFiles"),
        3,
        "original + receipt + 回执: {passes:#?}"
    );
    assert!(total(&passes, "rejectedFiles") >= 2, "{passes:#?}");
    assert_eq!(
        total(&passes, "deliveredFiles"),
        2,
        "batch file + ack: {passes:#?}"
    );
    assert!(total(&passes, "recordRows") >= 21, "{passes:#?}");
    assert!(env.fepd(&["audit", "verify"]).status.success());

    // The operator is told why the body is gone.
    let out = env.fepd(&["batches", "show", &id, "--body"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deleted by retention"),
        "{out:?}"
    );
    // Trace still finds the key through its last sealed version.
    let key = data::case_accept(3)[0].1.clone();
    let out = env.fepd(&["audit", "trace", &key]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&id) && text.contains("batch_delivered") && text.contains("retention"),
        "{text}"
    );

    // An old record dropped again (with one new one) is skipped, though
    // its batch body and rows are gone.
    let again: Vec<_> = (0..21).map(data::case_accept).collect();
    env.drop_file("case_accept", "b.jsonl", &data::jsonl(&again, Enc::Utf8));
    let done = || env.log_entries(&["--event", "file_done", "--file", "b.jsonl"]);
    env.wait("b.jsonl done", Duration::from_secs(20), || {
        done().len() == 1
    });
    let counts = &done()[0]["counts"];
    assert_eq!(counts["skipped"], 20, "{counts}");
    assert_eq!(counts["sealed"], 1, "{counts}");
    let (st, _) = d.stop();
    assert!(st.success());
}

/// `"never"` keeps a kind; a pending batch is never touched.
#[test]
fn never_keeps_and_defaults_are_sane() {
    let env = Env::new(
        "\n[retention]\nbatch_bodies = \"never\"\ndone_files = \"never\"\ninterval = \"1s\"\n",
    );
    let d = env.start();
    let recs: Vec<_> = (0..5).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("batch exported", Duration::from_secs(20), || {
        exported(&env, "case_accept").len() == 1
    });
    let id = exported(&env, "case_accept").remove(0);
    env.ack(
        "case_accept",
        &id,
        r#"{"receiptId":"R-1","accepted":5,"rejected":[]}"#,
    );
    env.wait("delivered", Duration::from_secs(20), || {
        env.batches_in("delivered") == 1
    });
    env.wait("two passes", Duration::from_secs(20), || {
        env.events("retention_pass") >= 2
    });
    assert_eq!(env.batches(None).len(), 1);
    assert!(env.has_body(&id), "\"never\" deleted the body");
    // The original, its receipt and its 回执.
    assert_eq!(files_in(&env.spool("case_accept", "done")).len(), 3);
    // The default 7 days keeps the fresh delivered files.
    assert_eq!(
        files_in(&env.outbox("case_accept").join("delivered")).len(),
        2
    );
    d.stop();
}

#[test]
fn a_bad_duration_is_a_config_problem_naming_key_and_value() {
    let env = Env::new("\n[retention]\ndone_files = \"a fortnight\"\n");
    let out = env.fepd(&["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("done_files") && text.contains("a fortnight"),
        "{text}"
    );
}
