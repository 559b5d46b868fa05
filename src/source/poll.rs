//! One poll of a SQL source: the watermark algorithm of the module doc
//! (`source`), page by page through `daemon::job::rows`.

use rusqlite::Connection;

use super::{Engine, PollError};
use crate::config::SqlSource;
use crate::daemon::job::DatasetCtx;
use crate::daemon::job::rows::{self, Page};
use crate::state::{self, watermark};

/// What a poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polled {
    /// Rows the source returned (re-reads included).
    pub read: u64,
    /// Rows handed to validation and dedupe.
    pub taken: u64,
    /// Pages with rows taken (each a receipt or a report).
    pub pages: u64,
}

/// Polls the source once: pages after the watermark (less the re-read
/// window) up to the source's clock less the lag; in mark mode, the
/// unmarked rows from the start, each page marked once taken.
pub fn poll(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    src: &SqlSource,
    engine: &mut dyn Engine,
) -> Result<Polled, PollError> {
    let ds = ctx.dataset.name.as_str();
    let started = watermark::get(conn, ds)?;
    let (source_now, until) = engine.clock(src.lag_secs)?;
    let marking = src.mark_column.is_some();
    let mut after = match &started {
        // Mark mode reads every unmarked row: the mark says what is left.
        _ if marking => None,
        Some(m) => Some(watermark::Mark {
            cd_time: engine.minus(&m.cd_time, src.reread_secs)?,
            row_guid: String::new(),
        }),
        None => None,
    };
    let poll_name = chrono::Utc::now()
        .with_timezone(&ctx.tz)
        .format("%Y%m%dT%H%M%S%3f");
    let mut done = Polled::default();
    loop {
        let rows = engine.page(after.as_ref(), &until, src.page_rows)?;
        let full = rows.len() as u64 >= src.page_rows;
        let Some(last) = rows.last().map(|r| r.mark.clone()) else {
            break;
        };
        done.read += rows.len() as u64;
        // Re-read rows (behind the watermark the poll started from) that
        // were taken with this very content are not taken again.
        let read: Vec<(watermark::Mark, String)> = match marking {
            true => rows
                .iter()
                .map(|r| (r.mark.clone(), r.hash.clone()))
                .collect(),
            false => Vec::new(),
        };
        let mut fed = Vec::with_capacity(rows.len());
        for r in rows {
            let behind = started.as_ref().is_some_and(|m| r.mark <= *m);
            if behind && watermark::taken(conn, ds, &r.mark.row_guid)?.as_deref() == Some(&r.hash) {
                continue;
            }
            fed.push(r);
        }
        if !fed.is_empty() {
            done.pages += 1;
            done.taken += fed.len() as u64;
            take(
                conn,
                ctx,
                &format!("{ds}-{poll_name}-{:03}", done.pages),
                fed,
            )?;
        }
        if marking {
            mark_taken(conn, ds, engine, &read)?;
        }
        after = Some(last);
        if !full || (ctx.stopping)() {
            break;
        }
    }
    // Rows out of the next poll's re-read window are forgotten.
    if let Some(m) = watermark::get(conn, ds)? {
        let edge = engine.minus(&m.cd_time, src.reread_secs)?;
        watermark::forget_before(conn, ds, &edge)?;
    }
    let p = watermark::Poll {
        polled_at: state::now_text(ctx.tz),
        source_now: Some(source_now),
        rows_read: done.read as i64,
        rows_taken: done.taken as i64,
        error: None,
        error_at: None,
    };
    watermark::polled(conn, ds, &p)?;
    Ok(done)
}

/// Mark mode: marks the rows of a page that are committed as taken with
/// the content read — the ones just taken and the ones left out as taken
/// before (a crash or a failed mark between their commit and their mark).
/// A row whose chunk did not commit stays unmarked, to be read again.
fn mark_taken(
    conn: &Connection,
    ds: &str,
    engine: &mut dyn Engine,
    read: &[(watermark::Mark, String)],
) -> Result<(), PollError> {
    let mut done = Vec::with_capacity(read.len());
    for (m, hash) in read {
        if watermark::taken(conn, ds, &m.row_guid)?.as_deref() == Some(hash) {
            done.push(m.clone());
        }
    }
    if !done.is_empty() {
        engine.mark(&done)?;
    }
    Ok(())
}

/// Takes one page's rows: each chunk that commits them also remembers
/// them as taken and moves the watermark to the last one.
fn take(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    name: &str,
    rows: Vec<super::SourceRow>,
) -> Result<(), PollError> {
    let ds = ctx.dataset.name.as_str();
    let mut identity = String::new();
    let mut marks = Vec::with_capacity(rows.len());
    let mut records = Vec::with_capacity(rows.len());
    for (i, r) in rows.into_iter().enumerate() {
        identity.push_str(&r.canonical);
        identity.push('\n');
        marks.push((r.mark.clone(), r.hash.clone()));
        records.push(r.record(i as u64 + 1));
    }
    let now = state::now_text(ctx.tz);
    let mut committing = |tx: &Connection, range: std::ops::Range<u64>| {
        for i in range.clone() {
            let (mark, hash) = &marks[i as usize];
            watermark::take(tx, ds, mark, hash)?;
        }
        // A page's rows are in watermark order: the chunk's last row is
        // the furthest it covers.
        if let Some((last, _)) = range.end.checked_sub(1).and_then(|i| marks.get(i as usize)) {
            watermark::advance(tx, ds, last, &now)?;
        }
        Ok(())
    };
    let page = Page {
        name,
        sha256: &crate::canon::sha256_hex(identity.as_bytes()),
        size: identity.len() as u64,
        records,
    };
    rows::take_page(conn, ctx, page, &mut committing)?;
    Ok(())
}
