//! SQL sources (前置库): a dataset collected from a database table or query
//! by watermark, never skipping or repeating a row (docs/sql-sources.md).
//!
//! The watermark algorithm, which every engine follows:
//!
//! - A source's position is `(cd_time, row_guid)`, compared in the
//!   source's own order. Each poll reads pages of `page_rows` rows ordered
//!   by `(cd_time, row_guid)`, each page strictly after the last row of the
//!   one before (keyset paging: two rows with the same `cd_time` on either
//!   side of a page boundary are both read).
//! - A poll never reads a row whose `cd_time` is later than the
//!   **source's** `now()` minus `lag_secs`: the bound comes from the source
//!   database's clock, never fepd's, so clock skew between hosts cannot
//!   skip rows.
//! - Each poll starts `reread_secs` behind the stored watermark, to catch
//!   rows a transaction committed late with an older `cd_time`. A row read
//!   again whose content was already taken (`state::watermark`'s
//!   `sql_taken`, kept for the window) is left out; one that changed is
//!   taken again, and dedupe decides as for a file's record.
//! - Rows go through the file path's validation, dedupe, sealing, reports
//!   and exchange log, one page at a time (`daemon::job::rows`): each chunk
//!   transaction that seals a page's rows also stores the watermark at the
//!   last row it consumed, so a crash or a lost connection resumes from
//!   exactly what was committed. `cd_operation = 'd'` rows are deletes.
//! - An error (a lost connection, a column missing, a value that cannot
//!   convert, a wrong password) ends the poll with the watermark where the
//!   last commit left it; it is retried with back-off (the poll interval,
//!   then 2×, 4×… at most 30×) and shown by `fepd status`.
//!
//! **Mark mode** (`mark_column`), for sources that expect the consumer to
//! flag the rows it took:
//!
//! - A poll reads only the rows whose mark is NULL or 0, from the start of
//!   the table (not after the watermark), in the same `(cd_time,
//!   row_guid)` keyset pages and under the same source-clock bound. The
//!   mark, not the watermark, says what is still to take: a row committed
//!   late is read however old its `cd_time`, with no re-read window.
//! - After the chunk transactions that take a page commit, the rows of the
//!   page that are committed as taken (`sql_taken` holds them with the
//!   content read) get mark 1, by `(cd_time, row_guid)`, in one statement
//!   (PostgreSQL) or batches of `MARK_BATCH` (SQLite, MySQL) — never before
//!   the commit, so a row is never marked unless fepd holds it.
//! - A crash, or a mark statement that fails, between the commit and the
//!   mark leaves those rows unmarked: the next poll reads them again,
//!   leaves them out (the content taken is in `sql_taken`; past the re-read
//!   window, dedupe skips them as unchanged) and marks them then. A failed
//!   mark ends the poll with an error, as any source error.
//! - The watermark still moves in the chunk transactions (the last row
//!   taken): `fepd status` shows it and the lag, and it bounds which re-read
//!   rows are looked up in `sql_taken`.
//!
//! Here: the poller thread of a dataset (`start`); `poll` (one poll);
//! `row` (a source row as a dataset record); the engines: `sqlite` (built
//! in), `postgres` (PostgreSQL and Kingbase), `mysql` (MySQL, MariaDB).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::SqlSource;
use crate::daemon::job::DatasetCtx;
use crate::state::{self, StoreError, watermark};

pub mod mysql;
pub mod poll;
pub mod postgres;
pub mod row;
pub mod sqlite;
#[cfg(test)]
mod tests;

pub use poll::poll;
pub use row::SourceRow;
use watermark::Mark;

/// Why a poll could not read its source. Never carries a password or a
/// row's values.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source could not be reached or answered with an error.
    #[error("source database: {0}")]
    Database(String),
    /// A row the source returned cannot be used.
    #[error("source row: {0}")]
    Row(String),
    /// The password could not be read.
    #[error("source password: {0}")]
    Password(String),
    /// Mark mode: the rows taken could not be marked (they are read again
    /// and left out by the next poll).
    #[error("marking the rows taken in the source: {0}")]
    Mark(String),
}

/// Mark mode: at most this many rows are marked by one statement where
/// the engine binds each row's position as parameters (SQLite, MySQL).
pub const MARK_BATCH: usize = 500;

/// A poll's failure: the source's, or the state database's.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for PollError {
    fn from(e: rusqlite::Error) -> Self {
        PollError::Store(e.into())
    }
}

/// A database engine, as the watermark algorithm needs it.
pub trait Engine {
    /// The source's own clock: its `now()`, and `now()` minus `lag_secs`,
    /// in the form its `cd_time` compares with.
    fn clock(&mut self, lag_secs: u64) -> Result<(String, String), SourceError>;
    /// `cd_time` minus `secs`, computed by the source.
    fn minus(&mut self, cd_time: &str, secs: u64) -> Result<String, SourceError>;
    /// Up to `limit` rows strictly after `after` (from the start without
    /// one) and with `cd_time` not later than `until`, in
    /// `(cd_time, row_guid)` order; in mark mode, only rows whose mark is
    /// NULL or 0.
    fn page(
        &mut self,
        after: Option<&Mark>,
        until: &str,
        limit: u64,
    ) -> Result<Vec<SourceRow>, SourceError>;
    /// Mark mode: sets the mark column to 1 on the rows at `rows` (their
    /// `cd_time` and `row_guid` as read), in one or a few statements. A row
    /// rewritten since with a new `cd_time` keeps its mark.
    fn mark(&mut self, rows: &[Mark]) -> Result<(), SourceError>;
}

/// Opens the engine a source names.
pub fn connect(src: &SqlSource) -> Result<Box<dyn Engine>, SourceError> {
    match src.engine {
        crate::config::SqlEngine::Sqlite => Ok(Box::new(sqlite::Sqlite::open(src)?)),
        crate::config::SqlEngine::Postgres => {
            let password = password(src)?;
            Ok(Box::new(postgres::Postgres::open(
                src,
                password.as_deref(),
            )?))
        }
        crate::config::SqlEngine::Mysql => {
            let password = password(src)?;
            Ok(Box::new(mysql::Mysql::open(src, password.as_deref())?))
        }
    }
}

/// The source's password, from its secret file (`config::secret`'s
/// rule) or environment variable; `None` when neither is configured.
pub fn password(src: &SqlSource) -> Result<Option<String>, SourceError> {
    if let Some(f) = &src.password_file {
        return crate::config::secret::read_secret_file(f)
            .map(Some)
            .map_err(|e| SourceError::Password(e.to_string()));
    }
    if let Some(v) = &src.password_env {
        return std::env::var(v)
            .map(Some)
            .map_err(|_| SourceError::Password(format!("environment variable {v} is not set")));
    }
    Ok(None)
}

/// When the next poll is due after `now`: the dataset's `schedule`, or
/// every `poll_secs` (default 60 s).
fn next_poll(ctx: &DatasetCtx) -> Duration {
    let every = Duration::from_secs(ctx.dataset.poll_secs.unwrap_or(60).max(1));
    let Some(s) = ctx.dataset.schedule.as_ref().and_then(|s| s.ok()) else {
        return every;
    };
    let parsed = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(s.as_str());
    let now = chrono::Utc::now().with_timezone(&ctx.tz);
    match parsed
        .ok()
        .and_then(|c| c.find_next_occurrence(&now, false).ok())
    {
        Some(next) => (next - now).to_std().unwrap_or(Duration::ZERO),
        None => every,
    }
}

/// Starts the poller thread of a dataset with a `[dataset.sql]` section:
/// pages a crash left unfinished get their verdict, then a poll runs at
/// once and on every tick, until `ctx.stopping`.
/// `alive` tells the daemon's health the thread runs, until it ends.
pub fn start(
    db: PathBuf,
    ctx: DatasetCtx,
    alive: crate::daemon::health::PartGuard,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let name = format!("source-{}", ctx.dataset.name);
    std::thread::Builder::new().name(name).spawn(move || {
        let _alive = alive;
        run(db, ctx)
    })
}

fn run(db: PathBuf, ctx: DatasetCtx) {
    let ds = ctx.dataset.name.clone();
    let Some(src) = ctx.dataset.sql.clone() else {
        return;
    };
    let mut conn = match state::open(&db) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(dataset = %ds, error = %e, "SQL source cannot open the state database");
            return;
        }
    };
    if let Err(e) = state::set_cache_mib(&conn, ctx.cache_mib) {
        tracing::warn!(dataset = %ds, error = %e, "state.cache_mib not applied; the default cache stays");
    }
    let mut engine: Option<Box<dyn Engine>> = None;
    let mut failures: u32 = 0;
    let mut due = Instant::now();
    let mut recovered = false;
    loop {
        while Instant::now() < due {
            if (ctx.stopping)() {
                return;
            }
            std::thread::sleep((due - Instant::now()).min(Duration::from_millis(200)));
        }
        // No poll while the outbox is over its high-water mark or the disk
        // is low: the rows wait in the source, the watermark where it is.
        ctx.gate.wait_while_paused(&conn, &*ctx.stopping);
        if (ctx.stopping)() {
            return;
        }
        let result = (|| -> Result<poll::Polled, PollError> {
            if !recovered {
                for id in watermark::unfinished_pages(&conn, &ds)? {
                    crate::daemon::job::rows::finish_page(&mut conn, &ctx, id)?;
                }
                recovered = true;
            }
            let e = match engine.as_mut() {
                Some(e) => e,
                None => engine.insert(connect(&src)?),
            };
            poll(&mut conn, &ctx, &src, e.as_mut())
        })();
        let base = next_poll(&ctx);
        match result {
            Ok(p) => {
                failures = 0;
                if p.taken > 0 {
                    tracing::info!(dataset = %ds, read = p.read, taken = p.taken, pages = p.pages, "SQL source polled");
                }
                due = Instant::now() + base;
            }
            Err(e) => {
                failures += 1;
                // The connection is opened afresh: a server restarted or
                // a connection lost is met by the next poll's connect.
                engine = None;
                let text = e.to_string();
                tracing::warn!(dataset = %ds, error = %text, failures, "SQL source poll failed; the watermark stays where the last commit left it");
                if let Err(e) = watermark::failed(&conn, &ds, &text, &state::now_text(ctx.tz)) {
                    tracing::error!(dataset = %ds, error = %e, "cannot record the SQL source's error");
                }
                let every = Duration::from_secs(ctx.dataset.poll_secs.unwrap_or(60).max(1));
                let factor = 1u32 << failures.saturating_sub(1).min(5);
                due = Instant::now() + (every * factor.min(30)).min(every * 30);
            }
        }
    }
}
