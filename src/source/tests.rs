//! The watermark algorithm against a real SQLite source and a real state
//! database, on a dataset defined only here (a schema file plus config:
//! nothing in `src/` names it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;

use super::{connect, poll};
use crate::config::{Config, Loaded, load};
use crate::daemon::backpressure::Gate;
use crate::daemon::job::DatasetCtx;
use crate::spool::Spool;
use crate::state::{batches, watermark};

/// A meter-reading dataset: key `meter_no`, version `cd_time`.
const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "抄表",
  "type": "object",
  "x-schema-version": "1",
  "x-key": ["meter_no"],
  "x-version": "cd_time",
  "required": ["meter_no", "reading"],
  "properties": {
    "meter_no": {"title": "表号", "type": "string", "maxLength": 20},
    "reading": {"title": "读数", "type": "integer", "minimum": 0},
    "row_guid": {"title": "行标识", "type": "string", "maxLength": 64, "x-control": true},
    "cd_operation": {"title": "操作类型", "type": "string", "enum": ["i", "u", "d"], "x-control": true},
    "cd_time": {"title": "入库时间", "type": "string", "format": "date-time", "x-control": true},
    "cd_batch": {"title": "批次号", "type": "string", "maxLength": 32, "x-control": true}
  }
}"#;

struct Env {
    _dir: tempfile::TempDir,
    source: PathBuf,
    loaded: Loaded,
}

impl Env {
    fn new(page_rows: u64) -> Env {
        Env::build(page_rows, "")
    }

    /// Mark mode: the table gains the mark column `fep_status`.
    fn marking(page_rows: u64) -> Env {
        let env = Env::build(page_rows, "mark_column = \"fep_status\"\n");
        Connection::open(&env.source)
            .unwrap()
            .execute_batch("ALTER TABLE up_meter ADD COLUMN fep_status INTEGER")
            .unwrap();
        env
    }

    /// `sql` is more of `[dataset.sql]`.
    fn build(page_rows: u64, sql: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let schemas = root.join("schemas");
        std::fs::create_dir_all(&schemas).unwrap();
        std::fs::write(schemas.join("meter.schema.json"), SCHEMA).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/gb2260.csv");
        std::fs::copy(repo, schemas.join("gb2260.csv")).unwrap();
        let source = root.join("qzk.db");
        let c = Connection::open(&source).unwrap();
        c.execute_batch(
            "CREATE TABLE up_meter (GUID TEXT, meter_no TEXT, reading INTEGER,
               cd_operation TEXT, cd_time TEXT, cd_batch TEXT)",
        )
        .unwrap();
        let text = format!(
            r#"spool_dir = "spool"
state_dir = "state"
schemas_dir = "{}"
sender = "230000-zwfw"
timezone = "+08:00"
[intake]
chunk_records = 1
[sink]
mode = "outbox"
outbox_dir = "outbox"
[[dataset]]
name = "meter"
category = "test"
resource = "meter"
poll_secs = 1
[dataset.sql]
engine = "sqlite"
url = "{}"
table = "up_meter"
page_rows = {page_rows}
lag_secs = 0
reread_secs = 600
{sql}[dataset.sql.columns]
"GUID" = "row_guid"
"#,
            schemas.display(),
            source.display()
        );
        let cfg = Config::parse(&text, &root).unwrap();
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        std::fs::create_dir_all(&cfg.state_dir).unwrap();
        let loaded = load(cfg).unwrap();
        Spool::new(&loaded.cfg.spool_dir, "meter").create().unwrap();
        Env {
            _dir: dir,
            source,
            loaded,
        }
    }

    fn ctx(&self, hook: impl Fn() + Send + Sync + 'static) -> DatasetCtx {
        let cfg = &self.loaded.cfg;
        crate::daemon::run::dataset_ctx(
            &self.loaded,
            cfg.tz(),
            &cfg.datasets[0],
            Spool::new(&cfg.spool_dir, "meter"),
            Arc::new(hook),
            Arc::new(|| false),
            Arc::new(Gate::new(cfg.backpressure, cfg.write_dirs())),
        )
    }

    fn state(&self) -> Connection {
        crate::state::open(&self.loaded.cfg.state_db()).unwrap()
    }

    /// A row `ago` seconds before the source's clock.
    fn insert(&self, guid: &str, meter: &str, reading: i64, op: &str, ago: i64) {
        let c = Connection::open(&self.source).unwrap();
        c.execute(
            "INSERT INTO up_meter (GUID, meter_no, reading, cd_operation, cd_time, cd_batch)
             VALUES (?1, ?2, ?3, ?4, datetime('now', 'localtime', ?5), 'B1')",
            rusqlite::params![guid, meter, reading, op, format!("-{ago} seconds")],
        )
        .unwrap();
    }

    fn poll(&self, conn: &mut Connection, ctx: &DatasetCtx) -> super::poll::Polled {
        let src = self.loaded.cfg.datasets[0].sql.clone().unwrap();
        let mut engine = connect(&src).unwrap();
        poll(conn, ctx, &src, engine.as_mut()).unwrap()
    }
}

/// Every record sealed for the dataset, in seal order: (op, meter_no, reading).
fn sealed(conn: &Connection) -> Vec<(String, String, Option<i64>)> {
    let mut out = Vec::new();
    for b in batches::list(conn, None, Some("meter"), 1000).unwrap() {
        let body = batches::body(conn, &b.batch_id).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for r in v["records"].as_array().unwrap() {
            out.push((
                r["op"].as_str().unwrap().to_string(),
                r["data"]["meter_no"].as_str().unwrap().to_string(),
                r["data"]["reading"].as_i64(),
            ));
        }
    }
    out
}

fn rec(op: &str, meter: &str, reading: Option<i64>) -> (String, String, Option<i64>) {
    (op.to_string(), meter.to_string(), reading)
}

#[test]
fn inserts_updates_and_deletes_between_polls_are_sealed_once_each_in_watermark_order() {
    let env = Env::new(100);
    let mut conn = env.state();
    let ctx = env.ctx(|| {});
    env.insert("g1", "M1", 10, "i", 30);
    env.insert("g2", "M2", 20, "i", 20);
    let p = env.poll(&mut conn, &ctx);
    assert_eq!((p.read, p.taken, p.pages), (2, 2, 1));
    // An update and a delete, as new rows of the 前置库.
    env.insert("g3", "M1", 11, "u", 10);
    env.insert("g4", "M2", 20, "d", 5);
    let p = env.poll(&mut conn, &ctx);
    assert_eq!(
        (p.read, p.taken),
        (4, 2),
        "re-read rows already taken are left out"
    );
    // Nothing new: nothing sealed again.
    let p = env.poll(&mut conn, &ctx);
    assert_eq!(p.taken, 0);
    assert_eq!(
        sealed(&conn),
        vec![
            rec("upsert", "M1", Some(10)),
            rec("upsert", "M2", Some(20)),
            rec("upsert", "M1", Some(11)),
            rec("delete", "M2", None),
        ]
    );
    let wm = watermark::get(&conn, "meter").unwrap().unwrap();
    assert_eq!(wm.row_guid, "g4");
    // Each page with rows has its receipt, named after the poll.
    let done = std::fs::read_dir(Spool::new(&env.loaded.cfg.spool_dir, "meter").done)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".receipt.json"))
        .count();
    assert_eq!(done, 2);
}

#[test]
fn rows_sharing_a_cd_time_across_a_page_boundary_all_arrive() {
    let env = Env::new(2);
    let mut conn = env.state();
    let ctx = env.ctx(|| {});
    let c = Connection::open(&env.source).unwrap();
    for (g, m) in [
        ("a", "M1"),
        ("b", "M2"),
        ("c", "M3"),
        ("d", "M4"),
        ("e", "M5"),
    ] {
        c.execute(
            "INSERT INTO up_meter VALUES (?1, ?2, 1, 'i', datetime('now', 'localtime', '-60 seconds'), 'B1')",
            [g, m],
        )
        .unwrap();
    }
    let p = env.poll(&mut conn, &ctx);
    assert_eq!((p.read, p.taken, p.pages), (5, 5, 3));
    let metres: Vec<String> = sealed(&conn).into_iter().map(|r| r.1).collect();
    assert_eq!(metres, ["M1", "M2", "M3", "M4", "M5"]);
}

#[test]
fn a_row_committed_late_with_an_older_cd_time_arrives_within_the_reread_window() {
    let env = Env::new(100);
    let mut conn = env.state();
    let ctx = env.ctx(|| {});
    env.insert("g2", "M2", 1, "i", 10);
    env.poll(&mut conn, &ctx);
    // A transaction opened before that poll commits now, its cd_time older
    // than the watermark.
    env.insert("g1", "M1", 1, "i", 100);
    let p = env.poll(&mut conn, &ctx);
    assert_eq!(p.taken, 1);
    let metres: Vec<String> = sealed(&conn).into_iter().map(|r| r.1).collect();
    assert_eq!(metres, ["M2", "M1"]);
}

#[test]
fn rows_newer_than_the_source_clock_less_the_lag_wait() {
    let env = Env::new(100);
    let mut conn = env.state();
    let ctx = env.ctx(|| {});
    // An hour in the future by the source's clock.
    env.insert("g1", "M1", 1, "i", -3600);
    assert_eq!(env.poll(&mut conn, &ctx).read, 0);
    assert_eq!(watermark::get(&conn, "meter").unwrap(), None);
}

#[test]
fn a_rejected_row_is_reported_with_its_key_once() {
    let env = Env::new(100);
    let mut conn = env.state();
    let ctx = env.ctx(|| {});
    env.insert("g1", "M1", -5, "i", 20);
    env.insert("g2", "M2", 5, "i", 10);
    let p = env.poll(&mut conn, &ctx);
    assert_eq!(p.taken, 2);
    let rejected = Spool::new(&env.loaded.cfg.spool_dir, "meter").rejected;
    let reports: Vec<PathBuf> = std::fs::read_dir(&rejected)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".report.json"))
        .collect();
    assert_eq!(reports.len(), 1);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&reports[0]).unwrap()).unwrap();
    assert_eq!(report["format"], "sql");
    assert_eq!(report["errors"][0]["key"], "M1");
    assert_eq!(report["errors"][0]["field"], "reading");
    // Read again in the window, unchanged: not reported again.
    assert_eq!(env.poll(&mut conn, &ctx).taken, 0);
    assert_eq!(sealed(&conn), vec![rec("upsert", "M2", Some(5))]);
}

#[test]
fn a_poll_killed_mid_page_resumes_from_the_watermark_with_nothing_lost_or_repeated() {
    let env = Env::new(100);
    let mut conn = env.state();
    for (i, g) in ["g1", "g2", "g3"].into_iter().enumerate() {
        env.insert(g, &format!("M{i}"), 1, "i", 30 - i as i64);
    }
    // The poller dies right after its first chunk commits.
    let armed = Arc::new(AtomicBool::new(true));
    let die = armed.clone();
    let ctx = env.ctx(move || {
        if die.swap(false, Ordering::SeqCst) {
            panic!("killed after the first chunk");
        }
    });
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.poll(&mut conn, &ctx)));
    assert!(died.is_err());
    let wm = watermark::get(&conn, "meter").unwrap().unwrap();
    assert_eq!(wm.row_guid, "g1", "the watermark is the last row committed");
    // The next start finishes the page, and polls from the watermark.
    let unfinished = watermark::unfinished_pages(&conn, "meter").unwrap();
    assert_eq!(unfinished.len(), 1);
    crate::daemon::job::rows::finish_page(&mut conn, &ctx, unfinished[0]).unwrap();
    let p = env.poll(&mut conn, &ctx);
    assert_eq!(p.taken, 2);
    let metres: Vec<String> = sealed(&conn).into_iter().map(|r| r.1).collect();
    assert_eq!(metres, ["M0", "M1", "M2"]);
}

#[test]
fn a_missing_column_is_an_error_and_the_watermark_does_not_move() {
    let env = Env::new(100);
    let mut conn = env.state();
    let ctx = env.ctx(|| {});
    env.insert("g1", "M1", 1, "i", 10);
    env.poll(&mut conn, &ctx);
    let before = watermark::get(&conn, "meter").unwrap();
    let mut src = env.loaded.cfg.datasets[0].sql.clone().unwrap();
    src.columns.clear();
    let mut engine = connect(&src).unwrap();
    let e = poll(&mut conn, &ctx, &src, engine.as_mut()).unwrap_err();
    assert!(e.to_string().contains("row_guid"), "{e}");
    assert_eq!(watermark::get(&conn, "meter").unwrap(), before);
}

/// Mark mode: the marks of the source's rows, by row id.
fn marks(env: &Env) -> Vec<(String, Option<i64>)> {
    let c = Connection::open(&env.source).unwrap();
    let mut stmt = c
        .prepare("SELECT GUID, fep_status FROM up_meter ORDER BY GUID")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn marked(guids: &[(&str, Option<i64>)]) -> Vec<(String, Option<i64>)> {
    guids.iter().map(|(g, m)| (g.to_string(), *m)).collect()
}

#[test]
fn mark_mode_takes_the_unmarked_rows_once_and_marks_them() {
    let env = Env::marking(2);
    let mut conn = env.state();
    let ctx = env.ctx(|| {});
    env.insert("g1", "M1", 10, "i", 30);
    env.insert("g2", "M2", 20, "i", 20);
    env.insert("g3", "M3", 30, "i", 10);
    let c = Connection::open(&env.source).unwrap();
    // 0 is unmarked as NULL is; a row marked already is never taken.
    c.execute_batch(
        "UPDATE up_meter SET fep_status = 0 WHERE GUID = 'g2';
         UPDATE up_meter SET fep_status = 1 WHERE GUID = 'g3';",
    )
    .unwrap();
    let p = env.poll(&mut conn, &ctx);
    assert_eq!((p.read, p.taken, p.pages), (2, 2, 1));
    assert_eq!(
        marks(&env),
        marked(&[("g1", Some(1)), ("g2", Some(1)), ("g3", Some(1))])
    );
    // Marked rows are not read again.
    assert_eq!(env.poll(&mut conn, &ctx).read, 0);
    // A row committed far behind the watermark (past any re-read window)
    // is unmarked, so it is read; the platform rewrites g1 and resets its
    // mark: the update is taken.
    env.insert("g4", "M4", 40, "i", 100_000);
    c.execute(
        "UPDATE up_meter SET reading = 11, cd_operation = 'u', fep_status = NULL,
           cd_time = datetime('now', 'localtime', '-1 seconds') WHERE GUID = 'g1'",
        [],
    )
    .unwrap();
    let p = env.poll(&mut conn, &ctx);
    assert_eq!((p.read, p.taken), (2, 2));
    assert_eq!(env.poll(&mut conn, &ctx).read, 0);
    assert_eq!(
        sealed(&conn),
        vec![
            rec("upsert", "M1", Some(10)),
            rec("upsert", "M2", Some(20)),
            rec("upsert", "M4", Some(40)),
            rec("upsert", "M1", Some(11)),
        ]
    );
    assert!(marks(&env).iter().all(|(_, m)| *m == Some(1)));
    assert_eq!(
        watermark::get(&conn, "meter").unwrap().unwrap().row_guid,
        "g1",
        "the watermark follows the last row taken"
    );
}

#[test]
fn mark_mode_a_crash_between_the_seal_and_the_mark_re_reads_the_rows_and_skips_them() {
    let env = Env::marking(100);
    let mut conn = env.state();
    env.insert("g1", "M1", 1, "i", 30);
    env.insert("g2", "M2", 2, "i", 20);
    // The poller dies right after the page's last chunk commits, before
    // the mark.
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let ctx = env.ctx(move || {
        if seen.fetch_add(1, Ordering::SeqCst) == 1 {
            panic!("killed between the seal and the mark");
        }
    });
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.poll(&mut conn, &ctx)));
    assert!(died.is_err());
    assert_eq!(sealed(&conn).len(), 2);
    assert_eq!(marks(&env), marked(&[("g1", None), ("g2", None)]));
    for id in watermark::unfinished_pages(&conn, "meter").unwrap() {
        crate::daemon::job::rows::finish_page(&mut conn, &ctx, id).unwrap();
    }
    // Read again, left out as taken with this content, and marked.
    let p = env.poll(&mut conn, &ctx);
    assert_eq!((p.read, p.taken), (2, 0));
    assert_eq!(marks(&env), marked(&[("g1", Some(1)), ("g2", Some(1))]));
    assert_eq!(sealed(&conn).len(), 2, "nothing sealed twice");
}

/// An engine whose mark statement fails, as one without UPDATE rights.
struct NoUpdate(Box<dyn super::Engine>);

impl super::Engine for NoUpdate {
    fn clock(&mut self, lag_secs: u64) -> Result<(String, String), super::SourceError> {
        self.0.clock(lag_secs)
    }
    fn minus(&mut self, cd_time: &str, secs: u64) -> Result<String, super::SourceError> {
        self.0.minus(cd_time, secs)
    }
    fn page(
        &mut self,
        after: Option<&watermark::Mark>,
        until: &str,
        limit: u64,
    ) -> Result<Vec<super::SourceRow>, super::SourceError> {
        self.0.page(after, until, limit)
    }
    fn mark(&mut self, _: &[watermark::Mark]) -> Result<(), super::SourceError> {
        Err(super::SourceError::Mark("permission denied".into()))
    }
}

#[test]
fn mark_mode_a_mark_that_fails_is_an_error_and_the_rows_are_skipped_not_lost() {
    let env = Env::marking(100);
    let mut conn = env.state();
    let ctx = env.ctx(|| {});
    let src = env.loaded.cfg.datasets[0].sql.clone().unwrap();
    env.insert("g1", "M1", 1, "i", 30);
    env.insert("g2", "M2", 2, "i", 20);
    let mut failing = NoUpdate(connect(&src).unwrap());
    for _ in 0..2 {
        let e = poll(&mut conn, &ctx, &src, &mut failing).unwrap_err();
        assert!(e.to_string().contains("marking the rows taken"), "{e}");
    }
    assert_eq!(
        sealed(&conn).len(),
        2,
        "sealed once, read again and left out"
    );
    assert_eq!(marks(&env), marked(&[("g1", None), ("g2", None)]));
    // Past the re-read window fepd no longer remembers them: dedupe skips
    // them as unchanged, and they are marked.
    watermark::forget_before(&conn, "meter", "9999-12-31").unwrap();
    let p = env.poll(&mut conn, &ctx);
    assert_eq!((p.read, p.taken), (2, 2));
    assert_eq!(sealed(&conn).len(), 2, "nothing sealed twice");
    assert_eq!(marks(&env), marked(&[("g1", Some(1)), ("g2", Some(1))]));
}
