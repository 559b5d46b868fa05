//! `fepd users`: the web console's named users (README "Web console"),
//! kept in the state database — add, new password, disable (or enable),
//! list, and the grant to see personal values in clear (`--reveal`).
//! Passwords come from a file (`--password-file`), never from the command
//! line; each change is a `user_changed` exchange-log entry with `--by`.

use std::path::PathBuf;

use crate::cli::Exit;
use crate::config::Config;
use crate::console::access::Role;
use crate::console::accounts::{self, Change};
use crate::state::users;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Add a user with a role (admin, auditor, operator, data_staff).
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "auditor", "operator", "data_staff"])]
        role: String,
        /// Data staff: the datasets they see, comma-separated.
        #[arg(long, value_delimiter = ',')]
        datasets: Vec<String>,
        /// File holding the password (its first line).
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// May see a rejected record's value in clear in the console (each
        /// reveal is logged).
        #[arg(long)]
        reveal: bool,
    },
    /// Grant (`--reveal`) or withdraw (`--no-reveal`) seeing personal
    /// values in clear in the console.
    Grant {
        name: String,
        #[arg(
            long,
            conflicts_with = "no_reveal",
            required_unless_present = "no_reveal"
        )]
        reveal: bool,
        #[arg(long)]
        no_reveal: bool,
    },
    /// Set a new password (which also ends a lock-out).
    Passwd {
        name: String,
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
    },
    /// Disable a user (`--enable` enables them again).
    Disable {
        name: String,
        #[arg(long)]
        enable: bool,
    },
    /// List the users.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// The password: the file's first line.
fn password(path: &PathBuf) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

pub fn run(cfg: &Config, cmd: &Command) -> anyhow::Result<Exit> {
    let by = crate::cli::operator::name();
    if let Command::List { json } = cmd {
        let db = cfg.state_db();
        let list = match db.exists() {
            true => users::list(&crate::state::open_read_only(&db)?)?,
            false => Vec::new(),
        };
        for u in &list {
            if *json {
                println!("{}", serde_json::to_string(u)?);
            } else {
                let state = match (u.disabled, u.locked_until_ms > crate::state::now_ms()) {
                    (true, _) => "disabled",
                    (false, true) => "locked",
                    _ => "active",
                };
                println!(
                    "{:<20} {:<10} {:<8} {:<6} {}",
                    u.name,
                    u.role,
                    state,
                    if u.reveal { "reveal" } else { "-" },
                    u.datasets.join(",")
                );
            }
        }
        return Ok(Exit::Ok);
    }
    let pw = match cmd {
        Command::Add { password_file, .. } | Command::Passwd { password_file, .. } => {
            password(password_file)?
        }
        _ => String::new(),
    };
    let change = match cmd {
        Command::Add {
            name,
            role,
            datasets,
            reveal,
            ..
        } => Change::Add {
            name,
            role: Role::parse(role).unwrap_or(Role::Auditor),
            datasets,
            password: &pw,
            reveal: *reveal,
        },
        Command::Grant {
            name, no_reveal, ..
        } => Change::Reveal {
            name,
            reveal: !no_reveal,
        },
        Command::Passwd { name, .. } => Change::Password {
            name,
            password: &pw,
        },
        Command::Disable { name, enable } => Change::Disabled {
            name,
            disabled: !enable,
        },
        Command::List { .. } => unreachable!("answered above"),
    };
    let mut conn = crate::state::open(&cfg.state_db())?;
    match accounts::apply(&mut conn, cfg, change, by)? {
        Ok(done) => {
            for change in done {
                println!("user {}: {change} (by {by})", change_name(cmd));
            }
            Ok(Exit::Ok)
        }
        Err(why) => {
            eprintln!("{}", why.english(change_name(cmd)));
            Ok(Exit::Findings)
        }
    }
}

fn change_name(cmd: &Command) -> &str {
    match cmd {
        Command::Add { name, .. }
        | Command::Grant { name, .. }
        | Command::Passwd { name, .. }
        | Command::Disable { name, .. } => name,
        Command::List { .. } => "",
    }
}
