//! `fepd doctor [--fix] [--json] [--db FILE]`: the store's consistency
//! checks (rules in `crate::doctor`). Exit 0 clean, 1 findings (left after
//! `--fix`), 3 could not run.

use std::path::PathBuf;

use crate::cli::Exit;
use crate::config::Config;
use crate::daemon::lock::{self, Presence};
use crate::doctor::{self, Action, Finding};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Apply the repairs that lose nothing and send nothing twice (the
    /// daemon must be stopped); the rest are listed with their steps.
    #[arg(long, conflicts_with = "db")]
    fix: bool,
    /// One JSON object per finding on stdout.
    #[arg(long)]
    json: bool,
    /// Check a copy of a state database (a backup, before restoring it):
    /// its integrity and exchange log only.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
}

pub fn run(cfg: &Config, a: &Args) -> anyhow::Result<Exit> {
    if let Some(copy) = &a.db {
        let found = doctor::examine_copy(copy)?;
        return Ok(report(&found, a.json, copy.display().to_string()));
    }
    let running = matches!(lock::presence(&cfg.state_dir), Presence::Running { .. });
    if !a.fix {
        let found = doctor::examine(cfg, running)?;
        if running && !a.json {
            println!(
                "· fepd is running: half-written temporary files are not checked (stop it for a full check)"
            );
        }
        return Ok(report(&found, a.json, cfg.state_db().display().to_string()));
    }
    // Repairs only with the daemon stopped, and none starting meanwhile.
    let _held = match lock::acquire(&cfg.state_dir, cfg.tz()) {
        Ok(l) => l,
        Err(e @ lock::LockError::Held { .. }) => {
            eprintln!(
                "fepd doctor --fix: {e}\nStop it first (systemctl stop fepd), then run doctor --fix again."
            );
            return Ok(Exit::Failed);
        }
        Err(e) => return Err(e.into()),
    };
    let found = doctor::examine(cfg, false)?;
    let mut left = Vec::new();
    for f in found {
        match &f.action {
            Action::Repair(r) => {
                let done = doctor::repair(cfg, r)?;
                println!("✓ fixed [{}] {done}", f.rule.as_str());
            }
            Action::Manual { .. } => left.push(f),
        }
    }
    // What the repairs could not settle is checked again from scratch.
    if !left.is_empty() {
        left = doctor::examine(cfg, false)?;
    }
    Ok(report(&left, a.json, cfg.state_db().display().to_string()))
}

fn report(found: &[Finding], json: bool, what: String) -> Exit {
    if json {
        for f in found {
            println!("{}", serde_json::to_string(f).expect("findings serialise"));
        }
    } else if found.is_empty() {
        println!("✓ {what}: no finding");
    } else {
        for f in found {
            println!("✗ [{}] {}", f.rule.as_str(), f.subject);
            println!("  {}", f.problem);
            match &f.action {
                Action::Repair(_) => {
                    println!("  fix: fepd doctor --fix (safe: loses and repeats nothing)")
                }
                Action::Manual { steps } => println!("  what to do: {steps}"),
            }
        }
        println!(
            "{} finding(s); docs/zh/安装与运维手册.md 6.1 一致性检查",
            found.len()
        );
    }
    if found.is_empty() {
        Exit::Ok
    } else {
        Exit::Findings
    }
}
