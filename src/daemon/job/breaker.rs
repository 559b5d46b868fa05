//! Breaker: a file whose attempts keep killing fepd is set aside, whatever
//! the cause.
//!
//! Parser limits stop the hostile files we know of; this stops the ones we
//! do not, independently of any parser. Before any work on a file in
//! `work/` starts, its attempt is committed to the state database
//! (`file_attempt`, one row per file) with the id of this process and the
//! file's checkpoint. An attempt that returns, however it ended, removes
//! the row, and a verdict removes it with the verdict. So a row left by
//! another process at the next start means that process died during the
//! attempt: an abort, a stack overflow, the allocator giving up, the OOM
//! killer — or a plain `kill -9` or power loss, which look the same.
//!
//! Constraints:
//! - A death only counts while the checkpoint has not moved since the
//!   attempt before it started: a file that makes progress between deaths
//!   (a big file on a host that is restarted now and then) is never set
//!   aside.
//! - After a death the file is *deferred*: at the next start it is taken
//!   only once its dataset's queue has been idle for `settle_secs` + 1 s, so
//!   the files already in the inbox (and other datasets, which have their
//!   own workers) go first, and a random kill rarely lands on the same file
//!   twice.
//! - When [`DEAD_ATTEMPTS`] attempts in a row died without progress, the
//!   file is moved to `rejected/` with a report saying so in Chinese,
//!   without reading it again beyond its hash. Records that earlier
//!   attempts committed stay committed and are counted in the report.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::lifecycle::{self, Why};
use super::{DatasetCtx, Outcome};
use crate::parse::Format;
use crate::report::{self, BatchRef, FileSummary};
use crate::spool::original_name;
use crate::state::StoreError;
use crate::state::files::{self, FileRow, FileState};
use crate::state::{self};

/// Attempts in a row that may die without progress before the file is set
/// aside: the daemon dies at most this often on one file.
pub const DEAD_ATTEMPTS: i64 = 2;

/// What to do with a file at the start of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go on; `dead` earlier attempts died without progress.
    Go { dead: i64 },
    /// Set the file aside: `dead` attempts in a row died without progress.
    SetAside { dead: i64 },
}

/// This process in `file_attempt` rows: unique per start, unlike a pid,
/// which a restarted service may well get again.
fn process_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| ulid::Ulid::generate().to_string())
}

/// Commits the start of an attempt on `work_name` (whose row, if any, is
/// `existing`) and says whether to go on.
pub fn begin(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    work_name: &str,
    existing: Option<&FileRow>,
) -> Result<Attempt, StoreError> {
    let ds = ctx.dataset.name.as_str();
    let checkpoint = existing.map_or(0, |r| r.records_done);
    let now = state::now_text(ctx.tz);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let dead = files::begin_attempt(&tx, ds, work_name, process_id(), checkpoint, &now)?;
    tx.commit()?;
    let file = original_name(work_name);
    if dead >= DEAD_ATTEMPTS {
        return Ok(Attempt::SetAside { dead });
    }
    if dead > 0 {
        tracing::warn!(
            dataset = ds, file = %file, dead_attempts = dead, limit = DEAD_ATTEMPTS,
            "fepd died during an earlier attempt on this file without making progress; trying again (it is set aside once the limit is reached)"
        );
    }
    abort_if_asked(file);
    Ok(Attempt::Go { dead })
}

/// The attempt on `work_name` returned without a verdict (drain, error,
/// unreadable file): it did not die. A failure here is only logged: at
/// worst a later start counts one death too many.
pub fn end(conn: &Connection, dataset: &str, work_name: &str) {
    if let Err(e) = files::end_attempt(conn, work_name) {
        tracing::warn!(dataset, file = %original_name(work_name), error = %e, "could not record the end of an attempt");
    }
}

/// The files among `names` (in `work/`) that an earlier process died on;
/// they are deferred at start-up (see the module doc).
pub fn died_on(conn: &Connection, names: &[String]) -> rusqlite::Result<Vec<String>> {
    let mut out = Vec::new();
    for n in names {
        if files::attempt_of(conn, n)?.is_some() {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// How long a worker's queue stays empty before it does its idle chores.
pub const IDLE_WORK_AFTER: Duration = Duration::from_secs(1);

/// Files a worker takes only once its queue has been idle for `idle`:
/// long enough for the files already in the inbox at start-up to settle,
/// be claimed and go first.
pub struct Deferred {
    files: VecDeque<String>,
    idle: Duration,
}

impl Deferred {
    fn idle_or_forever(&self) -> Duration {
        match self.files.is_empty() {
            true => Duration::MAX,
            false => self.idle,
        }
    }

    pub fn new(files: Vec<String>, idle: Duration) -> Deferred {
        Deferred {
            files: files.into(),
            idle,
        }
    }

    /// The next file: from the queue, or a deferred one once the queue
    /// has been idle; `None` once the queue is closed. `on_idle` runs once
    /// when the queue has stayed empty for [`IDLE_WORK_AFTER`] (the
    /// worker's chores that would slow intake down: `state::recent::merge`).
    pub fn next(
        &mut self,
        rx: &mpsc::Receiver<String>,
        on_idle: &mut dyn FnMut(),
    ) -> Option<String> {
        match rx.recv_timeout(IDLE_WORK_AFTER.min(self.idle_or_forever())) {
            Ok(name) => return Some(name),
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if IDLE_WORK_AFTER <= self.idle_or_forever() {
            on_idle();
        }
        if self.files.is_empty() {
            return rx.recv().ok();
        }
        match rx.recv_timeout(self.idle.saturating_sub(IDLE_WORK_AFTER)) {
            Ok(name) => Some(name),
            Err(mpsc::RecvTimeoutError::Timeout) => self.files.pop_front(),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        }
    }
}

/// Moves `work/<work_name>` to `rejected/` with a report: attempts on it
/// died `dead` times in a row without progress. Only its bytes are hashed
/// (for its identity); nothing decodes or parses it.
pub fn set_aside(
    conn: &mut Connection,
    ctx: &DatasetCtx,
    work_name: &str,
    existing: Option<FileRow>,
    dead: i64,
) -> Result<Outcome, StoreError> {
    let ds = ctx.dataset.name.as_str();
    let name = original_name(work_name).to_string();
    let path = ctx.paths.claimed(work_name);
    let (sha256, size) = match hash(&path) {
        Ok(x) => x,
        Err(e) => return Ok(Outcome::Unreadable(e.to_string())),
    };
    let format = Format::from_name(&name).map_or("unknown", Format::name);
    let now = state::now_text(ctx.tz);
    let row = match existing {
        Some(row) => row,
        None => {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let claim = lifecycle::Claim {
                dataset: ds,
                name: &name,
                work_name,
                sha256: &sha256,
                size,
                format,
                encoding: None,
                claimed_at: &now,
            };
            let file_id = lifecycle::claim(&tx, ctx.tz, &claim)?;
            tx.commit()?;
            files::by_id(conn, file_id)?.expect("row just inserted")
        }
    };
    let dir = &ctx.paths.rejected;
    let final_name = lifecycle::reserve_final_name(conn, &row, dir)?;
    let fault = fault_text(dead, &row);
    let batches: Vec<BatchRef> = files::batches_of(conn, row.id)?
        .into_iter()
        .map(|(batch_id, count, digest)| BatchRef {
            batch_id,
            count,
            digest,
        })
        .collect();
    let errors = files::rejections_of(conn, row.id)?;
    let claimed_at = files::claimed_at(conn, row.id)?;
    let summary = FileSummary {
        file: &row.name,
        dataset: ds,
        sha256: Some(&sha256),
        size: Some(size),
        format: Some(format),
        encoding: None,
        verdict: FileState::Rejected.as_str(),
        counts: row.counts,
        fault: Some(&fault),
        duplicate_of: None,
        batches,
        claimed_at: &claimed_at,
        finished_at: &now,
        warnings: vec![],
        ignored_columns: Vec::new(),
        blank_rows: 0,
        key_title: report::key_title(&ctx.schema),
    };
    report::write_report(dir, &final_name, &summary, &errors).map_err(StoreError::at(dir))?;
    let why = Why::SetAside {
        sha256: &sha256,
        fault: &fault,
        dead,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let state = lifecycle::verdict(&tx, ctx.tz, &row, &final_name, &why, &now)?;
    tx.commit()?;
    let moved = FileRow {
        state,
        final_name: Some(final_name),
        ..row
    };
    super::finish_move(ctx, &moved, &path)?;
    tracing::error!(
        dataset = ds, file = %moved.name, dead_attempts = dead,
        "file set aside in rejected/: fepd died on every attempt at it without making progress"
    );
    Ok(Outcome::Rejected {
        counts: moved.counts,
    })
}

/// The report's fault, in Chinese for data staff.
fn fault_text(dead: i64, row: &FileRow) -> String {
    let mut text = format!(
        "fepd 处理此文件时连续 {dead} 次异常终止，且处理进度没有前进（可能是文件内容触发了程序缺陷）。\
         为保护其他文件的处理，此文件已被移出处理队列，不再读取。"
    );
    if row.records_done > 0 {
        text.push_str(&format!(
            "此前已处理前 {} 条记录（见本报告的计数与批次），其后的记录均未处理。",
            row.records_done
        ));
    } else {
        text.push_str("文件中的记录均未处理。");
    }
    text.push_str("请检查文件内容后重新放入 inbox，并联系运维人员查看 fepd 日志。");
    text
}

/// SHA-256 and size of the file's bytes.
fn hash(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((hex::encode(hasher.finalize()), size));
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
}

/// The breaker's own test (`tests/it/hostile_parse.rs`) needs a worker
/// that really dies mid-attempt: in debug builds only, a file whose name
/// contains `FEPD_TEST_ABORT_ON` aborts the process once its attempt is
/// recorded. Release builds have no such switch.
fn abort_if_asked(file: &str) {
    #[cfg(debug_assertions)]
    {
        static PATTERN: OnceLock<Option<String>> = OnceLock::new();
        let pattern = PATTERN.get_or_init(|| {
            std::env::var("FEPD_TEST_ABORT_ON")
                .ok()
                .filter(|p| !p.is_empty())
        });
        if let Some(p) = pattern
            && file.contains(p.as_str())
        {
            eprintln!("FEPD_TEST_ABORT_ON: aborting on {file}");
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = file;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_files_wait_for_an_idle_queue() {
        let (tx, rx) = mpsc::channel();
        let mut d = Deferred::new(vec!["died".into()], Duration::from_millis(50));
        tx.send("a".to_string()).unwrap();
        tx.send("b".to_string()).unwrap();
        assert_eq!(d.next(&rx, &mut || {}).as_deref(), Some("a"));
        assert_eq!(d.next(&rx, &mut || {}).as_deref(), Some("b"));
        // Nothing queued for `idle`: the deferred file's turn.
        assert_eq!(d.next(&rx, &mut || {}).as_deref(), Some("died"));
        tx.send("c".to_string()).unwrap();
        drop(tx);
        assert_eq!(d.next(&rx, &mut || {}).as_deref(), Some("c"));
        assert_eq!(d.next(&rx, &mut || {}), None);
    }
}
