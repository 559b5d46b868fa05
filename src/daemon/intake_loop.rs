//! The intake loop the service serves from: watcher wake-ups, periodic
//! rescans and scheduled collections claim files and hand them to their
//! dataset's worker, while the back-pressure gate is open; the heartbeat
//! and the systemd watchdog are kept on the same tick.

use std::collections::HashMap;
use std::future::Future;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::admin::Admin;
use super::backpressure::Gate;
use super::error::DaemonError;
use super::health::Health;
use super::lock::{HEARTBEAT_EVERY, InstanceLock};
use super::run::Stop;
use crate::config::Config;
use crate::intake::{Scanner, Wake};

/// Claimed files go to their dataset's worker by work name.
/// Each dataset's worker and, in cluster mode, the files this node holds
/// (their claim leases are renewed by `cluster::lease`).
pub(super) struct Workers {
    senders: HashMap<String, std_mpsc::Sender<String>>,
    held: Option<crate::cluster::lease::Held>,
}

impl Workers {
    /// In cluster mode (`cluster`), with the files this node holds.
    pub(super) fn new(cluster: Option<&crate::config::Cluster>) -> Workers {
        let ttl = |c: &crate::config::Cluster| Duration::from_secs(c.lease_secs.max(3));
        Workers {
            senders: HashMap::new(),
            held: cluster.map(|c| crate::cluster::lease::Held::new(ttl(c))),
        }
    }

    pub(super) fn insert(&mut self, dataset: String, tx: std_mpsc::Sender<String>) {
        self.senders.insert(dataset, tx);
    }

    /// The files this node holds (cluster mode only), for the workers.
    pub(super) fn held(&self) -> Option<crate::cluster::lease::Held> {
        self.held.clone()
    }

    /// What the cluster's lease task needs (cluster mode only): the
    /// files this node holds and the workers' channels, for take-overs.
    pub(super) fn shared(
        &self,
    ) -> Option<(
        crate::cluster::lease::Held,
        HashMap<String, std_mpsc::Sender<String>>,
    )> {
        Some((self.held.clone()?, self.senders.clone()))
    }

    /// Hands a claimed file to its dataset's worker (held first).
    fn send(&self, dataset: &str, work_name: String) {
        if let Some(h) = &self.held {
            h.hold(dataset, &work_name);
        }
        if let Some(w) = self.senders.get(dataset) {
            let _ = w.send(work_name);
        }
    }
}

/// What the loop works with.
pub(super) struct Intake<'a> {
    pub scanner: Scanner,
    pub wake_rx: mpsc::Receiver<Wake>,
    /// The loop's own read connection, for the back-pressure gate.
    pub gate_conn: rusqlite::Connection,
    pub gate: &'a Gate,
    pub health: &'a Health,
    pub admin: &'a Admin,
    pub instance: &'a InstanceLock,
    pub rescan: Duration,
}

/// Runs the intake loop until `shutdown` completes; returns why.
pub(super) async fn serve(
    mut i: Intake<'_>,
    workers: &Workers,
    shutdown: impl Future<Output = Stop>,
) -> Stop {
    let watchdog = watchdog_interval();
    let mut last_beat: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    let stop;
    let mut last_full = tokio::time::Instant::now() - i.rescan;
    let mut was_paused = false;
    loop {
        let now = tokio::time::Instant::now();
        let paused = i.gate.check(&i.gate_conn);
        i.health.intake_tick();
        if last_beat.is_none_or(|t| t.elapsed() >= HEARTBEAT_EVERY) {
            last_beat = Some(tokio::time::Instant::now());
            if let Err(e) = i.instance.beat(&i.admin.beat()) {
                tracing::warn!(error = %e, "cannot write the heartbeat file");
            }
        }

        if paused {
            // Claim nothing while the outbox is over its high-water mark;
            // files wait in the inbox.
        } else if was_paused || now.duration_since(last_full) >= i.rescan || i.scanner.has_pending()
        {
            if now.duration_since(last_full) >= i.rescan {
                last_full = now;
            }
            dispatch(&mut i.scanner, workers);
        }
        was_paused = paused;
        let tick = if paused {
            Duration::from_millis(500)
        } else if i.scanner.has_pending() {
            i.scanner.retry_in()
        } else {
            i.rescan
                .saturating_sub(now.elapsed())
                .min(watchdog)
                .min(HEARTBEAT_EVERY)
        };
        tokio::select! {
            s = &mut shutdown => {
                stop = s;
                break;
            }
            w = i.wake_rx.recv() => {
                // Take every queued wake-up, then scan once.
                let mut next = w;
                while let Some(w) = next {
                    match w {
                        Wake::Complete(p) => i.scanner.mark_complete(p),
                        Wake::Closed(p) => i.scanner.mark_closed(p),
                        Wake::Collect(ds) => {
                            tracing::debug!(dataset = %ds, "scheduled collection");
                            i.scanner.collect(&ds);
                        }
                        Wake::Changed | Wake::Overflow => {}
                    }
                    next = i.wake_rx.try_recv().ok();
                }
                if !i.gate.check(&i.gate_conn) {
                    dispatch(&mut i.scanner, workers);
                }
            }
            _ = tokio::time::sleep(tick) => {}
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    }
    stop
}

/// Starts the cron jobs of the datasets with a `schedule`: each firing
/// asks the intake loop to collect that dataset's inbox.
pub(super) async fn schedule_collections(
    cfg: &Config,
    tz: chrono::FixedOffset,
    scanner: &mut Scanner,
    tx: mpsc::Sender<Wake>,
) -> Result<Option<tokio_cron_scheduler::JobScheduler>, DaemonError> {
    let scheduled: Vec<_> = cfg
        .datasets
        .iter()
        .filter_map(|d| {
            let s = d.schedule.as_ref()?.ok()?;
            Some((d.name.clone(), s.clone()))
        })
        .collect();
    if scheduled.is_empty() {
        return Ok(None);
    }
    let sched = tokio_cron_scheduler::JobScheduler::new()
        .await
        .map_err(DaemonError::schedule("starting the collection scheduler"))?;
    for (dataset, expr) in scheduled {
        scanner.set_scheduled(&dataset);
        let tx = tx.clone();
        let ds = dataset.clone();
        let job = tokio_cron_scheduler::Job::new_async_tz(expr.as_str(), tz, move |_, _| {
            let tx = tx.clone();
            let ds = ds.clone();
            Box::pin(async move {
                let _ = tx.send(Wake::Collect(ds)).await;
            })
        })
        .map_err(DaemonError::schedule(format!(
            "dataset {dataset}: schedule {expr:?}"
        )))?;
        sched
            .add(job)
            .await
            .map_err(DaemonError::schedule("adding a collection job"))?;
        tracing::info!(dataset = %dataset, schedule = %expr.as_str(), "inbox collected on a schedule");
    }
    sched
        .start()
        .await
        .map_err(DaemonError::schedule("starting the collection scheduler"))?;
    Ok(Some(sched))
}

fn dispatch(scanner: &mut Scanner, workers: &Workers) {
    for c in scanner.scan() {
        tracing::debug!(dataset = %c.dataset, file = %c.work_name, "claimed");
        workers.send(&c.dataset, c.work_name);
    }
}

fn watchdog_interval() -> Duration {
    match sd_notify::watchdog_enabled() {
        Some(d) if !d.is_zero() => d / 2,
        _ => Duration::from_secs(10),
    }
}
