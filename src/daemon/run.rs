//! The service loop: recovery, intake, workers, forwarder, drain.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::sync::mpsc;

use super::backpressure::{DISK_RETRY, Gate, is_disk_full};
use super::job::{self, DatasetCtx, Outcome, SpoolPaths};
use super::read::ReadOptions;
use crate::config::{Config, SinkMode};
use crate::forward::outbox::Outbox;
use crate::intake::{self, Inbox, Scanner, Wake};
use crate::state::log::{self, Entry, Event};
use crate::validate::{Catalog, CodeTable, DatasetSchema};

/// Config with its schemas loaded: everything `run` and `validate` need.
pub struct Loaded {
    pub cfg: Config,
    pub catalog: Catalog,
}

impl Loaded {
    pub fn schema(&self, dataset: &str) -> Option<Arc<DatasetSchema>> {
        self.catalog.get(dataset)
    }

    pub fn read_options(&self, dataset: Option<&str>) -> ReadOptions {
        let label = dataset
            .and_then(|d| self.cfg.dataset(d))
            .and_then(|d| d.default_encoding.clone())
            .or_else(|| self.cfg.intake.default_encoding.clone());
        let ds = dataset.and_then(|d| self.cfg.dataset(d));
        let mut limits = self.cfg.parse_limits();
        limits.header_row = ds.and_then(|d| d.header_row).unwrap_or(0);
        ReadOptions {
            sheet: ds.and_then(|d| d.sheet.clone()),
            limits,
            max_file_bytes: self.cfg.intake.max_file_bytes,
            default_encoding: label.and_then(|l| crate::decode::encoding_for_label(&l)),
        }
    }
}

/// Loads config problems, the code table and the schemas; every problem is
/// listed in the error.
pub fn load(cfg: Config) -> anyhow::Result<Loaded> {
    let mut problems = cfg.problems();
    let codes = match CodeTable::load(&cfg.area_codes_path()) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            problems.push(format!(
                "area code table {}: {e}",
                cfg.area_codes_path().display()
            ));
            None
        }
    };
    let catalog = match codes {
        Some(codes) => match Catalog::load(&cfg.schemas_dir, codes, cfg.validate_options()) {
            Ok(mut c) => {
                for d in &cfg.datasets {
                    if d.satisfaction_scale == crate::config::Scale::Reversed
                        && c.get(&d.name).is_some()
                        && let Err(e) = c.reverse_scale(&d.name, "satisfaction")
                    {
                        problems.push(format!("dataset {}: satisfaction_scale: {e}", d.name));
                    }
                    if !d.aliases.is_empty()
                        && c.get(&d.name).is_some()
                        && let Err(e) = c.add_aliases(
                            &d.name,
                            d.aliases.iter().map(|(t, f)| (t.as_str(), f.as_str())),
                        )
                    {
                        problems.push(format!("dataset {}: aliases: {e}", d.name));
                    }
                }
                Some(c)
            }
            Err(errs) => {
                problems.extend(errs);
                None
            }
        },
        None => None,
    };
    if let Some(c) = &catalog {
        for d in &cfg.datasets {
            if c.get(&d.name).is_none() {
                problems.push(format!(
                    "dataset {}: no schema {}",
                    d.name,
                    cfg.schemas_dir
                        .join(format!("{}.schema.json", d.name))
                        .display()
                ));
            }
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    Ok(Loaded {
        cfg,
        catalog: catalog.expect("no problems means the catalog loaded"),
    })
}

/// Why the service loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM/SIGINT: the process exits.
    Terminate,
    /// SIGHUP with a valid new config: the loop starts again with it.
    Reload,
}

/// Runs the daemon until `shutdown` completes, then drains: the current
/// chunk of every file is committed, files in progress stay in `work/` and
/// are resumed at the next start (or, after a reload, at once by the next
/// loop). `reloaded` says this loop follows a config reload.
pub async fn run(
    loaded: Loaded,
    shutdown: impl Future<Output = Stop>,
    reloaded: bool,
) -> anyhow::Result<Stop> {
    let loaded = Arc::new(loaded);
    let cfg = &loaded.cfg;
    let tz = cfg.tz().context("timezone")?;
    let db_path = cfg.state_db();
    let mut conn = crate::state::open(&db_path)?;
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let config = json!({
            "datasets": cfg.datasets.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            "sink": match cfg.sink.mode { SinkMode::Outbox => "outbox", SinkMode::Http => "http" },
        });
        if !reloaded {
            log::append(
                &tx,
                tz,
                Event::DaemonStarted,
                Entry {
                    details: Some(
                        json!({"version": env!("CARGO_PKG_VERSION"), "pid": std::process::id()}),
                    ),
                    ..Default::default()
                },
            )?;
        }
        log::append(
            &tx,
            tz,
            if reloaded {
                Event::ConfigReloaded
            } else {
                Event::ConfigLoaded
            },
            Entry {
                details: Some(config),
                ..Default::default()
            },
        )?;
        tx.commit()?;
    }
    drop(conn);

    let stopping = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Gate::new(cfg.backpressure, cfg.write_dirs()));
    // Workers wake the forwarder after sealing: the pull-mode thread
    // through a channel, the push-mode task through a Notify.
    // A wake-up channel of one slot: wake-ups coalesce, senders never block.
    let (fwd_tx, fwd_rx) = std_mpsc::sync_channel::<()>(1);
    let push_wake = Arc::new(tokio::sync::Notify::new());
    let fwd_wake = {
        let tx = fwd_tx.clone();
        let n = push_wake.clone();
        Arc::new(move || {
            let _ = tx.try_send(());
            n.notify_one();
        }) as Arc<dyn Fn() + Send + Sync>
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let abandon = tokio_util::sync::CancellationToken::new();

    // One worker thread per dataset: files of a dataset are processed in
    // claim order, which keeps each route's batches in arrival order.
    let mut workers: HashMap<String, std_mpsc::Sender<String>> = HashMap::new();
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    let mut inboxes = Vec::new();
    let mut recovered = 0usize;
    for d in &cfg.datasets {
        let paths = SpoolPaths::new(&cfg.spool_dir, &d.name);
        paths
            .create()
            .with_context(|| format!("creating spool folders for {}", d.name))?;
        inboxes.push(Inbox {
            dataset: d.name.clone(),
            dir: paths.inbox.clone(),
            work: paths.work.clone(),
            ready: d.ready.unwrap_or(cfg.intake.ready),
        });
        let leftovers = intake::scan::leftovers(&paths.work);
        recovered += leftovers.len();
        let ctx = DatasetCtx {
            dataset: d.clone(),
            schema: loaded.schema(&d.name).expect("load checked every schema"),
            sender: cfg.sender.clone(),
            tz,
            batch: cfg.batch,
            chunk_records: cfg.intake.chunk_records.max(1),
            read: loaded.read_options(Some(&d.name)),
            paths,
            on_sealed: fwd_wake.clone(),
            stopping: {
                let s = stopping.clone();
                Arc::new(move || s.load(Ordering::SeqCst))
            },
            gate: gate.clone(),
        };
        let (tx, rx) = std_mpsc::channel::<String>();
        for name in leftovers {
            let _ = tx.send(name);
        }
        workers.insert(d.name.clone(), tx);
        let db = db_path.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker-{}", d.name))
                .spawn(move || worker(db, ctx, rx))
                .context("spawning worker")?,
        );
    }
    if recovered > 0 {
        let mut conn = crate::state::open(&db_path)?;
        log::append_alone(
            &mut conn,
            tz,
            Event::DaemonRecovered,
            Entry {
                counts: Some(json!({"files": recovered})),
                ..Default::default()
            },
        )?;
        tracing::info!(
            files = recovered,
            "resuming files left in work/ by the previous run"
        );
    }

    // The forwarder: pull mode runs on its own thread, push mode as a task.
    let mut push_task = None;
    let fwd_handle = match cfg.sink.mode {
        SinkMode::Outbox => {
            let mut outbox = Outbox::new(cfg.sink.outbox_dir.clone(), cfg.spool_dir.clone(), tz)
                .with_catalog(loaded.catalog.clone());
            let db = db_path.clone();
            let stop = stopping.clone();
            let gate = gate.clone();
            let watch_dir = cfg.sink.outbox_dir.clone();
            std::fs::create_dir_all(&watch_dir).context("creating the outbox folder")?;
            Some(
                std::thread::Builder::new()
                    .name("outbox".into())
                    .spawn(move || {
                        outbox_loop(db, &mut outbox, watch_dir, fwd_rx, fwd_tx, stop, &gate)
                    })?,
            )
        }
        SinkMode::Http => {
            let http = cfg
                .sink
                .http
                .clone()
                .context("sink.mode = \"http\" needs [sink.http]")?;
            let mut fwd = crate::forward::http::Forwarder::new(
                db_path.clone(),
                cfg.spool_dir.clone(),
                tz,
                http,
            )?
            .with_catalog(loaded.catalog.clone());
            fwd.windows = cfg
                .datasets
                .iter()
                .filter_map(|d| Some((d.name.clone(), d.send_window?)))
                .collect();
            let fwd = Arc::new(fwd);
            push_task = Some(tokio::spawn(fwd.run(
                push_wake.clone(),
                cancel.clone(),
                abandon.clone(),
            )));
            drop(fwd_rx);
            None
        }
    };

    // Intake: watcher wake-ups plus periodic rescans.
    let (wake_tx, mut wake_rx) = mpsc::channel::<Wake>(1024);
    let dirs: Vec<PathBuf> = inboxes.iter().map(|i| i.dir.clone()).collect();
    let collect_tx = wake_tx.clone();
    let _watcher = match intake::watch(&dirs, wake_tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "file watcher unavailable; relying on periodic rescans");
            None
        }
    };
    let mut scanner = Scanner::new(
        &cfg.spool_dir,
        inboxes,
        Duration::from_secs(cfg.intake.settle_secs),
    );
    let rescan = Duration::from_secs(cfg.intake.rescan_secs);
    let mut scheduler = schedule_collections(cfg, tz, &mut scanner, collect_tx).await?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = watchdog_interval();
    tracing::info!(datasets = cfg.datasets.len(), spool = %cfg.spool_dir.display(), "fepd ready");

    // The admin listener (loopback): health, metrics, status.
    let admin_task = match &cfg.admin.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("admin listener on {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "admin listener: /healthz /metrics /status");
            let c = cancel.clone();
            Some(tokio::spawn(super::admin::serve(
                listener,
                db_path.clone(),
                gate.clone(),
                cfg.spool_dir.clone(),
                async move { c.cancelled().await },
            )))
        }
        None => None,
    };
    // The intake loop's own read connection, for the back-pressure gate.
    let gate_conn = crate::state::open(&db_path)?;
    tokio::pin!(shutdown);
    let stop;
    let mut last_full = tokio::time::Instant::now() - rescan;
    let mut was_paused = false;
    loop {
        let now = tokio::time::Instant::now();
        let paused = gate.check(&gate_conn);
        if paused {
            // Claim nothing while the outbox is over its high-water mark;
            // files wait in the inbox.
        } else if was_paused || now.duration_since(last_full) >= rescan || scanner.has_pending() {
            if now.duration_since(last_full) >= rescan {
                last_full = now;
            }
            dispatch(&mut scanner, &workers);
        }
        was_paused = paused;
        let tick = if scanner.has_pending() || paused {
            Duration::from_millis(500)
        } else {
            rescan.saturating_sub(now.elapsed()).min(watchdog)
        };
        tokio::select! {
            s = &mut shutdown => {
                stop = s;
                break;
            }
            w = wake_rx.recv() => {
                // Take every queued wake-up, then scan once.
                let mut next = w;
                while let Some(w) = next {
                    match w {
                        Wake::Complete(p) => scanner.mark_complete(p),
                        Wake::Collect(ds) => {
                            tracing::debug!(dataset = %ds, "scheduled collection");
                            scanner.collect(&ds);
                        }
                        Wake::Changed | Wake::Overflow => {}
                    }
                    next = wake_rx.try_recv().ok();
                }
                if !gate.check(&gate_conn) {
                    dispatch(&mut scanner, &workers);
                }
            }
            _ = tokio::time::sleep(tick) => {}
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    }

    // Drain: stop intake, let every file commit its current chunk and every
    // in-flight request be answered, within the grace period.
    let grace = Duration::from_secs(cfg.shutdown.grace_secs);
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "draining: committing current chunks, waiting for in-flight requests"
    );
    let _ = sd_notify::notify(&[match stop {
        Stop::Terminate => sd_notify::NotifyState::Stopping,
        Stop::Reload => sd_notify::NotifyState::Reloading,
    }]);
    stopping.store(true, Ordering::SeqCst);
    cancel.cancel();
    if let Some(s) = scheduler.as_mut() {
        let _ = s.shutdown().await;
    }
    drop(workers);
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    if let Some(mut t) = push_task {
        let ended = match tokio::time::timeout_at(deadline, &mut t).await {
            Ok(r) => Some(r),
            Err(_) => {
                abandon.cancel();
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
    let joined = tokio::task::spawn_blocking(move || {
        for h in handles {
            let _ = h.join();
        }
        if let Some(h) = fwd_handle {
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
    if stop == Stop::Terminate {
        let mut conn = crate::state::open(&db_path)?;
        log::append_alone(&mut conn, tz, Event::DaemonStopped, Entry::default())?;
        tracing::info!("fepd stopped");
    } else {
        tracing::info!("drained; starting again with the new config");
    }
    Ok(stop)
}

/// Starts the cron jobs of the datasets with a `schedule`: each firing
/// asks the intake loop to collect that dataset's inbox.
async fn schedule_collections(
    cfg: &Config,
    tz: chrono::FixedOffset,
    scanner: &mut Scanner,
    tx: mpsc::Sender<Wake>,
) -> anyhow::Result<Option<tokio_cron_scheduler::JobScheduler>> {
    let scheduled: Vec<_> = cfg
        .datasets
        .iter()
        .filter_map(|d| d.schedule.as_ref().map(|s| (d.name.clone(), s.clone())))
        .collect();
    if scheduled.is_empty() {
        return Ok(None);
    }
    let sched = tokio_cron_scheduler::JobScheduler::new()
        .await
        .context("starting the collection scheduler")?;
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
        .with_context(|| format!("dataset {dataset}: schedule {expr:?}"))?;
        sched.add(job).await.context("adding a collection job")?;
        tracing::info!(dataset = %dataset, schedule = %expr, "inbox collected on a schedule");
    }
    sched
        .start()
        .await
        .context("starting the collection scheduler")?;
    Ok(Some(sched))
}

fn dispatch(scanner: &mut Scanner, workers: &HashMap<String, std_mpsc::Sender<String>>) {
    for c in scanner.scan() {
        tracing::debug!(dataset = %c.dataset, file = %c.work_name, "claimed");
        if let Some(w) = workers.get(&c.dataset) {
            let _ = w.send(c.work_name);
        }
    }
}

fn watchdog_interval() -> Duration {
    match sd_notify::watchdog_enabled() {
        Some(d) if !d.is_zero() => d / 2,
        _ => Duration::from_secs(10),
    }
}

fn worker(db: PathBuf, ctx: DatasetCtx, rx: std_mpsc::Receiver<String>) {
    let mut conn = match crate::state::open(&db) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(dataset = %ctx.dataset.name, error = %e, "worker cannot open the state database");
            return;
        }
    };
    let who = format!("worker-{}", ctx.dataset.name);
    'files: while let Ok(work_name) = rx.recv() {
        if (ctx.stopping)() {
            break;
        }
        tracing::debug!(dataset = %ctx.dataset.name, file = %work_name, "processing claimed file");
        let mut failures = 0u32;
        loop {
            // A bug triggered by one file must not take the dataset's
            // worker down with it (PRODUCT.md guarantee 5): the file stays
            // in work/ and the worker goes on with the next one.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job::process(&mut conn, &ctx, &work_name)
            }));
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
                    let wait = if is_disk_full(&e) {
                        // Intake pauses; this file is retried often so
                        // that work resumes soon after space returns.
                        ctx.gate.disk_failed(
                            &who,
                            &format_args!("file {}: {e}", job::original_name(&work_name)),
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

fn outbox_loop(
    db: PathBuf,
    outbox: &mut Outbox,
    watch_dir: PathBuf,
    wake: std_mpsc::Receiver<()>,
    wake_tx: std_mpsc::SyncSender<()>,
    stop: Arc<AtomicBool>,
    gate: &Gate,
) {
    let mut conn = match crate::state::open(&db) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "outbox cannot open the state database");
            return;
        }
    };
    // Acknowledgements arrive as files: watch for them so delivery is
    // recorded promptly; the poll below is the fallback. Only the arrival
    // of an .ack or .nack wakes the loop: the pass itself opens these
    // folders, and waking on every event would make it chase its own tail.
    let _watcher = {
        use notify::event::{AccessKind, AccessMode, ModifyKind};
        use notify::{EventKind, RecursiveMode, Watcher};
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else {
                let _ = wake_tx.try_send(());
                return;
            };
            let arrival = matches!(
                ev.kind,
                EventKind::Create(_)
                    | EventKind::Modify(ModifyKind::Name(_))
                    | EventKind::Access(AccessKind::Close(AccessMode::Write))
            );
            let marker = ev
                .paths
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "ack" || e == "nack"));
            if arrival && marker {
                let _ = wake_tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(&watch_dir, RecursiveMode::Recursive).map(|_| w))
        .ok()
    };
    loop {
        let mut wait = Duration::from_millis(1000);
        match outbox.pass(&mut conn) {
            Ok(_) => gate.disk_ok("outbox"),
            Err(e) if is_disk_full(&e) => {
                gate.disk_failed("outbox", &format_args!("{e:#}"));
                wait = DISK_RETRY;
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "outbox pass failed; retrying"),
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match wake.recv_timeout(wait) {
            Ok(()) => while wake.try_recv().is_ok() {},
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}
