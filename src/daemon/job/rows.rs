//! A page of a SQL source's rows (docs/sql-sources.md) through the same
//! chunks as a file's records: validation, dedupe, sealing, rejections
//! and the exchange log are the file path's own.
//!
//! A page is a `file` row of format `sql`, named after its poll
//! (`<dataset>-<poll time>-<page>`): claimed with its `file_claimed`
//! entry, checkpointed chunk by chunk — each chunk's transaction also
//! moves the source's watermark (`Committing`) — and given its verdict
//! with a receipt in `done/` or a rejection report in `rejected/` under
//! its name, as a file's. There is no file to move: the row's verdict is
//! the page's end. A page a crash left unfinished gets its verdict at the
//! source's next start (`finish_page`), for the rows it committed; the
//! rest are read again from the watermark.

use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior};

use super::chunk::{Chunks, Committing, run_chunks};
use super::lifecycle::{self, Why};
use super::reader::{self, GROUP, Read};
use super::{DatasetCtx, Outcome};
use crate::parse::RawRecord;
use crate::report::{self, BatchRef, FileSummary};
use crate::state::{self, StoreError, files};

/// The `format` of a page's file row.
pub const FORMAT: &str = "sql";

/// One page of rows, in the source's order.
pub struct Page<'a> {
    /// The name its receipt or report gets.
    pub name: &'a str,
    /// SHA-256 of the page's rows (their canonical JSON, in order).
    pub sha256: &'a str,
    /// The size of that JSON, in bytes.
    pub size: u64,
    pub records: Vec<RawRecord>,
}

/// Takes a page: claims it, runs its records through the chunks (with
/// `committing` in each chunk's transaction), then gives its verdict.
pub fn take_page(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    page: Page<'_>,
    committing: Committing<'_>,
) -> Result<Outcome, StoreError> {
    let now = state::now_text(ctx.tz);
    let work_name = format!("{}~{}", crate::seal::new_batch_id(), page.name);
    let claim = lifecycle::Claim {
        dataset: &ctx.dataset.name,
        name: page.name,
        work_name: &work_name,
        sha256: page.sha256,
        size: page.size,
        format: FORMAT,
        encoding: None,
        claimed_at: &now,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let file_id = lifecycle::claim(&tx, ctx.tz, &claim)?;
    tx.commit()?;
    let row = files::by_id(conn, file_id)?.expect("row just inserted");
    let (tx, rx) = mpsc::channel();
    let mut records = page.records.into_iter().peekable();
    while records.peek().is_some() {
        let group = records
            .by_ref()
            .take(GROUP)
            .map(|raw| reader::check(&ctx.schema, raw))
            .collect();
        let _ = tx.send(Read::Items(group));
    }
    let _ = tx.send(Read::End);
    // Interrupted (a drain between chunks) or not, the verdict covers the
    // rows committed; the others are above the watermark and read again.
    match run_chunks(conn, ctx, &row, rx, 0, Some(committing))? {
        Chunks::Finished(_) | Chunks::Interrupted | Chunks::TakenOver => {
            finish_page(conn, ctx, file_id)
        }
    }
}

/// A page's verdict: its receipt or report written under its name, then
/// the verdict committed with its exchange-log entry.
pub fn finish_page(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    file_id: i64,
) -> Result<Outcome, StoreError> {
    let row = files::by_id(conn, file_id)?.expect("a page's row exists");
    let sha256 = row.sha256.clone().unwrap_or_default();
    let why = Why::Read {
        sha256: &sha256,
        fault: None,
        changed: None,
    };
    let state = why.state(&row.counts);
    let dir = ctx.paths.verdict_dir(state);
    let final_name = lifecycle::reserve_final_name(conn, &row, dir)?;
    let now = state::now_text(ctx.tz);
    let claimed_at = files::claimed_at(conn, file_id)?;
    let batches = files::batches_of(conn, file_id)?
        .into_iter()
        .map(|(batch_id, count, digest)| BatchRef {
            batch_id,
            count,
            digest,
        })
        .collect();
    let summary = FileSummary {
        file: &row.name,
        dataset: &ctx.dataset.name,
        sha256: Some(&sha256),
        size: None,
        format: Some(FORMAT),
        encoding: None,
        verdict: state.as_str(),
        counts: row.counts,
        fault: None,
        duplicate_of: None,
        batches,
        claimed_at: &claimed_at,
        finished_at: &now,
        warnings: Vec::new(),
        ignored_columns: Vec::new(),
        blank_rows: 0,
        key_title: report::key_title(&ctx.schema),
    };
    if state == files::FileState::Rejected {
        let errors = files::rejections_of(conn, file_id)?;
        report::write_report(dir, &final_name, &summary, &errors).map_err(StoreError::at(dir))?;
    } else {
        report::write_receipt(dir, &final_name, &summary).map_err(StoreError::at(dir))?;
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    lifecycle::verdict(&tx, ctx.tz, &row, &final_name, &why, &now)?;
    tx.commit()?;
    let c = &row.counts;
    tracing::info!(
        dataset = %ctx.dataset.name, page = %row.name, verdict = %state,
        received = c.received, sealed = c.sealed, skipped = c.skipped, stale = c.stale,
        rejected = c.rejected, "SQL source page processed"
    );
    Ok(match state {
        files::FileState::Rejected => Outcome::Rejected { counts: row.counts },
        _ => Outcome::Done { counts: row.counts },
    })
}
