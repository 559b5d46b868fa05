//! `fepd users`: the web console's named users (README "Web console"),
//! kept in the state database — add, new password, disable (or enable),
//! list. Passwords come from a file (`--password-file`), never from the
//! command line; each change is a `user_changed` exchange-log entry with
//! `--by`.

use std::path::PathBuf;

use crate::cli::Exit;
use crate::config::Config;
use crate::console::access::{Role, check_password, hash_password};
use crate::state::log::LogEntry;
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
    let tz = cfg.tz();
    let by = crate::cli::operator::name();
    let now = crate::state::now_text(tz);
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
                    "{:<20} {:<10} {:<8} {}",
                    u.name,
                    u.role,
                    state,
                    u.datasets.join(",")
                );
            }
        }
        return Ok(Exit::Ok);
    }
    let mut conn = crate::state::open(&cfg.state_db())?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (name, change, role) = match cmd {
        Command::Add {
            name,
            role,
            datasets,
            password_file,
        } => {
            let pw = password(password_file)?;
            if let Err(why) = check_password(&pw) {
                eprintln!("{why}");
                return Ok(Exit::Findings);
            }
            let role = Role::parse(role).unwrap_or(Role::Auditor);
            if role == Role::DataStaff && datasets.is_empty() {
                eprintln!("a data_staff user needs --datasets (the datasets they see)");
                return Ok(Exit::Findings);
            }
            if let Some(d) = datasets.iter().find(|d| cfg.dataset(d).is_none()) {
                eprintln!("no dataset {d:?} in the config");
                return Ok(Exit::Findings);
            }
            let hash = hash_password(&pw).map_err(anyhow::Error::msg)?;
            if !users::add(&tx, name, role.as_str(), datasets, &hash, &now)? {
                eprintln!("user {name} exists (fepd users passwd changes the password)");
                return Ok(Exit::Findings);
            }
            (name, "added", role.as_str().to_string())
        }
        Command::Passwd {
            name,
            password_file,
        } => {
            let pw = password(password_file)?;
            if let Err(why) = check_password(&pw) {
                eprintln!("{why}");
                return Ok(Exit::Findings);
            }
            let hash = hash_password(&pw).map_err(anyhow::Error::msg)?;
            if !users::set_hash(&tx, name, &hash, &now)? {
                eprintln!("no user {name}");
                return Ok(Exit::Findings);
            }
            let role = users::get(&tx, name)?.map(|u| u.role).unwrap_or_default();
            (name, "password", role)
        }
        Command::Disable { name, enable } => {
            if !users::set_disabled(&tx, name, !enable, &now)? {
                eprintln!("no user {name}");
                return Ok(Exit::Findings);
            }
            let role = users::get(&tx, name)?.map(|u| u.role).unwrap_or_default();
            (name, if *enable { "enabled" } else { "disabled" }, role)
        }
        Command::List { .. } => unreachable!("answered above"),
    };
    crate::state::log::append(
        &tx,
        tz,
        LogEntry::UserChanged {
            user: name,
            change,
            role: &role,
            by,
        },
    )?;
    tx.commit()?;
    println!("user {name}: {change} (by {by})");
    Ok(Exit::Ok)
}
