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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};
use serde_json::json;

use super::read::{self, Identity, ReadOptions};
use crate::config::{BatchLimits, DatasetConfig};
use crate::fsio;
use crate::parse::{FileFault, Item, Position, RawRecord};
use crate::report::{self, BatchRef, DuplicateOf, FileSummary, ReadNotes};
use crate::seal::{self, Decision, OpenBatch};
use crate::state;
use crate::state::batches;
use crate::state::files::{self, Counts, FileRow, Rejection};
use crate::state::log::{self, Entry, Event};
use crate::validate::{DatasetSchema, FieldError, ValidRecord, Verdict};

/// A dataset's spool folders.
#[derive(Debug, Clone)]
pub struct SpoolPaths {
    pub inbox: PathBuf,
    pub work: PathBuf,
    pub done: PathBuf,
    pub rejected: PathBuf,
}

impl SpoolPaths {
    pub fn new(spool: &Path, dataset: &str) -> SpoolPaths {
        let d = spool.join(dataset);
        SpoolPaths {
            inbox: d.join("inbox"),
            work: d.join("work"),
            done: d.join("done"),
            rejected: d.join("rejected"),
        }
    }

    pub fn create(&self) -> std::io::Result<()> {
        for d in [&self.inbox, &self.work, &self.done, &self.rejected] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }
}

/// Everything a dataset's worker needs to process its files.
pub struct DatasetCtx {
    pub dataset: DatasetConfig,
    pub schema: Arc<DatasetSchema>,
    pub sender: String,
    pub tz: FixedOffset,
    pub batch: BatchLimits,
    pub chunk_records: u64,
    pub read: ReadOptions,
    pub paths: SpoolPaths,
    /// Called after each commit that sealed a batch (wakes the forwarder).
    pub on_sealed: Arc<dyn Fn() + Send + Sync>,
    /// Checked between chunks: true once a drain was asked for.
    pub stopping: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Intake pauses between chunks while the outbox is over its
    /// high-water mark.
    pub gate: Arc<super::backpressure::Gate>,
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
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    State(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> JobError + '_ {
    move |source| JobError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The name the file had in the inbox, from its name under `work/`
/// (`<claim id>~<name>`).
pub fn original_name(work_name: &str) -> &str {
    work_name
        .split_once('~')
        .map(|(_, n)| n)
        .unwrap_or(work_name)
}

/// Processes (or resumes) the file `work/<work_name>`.
pub fn process(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    work_name: &str,
) -> Result<Outcome, JobError> {
    let path = ctx.paths.work.join(work_name);
    let name = original_name(work_name).to_string();
    let ds = ctx.dataset.name.as_str();
    let existing = files::by_work_name(conn, work_name)?;
    if let Some(row) = &existing
        && matches!(row.state.as_str(), "done" | "rejected" | "duplicate")
    {
        // The verdict was committed but the move out of work/ was not
        // (or the return of a file that changed under us, see `changed`).
        if !super::changed::return_if_changed(
            &path,
            &ctx.paths.inbox,
            &row.name,
            row.sha256.as_deref(),
        )
        .map_err(io_err(&path))?
        {
            finish_move(ctx, row, &path)?;
        }
        return Ok(outcome_of(row));
    }
    // Recorded before any work on the file, so that a file that kills the
    // process is known at the next start, whatever part of the work died.
    if let super::breaker::Attempt::SetAside { dead } =
        super::breaker::begin(conn, ctx, work_name, existing.as_ref())?
    {
        return super::breaker::set_aside(conn, ctx, work_name, existing, dead);
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
            return finish(
                conn,
                ctx,
                row.id,
                &path,
                &id,
                Some("文件在处理期间被修改（内容摘要改变），已停止处理".into()),
            );
        }
        Some(row) if row.duplicate_of.is_some() => {
            return finish_duplicate_row(conn, ctx, &row, &id, &path);
        }
        Some(row) => row,
        None => {
            if let Some(first) = files::first_with_sha(conn, ds, &id.sha256, -1)? {
                return finish_duplicate(conn, ctx, &name, work_name, &id, &first, &path);
            }
            let now = state::now_text(ctx.tz);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let file_id = files::insert_claim(&tx, ds, &name, work_name, &now)?;
            files::set_identity(
                &tx,
                file_id,
                &id.sha256,
                id.size,
                id.format_name(),
                id.encoding_name(),
            )?;
            log::append(
                &tx,
                ctx.tz,
                Event::FileClaimed,
                Entry {
                    dataset: Some(ds),
                    file: Some(&name),
                    details: Some(json!({
                        "fileId": file_id, "workName": work_name, "sha256": id.sha256,
                        "size": id.size, "format": id.format_name(), "encoding": id.encoding_name(),
                    })),
                    ..Default::default()
                },
            )?;
            tx.commit()?;
            files::by_id(conn, file_id)?.expect("row just inserted")
        }
    };
    if let Some(fault) = fault {
        return finish(conn, ctx, row.id, &path, &id, Some(fault));
    }
    if row.records_done == 0 {
        match read::precheck_document(&path, &id, &ctx.read) {
            Ok(None) => {}
            Ok(Some(f)) | Err(f) => {
                return finish(conn, ctx, row.id, &path, &id, Some(fault_text(&f)));
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
            .map_err(io_err(path))?;
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
        run_chunks(conn, ctx, &row, rx, skipped)
    })?;
    match chunks {
        Chunks::Finished(fault) => {
            let notes = notes.into_inner().unwrap_or_else(|p| p.into_inner());
            finish_noted(conn, ctx, row.id, &path, &id, fault, &notes)
        }
        Chunks::Interrupted => Ok(Outcome::Interrupted),
    }
}

/// Records go to the committing thread in groups of `GROUP`, so that the two
/// threads hand over (and wake each other) once per group, not per record;
/// the reader may run `READ_AHEAD` groups ahead: enough to keep it busy
/// through a commit, few enough for flat memory.
const GROUP: usize = 64;
const READ_AHEAD: usize = 8;

/// What the reader thread sends, in order: `Opened` (or a `Fault` if the
/// file cannot be opened or ends while skipping), then the records in
/// groups, then `End` or `Fault`.
enum Read {
    Opened { skipped: u64 },
    Items(Vec<Checked>),
    End,
    Fault(FileFault),
}

/// A record with its verdict, as the committing thread needs it.
enum Checked {
    Bad(crate::parse::BadRecord),
    Invalid {
        pos: Position,
        key: Option<String>,
        errors: Vec<FieldError>,
    },
    Valid {
        pos: Position,
        rec: ValidRecord,
    },
}

/// The reader thread: opens the stream, skips what earlier runs committed,
/// then parses and validates records into `tx` until the end, a fault, or
/// the committing thread hanging up.
fn read_ahead(
    path: &Path,
    id: &Identity,
    opts: &ReadOptions,
    schema: &DatasetSchema,
    skip: u64,
    tx: std::sync::mpsc::SyncSender<Read>,
    notes: &std::sync::Mutex<ReadNotes>,
) {
    let mut stream = match read::open_records(path, id, opts, schema) {
        Ok(s) => s,
        Err(f) => {
            let _ = tx.send(Read::Fault(f));
            return;
        }
    };
    let mut skipped = 0;
    while skipped < skip {
        match stream.next_item(schema) {
            Ok(Some(_)) => skipped += 1,
            Ok(None) => break,
            Err(f) => {
                let _ = tx.send(Read::Fault(f));
                return;
            }
        }
    }
    if tx.send(Read::Opened { skipped }).is_err() {
        return;
    }
    let mut group = Vec::with_capacity(GROUP);
    loop {
        let last = match stream.next_item(schema) {
            Ok(Some(Item::Bad(bad))) => {
                group.push(Checked::Bad(bad));
                None
            }
            Ok(Some(Item::Record(raw))) => {
                group.push(match schema.check(&raw) {
                    Verdict::Invalid(errors) => Checked::Invalid {
                        pos: raw.pos,
                        key: raw_key(schema, &raw),
                        errors,
                    },
                    Verdict::Valid(rec) => Checked::Valid { pos: raw.pos, rec },
                });
                None
            }
            Ok(None) => {
                if let Ok(mut n) = notes.lock() {
                    *n = ReadNotes {
                        ignored_columns: stream.ignored_names(),
                        blank_rows: stream.blank_rows,
                    };
                }
                Some(Read::End)
            }
            Err(f) => Some(Read::Fault(f)),
        };
        if (group.len() >= GROUP || last.is_some())
            && !group.is_empty()
            && tx
                .send(Read::Items(std::mem::replace(
                    &mut group,
                    Vec::with_capacity(GROUP),
                )))
                .is_err()
        {
            return;
        }
        if let Some(last) = last {
            let _ = tx.send(last);
            return;
        }
    }
}

fn fault_text(f: &FileFault) -> String {
    f.to_string()
}

enum Chunks {
    /// The stream ended, with a file fault if it ended on one.
    Finished(Option<String>),
    Interrupted,
}

/// What ended a chunk.
enum ChunkEnd {
    Due,
    Eof,
    Fault(FileFault),
}

fn run_chunks(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    row: &FileRow,
    items: std::sync::mpsc::Receiver<Read>,
    skipped: u64,
) -> Result<Chunks, JobError> {
    let ds = ctx.dataset.name.as_str();
    let route = ctx.dataset.route();
    // Records before `skipped` were committed by earlier runs.
    let mut ordinal: u64 = skipped;
    let mut carry: Option<Checked> = None;
    let mut group = Vec::new().into_iter();
    let mut open = OpenBatch::default();
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // A 413 from the library lowers the route's batch size for good.
        let mut limits = ctx.batch;
        if let Some(n) = batches::route_limit(&tx, &route)? {
            limits.max_records = limits.max_records.min(n.max(1));
        }
        let mut delta = Counts::default();
        let mut consumed: u64 = 0;
        let end = loop {
            let item = match carry.take() {
                Some(i) => i,
                None => match group.next() {
                    Some(i) => i,
                    None => match items.recv() {
                        Ok(Read::Items(g)) => {
                            group = g.into_iter();
                            continue;
                        }
                        Ok(Read::End) => break ChunkEnd::Eof,
                        Ok(Read::Fault(f)) => break ChunkEnd::Fault(f),
                        // The reader ends only after End or Fault; anything
                        // else means it panicked, and the scope re-raises that.
                        Ok(Read::Opened { .. }) | Err(_) => {
                            panic!("the record reader stopped mid-file")
                        }
                    },
                },
            };
            match item {
                Checked::Bad(bad) => {
                    ordinal += 1;
                    consumed += 1;
                    delta.received += 1;
                    delta.rejected += 1;
                    files::insert_rejection(
                        &tx,
                        row.id,
                        &Rejection {
                            ordinal: ordinal as i64,
                            position: bad.pos.to_string(),
                            row: bad.pos.row() as i64,
                            key: None,
                            field: String::new(),
                            title: String::new(),
                            value: None,
                            rule: "parse".into(),
                            message: bad.message,
                            warning: false,
                        },
                    )?;
                }
                Checked::Invalid { pos, key, errors } => {
                    ordinal += 1;
                    consumed += 1;
                    delta.received += 1;
                    delta.rejected += 1;
                    insert_errors(&tx, row.id, ordinal, &pos, key.as_deref(), &errors, false)?;
                }
                Checked::Valid { pos, rec } => {
                    if open.would_overflow(&rec, &limits) {
                        // Seal what we have first; this record opens the next batch.
                        carry = Some(Checked::Valid { pos, rec });
                        break ChunkEnd::Due;
                    }
                    ordinal += 1;
                    consumed += 1;
                    delta.received += 1;
                    delta.ignored_fields += rec.ignored_fields as i64;
                    if !rec.warnings.is_empty() {
                        insert_errors(
                            &tx,
                            row.id,
                            ordinal,
                            &pos,
                            Some(&rec.key),
                            &rec.warnings,
                            true,
                        )?;
                    }
                    match seal::decide(&tx, ds, &rec)? {
                        Decision::Unchanged => delta.skipped += 1,
                        Decision::Stale => delta.stale += 1,
                        Decision::Seal => {
                            delta.sealed += 1;
                            open.push(rec);
                        }
                    }
                }
            }
            if open.is_due(&limits) && !open.is_empty() {
                break ChunkEnd::Due;
            }
            if consumed >= ctx.chunk_records {
                break ChunkEnd::Due;
            }
        };
        let sealed_any = !open.is_empty();
        if sealed_any {
            seal_open(&tx, ctx, &route, Some(row.id), &mut open)?;
        }
        if delta.skipped + delta.stale > 0 {
            log::append(
                &tx,
                ctx.tz,
                Event::RecordsSkipped,
                Entry {
                    dataset: Some(ds),
                    file: Some(&row.name),
                    counts: Some(json!({"unchanged": delta.skipped, "stale": delta.stale})),
                    ..Default::default()
                },
            )?;
        }
        files::checkpoint(&tx, row.id, ordinal as i64, &delta)?;
        tx.commit()?;
        if sealed_any {
            (ctx.on_sealed)();
            // Re-measure the outbox now, so intake stops claiming files the
            // moment this batch pushes it over the high-water mark.
            ctx.gate.measure(conn);
        }
        match end {
            ChunkEnd::Eof => return Ok(Chunks::Finished(None)),
            ChunkEnd::Fault(f) => return Ok(Chunks::Finished(Some(fault_text(&f)))),
            ChunkEnd::Due if (ctx.stopping)() => return Ok(Chunks::Interrupted),
            ChunkEnd::Due => {
                // More of this file to go: wait here while the outbox is
                // over its high-water mark (the file's checkpoint is safe).
                if sealed_any {
                    ctx.gate.wait_while_paused(conn, &*ctx.stopping);
                }
            }
        }
    }
}

/// Seals the open batch inside `tx` (`outbox::seal`: dedupe state, batch
/// row and body, exchange-log entry).
fn seal_open(
    tx: &Connection,
    ctx: &DatasetCtx,
    route: &str,
    file_id: Option<i64>,
    open: &mut OpenBatch,
) -> Result<(), JobError> {
    let recs = open.take();
    crate::outbox::seal(
        tx,
        &crate::outbox::Sealing {
            tz: ctx.tz,
            sender: &ctx.sender,
            dataset: &ctx.dataset.name,
            schema_version: &ctx.schema.schema_version,
            route,
            file_id,
        },
        &recs,
    )?;
    Ok(())
}

fn insert_errors(
    tx: &Connection,
    file_id: i64,
    ordinal: u64,
    pos: &Position,
    key: Option<&str>,
    errors: &[FieldError],
    warning: bool,
) -> rusqlite::Result<()> {
    for e in errors {
        files::insert_rejection(
            tx,
            file_id,
            &Rejection {
                ordinal: ordinal as i64,
                position: pos.to_string(),
                row: pos.row() as i64,
                key: key.map(str::to_string),
                field: e.field.clone(),
                title: e.title.clone(),
                value: e.value.clone(),
                rule: e.rule.clone(),
                message: e.message.clone(),
                warning,
            },
        )?;
    }
    Ok(())
}

/// The key of a record that failed validation, from its raw key fields,
/// so that `audit trace` can follow a record that was rejected and later
/// corrected. `None` when a key field is missing.
fn raw_key(schema: &DatasetSchema, raw: &RawRecord) -> Option<String> {
    let mut parts = Vec::with_capacity(schema.key_fields.len());
    for k in &schema.key_fields {
        let v = raw
            .fields
            .iter()
            .find_map(|(h, v)| (schema.field_for_header(h) == Some(k.as_str())).then_some(v))?;
        parts.push(match v {
            crate::parse::RawValue::Text(t) => t.trim().to_string(),
            crate::parse::RawValue::Json(j) => j.to_string(),
            crate::parse::RawValue::Number(n) => n.to_string(),
            crate::parse::RawValue::DateTime(d) => d.to_string(),
        });
    }
    Some(parts.join("|"))
}

/// Commits the verdict, writes the receipt or report, then moves the file
/// out of `work/`.
fn finish(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    file_id: i64,
    path: &Path,
    id: &Identity,
    fault: Option<String>,
) -> Result<Outcome, JobError> {
    finish_noted(conn, ctx, file_id, path, id, fault, &ReadNotes::default())
}

/// [`finish`] with what the reader noted about the file's columns and rows.
fn finish_noted(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    file_id: i64,
    path: &Path,
    id: &Identity,
    fault: Option<String>,
    notes: &ReadNotes,
) -> Result<Outcome, JobError> {
    let ds = ctx.dataset.name.as_str();
    let row = files::by_id(conn, file_id)?.expect("file row exists while processing");
    let rejected = fault.is_some() || row.counts.rejected > 0;
    let (state_name, dir) = if rejected {
        ("rejected", &ctx.paths.rejected)
    } else {
        ("done", &ctx.paths.done)
    };
    let final_name = reserve_final_name(conn, &row, dir)?;
    let now = state::now_text(ctx.tz);
    let batch_refs: Vec<BatchRef> = files::batches_of(conn, file_id)?
        .into_iter()
        .map(|(batch_id, count, digest)| BatchRef {
            batch_id,
            count,
            digest,
        })
        .collect();
    let batch_refs_empty = batch_refs.is_empty();
    let errors = files::rejections_of(conn, file_id)?;
    let claimed_at = files::claimed_at(conn, file_id)?;
    let mut warnings = Vec::new();
    if row.counts.received == 0 && fault.is_none() {
        warnings.push("文件不含任何记录（0 条）".to_string());
    }
    warnings.extend(notes.warnings());
    // A file that changed since its identity pass goes back to the inbox
    // as a new file; this verdict covers what was identified.
    let change = super::changed::detect(path, row.sha256.as_deref(), id).map_err(io_err(path))?;
    let returned_as = change
        .as_ref()
        .map(|_| super::changed::return_name(&ctx.paths.inbox, &row.name));
    if let (Some(c), Some(n)) = (&change, &returned_as) {
        warnings.push(c.warning(n));
    }
    let summary = FileSummary {
        file: &row.name,
        dataset: ds,
        sha256: Some(&id.sha256),
        size: Some(id.size),
        format: Some(id.format_name()),
        // XLSX is not a text file: no encoding to name.
        encoding: id.detected.map(|d| d.encoding.name()),
        verdict: state_name,
        counts: row.counts,
        fault: fault.as_deref(),
        duplicate_of: None,
        batches: batch_refs,
        claimed_at: &claimed_at,
        finished_at: &now,
        warnings,
        ignored_columns: notes.ignored_columns.clone(),
        blank_rows: notes.blank_rows,
        key_title: report::key_title(&ctx.schema),
    };
    if rejected {
        report::write_report(dir, &final_name, &summary, &errors).map_err(io_err(dir))?;
    } else {
        report::write_receipt(dir, &final_name, &summary).map_err(io_err(dir))?;
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    files::finish(
        &tx,
        file_id,
        state_name,
        &final_name,
        fault.as_deref(),
        None,
        &now,
    )?;
    let event = if rejected {
        Event::FileRejected
    } else if row.counts.received == 0 {
        Event::FileEmpty
    } else {
        Event::FileDone
    };
    log::append(
        &tx,
        ctx.tz,
        event,
        Entry {
            dataset: Some(ds),
            file: Some(&row.name),
            counts: Some(serde_json::to_value(row.counts).expect("counts serialise")),
            details: Some(json!({
                "fileId": file_id, "sha256": id.sha256, "finalName": final_name,
                "fault": fault,
                "changedAfterClaim": change.as_ref().zip(returned_as.as_deref()).map(|(c, n)| c.details(n)),
            })),
            ..Default::default()
        },
    )?;
    tx.commit()?;
    // Refusals the library sent while the file was still being read are
    // reported now that it has its folder (later ones by the forwarder).
    let spool = ctx.paths.work.parent().and_then(Path::parent);
    if !batch_refs_empty
        && let Some(spool) = spool
        && let Err(e) = report::library::write_for_file(conn, spool, Some(&ctx.schema), file_id)
    {
        tracing::error!(dataset = ds, file = %row.name, error = %e, "cannot write the library-refusal report");
    }
    let moved = FileRow {
        state: state_name.into(),
        final_name: Some(final_name),
        ..row
    };
    match &returned_as {
        Some(n) => {
            // A grown file began with the claimed content: that part stays
            // in done/ (or rejected/) beside its receipt.
            if matches!(change, Some(super::changed::Change::Grew { .. })) {
                let kept = moved.final_name.as_deref().unwrap_or(&moved.name);
                super::changed::keep_claimed(path, id, &dir.join(kept)).map_err(io_err(path))?;
            }
            let used = super::changed::put_back(path, &ctx.paths.inbox, n).map_err(io_err(path))?;
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

/// Records a file whose content was already received: a receipt naming
/// the first file, no records. The row (with its final name) is committed
/// before the receipt is written, so a crash in between is finished by the
/// next start under the same name.
fn finish_duplicate(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    name: &str,
    work_name: &str,
    id: &Identity,
    first: &FileRow,
    path: &Path,
) -> Result<Outcome, JobError> {
    let ds = ctx.dataset.name.as_str();
    let now = state::now_text(ctx.tz);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let file_id = files::insert_claim(&tx, ds, name, work_name, &now)?;
    tx.execute(
        "UPDATE file SET sha256 = ?2, size = ?3, duplicate_of = ?4 WHERE id = ?1",
        rusqlite::params![file_id, id.sha256, id.size as i64, first.id],
    )?;
    tx.commit()?;
    let row = files::by_id(conn, file_id)?.expect("row just inserted");
    finish_duplicate_row(conn, ctx, &row, id, path)
}

fn finish_duplicate_row(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    row: &FileRow,
    id: &Identity,
    path: &Path,
) -> Result<Outcome, JobError> {
    let ds = ctx.dataset.name.as_str();
    let dir = &ctx.paths.done;
    let first_id = row
        .duplicate_of
        .expect("a duplicate row names the first file");
    let first = files::by_id(conn, first_id)?.expect("the first file's row exists");
    let final_name = reserve_final_name(conn, row, dir)?;
    let now = state::now_text(ctx.tz);
    let first_claimed = files::claimed_at(conn, first.id)?;
    let summary = FileSummary {
        file: &row.name,
        dataset: ds,
        sha256: Some(&id.sha256),
        size: Some(id.size),
        format: Some(id.format_name()),
        encoding: id.detected.map(|d| d.encoding.name()),
        verdict: "duplicate",
        counts: Counts::default(),
        fault: None,
        duplicate_of: Some(DuplicateOf {
            file: &first.name,
            claimed_at: &first_claimed,
            final_name: first.final_name.as_deref(),
        }),
        batches: vec![],
        claimed_at: &now,
        finished_at: &now,
        warnings: vec![format!(
            "与已接收的文件 {} 内容完全相同，未重复发送",
            first.name
        )],
        ignored_columns: Vec::new(),
        blank_rows: 0,
        key_title: String::new(),
    };
    report::write_receipt(dir, &final_name, &summary).map_err(io_err(dir))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    files::finish(
        &tx,
        row.id,
        "duplicate",
        &final_name,
        None,
        Some(first.id),
        &now,
    )?;
    log::append(
        &tx,
        ctx.tz,
        Event::FileDuplicate,
        Entry {
            dataset: Some(ds),
            file: Some(&row.name),
            details: Some(json!({
                "fileId": row.id, "sha256": id.sha256, "duplicateOf": first.name,
                "duplicateOfId": first.id, "finalName": final_name,
            })),
            ..Default::default()
        },
    )?;
    tx.commit()?;
    tracing::info!(dataset = ds, file = %row.name, first = %first.name, "duplicate file: same content already received, nothing re-sent");
    let moved = files::by_id(conn, row.id)?.expect("row exists");
    finish_move(ctx, &moved, path)?;
    Ok(Outcome::Duplicate { of: first.id })
}

/// The name the file and its receipt or report get under `dir`: chosen
/// once and committed before anything is written under it, so that a
/// crash between writing the report and committing the verdict is finished
/// under the same name rather than a second one.
pub(super) fn reserve_final_name(
    conn: &Connection,
    row: &FileRow,
    dir: &Path,
) -> rusqlite::Result<String> {
    if let Some(n) = &row.final_name {
        return Ok(n.clone());
    }
    let n = fsio::free_name(dir, &row.name, &[".receipt.json", ".report.json"]);
    conn.execute(
        "UPDATE file SET final_name = ?2 WHERE id = ?1",
        rusqlite::params![row.id, n],
    )?;
    Ok(n)
}

pub(super) fn finish_move(ctx: &DatasetCtx, row: &FileRow, path: &Path) -> Result<(), JobError> {
    let dir = if row.state == "rejected" {
        &ctx.paths.rejected
    } else {
        &ctx.paths.done
    };
    let final_name = row.final_name.as_deref().unwrap_or(&row.name);
    if path.exists() {
        fsio::move_durable(path, &dir.join(final_name)).map_err(io_err(path))?;
    }
    Ok(())
}

fn outcome_of(row: &FileRow) -> Outcome {
    match row.state.as_str() {
        "rejected" => Outcome::Rejected { counts: row.counts },
        "duplicate" => Outcome::Duplicate {
            of: row.duplicate_of.unwrap_or_default(),
        },
        _ => Outcome::Done { counts: row.counts },
    }
}
