//! The config's sections (`[intake]`, `[sink]`, `[sink.http]`, `[batch]`,
//! `[backpressure]`, `[shutdown]`, `[log]`, `[admin]`, `[validate]`) and
//! their defaults. What a value must satisfy beyond its type is checked in
//! `problems`.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::{Checked, Delimiter, EncodingLabel};
use crate::validate::Severity;

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
    pub default_encoding: Option<Checked<EncodingLabel>>,
    /// CSV delimiter, one ASCII character.
    pub csv_delimiter: Checked<Delimiter>,
    /// Input records per SQLite transaction: a chunk ends at the first
    /// batch boundary past this many records, or at this many since the
    /// last batch when few of them are sealed (e.g. a re-sent file of
    /// unchanged records).
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
            csv_delimiter: Checked::default(),
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
    /// Batches of one route in flight at once (docs/protocol.md §4 rule 3:
    /// order is kept per record key; batches with disjoint keys may be in
    /// flight together). `1` sends strictly in seal order. A dataset may
    /// lower or raise it for its route (`[[dataset]] inflight`).
    #[serde(default = "defaults::inflight")]
    pub inflight: usize,
    /// Extra CA certificate (PEM) for a library behind a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// First wait after the library refuses fepd's credentials (401 on the
    /// token endpoint, a lock-out); it doubles per refusal up to 30 times
    /// this, so the lock-out threshold is never reached.
    #[serde(default = "defaults::credential_backoff_secs")]
    pub credential_backoff_secs: u64,
    /// When the library credentials stop being valid (a date, or an RFC
    /// 3339 time with offset): alerts warn `[alerts] credential_warn_days`
    /// before, `fepd check-config` warns too and reports a past date.
    #[serde(default)]
    pub credential_expires: Option<Checked<super::Expiry>>,
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

/// The state database's tuning (`[state]`, README.md "Benchmarks"): the
/// page cache of each connection that seals records — a dataset's worker
/// or SQL source — in MiB. Each new record key is a random-order insert
/// into the per-key table; once that table outgrows the cache (a year of
/// history: millions of keys), each insert reads pages from disk again.
/// The other connections keep 2 MiB each (`state::OTHER_CACHE_MIB`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateTuning {
    pub cache_mib: u32,
}

impl Default for StateTuning {
    fn default() -> Self {
        StateTuning {
            cache_mib: crate::state::DEFAULT_CACHE_MIB,
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

/// `[console]`: the web console (README "Web console"). Off unless
/// `listen` is set; loopback unless TLS is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Console {
    /// Address of the console (`127.0.0.1:8732`); none = off.
    pub listen: Option<std::net::SocketAddr>,
    /// PEM certificate chain and private key: the console is served over
    /// HTTPS when both are set, and must be to listen beyond loopback.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// A session unused for this long ends (30 minutes).
    pub idle_timeout_secs: u64,
    /// A session ends this long after its login, used or not (8 hours).
    pub absolute_timeout_secs: u64,
    /// Failed logins in a row that lock an account…
    pub lockout_failures: u32,
    /// …for this long.
    pub lockout_secs: u64,
    /// The largest file the upload page takes.
    pub max_upload_bytes: u64,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            idle_timeout_secs: 1800,
            absolute_timeout_secs: 8 * 3600,
            lockout_failures: 5,
            lockout_secs: 900,
            max_upload_bytes: 20 << 20,
        }
    }
}

impl Console {
    /// Whether the console is served over HTTPS.
    pub fn tls(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((
            self.tls_cert_file.as_deref()?,
            self.tls_key_file.as_deref()?,
        ))
    }
}

pub(super) mod defaults {
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
    pub fn inflight() -> usize {
        4
    }
    pub fn credential_backoff_secs() -> u64 {
        60
    }
}
