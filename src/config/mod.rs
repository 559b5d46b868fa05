//! Config: the one TOML file an operator edits (`config/fepd.toml`).
//!
//! Every key is documented in `config/fepd.example.toml`; unknown keys are
//! rejected (`deny_unknown_fields`) so a typo never silently falls back to a
//! default. Relative paths are resolved against the config file's folder.
//! [`Config::problems`] lists every problem at once, for `fepd check-config`.

use std::path::{Path, PathBuf};

use chrono::FixedOffset;
use serde::Deserialize;

use crate::validate::Severity;

mod lookup;
mod retention;
pub mod secret;
mod spool;
mod window;
pub use lookup::{ConfigSource, LOCAL_CONFIG, SYSTEM_CONFIG, locate};
pub use retention::{Keep, Retention, parse_keep};
pub use spool::SpoolAccess;
pub use window::SendWindow;

/// The whole config file, with paths already resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "defaults::spool_dir")]
    pub spool_dir: PathBuf,
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "defaults::schemas_dir")]
    pub schemas_dir: PathBuf,
    /// GB/T 2260 code table; default `<schemas_dir>/gb2260.csv`.
    #[serde(default)]
    pub area_codes_file: Option<PathBuf>,
    /// `senderCode` on every batch.
    pub sender: String,
    /// Offset for input times without one, e.g. `+08:00`.
    #[serde(default = "defaults::timezone")]
    pub timezone: String,
    #[serde(default)]
    pub intake: Intake,
    #[serde(default)]
    pub validate: Validate,
    #[serde(default)]
    pub sink: Sink,
    #[serde(default)]
    pub batch: BatchLimits,
    #[serde(default)]
    pub backpressure: Backpressure,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub shutdown: Shutdown,
    #[serde(default)]
    pub retention: Retention,
    /// Data staff's access to the spool (`[spool] group`).
    #[serde(default)]
    pub spool: SpoolAccess,
    #[serde(default, rename = "dataset")]
    pub datasets: Vec<DatasetConfig>,
    /// Folder of the config file; relative paths were resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// When a dropped file counts as complete (README.md, "How data flows": the drop contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    #[default]
    Settle,
    Marker,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Intake {
    /// Full rescan of every inbox, whatever the watcher says.
    pub rescan_secs: u64,
    /// For files found only by a rescan: size and mtime unchanged this long.
    pub settle_secs: u64,
    /// For files the watcher saw closed after writing: no new close this
    /// long (an appending writer closes and reopens) before they are taken.
    pub quiet_ms: u64,
    pub ready: Ready,
    pub max_file_bytes: u64,
    pub max_record_bytes: usize,
    pub max_xlsx_unpacked_bytes: u64,
    /// Encoding assumed before detection (`UTF-8`, `GB18030`, `GBK`…).
    pub default_encoding: Option<String>,
    /// CSV delimiter, one ASCII character.
    pub csv_delimiter: String,
    /// Input records per SQLite transaction when few of them are sealed
    /// (e.g. a re-sent file of unchanged records).
    pub chunk_records: u64,
    /// Deepest XML element / JSON array-or-object nesting (parse::Limits).
    pub max_nesting_depth: usize,
    /// Most fields in one record or header (parse::Limits).
    pub max_columns: usize,
    /// Most shared strings in an XLSX workbook (parse::Limits).
    pub max_xlsx_shared_strings: u64,
}

impl Default for Intake {
    fn default() -> Self {
        Intake {
            rescan_secs: 30,
            settle_secs: 5,
            quiet_ms: 200,
            ready: Ready::Settle,
            max_file_bytes: 4 << 30,
            max_record_bytes: 1 << 20,
            max_xlsx_unpacked_bytes: 256 << 20,
            default_encoding: None,
            csv_delimiter: ",".into(),
            chunk_records: 5000,
            max_nesting_depth: crate::parse::DEFAULT_MAX_NESTING_DEPTH,
            max_columns: crate::parse::DEFAULT_MAX_COLUMNS,
            max_xlsx_shared_strings: crate::parse::DEFAULT_MAX_XLSX_SHARED_STRINGS,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    /// `error` (default) or `warn`: what a GB 32100 check-digit failure is.
    #[serde(default)]
    pub uscc_check: Severity,
    /// 统一社会信用代码 accepted whatever their check digit.
    #[serde(default)]
    pub uscc_allow: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkMode {
    #[default]
    Outbox,
    Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sink {
    pub mode: SinkMode,
    pub outbox_dir: PathBuf,
    pub http: Option<HttpSink>,
}

impl Default for Sink {
    fn default() -> Self {
        Sink {
            mode: SinkMode::Outbox,
            outbox_dir: "spool/outbox".into(),
            http: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    #[default]
    ClientCredentials,
    AppKeyHmac,
}

/// Push mode (docs/protocol.md §2–§4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSink {
    pub base_url: String,
    #[serde(default)]
    pub auth: AuthMode,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Name of a systemd credential (`LoadCredential=NAME` in the unit):
    /// the secret is read from `$CREDENTIALS_DIRECTORY/NAME`.
    #[serde(default)]
    pub client_secret_credential: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub app_key_file: Option<PathBuf>,
    #[serde(default)]
    pub app_key_env: Option<String>,
    /// As `client_secret_credential`, for `auth = "app_key_hmac"`.
    #[serde(default)]
    pub app_key_credential: Option<String>,
    #[serde(default)]
    pub sys_code: Option<String>,
    #[serde(default = "defaults::token_path")]
    pub token_path: String,
    #[serde(default = "defaults::app_token_path")]
    pub app_token_path: String,
    /// `{category}` and `{resource}` are replaced from the dataset's route.
    #[serde(default = "defaults::push_path")]
    pub push_path: String,
    #[serde(default)]
    pub gzip: bool,
    #[serde(default = "defaults::request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Routes sending at once (each route still sends in order).
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Extra CA certificate (PEM) for a library behind a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// First wait after the library refuses fepd's credentials (401 on the
    /// token endpoint, a lock-out); it doubles per refusal up to 30 times
    /// this, so the lock-out threshold is never reached.
    #[serde(default = "defaults::credential_backoff_secs")]
    pub credential_backoff_secs: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchLimits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_age_ms: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_records: 1000,
            max_bytes: 4_000_000,
            max_age_ms: 1000,
        }
    }
}

/// When intake pauses because the outbox is full (README.md, "Watching it run": back-pressure):
/// at `high_water_*` of undelivered backlog, until it falls below
/// `low_water_percent` of that. Zero disables a limit.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backpressure {
    pub high_water_records: u64,
    pub high_water_bytes: u64,
    pub low_water_percent: u8,
    /// Intake also pauses while the filesystem of the spool, the outbox or
    /// the state DB has less free space than this (0 = only when a write
    /// actually fails for lack of space).
    pub min_free_bytes: u64,
}

impl Default for Backpressure {
    fn default() -> Self {
        Backpressure {
            high_water_records: 1_000_000,
            high_water_bytes: 2 << 30,
            low_water_percent: 80,
            min_free_bytes: 64 << 20,
        }
    }
}

/// How `SIGTERM` drains (README.md, "Watching it run": finish the current chunk and the
/// in-flight request, checkpoint, exit 0).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Shutdown {
    /// Longest wait for in-flight requests and chunks after `SIGTERM`;
    /// a request still unanswered then is abandoned (its batch stays
    /// pending and is resent at the next start; the library de-duplicates
    /// by batch id). Keep it below systemd's `TimeoutStopSec`.
    pub grace_secs: u64,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { grace_secs: 30 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default)]
    pub format: LogFormat,
    /// Folder for daily-rotated log files; none = stderr only.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Daily files kept (0 = keep all).
    #[serde(default)]
    pub retention_days: usize,
    /// `tracing` filter, e.g. `info` or `fepd=debug`.
    #[serde(default)]
    pub level: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// Address for `/healthz`, `/metrics`, `/status` (`127.0.0.1:8731`);
    /// none = off. Loopback unless `allow_remote`.
    pub listen: Option<std::net::SocketAddr>,
    /// Allows a non-loopback `listen`; then `token_file` is required.
    pub allow_remote: bool,
    /// File holding the bearer token every admin request must carry
    /// (`Authorization: Bearer …`); owner-readable only.
    pub token_file: Option<PathBuf>,
    /// A route with backlog and no delivery for this long makes `/healthz`
    /// answer 503 (0 = never).
    pub stall_secs: u64,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: None,
            allow_remote: false,
            token_file: None,
            stall_secs: 1800,
        }
    }
}

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
    pub default_encoding: Option<String>,
    /// When the inbox is collected by a rescan: cron with seconds
    /// (`sec min hour day month weekday`) in `timezone`. Replaces the
    /// periodic `rescan_secs` rescan for this dataset; files the watcher
    /// saw complete are still taken at once.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Push mode: the times of day (`"22:00-06:00"`, in `timezone`) when
    /// this dataset's batches may be sent; they wait in the outbox outside.
    #[serde(default)]
    pub send_window: Option<SendWindow>,
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

/// Whether `expr` is a cron expression with seconds, as the scheduler
/// reads it.
pub fn cron_problem(expr: &str) -> Result<(), String> {
    if expr.split_whitespace().count() < 6 {
        return Err(
            "needs six fields: sec min hour day month weekday (e.g. \"0 */5 * * * *\")".into(),
        );
    }
    tokio_cron_scheduler::Job::new_async_tz(expr, chrono::Utc, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| format!("not a cron expression: {e}"))
}

mod defaults {
    use std::path::PathBuf;
    pub fn spool_dir() -> PathBuf {
        "spool".into()
    }
    pub fn state_dir() -> PathBuf {
        "state".into()
    }
    pub fn schemas_dir() -> PathBuf {
        "schemas".into()
    }
    pub fn timezone() -> String {
        "+08:00".into()
    }
    pub fn token_path() -> String {
        "/api/v1/token".into()
    }
    pub fn app_token_path() -> String {
        "/apigateway/getAccessToken".into()
    }
    pub fn push_path() -> String {
        "/api/v1/resources/{category}/{resource}/batches".into()
    }
    pub fn request_timeout_secs() -> u64 {
        30
    }
    pub fn concurrency() -> usize {
        4
    }
    pub fn credential_backoff_secs() -> u64 {
        60
    }
}

/// Why a config could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The OS error is part of the message and deliberately not a
    // `source`: printed as a chain it would appear twice.
    #[error("cannot read config {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "no config file: --config not given, FEPD_CONFIG not set, and neither {} nor {} exists",
        LOCAL_CONFIG,
        SYSTEM_CONFIG
    )]
    NotFound,
    #[error("config {path}: {message}")]
    Syntax { path: PathBuf, message: String },
}

impl Config {
    /// Reads and parses `path`, resolving relative paths against its folder.
    /// Semantic problems are not checked here; see [`Config::problems`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|message| ConfigError::Syntax {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses config text; `base` is the folder relative paths start from.
    pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut cfg.spool_dir);
        resolve(&mut cfg.state_dir);
        resolve(&mut cfg.schemas_dir);
        resolve(&mut cfg.sink.outbox_dir);
        if let Some(p) = cfg.area_codes_file.as_mut() {
            resolve(p);
        }
        if let Some(p) = cfg.log.dir.as_mut() {
            resolve(p);
        }
        if let Some(p) = cfg.admin.token_file.as_mut() {
            resolve(p);
        }
        if let Some(http) = cfg.sink.http.as_mut() {
            for p in [
                http.client_secret_file.as_mut(),
                http.app_key_file.as_mut(),
                http.ca_file.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                resolve(p);
            }
        }
        cfg.base_dir = base;
        Ok(cfg)
    }

    pub fn area_codes_path(&self) -> PathBuf {
        self.area_codes_file
            .clone()
            .unwrap_or_else(|| self.schemas_dir.join("gb2260.csv"))
    }

    pub fn tz(&self) -> Option<FixedOffset> {
        parse_offset(&self.timezone)
    }

    pub fn dataset(&self, name: &str) -> Option<&DatasetConfig> {
        self.datasets.iter().find(|d| d.name == name)
    }

    pub fn state_db(&self) -> PathBuf {
        self.state_dir.join("fepd.db")
    }

    /// The folders fepd writes in (spool, outbox, state DB), whose
    /// filesystems must keep `min_free_bytes` free.
    pub fn write_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.spool_dir.clone(),
            self.sink.outbox_dir.clone(),
            self.state_dir.clone(),
        ]
    }

    pub fn parse_limits(&self) -> crate::parse::Limits {
        crate::parse::Limits {
            max_record_bytes: self.intake.max_record_bytes,
            max_xlsx_unpacked_bytes: self.intake.max_xlsx_unpacked_bytes,
            csv_delimiter: self.intake.csv_delimiter.bytes().next().unwrap_or(b','),
            max_nesting_depth: self.intake.max_nesting_depth,
            max_columns: self.intake.max_columns,
            max_xlsx_shared_strings: self.intake.max_xlsx_shared_strings,
            ..Default::default()
        }
    }

    pub fn validate_options(&self) -> crate::validate::ValidateOptions {
        crate::validate::ValidateOptions {
            timezone: self.tz().unwrap_or_else(|| {
                FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
            }),
            uscc_check: self.validate.uscc_check,
            uscc_allow: self.validate.uscc_allow.iter().cloned().collect(),
        }
    }

    /// Every problem that does not need the file system, one line each.
    /// `fepd check-config` adds the ones that do (schemas, spool, secrets).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.sender.trim().is_empty() {
            out.push("sender: must not be empty".to_string());
        }
        if self.tz().is_none() {
            out.push(format!(
                "timezone: {:?} is not an offset like +08:00",
                self.timezone
            ));
        }
        if self.intake.csv_delimiter.len() != 1 {
            out.push("intake.csv_delimiter: must be one ASCII character".to_string());
        }
        if let Some(enc) = &self.intake.default_encoding
            && crate::decode::encoding_for_label(enc).is_none()
        {
            out.push(format!("intake.default_encoding: unknown encoding {enc:?}"));
        }
        if self.batch.max_records == 0 || self.batch.max_bytes < 1024 {
            out.push("batch: max_records must be ≥ 1 and max_bytes ≥ 1024".to_string());
        }
        if self.backpressure.low_water_percent == 0 || self.backpressure.low_water_percent > 100 {
            out.push("backpressure.low_water_percent: must be 1..=100".to_string());
        }
        // serde_json refuses nesting deeper than 128 on its own; the
        // configured limit must bite first, with its own message.
        if !(3..=100).contains(&self.intake.max_nesting_depth) {
            out.push("intake.max_nesting_depth: must be 3..=100".to_string());
        }
        if self.intake.max_columns == 0 || self.intake.max_xlsx_shared_strings == 0 {
            out.push("intake.max_columns and max_xlsx_shared_strings: must be ≥ 1".to_string());
        }
        if self.intake.rescan_secs == 0 {
            out.push("intake.rescan_secs: must be ≥ 1".to_string());
        }
        if self.datasets.is_empty() {
            out.push("no [[dataset]] configured".to_string());
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.datasets {
            if !seen.insert(d.name.as_str()) {
                out.push(format!("dataset {}: configured twice", d.name));
            }
            let ok_name = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if !ok_name(&d.name) || d.name == "outbox" {
                out.push(format!(
                    "dataset {:?}: name must be letters, digits, _ or - (and not \"outbox\")",
                    d.name
                ));
            }
            if !ok_name(&d.category) || !ok_name(&d.resource) {
                out.push(format!(
                    "dataset {}: category and resource must be letters, digits, _ or -",
                    d.name
                ));
            }
            if d.header_row == Some(0) {
                out.push(format!(
                    "dataset {}: header_row counts from 1 (the first line or sheet row)",
                    d.name
                ));
            }
            if d.sheet == Some(crate::parse::SheetRef::Index(0)) {
                out.push(format!(
                    "dataset {}: sheet counts from 1 (the first sheet), or give its name",
                    d.name
                ));
            }
            if d.send_window.is_some() && self.sink.mode != SinkMode::Http {
                out.push(format!(
                    "dataset {}: send_window applies to push mode (sink.mode = \"http\"); in outbox mode the library's collector decides when it collects",
                    d.name
                ));
            }
            if let Some(expr) = &d.schedule
                && let Err(e) = cron_problem(expr)
            {
                out.push(format!("dataset {}: schedule {expr:?}: {e}", d.name));
            }
            if let Some(enc) = &d.default_encoding
                && crate::decode::encoding_for_label(enc).is_none()
            {
                out.push(format!(
                    "dataset {}: default_encoding: unknown encoding {enc:?}",
                    d.name
                ));
            }
        }
        out.extend(self.admin.problems());
        match (self.sink.mode, &self.sink.http) {
            (SinkMode::Http, None) => {
                out.push("sink.mode = \"http\" needs a [sink.http] section".to_string())
            }
            (SinkMode::Http, Some(h)) => out.extend(h.problems()),
            _ => {}
        }
        out
    }
}

impl Admin {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.listen {
            Some(addr) if !addr.ip().is_loopback() && !self.allow_remote => out.push(format!(
                "admin.listen: {addr} is not a loopback address; to serve /status and /metrics beyond this host set admin.allow_remote = true and admin.token_file"
            )),
            Some(addr) if !addr.ip().is_loopback() && self.token_file.is_none() => out.push(format!(
                "admin.listen: {addr} is not a loopback address; allow_remote needs admin.token_file (a bearer token)"
            )),
            _ => {}
        }
        out
    }
}

impl HttpSink {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            out.push(format!(
                "sink.http.base_url: {:?} must start with http:// or https://",
                self.base_url
            ));
        }
        match self.auth {
            AuthMode::ClientCredentials => {
                if self.client_id.is_none() {
                    out.push(
                        "sink.http.client_id: required for auth = \"client_credentials\"".into(),
                    );
                }
                if self.client_secret_file.is_none()
                    && self.client_secret_env.is_none()
                    && self.client_secret_credential.is_none()
                {
                    out.push(
                        "sink.http: client_secret_credential, client_secret_file or client_secret_env is required".into(),
                    );
                }
            }
            AuthMode::AppKeyHmac => {
                if self.app_id.is_none() || self.sys_code.is_none() {
                    out.push(
                        "sink.http: app_id and sys_code are required for auth = \"app_key_hmac\""
                            .into(),
                    );
                }
                if self.app_key_file.is_none()
                    && self.app_key_env.is_none()
                    && self.app_key_credential.is_none()
                {
                    out.push(
                        "sink.http: app_key_credential, app_key_file or app_key_env is required"
                            .into(),
                    );
                }
            }
        }
        for (key, name) in [
            ("client_secret_credential", &self.client_secret_credential),
            ("app_key_credential", &self.app_key_credential),
        ] {
            if let Some(n) = name
                && !crate::secrets::credential_name_ok(n)
            {
                out.push(format!(
                    "sink.http.{key}: {n:?} is not a credential name (letters, digits, . _ -; no /)"
                ));
            }
        }
        if self.concurrency == 0 || self.request_timeout_secs == 0 {
            out.push("sink.http: concurrency and request_timeout_secs must be ≥ 1".into());
        }
        if self.credential_backoff_secs == 0 {
            out.push("sink.http.credential_backoff_secs: must be ≥ 1".into());
        }
        out
    }
}

/// Parses `+08:00`, `-05:30`, `Z` into an offset.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s == "Z" || s == "+00:00" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
        sender = "230000-zwfw"
        [[dataset]]
        name = "case_accept"
        category = "zwfw"
        resource = "case_accept"
    "#;

    #[test]
    fn minimal_config_gets_defaults_and_resolved_paths() {
        let cfg = Config::parse(MIN, Path::new("/etc/fepd")).unwrap();
        assert_eq!(cfg.spool_dir, Path::new("/etc/fepd/spool"));
        assert_eq!(cfg.sink.mode, SinkMode::Outbox);
        assert_eq!(cfg.batch.max_records, 1000);
        assert_eq!(cfg.intake.rescan_secs, 30);
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::parse(&format!("{MIN}\nspool_dri = \"x\""), Path::new(".")).unwrap_err();
        assert!(err.contains("spool_dri"), "{err}");
    }

    #[test]
    fn every_problem_is_listed() {
        let text = r#"
            sender = ""
            timezone = "CST"
            [sink]
            mode = "http"
            [[dataset]]
            name = "a b"
            category = "zwfw"
            resource = "x"
        "#;
        let p = Config::parse(text, Path::new(".")).unwrap().problems();
        assert_eq!(p.len(), 4, "{p:#?}");
    }

    #[test]
    fn a_remote_admin_address_needs_allow_remote_and_a_token() {
        let with = |admin: &str| {
            Config::parse(&format!("{MIN}\n[admin]\n{admin}"), Path::new("/etc/fepd"))
                .unwrap()
                .problems()
        };
        assert!(with("listen = \"127.0.0.1:8731\"").is_empty());
        assert!(with("listen = \"[::1]:8731\"").is_empty());
        let p = with("listen = \"0.0.0.0:8731\"");
        assert!(p[0].contains("allow_remote"), "{p:?}");
        let p = with("listen = \"10.0.0.5:8731\"\nallow_remote = true");
        assert!(p[0].contains("token_file"), "{p:?}");
        assert!(
            with("listen = \"10.0.0.5:8731\"\nallow_remote = true\ntoken_file = \"t\"").is_empty()
        );
        let err = Config::parse(
            &format!("{MIN}\n[admin]\nlisten = \"nowhere\""),
            Path::new("."),
        )
        .unwrap_err();
        assert!(err.contains("nowhere") || err.contains("listen"), "{err}");
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("+08:00").unwrap().local_minus_utc(), 8 * 3600);
        assert_eq!(
            parse_offset("-05:30").unwrap().local_minus_utc(),
            -(5 * 3600 + 1800)
        );
        assert!(parse_offset("CST").is_none());
    }
}
