//! `fepd status`: what an operator checks first. Reads the state database
//! read-only, so it works while the daemon runs.

use serde::Serialize;

use crate::cli::Exit;
use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct DatasetStatus {
    dataset: String,
    inbox_files: usize,
    work_files: usize,
    backlog_batches: i64,
    backlog_records: i64,
    parked: i64,
    last_delivery: Option<String>,
    last_error: Option<String>,
    /// Files being read: records done, rate, estimated time left.
    work_progress: Vec<crate::daemon::progress::WorkFile>,
}

pub fn run(cfg: &Config, a: &Args) -> anyhow::Result<Exit> {
    let db = cfg.state_db();
    let conn = if db.exists() {
        Some(crate::state::open_read_only(&db)?)
    } else {
        None
    };
    let mut out = Vec::new();
    for d in &cfg.datasets {
        let count = |sub: &str| {
            std::fs::read_dir(cfg.spool_dir.join(&d.name).join(sub))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                        .count()
                })
                .unwrap_or(0)
        };
        let mut s = DatasetStatus {
            dataset: d.name.clone(),
            inbox_files: count("inbox"),
            work_files: count("work"),
            backlog_batches: 0,
            backlog_records: 0,
            parked: 0,
            last_delivery: None,
            last_error: None,
            work_progress: Vec::new(),
        };
        if let Some(conn) = &conn {
            (s.backlog_batches, s.backlog_records) = crate::state::batches::backlog(conn, &d.name)?;
            s.parked = conn.query_row(
                "SELECT COUNT(*) FROM batch WHERE dataset = ?1 AND state = 'parked'",
                [&d.name],
                |r| r.get(0),
            )?;
            s.last_delivery = conn.query_row(
                "SELECT MAX(delivered_at) FROM batch WHERE dataset = ?1",
                [&d.name],
                |r| r.get(0),
            )?;
            s.last_error = conn
                .query_row(
                    "SELECT last_error FROM batch WHERE dataset = ?1 AND last_error IS NOT NULL
                     ORDER BY seq DESC LIMIT 1",
                    [&d.name],
                    |r| r.get(0),
                )
                .ok();
            s.work_progress = crate::daemon::progress::work_files(conn, &cfg.spool_dir, &d.name)?;
        }
        out.push(s);
    }
    // Intake pauses at the high-water mark (the daemon keeps it paused
    // until the backlog falls below the low-water mark).
    let (backlog_records, backlog_bytes) = match &conn {
        Some(c) => {
            let (_, r, b) = crate::state::batches::total_backlog(c)?;
            (r as u64, b as u64)
        }
        None => (0, 0),
    };
    let backlog_paused = crate::daemon::backpressure::Gate::decide(
        &cfg.backpressure,
        false,
        backlog_records,
        backlog_bytes,
    );
    // Free space where fepd writes; below min_free_bytes the daemon holds
    // intake back (it also does after any write that failed for lack of
    // space, which only its /status can tell).
    let folders = cfg.write_dirs();
    let disk_free = folders
        .iter()
        .filter_map(|f| crate::daemon::backpressure::free_bytes(f))
        .min();
    let disk_low =
        crate::daemon::backpressure::Gate::low_space(cfg.backpressure.min_free_bytes, &folders);
    let paused = backlog_paused || disk_low.is_some();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "intake_paused": paused,
                "backlog_records": backlog_records,
                "backlog_bytes": backlog_bytes,
                "disk_free_bytes": disk_free,
                "disk_low": disk_low.is_some(),
                "datasets": out,
            }))?
        );
    } else {
        if let Some((folder, free)) = &disk_low {
            println!(
                "intake: PAUSED — only {free} bytes free on the filesystem of {} (min_free_bytes = {})",
                folder.display(),
                cfg.backpressure.min_free_bytes
            );
        } else if paused {
            println!(
                "intake: PAUSED — outbox backlog {backlog_records} records / {backlog_bytes} bytes is at its high-water mark"
            );
        } else {
            println!(
                "intake: running — outbox backlog {backlog_records} records / {backlog_bytes} bytes"
            );
        }
        println!(
            "{:<14} {:>6} {:>5} {:>8} {:>9} {:>6}  {:<25}  last error",
            "dataset", "inbox", "work", "backlog", "records", "parked", "last delivery"
        );
        for s in &out {
            println!(
                "{:<14} {:>6} {:>5} {:>8} {:>9} {:>6}  {:<25}  {}",
                s.dataset,
                s.inbox_files,
                s.work_files,
                s.backlog_batches,
                s.backlog_records,
                s.parked,
                s.last_delivery.as_deref().unwrap_or("-"),
                s.last_error.as_deref().unwrap_or("-")
            );
            for w in &s.work_progress {
                let left = match (w.estimated_records, w.eta_secs) {
                    (Some(n), Some(eta)) => format!("，约共 {n} 条，预计还需 {eta} 秒"),
                    _ => String::new(),
                };
                println!(
                    "  正在处理 {}：已完成 {} 条，{} 条/秒{left}",
                    w.file, w.records_done, w.records_per_sec
                );
            }
        }
    }
    Ok(Exit::Ok)
}
