//! `[dataset.sql] engine = "mysql"` against a real MariaDB server
//! (`mariadb.rs`), through the real daemon in outbox mode: the watermark
//! algorithm of docs/sql-sources.md where peers get it wrong — a cd_time
//! tie across a page boundary, a transaction committed late with an older
//! cd_time, a SIGKILL mid-poll, the server restarted mid-poll, a wrong
//! password.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::data;
use crate::harness::*;
use crate::mariadb::{Maria, PASSWORD};
use mysql::prelude::Queryable;

/// The 前置库 table of `case_accept` in `qzk`, and the dataset's
/// `[dataset.sql]` reading it with `password` from a secret file.
fn source(env: &Env, db: &Maria, page_rows: i64, password: &str) {
    let cols: Vec<String> = data::case_accept(0)
        .iter()
        .map(|(k, _)| format!("{k} text"))
        .collect();
    db.connect()
        .query_drop(format!(
            "CREATE TABLE up_pro_accept ({}, GUID varchar(64), cd_operation char(1),
               cd_time datetime, cd_batch text, INDEX (cd_time, GUID))",
            cols.join(", ")
        ))
        .unwrap();
    let pw = env.root.join("qzk_password");
    std::fs::write(&pw, password).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.set_dataset("case_accept", "poll_secs", 1);
    let sql = crate::config::parse_toml(&format!(
        r#"engine = "mysql"
url = "{}"
password_file = "{}"
table = "up_pro_accept"
page_rows = {page_rows}
lag_secs = 0
reread_secs = 600
[columns]
"GUID" = "row_guid"
"#,
        db.url(),
        pw.display()
    ));
    env.set_dataset("case_accept", "sql", toml::Value::Table(sql));
}

/// Inserts case `i` as row `guid`, `ago` seconds before the server's
/// clock; an update (`op = "u"`) changes the applicant's name.
fn insert(c: &mut impl Queryable, i: u64, guid: &str, op: &str, ago: i64) {
    let mut rec = data::case_accept(i);
    for (k, v) in rec.iter_mut() {
        if *k == "applyer_name" && op == "u" {
            *v = "李四".to_string();
        }
    }
    let cols: Vec<&str> = rec.iter().map(|(k, _)| *k).collect();
    let marks = vec!["?"; rec.len()].join(", ");
    let mut params: Vec<mysql::Value> = rec.iter().map(|(_, v)| v.as_str().into()).collect();
    params.extend([guid.into(), op.into(), ago.into()]);
    c.exec_drop(
        format!(
            "INSERT INTO up_pro_accept ({}, GUID, cd_operation, cd_time, cd_batch)
             VALUES ({marks}, ?, ?, NOW() - INTERVAL ? SECOND, 'B1')",
            cols.join(", ")
        ),
        params,
    )
    .unwrap();
}

fn key(r: &serde_json::Value) -> String {
    r["key"].as_str().unwrap().to_string()
}

fn case_key(i: u64) -> String {
    data::case_accept(i)[0].1.clone()
}

#[test]
fn mysql_rows_arrive_once_each_across_a_page_boundary_tie_and_a_late_commit() {
    let db = Maria::start();
    let env = Env::new("");
    source(&env, &db, 2, PASSWORD);
    let mut c = db.connect();
    // Three rows with the same cd_time: pages of two split them.
    c.query_drop("SET timestamp = UNIX_TIMESTAMP()").unwrap();
    for i in 0..3 {
        insert(&mut c, i, &format!("g{i}"), "i", 60);
    }
    c.query_drop("SET timestamp = DEFAULT").unwrap();
    let _d = env.start_ready();
    env.wait_outbox_records("case_accept", 3);
    // A transaction opened now inserts a row with an older cd_time and
    // commits only after the next polls.
    let mut late = db.connect();
    let mut open = late.start_transaction(mysql::TxOpts::default()).unwrap();
    insert(&mut open, 9, "g9", "i", 90);
    // Meanwhile an update and a delete, as new rows.
    insert(&mut c, 1, "g3", "u", 2);
    insert(&mut c, 2, "g4", "d", 1);
    env.wait_outbox_records("case_accept", 5);
    std::thread::sleep(Duration::from_secs(2));
    open.commit().unwrap();
    let recs = env.wait_outbox_records("case_accept", 6);
    let got: Vec<(String, String)> = recs
        .iter()
        .map(|r| (r["op"].as_str().unwrap().to_string(), key(r)))
        .collect();
    let want: Vec<(String, String)> = [
        ("upsert", 0),
        ("upsert", 1),
        ("upsert", 2),
        ("upsert", 1),
        ("delete", 2),
        ("upsert", 9),
    ]
    .into_iter()
    .map(|(op, i)| (op.to_string(), case_key(i)))
    .collect();
    assert_eq!(got, want);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.outbox_records("case_accept").len(), 6, "nothing twice");
    let status = env.status();
    let src = &status["sql_sources"][0];
    assert_eq!(src["engine"], "mysql");
    assert_eq!(src["watermark"]["row_guid"], "g4");
    assert!(src["last_poll"]["error"].is_null(), "{src}");
}

#[test]
fn mysql_sigkill_and_a_server_restart_mid_poll_lose_or_repeat_nothing() {
    let mut db = Maria::start();
    let env = Env::new("");
    env.set_intake("chunk_records", 20);
    env.set("batch.max_records", 50);
    source(&env, &db, 500, PASSWORD);
    const N: u64 = 3000;
    {
        let mut c = db.connect();
        let mut tx = c.start_transaction(mysql::TxOpts::default()).unwrap();
        for i in 0..N {
            insert(&mut tx, i, &format!("g{i:05}"), "i", 3600 - (i / 10) as i64);
        }
        tx.commit().unwrap();
    }
    let d = env.start_ready();
    env.wait("a poll under way", Duration::from_secs(30), || {
        env.outbox_records("case_accept").len() >= 100
    });
    d.kill();
    let killed_at = env.outbox_records("case_accept").len();
    assert!((killed_at as u64) < N, "the kill came mid-poll");
    let _d = env.start_ready();
    env.wait("the poll resumed", Duration::from_secs(30), || {
        env.outbox_records("case_accept").len() >= killed_at + 100
    });
    // The server restarts under the poll.
    db.stop();
    let stopped_at = env.outbox_records("case_accept").len();
    std::thread::sleep(Duration::from_secs(2));
    db.run();
    assert!((stopped_at as u64) < N, "the restart came mid-poll");
    let recs = env.wait_outbox_records("case_accept", N as usize);
    let keys: BTreeSet<String> = recs.iter().map(key).collect();
    assert_eq!(keys.len() as u64, N, "every row once");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.outbox_records("case_accept").len() as u64, N);
}

#[test]
fn a_wrong_mysql_password_is_a_clear_error_in_status_and_never_logged() {
    let db = Maria::start();
    let env = Env::new("");
    let wrong = "wrong-口令-42";
    source(&env, &db, 100, wrong);
    insert(&mut db.connect(), 0, "g0", "i", 10);
    let _d = env.start_ready();
    env.wait("the refusal in status", Duration::from_secs(20), || {
        env.status()["sql_sources"][0]["last_poll"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Access denied"))
    });
    assert!(env.status()["sql_sources"][0]["watermark"].is_null());
    assert!(env.outbox_records("case_accept").is_empty());
    assert!(!env.log_has(wrong), "the password is never logged");
    let text = String::from_utf8(env.fepd(&["status"]).stdout).unwrap();
    assert!(text.contains("Access denied"), "{text}");
    assert!(!text.contains(wrong));
}
