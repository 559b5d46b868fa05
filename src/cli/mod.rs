//! The command line: thin glue over the library. Every command that reads
//! the config takes `--config PATH` (before or after the command name).
//!
//! Exit codes: 0 success; 1 the command ran and found something wrong
//! (rejected records, config problems, a broken exchange-log chain, an
//! operator action refused); 2 bad usage; 3 the command could not run
//! (unreadable config, state database or file system error).

mod audit;
mod batches;
mod logging;
mod selftest;
mod status;
mod template;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "fepd",
    version,
    about = "前置机 exchange daemon: collect, validate and forward government data"
)]
pub struct Cli {
    /// Config file (default: config/fepd.toml).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon in the foreground (systemd runs this).
    Run,
    /// Check config, schemas, code table and spool; list every problem.
    CheckConfig,
    /// Dry run of decode/parse/validate on files; prints the report data
    /// staff get. Exit 1 if any record is rejected. No state is changed.
    Validate(validate::Args),
    /// Per dataset: inbox files, backlog, parked, last delivery, last error.
    Status(status::Args),
    /// Inspect the outbox and act on batches.
    #[command(subcommand)]
    Batches(batches::Command),
    /// A local stand-in of the resource library (PROTOCOL.md), for the
    /// joint-test rehearsal (联调) and for tests.
    SimulateLibrary(Box<crate::simulate::SimOptions>),
    /// The exchange log: verify the chain, show, trace a record, daily
    /// report, export and prune.
    Audit(audit::Args),
    /// Joint-test (联调) checklist against the library: credentials, a
    /// token, a zero-record probe batch on each route. Exit 1 if any fails.
    Selftest(selftest::Args),
    /// Write a dataset's Excel template for data staff: Chinese titles,
    /// drop-down lists for code fields, a 填报说明 sheet.
    Template(template::Args),
}

/// Outcome of a command, mapped to the exit code.
pub enum Exit {
    Ok,
    Findings,
    Failed,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        match e {
            Exit::Ok => ExitCode::SUCCESS,
            Exit::Findings => ExitCode::from(1),
            Exit::Failed => ExitCode::from(3),
        }
    }
}

fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .unwrap_or_else(|| PathBuf::from("config/fepd.toml"))
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(&config_path(cli))?)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run => run(&cli),
        Command::CheckConfig => check_config(&cli),
        Command::Validate(a) => load_config(&cli).and_then(|c| validate::run(c, a)),
        Command::Status(a) => load_config(&cli).and_then(|c| status::run(&c, a)),
        Command::Batches(cmd) => load_config(&cli).and_then(|c| batches::run(&c, cmd)),
        Command::SimulateLibrary(opts) => simulate_library((**opts).clone()),
        Command::Audit(a) => audit::run(load_config(&cli), a),
        Command::Selftest(a) => load_config(&cli).and_then(|c| selftest::run(c, a)),
        Command::Template(a) => load_config(&cli).and_then(|c| template::run(c, a)),
    };
    match result {
        Ok(e) => e.into(),
        Err(e) => {
            eprintln!("fepd: {e:#}");
            Exit::Failed.into()
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<Exit> {
    let cfg = load_config(cli)?;
    let _guard = logging::init(&cfg.log)?;
    let mut loaded = match crate::daemon::load(cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fepd: config has problems:\n{e}");
            return Ok(Exit::Failed);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // SIGHUP's default action ends the process: take it over before
    // anything else, so that a reload asked for during start-up or a drain
    // waits instead of killing the daemon.
    let _hup = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    })?;
    let path = config_path(cli);
    let mut reloaded = false;
    loop {
        let next = std::sync::Arc::new(std::sync::Mutex::new(None));
        let signals = stop_signal(path.clone(), next.clone());
        match rt.block_on(crate::daemon::run(loaded, signals, reloaded))? {
            crate::daemon::Stop::Terminate => return Ok(Exit::Ok),
            crate::daemon::Stop::Reload => {
                loaded = next
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .expect("a reload stop carries the new config");
                reloaded = true;
            }
        }
    }
}

/// Completes on SIGTERM/SIGINT, or on SIGHUP once the config file re-reads
/// without a problem (the new config is left in `next`). A config with
/// problems is refused with every problem logged, and the daemon goes on
/// with the one it has. (`[log]` changes need a restart.)
async fn stop_signal(
    path: PathBuf,
    next: std::sync::Arc<std::sync::Mutex<Option<crate::daemon::Loaded>>>,
) -> crate::daemon::Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).expect("installing a SIGHUP handler");
    let term = shutdown_signal();
    tokio::pin!(term);
    loop {
        tokio::select! {
            _ = &mut term => return crate::daemon::Stop::Terminate,
            _ = hup.recv() => {
                tracing::info!(config = %path.display(), "SIGHUP received: re-reading the config");
                let read = Config::load(&path)
                    .map_err(anyhow::Error::from)
                    .and_then(crate::daemon::load);
                match read {
                    Ok(l) => {
                        *next.lock().unwrap_or_else(|p| p.into_inner()) = Some(l);
                        tracing::info!("config valid: draining, then running with it");
                        return crate::daemon::Stop::Reload;
                    }
                    Err(e) => tracing::error!(
                        problems = %format!("{e:#}").replace('\n', "; "),
                        "config reload refused; still running with the previous config"
                    ),
                }
            }
        }
    }
}

fn simulate_library(opts: crate::simulate::SimOptions) -> anyhow::Result<Exit> {
    let _guard = logging::init(&crate::config::Log::default())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sim = crate::simulate::start(opts).await?;
        // The first line on stdout is the address, so scripts and tests
        // that asked for port 0 learn the port.
        println!("listening on {}", sim.addr());
        use std::io::Write;
        std::io::stdout().flush()?;
        sim.run_until(shutdown_signal()).await
    })?;
    Ok(Exit::Ok)
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

fn check_config(cli: &Cli) -> anyhow::Result<Exit> {
    let path = config_path(cli);
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            println!("✗ {e}");
            return Ok(Exit::Findings);
        }
    };
    let mut problems = Vec::new();
    let spool = cfg.spool_dir.clone();
    let state = cfg.state_dir.clone();
    let secrets: Vec<PathBuf> = cfg
        .sink
        .http
        .iter()
        .flat_map(|h| [h.client_secret_file.clone(), h.app_key_file.clone()])
        .flatten()
        .collect();
    if let Err(e) = crate::daemon::load(cfg) {
        problems.extend(e.to_string().lines().map(str::to_string));
    }
    for (what, dir) in [("spool_dir", &spool), ("state_dir", &state)] {
        if let Some(p) = writable_problem(dir) {
            problems.push(format!("{what} {}: {p}", dir.display()));
        }
    }
    for s in secrets {
        problems.extend(secret_file_problem(&s));
    }
    if problems.is_empty() {
        println!("✓ {} is valid", path.display());
        Ok(Exit::Ok)
    } else {
        for p in &problems {
            println!("✗ {p}");
        }
        println!("{} problem(s) in {}", problems.len(), path.display());
        Ok(Exit::Findings)
    }
}

/// Why fepd could not write into `dir` (it is created if missing).
fn writable_problem(dir: &std::path::Path) -> Option<String> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Some(format!("cannot create: {e}"));
    }
    let probe = dir.join(format!(".fepd-check-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!("not writable: {e}")),
    }
}

/// A secret file must exist and be readable by its owner only.
pub fn secret_file_problem(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(e) => Some(format!("secret file {}: {e}", path.display())),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Some(format!(
            "secret file {}: readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            m.permissions().mode() & 0o777
        )),
        Ok(_) => None,
    }
}
