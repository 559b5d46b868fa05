//! A file's life in process: a real state database and real spool folders
//! in a temp dir, the repo's schemas, no mocks. What a test cannot do by
//! dropping files — die after a chunk, write to a file being read — it
//! does from the `on_sealed` hook, which runs right after a chunk commits.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{DatasetCtx, Outcome, process};
use crate::config::Config;
use crate::config::{Loaded, load};
use crate::daemon::backpressure::Gate;
use crate::spool::{ClaimName, Spool};
use crate::state::batches;
use crate::state::files::{self, FileState};
use crate::state::log;

/// Three valid `evaluation` records, one line each.
const RECORDS: [&str; 3] = [
    r#"{"project_no": "11110101MB0123456X4000110010000202611200001", "area_code": "110101", "dept_code": "11110101MB0123456M", "task_code": "11110101MB0123456X4000110010000", "task_name": "建设工程消防验收备案", "pro_status": "3", "pf": "1", "user_prop": "1", "user_name": "王小明", "satisfaction": "5", "assess_time": "2026-11-21 08:30:00", "assess_number": "1"}"#,
    r#"{"project_no": "11110101MB0123456X4000110010000202611200002", "area_code": "110101", "dept_code": "11110101MB0123456M", "task_code": "11110101MB0123456X4000110010000", "task_name": "建设工程消防验收备案", "pro_status": "3", "pf": "2", "user_prop": "1", "user_name": "赵六", "satisfaction": "4", "assess_time": "2026-11-21 08:31:00", "assess_number": "1"}"#,
    r#"{"project_no": "11110101MB0123456X4000110010000202611200003", "area_code": "110101", "dept_code": "11110101MB0123456M", "task_code": "11110101MB0123456X4000110010000", "task_name": "建设工程消防验收备案", "pro_status": "3", "pf": "3", "user_prop": "1", "user_name": "李华", "satisfaction": "2", "assess_time": "2026-11-21 08:32:00", "assess_number": "1", "writing_evaluation": "等待时间较长，希望改进"}"#,
];

fn jsonl(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    loaded: Loaded,
}

impl Env {
    /// One dataset, `evaluation`, read one record per chunk.
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
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
name = "evaluation"
category = "zwfw"
resource = "evaluation"
"#,
            schemas.display()
        );
        let cfg = Config::parse(&text, &root).unwrap();
        std::fs::create_dir_all(&cfg.state_dir).unwrap();
        let loaded = load(cfg).unwrap();
        Spool::new(&loaded.cfg.spool_dir, "evaluation")
            .create()
            .unwrap();
        Env {
            _dir: dir,
            root,
            loaded,
        }
    }

    fn spool(&self) -> Spool {
        Spool::new(&self.loaded.cfg.spool_dir, "evaluation")
    }

    fn conn(&self) -> rusqlite::Connection {
        crate::state::open(&self.loaded.cfg.state_db()).unwrap()
    }

    /// A dataset context whose `on_sealed` hook is `hook`.
    fn ctx(&self, hook: impl Fn() + Send + Sync + 'static) -> DatasetCtx {
        let cfg = &self.loaded.cfg;
        crate::daemon::run::dataset_ctx(
            &self.loaded,
            cfg.tz(),
            &cfg.datasets[0],
            self.spool(),
            Arc::new(hook),
            Arc::new(|| false),
            Arc::new(Gate::new(cfg.backpressure, cfg.write_dirs())),
        )
    }

    /// Puts `content` in `work/` as intake's claim of `name` would.
    fn claimed(&self, name: &str, content: &str) -> String {
        let work_name = ClaimName::new(name).work_name();
        std::fs::write(self.spool().claimed(&work_name), content).unwrap();
        work_name
    }

    fn read(&self, path: impl AsRef<Path>) -> String {
        std::fs::read_to_string(self.root.join(path)).unwrap()
    }
}

/// The record keys sealed from the file `id`, every occurrence.
fn sealed_keys(conn: &rusqlite::Connection, id: i64) -> Vec<String> {
    let mut keys = Vec::new();
    for (batch, count, _) in files::batches_of(conn, id).unwrap() {
        for idx in 0..count {
            keys.push(batches::record_key(conn, &batch, idx).unwrap().unwrap());
        }
    }
    keys
}

#[test]
fn a_file_killed_mid_way_resumes_from_its_checkpoint_and_commits_each_record_once() {
    let env = Env::new();
    let work_name = env.claimed("a.jsonl", &jsonl(&RECORDS));
    let mut conn = env.conn();
    // The worker dies right after its first chunk commits.
    let armed = Arc::new(AtomicBool::new(true));
    let die = armed.clone();
    let ctx = env.ctx(move || {
        if die.swap(false, Ordering::SeqCst) {
            panic!("killed after the first chunk");
        }
    });
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        process(&mut conn, &ctx, &work_name)
    }));
    assert!(died.is_err());
    let row = files::by_work_name(&conn, &work_name).unwrap().unwrap();
    assert_eq!(row.state, FileState::Processing);
    assert_eq!(row.records_done, 1, "the first chunk is committed");
    assert_eq!(sealed_keys(&conn, row.id).len(), 1);
    assert!(env.spool().claimed(&work_name).exists(), "still in work/");

    // The next start resumes the file where the checkpoint says.
    let mut conn = env.conn();
    let out = process(&mut conn, &env.ctx(|| {}), &work_name).unwrap();
    let Outcome::Done { counts } = out else {
        panic!("{out:?}")
    };
    assert_eq!((counts.received, counts.sealed), (3, 3));
    let row = files::by_id(&conn, row.id).unwrap().unwrap();
    assert_eq!((row.state, row.records_done), (FileState::Done, 3));
    let keys = sealed_keys(&conn, row.id);
    assert_eq!(keys.len(), 3);
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), 3, "{keys:?}");
    assert!(!env.spool().claimed(&work_name).exists());
    assert!(
        env.read("spool/evaluation/done/a.jsonl.receipt.json")
            .contains("\"sealed\": 3")
    );
    assert_eq!(
        log::verify(&conn).unwrap().ok(),
        Some(log::head(&conn).unwrap().seq)
    );
}

#[test]
fn the_same_bytes_dropped_again_get_the_duplicate_verdict() {
    let env = Env::new();
    let content = jsonl(&RECORDS[..2]);
    let mut conn = env.conn();
    let ctx = env.ctx(|| {});
    let first = env.claimed("a.jsonl", &content);
    assert!(matches!(
        process(&mut conn, &ctx, &first).unwrap(),
        Outcome::Done { .. }
    ));
    let first_id = files::by_work_name(&conn, &first).unwrap().unwrap().id;

    let again = env.claimed("again.jsonl", &content);
    let out = process(&mut conn, &ctx, &again).unwrap();
    assert_eq!(out, Outcome::Duplicate { of: first_id });
    let row = files::by_work_name(&conn, &again).unwrap().unwrap();
    assert_eq!(row.state, FileState::Duplicate);
    assert_eq!(row.duplicate_of, Some(first_id));
    assert!(sealed_keys(&conn, row.id).is_empty(), "nothing re-sent");
    let receipt: serde_json::Value =
        serde_json::from_str(&env.read("spool/evaluation/done/again.jsonl.receipt.json")).unwrap();
    assert_eq!(receipt["verdict"], "duplicate");
    assert_eq!(receipt["duplicateOf"]["file"], "a.jsonl");
    assert_eq!(env.read("spool/evaluation/done/again.jsonl"), content);
    // Processing it again (a restart before the move) changes nothing.
    assert_eq!(
        process(&mut conn, &ctx, &again).unwrap(),
        Outcome::Duplicate { of: first_id }
    );
}

#[test]
fn a_file_changed_after_its_claim_goes_back_to_the_inbox_as_a_new_file() {
    let env = Env::new();
    let claimed = jsonl(&RECORDS[..2]);
    let work_name = env.claimed("a.jsonl", &claimed);
    let path = env.spool().claimed(&work_name);
    // A writer appends while the file is being read.
    let appended = Arc::new(AtomicBool::new(false));
    let (writer, once) = (path.clone(), appended.clone());
    let ctx = env.ctx(move || {
        if !once.swap(true, Ordering::SeqCst) {
            use std::io::Write;
            let mut f = std::fs::File::options().append(true).open(&writer).unwrap();
            f.write_all(format!("{}\n", RECORDS[2]).as_bytes()).unwrap();
        }
    });
    let mut conn = env.conn();
    let out = process(&mut conn, &ctx, &work_name).unwrap();
    let Outcome::Done { counts } = out else {
        panic!("{out:?}")
    };
    assert_eq!(counts.received, 2, "the verdict covers what was claimed");
    // done/ keeps the claimed content beside its receipt; the grown file
    // is back in the inbox under its name, to be claimed as a new file.
    assert_eq!(env.read("spool/evaluation/done/a.jsonl"), claimed);
    assert_eq!(env.read("spool/evaluation/inbox/a.jsonl"), jsonl(&RECORDS));
    assert!(!path.exists());
    let receipt = env.read("spool/evaluation/done/a.jsonl.receipt.json");
    assert!(receipt.contains("接收后文件仍在增长"), "{receipt}");

    // Claimed again, its two records already sent are recognised as
    // unchanged and only the third is sealed.
    let again = env.claimed("a.jsonl", &env.read("spool/evaluation/inbox/a.jsonl"));
    std::fs::remove_file(env.spool().inbox.join("a.jsonl")).unwrap();
    let out = process(&mut conn, &env.ctx(|| {}), &again).unwrap();
    let Outcome::Done { counts } = out else {
        panic!("{out:?}")
    };
    assert_eq!((counts.received, counts.skipped, counts.sealed), (3, 2, 1));
}

/// Cluster mode (docs/cluster.md "Batch ids"): a file sealed again from
/// the start by another node — another state database, the same claim
/// name and bytes — seals the same batch ids, in seal order.
#[test]
fn a_file_sealed_again_elsewhere_gets_the_same_batch_ids_in_cluster_mode() {
    let content = jsonl(&RECORDS);
    let work_name = ClaimName::new("a.jsonl").work_name();
    let ids = |deterministic: bool| {
        let env = Env::new();
        std::fs::write(env.spool().claimed(&work_name), &content).unwrap();
        let mut ctx = env.ctx(|| {});
        ctx.deterministic_ids = deterministic;
        let mut conn = env.conn();
        let out = process(&mut conn, &ctx, &work_name).unwrap();
        assert!(matches!(out, Outcome::Done { .. }), "{out:?}");
        batches::list(&conn, None, None, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|b| b.batch_id)
            .collect::<Vec<_>>()
    };
    let (first, second) = (ids(true), ids(true));
    assert_eq!(first.len(), 3, "one record per chunk, one batch each");
    assert_eq!(first, second);
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, first, "ids sort in seal order");
    assert_ne!(ids(false), first, "single-host ids stay fresh ULIDs");
}
