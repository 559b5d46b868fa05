//! `fepd replay` (补传): re-sends records already delivered, as new
//! batches marked `replayOf` (docs/protocol.md §3 *Replays*), chosen by
//! delivery window, batch id or source file. Either every batch asked for
//! is replayed or none: where retention already deleted a body, the
//! command says exactly which deliveries it cannot replay and from when it
//! can, and sends nothing. The choice is `outbox::replay_request`'s, which
//! the console's 补传 by window or file makes too.

use crate::cli::Exit;
use crate::config::Config;
use crate::outbox::Unreplayable;
use crate::outbox::replay_request::{Refused, Request, choose, pruned};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["dataset", "batch", "file"])))]
pub struct Args {
    /// The dataset whose deliveries from --since to --until are replayed
    /// (with --file: only that dataset's file of that name).
    #[arg(long, conflicts_with = "batch")]
    dataset: Option<String>,
    /// Start of the delivery window: an RFC 3339 date-time or a date
    /// (yyyy-MM-dd, from its midnight); without an offset, in the
    /// configured timezone.
    #[arg(long, value_name = "T", requires = "dataset")]
    since: Option<String>,
    /// End of the delivery window, included (a date: the whole day).
    #[arg(long, value_name = "T", requires = "dataset")]
    until: Option<String>,
    /// Batches to replay, by id (a split batch: its halves).
    #[arg(long, value_name = "ID", num_args = 1.., conflicts_with = "file")]
    batch: Vec<String>,
    /// The batches sealed from the file dropped under this name (with
    /// --dataset, of that dataset only).
    #[arg(long, value_name = "NAME")]
    file: Option<String>,
    /// Why: kept in the exchange log with who asked (--by).
    #[arg(long)]
    reason: String,
}

pub fn run(cfg: &Config, a: &Args) -> anyhow::Result<Exit> {
    let tz = cfg.tz();
    let db = cfg.state_db();
    if !db.exists() {
        eprintln!(
            "fepd replay: no state database at {} (nothing was delivered yet)",
            db.display()
        );
        return Ok(Exit::Failed);
    }
    let mut conn = crate::state::open(&db)?;
    let request = match (&a.file, a.batch.is_empty(), &a.dataset) {
        (Some(name), _, dataset) => Request::File {
            name,
            dataset: dataset.as_deref(),
        },
        (None, false, _) => Request::Batches(&a.batch),
        (None, true, dataset) => Request::Window {
            dataset: dataset.as_deref().unwrap_or_default(),
            since: a.since.as_deref(),
            until: a.until.as_deref(),
        },
    };
    let chosen = match choose(&conn, tz, |d| cfg.dataset(d).is_some(), &request)? {
        Ok(c) => c,
        Err(why) => {
            eprintln!("fepd replay: {}", said(&why));
            return Ok(Exit::Failed);
        }
    };
    if chosen.is_empty() {
        println!("nothing to replay: no delivered batch matches");
        return Ok(Exit::Findings);
    }
    // All or nothing: a replay with holes would look complete to the
    // library team that asked for it.
    let pruned = pruned(&conn, &chosen)?;
    if !pruned.batches.is_empty() {
        let (first, last) = pruned.span();
        eprintln!(
            "fepd replay: refused, nothing sent: the bodies of {} of the {} batches asked for were deleted by retention ([retention] batch_bodies = {}): deliveries from {first} to {last} cannot be replayed.",
            pruned.batches.len(),
            chosen.len(),
            cfg.retention.batch_bodies
        );
        for (d, kept) in &pruned.kept_from {
            match kept {
                Some(t) => eprintln!("  {d}: bodies are kept for deliveries from {t} on"),
                None => eprintln!("  {d}: no delivered body is kept"),
            }
        }
        eprintln!(
            "  The records themselves are in the source files (done/, kept for [retention] done_files = {}): dropping those into the inbox again re-sends what changed; ask the library to re-apply unchanged records from its own store.",
            cfg.retention.done_files
        );
        return Ok(Exit::Failed);
    }
    let by = crate::cli::operator::name();
    let mut records = 0;
    let mut made = Vec::new();
    for b in &chosen {
        let id = match crate::outbox::replay_stored(&mut conn, tz, b, by, &a.reason)? {
            Ok(id) => id,
            Err(Unreplayable::BodyGone) => {
                anyhow::bail!("batch {}: its body was deleted while replaying", b.batch_id)
            }
            Err(Unreplayable::NotABody) => {
                anyhow::bail!("batch {}: its stored body is not a batch body", b.batch_id)
            }
        };
        records += b.count;
        println!("✓ {} → {id} ({} records)", b.batch_id, b.count);
        made.push(id);
    }
    println!(
        "{} batch(es), {records} record(s) sealed again as replays; fepd sends them in order (by {by}: {})",
        made.len(),
        a.reason
    );
    Ok(Exit::Ok)
}

/// A refusal as the command has always worded it.
fn said(why: &Refused) -> String {
    match why {
        Refused::UnknownDataset(d) => format!("unknown dataset {d:?}"),
        Refused::NoBatch(id) => format!("no batch {id}"),
        Refused::HalfNotDelivered { batch, half, state } => format!(
            "batch {batch} was split and its half {half} is {}, not delivered: only delivered records are replayed",
            state.as_str()
        ),
        Refused::NotDelivered { batch, state } => format!(
            "batch {batch} is {}, not delivered: only delivered records are replayed (`fepd batches retry` resends a parked batch)",
            state.as_str()
        ),
        Refused::WindowOpen => "--dataset needs --since and --until".into(),
        Refused::BadSince(e) => format!("--since: {e}"),
        Refused::BadUntil(e) => format!("--until: {e}"),
        Refused::WindowBackwards => "--until is before --since".into(),
    }
}
