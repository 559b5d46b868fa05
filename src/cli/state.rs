//! `fepd state backup --to FILE`: a consistent copy of the state database,
//! taken while the daemon runs (restore: docs/zh/安装与运维手册.md, 备份与恢复).

use std::path::PathBuf;

use crate::cli::Exit;
use crate::config::Config;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Copy the state database (outbox, checkpoints, exchange log) into
    /// FILE with SQLite's online backup: one consistent snapshot, safe
    /// while the daemon runs. An existing FILE is replaced only once the
    /// new copy is complete and checked.
    Backup {
        /// Where the copy goes (e.g. /var/backups/fepd/fepd-2026-12-01.db).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
}

pub fn run(cfg: &Config, cmd: &Command) -> anyhow::Result<Exit> {
    match cmd {
        Command::Backup { to } => {
            let snap = crate::state::backup::backup(&cfg.state_db(), to)?;
            println!(
                "✓ {} → {} ({} bytes, {} batches)",
                cfg.state_db().display(),
                snap.path.display(),
                snap.bytes,
                snap.batches
            );
            println!(
                "  exchange log up to seq {} (hash {})",
                snap.head.seq,
                if snap.head.hash.is_empty() {
                    "-"
                } else {
                    &snap.head.hash
                }
            );
            Ok(Exit::Ok)
        }
    }
}
