//! What every SQL-source engine's tests check the same way
//! (docs/sql-sources.md): rows reach the outbox once each in watermark
//! order, a SIGKILL and a server restart mid-poll lose or repeat nothing,
//! and a wrong password is named in status but never logged. Each engine's
//! file sets up its server and rows and calls these.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::data;
use crate::harness::*;

/// A record's key in an outbox batch.
pub fn key(r: &serde_json::Value) -> String {
    r["key"].as_str().unwrap().to_string()
}

/// The key of `data::case_accept(i)`.
pub fn case_key(i: u64) -> String {
    data::case_accept(i)[0].1.clone()
}

/// The outbox holds exactly `want` (op, case number), in that order, and
/// nothing more a few polls later; the `engine` source is healthy with its
/// watermark at `last_guid`.
pub fn arrived_once_in_order(env: &Env, want: &[(&str, u64)], engine: &str, last_guid: &str) {
    let recs = env.wait_outbox_records("case_accept", want.len());
    let got: Vec<(String, String)> = recs
        .iter()
        .map(|r| (r["op"].as_str().unwrap().to_string(), key(r)))
        .collect();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(op, i)| (op.to_string(), case_key(*i)))
        .collect();
    assert_eq!(got, want);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        env.outbox_records("case_accept").len(),
        want.len(),
        "nothing twice"
    );
    let status = env.status();
    let src = &status["sql_sources"][0];
    assert_eq!(src["engine"], engine);
    assert_eq!(src["watermark"]["row_guid"], last_guid);
    assert!(src["last_poll"]["error"].is_null(), "{src}");
}

/// With `n` rows waiting, the daemon is killed mid-poll and restarted,
/// then the source server is restarted mid-poll (`restart_server`: stop,
/// a pause, start): every row arrives once.
pub fn kill_and_server_restart_lose_or_repeat_nothing(
    env: &Env,
    n: u64,
    restart_server: impl FnOnce(),
) {
    let d = env.start_ready();
    env.wait("a poll under way", Duration::from_secs(30), || {
        env.outbox_records("case_accept").len() >= 100
    });
    d.kill();
    let killed_at = env.outbox_records("case_accept").len();
    assert!((killed_at as u64) < n, "the kill came mid-poll");
    let _d = env.start_ready();
    env.wait("the poll resumed", Duration::from_secs(30), || {
        env.outbox_records("case_accept").len() >= killed_at + 100
    });
    // The server restarts under the poll.
    let stopped_at = env.outbox_records("case_accept").len();
    restart_server();
    assert!((stopped_at as u64) < n, "the restart came mid-poll");
    let recs = env.wait_outbox_records("case_accept", n as usize);
    let keys: BTreeSet<String> = recs.iter().map(key).collect();
    assert_eq!(keys.len() as u64, n, "every row once");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.outbox_records("case_accept").len() as u64, n);
}

/// A source configured with the password `wrong`: the server's refusal
/// (`refusal`, its own words) is in `fepd status`, nothing is read, and
/// the password is in neither the log nor the status.
pub fn wrong_password_is_named_and_never_logged(env: &Env, wrong: &str, refusal: &str) {
    let _d = env.start_ready();
    env.wait("the refusal in status", Duration::from_secs(20), || {
        env.status()["sql_sources"][0]["last_poll"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(refusal))
    });
    assert!(env.status()["sql_sources"][0]["watermark"].is_null());
    assert!(env.outbox_records("case_accept").is_empty());
    assert!(!env.log_has(wrong), "the password is never logged");
    let text = String::from_utf8(env.fepd(&["status"]).stdout).unwrap();
    assert!(text.contains(refusal), "{text}");
    assert!(!text.contains(wrong));
}

/// Mark mode on the `case_accept` source: its table has gained the column
/// `fep_status`, which fepd reads and sets.
pub fn mark_mode(env: &Env) {
    set_source(env, "mark_column", "fep_status");
}

/// Sets `key` of the `case_accept` dataset's `[dataset.sql]`.
pub fn set_source(env: &Env, key: &str, value: &str) {
    env.edit_config(|t| {
        let d = t["dataset"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .filter_map(toml::Value::as_table_mut)
            .find(|d| d.get("name").and_then(toml::Value::as_str) == Some("case_accept"))
            .unwrap();
        d["sql"]
            .as_table_mut()
            .unwrap()
            .insert(key.into(), value.into());
    });
}

/// Mark mode: waits until every row of the source is marked 1 (`marks`
/// reads the `fep_status` column of each).
pub fn all_marked(env: &Env, marks: impl Fn() -> Vec<Option<i64>>) {
    env.wait("every row marked 1", Duration::from_secs(20), || {
        marks().iter().all(|m| *m == Some(1))
    });
}
