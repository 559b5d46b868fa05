//! The command line: thin glue over the library. Every command that reads
//! the config takes `--config PATH` (before or after the command name);
//! without it, `FEPD_CONFIG`, then `./config/fepd.toml`, then
//! `/etc/fepd/fepd.toml`.
//!
//! Exit codes: 0 success; 1 the command ran and found something wrong
//! (rejected records, config problems, a broken exchange-log chain, an
//! operator action refused); 2 bad usage; 3 the command could not run
//! (unreadable config, state database or file system error).

mod audit;
mod batches;
mod cluster;
mod doctor;
mod logfile;
mod logging;
pub mod operator;
mod replay;
mod selftest;
mod state;
mod status;
mod template;
mod users;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigSource};

#[derive(Parser, Debug)]
#[command(
    name = "fepd",
    version,
    about = "前置机 exchange daemon: collect, validate and forward government data"
)]
pub struct Cli {
    /// Config file (default: $FEPD_CONFIG, then ./config/fepd.toml, then
    /// /etc/fepd/fepd.toml).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Who is acting, for the exchange log of operator commands (batch
    /// retry/park, audit export --prune, selftest); default: the OS user.
    #[arg(long, global = true, value_name = "NAME")]
    by: Option<String>,
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
    /// A local stand-in of the resource library (docs/protocol.md), for the
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
    /// The state database: `backup --to FILE` while the daemon runs.
    #[command(subcommand)]
    State(state::Command),
    /// Check the state database, the exchange log and their agreement with
    /// the spool and outbox folders; `--fix` repairs what is safe. Exit 1
    /// on findings.
    Doctor(doctor::Args),
    /// Re-send (补传) records already delivered, as new batches marked
    /// `replayOf`: a dataset's deliveries from --since to --until, batches
    /// by id, or a source file's; `--reason` is required and logged.
    Replay(replay::Args),
    /// The web console's users: add, passwd, disable, list.
    #[command(subcommand)]
    Users(users::Command),
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout; the packages install it as fepd(1).
    #[command(hide = true)]
    Man,
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

/// The config file to use and where it was found (`--config`, then
/// `FEPD_CONFIG`, then `./config/fepd.toml`, then `/etc/fepd/fepd.toml`).
fn config_path(cli: &Cli) -> Result<(PathBuf, ConfigSource), crate::config::ConfigError> {
    crate::config::locate(cli.config.as_deref(), std::env::var_os("FEPD_CONFIG"))
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let (path, _) = config_path(cli)?;
    Ok(Config::load(&path)?)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run) {
        crate::daemon::tune_allocator();
    }
    if !matches!(cli.command, Command::Run | Command::SimulateLibrary(_)) {
        // A one-shot command whose reader went away (`fepd batches list |
        // head`) ends quietly, as `ls` or `cat` do, instead of panicking
        // in `println!`. Not for the long-running ones: a closed stderr
        // must never kill the daemon.
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    operator::init(cli.by.as_deref());
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
        Command::State(cmd) => load_config(&cli).and_then(|c| state::run(&c, cmd)),
        Command::Doctor(a) => load_config(&cli).and_then(|c| doctor::run(&c, a)),
        Command::Replay(a) => load_config(&cli).and_then(|c| replay::run(&c, a)),
        Command::Users(cmd) => load_config(&cli).and_then(|c| users::run(&c, cmd)),
        Command::Completions { shell } => completions(*shell),
        Command::Man => man_page(),
    };
    match result {
        Ok(e) => e.into(),
        Err(e) => {
            eprintln!("fepd: {e:#}");
            Exit::Failed.into()
        }
    }
}

/// `fepd completions SHELL`: the script for that shell, on stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<Exit> {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "fepd", &mut std::io::stdout());
    Ok(Exit::Ok)
}

/// `fepd man`: fepd(1) in roff: the commands, the files the packages
/// install, the exit codes. (`fepd COMMAND --help` details each command.)
fn man_page() -> anyhow::Result<Exit> {
    use clap::CommandFactory;
    let mut out = std::io::stdout().lock();
    let man = clap_mangen::Man::new(Cli::command());
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    use std::io::Write;
    writeln!(
        out,
        ".SH FILES\n/etc/fepd/fepd.toml \\- the configuration\n.br\n/usr/share/doc/fepd/ \\- README and the Chinese guides (docs/zh)\n.SH \"EXIT STATUS\"\n0 success; 1 the command ran and found something wrong; 2 bad usage; 3 the command could not run."
    )?;
    man.render_version_section(&mut out)?;
    Ok(Exit::Ok)
}

fn run(cli: &Cli) -> anyhow::Result<Exit> {
    let (path, _) = config_path(cli)?;
    let cfg = Config::load(&path)?;
    let _guard = logging::init(&cfg.log, cfg.tz())?;
    // One daemon per state directory, before anything is recovered.
    let tz = cfg.tz();
    let instance = match crate::daemon::lock::acquire(&cfg.state_dir, tz) {
        Ok(l) => l,
        Err(e @ crate::daemon::lock::LockError::Held { .. }) => {
            eprintln!("fepd: {e}");
            return Ok(Exit::Failed);
        }
        Err(e) => return Err(e.into()),
    };
    let mut problems = crate::daemon::preflight::check(&cfg, Default::default()).problems;
    let loaded = match crate::config::load(cfg) {
        Ok(l) if problems.is_empty() => l,
        Ok(_) => {
            eprintln!("fepd: config has problems:\n{}", problems.join("\n"));
            return Ok(Exit::Failed);
        }
        Err(found) => {
            let mut found = found.lines();
            found.append(&mut problems);
            let problems = found;
            eprintln!("fepd: config has problems:\n{}", problems.join("\n"));
            return Ok(Exit::Failed);
        }
    };
    crate::daemon::serve(&path, &instance, loaded)?;
    Ok(Exit::Ok)
}

fn simulate_library(opts: crate::simulate::SimOptions) -> anyhow::Result<Exit> {
    let _guard = logging::init(
        &crate::config::Log::default(),
        chrono::FixedOffset::east_opt(0).expect("UTC"),
    )?;
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
        sim.run_until(crate::daemon::shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(Exit::Ok)
}

/// Everything `fepd run` would check, and more, without changing anything:
/// the config file (and where it was found), schemas, code table, folders,
/// secrets (files and environment variables), the admin token and address.
fn check_config(cli: &Cli) -> anyhow::Result<Exit> {
    let (path, source) = match config_path(cli) {
        Ok(p) => p,
        Err(e) => {
            println!("✗ {e}");
            return Ok(Exit::Findings);
        }
    };
    println!("config: {} (from {source})", path.display());
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            println!("✗ {e}");
            return Ok(Exit::Findings);
        }
    };
    // A running daemon holds its admin address: not a problem.
    let running = match crate::daemon::lock::presence(&cfg.state_dir) {
        crate::daemon::lock::Presence::Running { .. } => cfg.admin.listen,
        crate::daemon::lock::Presence::Stopped { .. } => None,
    };
    let pre = crate::daemon::preflight::check(
        &cfg,
        crate::daemon::preflight::Running {
            config: None,
            admin: running,
        },
    );
    let mut problems = Vec::new();
    let cfg_for_alerts = cfg.clone();
    if let Err(found) = crate::config::load(cfg) {
        problems.extend(found.lines());
    }
    problems.extend(pre.problems);
    for n in &pre.notes {
        println!("· {n}");
    }
    let (warnings, alert_problems) = crate::alerts::check_config(&cfg_for_alerts);
    for w in &warnings {
        println!("⚠ {w}");
    }
    problems.extend(alert_problems);
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

/// A secret file's problem, by the rule in `config::secret`.
pub use crate::config::secret::secret_file_problem;

#[cfg(test)]
mod tests {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// docs/datasets.md: adding a dataset is a schema file plus config, no
    /// code — the two seeds beyond the six are named nowhere in fepd's own
    /// code (the library simulator's catalogue of routes and tests aside).
    #[test]
    fn no_code_names_the_seed_datasets() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let offenders: Vec<String> = files
            .iter()
            .filter(|p| !p.starts_with(src.join("simulate")))
            .filter(|p| !p.to_string_lossy().contains("tests"))
            .filter(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                code.contains("service_stats") || code.contains("event_report")
            })
            .map(|p| p.strip_prefix(&src).unwrap().display().to_string())
            .collect();
        assert!(files.len() > 50, "the sources were not found");
        assert!(
            offenders.is_empty(),
            "a seed dataset named in {offenders:?}"
        );
    }

    /// ARCHITECTURE.md, "No `anyhow` outside `src/cli/` and `src/main.rs`".
    #[test]
    fn anyhow_is_used_only_at_the_binary_edge() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let offenders: Vec<String> = files
            .iter()
            .filter(|p| !p.starts_with(src.join("cli")) && **p != src.join("main.rs"))
            .filter(|p| std::fs::read_to_string(p).unwrap().contains("anyhow"))
            .map(|p| p.strip_prefix(&src).unwrap().display().to_string())
            .collect();
        assert!(files.len() > 50, "the sources were not found");
        assert!(offenders.is_empty(), "anyhow used in {offenders:?}");
    }
}
