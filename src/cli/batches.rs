//! `fepd batches`: outbox inspection and operator actions. Actions are
//! transactions on the state database with their exchange-log entry; the
//! running daemon picks them up on its next pass.

use rusqlite::TransactionBehavior;
use serde_json::json;

use crate::cli::Exit;
use crate::config::Config;
use crate::state::batches;
use crate::state::log::{self, Entry, Event};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List batches, oldest first.
    List {
        /// Only batches in this state (sealed, exported, delivered, parked, split).
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one batch; `--body` prints the exact wire body.
    Show {
        id: String,
        #[arg(long)]
        body: bool,
    },
    /// Resend a parked batch.
    Retry { id: String },
    /// Park a pending batch (stop sending it) with a reason.
    Park {
        id: String,
        #[arg(long, default_value = "parked by operator")]
        reason: String,
    },
}

pub fn run(cfg: &Config, cmd: &Command) -> anyhow::Result<Exit> {
    let tz = cfg
        .tz()
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(8 * 3600).expect("offset"));
    let mut conn = crate::state::open(&cfg.state_db())?;
    match cmd {
        Command::List {
            state,
            dataset,
            limit,
            json,
        } => {
            let rows = batches::list(&conn, state.as_deref(), dataset.as_deref(), *limit)?;
            if *json {
                for r in rows {
                    println!("{}", serde_json::to_string(&r)?);
                }
            } else {
                println!(
                    "{:<30} {:<14} {:<10} {:>6} {:>8}  {:<25}  last error",
                    "batch", "dataset", "state", "count", "attempts", "sealed at"
                );
                for r in rows {
                    println!(
                        "{:<30} {:<14} {:<10} {:>6} {:>8}  {:<25}  {}",
                        r.batch_id,
                        r.dataset,
                        r.state,
                        r.count,
                        r.attempts,
                        r.sealed_at,
                        r.last_error.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(Exit::Ok)
        }
        Command::Show { id, body } => {
            let Some(b) = batches::get(&conn, id)? else {
                eprintln!("no batch {id}");
                return Ok(Exit::Findings);
            };
            if *body {
                let body = batches::body(&conn, id)?.unwrap_or_default();
                println!("{}", String::from_utf8_lossy(&body));
            } else {
                println!("{}", serde_json::to_string_pretty(&b)?);
            }
            Ok(Exit::Ok)
        }
        Command::Retry { id } => {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(b) = batches::get(&tx, id)? else {
                eprintln!("no batch {id}");
                return Ok(Exit::Findings);
            };
            if !batches::requeue_parked(&tx, id)? {
                eprintln!("batch {id} is {}, not parked: nothing to retry", b.state);
                return Ok(Exit::Findings);
            }
            log::append(
                &tx,
                tz,
                Event::BatchRetried,
                Entry {
                    dataset: Some(&b.dataset),
                    batch: Some(id),
                    details: Some(json!({"previousError": b.last_error, "by": "operator"})),
                    ..Default::default()
                },
            )?;
            tx.commit()?;
            println!("batch {id} queued for resending");
            Ok(Exit::Ok)
        }
        Command::Park { id, reason } => {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(b) = batches::get(&tx, id)? else {
                eprintln!("no batch {id}");
                return Ok(Exit::Findings);
            };
            if !batches::park(&tx, id, reason)? {
                eprintln!("batch {id} is {}, not pending: cannot park it", b.state);
                return Ok(Exit::Findings);
            }
            log::append(
                &tx,
                tz,
                Event::BatchParked,
                Entry {
                    dataset: Some(&b.dataset),
                    batch: Some(id),
                    counts: Some(json!({"records": b.count})),
                    details: Some(json!({"reason": reason, "by": "operator"})),
                    ..Default::default()
                },
            )?;
            tx.commit()?;
            println!("batch {id} parked");
            Ok(Exit::Ok)
        }
    }
}
