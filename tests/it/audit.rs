//! `fepd audit`: tampering with the state database is caught (the chain,
//! and the library's witness for a rewritten tail), the daily report
//! balances on a mixed run, a corrected record's two histories are traced,
//! and pruning keeps the chain verifiable.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

fn recs(from: u64, n: u64) -> Vec<data::Record> {
    (from..from + n).map(data::case_accept).collect()
}

/// A case_accept record whose 受理部门编码 has a wrong check digit.
fn bad(i: u64) -> data::Record {
    let mut r = data::case_accept(i);
    for (k, v) in r.iter_mut() {
        if *k == "org_code" {
            *v = data::uscc_bad(1000 + i % 50);
        }
    }
    r
}

fn key(i: u64) -> String {
    format!("11110105MB0000000X4000110012026112{i:06}")
}

fn audit(env: &Env, args: &[&str]) -> Output {
    let mut a = vec!["audit"];
    a.extend_from_slice(args);
    env.fepd(&a)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn today() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d")
        .to_string()
}

/// A consistent copy of the state database, to tamper with. Tampering is
/// what these tests are about, so they edit the copy's `exchange_log`
/// table with SQL; what they check goes through `fepd audit`.
fn copy_db(env: &Env, to: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(env.db()).unwrap();
    c.execute("VACUUM INTO ?1", [to.to_str().unwrap()]).unwrap();
    drop(c);
    rusqlite::Connection::open(to).unwrap()
}

fn hash_of(c: &rusqlite::Connection, seq: i64) -> String {
    c.query_row("SELECT hash FROM exchange_log WHERE seq = ?1", [seq], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Appends an entry with a correct chain hash: what a forger with SQL
/// access can do.
fn forge(c: &rusqlite::Connection, seq: i64, prev: &str, event: &str) -> String {
    let time = "2026-11-20T10:00:00+08:00";
    let canonical =
        fepd::state::log::canonical_entry(seq, time, event, None, None, None, None, None);
    let hash = fepd::state::log::chain_hash(prev, &canonical);
    c.execute(
        "INSERT INTO exchange_log (seq, time, event, hash) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![seq, time, event, hash],
    )
    .unwrap();
    hash
}

/// `GET path` from the simulator, as text (the audit heads are JSON lines).
fn get_text(lib: &Library, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&lib.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        lib.addr, lib.inspect_token
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

#[test]
fn edited_deleted_inserted_and_reordered_entries_are_caught_with_the_first_bad_seq() {
    let env = Env::new("");
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&recs(0, 5), Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    env.drop_file(
        "case_accept",
        "b.jsonl",
        &data::jsonl(&recs(5, 5), Enc::Utf8),
    );
    env.receipt("case_accept", "b.jsonl");
    env.wait("both exported", Duration::from_secs(20), || {
        env.batches_in("exported") == 2
    });
    d.stop();
    let n = env.log_entries(&[]).len();
    assert!(n >= 9, "{n} entries");

    let ok = audit(&env, &["verify"]);
    assert_eq!(code(&ok), 0, "{}", text(&ok));
    assert!(text(&ok).contains("chain intact"), "{}", text(&ok));
    let shown = audit(
        &env,
        &[
            "show",
            "--dataset",
            "case_accept",
            "--event",
            "batch_sealed",
            "--json",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).lines().count(),
        2,
        "{}",
        text(&shown)
    );

    let dir = tempfile::tempdir().unwrap();
    let sealed = env.log_entries(&["--event", "batch_sealed"])[0]["seq"]
        .as_i64()
        .unwrap();
    type Tamper = Box<dyn Fn(&rusqlite::Connection)>;
    let cases: Vec<(&str, i64, Tamper)> = vec![
        (
            "edit",
            sealed,
            Box::new(move |c| {
                c.execute(
                    "UPDATE exchange_log SET counts = '{\"records\":999}' WHERE seq = ?1",
                    [sealed],
                )
                .unwrap();
            }),
        ),
        (
            "delete",
            4,
            Box::new(|c| {
                c.execute("DELETE FROM exchange_log WHERE seq = 4", [])
                    .unwrap();
            }),
        ),
        (
            "insert",
            5,
            Box::new(|c| {
                // Make room after entry 3 and insert a well-chained entry 4:
                // the old entry 4, now 5, no longer chains.
                c.execute_batch(
                    "UPDATE exchange_log SET seq = seq + 100000 WHERE seq > 3;
                     UPDATE exchange_log SET seq = seq - 99999 WHERE seq > 100000;",
                )
                .unwrap();
                let prev = hash_of(c, 3);
                forge(c, 4, &prev, "config_loaded");
            }),
        ),
        (
            "reorder",
            4,
            Box::new(|c| {
                c.execute_batch(
                    "UPDATE exchange_log SET seq = -5 WHERE seq = 5;
                     UPDATE exchange_log SET seq = 5 WHERE seq = 4;
                     UPDATE exchange_log SET seq = 4 WHERE seq = -5;",
                )
                .unwrap();
            }),
        ),
    ];
    for (what, bad_seq, tamper) in cases {
        let path = dir.path().join(format!("{what}.db"));
        let c = copy_db(&env, &path);
        tamper(&c);
        drop(c);
        let o = audit(&env, &["verify", "--db", path.to_str().unwrap()]);
        assert_eq!(code(&o), 1, "{what}: {}", text(&o));
        assert!(
            text(&o).contains(&format!("chain broken at seq {bad_seq}:")),
            "{what}: expected seq {bad_seq}: {}",
            text(&o)
        );
        let j = audit(&env, &["verify", "--json", "--db", path.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
        assert_eq!(v["log"]["broken"]["seq"], bad_seq, "{what}");
    }
}

#[test]
fn a_truncated_and_rewritten_tail_is_caught_only_by_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    let d = env.start();
    for (i, name) in ["a.jsonl", "b.jsonl", "c.jsonl"].iter().enumerate() {
        env.drop_file(
            "case_accept",
            name,
            &data::jsonl(&recs(i as u64 * 10, 3), Enc::Utf8),
        );
        env.receipt("case_accept", name);
        env.wait("delivered", Duration::from_secs(30), || {
            env.batches_in("delivered") == i as i64 + 1
        });
    }
    d.stop();
    let heads = get_text(&lib, "/sim/audit-heads?sender=230000-zwfw");
    let witness = dir.path().join("witness.jsonl");
    std::fs::write(&witness, &heads).unwrap();
    let seqs: Vec<i64> = heads
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs.len(), 3, "{heads}");

    let o = audit(&env, &["verify", "--witness", witness.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("✓ witness: 3 head(s) match"),
        "{}",
        text(&o)
    );

    // Cut the log at the second batch's head and write a new, self-
    // consistent tail: the chain alone cannot tell.
    let cut = seqs[1];
    let path = dir.path().join("rewritten.db");
    let c = copy_db(&env, &path);
    c.execute("DELETE FROM exchange_log WHERE seq >= ?1", [cut])
        .unwrap();
    let mut prev = hash_of(&c, cut - 1);
    for seq in cut..cut + 2 {
        prev = forge(&c, seq, &prev, "daemon_stopped");
    }
    drop(c);
    let db = path.to_str().unwrap();
    let plain = audit(&env, &["verify", "--db", db]);
    assert_eq!(
        code(&plain),
        0,
        "the rewritten tail is self-consistent: {}",
        text(&plain)
    );
    let o = audit(
        &env,
        &["verify", "--db", db, "--witness", witness.to_str().unwrap()],
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        text(&o).contains(&format!("first: entry {cut}:")),
        "{}",
        text(&o)
    );
    // A witness head beyond a plain truncation is caught too.
    let path = dir.path().join("truncated.db");
    let c = copy_db(&env, &path);
    c.execute("DELETE FROM exchange_log WHERE seq >= ?1", [seqs[2]])
        .unwrap();
    drop(c);
    let o = audit(
        &env,
        &[
            "verify",
            "--db",
            path.to_str().unwrap(),
            "--witness",
            witness.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("truncated"), "{}", text(&o));
}

#[test]
fn the_daily_report_balances_on_a_mixed_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lib.db");
    // The library refuses record 3 and does not know evaluation's route.
    let routes = "zwfw/item_catalog,zwfw/item_task,zwfw/case_accept,zwfw/case_process,zwfw/case_result,culture/service_stats,cgdsj/event_report";
    let lib = Library::start(
        &db,
        &["--reject-keys-matching", "000003", "--routes", routes],
    );
    let env = Env::http(&lib.base_url, "");
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&recs(0, 10), Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    env.wait("a delivered", Duration::from_secs(30), || {
        env.batches_in("delivered") == 1
    });
    // 5 unchanged, 2 new, 1 invalid.
    let mut b = recs(0, 5);
    b.extend(recs(10, 2));
    b.push(bad(12));
    env.drop_file("case_accept", "b.jsonl", &data::jsonl(&b, Enc::Utf8));
    env.report("case_accept", "b.jsonl");
    env.wait("b delivered", Duration::from_secs(30), || {
        env.batches_in("delivered") == 2
    });
    let ev: Vec<_> = (0..3).map(data::evaluation).collect();
    env.drop_file("evaluation", "e.jsonl", &data::jsonl(&ev, Enc::Utf8));
    env.wait("evaluation parked", Duration::from_secs(30), || {
        env.batches_in("parked") == 1
    });
    d.stop();
    // The library goes away: the next batch stays pending, its failed
    // attempts logged.
    lib.stop();
    let d = env.start();
    env.drop_file(
        "case_accept",
        "c.jsonl",
        &data::jsonl(&recs(20, 5), Enc::Utf8),
    );
    env.receipt("case_accept", "c.jsonl");
    env.wait("a failed attempt", Duration::from_secs(30), || {
        env.events("batch_sent") >= 1
    });
    d.stop();

    let day = today();
    let o = audit(&env, &["report", "--day", &day, "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ds = |name: &str| {
        r["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["dataset"] == name)
            .unwrap()
            .clone()
    };
    let n = |d: &serde_json::Value, k: &str| d[k].as_i64().unwrap();
    for d in r["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&r["total"]])
    {
        assert_eq!(
            n(d, "received"),
            n(d, "rejected") + n(d, "skipped") + n(d, "sealed"),
            "{d}"
        );
        assert_eq!(
            n(d, "sealed"),
            n(d, "delivered") + n(d, "library_rejected") + n(d, "parked") + n(d, "pending"),
            "{d}"
        );
    }
    let ca = ds("case_accept");
    let got: Vec<i64> = [
        "files",
        "received",
        "rejected",
        "skipped",
        "sealed",
        "delivered",
        "library_rejected",
        "parked",
        "pending",
    ]
    .iter()
    .map(|k| n(&ca, k))
    .collect();
    assert_eq!(got, [3, 23, 1, 5, 17, 11, 1, 0, 5], "{ca}");
    let e = ds("evaluation");
    assert_eq!(
        (n(&e, "received"), n(&e, "sealed"), n(&e, "parked")),
        (3, 3, 3),
        "{e}"
    );
    for f in ["text", "csv"] {
        let o = audit(&env, &["report", "--day", &day, "--format", f]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("case_accept"), "{}", text(&o));
    }
    let v = audit(&env, &["verify"]);
    assert_eq!(code(&v), 0, "{}", text(&v));
}

#[test]
fn trace_shows_a_rejected_then_corrected_record_as_two_histories() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    let d = env.start();
    env.drop_file(
        "case_accept",
        "first.jsonl",
        &data::jsonl(
            &[data::case_accept(0), bad(1), data::case_accept(2)],
            Enc::Utf8,
        ),
    );
    env.report("case_accept", "first.jsonl");
    env.wait("valid ones delivered", Duration::from_secs(30), || {
        env.batches_in("delivered") == 1
    });
    env.drop_file(
        "case_accept",
        "fixed.jsonl",
        &data::jsonl(&recs(1, 1), Enc::Utf8),
    );
    env.receipt("case_accept", "fixed.jsonl");
    env.wait("correction delivered", Duration::from_secs(30), || {
        env.batches_in("delivered") == 2
    });
    // As after a crash: the audit commands read what was committed.
    d.kill();

    let o = audit(&env, &["trace", &key(1), "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let steps: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |event: &str, file: &str| {
        steps
            .iter()
            .position(|s| s["event"] == event && s["file"] == file)
            .unwrap_or_else(|| panic!("no {event} for {file} in {steps:#?}"))
    };
    let claimed1 = at("file_claimed", "first.jsonl");
    let rejected = at("record_rejected", "first.jsonl");
    let verdict1 = at("file_rejected", "first.jsonl");
    let claimed2 = at("file_claimed", "fixed.jsonl");
    let sealed = at("record_sealed", "fixed.jsonl");
    let delivered = at("batch_delivered", "fixed.jsonl");
    assert!(
        claimed1 < rejected && rejected < verdict1 && verdict1 < claimed2,
        "{steps:#?}"
    );
    assert!(claimed2 < sealed && sealed < delivered, "{steps:#?}");
    assert_eq!(steps[rejected]["details"]["field"], "org_code");
    assert!(
        !steps[rejected]["details"]["rule"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(
        steps[delivered]["details"]["receiptId"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(steps[sealed]["batch"], steps[delivered]["batch"]);
    // The first file's batch never held this record.
    assert!(
        !steps
            .iter()
            .any(|s| s["event"] == "record_sealed" && s["file"] == "first.jsonl")
    );
    // No personal data: the masked value is not even shown.
    let all = String::from_utf8_lossy(&o.stdout);
    assert!(
        !all.contains(&data::id_card(1)) && !all.contains("张三"),
        "{all}"
    );

    let table = audit(&env, &["trace", &key(1)]);
    assert_eq!(code(&table), 0);
    assert!(
        text(&table).contains("first.jsonl") && text(&table).contains("fixed.jsonl"),
        "{}",
        text(&table)
    );
    let none = audit(&env, &["trace", "no-such-key"]);
    assert_eq!(code(&none), 1, "{}", text(&none));
}

#[test]
fn export_and_prune_keep_the_chain_verifiable_with_and_without_the_archive() {
    let env = Env::new("");
    let d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &data::jsonl(&recs(0, 3), Enc::Utf8),
    );
    env.receipt("case_accept", "a.jsonl");
    d.stop();
    std::thread::sleep(Duration::from_millis(1100));
    let cut = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let d = env.start();
    env.drop_file(
        "case_accept",
        "b.jsonl",
        &data::jsonl(&recs(3, 3), Enc::Utf8),
    );
    env.receipt("case_accept", "b.jsonl");
    d.stop();
    let entries = env.log_entries(&[]);
    let before = entries.len() as i64;
    let first_run = entries
        .iter()
        .filter(|e| e["time"].as_str().unwrap() <= cut.as_str())
        .count() as i64;
    assert!(first_run > 0 && first_run < before);

    let dir = tempfile::tempdir().unwrap();
    let archive: PathBuf = dir.path().join("log-1.jsonl");
    let a = archive.to_str().unwrap();
    let o = audit(&env, &["export", "--until", &cut, "--out", a, "--prune"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&archive).unwrap().lines().count() as i64,
        first_run
    );
    let entries = env.log_entries(&[]);
    assert_eq!(entries[0]["seq"], first_run + 1);
    assert_eq!(entries.len() as i64, before - first_run + 1);
    let cp = audit(&env, &["show", "--event", "log_pruned", "--json"]);
    let cp: serde_json::Value = serde_json::from_slice(&cp.stdout).unwrap();
    assert_eq!(cp["details"]["prunedSeq"], first_run);

    let o = audit(&env, &["verify"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = audit(&env, &["verify", "--archive", a]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "✓ archives + exchange log: {} entries (seq 1–",
            before + 1
        )),
        "{}",
        text(&o)
    );
    // The archive is never overwritten.
    let again = audit(&env, &["export", "--until", &cut, "--out", a]);
    assert_eq!(code(&again), 3, "{}", text(&again));
    // An edited archive fails the combined check.
    let edited =
        std::fs::read_to_string(&archive)
            .unwrap()
            .replacen("\"a.jsonl\"", "\"x.jsonl\"", 1);
    std::fs::write(&archive, edited).unwrap();
    let o = audit(&env, &["verify", "--archive", a]);
    assert_eq!(code(&o), 1, "{}", text(&o));
}
