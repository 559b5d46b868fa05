//! `fepd replay` (补传): re-sends records already delivered, as new
//! batches marked `replayOf` (docs/protocol.md §3 *Replays*), chosen by
//! delivery window, batch id or source file. Either every batch asked for
//! is replayed or none: where retention already deleted a body, the
//! command says exactly which deliveries it cannot replay and from when it
//! can, and sends nothing.

use crate::audit::{End, parse_bound};
use crate::cli::Exit;
use crate::config::Config;
use crate::outbox::{BatchState, Unreplayable};
use crate::state::batches::{self, BatchRow};
use crate::state::replay as q;

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
    let chosen = match choose(&conn, cfg, a)? {
        Ok(c) => c,
        Err(why) => {
            eprintln!("fepd replay: {why}");
            return Ok(Exit::Failed);
        }
    };
    if chosen.is_empty() {
        println!("nothing to replay: no delivered batch matches");
        return Ok(Exit::Findings);
    }
    // All or nothing: a replay with holes would look complete to the
    // library team that asked for it.
    let mut pruned = Vec::new();
    for b in &chosen {
        if !q::has_body(&conn, b.seq)? {
            pruned.push(b);
        }
    }
    if !pruned.is_empty() {
        let when = |b: &BatchRow| b.delivered_at.clone().unwrap_or_default();
        let first = pruned.iter().map(|b| when(b)).min().unwrap_or_default();
        let last = pruned.iter().map(|b| when(b)).max().unwrap_or_default();
        eprintln!(
            "fepd replay: refused, nothing sent: the bodies of {} of the {} batches asked for were deleted by retention ([retention] batch_bodies = {}): deliveries from {first} to {last} cannot be replayed.",
            pruned.len(),
            chosen.len(),
            cfg.retention.batch_bodies
        );
        let datasets: std::collections::BTreeSet<&str> =
            pruned.iter().map(|b| b.dataset.as_str()).collect();
        for d in datasets {
            match q::first_kept_delivery(&conn, d)? {
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

/// The delivered batches the request names, in the route's order (seal order); `Err`
/// with the reason for a request that cannot be met as asked.
fn choose(
    conn: &rusqlite::Connection,
    cfg: &Config,
    a: &Args,
) -> anyhow::Result<Result<Vec<BatchRow>, String>> {
    if let Some(d) = &a.dataset
        && cfg.dataset(d).is_none()
    {
        return Ok(Err(format!("unknown dataset {d:?}")));
    }
    if let Some(name) = &a.file {
        let found = q::delivered_of_file(conn, name, a.dataset.as_deref())?;
        return Ok(Ok(originals(conn, found)?));
    }
    if !a.batch.is_empty() {
        let mut out = Vec::new();
        for id in &a.batch {
            let Some(b) = batches::get(conn, id)? else {
                return Ok(Err(format!("no batch {id}")));
            };
            match b.state {
                BatchState::Delivered => out.push(b),
                BatchState::Split => {
                    for h in q::halves_of(conn, id)? {
                        if h.state != BatchState::Delivered {
                            return Ok(Err(format!(
                                "batch {id} was split and its half {} is {}, not delivered: only delivered records are replayed",
                                h.batch_id,
                                h.state.as_str()
                            )));
                        }
                        out.push(h);
                    }
                }
                other => {
                    return Ok(Err(format!(
                        "batch {id} is {}, not delivered: only delivered records are replayed (`fepd batches retry` resends a parked batch)",
                        other.as_str()
                    )));
                }
            }
        }
        return Ok(Ok(out));
    }
    let (Some(d), Some(since), Some(until)) = (&a.dataset, &a.since, &a.until) else {
        return Ok(Err("--dataset needs --since and --until".into()));
    };
    let tz = cfg.tz();
    let since = match parse_bound(since, End::Start, tz) {
        Ok(t) => t,
        Err(e) => return Ok(Err(format!("--since: {e}"))),
    };
    let until = match parse_bound(until, End::End, tz) {
        Ok(t) => t,
        Err(e) => return Ok(Err(format!("--until: {e}"))),
    };
    if until <= since {
        return Ok(Err("--until is before --since".into()));
    }
    let found = q::delivered_between(conn, d, since.timestamp(), until.timestamp())?;
    Ok(Ok(originals(conn, found)?))
}

/// `found` without the batches that are replays themselves: asking again
/// for a window or a file re-sends its records once, not once more per
/// earlier replay. (A replay named by `--batch` is replayed as asked.)
fn originals(conn: &rusqlite::Connection, found: Vec<BatchRow>) -> rusqlite::Result<Vec<BatchRow>> {
    let mut out = Vec::with_capacity(found.len());
    for b in found {
        if !q::is_replay(conn, &b.batch_id)? {
            out.push(b);
        }
    }
    Ok(out)
}
