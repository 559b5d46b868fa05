//! What a test checks about the daemon's state, read the way an operator
//! reads it: `fepd batches list --json`, `fepd audit show --json`, `fepd
//! status --json`. Tests reach into the state database directly
//! ([`Env::sql_count`], `rusqlite`) only for what no command shows, and say
//! why where they do.

use serde_json::Value;

use crate::harness::Env;

impl Env {
    /// Runs `fepd ARGS`, which must succeed; its stdout as JSON lines.
    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        let out = self.fepd(args);
        assert!(
            out.status.success(),
            "fepd {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Every batch (`fepd batches list --json`), oldest first, optionally
    /// only those in `state`; none before the daemon created its state.
    pub fn batches(&self, state: Option<&str>) -> Vec<Value> {
        if !self.db().exists() {
            return Vec::new();
        }
        let mut args = vec!["batches", "list", "--json", "--limit", "1000000"];
        if let Some(s) = state {
            args.extend(["--state", s]);
        }
        self.json_lines(&args)
    }

    /// Count of batches in `state`.
    pub fn batches_in(&self, state: &str) -> i64 {
        self.batches(Some(state)).len() as i64
    }

    /// Exchange-log entries (`fepd audit show --json`), oldest first,
    /// optionally only those of `event`; none before the daemon created
    /// its state.
    pub fn log_entries(&self, event: Option<&str>) -> Vec<Value> {
        if !self.db().exists() {
            return Vec::new();
        }
        let mut args = vec!["audit", "show", "--json"];
        if let Some(e) = event {
            args.extend(["--event", e]);
        }
        self.json_lines(&args)
    }

    /// How many exchange-log entries record `event`.
    pub fn events(&self, event: &str) -> i64 {
        self.log_entries(Some(event)).len() as i64
    }

    /// `fepd status --json`.
    pub fn status(&self) -> Value {
        self.json_value(&["status", "--json"])
    }

    /// Runs `fepd ARGS`, which must succeed; its stdout as one JSON value.
    fn json_value(&self, args: &[&str]) -> Value {
        let out = self.fepd(args);
        assert!(
            out.status.success(),
            "fepd {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The status entry of `dataset`.
    pub fn dataset_status(&self, dataset: &str) -> Value {
        let st = self.status();
        st["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["dataset"] == dataset)
            .unwrap_or_else(|| panic!("no dataset {dataset} in {st}"))
            .clone()
    }
}
