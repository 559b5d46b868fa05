//! Retention: the daemon deletes, on a schedule, what it no longer needs —
//! so a 前置机 running for months does not fill its disk.
//!
//! Per kind (`[retention]`): bodies of delivered batches, per-record
//! history rows, `done/` and `rejected/` files, and the outbox's
//! `delivered/` files. Each pass is one `retention_pass` exchange-log entry
//! with its counts, and the database gives the freed pages back to the file
//! system (`incremental_vacuum`). Never deleted: each key's last sealed
//! version (dedupe keeps working), file and batch rows (the daily report,
//! trace), pending and parked batches, and the exchange log (only
//! `fepd audit export --prune` removes entries).

pub mod sweep;

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};

use crate::config::{Config, Keep, Retention};
use crate::state::log::{self, LogEntry, Retained};
use crate::state::retention as db;
use sweep::{Swept, delivered_owner, spool_owner, sweep};

/// Items deleted per transaction: small enough that a worker waiting for
/// the write lock waits milliseconds, not seconds.
const CHUNK: usize = 200;

/// The first pass runs this soon after start (or after `interval`, if
/// shorter), so a daemon restarted often still cleans up.
const FIRST_PASS: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("retention: state database: {0}")]
    State(#[from] rusqlite::Error),
}

/// Where a pass looks, and how long each kind is kept.
#[derive(Debug, Clone)]
pub struct Plan {
    pub keep: Retention,
    pub spool: PathBuf,
    pub outbox: PathBuf,
    pub datasets: Vec<String>,
    pub tz: FixedOffset,
}

impl Plan {
    pub fn of(cfg: &Config, tz: FixedOffset) -> Plan {
        Plan {
            keep: cfg.retention,
            spool: cfg.spool_dir.clone(),
            outbox: cfg.sink.outbox_dir.clone(),
            datasets: cfg.datasets.iter().map(|d| d.name.clone()).collect(),
            tz,
        }
    }
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub batch_bodies: usize,
    pub body_bytes: i64,
    pub record_rows: usize,
    pub done: Swept,
    pub rejected: Swept,
    pub delivered: Swept,
    pub db_pages_freed: i64,
}

/// One pass at `now`: deletes what is older than each kind's keep time,
/// gives the space back and appends the `retention_pass` entry.
pub fn pass(conn: &mut Connection, plan: &Plan, now: SystemTime) -> Result<Pass, RetentionError> {
    let mut p = Pass::default();
    // The sealed keys not yet in record_state go there first: their
    // batch_record rows are what dedupe reads until then, and pruning
    // skips them (`prune_batch_records`).
    crate::state::recent::merge(conn)?;
    let cutoff = |k: Keep| {
        k.0.map(|d| {
            now.checked_sub(d)
                .unwrap_or(UNIX_EPOCH)
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs() as i64
        })
    };
    if let Some(before) = cutoff(plan.keep.batch_bodies) {
        loop {
            let (n, bytes) = chunk(conn, |tx| db::prune_bodies(tx, before, CHUNK))?;
            p.batch_bodies += n;
            p.body_bytes += bytes;
            if n < CHUNK {
                break;
            }
        }
    }
    if let Some(before) = cutoff(plan.keep.record_rows) {
        loop {
            let (n, rows) = chunk(conn, |tx| db::prune_batch_records(tx, before, CHUNK))?;
            p.record_rows += rows;
            if n < CHUNK {
                break;
            }
        }
        loop {
            let (n, rows) = chunk(conn, |tx| db::prune_rejections(tx, before, CHUNK))?;
            p.record_rows += rows;
            if n < CHUNK {
                break;
            }
        }
    }
    for ds in &plan.datasets {
        let spool = crate::spool::Spool::new(&plan.spool, ds);
        if let Keep(Some(k)) = plan.keep.done_files {
            p.done += sweep(&spool.done, k, now, spool_owner);
        }
        if let Keep(Some(k)) = plan.keep.rejected_files {
            p.rejected += sweep(&spool.rejected, k, now, spool_owner);
        }
        if let Keep(Some(k)) = plan.keep.delivered_files {
            p.delivered += sweep(
                &plan.outbox.join(ds).join("delivered"),
                k,
                now,
                delivered_owner,
            );
        }
    }
    let (freed, incremental) = db::give_back_space(conn)?;
    p.db_pages_freed = freed;
    let db_bytes = db::db_bytes(conn)?;
    let k = &plan.keep;
    log::append_alone(
        conn,
        plan.tz,
        LogEntry::RetentionPass(Retained {
            batch_bodies: p.batch_bodies,
            body_bytes: p.body_bytes,
            record_rows: p.record_rows,
            done_files: p.done.files,
            done_bytes: p.done.bytes,
            rejected_files: p.rejected.files,
            rejected_bytes: p.rejected.bytes,
            delivered_files: p.delivered.files,
            delivered_bytes: p.delivered.bytes,
            db_pages_freed: p.db_pages_freed,
            db_bytes,
            keep_batch_bodies: &k.batch_bodies.to_string(),
            keep_record_rows: &k.record_rows.to_string(),
            keep_done_files: &k.done_files.to_string(),
            keep_rejected_files: &k.rejected_files.to_string(),
            keep_delivered_files: &k.delivered_files.to_string(),
            auto_vacuum: if incremental { "incremental" } else { "none" },
        }),
    )?;
    Ok(p)
}

/// Runs `f` in its own write transaction.
fn chunk<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// Starts the retention thread of the daemon: a pass soon after start,
/// then every `interval`, until `stopping` is cancelled (the daemon's one
/// stop token; a thread only asks it). A failed pass (a busy
/// or full disk) is logged and tried again at the next interval.
pub fn start(
    db_path: PathBuf,
    plan: Plan,
    stopping: tokio_util::sync::CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
            let interval = plan.keep.interval.0;
            let mut next = std::time::Instant::now() + interval.min(FIRST_PASS);
            let mut conn: Option<Connection> = None;
            loop {
                while std::time::Instant::now() < next {
                    if stopping.is_cancelled() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200).min(interval));
                }
                next = std::time::Instant::now() + interval;
                if conn.is_none() {
                    match crate::state::open(&db_path) {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            tracing::error!(error = %e, "retention cannot open the state database; trying again at the next interval");
                            continue;
                        }
                    }
                }
                let c = conn.as_mut().expect("opened above");
                match pass(c, &plan, SystemTime::now()) {
                    Ok(p) => tracing::info!(
                        batch_bodies = p.batch_bodies,
                        record_rows = p.record_rows,
                        done_files = p.done.files,
                        rejected_files = p.rejected.files,
                        delivered_files = p.delivered.files,
                        db_pages_freed = p.db_pages_freed,
                        "retention pass"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "retention pass failed; trying again at the next interval")
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::batches::{self, BatchRecord, NewBatch};

    fn tz() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn plan(dir: &std::path::Path, bodies: &str) -> Plan {
        let keep = Retention {
            batch_bodies: crate::config::parse_keep(bodies).unwrap(),
            ..Retention::default()
        };
        Plan {
            keep,
            spool: dir.join("spool"),
            outbox: dir.join("spool/outbox"),
            datasets: vec!["case_accept".into()],
            tz: tz(),
        }
    }

    /// Delivered bodies older than the keep time go, pending ones stay,
    /// the key's dedupe memory stays, and the file shrinks.
    #[test]
    fn a_pass_deletes_old_delivered_bodies_and_gives_the_space_back() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("fepd.db");
        let mut c = crate::state::open(&path).unwrap();
        // Bodies are stored packed (`state::packed`): bytes that do not
        // compress, so each takes its 100,000 bytes in the file.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let body: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for i in 0..50 {
            let id = format!("B{i:02}");
            batches::insert(
                &c,
                &NewBatch {
                    sort_key: None,
                    batch_id: &id,
                    dataset: "case_accept",
                    route: "zwfw/case_accept",
                    file_id: None,
                    parent_id: None,
                    count: 1,
                    digest: "d",
                    body: &body,
                    sealed_at: "2026-01-01T08:00:00+08:00",
                },
                [],
            )
            .unwrap();
            batches::insert_sealed_record(
                &c,
                &id,
                0,
                &BatchRecord {
                    key: &format!("K{i}"),
                    hash: "h",
                    op: "upsert",
                },
                None,
            )
            .unwrap();
            if i < 40 {
                // Delivered two days ago (in another offset: compared as instants).
                let at = (chrono::Utc::now() - chrono::Duration::days(2))
                    .format("%Y-%m-%dT%H:%M:%S+00:00")
                    .to_string();
                assert!(batches::mark_delivered(&c, &id, "R", 1, 0, &at, false).unwrap());
            }
        }
        let before = std::fs::metadata(&path).unwrap().len()
            + std::fs::metadata(d.path().join("fepd.db-wal")).map_or(0, |m| m.len());
        let big = db::db_bytes(&c).unwrap();
        let p = pass(&mut c, &plan(d.path(), "1d"), SystemTime::now()).unwrap();
        assert_eq!(p.batch_bodies, 40);
        assert_eq!(p.body_bytes, 40 * 100_000);
        assert!(p.db_pages_freed > 900, "{p:?}");
        assert!(db::db_bytes(&c).unwrap() < big - 3_900_000);
        let (left, rows) = db::held(&c).unwrap();
        assert_eq!(left, 10, "pending bodies stay");
        assert!(batches::body(&c, "B45").unwrap().is_some());
        assert!(batches::body(&c, "B05").unwrap().is_none());
        assert!(
            crate::state::records::merged(&c, "case_accept", "K5")
                .unwrap()
                .is_some(),
            "the pass merged the sealed keys into record_state first"
        );
        // Record rows are kept a year by default.
        assert_eq!(rows, 50);
        // The file itself shrinks once the WAL is checkpointed.
        db::checkpoint_wal(&c).unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after + 3_900_000 < before, "{before} -> {after}");
        // The pass is logged with its counts.
        let mut passes = Vec::new();
        let only = crate::state::entries::Match {
            event: Some(log::Event::RetentionPass.as_str()),
            ..Default::default()
        };
        crate::state::entries::each_matching(&c, &only, |e| {
            passes.push(e.counts);
            Ok::<_, rusqlite::Error>(std::ops::ControlFlow::Continue(()))
        })
        .unwrap();
        let [Some(v)] = passes.as_slice() else {
            panic!("{passes:?}")
        };
        assert_eq!(v["batchBodies"], 40);
        assert_eq!(crate::state::log::verify(&c).unwrap(), Ok(1));
    }
}
