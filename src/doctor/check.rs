//! The checks, in the order of the rules in the module doc.

use std::path::Path;

use chrono::Utc;
use rusqlite::Connection;

use super::{DoctorError, Finding, Repair, Rule, is_temp, shown};
use crate::config::Config;
use crate::spool::{ClaimName, Spool};
use crate::state::doctor::{self as q, FilePlace};
use crate::state::files::FileState;
use crate::state::{self, StoreError};

/// At most this many messages of SQLite's integrity check are shown.
const INTEGRITY_MESSAGES: usize = 20;

/// Examines the store of `cfg` and the disk around it. `daemon_running`
/// leaves out what a running daemon may be in the middle of writing.
pub fn examine(cfg: &Config, daemon_running: bool) -> Result<Vec<Finding>, DoctorError> {
    let db = cfg.state_db();
    let conn = match open(&db)? {
        Ok(c) => c,
        Err(damaged) => return Ok(vec![damaged]),
    };
    let mut out = database(&conn, &db)?;
    if !out.is_empty() {
        // Queries over damaged pages may fail or mislead: the database
        // comes first.
        return Ok(out);
    }
    out.extend(exchange_log(&conn)?);
    out.extend(outbox_files(cfg, &conn)?);
    out.extend(work_folders(cfg, &conn)?);
    out.extend(files_in_place(cfg, &conn)?);
    out.extend(batch_bodies(&conn)?);
    out.extend(half_deleted(cfg, &conn)?);
    if !daemon_running {
        out.extend(temp_leftovers(cfg));
    }
    Ok(out)
}

/// Examines a copy of a state database (a backup, before it is restored):
/// the database and its exchange log only, since no spool goes with it.
pub fn examine_copy(db: &Path) -> Result<Vec<Finding>, DoctorError> {
    let conn = match open(db)? {
        Ok(c) => c,
        Err(damaged) => return Ok(vec![damaged]),
    };
    let mut out = database(&conn, db)?;
    if out.is_empty() {
        out.extend(exchange_log(&conn)?);
    }
    Ok(out)
}

/// The database opened for reading, or the `database` finding when SQLite
/// cannot use it (the error names the recovery steps itself).
fn open(db: &Path) -> Result<Result<Connection, Finding>, DoctorError> {
    if !db.exists() {
        return Err(DoctorError::NoDatabase(db.to_owned()));
    }
    match state::open_read_only(db) {
        Ok(c) => Ok(Ok(c)),
        Err(e @ (StoreError::Unusable { .. } | StoreError::WalMissing { .. })) => {
            Ok(Err(Finding::manual(
                Rule::Database,
                shown(db),
                e.to_string(),
                "see the steps above".into(),
            )))
        }
        Err(e) => Err(e.into()),
    }
}

fn database(conn: &Connection, db: &Path) -> Result<Vec<Finding>, DoctorError> {
    let found = match q::integrity(conn, INTEGRITY_MESSAGES) {
        Ok(found) => found,
        // A page too damaged for the check itself to read.
        Err(e) => vec![e.to_string()],
    };
    if found.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Finding::manual(
        Rule::Database,
        shown(db),
        format!(
            "SQLite's integrity check fails: {}. Pages of the state database are damaged (a disk error, a copy taken while it was written, or an edit); what they held cannot be trusted.",
            found.join("; ")
        ),
        state::recovery_steps(&db.display().to_string()),
    )])
}

fn exchange_log(conn: &Connection) -> Result<Vec<Finding>, DoctorError> {
    let v = crate::audit::verify::verify(conn, &[], None)?;
    Ok(match v.log.broken {
        None => Vec::new(),
        Some(b) => vec![Finding::manual(
            Rule::ExchangeLog,
            format!("exchange log entry {}", b.seq),
            format!(
                "the exchange log's hash chain breaks: {}. Entries were changed, removed or inserted outside fepd.",
                b.message
            ),
            "Keep the database as it is (it is the evidence). `fepd audit verify --witness HEADS` compares the log with the heads the library acknowledged; restore the state folder from a backup whose log verifies, and report the break to the auditors (docs/zh/审计员指南.md).".into(),
        )],
    })
}

fn outbox_files(cfg: &Config, conn: &Connection) -> Result<Vec<Finding>, DoctorError> {
    let mut out = Vec::new();
    for b in q::exported(conn).map_err(StoreError::from)? {
        let dir = cfg.sink.outbox_dir.join(&b.dataset);
        let id = &b.batch_id;
        let present = [
            format!("{id}.json"),
            format!("{id}.ack"),
            format!("{id}.nack"),
        ]
        .iter()
        .any(|n| dir.join(n).exists());
        if present {
            continue;
        }
        out.push(Finding::repair(
            Rule::OutboxFile,
            format!("batch {id}"),
            format!(
                "batch {id} ({} records of {}) is marked as written to the outbox folder, but {} is not there and no .ack or .nack came for it: the collector will never take it.",
                b.count,
                b.dataset,
                dir.join(format!("{id}.json")).display()
            ),
            Repair::ExportAgain {
                batch_id: id.clone(),
            },
        ));
    }
    Ok(out)
}

fn work_folders(cfg: &Config, conn: &Connection) -> Result<Vec<Finding>, DoctorError> {
    let mut out = Vec::new();
    for d in &cfg.datasets {
        let spool = Spool::new(&cfg.spool_dir, &d.name);
        for name in crate::intake::scan::leftovers(&spool.work) {
            if ClaimName::parse(&name).is_some()
                || q::knows_work_name(conn, &name).map_err(StoreError::from)?
            {
                continue;
            }
            let from = spool.work.join(&name);
            out.push(Finding::repair(
                Rule::WorkOrphan,
                shown(&from),
                format!(
                    "{} is in work/ but fepd never claimed it (claimed files are named <claim id>~<name>): it would be read at the next start without intake's checks, perhaps while it is still being written.",
                    from.display()
                ),
                Repair::BackToInbox {
                    to: spool.inbox.join(&name),
                    from,
                },
            ));
        }
    }
    // Dataset folders the config no longer names.
    let configured: Vec<&str> = cfg.datasets.iter().map(|d| d.name.as_str()).collect();
    let Ok(entries) = std::fs::read_dir(&cfg.spool_dir) else {
        return Ok(out);
    };
    let mut gone: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !configured.contains(&n.as_str()))
        .collect();
    gone.sort();
    for name in gone {
        let work = Spool::new(&cfg.spool_dir, &name).work;
        let files = crate::intake::scan::leftovers(&work);
        if files.is_empty() {
            continue;
        }
        out.push(Finding::manual(
            Rule::WorkUnconfigured,
            shown(&work),
            format!(
                "{} holds {} file(s) of dataset {name:?}, which the config no longer has: nothing will read them.",
                work.display(),
                files.len()
            ),
            format!(
                "Add [[dataset]] {name:?} back to the config and restart fepd (they are resumed from their checkpoints), or move them out of {} if they are not to be sent.",
                work.display()
            ),
        ));
    }
    Ok(out)
}

/// Unix seconds before which retention may have deleted a file with a
/// verdict `state` (`i64::MIN`: it keeps them for ever).
fn horizon(cfg: &Config, state: FileState, now: i64) -> i64 {
    let r = &cfg.retention;
    let keep = if state == FileState::Rejected {
        r.rejected_files.0
    } else {
        r.done_files.0
    };
    match keep {
        Some(d) => now - d.as_secs() as i64,
        None => i64::MIN,
    }
}

fn files_in_place(cfg: &Config, conn: &Connection) -> Result<Vec<Finding>, DoctorError> {
    let now = Utc::now().timestamp();
    let since = horizon(cfg, FileState::Done, now).min(horizon(cfg, FileState::Rejected, now));
    let mut out = Vec::new();
    for f in q::file_places(conn, since).map_err(StoreError::from)? {
        let spool = Spool::new(&cfg.spool_dir, &f.dataset);
        let in_work = spool.claimed(&f.work_name).exists();
        if in_work {
            continue;
        }
        if !f.state.is_final() {
            out.push(lost_while_read(&spool, &f));
            continue;
        }
        let Some(final_name) = &f.final_name else {
            continue;
        };
        if f.finished.unwrap_or(now) < horizon(cfg, f.state, now) {
            continue;
        }
        let at = spool.verdict_dir(f.state).join(final_name);
        if !at.exists() {
            out.push(Finding::manual(
                Rule::FileMissing,
                shown(&at),
                format!(
                    "file {} (verdict {}) should be at {}, but it is neither there nor in work/: it was moved or deleted by hand before retention's time.",
                    f.name,
                    f.state.as_str(),
                    at.display()
                ),
                "Nothing was lost for the library (its records were sealed before the verdict). Put the file back if data staff need it, or ignore this once you know where it went.".into(),
            ));
        }
    }
    Ok(out)
}

fn lost_while_read(spool: &Spool, f: &FilePlace) -> Finding {
    let at = spool.claimed(&f.work_name);
    Finding::manual(
        Rule::FileMissing,
        shown(&at),
        format!(
            "file {} (id {}) is being read — {} record(s) done — but {} is gone: the records after that checkpoint will never be read.",
            f.name,
            f.id,
            f.records_done,
            at.display()
        ),
        format!(
            "Drop the original {} into {} again: the records already sealed are skipped as unchanged, the rest are sent.",
            f.name,
            spool.inbox.display()
        ),
    )
}

fn batch_bodies(conn: &Connection) -> Result<Vec<Finding>, DoctorError> {
    Ok(q::pending_without_body(conn)
        .map_err(StoreError::from)?
        .into_iter()
        .map(|b| {
            let from = b
                .file
                .as_deref()
                .map(|f| format!(" of file {f}"))
                .unwrap_or_default();
            Finding::manual(
                Rule::BatchBody,
                format!("batch {}", b.batch_id),
                format!(
                    "batch {} ({} records{from}, {}) has no body in the state database: it cannot be sent.",
                    b.batch_id,
                    b.count,
                    b.state.as_str()
                ),
                format!(
                    "Park it so the route goes on (`fepd batches park {} --reason \"body lost\"`), then drop the source file{from} into the {} inbox again: its records are sealed into a new batch.",
                    b.batch_id, b.dataset
                ),
            )
        })
        .collect())
}

/// Names in `dir` (regular files, not temporary ones), sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Retention deletes a file with its receipts and reports, and a batch
/// body with its `.ack` (`retention::sweep`); a pass interrupted between
/// two unlinks leaves part of a group. What is left describes what is
/// gone: removing it is what the pass would have done. A file that is
/// missing before retention's time is `file_missing`'s, not this rule's.
fn half_deleted(cfg: &Config, conn: &Connection) -> Result<Vec<Finding>, DoctorError> {
    let now = Utc::now().timestamp();
    let mut out = Vec::new();
    for d in &cfg.datasets {
        let spool = Spool::new(&cfg.spool_dir, &d.name);
        for state in [FileState::Done, FileState::Rejected] {
            let dir = spool.verdict_dir(state);
            let names = names_in(dir);
            for n in &names {
                let Some(file) = crate::report::companion_of(n) else {
                    continue;
                };
                if names.binary_search_by(|x| x.as_str().cmp(file)).is_ok() {
                    continue;
                }
                let Some(v) = q::verdict_named(conn, &d.name, file).map_err(StoreError::from)?
                else {
                    continue;
                };
                let page = v.format.as_deref() == Some(crate::daemon::job::rows::FORMAT);
                if page || v.finished.unwrap_or(now) >= horizon(cfg, v.state, now) {
                    continue;
                }
                let path = dir.join(n);
                out.push(Finding::repair(
                    Rule::HalfDeleted,
                    shown(&path),
                    format!(
                        "{} is left over from {file}, which retention deleted (its verdict, {}, is older than retention keeps such files): the pass that deleted it was interrupted. The file's counts stay in the state database and the exchange log.",
                        path.display(),
                        state.as_str()
                    ),
                    Repair::Remove { path },
                ));
            }
        }
        let delivered = cfg.sink.outbox_dir.join(&d.name).join("delivered");
        let names = names_in(&delivered);
        for n in &names {
            let Some(id) = n.strip_suffix(".ack") else {
                continue;
            };
            let body = format!("{id}.json");
            if names.binary_search(&body).is_ok()
                || !q::is_delivered(conn, id).map_err(StoreError::from)?
            {
                continue;
            }
            let path = delivered.join(n);
            out.push(Finding::repair(
                Rule::HalfDeleted,
                shown(&path),
                format!(
                    "{} is the collector's acknowledgement of batch {id}, whose file retention deleted: the pass was interrupted. The delivery stays recorded in the state database (fepd batches show {id}).",
                    path.display()
                ),
                Repair::Remove { path },
            ));
        }
    }
    Ok(out)
}

fn temp_leftovers(cfg: &Config) -> Vec<Finding> {
    let mut dirs = Vec::new();
    for d in &cfg.datasets {
        let s = Spool::new(&cfg.spool_dir, &d.name);
        let outbox = cfg.sink.outbox_dir.join(&d.name);
        dirs.extend([
            s.inbox.parent().map(Path::to_path_buf),
            Some(s.work),
            Some(s.done),
            Some(s.rejected),
            Some(outbox.join("delivered")),
            Some(outbox.join("parked")),
            Some(outbox),
        ]);
    }
    let mut out = Vec::new();
    for dir in dirs.into_iter().flatten() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_temp(n))
            .collect();
        names.sort();
        for n in names {
            let path = dir.join(&n);
            out.push(Finding::repair(
                Rule::TempLeftover,
                shown(&path),
                format!(
                    "{} is a half-written temporary file left by an interrupted write (fepd writes .NAME.tmp, then renames it); nothing refers to it.",
                    path.display()
                ),
                Repair::Remove { path },
            ));
        }
    }
    out
}
