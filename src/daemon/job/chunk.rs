//! The chunk transaction (ARCHITECTURE.md, "One transaction per chunk"):
//! the dedupe decisions of a chunk's records, the rejections found, the
//! batches sealed from its valid records with their exchange-log entries,
//! and the file's checkpoint commit together. A chunk holds several batches
//! (`[intake] chunk_records` input records, to the next batch boundary):
//! each commit writes a page of the per-key table once for all the
//! records it took, where one commit per batch wrote most pages once per
//! record on keys in no particular order. It commits sooner at a boundary
//! when the reader has nothing ready (no write lock held while it works),
//! when a batch waited its full age, when the outbox reaches its high-water
//! mark, or when the daemon stops. Batch boundaries depend only on the
//! records (size, and `chunk_records` since the last batch), never on when
//! a chunk commits, so cluster mode's deterministic ids hold. Records come
//! from the reader thread (`reader`), or from a SQL source's page (`rows`);
//! only what commits here counts as consumed. A page also moves its source's watermark in
//! the same transaction (`Committing`).

use std::sync::mpsc::TryRecvError;

use rusqlite::{Connection, TransactionBehavior};

use super::DatasetCtx;
use super::lifecycle;
use super::reader::{Checked, Read};
use crate::parse::{FileFault, Position};
use crate::seal::{self, Decision, OpenBatch};
use crate::state::StoreError;
use crate::state::batches;
use crate::state::files::{self, Counts, FileRow, Rejection};
use crate::state::recent::RecentKeys;
use crate::validate::FieldError;

pub(super) enum Chunks {
    /// The stream ended, with a file fault if it ended on one.
    Finished(Option<String>),
    Interrupted,
    /// Cluster mode: another node holds the file now; this chunk was
    /// rolled back.
    TakenOver,
}

/// What ended a chunk.
enum ChunkEnd {
    Due,
    Eof,
    Fault(FileFault),
}

/// Called inside each chunk's transaction, before its commit, with the
/// ordinals the chunk consumed (`start..end`, counted from 0): a SQL
/// source's page stores its watermark there.
pub(super) type Committing<'a> =
    &'a mut dyn FnMut(&Connection, std::ops::Range<u64>) -> rusqlite::Result<()>;

pub(super) fn run_chunks(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    row: &FileRow,
    items: std::sync::mpsc::Receiver<Read>,
    skipped: u64,
    mut committing: Option<Committing<'_>>,
) -> Result<Chunks, StoreError> {
    let route = ctx.dataset.route();
    // Records before `skipped` were committed by earlier runs.
    let mut ordinal: u64 = skipped;
    let mut carry: Option<Checked> = None;
    let mut group = Vec::new().into_iter();
    let mut open = OpenBatch::default();
    // Records consumed since the open batch was last sealed: at
    // `chunk_records` of them it is sealed however small, so a file whose
    // records are mostly unchanged or rejected still commits its progress.
    let mut since_seal: u64 = 0;
    // The index of the dataset's tail (`state::recent`), held from each
    // chunk's first read to its commit.
    let mut keys = ctx.keys.lock().unwrap_or_else(|p| p.into_inner());
    let keys = &mut *keys;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        keys.sync(&tx)?;
        // A 413 from the library lowers the route's batch size for good.
        let mut limits = ctx.batch;
        if let Some(n) = batches::route_limit(&tx, &route)? {
            limits.max_records = limits.max_records.min(n.max(1));
        }
        let mut delta = Counts::default();
        let mut consumed: u64 = 0;
        let mut sealed_any = false;
        let first = ordinal;
        let end = loop {
            let item = match carry.take() {
                Some(i) => i,
                None => match group.next() {
                    Some(i) => i,
                    None => {
                        // At a batch boundary with nothing read ahead, commit
                        // now rather than hold the write lock while the
                        // reader works.
                        let next = if sealed_any && open.is_empty() {
                            match items.try_recv() {
                                Ok(r) => Some(r),
                                Err(TryRecvError::Empty) => break ChunkEnd::Due,
                                Err(TryRecvError::Disconnected) => None,
                            }
                        } else {
                            items.recv().ok()
                        };
                        match next {
                            Some(Read::Items(g)) => {
                                group = g.into_iter();
                                continue;
                            }
                            Some(Read::End) => break ChunkEnd::Eof,
                            Some(Read::Fault(f)) => break ChunkEnd::Fault(f),
                            // The reader ends only after End or Fault; anything
                            // else means it panicked, and the scope re-raises that.
                            Some(Read::Opened { .. }) | None => {
                                panic!("the record reader stopped mid-file")
                            }
                        }
                    }
                },
            };
            match item {
                Checked::Bad(bad) => {
                    ordinal += 1;
                    consumed += 1;
                    since_seal += 1;
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
                    since_seal += 1;
                    delta.received += 1;
                    delta.rejected += 1;
                    insert_errors(&tx, row.id, ordinal, &pos, key.as_deref(), &errors, false)?;
                }
                Checked::Valid { pos, rec } => {
                    if open.would_overflow(&rec, &limits) {
                        // Seal what we have; this record opens the next batch.
                        seal_open(&tx, ctx, keys, &route, row, &mut open)?;
                        sealed_any = true;
                        since_seal = 0;
                        carry = Some(Checked::Valid { pos, rec });
                        if ends_here(ctx, &tx, consumed) {
                            break ChunkEnd::Due;
                        }
                        continue;
                    }
                    ordinal += 1;
                    consumed += 1;
                    since_seal += 1;
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
                    match seal::decide(&tx, keys, &rec)? {
                        Decision::Unchanged => delta.skipped += 1,
                        Decision::Stale => delta.stale += 1,
                        Decision::Seal { version } => {
                            delta.sealed += 1;
                            open.push(rec, version);
                        }
                    }
                }
            }
            if open.is_due(&limits) && !open.is_empty() {
                // Several batches share a transaction (fewer commits, and
                // fewer pages of the per-key table written per record);
                // one that waited its full age goes out at once.
                let by_age = !open.is_full(&limits);
                seal_open(&tx, ctx, keys, &route, row, &mut open)?;
                sealed_any = true;
                since_seal = 0;
                if by_age || ends_here(ctx, &tx, consumed) {
                    break ChunkEnd::Due;
                }
            } else if since_seal >= ctx.chunk_records {
                break ChunkEnd::Due;
            }
        };
        if !open.is_empty() {
            seal_open(&tx, ctx, keys, &route, row, &mut open)?;
            sealed_any = true;
            since_seal = 0;
        }
        lifecycle::checkpoint(&tx, ctx.tz, row, ordinal as i64, &delta)?;
        if let Some(f) = committing.as_mut() {
            f(&tx, first..ordinal)?;
        }
        // Cluster mode: nothing more of a file another node took over
        // while this one was paused (the chunk rolls back).
        if !ctx.still_holds(&row.work_name) {
            return Ok(Chunks::TakenOver);
        }
        tx.commit()?;
        keys.committed();
        if sealed_any {
            (ctx.on_sealed)();
            // Re-measure the outbox now, so intake stops claiming files the
            // moment this batch pushes it over the high-water mark.
            ctx.gate.measure(conn);
        }
        // After the wake-up: the forwarder sends what was sealed while the
        // tail is merged.
        if keys.len() >= crate::state::recent::MERGE_AT {
            crate::state::recent::merge(conn)?;
        }
        match end {
            ChunkEnd::Eof => return Ok(Chunks::Finished(None)),
            ChunkEnd::Fault(f) => return Ok(Chunks::Finished(Some(super::fault_text(&f)))),
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

/// Whether a chunk that took `consumed` input records ends at this batch
/// boundary: it took `chunk_records`, the daemon is stopping, or the
/// outbox reached its high-water mark (the file then waits between chunks,
/// its checkpoint safe).
fn ends_here(ctx: &DatasetCtx, tx: &Connection, consumed: u64) -> bool {
    consumed >= ctx.chunk_records || (ctx.stopping)() || ctx.gate.at_high_water(tx)
}

/// Seals the open batch inside `tx`: dedupe state, batch row and body,
/// exchange-log entry. The body's `auditHead` is the log head before this
/// batch's own entry.
fn seal_open(
    tx: &Connection,
    ctx: &DatasetCtx,
    keys: &mut RecentKeys,
    route: &str,
    row: &FileRow,
    open: &mut OpenBatch,
) -> Result<(), StoreError> {
    let recs = open.take();
    // Cluster mode: the id is the file's (claim id, content, dataset) and
    // the batch's position among the file's batches sealed so far; a SQL
    // source's page (no claim name) keeps a fresh id.
    let batch_id = match (
        ctx.deterministic_ids,
        crate::spool::ClaimName::parse(&row.work_name),
        &row.sha256,
    ) {
        (true, Some(claim), Some(sha)) => Some(crate::seal::deterministic_batch_id(
            claim.id.as_str(),
            &ctx.dataset.name,
            sha,
            batches::sealed_of_file(tx, row.id)?,
        )),
        _ => None,
    };
    crate::outbox::seal(
        tx,
        &crate::outbox::Sealing {
            tz: ctx.tz,
            sender: &ctx.sender,
            dataset: &ctx.dataset.name,
            schema_version: &ctx.schema.schema_version,
            route,
            file_id: Some(row.id),
            batch_id,
        },
        keys,
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
