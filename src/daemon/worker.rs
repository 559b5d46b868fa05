//! A dataset's worker thread: runs each claimed file through the job, in
//! claim order, retrying a file from its last checkpoint after a state or
//! disk failure until the cause goes away.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use super::backpressure::DISK_RETRY;
use super::job::{self, DatasetCtx, Deferred, Outcome};

/// The state database for a thread of the daemon, retried every second
/// until it opens or the daemon stops (`None`): a thread that gave up
/// here would stop its dataset's or the forwarder's work for good while
/// the daemon looks alive.
pub(super) fn open_state(
    db: &std::path::Path,
    who: &str,
    stopping: &dyn Fn() -> bool,
) -> Option<rusqlite::Connection> {
    let mut failures = 0u32;
    loop {
        match crate::state::open(db) {
            Ok(c) => {
                if failures > 0 {
                    tracing::info!(part = who, "state database open after all");
                }
                return Some(c);
            }
            Err(e) => {
                if failures == 0 {
                    tracing::error!(part = who, error = %e, "cannot open the state database; retrying every second");
                }
                failures += 1;
            }
        }
        for _ in 0..5 {
            if stopping() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

pub fn worker(
    db: PathBuf,
    ctx: DatasetCtx,
    rx: std_mpsc::Receiver<String>,
    mut deferred: Deferred,
) {
    let Some(mut conn) = open_state(&db, &format!("worker-{}", ctx.dataset.name), &*ctx.stopping)
    else {
        return;
    };
    let who = format!("worker-{}", ctx.dataset.name);
    if let Err(e) = crate::state::set_cache_mib(&conn, ctx.cache_mib) {
        tracing::warn!(part = %who, error = %e, "state.cache_mib not applied; the default cache stays");
    }
    // Once intake has been idle a second: the keys sealed since the last
    // merge go into record_state (`state::recent`), off the sealing path.
    let idle = |conn: &mut rusqlite::Connection| match crate::state::recent::tail_waiting(conn) {
        Ok(false) => {}
        Ok(true) => {
            if let Err(e) = crate::state::recent::merge(conn) {
                tracing::warn!(part = %who, error = %e, "merging the sealed keys into record_state failed; tried again when next idle");
            } else {
                ctx.keys.lock().unwrap_or_else(|p| p.into_inner()).release();
            }
        }
        Err(e) => {
            tracing::warn!(part = %who, error = %e, "cannot read the merge mark of the sealed keys")
        }
    };
    'files: while let Some(work_name) = deferred.next(&rx, &mut || idle(&mut conn)) {
        if (ctx.stopping)() {
            break;
        }
        tracing::debug!(dataset = %ctx.dataset.name, file = %work_name, "processing claimed file");
        let mut failures = 0u32;
        loop {
            // A bug triggered by one file must not take the dataset's
            // worker down with it (bad input never takes the daemon down): the file stays
            // in work/ and the worker goes on with the next one.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job::process(&mut conn, &ctx, &work_name)
            }));
            // An attempt that returned without a verdict did not die: the
            // breaker must not count it (a panic, though, counts).
            if matches!(
                result,
                Ok(Ok(Outcome::Interrupted | Outcome::Unreadable(_)) | Err(_))
            ) {
                job::end_attempt(&conn, &ctx.dataset.name, &work_name);
            }
            let result = match result {
                Ok(r) => r,
                Err(p) => {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(dataset = %ctx.dataset.name, file = %work_name, panic = %msg, "internal error while processing file; left in work/");
                    continue 'files;
                }
            };
            match result {
                Ok(Outcome::Interrupted) => break 'files,
                Ok(Outcome::Unreadable(e)) => {
                    tracing::error!(dataset = %ctx.dataset.name, file = %work_name, error = %e, "claimed file unreadable; left in work/ for the next start");
                }
                Ok(_) => ctx.gate.disk_ok(&who),
                Err(e) => {
                    // A state or disk failure (a full disk, say): the
                    // chunk in progress was rolled back and the checkpoint
                    // is intact, so the file is simply tried again later,
                    // from that checkpoint, until the cause goes away.
                    let wait = if e.is_disk_full() {
                        // Intake pauses; this file is retried often so
                        // that work resumes soon after space returns.
                        ctx.gate.disk_failed(
                            &who,
                            &format_args!("file {}: {e}", crate::spool::original_name(&work_name)),
                        );
                        tracing::debug!(dataset = %ctx.dataset.name, file = %work_name, error = %e, "still no space; retrying from the last checkpoint");
                        DISK_RETRY
                    } else {
                        failures += 1;
                        let wait = Duration::from_secs(1u64 << failures.min(6));
                        tracing::error!(dataset = %ctx.dataset.name, file = %work_name, error = %e, retry_in_secs = wait.as_secs(), "file processing failed; retrying from its last checkpoint");
                        wait
                    };
                    let until = std::time::Instant::now() + wait;
                    while std::time::Instant::now() < until {
                        if (ctx.stopping)() {
                            break 'files;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    continue;
                }
            }
            break;
        }
    }
}
