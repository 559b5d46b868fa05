//! `fepd batches`: outbox inspection and operator actions. Actions are
//! `crate::outbox` transitions (retry, park), in one transaction on the
//! state database with their exchange-log entries; the running daemon
//! picks them up on its next pass.

use rusqlite::TransactionBehavior;

use crate::cli::Exit;
use crate::config::Config;
use crate::outbox::{self, BatchState};
use crate::state::batches;
use crate::state::log::Parking;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List batches, oldest first.
    List {
        /// Only batches in this state (sealed, exported, delivered, parked, split,
        /// handed_off).
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
    /// Resend parked batches: one by id, or every parked batch of a
    /// dataset (`--dataset D`) or of all (`--all`). Logged with `--by`.
    Retry {
        #[arg(required_unless_present_any = ["dataset", "all"], conflicts_with_all = ["dataset", "all", "state"])]
        id: Option<String>,
        #[arg(long, conflicts_with = "all")]
        dataset: Option<String>,
        /// The state of the batches to resend (only `parked` can be).
        #[arg(long, value_parser = ["parked"])]
        state: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Park pending batches (stop sending them) with a reason: one by id,
    /// or every pending batch of a dataset (`--dataset D`) or of all
    /// (`--all`), optionally only those `sealed` or `exported`.
    Park {
        #[arg(required_unless_present_any = ["dataset", "all"], conflicts_with_all = ["dataset", "all", "state"])]
        id: Option<String>,
        #[arg(long, default_value = "parked by operator")]
        reason: String,
        #[arg(long, conflicts_with = "all")]
        dataset: Option<String>,
        #[arg(long, value_parser = ["sealed", "exported"])]
        state: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

pub fn run(cfg: &Config, cmd: &Command) -> anyhow::Result<Exit> {
    let tz = cfg.tz();
    let db = cfg.state_db();
    // `list` and `show` only read: a read-only open, which neither creates
    // the state database nor migrates one an older release wrote (that is
    // the daemon's to do). Before the daemon first ran there is no batch.
    let reader = || -> anyhow::Result<Option<rusqlite::Connection>> {
        Ok(match db.exists() {
            true => Some(crate::state::open_read_only(&db)?),
            false => None,
        })
    };
    match cmd {
        Command::List {
            state,
            dataset,
            limit,
            json,
        } => {
            let conn = reader()?;
            let rows = match (state.as_deref().map(BatchState::parse), &conn) {
                (_, None) => Vec::new(),
                // A word that names no state matches no batch.
                (Some(None), _) => Vec::new(),
                (st, Some(conn)) => batches::list(conn, st.flatten(), dataset.as_deref(), *limit)?,
            };
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
            let Some(conn) = reader()? else {
                eprintln!("no batch {id} (no state database yet: {})", db.display());
                return Ok(Exit::Findings);
            };
            let Some(b) = batches::get(&conn, id)? else {
                eprintln!("no batch {id}");
                return Ok(Exit::Findings);
            };
            if *body {
                let Some(body) = batches::body(&conn, id)? else {
                    eprintln!(
                        "batch {id} is {}; its body was deleted by retention ([retention] batch_bodies) — the batch row, its records' keys and its exchange-log entries remain",
                        b.state
                    );
                    return Ok(Exit::Findings);
                };
                println!("{}", String::from_utf8_lossy(&body));
            } else {
                println!("{}", serde_json::to_string_pretty(&b)?);
            }
            Ok(Exit::Ok)
        }
        Command::Retry {
            id,
            dataset,
            state: _,
            all: _,
        } => {
            let by = crate::cli::operator::name();
            let mut conn = crate::state::open(&db)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let targets = match targets(
                cfg,
                &tx,
                id.as_deref(),
                dataset.as_deref(),
                &[BatchState::Parked],
            )? {
                Ok(t) => t,
                Err(exit) => return Ok(exit),
            };
            let mut done = 0;
            for b in &targets {
                if !outbox::retry(&tx, tz, b, by)? {
                    eprintln!(
                        "batch {} is {}, not parked: nothing to retry",
                        b.batch_id, b.state
                    );
                    return Ok(Exit::Findings);
                }
                done += 1;
            }
            tx.commit()?;
            match id {
                Some(id) => println!("batch {id} queued for resending (by {by})"),
                None => println!("{done} parked batch(es) queued for resending (by {by})"),
            }
            Ok(Exit::Ok)
        }
        Command::Park {
            id,
            reason,
            dataset,
            state,
            all: _,
        } => {
            let by = crate::cli::operator::name();
            let states: &[BatchState] = match state.as_deref() {
                Some("sealed") => &[BatchState::Sealed],
                Some("exported") => &[BatchState::Exported],
                _ => &[BatchState::Sealed, BatchState::Exported],
            };
            let mut conn = crate::state::open(&db)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let targets = match targets(cfg, &tx, id.as_deref(), dataset.as_deref(), states)? {
                Ok(t) => t,
                Err(exit) => return Ok(exit),
            };
            let mut done = 0;
            for b in &targets {
                if !outbox::park(&tx, tz, b, Parking::Operator { reason, by })? {
                    eprintln!(
                        "batch {} is {}, not pending: cannot park it",
                        b.batch_id, b.state
                    );
                    return Ok(Exit::Findings);
                }
                done += 1;
            }
            tx.commit()?;
            match id {
                Some(id) => println!("batch {id} parked (by {by})"),
                None => println!("{done} batch(es) parked (by {by})"),
            }
            Ok(Exit::Ok)
        }
    }
}

/// The batches an action applies to: the one named (whatever its state;
/// the action says if it cannot apply), or those of `dataset` (every
/// dataset when `None`, i.e. `--all`) in one of `states`. `Err` carries
/// the exit for an unknown batch or dataset, already explained.
fn targets(
    cfg: &Config,
    conn: &rusqlite::Connection,
    id: Option<&str>,
    dataset: Option<&str>,
    states: &[BatchState],
) -> anyhow::Result<Result<Vec<batches::BatchRow>, Exit>> {
    if let Some(id) = id {
        return Ok(match batches::get(conn, id)? {
            Some(b) => Ok(vec![b]),
            None => {
                eprintln!("no batch {id}");
                Err(Exit::Findings)
            }
        });
    }
    if let Some(d) = dataset
        && cfg.dataset(d).is_none()
        && batches::list(conn, None, Some(d), 1)?.is_empty()
    {
        let known: Vec<&str> = cfg.datasets.iter().map(|d| d.name.as_str()).collect();
        eprintln!("no dataset {d:?} (configured: {})", known.join(", "));
        return Ok(Err(Exit::Findings));
    }
    Ok(Ok(batches::select(conn, states, dataset)?))
}
