//! The kill harness (issue 5): fepd on generated input — every format, two
//! datasets, some invalid records, both sinks — killed with SIGKILL at
//! random moments (intake, mid-file, sealing, mid-request, handling .ack
//! files) and restarted, over and over. At the end, what the library holds
//! is compared with the input: every valid record delivered exactly once
//! in effect, every invalid one reported once, no file left in `work/`, no
//! batch lost.
//!
//! CI runs the short form (20 kills per sink). The long form is
//! `FEPD_KILLS=200 cargo test --release --test it killtest -- --nocapture`
//! (see `scripts/killtest.sh`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

/// A small deterministic generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn kills() -> usize {
    std::env::var("FEPD_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// What was dropped: file names per dataset, valid keys, invalid count.
#[derive(Default)]
struct Input {
    files: Vec<(String, String)>,
    valid: usize,
    invalid: usize,
    /// First record number of the next file: every record has its own key.
    next: u64,
}

/// Writes file number `i` (format and dataset rotate; every 40th record
/// is invalid) into `env`'s inbox.
fn drop_file(env: &Env, i: u64, per_file: u64, input: &mut Input) {
    let (ds, make): (&str, fn(u64) -> data::Record) = if i % 3 == 2 {
        ("evaluation", data::evaluation)
    } else {
        ("case_accept", data::case_accept)
    };
    let from = input.next;
    input.next += per_file;
    let mut recs: Vec<data::Record> = (from..from + per_file).map(make).collect();
    for (j, r) in recs.iter_mut().enumerate() {
        if j % 40 == 7 {
            for (k, v) in r.iter_mut() {
                if *k == "area_code" {
                    *v = "999999".into(); // not in GB/T 2260
                }
            }
            input.invalid += 1;
        } else {
            input.valid += 1;
        }
    }
    let (name, bytes) = match i % 5 {
        0 => (format!("f{i}.jsonl"), data::jsonl(&recs, Enc::Utf8)),
        1 => (
            format!("f{i}.csv"),
            data::csv(&recs, i.is_multiple_of(2), Enc::Gb18030),
        ),
        2 => (format!("f{i}.xml"), data::xml(&recs, Enc::Utf8)),
        3 => (format!("f{i}.json"), data::json(&recs, true, Enc::Utf8Bom)),
        _ => {
            let p = env.root.join(format!("f{i}.xlsx"));
            data::xlsx(&recs, &p);
            (format!("f{i}.xlsx"), std::fs::read(&p).unwrap())
        }
    };
    env.drop_file(ds, &name, &bytes);
    input.files.push((ds.to_string(), name));
}

/// The library's collector in pull mode: acknowledges some of the batch
/// files waiting in the outbox (all of them when `all`).
fn collect(env: &Env, rng: &mut Rng, all: bool) {
    for ds in ["case_accept", "evaluation"] {
        for name in files_in(&env.outbox(ds)) {
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if name.starts_with('.') || (!all && rng.below(2) == 0) {
                continue;
            }
            let ack = env.outbox(ds).join(format!("{id}.ack"));
            if !ack.exists() {
                let tmp = env.outbox(ds).join(format!(".{id}.ack.tmp"));
                std::fs::write(&tmp, format!(r#"{{"receiptId":"R-{id}","rejected":[]}}"#)).unwrap();
                std::fs::rename(&tmp, &ack).unwrap();
            }
        }
    }
}

/// Records in delivered batch files, by key.
fn delivered_keys(dir: &Path, counts: &mut HashMap<String, usize>) {
    for name in files_in(dir) {
        if !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(&name)).unwrap()).unwrap();
        for r in v["records"].as_array().unwrap() {
            *counts
                .entry(r["key"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
}

/// Invalid records reported: distinct (file, record) in every report.
fn reported(env: &Env, input: &Input) -> usize {
    let mut n = 0;
    for (ds, name) in &input.files {
        let p = env
            .spool(ds, "rejected")
            .join(format!("{name}.report.json"));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let mut ords: Vec<i64> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["ordinal"].as_i64().unwrap())
            .collect();
        ords.sort();
        ords.dedup();
        assert_eq!(
            ords.len() as i64,
            v["counts"]["rejected"].as_i64().unwrap(),
            "{name}"
        );
        n += ords.len();
    }
    n
}

fn settle(env: &Env, input: &Input) {
    env.wait("every file finished", Duration::from_secs(180), || {
        input.files.iter().all(|(ds, name)| {
            env.spool(ds, "rejected").join(name).exists()
                || env.spool(ds, "done").join(name).exists()
        })
    });
    for ds in ["case_accept", "evaluation"] {
        assert!(
            files_in(&env.spool(ds, "work")).is_empty(),
            "file left in {ds}/work"
        );
        assert!(
            files_in(&env.spool(ds, "inbox")).is_empty(),
            "file left in {ds}/inbox"
        );
    }
}

fn run_kills(env: &Env, rng: &mut Rng, input: &mut Input, pull: bool) -> usize {
    let n = kills();
    for i in 0..n as u64 {
        let d = env.start();
        // A file or two while it runs; bigger ones now and then, so that
        // kills land mid-file and mid-chunk.
        let per_file = if rng.below(4) == 0 { 3000 } else { 400 };
        drop_file(env, i, per_file, input);
        if pull && rng.below(2) == 0 {
            collect(env, rng, false);
        }
        std::thread::sleep(Duration::from_millis(100 + rng.below(600)));
        if pull {
            collect(env, rng, false);
            std::thread::sleep(Duration::from_millis(rng.below(50)));
        }
        d.kill();
    }
    n
}

/// Files resumed after a kill, summed over the `daemon_recovered` entries.
fn recovered_files(env: &Env) -> i64 {
    env.log_entries(&["--event", "daemon_recovered"])
        .iter()
        .map(|e| e["counts"]["files"].as_i64().unwrap_or(0))
        .sum()
}

#[test]
fn killtest_outbox_sink() {
    let mut rng = Rng(0x5eed_f00d);
    let env = Env::new("");
    let mut input = Input::default();
    let kills = run_kills(&env, &mut rng, &mut input, true);
    let d = env.start();
    settle(&env, &input);
    // Acknowledge everything until nothing is pending.
    env.wait("every batch delivered", Duration::from_secs(120), || {
        collect(&env, &mut rng, true);
        env.batches(None).iter().all(|b| b["state"] == "delivered")
            // Every file settled in the state's file ledger: no command
            // lists files by state.
            && env.sql_count("SELECT COUNT(*) FROM file WHERE state NOT IN ('done', 'rejected')")
                == 0
    });
    let (st, _) = d.stop();
    assert!(st.success());
    let mut counts = HashMap::new();
    for ds in ["case_accept", "evaluation"] {
        delivered_keys(&env.outbox(ds).join("delivered"), &mut counts);
    }
    let twice = counts.values().filter(|&&c| c > 1).count();
    let lost = input.valid as i64 - counts.len() as i64;
    println!(
        "outbox sink: kills = {kills}, resumed files = {}, records = {}, invalid = {}, delivered = {}, lost = {lost}, duplicated-in-effect = {twice}",
        recovered_files(&env),
        input.valid + input.invalid,
        input.invalid,
        counts.len()
    );
    assert_eq!(lost, 0);
    assert_eq!(twice, 0);
    assert_eq!(reported(&env, &input), input.invalid);
}

#[test]
fn killtest_http_sink() {
    let mut rng = Rng(0x0dd_ba11);
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(
        &dir.path().join("lib.db"),
        &[
            "--fail-rate",
            "0.2",
            "--drop-rate",
            "0.1",
            "--retry-after",
            "0",
            "--seed",
            "11",
        ],
    );
    let env = Env::http(&lib.base_url, "");
    let mut input = Input::default();
    let kills = run_kills(&env, &mut rng, &mut input, false);
    let d = env.start();
    settle(&env, &input);
    env.wait("every batch delivered", Duration::from_secs(180), || {
        env.batches_in("sealed") + env.batches_in("exported") == 0
    });
    let (st, _) = d.stop();
    assert!(st.success());
    let s = lib.stats();
    let delivered = s["distinct_keys"].as_i64().unwrap();
    let twice = s["records_delivered_more_than_once"].as_i64().unwrap();
    println!(
        "http sink: kills = {kills}, resumed files = {}, records = {}, invalid = {}, delivered = {delivered}, lost = {}, duplicated-in-effect = {twice}",
        recovered_files(&env),
        input.valid + input.invalid,
        input.invalid,
        input.valid as i64 - delivered
    );
    assert_eq!(env.batches_in("parked"), 0);
    assert_eq!(delivered, input.valid as i64);
    assert_eq!(s["records"].as_i64().unwrap(), input.valid as i64);
    assert_eq!(twice, 0);
    assert_eq!(reported(&env, &input), input.invalid);
}
