//! `[dataset.sql] engine = "mysql"` against a real MariaDB server
//! (`mariadb.rs`), through the real daemon in outbox mode: the watermark
//! algorithm of docs/sql-sources.md where peers get it wrong — a cd_time
//! tie across a page boundary, a transaction committed late with an older
//! cd_time, a SIGKILL mid-poll, the server restarted mid-poll, a wrong
//! password.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::data;
use crate::harness::*;
use crate::mariadb::{Maria, PASSWORD};
use crate::sql_checks;
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
    sql_checks::arrived_once_in_order(
        &env,
        &[
            ("upsert", 0),
            ("upsert", 1),
            ("upsert", 2),
            ("upsert", 1),
            ("delete", 2),
            ("upsert", 9),
        ],
        "mysql",
        "g4",
    );
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
    sql_checks::kill_and_server_restart_lose_or_repeat_nothing(&env, N, || {
        db.stop();
        std::thread::sleep(Duration::from_secs(2));
        db.run();
    });
}

#[test]
fn a_wrong_mysql_password_is_a_clear_error_in_status_and_never_logged() {
    let db = Maria::start();
    let env = Env::new("");
    let wrong = "wrong-口令-42";
    source(&env, &db, 100, wrong);
    insert(&mut db.connect(), 0, "g0", "i", 10);
    sql_checks::wrong_password_is_named_and_never_logged(&env, wrong, "Access denied");
}

#[test]
fn mysql_mark_mode_takes_each_unmarked_row_once_and_marks_it_1() {
    let db = Maria::start();
    let env = Env::new("");
    source(&env, &db, 2, PASSWORD);
    let mut c = db.connect();
    c.query_drop("ALTER TABLE up_pro_accept ADD COLUMN fep_status tinyint")
        .unwrap();
    sql_checks::mark_mode(&env);
    for i in 0..5 {
        insert(&mut c, i, &format!("g{i}"), "i", 60 - i as i64);
    }
    // 0 is unmarked as NULL is; a row the platform marked is not taken.
    c.query_drop(
        "UPDATE up_pro_accept SET fep_status = 0 WHERE GUID = 'g1';
         UPDATE up_pro_accept SET fep_status = 1 WHERE GUID = 'g4';",
    )
    .unwrap();
    let marks = || -> Vec<Option<i64>> {
        db.connect()
            .query("SELECT fep_status FROM up_pro_accept ORDER BY GUID")
            .unwrap()
    };
    let _d = env.start_ready();
    sql_checks::arrived_once_in_order(
        &env,
        &[("upsert", 0), ("upsert", 1), ("upsert", 2), ("upsert", 3)],
        "mysql",
        "g3",
    );
    sql_checks::all_marked(&env, marks);
    // The platform rewrites g0 and resets its mark: the update is taken.
    c.query_drop(
        "UPDATE up_pro_accept SET applyer_name = '李四', cd_operation = 'u',
           cd_time = NOW(), fep_status = NULL WHERE GUID = 'g0'",
    )
    .unwrap();
    let recs = env.wait_outbox_records("case_accept", 5);
    assert_eq!(recs[4]["op"], "upsert");
    assert_eq!(sql_checks::key(&recs[4]), sql_checks::case_key(0));
    sql_checks::all_marked(&env, marks);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.outbox_records("case_accept").len(), 5, "nothing twice");
}
