//! The service loop, in the order of its phases: open the state, prepare
//! every part (spool folders, forwarder, admin listener, intake), record
//! the start, recover what a previous run left in `work/` — all of which
//! may fail, before any thread or task starts (ARCHITECTURE.md, "A reload
//! never stops the service") — then start the workers, retention, the
//! forwarder and intake, serve until asked to stop, and drain.

use std::path::PathBuf;
use std::sync::{Arc, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::admin::Admin;
use super::backpressure::Gate;
use super::error::DaemonError;
use super::health::Health;
use super::intake_loop::{self, Intake, Workers};
use super::job::{DatasetCtx, Deferred};
use super::lock::InstanceLock;
use super::worker::worker;
use crate::config::{Config, DatasetConfig, Loaded, SinkMode};
use crate::forward::push::Forwarder;
use crate::intake::{self, Inbox, Scanner, Wake};
use crate::spool::Spool;
use crate::state::StoreError;
use crate::state::log::{self, ConfigSummary, LogEntry};

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
/// admin listener, schedules, recovery) is done before any thread or task
/// is started, so an error returns with nothing left running and the
/// caller can go on with another config.
pub async fn run(
    loaded: Arc<Loaded>,
    instance: &InstanceLock,
    shutdown: impl std::future::Future<Output = Stop>,
    start: Start,
) -> Result<Stop, DaemonError> {
    let cfg = &loaded.cfg;
    let tz = cfg.tz();
    let db_path = cfg.state_db();
    let conn = super::starting::while_starting(
        || crate::state::open(&db_path),
        Duration::from_secs(10),
        super::starting::still_starting,
    )?;
    let health = Arc::new(Health::new());
    let gate = Arc::new(Gate::new(cfg.backpressure, cfg.write_dirs()));
    let spools = prepare_spools(cfg)?;
    let forwarder = prepare_forwarder(&loaded, tz, &health)?;
    // Cluster mode (docs/cluster.md): its connection and state connections.
    let cluster = match &cfg.cluster {
        Some(c) => Some(crate::cluster::Prepared::new(c, &db_path).await?),
        None => None,
    };
    let admin = prepare_admin(cfg, &gate, &health, instance)?;
    let alerts = crate::alerts::Alerts::prepare(
        &admin.cfg,
        health.alert_failures.clone(),
        health.alert_results.clone(),
    )?;
    let admin_listener = match cfg.admin.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(DaemonError::os(format!("admin listener on {addr}")))?,
        ),
        None => None,
    };
    // The web console: its listener and, with TLS, its certificate.
    let console_listener = match cfg.console.listen {
        Some(addr) => {
            let tls = match cfg.console.tls() {
                Some((cert, key)) => {
                    Some(crate::console::acceptor(cert, key).map_err(DaemonError::ConsoleTls)?)
                }
                None => None,
            };
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(DaemonError::os(format!("console listener on {addr}")))?;
            Some((l, tls))
        }
        None => None,
    };
    let inboxes: Vec<Inbox> = spools.iter().map(|(d, s)| inbox(cfg, d, s)).collect();
    let mut scanner = Scanner::new(
        &cfg.spool_dir,
        inboxes.clone(),
        Duration::from_secs(cfg.intake.settle_secs),
    );
    scanner.set_quiet(Duration::from_millis(cfg.intake.quiet_ms));
    let (wake_tx, wake_rx) = mpsc::channel::<Wake>(1024);
    let scheduler =
        intake_loop::schedule_collections(cfg, tz, &mut scanner, wake_tx.clone()).await?;
    // The intake loop's own read connection, for the back-pressure gate.
    let gate_conn = crate::state::open(&db_path)?;
    record_start(conn, cfg, tz, start)?;
    // A changed sink mode: exported batches are taken back for pushing.
    crate::forward::switch::on_start(&db_path, cfg, tz)?;
    let recovered = recover(&db_path, &spools, cfg.cluster.is_some())?;

    // From here on, threads and tasks run.
    let mut running = Running::new();
    let (fwd_tx, fwd_rx) = std_mpsc::sync_channel::<()>(1);
    let push_wake = Arc::new(tokio::sync::Notify::new());
    let fwd_wake = {
        // Workers wake the forwarder after sealing: the pull-mode thread
        // through a channel, the push-mode task through a Notify. A
        // wake-up channel of one slot: wake-ups coalesce, senders never
        // block.
        let tx = fwd_tx.clone();
        let n = push_wake.clone();
        Arc::new(move || {
            let _ = tx.try_send(());
            n.notify_one();
        }) as Arc<dyn Fn() + Send + Sync>
    };
    let sources: Vec<_> = spools
        .iter()
        .filter(|(d, _)| d.sql.is_some())
        .cloned()
        .collect();
    let workers = start_workers(
        &loaded,
        tz,
        spools,
        recovered,
        &fwd_wake,
        &gate,
        &health,
        &mut running,
    )?;
    // SQL sources (前置库): one poller thread per dataset with `[dataset.sql]`.
    for (d, paths) in sources {
        let stopping = {
            let c = running.cancel.clone();
            Arc::new(move || c.is_cancelled()) as Arc<dyn Fn() -> bool + Send + Sync>
        };
        let ctx = dataset_ctx(
            &loaded,
            tz,
            &d,
            paths,
            fwd_wake.clone(),
            stopping,
            gate.clone(),
        );
        let alive = health.part(format!("source-{}", d.name));
        let db = db_path.clone();
        running.threads.push(
            crate::source::start(db, ctx, alive).map_err(DaemonError::os("spawning SQL source"))?,
        );
    }
    // Retention: old bodies, files and rows deleted on a schedule.
    running.threads.push(
        crate::retention::start(
            db_path.clone(),
            crate::retention::Plan::of(cfg, tz),
            running.cancel.clone(),
        )
        .map_err(DaemonError::os("spawning retention"))?,
    );
    let canary = forwarder
        .as_ref()
        .filter(|_| cfg.alerts.canary != "off")
        .map(|fwd| crate::alerts::Canary {
            forwarder: fwd.clone(),
            routes: canary_routes(&loaded),
        });
    match forwarder {
        Some(fwd) if cluster.is_some() => {
            let routes = canary_routes(&loaded).into_iter().map(|r| r.0).collect();
            let (held, senders) = workers.shared().expect("cluster mode holds files");
            let work = (cfg.datasets.iter())
                .map(|d| (d.name.clone(), Spool::new(&cfg.spool_dir, &d.name).work))
                .collect();
            let tasks = cluster.expect("matched").start(
                tz,
                (fwd, routes),
                (
                    crate::cluster::SharedSpool {
                        held,
                        work,
                        workers: senders,
                    },
                    crate::cluster::fleet::Source {
                        report: admin.reporter(),
                        db: db_path.clone(),
                        tz,
                    },
                ),
                push_wake.clone(),
                running.cancel.clone(),
                running.abandon.clone(),
            );
            let alive = health.part("cluster");
            running.push_task = Some(tokio::spawn(async move {
                let _alive = alive;
                Ok(tasks.await?)
            }));
            drop(fwd_rx);
        }
        None => {
            running.outbox = Some(super::pull::start(
                &loaded,
                tz,
                &health,
                &gate,
                fwd_rx,
                fwd_tx,
                &running.cancel,
            )?)
        }
        Some(fwd) => {
            let alive = health.part("push forwarder");
            let run = fwd.run(
                push_wake.clone(),
                running.cancel.clone(),
                running.abandon.clone(),
            );
            running.push_task = Some(tokio::spawn(async move {
                let _alive = alive;
                run.await
            }));
            drop(fwd_rx);
        }
    }
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
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(datasets = cfg.datasets.len(), spool = %cfg.spool_dir.display(), "fepd ready");
    // The admin listener: health, metrics, status.
    alerts.start(admin.reporter(), canary, running.cancel.clone());
    if let Some(listener) = admin_listener {
        let addr = listener
            .local_addr()
            .map_err(DaemonError::os("admin listener"))?;
        tracing::info!(addr = %addr, "admin listener: /healthz /metrics /status");
        let c = running.cancel.clone();
        running.admin_task = Some(tokio::spawn(super::admin::serve(
            listener,
            admin.clone(),
            async move { c.cancelled().await },
        )));
    }
    if let Some((listener, tls)) = console_listener {
        let addr = listener
            .local_addr()
            .map_err(DaemonError::os("console listener"))?;
        tracing::info!(addr = %addr, https = tls.is_some(), "web console listening");
        let c = running.cancel.clone();
        let console = crate::console::Console::new(admin.clone(), loaded.clone())
            .map_err(DaemonError::os("console threads"))?;
        running.console_task = Some(tokio::spawn(crate::console::serve(
            listener,
            tls,
            console,
            async move { c.cancelled().await },
        )));
    }
    let intake = Intake {
        scanner,
        wake_rx,
        gate_conn,
        gate: &gate,
        health: &health,
        admin: &admin,
        instance,
        rescan: Duration::from_secs(cfg.intake.rescan_secs),
    };
    let stop = intake_loop::serve(intake, &workers, shutdown).await;
    super::drain::drain(cfg, tz, &health, &stop, workers, scheduler, running).await?;
    Ok(stop)
}

/// The routes the canary probes, each with the first dataset (in config
/// order) that uses it and that dataset's schema version.
fn canary_routes(loaded: &Loaded) -> Vec<(String, String, String)> {
    let mut seen = std::collections::BTreeMap::new();
    for d in &loaded.cfg.datasets {
        let version = loaded
            .schema(&d.name)
            .map(|s| s.schema_version.clone())
            .unwrap_or_default();
        seen.entry(d.route()).or_insert((d.name.clone(), version));
    }
    seen.into_iter()
        .map(|(route, (dataset, version))| (route, dataset, version))
        .collect()
}

/// Each dataset's spool folders, created (and given to the staff group)
/// if need be.
fn prepare_spools(cfg: &Config) -> Result<Vec<(DatasetConfig, Spool)>, DaemonError> {
    let staff_gid = super::access::group_id(cfg);
    let mut spools = Vec::new();
    for d in &cfg.datasets {
        let paths = Spool::new(&cfg.spool_dir, &d.name);
        paths.create().map_err(DaemonError::os(format!(
            "creating spool folders for {}",
            d.name
        )))?;
        if let Some(gid) = staff_gid {
            super::access::apply(&cfg.spool_dir, &paths, gid);
        }
        spools.push((d.clone(), paths));
    }
    Ok(spools)
}

/// What intake watches and claims from for a dataset.
fn inbox(cfg: &Config, d: &DatasetConfig, paths: &Spool) -> Inbox {
    Inbox {
        dataset: d.name.clone(),
        dir: paths.inbox.clone(),
        work: paths.work.clone(),
        ready: d.ready.unwrap_or(cfg.intake.ready),
        max_file_bytes: cfg.intake.max_file_bytes,
    }
}

/// The push forwarder, or `None` in pull mode (whose outbox folder is
/// created here).
fn prepare_forwarder(
    loaded: &Loaded,
    tz: chrono::FixedOffset,
    health: &Arc<Health>,
) -> Result<Option<Arc<Forwarder>>, DaemonError> {
    let cfg = &loaded.cfg;
    Ok(match cfg.sink.mode {
        SinkMode::Outbox => {
            std::fs::create_dir_all(&cfg.sink.outbox_dir)
                .map_err(DaemonError::os("creating the outbox folder"))?;
            None
        }
        SinkMode::Http => {
            let http = cfg.sink.http.clone().ok_or(DaemonError::NoHttpSink)?;
            let mut fwd = Forwarder::new(cfg.state_db(), cfg.spool_dir.clone(), tz, http)?
                .with_catalog(loaded.catalog.clone())
                .with_inflight(&cfg.datasets);
            fwd.windows = cfg
                .datasets
                .iter()
                .filter_map(|d| Some((d.name.clone(), d.send_window?)))
                .collect();
            fwd.health = health.clone();
            Some(Arc::new(fwd))
        }
    })
}

fn prepare_admin(
    cfg: &Config,
    gate: &Arc<Gate>,
    health: &Arc<Health>,
    instance: &InstanceLock,
) -> Result<Admin, DaemonError> {
    Ok(Admin {
        cfg: Arc::new(cfg.clone()),
        gate: gate.clone(),
        health: health.clone(),
        holder: instance.holder.clone(),
        token: match &cfg.admin.token_file {
            Some(f) => Some(
                super::preflight::admin_token(f)
                    .map_err(DaemonError::AdminToken)?
                    .into(),
            ),
            None => None,
        },
    })
}

/// The exchange-log entries of this start: `daemon_started` and
/// `config_loaded` for a fresh start, `config_reloaded` after a SIGHUP.
fn record_start(
    mut conn: rusqlite::Connection,
    cfg: &Config,
    tz: chrono::FixedOffset,
    start: Start,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let config = ConfigSummary {
        datasets: cfg.datasets.iter().map(|d| d.name.as_str()).collect(),
        sink: match cfg.sink.mode {
            SinkMode::Outbox => "outbox",
            SinkMode::Http => "http",
        },
    };
    if start == Start::Fresh {
        log::append(
            &tx,
            tz,
            LogEntry::DaemonStarted {
                version: env!("CARGO_PKG_VERSION"),
                pid: std::process::id(),
            },
        )?;
    }
    let entry = match start {
        Start::Fresh => Some(LogEntry::ConfigLoaded(config)),
        Start::Reload => Some(LogEntry::ConfigReloaded(config)),
        Start::Fallback => None,
    };
    if let Some(entry) = entry {
        log::append(&tx, tz, entry)?;
    }
    tx.commit()?;
    Ok(())
}

/// A dataset's files left in `work/` by the previous run, oldest claim
/// first, and those of them an earlier process died on (in cluster mode
/// `gone`: see `job::gone_from_work`).
struct Recovered {
    leftovers: Vec<String>,
    died_on: Vec<String>,
    gone: Vec<String>,
}

/// In cluster mode (`shared`) none: a shared `work/` holds other nodes'
/// files too, taken only under `cluster::lease`'s rule.
fn recover(
    db_path: &std::path::Path,
    spools: &[(DatasetConfig, Spool)],
    shared: bool,
) -> Result<Vec<Recovered>, StoreError> {
    let conn = crate::state::open(db_path)?;
    let mut out = Vec::new();
    for (d, paths) in spools {
        let leftovers = match shared {
            true => Vec::new(),
            false => intake::scan::leftovers(&paths.work),
        };
        let died_on = super::job::died_on(&conn, &leftovers)?;
        let gone = super::job::gone_from_work(&conn, shared, &d.name, paths)?;
        out.push(Recovered {
            leftovers,
            died_on,
            gone,
        });
    }
    Ok(out)
}

/// What runs, for the drain to stop.
pub(super) struct Running {
    /// The one stop: tasks await it, threads (workers, retention, the pull
    /// forwarder) ask `is_cancelled`.
    pub(super) cancel: CancellationToken,
    pub(super) abandon: CancellationToken,
    /// Workers and retention.
    pub(super) threads: Vec<JoinHandle<()>>,
    pub(super) outbox: Option<JoinHandle<()>>,
    /// The push forwarder, or in cluster mode the hand-off and delivery.
    pub(super) push_task:
        Option<tokio::task::JoinHandle<Result<(), crate::forward::push::PushError>>>,
    pub(super) admin_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub(super) console_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn new() -> Running {
        Running {
            cancel: CancellationToken::new(),
            abandon: CancellationToken::new(),
            threads: Vec::new(),
            outbox: None,
            push_task: None,
            admin_task: None,
            console_task: None,
        }
    }
}

/// Everything a dataset's worker needs, from the loaded config.
pub(crate) fn dataset_ctx(
    loaded: &Loaded,
    tz: chrono::FixedOffset,
    d: &DatasetConfig,
    paths: Spool,
    on_sealed: Arc<dyn Fn() + Send + Sync>,
    stopping: Arc<dyn Fn() -> bool + Send + Sync>,
    gate: Arc<Gate>,
) -> DatasetCtx {
    let cfg = &loaded.cfg;
    DatasetCtx {
        dataset: d.clone(),
        schema: loaded.schema(&d.name).expect("load checked every schema"),
        sender: cfg.sender.clone(),
        tz,
        batch: match cfg.cluster {
            Some(_) => crate::config::BatchLimits {
                max_age_ms: u64::MAX,
                ..cfg.batch
            },
            None => cfg.batch,
        },
        chunk_records: cfg.intake.chunk_records.max(1),
        cache_mib: cfg.state.cache_mib,
        read: super::read::ReadOptions::of(cfg, Some(&d.name)),
        paths,
        on_sealed,
        stopping,
        gate,
        deterministic_ids: cfg.cluster.is_some(),
        claims: None,
        keys: std::sync::Mutex::new(crate::state::recent::RecentKeys::new(&d.name)),
    }
}

/// One worker thread per dataset: files of a dataset are processed in
/// claim order, which keeps each route's batches in arrival order. The
/// files left in `work/` go first, those an earlier process died on last.
#[allow(clippy::too_many_arguments)]
fn start_workers(
    loaded: &Loaded,
    tz: chrono::FixedOffset,
    spools: Vec<(DatasetConfig, Spool)>,
    recovered: Vec<Recovered>,
    on_sealed: &Arc<dyn Fn() + Send + Sync>,
    gate: &Arc<Gate>,
    health: &Arc<Health>,
    running: &mut Running,
) -> Result<Workers, DaemonError> {
    let cfg = &loaded.cfg;
    let mut workers = Workers::new(cfg.cluster.as_ref());
    let mut files = 0usize;
    for ((d, paths), r) in spools.into_iter().zip(recovered) {
        let (leftovers, died_on) = (r.leftovers, r.died_on);
        files += leftovers.len();
        let stopping = {
            let c = running.cancel.clone();
            Arc::new(move || c.is_cancelled()) as Arc<dyn Fn() -> bool + Send + Sync>
        };
        let mut ctx = dataset_ctx(
            loaded,
            tz,
            &d,
            paths,
            on_sealed.clone(),
            stopping,
            gate.clone(),
        );
        ctx.claims = workers.held();
        let (tx, rx) = std_mpsc::channel::<String>();
        // Files an earlier process died on wait until the rest went first.
        for name in (leftovers.into_iter().filter(|n| !died_on.contains(n))).chain(r.gone) {
            let _ = tx.send(name);
        }
        if !died_on.is_empty() {
            tracing::warn!(dataset = %d.name, files = ?died_on, "fepd died while processing these files; they are taken after the rest of the inbox");
        }
        let deferred = Deferred::new(died_on, Duration::from_secs(cfg.intake.settle_secs + 1));
        workers.insert(d.name.clone(), tx);
        let db = cfg.state_db();
        let alive = health.part(format!("worker-{}", d.name));
        running.threads.push(
            std::thread::Builder::new()
                .name(format!("worker-{}", d.name))
                .spawn(move || {
                    let _alive = alive;
                    worker(db, ctx, rx, deferred)
                })
                .map_err(DaemonError::os("spawning worker"))?,
        );
    }
    if files > 0 {
        let mut conn = crate::state::open(&cfg.state_db())?;
        log::append_alone(&mut conn, tz, LogEntry::DaemonRecovered { files })?;
        tracing::info!(files, "resuming files left in work/ by the previous run");
    }
    Ok(workers)
}
