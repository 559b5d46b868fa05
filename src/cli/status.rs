//! `fepd status`: what an operator checks first — whether a daemon holds
//! the state and is healthy, then per dataset backlog and deliveries. Reads
//! the state database read-only and the daemon's lock and heartbeat, so it
//! works beside the running daemon; `--json` prints exactly what `/status`
//! answers (both come from `daemon::status::report`).

use crate::cli::Exit;
use crate::config::Config;
use crate::daemon::lock;
use crate::daemon::status::{Report, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The whole cluster (docs/cluster.md "Fleet view"): every node's
    /// last status from the JetStream servers of `[cluster] nats`.
    #[arg(long)]
    cluster: bool,
}

pub fn run(cfg: &Config, a: &Args) -> anyhow::Result<Exit> {
    if a.cluster {
        return super::cluster::status(cfg, a.json);
    }
    let presence = lock::presence(&cfg.state_dir);
    let r = report(cfg, &presence, None)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_text(cfg, &r);
    }
    Ok(Exit::Ok)
}

fn print_text(cfg: &Config, r: &Report) {
    let d = &r.daemon;
    if d.running {
        println!(
            "daemon: running — pid {}, fepd {}, up {}, last heartbeat {}",
            d.pid.unwrap_or_default(),
            d.version,
            duration(d.uptime_secs.unwrap_or(0)),
            d.last_heartbeat.as_deref().unwrap_or("none yet")
        );
        if r.healthy {
            println!("health: ok");
        } else {
            println!("health: UNHEALTHY — {}", r.problems.join("; "));
        }
    } else {
        println!(
            "daemon: NOT RUNNING — no fepd holds {}{}",
            cfg.state_dir.display(),
            d.last_heartbeat
                .as_deref()
                .map(|t| format!(" (last heartbeat {t})"))
                .unwrap_or_default()
        );
    }
    let backlog = format!(
        "outbox backlog {} records / {} bytes",
        r.backlog_records, r.backlog_bytes
    );
    if !d.running {
        println!("intake: stopped (no daemon) — {backlog}");
    } else if r.disk_low || r.disk_full {
        println!(
            "intake: PAUSED — disk full or free space below min_free_bytes ({}; {} bytes free)",
            cfg.backpressure.min_free_bytes,
            r.disk_free_bytes.unwrap_or(0)
        );
    } else if r.intake_paused {
        println!("intake: PAUSED — {backlog} is at its high-water mark");
    } else {
        println!("intake: running — {backlog}");
    }
    println!(
        "{:<14} {:>6} {:>5} {:>8} {:>9} {:>6}  {:<25}  last error",
        "dataset", "inbox", "work", "backlog", "records", "parked", "last delivery"
    );
    for s in &r.datasets {
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
    if let Some(d) = r.credential_days_left {
        println!("credentials: expire in {d} day(s) (sink.http.credential_expires)");
    }
    for q in &r.sql_sources {
        let wm = q
            .watermark
            .as_ref()
            .map(|w| format!("{} / {}", w.cd_time, w.row_guid))
            .unwrap_or_else(|| "-".into());
        let poll = q.last_poll.as_ref();
        println!(
            "{}: SQL source ({}) watermark {wm}, lag {}, last poll {} (read {}, taken {}){}",
            q.dataset,
            q.engine,
            q.lag_secs.map_or("-".into(), |s| format!("{s} s")),
            poll.map_or("-", |p| p.polled_at.as_str()),
            poll.map_or(0, |p| p.rows_read),
            poll.map_or(0, |p| p.rows_taken),
            poll.and_then(|p| p.error.as_deref())
                .map(|e| format!(" — ERROR: {e}"))
                .unwrap_or_default()
        );
    }
    for c in &r.credentials_refused {
        println!(
            "credentials: REFUSED on route {} since {} ({}); next token request at {}",
            c.route,
            c.since,
            c.reason,
            c.next_attempt.as_deref().unwrap_or("-")
        );
    }
    for s in r.datasets.iter().filter(|s| s.ack_discrepancies > 0) {
        println!(
            "{}: {} delivered batch(es) whose acknowledgement does not account for every record (`fepd audit show --event ack_discrepancy`)",
            s.dataset, s.ack_discrepancies
        );
    }
    for s in r.datasets.iter().filter(|s| !s.not_taken.is_empty()) {
        println!("{}: files not taken (未接收的文件):", s.dataset);
        for f in &s.not_taken {
            println!("  {}  — {}", f.name, f.reason);
        }
    }
}

/// `3d04h`, `2h05m`, `4m10s`.
pub(super) fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{s:02}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(super::duration(250), "4m10s");
        assert_eq!(super::duration(7500), "2h05m");
        assert_eq!(super::duration(3 * 86400 + 4 * 3600), "3d04h");
    }
}
