//! `fepd doctor`: checks that the store agrees with itself and with the
//! disk, names what does not with what it means and what fixes it, and
//! (`--fix`, daemon stopped) applies the fixes that cannot lose or repeat
//! anything. The rules, each a [`Rule`]:
//!
//! - `database`: SQLite's integrity check passes (a damaged page is named
//!   with the recovery steps; never repaired here).
//! - `exchange_log`: the hash chain verifies (as `fepd audit verify`).
//! - `outbox_file`: every `exported` batch has its file in the outbox
//!   folder, or an acknowledgement beside where it was. Fix: the batch goes
//!   back to `sealed` and the forwarder writes it again (the library
//!   de-duplicates by batch id, docs/protocol.md §4).
//! - `work_orphan`: every file in a dataset's `work/` is one fepd claimed.
//!   A file put there by hand would be read at the next start without
//!   intake's checks (it may still be being written). Fix: back to the
//!   inbox, where intake takes it once complete.
//! - `work_unconfigured`: no `work/` of a dataset the config no longer has
//!   holds files (nothing would ever read them).
//! - `file_missing`: every file being read is in `work/`, and every file
//!   with a verdict is in `done/` or `rejected/` under its reserved final
//!   name (or still in `work/`, moved at the next start) until retention
//!   may have deleted it.
//! - `batch_body`: every batch still to be delivered has its body.
//! - `half_deleted`: retention left no part of what it deletes together
//!   (a receipt or report whose file it deleted, an `.ack` in
//!   `delivered/` whose batch file it deleted). Fix: removed, as the
//!   interrupted pass would have.
//! - `temp_leftover`: no half-written temporary file (`.NAME.tmp`) is left
//!   in the spool or the outbox folders by an interrupted write. Checked
//!   only while the daemon is stopped (a running one may be writing one).
//!   Fix: removed.
//!
//! The SQL is in `state::doctor`; a batch's state changes only through
//! `outbox`.

mod check;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use check::{examine, examine_copy};

/// A consistency rule (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Database,
    ExchangeLog,
    OutboxFile,
    WorkOrphan,
    WorkUnconfigured,
    FileMissing,
    BatchBody,
    HalfDeleted,
    TempLeftover,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Database => "database",
            Rule::ExchangeLog => "exchange_log",
            Rule::OutboxFile => "outbox_file",
            Rule::WorkOrphan => "work_orphan",
            Rule::WorkUnconfigured => "work_unconfigured",
            Rule::FileMissing => "file_missing",
            Rule::BatchBody => "batch_body",
            Rule::HalfDeleted => "half_deleted",
            Rule::TempLeftover => "temp_leftover",
        }
    }
}

/// A repair `--fix` applies: it loses nothing and sends nothing twice in
/// effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "repair", rename_all = "snake_case")]
pub enum Repair {
    /// `exported` → `sealed`: the pull forwarder writes the file again.
    ExportAgain { batch_id: String },
    /// A file fepd did not claim goes back to the inbox.
    BackToInbox { from: PathBuf, to: PathBuf },
    /// A half-written temporary file, or what an interrupted retention
    /// pass left, is removed.
    Remove { path: PathBuf },
}

/// What to do about a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// `fepd doctor --fix` does it.
    Repair(Repair),
    /// An operator must: the steps, with the commands.
    Manual { steps: String },
}

/// One thing found wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: Rule,
    /// What it is about: a batch id, a path, the database file.
    pub subject: String,
    /// What is wrong and what it means.
    pub problem: String,
    pub action: Action,
}

impl Finding {
    fn manual(rule: Rule, subject: impl Into<String>, problem: String, steps: String) -> Finding {
        Finding {
            rule,
            subject: subject.into(),
            problem,
            action: Action::Manual { steps },
        }
    }

    fn repair(rule: Rule, subject: impl Into<String>, problem: String, r: Repair) -> Finding {
        Finding {
            rule,
            subject: subject.into(),
            problem,
            action: Action::Repair(r),
        }
    }
}

/// Why the doctor could not examine the store at all.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error("no state database at {0} (has fepd run with this config?)")]
    NoDatabase(PathBuf),
    #[error(transparent)]
    Store(#[from] crate::state::StoreError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

/// Applies one repair (daemon stopped: the caller holds the instance
/// lock). Returns what was done, for the operator.
pub fn repair(cfg: &crate::config::Config, r: &Repair) -> Result<String, crate::state::StoreError> {
    use crate::state::{StoreError, batches};
    match r {
        Repair::ExportAgain { batch_id } => {
            let mut conn = crate::state::open(&cfg.state_db())?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let done = match batches::get(&tx, batch_id)? {
                Some(b) => crate::outbox::export_again(
                    &tx,
                    cfg.tz(),
                    &b,
                    "its file was missing from the outbox folder",
                    "fepd doctor --fix",
                )?,
                None => false,
            };
            tx.commit()?;
            Ok(if done {
                format!("batch {batch_id}: will be written to the outbox folder again")
            } else {
                format!("batch {batch_id}: no longer exported; left as it is")
            })
        }
        Repair::BackToInbox { from, to } => {
            if to.exists() {
                return Ok(format!(
                    "{}: not moved, {} exists; move it by hand under another name",
                    from.display(),
                    to.display()
                ));
            }
            crate::fsio::move_durable(from, to).map_err(StoreError::at(from))?;
            Ok(format!("{} → {}", from.display(), to.display()))
        }
        Repair::Remove { path } => {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(path, e)),
            }
            Ok(format!("{}: removed", path.display()))
        }
    }
}

/// `.NAME.tmp`: what `fsio::write_atomic` writes before its rename.
fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp") && name.len() > 5
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}
