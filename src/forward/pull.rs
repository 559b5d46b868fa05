//! Pull mode (docs/protocol.md §5), one of the two delivery modes: each
//! sealed batch is written to `{outbox}/{dataset}/{batchId}.json`; a
//! `{batchId}.ack` beside it marks it delivered, a `{batchId}.nack` parks
//! it; both files then move to `delivered/` or `parked/`. This module
//! handles the files; the state changes are `crate::outbox`'s (`export`,
//! `record_delivery`, `park`).
//!
//! Crash safety: the batch file is written to a temporary name, fsynced,
//! renamed and its folder fsynced before the batch is marked exported; an
//! acknowledgement is committed to the state database before the files are
//! moved, and a restart finishes any move that was cut short.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};
use serde::Deserialize;

use crate::fsio;
use crate::outbox::{self, BatchState, RemoteRejected};
use crate::state::log::Parking;
use crate::state::{StoreError, batches};

/// The body of a `.ack` file: the `data` of a 200 response.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    pub receipt_id: String,
    #[serde(default)]
    pub accepted: Option<i64>,
    #[serde(default)]
    pub rejected: Vec<RemoteRejected>,
    #[serde(default)]
    pub duplicate: bool,
}

/// The body of a `.nack` file.
#[derive(Debug, Clone, Deserialize)]
pub struct Nack {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The pull-mode outbox folder of one deployment: its batch files and
/// acknowledgements (the batches' states are `crate::outbox`'s).
pub struct Outbox {
    pub dir: PathBuf,
    /// `spool/` — library refusals are reported beside their source file.
    pub spool: PathBuf,
    pub tz: FixedOffset,
    /// The dataset schemas, to mask refused records in those reports.
    pub catalog: crate::validate::Catalog,
    /// Acknowledgement files already warned about (unreadable, unknown id).
    warned: std::collections::HashSet<PathBuf>,
    /// Where `/healthz` and `/metrics` learn of deliveries.
    pub health: std::sync::Arc<crate::daemon::health::Health>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub exported: usize,
    pub delivered: usize,
    pub parked: usize,
}

impl Outbox {
    pub fn new(dir: PathBuf, spool: PathBuf, tz: FixedOffset) -> Outbox {
        Outbox {
            dir,
            spool,
            tz,
            catalog: Default::default(),
            warned: Default::default(),
            health: Default::default(),
        }
    }

    /// The schemas that mask records the library refused, in their reports.
    pub fn with_catalog(mut self, catalog: crate::validate::Catalog) -> Outbox {
        self.catalog = catalog;
        self
    }

    /// Exports sealed batches and handles acknowledgements, once.
    pub fn pass(&mut self, conn: &mut Connection) -> Result<Pass, StoreError> {
        let exported = self.export(conn)?;
        let (delivered, parked) = self.acknowledge(conn)?;
        Ok(Pass {
            exported,
            delivered,
            parked,
        })
    }

    /// Writes every `sealed` batch to the outbox, in seal order.
    pub fn export(&mut self, conn: &mut Connection) -> Result<usize, StoreError> {
        let mut n = 0;
        loop {
            let pending = batches::list(conn, Some(BatchState::Sealed), None, 200)?;
            if pending.is_empty() {
                return Ok(n);
            }
            for b in pending {
                let body = batches::body(conn, &b.batch_id)?.unwrap_or_default();
                let dir = self.dir.join(&b.dataset);
                fsio::write_atomic(&dir, &format!("{}.json", b.batch_id), &body)
                    .map_err(|e| StoreError::io(&dir, e))?;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                outbox::export(&tx, self.tz, &b)?;
                tx.commit()?;
                n += 1;
            }
        }
    }

    /// Handles every `.ack` and `.nack` in the outbox folders.
    pub fn acknowledge(&mut self, conn: &mut Connection) -> Result<(usize, usize), StoreError> {
        let (mut delivered, mut parked) = (0, 0);
        let Ok(datasets) = fs::read_dir(&self.dir) else {
            return Ok((0, 0));
        };
        for ds in datasets
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
        {
            let dir = ds.path();
            let mut names: Vec<String> = fs::read_dir(&dir)
                .map_err(|e| StoreError::io(&dir, e))?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') && (n.ends_with(".ack") || n.ends_with(".nack")))
                .collect();
            names.sort();
            for name in names {
                let path = dir.join(&name);
                let handled = if let Some(id) = name.strip_suffix(".ack") {
                    self.handle_ack(conn, &dir, id, &path)?
                } else if let Some(id) = name.strip_suffix(".nack") {
                    self.handle_nack(conn, &dir, id, &path)?
                } else {
                    None
                };
                match handled {
                    Some(true) if name.ends_with(".ack") => delivered += 1,
                    Some(true) => parked += 1,
                    _ => {}
                }
            }
        }
        Ok((delivered, parked))
    }

    fn warn_once(&mut self, path: &Path, what: &str) {
        if self.warned.insert(path.to_owned()) {
            tracing::warn!(file = %path.display(), "{what}");
        }
    }

    /// The batch an `.ack`/`.nack` file names and the file's body; `None`
    /// (with a warning, once) when the batch is unknown or the body is not
    /// valid JSON yet — the file is left in place and tried again.
    fn read_marker<T: serde::de::DeserializeOwned>(
        &mut self,
        conn: &Connection,
        id: &str,
        path: &Path,
        what: &str,
    ) -> Result<Option<(batches::BatchRow, T)>, StoreError> {
        let Some(b) = batches::get(conn, id)? else {
            self.warn_once(
                path,
                &format!("{what} for a batch this sender never sealed; left in place"),
            );
            return Ok(None);
        };
        let text = match read_marker_file(path) {
            Ok(t) => t,
            Err(e) => {
                // A link, a FIFO, a device or a huge file: never followed,
                // never waited on, never read whole; the other
                // acknowledgements go on.
                self.warn_once(path, &format!("{what} refused ({e}); left in place"));
                return Ok(None);
            }
        };
        match serde_json::from_slice(&text) {
            Ok(body) => Ok(Some((b, body))),
            Err(e) => {
                self.warn_once(
                    path,
                    &format!("{what} is not valid JSON ({e}); left in place"),
                );
                Ok(None)
            }
        }
    }

    /// `Some(true)` when this call recorded the delivery, `Some(false)` when
    /// it was recorded before (only the move was left), `None` when the
    /// acknowledgement could not be used yet.
    fn handle_ack(
        &mut self,
        conn: &mut Connection,
        dir: &Path,
        id: &str,
        path: &Path,
    ) -> Result<Option<bool>, StoreError> {
        let Some((b, ack)) = self.read_marker::<Ack>(conn, id, path, "acknowledgement")? else {
            return Ok(None);
        };
        let fresh = outbox::record_delivery(
            conn,
            self.tz,
            &self.spool,
            &self.catalog,
            &b,
            &outbox::Delivery {
                receipt_id: &ack.receipt_id,
                accepted: ack.accepted,
                rejected: &ack.rejected,
                duplicate: ack.duplicate,
                via: "outbox",
                attempts: None,
                accept_parked: true,
            },
        )?;
        self.move_pair(dir, id, "ack", "delivered")?;
        if fresh {
            self.health.delivered(&b.route, &b.sealed_at);
        }
        Ok(Some(fresh))
    }

    /// Like [`Outbox::handle_ack`], for a collector's refusal: park.
    fn handle_nack(
        &mut self,
        conn: &mut Connection,
        dir: &Path,
        id: &str,
        path: &Path,
    ) -> Result<Option<bool>, StoreError> {
        let Some((b, nack)) = self.read_marker::<Nack>(conn, id, path, "refusal")? else {
            return Ok(None);
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let fresh = outbox::park(
            &tx,
            self.tz,
            &b,
            Parking::Refused {
                code: &nack.code,
                message: &nack.message,
                via: "outbox",
            },
        )?;
        tx.commit()?;
        if fresh {
            tracing::error!(dataset = %b.dataset, batch = id, code = %nack.code, "batch refused by the collector and parked; `fepd batches retry` resends it");
        }
        self.move_pair(dir, id, "nack", "parked")?;
        Ok(Some(fresh))
    }

    fn move_pair(&self, dir: &Path, id: &str, marker: &str, to: &str) -> Result<(), StoreError> {
        let dest = dir.join(to);
        fs::create_dir_all(&dest).map_err(|e| StoreError::io(&dest, e))?;
        for name in [format!("{id}.json"), format!("{id}.{marker}")] {
            let from = dir.join(&name);
            if from.exists() {
                fsio::move_durable(&from, &dest.join(&name))
                    .map_err(|e| StoreError::io(&from, e))?;
            }
        }
        Ok(())
    }
}

/// The largest `.ack`/`.nack` read: a library's answer with a refusal for
/// every record of a full batch fits many times over.
pub const MAX_MARKER_BYTES: u64 = 16 << 20;

/// Reads an `.ack`/`.nack` the way intake reads a file: opened without
/// following links or blocking, and only if it is a regular file of at
/// most [`MAX_MARKER_BYTES`].
fn read_marker_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let f = crate::intake::claim::open_path_no_follow(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            Error::new(ErrorKind::InvalidInput, "a symbolic link")
        } else {
            e
        }
    })?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > MAX_MARKER_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} bytes, over the {MAX_MARKER_BYTES}-byte limit",
                meta.len()
            ),
        ));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_MARKER_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_MARKER_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "grew over the size limit while read",
        ));
    }
    Ok(buf)
}
