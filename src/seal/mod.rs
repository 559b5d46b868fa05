//! Seal: dedupe valid records against what was already sealed, and pack
//! the rest into batches whose bodies are final (docs/protocol.md §3).
//!
//! A batch's id is a ULID assigned here, once (in cluster mode derived
//! from its file, `id`); its body — with the
//! records' canonical `data`, their hashes and the batch digest — is built
//! here and stored as is, so a retry, a restart or the library's own
//! verification always sees the same bytes.

mod body;
mod dedupe;
mod id;

pub use body::{BatchHeader, build_body};
pub use dedupe::{Decision, decide};
pub use id::deterministic_batch_id;

use std::time::Instant;

use crate::config::BatchLimits;
use crate::validate::{Op, ValidRecord};

/// A record accepted for the open batch.
#[derive(Debug, Clone)]
pub struct Staged {
    pub op: Op,
    pub key: String,
    pub hash: String,
    pub version: Option<i64>,
    /// The version order of the key's last sealed version when dedupe
    /// looked (`Decision::Seal`): kept when the record has none.
    pub fallback_version: Option<i64>,
    pub canonical: String,
}

/// Bytes a record adds to a body besides its `data` (op, key, hash, braces).
const RECORD_OVERHEAD: usize = 120;

/// The batch being filled; it is sealed with the chunk that filled it.
#[derive(Debug)]
pub struct OpenBatch {
    pub records: Vec<Staged>,
    bytes: usize,
    opened: Instant,
}

impl Default for OpenBatch {
    fn default() -> Self {
        OpenBatch {
            records: Vec::new(),
            bytes: 0,
            opened: Instant::now(),
        }
    }
}

impl OpenBatch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether `rec` would push the batch over its byte limit (a batch
    /// always takes at least one record).
    pub fn would_overflow(&self, rec: &ValidRecord, limits: &BatchLimits) -> bool {
        !self.records.is_empty()
            && self.bytes + rec.canonical.len() + rec.key.len() + RECORD_OVERHEAD > limits.max_bytes
    }

    pub fn push(&mut self, rec: ValidRecord, fallback_version: Option<i64>) {
        self.bytes += rec.canonical.len() + rec.key.len() + RECORD_OVERHEAD;
        self.records.push(Staged {
            op: rec.op,
            key: rec.key,
            hash: rec.hash,
            version: rec.version,
            fallback_version,
            canonical: rec.canonical,
        });
    }

    /// Full by count or bytes, or open longer than `max_age_ms`.
    pub fn is_due(&self, limits: &BatchLimits) -> bool {
        self.is_full(limits) || self.opened.elapsed().as_millis() as u64 >= limits.max_age_ms
    }

    /// Full by count or bytes.
    pub fn is_full(&self, limits: &BatchLimits) -> bool {
        self.records.len() >= limits.max_records || self.bytes >= limits.max_bytes
    }

    pub fn take(&mut self) -> Vec<Staged> {
        self.bytes = 0;
        self.opened = Instant::now();
        std::mem::take(&mut self.records)
    }
}

/// A new batch id: a ULID, unique per sender and increasing within this
/// process (the generator is monotonic within a millisecond).
pub fn new_batch_id() -> String {
    static GEN: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut g = GEN.lock().unwrap_or_else(|p| p.into_inner());
    let g = g.get_or_insert_with(ulid::Generator::new);
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh id.
    g.generate()
        .unwrap_or_else(|_| ulid::Ulid::generate())
        .to_string()
}
