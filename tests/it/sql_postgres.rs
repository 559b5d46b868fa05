//! `[dataset.sql] engine = "postgres"` against a real PostgreSQL server
//! (`pg.rs`), through the real daemon in outbox mode: the watermark
//! algorithm of docs/sql-sources.md where peers get it wrong — a cd_time
//! tie across a page boundary, a transaction committed late with an older
//! cd_time, a SIGKILL mid-poll, the server restarted mid-poll, a wrong
//! password.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::data;
use crate::harness::*;
use crate::pg::{PASSWORD, Pg};
use crate::sql_checks;

/// The 前置库 table of `case_accept` in `qzk`, and the dataset's
/// `[dataset.sql]` reading it with `password` from a secret file.
fn source(env: &Env, pg: &Pg, page_rows: i64, password: &str) {
    let cols: Vec<String> = data::case_accept(0)
        .iter()
        .map(|(k, _)| format!("{k} text"))
        .collect();
    pg.sql(
        "qzk",
        &format!(
            "CREATE TABLE up_pro_accept ({}, \"GUID\" varchar(64), cd_operation char(1),
               cd_time timestamp, cd_batch text);
             CREATE INDEX ON up_pro_accept (cd_time, \"GUID\" COLLATE \"C\");",
            cols.join(", ")
        ),
    );
    let pw = env.root.join("qzk_password");
    std::fs::write(&pw, password).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.set_dataset("case_accept", "poll_secs", 1);
    let sql = crate::config::parse_toml(&format!(
        r#"engine = "postgres"
url = "{}"
password_file = "{}"
table = "up_pro_accept"
page_rows = {page_rows}
lag_secs = 0
reread_secs = 600
[columns]
"GUID" = "row_guid"
"#,
        pg.url("qzk"),
        pw.display()
    ));
    env.set_dataset("case_accept", "sql", toml::Value::Table(sql));
}

/// Inserts case `i` as row `guid`, `ago` seconds before the server's
/// clock; an update (`op = "u"`) changes the applicant's name.
fn insert(c: &mut impl postgres::GenericClient, i: u64, guid: &str, op: &str, ago: f64) {
    let mut rec = data::case_accept(i);
    for (k, v) in rec.iter_mut() {
        if *k == "applyer_name" && op == "u" {
            *v = "李四".to_string();
        }
    }
    let cols: Vec<&str> = rec.iter().map(|(k, _)| *k).collect();
    let n = rec.len();
    let marks: Vec<String> = (1..=n).map(|k| format!("${k}")).collect();
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = rec
        .iter()
        .map(|(_, v)| v as &(dyn postgres::types::ToSql + Sync))
        .collect();
    params.extend([&guid as &(dyn postgres::types::ToSql + Sync), &op, &ago]);
    c.execute(
        &format!(
            "INSERT INTO up_pro_accept ({}, \"GUID\", cd_operation, cd_time, cd_batch)
             VALUES ({}, ${}, ${}, LOCALTIMESTAMP(0) - make_interval(secs => ${}), 'B1')",
            cols.join(", "),
            marks.join(", "),
            n + 1,
            n + 2,
            n + 3
        ),
        &params,
    )
    .unwrap();
}

#[test]
fn postgres_rows_arrive_once_each_across_a_page_boundary_tie_and_a_late_commit() {
    let pg = Pg::start();
    let env = Env::new("");
    source(&env, &pg, 2, PASSWORD);
    let mut c = pg.connect("qzk").unwrap();
    // Three rows with the same cd_time: pages of two split them.
    let mut tx = c.transaction().unwrap();
    for i in 0..3 {
        insert(&mut tx, i, &format!("g{i}"), "i", 60.0);
    }
    tx.commit().unwrap();
    let _d = env.start_ready();
    env.wait_outbox_records("case_accept", 3);
    // A transaction opened now inserts a row with an older cd_time and
    // commits only after the next polls.
    let mut late = pg.connect("qzk").unwrap();
    let mut open = late.transaction().unwrap();
    insert(&mut open, 9, "g9", "i", 90.0);
    // Meanwhile an update and a delete, as new rows.
    insert(&mut c, 1, "g3", "u", 2.0);
    insert(&mut c, 2, "g4", "d", 1.0);
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
        "postgres",
        "g4",
    );
}

#[test]
fn postgres_sigkill_and_a_server_restart_mid_poll_lose_or_repeat_nothing() {
    let mut pg = Pg::start();
    let env = Env::new("");
    env.set_intake("chunk_records", 20);
    env.set("batch.max_records", 50);
    source(&env, &pg, 500, PASSWORD);
    const N: u64 = 3000;
    {
        let mut c = pg.connect("qzk").unwrap();
        let mut tx = c.transaction().unwrap();
        for i in 0..N {
            insert(
                &mut tx,
                i,
                &format!("g{i:05}"),
                "i",
                3600.0 - (i / 10) as f64,
            );
        }
        tx.commit().unwrap();
    }
    sql_checks::kill_and_server_restart_lose_or_repeat_nothing(&env, N, || {
        pg.stop();
        std::thread::sleep(Duration::from_secs(2));
        pg.run();
    });
}

#[test]
fn a_wrong_password_is_a_clear_error_in_status_and_never_logged() {
    let pg = Pg::start();
    let env = Env::new("");
    let wrong = "wrong-口令-42";
    source(&env, &pg, 100, wrong);
    insert(&mut pg.connect("qzk").unwrap(), 0, "g0", "i", 10.0);
    sql_checks::wrong_password_is_named_and_never_logged(
        &env,
        wrong,
        "password authentication failed",
    );
}

/// The `fep_status` marks of the rows, by row id.
fn pg_marks(pg: &Pg) -> Vec<Option<i64>> {
    let mut c = pg.connect("qzk").unwrap();
    c.query(
        "SELECT fep_status::bigint FROM up_pro_accept ORDER BY \"GUID\"",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn postgres_mark_mode_marks_each_row_after_its_commit_and_a_failed_mark_loses_nothing() {
    let pg = Pg::start();
    let hook = crate::receivers::Recorder::start();
    let env = Env::new(&format!(
        "\n[alerts]\ninterval = \"1s\"\nrepeat = \"off\"\n[[alerts.webhook]]\nurl = \"http://{}/json\"\n",
        hook.addr
    ));
    source(&env, &pg, 2, PASSWORD);
    // fepd connects as an account that may read the table but not yet
    // update it.
    pg.sql(
        "qzk",
        &format!(
            "ALTER TABLE up_pro_accept ADD COLUMN fep_status smallint;
             CREATE ROLE reader LOGIN PASSWORD '{PASSWORD}';
             GRANT SELECT ON up_pro_accept TO reader;"
        ),
    );
    sql_checks::mark_mode(&env);
    let url = pg.url("qzk").replace("://fepd@", "://reader@");
    sql_checks::set_source(&env, "url", &url);
    let mut c = pg.connect("qzk").unwrap();
    for i in 0..5 {
        insert(&mut c, i, &format!("g{i}"), "i", 60.0 - i as f64);
    }
    c.batch_execute(
        "UPDATE up_pro_accept SET fep_status = 0 WHERE \"GUID\" = 'g1';
         UPDATE up_pro_accept SET fep_status = 1 WHERE \"GUID\" = 'g4';",
    )
    .unwrap();
    let _d = env.start_ready();
    // The rows are sealed, but marking them is refused: an error in
    // status, the log and an alert; the rows are read again and left out.
    env.wait(
        "the mark's refusal in status",
        Duration::from_secs(20),
        || {
            env.status()["sql_sources"][0]["last_poll"]["error"]
                .as_str()
                .is_some_and(|e| {
                    e.contains("marking the rows taken") && e.contains("permission denied")
                })
        },
    );
    let alerts = |state: &str| {
        hook.at("/json")
            .into_iter()
            .filter(|r| r.body["kind"] == "sql_source" && r.body["state"] == state)
            .count()
    };
    env.wait("the sql_source alert", Duration::from_secs(20), || {
        alerts("raised") == 1
    });
    assert!(env.log_has("marking the rows taken"));
    std::thread::sleep(Duration::from_secs(3));
    // Each poll stops at the page it cannot mark (pages of two rows).
    assert_eq!(env.outbox_records("case_accept").len(), 2, "sealed once");
    assert!(pg_marks(&pg)[..4].iter().all(|m| *m != Some(1)));
    // Granted UPDATE, the next poll marks them: nothing sealed twice.
    pg.sql("qzk", "GRANT UPDATE ON up_pro_accept TO reader");
    sql_checks::all_marked(&env, || pg_marks(&pg));
    env.wait("the alert resolved", Duration::from_secs(40), || {
        alerts("resolved") == 1
    });
    sql_checks::arrived_once_in_order(
        &env,
        &[("upsert", 0), ("upsert", 1), ("upsert", 2), ("upsert", 3)],
        "postgres",
        "g3",
    );
}
