//! Changing the sink mode safely (pull ⇄ push), at every start or reload.
//!
//! Pull → push: acknowledgements the collector already wrote are recorded
//! first (nothing it took is sent again), then every batch still
//! `exported` goes back to `sealed` in its original place in its route's
//! order, and its outbox file is withdrawn: the push forwarder sends them
//! before anything sealed later. Push → pull needs nothing: pull mode
//! exports every `sealed` batch, in seal order, including those push mode
//! had not delivered yet. Either way, credential refusals of the previous
//! config are forgotten (a reload is the operator's fix for them).

use std::path::Path;

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};

use super::pull::Outbox;
use crate::config::{Config, SinkMode};
use crate::outbox::{self, BatchState};
use crate::state::StoreError;
use crate::state::batches;

/// Why the outbox could not be prepared: the state database (opening
/// it, or a transaction), whatever the store's own error type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SwitchError(#[source] Box<dyn std::error::Error + Send + Sync>);

impl SwitchError {
    fn state(e: impl std::error::Error + Send + Sync + 'static) -> SwitchError {
        SwitchError(Box::new(e))
    }
}

/// What the switch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    /// Acknowledgements recorded before the switch.
    pub acknowledged: usize,
    /// Exported batches taken back for pushing.
    pub requeued: usize,
    /// Outbox files withdrawn.
    pub withdrawn: usize,
}

/// Prepares the outbox for the configured sink mode; run by the daemon
/// before its forwarder starts.
pub fn on_start(db: &Path, cfg: &Config, tz: FixedOffset) -> Result<Switched, SwitchError> {
    let mut conn = crate::state::open(db).map_err(SwitchError::state)?;
    let cleared = crate::state::auth::clear(&conn).map_err(SwitchError::state)?;
    if cleared > 0 {
        tracing::info!(
            routes = cleared,
            "credential refusals of the previous run forgotten: the next token request is made at once"
        );
    }
    if cfg.sink.mode != SinkMode::Http {
        return Ok(Switched::default());
    }
    to_push(&mut conn, &cfg.sink.outbox_dir, &cfg.spool_dir, tz).map_err(SwitchError::state)
}

/// Pull → push: see the module comment.
pub fn to_push(
    conn: &mut Connection,
    outbox_dir: &Path,
    spool: &Path,
    tz: FixedOffset,
) -> Result<Switched, StoreError> {
    let mut out = Switched::default();
    // Without the outbox folder (a state restored onto another host, a
    // folder removed or moved in the config) there are no acks to record,
    // but the exported batches must still be taken back: in push mode an
    // `exported` batch is pending for no one.
    let has_outbox = outbox_dir.is_dir();
    if has_outbox {
        let mut outbox = Outbox::new(outbox_dir.to_path_buf(), spool.to_path_buf(), tz);
        let (delivered, parked) = outbox.acknowledge(conn)?;
        out.acknowledged = delivered + parked;
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let per_dataset = outbox::requeue_exported(&tx, tz)?;
    out.requeued = per_dataset.iter().map(|(_, n)| n).sum();
    tx.commit()?;
    if !has_outbox {
        return Ok(out);
    }
    // The batches are pending in the database now; their files in the
    // outbox would only tempt the collector. A crash before this point
    // leaves files that the next start removes here.
    for ds in std::fs::read_dir(outbox_dir)
        .map_err(|e| StoreError::Io {
            path: outbox_dir.display().to_string(),
            source: e,
        })?
        .flatten()
        .filter(|e| e.path().is_dir())
    {
        for f in std::fs::read_dir(ds.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if name.starts_with('.') || !f.path().is_file() {
                continue;
            }
            match batches::get(conn, id)? {
                Some(b) if b.state != BatchState::Exported => {
                    if let Err(e) = std::fs::remove_file(f.path()) {
                        tracing::warn!(file = %f.path().display(), error = %e, "could not withdraw an outbox file");
                    } else {
                        out.withdrawn += 1;
                    }
                }
                _ => {}
            }
        }
    }
    if out.requeued > 0 || out.withdrawn > 0 {
        tracing::warn!(
            acknowledged = out.acknowledged,
            requeued = out.requeued,
            withdrawn = out.withdrawn,
            "sink switched to push: batches exported for the collector are pushed first, in seal order; their outbox files were withdrawn"
        );
    }
    Ok(out)
}
