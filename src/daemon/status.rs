//! The status report: one function builds what `fepd status --json` prints
//! and what `/status` answers, so the two can never disagree. The command
//! learns about the daemon from its lock and heartbeat; the daemon itself
//! passes what it knows first-hand.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

use super::lock::{Beat, Presence};
use crate::config::Config;
use crate::state::StoreError;

/// A heartbeat older than this says the daemon holds the lock but its
/// intake loop does not go round.
const BEAT_STALE: Duration = Duration::from_secs(30);

/// `daemon` in the report (issue "run it for months", Interfaces).
#[derive(Debug, Clone, Serialize)]
pub struct DaemonInfo {
    pub running: bool,
    pub pid: Option<u32>,
    pub version: String,
    pub uptime_secs: Option<u64>,
    pub last_heartbeat: Option<String>,
}

/// Per dataset.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetStatus {
    pub dataset: String,
    pub inbox_files: usize,
    pub work_files: usize,
    pub backlog_batches: i64,
    pub backlog_records: i64,
    pub parked: i64,
    pub last_delivery: Option<String>,
    pub last_error: Option<String>,
    pub received: i64,
    pub rejected: i64,
    pub sealed: i64,
    pub skipped: i64,
    pub delivered: i64,
    pub retries: i64,
    /// Inbox files intake will not take, and why (the daemon logs each
    /// once; this lists them for as long as they stay).
    pub not_taken: Vec<crate::intake::refusal::NotTakenFile>,
    /// Delivered batches whose acknowledgement did not account for every
    /// record (accepted + refused ≠ records).
    pub ack_discrepancies: i64,
    /// Files being read: records done, rate, estimated time left.
    pub work_progress: Vec<super::progress::WorkFile>,
}

/// Per route with pending batches.
#[derive(Debug, Clone, Serialize)]
pub struct RouteStatus {
    pub route: String,
    pub pending_batches: i64,
    /// Age of the oldest pending batch.
    pub oldest_pending_secs: i64,
    /// When the route last delivered (its last batch in seal order).
    pub last_delivery: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub daemon: DaemonInfo,
    /// Whether `/healthz` answers 200; `problems` says why not.
    pub healthy: bool,
    pub problems: Vec<String>,
    pub intake_paused: bool,
    pub disk_full: bool,
    pub backlog_records: u64,
    pub backlog_bytes: u64,
    pub disk_free_bytes: Option<u64>,
    pub disk_low: bool,
    pub routes: Vec<RouteStatus>,
    /// Routes whose credentials the library refuses (push mode).
    pub credentials_refused: Vec<crate::state::auth::Refusal>,
    /// Days until `[sink.http] credential_expires` (negative once past).
    pub credential_days_left: Option<i64>,
    pub datasets: Vec<DatasetStatus>,
    /// Files being read, per dataset with any (the same entries as each
    /// dataset's `work_progress`, for datasets no longer configured too).
    pub work_files: std::collections::BTreeMap<String, Vec<super::progress::WorkFile>>,
    /// SQL sources (前置库), by dataset: watermark, last poll, lag, error.
    pub sql_sources: Vec<SqlSourceStatus>,
}

/// A SQL source's state (docs/sql-sources.md).
#[derive(Debug, Clone, Serialize)]
pub struct SqlSourceStatus {
    pub dataset: String,
    pub engine: &'static str,
    /// Where the source was read up to, `None` before the first row.
    pub watermark: Option<crate::state::watermark::Mark>,
    /// `None` before the first poll.
    pub last_poll: Option<crate::state::watermark::Poll>,
    /// The source's clock at the last poll less the watermark's `cd_time`.
    pub lag_secs: Option<i64>,
}

/// Each configured SQL source's state, from the state database.
fn sql_sources(cfg: &Config, conn: Option<&Connection>) -> Vec<SqlSourceStatus> {
    // A database from before schema v4 has no SQL source tables yet.
    let known = conn
        .and_then(|c| crate::state::watermark::sources(c).ok())
        .unwrap_or_default();
    cfg.datasets
        .iter()
        .filter_map(|d| Some((d, d.sql.as_ref()?)))
        .map(|(d, sql)| {
            let found = known.iter().find(|s| s.dataset == d.name);
            let watermark = found.and_then(|s| s.watermark.clone());
            let last_poll = found.map(|s| s.last_poll.clone());
            let parse = |t: &str| {
                chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S%.f")
                    .or_else(|_| {
                        chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                    })
                    .ok()
            };
            let lag_secs = match (
                &watermark,
                last_poll.as_ref().and_then(|p| p.source_now.as_deref()),
            ) {
                (Some(w), Some(now)) => parse(now)
                    .zip(parse(&w.cd_time))
                    .map(|(n, w)| (n - w).num_seconds()),
                _ => None,
            };
            SqlSourceStatus {
                dataset: d.name.clone(),
                engine: sql.engine.as_str(),
                watermark,
                last_poll,
                lag_secs,
            }
        })
        .collect()
}

/// What only the running daemon knows; from its heartbeat for the command.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub intake_paused: bool,
    pub disk_full: bool,
    pub problems: Vec<String>,
}

/// Builds the report from the state database (read-only), the spool and
/// what is known of the daemon.
pub fn report(cfg: &Config, presence: &Presence, live: Option<Live>) -> Result<Report, StoreError> {
    let db = cfg.state_db();
    // A database the daemon has only just created has no tables yet.
    let conn = match db.exists() {
        true => Some(crate::state::open_read_only(&db)?)
            .filter(|c| crate::state::figures::schema_version(c).unwrap_or(0) > 0),
        false => None,
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let version = env!("CARGO_PKG_VERSION").to_string();
    let (daemon, live) = match presence {
        Presence::Running { holder, beat } => {
            let info = DaemonInfo {
                running: true,
                pid: Some(holder.pid),
                version: holder.version.clone(),
                uptime_secs: Some(((now_ms - holder.started_ms).max(0) / 1000) as u64),
                last_heartbeat: beat.as_ref().map(|b| b.time.clone()),
            };
            let live = live.unwrap_or_else(|| from_beat(beat.as_ref(), now_ms));
            (info, live)
        }
        Presence::Stopped { last_beat } => (
            DaemonInfo {
                running: false,
                pid: None,
                version,
                uptime_secs: None,
                last_heartbeat: last_beat.as_ref().map(|b| b.time.clone()),
            },
            Live {
                problems: vec!["no fepd daemon runs on this state directory".into()],
                ..Default::default()
            },
        ),
    };
    let mut datasets = Vec::new();
    for d in &cfg.datasets {
        let spool = crate::spool::Spool::new(&cfg.spool_dir, &d.name);
        let mut s = DatasetStatus {
            dataset: d.name.clone(),
            inbox_files: count_files(&spool.inbox),
            work_files: count_files(&spool.work),
            backlog_batches: 0,
            backlog_records: 0,
            parked: 0,
            last_delivery: None,
            last_error: None,
            received: 0,
            rejected: 0,
            sealed: 0,
            skipped: 0,
            delivered: 0,
            retries: 0,
            not_taken: crate::intake::refusal::not_taken(
                &spool.inbox,
                d.ready.unwrap_or(cfg.intake.ready),
                cfg.intake.max_file_bytes,
            ),
            ack_discrepancies: 0,
            work_progress: Vec::new(),
        };
        if let Some(conn) = &conn {
            dataset_figures(conn, &mut s)?;
            s.ack_discrepancies = crate::state::batches::ack_discrepancies(conn, &d.name)?;
            s.work_progress = super::progress::work_files(conn, &cfg.spool_dir, &d.name)?;
        }
        datasets.push(s);
    }
    let mut work_files = std::collections::BTreeMap::new();
    if let Some(conn) = &conn {
        for d in crate::state::files::datasets_in_progress(conn)? {
            let files = super::progress::work_files(conn, &cfg.spool_dir, &d)?;
            work_files.insert(d, files);
        }
    }
    let (backlog_records, backlog_bytes) = match &conn {
        Some(c) => {
            let (_, r, b) = crate::state::batches::total_backlog(c)?;
            (r as u64, b as u64)
        }
        None => (0, 0),
    };
    let routes = match &conn {
        Some(c) => routes(c, now_ms)?,
        None => Vec::new(),
    };
    // Intake pauses at the high-water mark (the daemon keeps it paused
    // until the backlog falls below the low-water mark) and while free
    // space is below min_free_bytes.
    let backlog_paused =
        super::backpressure::Gate::decide(&cfg.backpressure, false, backlog_records, backlog_bytes);
    let folders = cfg.write_dirs();
    let disk_free_bytes = folders
        .iter()
        .filter_map(|f| super::backpressure::free_bytes(f))
        .min();
    let disk_low =
        super::backpressure::Gate::low_space(cfg.backpressure.min_free_bytes, &folders).is_some();
    let intake_paused = live.intake_paused || (daemon.running && (backlog_paused || disk_low));
    let credential_days_left =
        crate::alerts::credential_days_left(cfg, chrono::Utc::now().with_timezone(&cfg.tz()));
    Ok(Report {
        credential_days_left,
        healthy: daemon.running && live.problems.is_empty(),
        problems: live.problems,
        daemon,
        intake_paused,
        disk_full: live.disk_full,
        backlog_records,
        backlog_bytes,
        disk_free_bytes,
        disk_low,
        routes,
        credentials_refused: conn
            .as_ref()
            .and_then(|c| crate::state::auth::refusals(c).ok())
            .unwrap_or_default(),
        datasets,
        work_files,
        sql_sources: sql_sources(cfg, conn.as_ref()),
    })
}

/// The running daemon's own flags as its last heartbeat recorded them.
fn from_beat(beat: Option<&Beat>, now_ms: i64) -> Live {
    match beat {
        None => Live {
            problems: vec!["the daemon has not written a heartbeat yet".into()],
            ..Default::default()
        },
        Some(b) => {
            let mut problems = b.problems.clone();
            let age = Duration::from_millis((now_ms - b.time_ms).max(0) as u64);
            if age > BEAT_STALE {
                problems.push(format!("last heartbeat {} s ago", age.as_secs()));
            }
            Live {
                intake_paused: b.intake_paused,
                disk_full: b.disk_full,
                problems,
            }
        }
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

fn dataset_figures(conn: &Connection, s: &mut DatasetStatus) -> rusqlite::Result<()> {
    let ds = s.dataset.as_str();
    (s.backlog_batches, s.backlog_records) = crate::state::batches::backlog(conn, ds)?;
    let f = crate::state::figures::dataset(conn, ds)?;
    (s.received, s.rejected, s.sealed, s.skipped) = (f.received, f.rejected, f.sealed, f.skipped);
    (s.delivered, s.parked, s.retries) = (f.delivered, f.parked, f.retries);
    (s.last_delivery, s.last_error) = (f.last_delivery, f.last_error);
    Ok(())
}

/// Routes with pending batches: how many, how old the oldest, and the
/// last delivery.
pub fn routes(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<RouteStatus>> {
    Ok(crate::state::figures::pending_routes(conn)?
        .into_iter()
        .map(|p| RouteStatus {
            oldest_pending_secs: chrono::DateTime::parse_from_rfc3339(&p.oldest_sealed_at)
                .map(|t| ((now_ms - t.timestamp_millis()).max(0)) / 1000)
                .unwrap_or(0),
            route: p.route,
            pending_batches: p.pending_batches,
            last_delivery: p.last_delivery,
        })
        .collect())
}
