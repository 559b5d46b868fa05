//! `[[dataset]]`: one dataset's spool folder, schema, route and the
//! per-dataset settings that override `[intake]`; `[dataset.sql]`, a
//! 前置库 table or query the dataset is also collected from
//! (docs/sql-sources.md).

use serde::Deserialize;

use super::values::{Checked, EncodingLabel, Schedule};
use super::{Ready, SendWindow};

/// One dataset: its spool folder, schema and route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// = spool folder name = `schemas/<name>.schema.json`.
    pub name: String,
    /// Route: docs/protocol.md `{category}/{resource}`.
    pub category: String,
    pub resource: String,
    /// Overrides `[intake] ready` for this dataset.
    #[serde(default)]
    pub ready: Option<Ready>,
    /// Overrides `[intake] default_encoding` for this dataset.
    #[serde(default)]
    pub default_encoding: Option<Checked<EncodingLabel>>,
    /// When the inbox is collected by a rescan: cron with seconds
    /// (`sec min hour day month weekday`) in `timezone`. Replaces the
    /// periodic `rescan_secs` rescan for this dataset; files the watcher
    /// saw complete are still taken at once.
    #[serde(default)]
    pub schedule: Option<Checked<Schedule>>,
    /// Push mode: the times of day (`"22:00-06:00"`, in `timezone`) when
    /// this dataset's batches may be sent; they wait in the outbox outside.
    #[serde(default)]
    pub send_window: Option<SendWindow>,
    /// Push mode: batches of this dataset's route in flight at once,
    /// instead of `[sink.http] inflight` (`1`: strict seal order).
    #[serde(default)]
    pub inflight: Option<usize>,
    /// `"reversed"`: this source rates `satisfaction` on the reversed
    /// GB/T 39046 A.8 scale (1 = 非常满意); values are converted to the
    /// standard scale before validation (docs/datasets.md). Never guessed.
    #[serde(default)]
    pub satisfaction_scale: Scale,
    /// CSV line / XLSX sheet row (1-based) of the header, for files with a
    /// title row above it; default: the first non-empty row.
    #[serde(default)]
    pub header_row: Option<u32>,
    /// XLSX: the sheet holding the data, by name or 1-based position;
    /// default: the first sheet.
    #[serde(default)]
    pub sheet: Option<crate::parse::SheetRef>,
    /// Extra column titles (title → field name), for templates that use
    /// other titles than the schema's.
    #[serde(default)]
    pub aliases: std::collections::BTreeMap<String, String>,
    /// `[dataset.sql]`: poll a 前置库 table or query (beside the spool
    /// folder), on `schedule` or every `poll_secs`.
    #[serde(default)]
    pub sql: Option<SqlSource>,
    /// A SQL source without `schedule` is polled this often (default 60 s).
    #[serde(default)]
    pub poll_secs: Option<u64>,
}

/// The database engine of a SQL source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlEngine {
    /// A SQLite file, opened read-only; `url` is its path.
    Sqlite,
    /// PostgreSQL, and Kingbase in its PostgreSQL mode.
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
}

impl SqlEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            SqlEngine::Sqlite => "sqlite",
            SqlEngine::Postgres => "postgres",
            SqlEngine::Mysql => "mysql",
        }
    }
}

/// `[dataset.sql]`: where a dataset's rows are read from, and how the
/// watermark moves (docs/sql-sources.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSource {
    pub engine: SqlEngine,
    /// `postgres://user@host:port/db`, `mysql://…`, or (sqlite) a path.
    pub url: String,
    /// The password, from a secret file (`config::secret`'s rule) …
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// … or from an environment variable.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The table read (`table` or `query`, exactly one).
    #[serde(default)]
    pub table: Option<String>,
    /// A query read as if it were a table.
    #[serde(default)]
    pub query: Option<String>,
    /// Rows per page (one page is read, checked and sealed at a time).
    #[serde(default = "default_page_rows")]
    pub page_rows: u64,
    /// Rows whose `cd_time` is later than the source's `now()` minus this
    /// are left for a later poll.
    #[serde(default = "default_lag_secs")]
    pub lag_secs: u64,
    /// Each poll reads again this far behind the watermark, for rows
    /// committed late with an older `cd_time`.
    #[serde(default = "default_reread_secs")]
    pub reread_secs: u64,
    /// Mark mode: a status column; rows where it is NULL or 0 are taken,
    /// and set to 1 once their sealing transaction commits.
    #[serde(default)]
    pub mark_column: Option<String>,
    /// Source column → dataset field, where the names differ.
    #[serde(default)]
    pub columns: std::collections::BTreeMap<String, String>,
}

fn default_page_rows() -> u64 {
    5000
}

fn default_lag_secs() -> u64 {
    60
}

fn default_reread_secs() -> u64 {
    600
}

impl SqlSource {
    /// The source column that holds dataset field `field`.
    pub fn column_of<'a>(&'a self, field: &'a str) -> &'a str {
        self.columns
            .iter()
            .find_map(|(col, f)| (f == field).then_some(col.as_str()))
            .unwrap_or(field)
    }

    /// Every problem of this section, one line each (`dataset D: …`
    /// is added by the caller).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match (&self.table, &self.query) {
            (Some(_), Some(_)) | (None, None) => {
                out.push("sql: give exactly one of table or query".to_string())
            }
            (Some(t), None) if t.trim().is_empty() => {
                out.push("sql.table: must not be empty".to_string())
            }
            _ => {}
        }
        if self.page_rows == 0 {
            out.push("sql.page_rows: must be ≥ 1".to_string());
        }
        if self.url.trim().is_empty() {
            out.push("sql.url: must not be empty".to_string());
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            out.push("sql: give password_file or password_env, not both".to_string());
        }
        match &self.mark_column {
            Some(m) if m.trim().is_empty() => {
                out.push("sql.mark_column: must not be empty".to_string())
            }
            Some(_) if self.query.is_some() => out.push(
                "sql.mark_column: mark mode sets the mark in a table: give sql.table, not sql.query"
                    .to_string(),
            ),
            _ => {}
        }
        out
    }
}

/// How a source numbers the 1–5 satisfaction scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    #[default]
    Standard,
    Reversed,
}

impl DatasetConfig {
    pub fn route(&self) -> String {
        format!("{}/{}", self.category, self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::SqlSource;

    fn source(extra: &str) -> SqlSource {
        toml::from_str(&format!(
            "engine = \"postgres\"\nurl = \"postgres://fepd@127.0.0.1/qzk\"\n{extra}"
        ))
        .unwrap()
    }

    /// Mark mode sets the mark in a table: with a query it is refused.
    #[test]
    fn mark_mode_needs_a_table() {
        let ok = source("table = \"up_pro_accept\"\nmark_column = \"fep_status\"");
        assert!(ok.problems().is_empty(), "{:?}", ok.problems());
        let query = source("query = \"SELECT * FROM up_pro_accept\"\nmark_column = \"fep_status\"");
        assert_eq!(
            query.problems(),
            ["sql.mark_column: mark mode sets the mark in a table: give sql.table, not sql.query"]
        );
        let empty = source("table = \"up_pro_accept\"\nmark_column = \" \"");
        assert_eq!(empty.problems(), ["sql.mark_column: must not be empty"]);
    }
}
