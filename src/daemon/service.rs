//! The process around the service loop: signals, and reloads that can
//! never stop the service.
//!
//! A SIGHUP re-reads the config and checks everything the new loop will
//! need (schemas, code table, secrets from files and the environment, the
//! admin token and address) *before* draining; a config with problems is
//! refused while the old loop keeps running. If the new loop still fails
//! to start, the previous config starts again. Every refusal is a
//! `config_refused` exchange-log entry with its reasons.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::DaemonError;
use super::lock::InstanceLock;
use super::preflight::{self, Running};
use super::run::{Start, Stop, run};
use crate::config::{Config, Loaded, load};
use crate::state::log::{self, LogEntry};

/// Runs the daemon on `loaded` (read from `path`) until SIGTERM/SIGINT,
/// reloading on SIGHUP. Holds `instance` throughout.
pub fn serve(path: &Path, instance: &InstanceLock, loaded: Loaded) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::os("starting the runtime"))?;
    // SIGHUP's default action ends the process: take it over before
    // anything else, so that a reload asked for during start-up or a drain
    // waits instead of killing the daemon.
    let _hup = rt
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) })
        .map_err(DaemonError::os("installing the SIGHUP handler"))?;
    let mut current = Arc::new(loaded);
    // The config that ran before a reload, until the new one has started.
    let mut previous: Option<Arc<Loaded>> = None;
    let mut start = Start::Fresh;
    loop {
        let signals = stop_signal(path.to_owned(), current.clone());
        match rt.block_on(run(current.clone(), instance, signals, start)) {
            Ok(Stop::Terminate) => return Ok(()),
            Ok(Stop::Reload(next)) => {
                previous = Some(current);
                current = Arc::new(*next);
                start = Start::Reload;
            }
            Err(e) if start == Start::Reload => {
                let old = previous.take().expect("a reload keeps the previous config");
                let why = format!("{e:#}");
                refuse(&old.cfg, "start", std::slice::from_ref(&why));
                current = old;
                start = Start::Fallback;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Completes on SIGTERM/SIGINT, or on SIGHUP once the config file re-reads
/// and passes every check (the new config rides in [`Stop::Reload`]).
async fn stop_signal(path: PathBuf, current: Arc<Loaded>) -> Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).expect("installing a SIGHUP handler");
    let term = shutdown_signal();
    tokio::pin!(term);
    loop {
        tokio::select! {
            _ = &mut term => return Stop::Terminate,
            _ = hup.recv() => {
                tracing::info!(config = %path.display(), "SIGHUP received: re-reading the config");
                match reread(&path, &current.cfg) {
                    Ok(l) => {
                        tracing::info!("config valid: draining, then running with it");
                        return Stop::Reload(Box::new(l));
                    }
                    Err(problems) => refuse(&current.cfg, "check", &problems),
                }
            }
        }
    }
}

/// The config at `path` with everything it needs, or every problem.
fn reread(path: &Path, running: &Config) -> Result<Loaded, Vec<String>> {
    let cfg = Config::load(path).map_err(|e| vec![e.to_string()])?;
    let mut problems = preflight::check(
        &cfg,
        Running {
            config: Some(running),
            admin: running.admin.listen,
        },
    )
    .problems;
    match load(cfg) {
        Ok(l) if problems.is_empty() => Ok(l),
        Ok(_) => Err(problems),
        Err(found) => {
            let mut all = found.lines();
            all.append(&mut problems);
            Err(all)
        }
    }
}

/// Logs a refused reload (operational log and exchange log); the daemon
/// goes on with `running`. `stage` is `check` (before draining) or
/// `start` (the new loop failed to start).
fn refuse(running: &Config, stage: &str, problems: &[String]) {
    tracing::error!(
        stage,
        problems = %problems.join("; "),
        "config reload refused; still running with the previous config"
    );
    let tz = running.tz();
    let logged = || -> Result<(), crate::state::StoreError> {
        let mut conn = crate::state::open(&running.state_db())?;
        log::append_alone(&mut conn, tz, LogEntry::ConfigRefused { stage, problems })?;
        Ok(())
    };
    if let Err(e) = logged() {
        tracing::error!(error = %format!("{e:#}"), "cannot record the refused reload in the exchange log");
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
