//! Push with several batches of a route in flight (`[sink.http] inflight`,
//! docs/protocol.md §4 rule 3): order is kept per record key, checked by
//! the simulated library (`keys_out_of_order`), under injected faults.

use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

/// Record `i` of case_accept in version `v` (another `task_version`, so a
/// changed record that is sealed again as an upsert).
fn version(i: u64, v: u64) -> data::Record {
    let mut r = data::case_accept(i);
    for (field, value) in &mut r {
        if *field == "task_version" {
            *value = (v + 1).to_string();
        }
    }
    r
}

/// Files whose keys overlap their neighbours' (each key in two files, two
/// versions), sealed 10 records a batch and pushed with the default
/// `inflight` through 30 % 503s and 10 % dropped answers to a library
/// taking at most 8 records a batch (every first batch is split): every
/// record delivered, none twice in effect, no key out of seal order at the
/// library, and batches with disjoint keys did not wait for each other.
#[test]
fn disjoint_batches_fly_together_and_each_key_keeps_seal_order_under_faults() {
    let n_files = 8u64;
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(
        &dir.path().join("lib.db"),
        &[
            "--fail-rate",
            "0.3",
            "--drop-rate",
            "0.1",
            "--retry-after",
            "0",
            "--seed",
            "13",
            "--max-records",
            "8",
        ],
    );
    let env = Env::http(&lib.base_url, "");
    env.set("batch.max_records", 10);
    let _d = env.start();
    for f in 0..n_files {
        let recs: Vec<data::Record> = (f * 25..f * 25 + 50).map(|i| version(i, f)).collect();
        env.drop_file(
            "case_accept",
            &format!("f{f}.jsonl"),
            &data::jsonl(&recs, Enc::Utf8),
        );
    }
    env.wait(
        "all files finished and all batches delivered",
        Duration::from_secs(120),
        || {
            env.events("file_done") == n_files as i64
                && env
                    .batches(None)
                    .iter()
                    .all(|b| b["state"] == "delivered" || b["state"] == "split")
        },
    );
    let st = lib.stats();
    assert_eq!(st["records"].as_u64(), Some(n_files * 50), "{st}");
    assert_eq!(
        st["distinct_keys"].as_u64(),
        Some(n_files * 25 + 25),
        "{st}"
    );
    assert_eq!(st["records_delivered_more_than_once"], 0, "{st}");
    assert_eq!(st["keys_out_of_order"], 0, "{st}");
    assert!(
        st["faults_injected"].as_u64().unwrap() > 0
            && st["responses_dropped"].as_u64().unwrap() > 0
            && st["too_large"].as_u64().unwrap() > 0,
        "{st}"
    );
    // More than one batch was in flight: some batch reached the library
    // before one sealed earlier (with disjoint keys) that was being retried.
    let arrived: Vec<String> = lib
        .get("/sim/batches")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["batchId"].as_str().unwrap().to_string())
        .collect();
    let mut sealed = arrived.clone();
    sealed.sort();
    assert_ne!(
        arrived, sealed,
        "the batches arrived strictly in seal order"
    );
}
