//! Config: the one TOML file an operator edits (`config/fepd.toml`).
//!
//! Every key is documented in `config/fepd.example.toml`; unknown keys are
//! rejected (`deny_unknown_fields`) so a typo never silently falls back to a
//! default. Relative paths are resolved against the config file's folder.
//! Values with a meaning beyond their string (timezone, delimiter,
//! encodings, cron schedules, send windows, durations) are parsed once here,
//! by serde (`values`, `window`, `retention`); [`Config::problems`]
//! (`problems`) lists every problem at once, for `fepd check-config`.
//!
//! Codemap: `sections` (the `[…]` tables and their defaults), `dataset`
//! (`[[dataset]]`), `cluster` (`[cluster]`), `alerts` (`[alerts]`, `credential_expires`), `values`, `window`, `retention`, `spool`, `lookup`
//! (where the config file is found), `secret` (the one reader of secret
//! files and their rule).

use std::path::{Path, PathBuf};

use chrono::FixedOffset;
use serde::Deserialize;

mod alerts;
mod cluster;
mod dataset;
mod load;
mod lookup;
mod problems;
mod retention;
pub mod secret;
mod sections;
mod spool;
mod values;
mod window;
pub use alerts::{Alerts, Expiry, Period, Smtp, SmtpTls, Syslog, Webhook, WebhookFormat};
pub use cluster::{Cluster, node_name_ok};
pub use dataset::{DatasetConfig, Scale, SqlEngine, SqlSource};
pub use load::{Loaded, Problem, Problems, load};
pub use lookup::{ConfigSource, LOCAL_CONFIG, SYSTEM_CONFIG, locate};
pub use retention::{Keep, Retention, parse_keep};
use sections::defaults;
pub use sections::{
    Admin, AuthMode, Backpressure, BatchLimits, Console, HttpSink, Intake, Log, LogFormat, Ready,
    Shutdown, Sink, SinkMode, StateTuning, Validate,
};
pub use spool::{SpoolAccess, gid_of};
pub use values::{Checked, Delimiter, EncodingLabel, Schedule, Timezone};
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
    #[serde(default)]
    pub timezone: Checked<Timezone>,
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
    pub console: Console,
    #[serde(default)]
    pub shutdown: Shutdown,
    /// Where alerts go and when they fire (`[alerts]`).
    #[serde(default)]
    pub alerts: Alerts,
    #[serde(default)]
    pub retention: Retention,
    /// The state database's tuning (`[state]`).
    #[serde(default)]
    pub state: StateTuning,
    /// Data staff's access to the spool (`[spool] group`).
    #[serde(default)]
    pub spool: SpoolAccess,
    /// Cluster mode (`[cluster]`, docs/cluster.md); `None`: one host.
    #[serde(default)]
    pub cluster: Option<Cluster>,
    #[serde(default, rename = "dataset")]
    pub datasets: Vec<DatasetConfig>,
    /// Folder of the config file; relative paths were resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
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
        for p in [
            cfg.console.tls_cert_file.as_mut(),
            cfg.console.tls_key_file.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
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
        cfg.alerts.resolve(resolve);
        cfg.base_dir = base;
        Ok(cfg)
    }

    pub fn area_codes_path(&self) -> PathBuf {
        self.area_codes_file
            .clone()
            .unwrap_or_else(|| self.schemas_dir.join("gb2260.csv"))
    }

    /// The configured offset (`timezone`; +08:00 while it is a problem,
    /// which keeps the daemon from starting).
    pub fn tz(&self) -> FixedOffset {
        self.timezone.ok().copied().unwrap_or_default().offset()
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
            csv_delimiter: self
                .intake
                .csv_delimiter
                .ok()
                .copied()
                .unwrap_or_default()
                .byte(),
            max_nesting_depth: self.intake.max_nesting_depth,
            max_columns: self.intake.max_columns,
            max_xlsx_shared_strings: self.intake.max_xlsx_shared_strings,
            ..Default::default()
        }
    }

    pub fn validate_options(&self) -> crate::validate::ValidateOptions {
        crate::validate::ValidateOptions {
            timezone: self.tz(),
            uscc_check: self.validate.uscc_check,
            uscc_allow: self.validate.uscc_allow.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests;
