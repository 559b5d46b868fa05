//! The drain at the end of a service loop (ARCHITECTURE.md, "SIGTERM
//! never loses or doubles work"): intake stops, every file commits its
//! current chunk and every in-flight request is answered, within the
//! grace period.

use std::time::Duration;

use super::health::Health;
use super::intake_loop::Workers;
use super::run::{Running, Stop};
use crate::config::Config;
use crate::state::StoreError;
use crate::state::log::{self, LogEntry};

/// Drain: stop intake, let every file commit its current chunk and every
/// in-flight request be answered, within the grace period.
pub(super) async fn drain(
    cfg: &Config,
    tz: chrono::FixedOffset,
    health: &Health,
    stop: &Stop,
    workers: Workers,
    mut scheduler: Option<tokio_cron_scheduler::JobScheduler>,
    running: Running,
) -> Result<(), StoreError> {
    let grace = Duration::from_secs(cfg.shutdown.grace_secs);
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "draining: committing current chunks, waiting for in-flight requests"
    );
    let _ = sd_notify::notify(&[match stop {
        Stop::Terminate => sd_notify::NotifyState::Stopping,
        Stop::Reload(_) => sd_notify::NotifyState::Reloading,
    }]);
    health.set_stopping();
    running.cancel.cancel();
    if let Some(s) = scheduler.as_mut() {
        let _ = s.shutdown().await;
    }
    drop(workers);
    if let Some(t) = running.admin_task {
        let _ = t.await;
    }
    if let Some(t) = running.console_task {
        let _ = t.await;
    }
    if let Some(mut t) = running.push_task {
        let ended = match tokio::time::timeout_at(deadline, &mut t).await {
            Ok(r) => Some(r),
            Err(_) => {
                running.abandon.cancel();
                // Abandoning only records the attempt: a moment suffices.
                tokio::time::timeout(Duration::from_secs(5), t).await.ok()
            }
        };
        match ended {
            Some(Ok(Err(e))) => {
                tracing::error!(error = %format!("{e:#}"), "push forwarder stopped with an error")
            }
            Some(Err(e)) => tracing::error!(error = %e, "push forwarder panicked"),
            Some(Ok(Ok(()))) => {}
            None => tracing::warn!("push forwarder did not stop; exiting without it"),
        }
    }
    let (threads, outbox) = (running.threads, running.outbox);
    let joined = tokio::task::spawn_blocking(move || {
        for h in threads {
            let _ = h.join();
        }
        if let Some(h) = outbox {
            let _ = h.join();
        }
    });
    if tokio::time::timeout_at(deadline, joined).await.is_err() {
        // A chunk still in progress is rolled back by the exit; its file
        // stays in work/ and resumes from its last checkpoint.
        tracing::warn!(
            "shutdown grace period over with a chunk still in progress; it is redone from the last checkpoint at the next start"
        );
    }
    if matches!(stop, Stop::Terminate) {
        let mut conn = crate::state::open(&cfg.state_db())?;
        log::append_alone(&mut conn, tz, LogEntry::DaemonStopped)?;
        tracing::info!("fepd stopped");
    } else {
        tracing::info!("drained; starting again with the new config");
    }
    Ok(())
}
