//! A file's end (ARCHITECTURE.md, "A file leaves `work/` only after"):
//! its final name is reserved, its receipt or report written (temp, fsync,
//! rename), its verdict committed with its exchange-log entry, and only
//! then is it moved out of `work/` — or, if it changed after its claim,
//! back to the inbox as a new file (`daemon::changed`). A restart finishes
//! whichever step was left.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::lifecycle::{self, Why};
use super::{DatasetCtx, Outcome};
use crate::daemon::changed::{self, Change};
use crate::daemon::read::Identity;
use crate::report::{self, BatchRef, DuplicateOf, FileSummary, ReadNotes};
use crate::state::StoreError;
use crate::state::files::{self, Counts, FileRow, FileState};
use crate::state::{self};

/// How a file's reading ended.
pub(super) enum Ending<'a> {
    /// Its records were read to the end, or to the file fault that ended
    /// them (or kept them from being read at all).
    Read {
        fault: Option<String>,
        notes: &'a ReadNotes,
    },
    /// Its bytes are an earlier file's (`duplicate_of` of its row): a
    /// receipt naming that file, no records.
    Duplicate,
}

impl Ending<'_> {
    /// A file fault found before any record was read.
    pub(super) fn fault(fault: String) -> Ending<'static> {
        static NO_NOTES: ReadNotes = ReadNotes {
            ignored_columns: Vec::new(),
            blank_rows: 0,
        };
        Ending::Read {
            fault: Some(fault),
            notes: &NO_NOTES,
        }
    }
}

/// Writes the receipt or report, commits the verdict, then moves the file
/// out of `work/`.
pub(super) fn finish(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    file_id: i64,
    path: &Path,
    id: &Identity,
    ending: Ending<'_>,
) -> Result<Outcome, StoreError> {
    let ds = ctx.dataset.name.as_str();
    let row = files::by_id(conn, file_id)?.expect("file row exists while processing");
    let now = state::now_text(ctx.tz);
    let (fault, notes, first) = match ending {
        Ending::Read { fault, notes } => (fault, Some(notes), None),
        Ending::Duplicate => {
            let first_id = row
                .duplicate_of
                .expect("a duplicate row names the first file");
            let first = files::by_id(conn, first_id)?.expect("the first file's row exists");
            let first_claimed = files::claimed_at(conn, first.id)?;
            (None, None, Some((first, first_claimed)))
        }
    };
    let why_state = lifecycle::verdict_state(first.is_some(), fault.is_some(), &row.counts);
    let dir = ctx.paths.verdict_dir(why_state);
    let final_name = lifecycle::reserve_final_name(conn, &row, dir)?;
    // A duplicate has no records, batches or rejections of its own.
    let (batch_refs, errors, claimed_at) = match first {
        Some(_) => (Vec::new(), Vec::new(), now.clone()),
        None => (
            files::batches_of(conn, file_id)?
                .into_iter()
                .map(|(batch_id, count, digest)| BatchRef {
                    batch_id,
                    count,
                    digest,
                })
                .collect::<Vec<_>>(),
            files::rejections_of(conn, file_id)?,
            files::claimed_at(conn, file_id)?,
        ),
    };
    let batch_refs_empty = batch_refs.is_empty();
    let mut warnings = Vec::new();
    let (mut change, mut returned_as) = (None, None);
    match (&first, notes) {
        (Some((first, _)), _) => warnings.push(format!(
            "与已接收的文件 {} 内容完全相同，未重复发送",
            first.name
        )),
        (None, notes) => {
            if row.counts.received == 0 && fault.is_none() {
                warnings.push("文件不含任何记录（0 条）".to_string());
            }
            warnings.extend(notes.map(ReadNotes::warnings).unwrap_or_default());
            // A file that changed since its identity pass goes back to the
            // inbox as a new file; this verdict covers what was identified.
            change =
                changed::detect(path, row.sha256.as_deref(), id).map_err(StoreError::at(path))?;
            returned_as = change
                .as_ref()
                .map(|_| changed::return_name(&ctx.paths.inbox, &row.name));
            if let (Some(c), Some(n)) = (&change, &returned_as) {
                warnings.push(c.warning(n));
            }
        }
    }
    let summary = FileSummary {
        file: &row.name,
        dataset: ds,
        sha256: Some(&id.sha256),
        size: Some(id.size),
        format: Some(id.format_name()),
        // XLSX is not a text file: no encoding to name.
        encoding: id.detected.map(|d| d.encoding.name()),
        verdict: why_state.as_str(),
        counts: match first {
            Some(_) => Counts::default(),
            None => row.counts,
        },
        fault: fault.as_deref(),
        duplicate_of: first.as_ref().map(|(f, claimed_at)| DuplicateOf {
            file: &f.name,
            claimed_at,
            final_name: f.final_name.as_deref(),
        }),
        batches: batch_refs,
        claimed_at: &claimed_at,
        finished_at: &now,
        warnings,
        ignored_columns: notes.map(|n| n.ignored_columns.clone()).unwrap_or_default(),
        blank_rows: notes.map_or(0, |n| n.blank_rows),
        key_title: match first {
            Some(_) => String::new(),
            None => report::key_title(&ctx.schema),
        },
    };
    if why_state == FileState::Rejected {
        report::write_report(dir, &final_name, &summary, &errors).map_err(StoreError::at(dir))?;
    } else {
        report::write_receipt(dir, &final_name, &summary).map_err(StoreError::at(dir))?;
    }
    let why = match &first {
        Some((first, _)) => Why::Duplicate {
            sha256: &id.sha256,
            first,
        },
        None => Why::Read {
            sha256: &id.sha256,
            fault: fault.as_deref(),
            changed: change
                .as_ref()
                .zip(returned_as.as_deref())
                .map(|(c, n)| c.details(n)),
        },
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let state = lifecycle::verdict(&tx, ctx.tz, &row, &final_name, &why, &now)?;
    debug_assert_eq!(
        state, why_state,
        "the verdict's folder was chosen for its state"
    );
    tx.commit()?;
    let moved = FileRow {
        state,
        final_name: Some(final_name),
        ..row
    };
    if let Some((first, _)) = &first {
        tracing::info!(dataset = ds, file = %moved.name, first = %first.name, "duplicate file: same content already received, nothing re-sent");
        finish_move(ctx, &moved, path)?;
        return Ok(outcome_of(&moved));
    }
    // Refusals the library sent while the file was still being read are
    // reported now that it has its folder (later ones by the forwarder).
    if !batch_refs_empty
        && let Err(e) =
            report::library::write_for_file(conn, &ctx.paths.root, Some(&ctx.schema), file_id)
    {
        tracing::error!(dataset = ds, file = %moved.name, error = %e, "cannot write the library-refusal report");
    }
    match &returned_as {
        Some(n) => {
            // A grown file began with the claimed content: that part stays
            // in done/ (or rejected/) beside its receipt.
            if matches!(change, Some(Change::Grew { .. })) {
                let kept = moved.final_name.as_deref().unwrap_or(&moved.name);
                changed::keep_claimed(path, id, &dir.join(kept)).map_err(StoreError::at(path))?;
            }
            let used =
                changed::put_back(path, &ctx.paths.inbox, n).map_err(StoreError::at(path))?;
            tracing::warn!(dataset = ds, file = %moved.name, returned_as = %used, "file changed after it was claimed: the verdict covers the content claimed; the changed file is back in the inbox as a new file");
        }
        None => finish_move(ctx, &moved, path)?,
    }
    log_outcome(ctx, &moved, fault.as_deref());
    Ok(outcome_of(&moved))
}

fn log_outcome(ctx: &DatasetCtx, row: &FileRow, fault: Option<&str>) {
    let c = &row.counts;
    if let Some(f) = fault {
        tracing::warn!(dataset = %ctx.dataset.name, file = %row.name, fault = f, "file rejected");
    } else {
        tracing::info!(
            dataset = %ctx.dataset.name, file = %row.name, verdict = %row.state,
            received = c.received, sealed = c.sealed, skipped = c.skipped, stale = c.stale,
            rejected = c.rejected, "file processed"
        );
    }
    if c.received == 0 && fault.is_none() {
        tracing::warn!(dataset = %ctx.dataset.name, file = %row.name, "file holds no records");
    }
}

/// Moves a file with a committed verdict from `work/` to its folder
/// under its final name (nothing to do if a restart finds it moved).
pub(super) fn finish_move(ctx: &DatasetCtx, row: &FileRow, path: &Path) -> Result<(), StoreError> {
    let dir = ctx.paths.verdict_dir(row.state);
    let final_name = row.final_name.as_deref().unwrap_or(&row.name);
    if path.exists() {
        crate::fsio::move_durable(path, &dir.join(final_name)).map_err(StoreError::at(path))?;
    }
    Ok(())
}

/// The outcome a row with a verdict stands for.
pub(super) fn outcome_of(row: &FileRow) -> Outcome {
    match row.state {
        FileState::Rejected => Outcome::Rejected { counts: row.counts },
        FileState::Duplicate => Outcome::Duplicate {
            of: row.duplicate_of.unwrap_or_default(),
        },
        _ => Outcome::Done { counts: row.counts },
    }
}
