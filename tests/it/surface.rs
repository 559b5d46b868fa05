//! What a test checks about the daemon's state, read the way an operator
//! reads it: `fepd batches list --json`, `fepd audit show --json`, `fepd
//! status --json`. Tests reach into the state database directly
//! ([`Env::sql_count`], `rusqlite`) only for what no command shows, and say
//! why where they do.

use serde_json::Value;

use crate::harness::Env;

impl Env {
    /// Runs `fepd ARGS`, which must succeed, for its stdout; `None` while
    /// the daemon is still creating its state (the database file is
    /// there, its tables not yet).
    fn stdout_of(&self, args: &[&str]) -> Option<Vec<u8>> {
        let out = self.fepd(args);
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && err.contains("no such table") {
            return None;
        }
        assert!(
            out.status.success(),
            "fepd {args:?}: {:?}\n{err}",
            out.status
        );
        Some(out.stdout)
    }

    /// [`Env::stdout_of`] as JSON lines.
    pub fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        let out = self.stdout_of(args).unwrap_or_default();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Every batch (`fepd batches list --json`), oldest first, optionally
    /// only those in `state`; none before the daemon created its state
    /// (the command would create it).
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

    /// The batch `id` as `fepd batches list --json` shows it.
    pub fn batch(&self, id: &str) -> Value {
        self.batches(None)
            .into_iter()
            .find(|b| b["batch_id"] == id)
            .unwrap_or_else(|| panic!("no batch {id}"))
    }

    /// Whether the state still holds the wire body of batch `id`
    /// (`fepd batches show ID --body`; retention deletes bodies).
    pub fn has_body(&self, id: &str) -> bool {
        let out = self.fepd(&["batches", "show", id, "--body"]);
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => true,
            Some(1) if err.contains("its body was deleted by retention") => false,
            _ => panic!("fepd batches show {id} --body: {:?}\n{err}", out.status),
        }
    }

    /// Exchange-log entries (`fepd audit show --json FILTER…`, e.g.
    /// `["--event", "batch_sealed"]`), oldest first; none before the
    /// daemon created its state.
    pub fn log_entries(&self, filter: &[&str]) -> Vec<Value> {
        if !self.db().exists() {
            return Vec::new();
        }
        let mut args = vec!["audit", "show", "--json"];
        args.extend(filter);
        self.json_lines(&args)
    }

    /// How many exchange-log entries record `event`.
    pub fn events(&self, event: &str) -> i64 {
        self.log_entries(&["--event", event]).len() as i64
    }

    /// How many batches were sealed from the file dropped as `file`: its
    /// `batch_sealed` entries, which name the file by its `fileId` (given
    /// with the name by the file's own entries).
    pub fn batches_of(&self, file: &str) -> i64 {
        let ids: Vec<Value> = self
            .log_entries(&["--file", file])
            .into_iter()
            .filter_map(|e| e["details"].get("fileId").cloned())
            .collect();
        assert!(!ids.is_empty(), "no exchange-log entry names {file}");
        self.log_entries(&["--event", "batch_sealed"])
            .iter()
            .filter(|e| ids.contains(&e["details"]["fileId"]))
            .count() as i64
    }

    /// The most records committed so far of any file being read (`fepd
    /// status --json`, `work_files`); 0 when none is in `work/`.
    pub fn records_committed(&self) -> i64 {
        let Some(out) = self.stdout_of(&["status", "--json"]) else {
            return 0;
        };
        let status: Value = serde_json::from_slice(&out).unwrap();
        status["work_files"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|fs| fs.as_array().unwrap())
            .map(|f| f["records_done"].as_i64().unwrap())
            .max()
            .unwrap_or(0)
    }

    /// `fepd status --json`.
    pub fn status(&self) -> Value {
        let out = self.stdout_of(&["status", "--json"]);
        serde_json::from_slice(&out.expect("the state database has no tables yet")).unwrap()
    }
}
