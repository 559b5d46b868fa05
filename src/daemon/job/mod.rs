//! One claimed file through decode, parse, validate and seal, in chunks.
//!
//! Each chunk is one SQLite transaction holding: the dedupe decisions of its
//! records, the rejections found, the batch sealed from its valid records
//! (with its exchange-log entry) and the file's checkpoint (records
//! consumed). A crash loses at most the chunk in progress, and a restart
//! skips the records already committed instead of starting over. The file
//! leaves `work/` only after its last chunk and its verdict are committed.
//!
//! Decoding, parsing and validation run on a reader thread per file, a
//! bounded channel ahead of the worker thread that does the SQLite work, so
//! the two overlap on two cores. The reader never touches state; only what
//! the worker committed counts as consumed.
//!
//! Here: the orchestration of one file (`process`). Beside it: `reader`
//! (the reader thread), `chunk` (the chunk transaction), `verdict` (the
//! receipt or report, the verdict and the move out of `work/`),
//! `lifecycle` (the file state machine: every change of a file's state),
//! `breaker` (attempts that killed the process) and `rows` (a SQL
//! source's page of rows, through the same chunks as a file's records).

use std::sync::Arc;

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};

use super::read::{self, ReadOptions};
use crate::config::{BatchLimits, DatasetConfig};
use crate::parse::FileFault;
use crate::report::ReadNotes;
use crate::spool::{Spool, original_name};
use crate::state::{
    self, StoreError,
    files::{self, Counts},
};
use crate::validate::DatasetSchema;

mod breaker;
mod chunk;
pub mod lifecycle;
mod reader;
pub mod rows;
#[cfg(test)]
mod tests;
mod verdict;

pub(super) use breaker::end as end_attempt;
pub use breaker::{Deferred, died_on};
use chunk::{Chunks, run_chunks};
use reader::{READ_AHEAD, Read, read_ahead};
use verdict::{Ending, finish, finish_move, outcome_of};

/// Everything a dataset's worker needs to process its files.
pub struct DatasetCtx {
    pub dataset: DatasetConfig,
    pub schema: Arc<DatasetSchema>,
    pub sender: String,
    pub tz: FixedOffset,
    pub batch: BatchLimits,
    pub chunk_records: u64,
    /// `[state] cache_mib`: the page cache of the connection that seals.
    pub cache_mib: u32,
    pub read: ReadOptions,
    pub paths: Spool,
    /// Called after each commit that sealed a batch (wakes the forwarder).
    pub on_sealed: Arc<dyn Fn() + Send + Sync>,
    /// Checked between chunks: true once a drain was asked for.
    pub stopping: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Intake pauses between chunks while the outbox is over its
    /// high-water mark.
    pub gate: Arc<super::backpressure::Gate>,
    /// Cluster mode (docs/cluster.md "Batch ids"): a claimed file's
    /// batches get ids derived from the file (`seal::deterministic_batch_id`),
    /// and close only by size or after `chunk_records` records without one,
    /// never by age, so another node sealing the same file seals the same
    /// batches.
    pub deterministic_ids: bool,
    /// Cluster mode: the files this node holds a claim lease on
    /// (`cluster::lease`). A file this node no longer holds — another node
    /// took it over — is abandoned before the next chunk commit or the
    /// verdict, its row marked `taken_over` (docs/cluster.md).
    pub claims: Option<crate::cluster::lease::Held>,
    /// The index of this dataset's sealed keys not yet merged into
    /// `record_state` (`state::recent`), for this context's connection:
    /// each thread that seals has a context, and so an index, of its own.
    pub keys: std::sync::Mutex<crate::state::recent::RecentKeys>,
}

impl DatasetCtx {
    /// Whether this node may go on with `work_name`: always on a single
    /// host; in cluster mode while it holds the file's lease
    /// (`Held::confirm`).
    pub(crate) fn still_holds(&self, work_name: &str) -> bool {
        self.claims
            .as_ref()
            .is_none_or(|h| h.confirm(&self.dataset.name, work_name, &*self.stopping))
    }
}

/// How a file's processing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done {
        counts: Counts,
    },
    Rejected {
        counts: Counts,
    },
    Duplicate {
        of: i64,
    },
    /// Left in `work/` for the next start (drain asked for mid-file).
    Interrupted,
    /// Could not be read; left where it was.
    Unreadable(String),
    /// Cluster mode: another node holds the file's lease (it took the file
    /// over); left to that node, this node's row marked `taken_over`.
    TakenOver,
}

/// Processes (or resumes) the file `work/<work_name>`.
pub fn process(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    work_name: &str,
) -> Result<Outcome, StoreError> {
    let path = ctx.paths.claimed(work_name);
    let name = original_name(work_name).to_string();
    let ds = ctx.dataset.name.as_str();
    let existing = files::by_work_name(conn, work_name)?;
    if !ctx.still_holds(work_name) {
        return taken_over(conn, ctx, existing.as_ref());
    }
    if let Some(row) = &existing
        && row.state.is_final()
    {
        // The verdict was committed but the move out of work/ was not
        // (or the return of a file that changed under us, see `changed`).
        if !crate::daemon::changed::return_if_changed(
            &path,
            &ctx.paths.inbox,
            &row.name,
            row.sha256.as_deref(),
        )
        .map_err(StoreError::at(&path))?
        {
            finish_move(ctx, row, &path)?;
        }
        return Ok(outcome_of(row));
    }
    // Recorded before any work on the file, so that a file that kills the
    // process is known at the next start, whatever part of the work died.
    if let breaker::Attempt::SetAside { dead } =
        breaker::begin(conn, ctx, work_name, existing.as_ref())?
    {
        return breaker::set_aside(conn, ctx, work_name, existing, dead);
    }
    // The identity pass comes before the first commit, so that a new file
    // costs one transaction (claim + identity) rather than two.
    let (id, fault) = match read::identify(&path, &name, &ctx.read) {
        Ok(x) => x,
        Err(e) => return Ok(Outcome::Unreadable(e.to_string())),
    };
    let row = match existing {
        Some(row) if row.sha256.as_deref() != Some(id.sha256.as_str()) => {
            // A claimed file is immutable; if its bytes changed under us,
            // its checkpoint is meaningless. Reject it rather than guess.
            let fault = "文件在处理期间被修改（内容摘要改变），已停止处理";
            return finish(conn, ctx, row.id, &path, &id, Ending::fault(fault.into()));
        }
        Some(row) if row.duplicate_of.is_some() => {
            return finish(conn, ctx, row.id, &path, &id, Ending::Duplicate);
        }
        Some(row) if row.state == files::FileState::TakenOver => {
            // Cluster mode: taken over by another node, and now this
            // node's again (that one died too): on from this node's
            // checkpoint, with the same batch ids (docs/cluster.md).
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            lifecycle::take_back(&tx, &row)?;
            tx.commit()?;
            files::by_id(conn, row.id)?.unwrap_or(row)
        }
        Some(row) => row,
        None => {
            let now = state::now_text(ctx.tz);
            let claim = lifecycle::Claim {
                dataset: ds,
                name: &name,
                work_name,
                sha256: &id.sha256,
                size: id.size,
                format: id.format_name(),
                encoding: Some(id.encoding_name()),
                claimed_at: &now,
            };
            if let Some(first) = files::first_with_sha(conn, ds, &id.sha256, -1)? {
                // A file whose content was already received: a receipt
                // naming the first file, no records. The row is committed
                // before the receipt is written, so a crash in between is
                // finished by the next start under the same name.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let file_id = lifecycle::claim_duplicate(&tx, &claim, first.id)?;
                tx.commit()?;
                return finish(conn, ctx, file_id, &path, &id, Ending::Duplicate);
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let file_id = lifecycle::claim(&tx, ctx.tz, &claim)?;
            tx.commit()?;
            files::by_id(conn, file_id)?.expect("row just inserted")
        }
    };
    if let Some(fault) = fault {
        return finish(conn, ctx, row.id, &path, &id, Ending::fault(fault));
    }
    if row.records_done == 0 {
        match read::precheck_document(&path, &id, &ctx.read) {
            Ok(None) => {}
            Ok(Some(f)) | Err(f) => {
                let fault = Ending::fault(fault_text(&f));
                return finish(conn, ctx, row.id, &path, &id, fault);
            }
        }
    }
    // Parsing and validation run on a reader thread, one bounded channel
    // ahead of this one, which does the SQLite work: on two cores the
    // two halves overlap. Checkpoints still count only what this thread
    // committed, so a crash loses at most the chunk in progress.
    let skip = row.records_done as u64;
    // What the reader learnt beside the records (ignored columns, blank
    // rows), for the receipt; complete once the reader has sent `End`.
    let notes = std::sync::Mutex::new(ReadNotes::default());
    let chunks = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(READ_AHEAD);
        let (path, id, schema, opts, notes) = (&path, &id, &*ctx.schema, &ctx.read, &notes);
        std::thread::Builder::new()
            .name(format!("reader-{ds}"))
            .spawn_scoped(scope, move || {
                read_ahead(path, id, opts, schema, skip, tx, notes)
            })
            .map_err(StoreError::at(path))?;
        // The file could not be opened, or ended while skipping: either way
        // it finishes with that fault, as before anything was committed.
        let skipped = match rx.recv() {
            Ok(Read::Opened { skipped }) => skipped,
            Ok(Read::Fault(f)) => return Ok(Chunks::Finished(Some(fault_text(&f)))),
            _ => panic!("the record reader stopped before opening the file"),
        };
        if skip > 0 {
            tracing::info!(dataset = ds, file = %name, skipped = skip, "resuming file: records already committed are skipped");
        }
        // `rx` moves in and is dropped when run_chunks returns, which
        // unblocks the reader (its next send fails) before the scope joins it.
        run_chunks(conn, ctx, &row, rx, skipped, None)
    })?;
    match chunks {
        // The verdict only while this node still holds the file.
        Chunks::Finished(_) if !ctx.still_holds(work_name) => taken_over(conn, ctx, Some(&row)),
        Chunks::Finished(fault) => {
            let notes = notes.into_inner().unwrap_or_else(|p| p.into_inner());
            let ending = Ending::Read {
                fault,
                notes: &notes,
            };
            finish(conn, ctx, row.id, &path, &id, ending)
        }
        Chunks::Interrupted => Ok(Outcome::Interrupted),
        Chunks::TakenOver => taken_over(conn, ctx, Some(&row)),
    }
}

/// A file another node took over: this node's row of it, if it has one
/// still in progress, becomes `taken_over` (with its entry); the file is
/// left alone.
fn taken_over(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    row: Option<&files::FileRow>,
) -> Result<Outcome, StoreError> {
    let Some(row) = row else {
        return Ok(Outcome::TakenOver);
    };
    // The row as committed (a chunk may have moved its checkpoint).
    let row = files::by_id(conn, row.id)?.unwrap_or_else(|| row.clone());
    if row.state.in_progress() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        lifecycle::taken_over(&tx, ctx.tz, &row)?;
        tx.commit()?;
        tracing::warn!(dataset = %row.dataset, file = %crate::oneline::escape(&row.name), records_done = row.records_done, "another node took this file over; this node leaves it to that node");
    }
    Ok(Outcome::TakenOver)
}

/// Cluster mode, at start: the files this node was reading that left
/// `work/` while it was away — another node took them over and finished
/// them. Handed to the worker, which marks their rows `taken_over`.
/// None on a single host (`shared` false).
pub(crate) fn gone_from_work(
    conn: &Connection,
    shared: bool,
    dataset: &str,
    paths: &Spool,
) -> Result<Vec<String>, StoreError> {
    if !shared {
        return Ok(Vec::new());
    }
    Ok(files::in_progress(conn, dataset)?
        .into_iter()
        .map(|f| f.work_name)
        .filter(|w| !paths.claimed(w).exists())
        .collect())
}

fn fault_text(f: &FileFault) -> String {
    f.to_string()
}
