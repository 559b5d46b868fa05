//! `[dataset.sql]` (docs/sql-sources.md): a dataset collected from a
//! 前置库 table by watermark, through the real daemon in outbox mode, with
//! the built-in SQLite engine. Every row reaches the outbox once, updates
//! and deletes included, and a SIGKILL mid-poll loses or repeats nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::Connection;

use crate::data;
use crate::harness::*;
use crate::sql_checks::key;

/// The 前置库 of `case_accept`: its fields plus the control columns, the
/// row id under the source's own name `GUID`.
fn source(env: &Env) -> PathBuf {
    let path = env.root.join("qzk.db");
    let cols: Vec<String> = data::case_accept(0)
        .iter()
        .map(|(k, _)| format!("{k} TEXT"))
        .collect();
    let c = Connection::open(&path).unwrap();
    c.execute_batch(&format!(
        "CREATE TABLE up_pro_accept ({}, GUID TEXT, cd_operation TEXT, cd_time TEXT, cd_batch TEXT);
         CREATE INDEX up_pro_accept_wm ON up_pro_accept (cd_time, GUID);",
        cols.join(", ")
    ))
    .unwrap();
    env.set_dataset("case_accept", "poll_secs", 1);
    let sql = crate::config::parse_toml(&format!(
        r#"engine = "sqlite"
url = "{}"
table = "up_pro_accept"
page_rows = 500
lag_secs = 0
reread_secs = 600
[columns]
"GUID" = "row_guid"
"#,
        path.display()
    ));
    env.set_dataset("case_accept", "sql", toml::Value::Table(sql));
    path
}

/// Inserts case `i` as row `guid`, `ago` seconds before the source's clock.
fn insert(c: &Connection, i: u64, guid: &str, op: &str, name: &str, ago: i64) {
    let mut rec = data::case_accept(i);
    for (k, v) in rec.iter_mut() {
        if *k == "applyer_name" {
            *v = name.to_string();
        }
    }
    let cols: Vec<&str> = rec.iter().map(|(k, _)| *k).collect();
    let marks: Vec<String> = (1..=rec.len()).map(|n| format!("?{n}")).collect();
    let values: Vec<&dyn rusqlite::ToSql> =
        rec.iter().map(|(_, v)| v as &dyn rusqlite::ToSql).collect();
    let n = rec.len();
    c.execute(
        &format!(
            "INSERT INTO up_pro_accept ({}, GUID, cd_operation, cd_time, cd_batch)
             VALUES ({}, ?{}, ?{}, datetime('now', 'localtime', ?{}), 'B1')",
            cols.join(", "),
            marks.join(", "),
            n + 1,
            n + 2,
            n + 3
        ),
        rusqlite::params_from_iter(values.into_iter().chain([
            &guid as &dyn rusqlite::ToSql,
            &op,
            &format!("-{ago} seconds"),
        ])),
    )
    .unwrap();
}

#[test]
fn rows_inserted_updated_and_deleted_between_polls_reach_the_outbox_once_each() {
    let env = Env::new("");
    let admin = free_addr();
    env.set("admin.listen", admin.as_str());
    let db = Connection::open(source(&env)).unwrap();
    for i in 0..5 {
        insert(&db, i, &format!("g{i}"), "i", "张三", 60 - i as i64);
    }
    let _d = env.start_ready();
    let first = env.wait_outbox_records("case_accept", 5);
    assert!(first.iter().all(|r| r["op"] == "upsert"));
    // Between polls: an update of case 1 and a delete of case 2, as new
    // rows; and a row committed late with an older cd_time.
    insert(&db, 1, "g5", "u", "李四", 5);
    insert(&db, 2, "g6", "d", "张三", 4);
    insert(&db, 7, "g7", "i", "张三", 100);
    let recs = env.wait_outbox_records("case_accept", 8);
    let tail: Vec<(String, String)> = recs[5..]
        .iter()
        .map(|r| (r["op"].as_str().unwrap().to_string(), key(r)))
        .collect();
    let k = |i| data::case_accept(i)[0].1.clone();
    assert_eq!(
        tail,
        vec![
            ("upsert".to_string(), k(7)),
            ("upsert".to_string(), k(1)),
            ("delete".to_string(), k(2)),
        ],
        "in watermark order: the late row's cd_time is the oldest of the three"
    );
    // Polls go on; nothing is sealed twice.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.outbox_records("case_accept").len(), 8);
    let status = env.status();
    let src = &status["sql_sources"][0];
    assert_eq!(src["dataset"], "case_accept");
    assert_eq!(src["engine"], "sqlite");
    assert_eq!(src["watermark"]["row_guid"], "g6");
    assert!(src["last_poll"]["error"].is_null(), "{src}");
    let (_, metrics) = http_get(&admin, "/metrics");
    assert!(
        metrics.contains("fepd_sql_source_failing{dataset=\"case_accept\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("fepd_sql_source_lag_seconds{dataset=\"case_accept\"}"));
    // Each page is in the exchange log like a file.
    let claimed = env.log_entries(&["--event", "file_claimed", "--dataset", "case_accept"]);
    assert!(!claimed.is_empty());
    assert!(
        claimed.iter().all(|e| e["details"]["format"] == "sql"),
        "{claimed:?}"
    );
}

#[test]
fn a_sigkill_mid_poll_resumes_from_the_watermark_with_nothing_lost_or_repeated() {
    let env = Env::new("");
    env.set_intake("chunk_records", 20);
    env.set("batch.max_records", 50);
    let mut db = Connection::open(source(&env)).unwrap();
    const N: u64 = 3000;
    let tx = db.transaction().unwrap();
    for i in 0..N {
        insert(
            &tx,
            i,
            &format!("g{i:05}"),
            "i",
            "张三",
            3600 - (i as i64 / 10),
        );
    }
    tx.commit().unwrap();
    let d = env.start_ready();
    env.wait("a poll under way", Duration::from_secs(30), || {
        env.outbox_records("case_accept").len() >= 100
    });
    d.kill();
    let before = env.outbox_records("case_accept").len() as u64;
    assert!(
        before < N,
        "the kill came mid-poll ({before} of {N} records sealed)"
    );
    let _d = env.start_ready();
    let recs = env.wait_outbox_records("case_accept", N as usize);
    let keys: BTreeSet<String> = recs.iter().map(key).collect();
    assert_eq!(keys.len() as u64, N, "every row once");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.outbox_records("case_accept").len() as u64, N);
}

#[test]
fn a_source_whose_polls_fail_raises_an_alert_until_a_poll_succeeds() {
    let hook = crate::receivers::Recorder::start();
    let env = Env::new(&format!(
        "\n[alerts]\ninterval = \"1s\"\nrepeat = \"2s\"\n[[alerts.webhook]]\nurl = \"http://{}/json\"\n",
        hook.addr
    ));
    let path = source(&env);
    let c = Connection::open(&path).unwrap();
    insert(&c, 1, "g1", "i", "张三", 5);
    let d = env.start();
    env.wait_outbox_records("case_accept", 1);
    let of = |state: &str| {
        hook.at("/json")
            .into_iter()
            .filter(|r| r.body["kind"] == "sql_source" && r.body["state"] == state)
            .count()
    };
    assert_eq!(of("raised"), 0);
    // The business platform renames its table: every poll fails.
    c.execute_batch("ALTER TABLE up_pro_accept RENAME TO up_pro_accept_old")
        .unwrap();
    env.wait("the sql_source alert", Duration::from_secs(20), || {
        of("raised") == 1
    });
    let raised = hook
        .at("/json")
        .into_iter()
        .find(|r| r.body["kind"] == "sql_source")
        .unwrap();
    let text = raised.body["text"].as_str().unwrap();
    assert!(
        text.contains("case_accept") && text.contains("fepd status"),
        "{text}"
    );
    assert!(!text.contains("张三"), "a row's value in an alert: {text}");
    // Repeated while the polls fail (repeat = 2s), raised only once.
    env.wait("a repeat", Duration::from_secs(20), || of("repeated") >= 1);
    assert_eq!(of("raised"), 1);
    c.execute_batch("ALTER TABLE up_pro_accept_old RENAME TO up_pro_accept")
        .unwrap();
    insert(&c, 2, "g2", "i", "李四", 1);
    env.wait("恢复", Duration::from_secs(40), || of("resolved") == 1);
    env.wait_outbox_records("case_accept", 2);
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn mark_mode_takes_each_unmarked_row_once_and_marks_it_1() {
    let env = Env::new("");
    let path = source(&env);
    let db = Connection::open(&path).unwrap();
    db.execute_batch("ALTER TABLE up_pro_accept ADD COLUMN fep_status INTEGER")
        .unwrap();
    crate::sql_checks::mark_mode(&env);
    for i in 0..4 {
        insert(&db, i, &format!("g{i}"), "i", "张三", 60 - i as i64);
    }
    // 0 is unmarked as NULL is; a row the platform marked is not taken.
    db.execute_batch(
        "UPDATE up_pro_accept SET fep_status = 0 WHERE GUID = 'g1';
         UPDATE up_pro_accept SET fep_status = 1 WHERE GUID = 'g3';",
    )
    .unwrap();
    let marks = || -> Vec<Option<i64>> {
        let c = Connection::open(&path).unwrap();
        let mut s = c
            .prepare("SELECT fep_status FROM up_pro_accept ORDER BY GUID")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let _d = env.start_ready();
    crate::sql_checks::arrived_once_in_order(
        &env,
        &[("upsert", 0), ("upsert", 1), ("upsert", 2)],
        "sqlite",
        "g2",
    );
    crate::sql_checks::all_marked(&env, marks);
    // A row written later, its cd_time far behind the watermark (past the
    // re-read window): unmarked, so it is taken.
    insert(&db, 7, "g7", "i", "张三", 100_000);
    let recs = env.wait_outbox_records("case_accept", 4);
    assert_eq!(key(&recs[3]), data::case_accept(7)[0].1);
    crate::sql_checks::all_marked(&env, marks);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.outbox_records("case_accept").len(), 4, "nothing twice");
}
