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

use super::admin::Admin;
use super::backpressure::{DISK_RETRY, Gate, is_disk_full};
use super::breaker::Deferred;
use super::health::Health;
use super::job::{DatasetCtx, SpoolPaths};
use super::lock::{HEARTBEAT_EVERY, InstanceLock};
use super::read::ReadOptions;
use super::worker::worker;
use crate::config::{Config, SinkMode};
use crate::forward::pull::Outbox;
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
    problems.extend(super::access::config_problems(&cfg));
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
pub enum Stop {
    /// SIGTERM/SIGINT: the process exits.
    Terminate,
    /// SIGHUP with a new config that passed every check: the loop starts
    /// again with it.
    Reload(Box<Loaded>),
}

/// How this service loop starts, for the exchange log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The process starts: `daemon_started`, `config_loaded`.
    Fresh,
    /// After a SIGHUP: `config_reloaded`.
    Reload,
    /// The reloaded config could not start; the previous one runs again
    /// (its refusal is already in the exchange log).
    Fallback,
}

/// Runs the daemon until `shutdown` completes, then drains: the current
/// chunk of every file is committed, files in progress stay in `work/` and
/// are resumed at the next start (or, after a reload, at once by the next
/// loop).
///
/// Everything that can fail at start (state database, folders, forwarder,
/// admin listener, schedules) is done before any thread or task is
/// started, so an error returns with nothing left running and the caller
/// can go on with another config.
pub async fn run(
    loaded: Arc<Loaded>,
    instance: &InstanceLock,
    shutdown: impl Future<Output = Stop>,
    start: Start,
) -> anyhow::Result<Stop> {
    let cfg = &loaded.cfg;
    let tz = cfg.tz().context("timezone")?;
    let db_path = cfg.state_db();
    let mut conn = crate::state::open(&db_path)?;
    let health = Arc::new(Health::new());
    let gate = Arc::new(Gate::new(cfg.backpressure, cfg.write_dirs()));

    let mut inboxes = Vec::new();
    let mut spools = Vec::new();
    let staff_gid = super::access::group_id(cfg);
    for d in &cfg.datasets {
        let paths = SpoolPaths::new(&cfg.spool_dir, &d.name);
        paths
            .create()
            .with_context(|| format!("creating spool folders for {}", d.name))?;
        if let Some(gid) = staff_gid {
            super::access::apply(&cfg.spool_dir, &paths, gid);
        }
        inboxes.push(Inbox {
            dataset: d.name.clone(),
            dir: paths.inbox.clone(),
            work: paths.work.clone(),
            ready: d.ready.unwrap_or(cfg.intake.ready),
            max_file_bytes: cfg.intake.max_file_bytes,
        });
        spools.push((d, paths));
    }
    let forwarder = match cfg.sink.mode {
        SinkMode::Outbox => {
            std::fs::create_dir_all(&cfg.sink.outbox_dir).context("creating the outbox folder")?;
            None
        }
        SinkMode::Http => {
            let http = cfg
                .sink
                .http
                .clone()
                .context("sink.mode = \"http\" needs [sink.http]")?;
            let mut fwd = crate::forward::push::Forwarder::new(
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
            fwd.health = health.clone();
            Some(Arc::new(fwd))
        }
    };
    let admin = Admin {
        cfg: Arc::new(cfg.clone()),
        gate: gate.clone(),
        health: health.clone(),
        holder: instance.holder.clone(),
        token: match &cfg.admin.token_file {
            Some(f) => Some(
                super::preflight::admin_token(f)
                    .map_err(|e| anyhow::anyhow!("admin.token_file: {e}"))?
                    .into(),
            ),
            None => None,
        },
    };
    let admin_listener = match cfg.admin.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("admin listener on {addr}"))?,
        ),
        None => None,
    };
    let mut scanner = Scanner::new(
        &cfg.spool_dir,
        inboxes.clone(),
        Duration::from_secs(cfg.intake.settle_secs),
    );
    scanner.set_quiet(Duration::from_millis(cfg.intake.quiet_ms));
    let (wake_tx, mut wake_rx) = mpsc::channel::<Wake>(1024);
    let mut scheduler = schedule_collections(cfg, tz, &mut scanner, wake_tx.clone()).await?;
    // The intake loop's own read connection, for the back-pressure gate.
    let gate_conn = crate::state::open(&db_path)?;

    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let config = json!({
            "datasets": cfg.datasets.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            "sink": match cfg.sink.mode { SinkMode::Outbox => "outbox", SinkMode::Http => "http" },
        });
        if start == Start::Fresh {
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
        let event = match start {
            Start::Fresh => Some(Event::ConfigLoaded),
            Start::Reload => Some(Event::ConfigReloaded),
            Start::Fallback => None,
        };
        if let Some(event) = event {
            log::append(
                &tx,
                tz,
                event,
                Entry {
                    details: Some(config),
                    ..Default::default()
                },
            )?;
        }
        tx.commit()?;
    }
    drop(conn);
    // A changed sink mode: exported batches are taken back for pushing.
    crate::forward::switch::on_start(&db_path, cfg, tz).context("preparing the outbox")?;

    let stopping = Arc::new(AtomicBool::new(false));
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
    let mut recovered = 0usize;
    for (d, paths) in spools {
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
        // Files an earlier process died on wait until the rest went first.
        let died_on = super::breaker::died_on(&crate::state::open(&db_path)?, &leftovers)?;
        for name in leftovers.into_iter().filter(|n| !died_on.contains(n)) {
            let _ = tx.send(name);
        }
        if !died_on.is_empty() {
            tracing::warn!(dataset = %d.name, files = ?died_on, "fepd died while processing these files; they are taken after the rest of the inbox");
        }
        let deferred = Deferred::new(died_on, Duration::from_secs(cfg.intake.settle_secs + 1));
        workers.insert(d.name.clone(), tx);
        let db = db_path.clone();
        let alive = health.part(format!("worker-{}", d.name));
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker-{}", d.name))
                .spawn(move || {
                    let _alive = alive;
                    worker(db, ctx, rx, deferred)
                })
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

    // Retention: old bodies, files and rows deleted on a schedule.
    handles.push(
        crate::retention::start(
            db_path.clone(),
            crate::retention::Plan::of(cfg, tz),
            stopping.clone(),
        )
        .context("spawning retention")?,
    );
    // The forwarder: pull mode runs on its own thread, push mode as a task.
    let mut push_task = None;
    let fwd_handle = match forwarder {
        None => {
            let mut outbox = Outbox::new(cfg.sink.outbox_dir.clone(), cfg.spool_dir.clone(), tz)
                .with_catalog(loaded.catalog.clone());
            outbox.health = health.clone();
            let db = db_path.clone();
            let stop = stopping.clone();
            let gate = gate.clone();
            let watch_dir = cfg.sink.outbox_dir.clone();
            let alive = health.part("outbox forwarder");
            Some(
                std::thread::Builder::new()
                    .name("outbox".into())
                    .spawn(move || {
                        let _alive = alive;
                        outbox_loop(db, &mut outbox, watch_dir, fwd_rx, fwd_tx, stop, &gate)
                    })?,
            )
        }
        Some(fwd) => {
            let alive = health.part("push forwarder");
            let run = fwd.run(push_wake.clone(), cancel.clone(), abandon.clone());
            push_task = Some(tokio::spawn(async move {
                let _alive = alive;
                run.await
            }));
            drop(fwd_rx);
            None
        }
    };

    // Intake: watcher wake-ups plus periodic rescans (and scheduled
    // collections, set up above).
    let dirs: Vec<PathBuf> = inboxes.iter().map(|i| i.dir.clone()).collect();
    let _watcher = match intake::watch(&dirs, wake_tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "file watcher unavailable; relying on periodic rescans");
            None
        }
    };
    let rescan = Duration::from_secs(cfg.intake.rescan_secs);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = watchdog_interval();
    tracing::info!(datasets = cfg.datasets.len(), spool = %cfg.spool_dir.display(), "fepd ready");

    // The admin listener: health, metrics, status.
    let admin_task = match admin_listener {
        Some(listener) => {
            tracing::info!(addr = %listener.local_addr()?, "admin listener: /healthz /metrics /status");
            let c = cancel.clone();
            Some(tokio::spawn(super::admin::serve(
                listener,
                admin.clone(),
                async move { c.cancelled().await },
            )))
        }
        None => None,
    };
    let mut last_beat: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    let stop;
    let mut last_full = tokio::time::Instant::now() - rescan;
    let mut was_paused = false;
    loop {
        let now = tokio::time::Instant::now();
        let paused = gate.check(&gate_conn);
        health.intake_tick();
        if last_beat.is_none_or(|t| t.elapsed() >= HEARTBEAT_EVERY) {
            last_beat = Some(tokio::time::Instant::now());
            if let Err(e) = instance.beat(&admin.beat()) {
                tracing::warn!(error = %e, "cannot write the heartbeat file");
            }
        }

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
        let tick = if paused {
            Duration::from_millis(500)
        } else if scanner.has_pending() {
            scanner.retry_in()
        } else {
            rescan
                .saturating_sub(now.elapsed())
                .min(watchdog)
                .min(HEARTBEAT_EVERY)
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
                        Wake::Closed(p) => scanner.mark_closed(p),
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
        Stop::Reload(_) => sd_notify::NotifyState::Reloading,
    }]);
    health.set_stopping();
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
    if matches!(stop, Stop::Terminate) {
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
