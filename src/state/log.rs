//! The exchange log: append-only and hash-chained.
//!
//! Each entry's `hash = SHA-256(prev_hash ‖ JCS(entry))`, where `prev_hash`
//! is the previous entry's hash as lowercase hex text (empty for the first
//! entry) and `entry` is the entry's fields without `hash`, absent ones
//! omitted. An entry is appended in the same transaction as the state change
//! it records, so the log never says more or less than what happened.
//!
//! The hash covers the parsed entry, so verification also checks that each
//! stored row is exactly the text `append` writes for that entry (the
//! `counts` and `details` columns are serde_json's compact form, one text
//! per value): a row edited so that it parses to the same entry — a
//! duplicate JSON member, re-spacing, a value that is not JSON — is caught
//! as well as one whose content changed.
//! Entries never carry personal data: only names of files, batch ids,
//! counts and rule names.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use crate::canon;

/// What happened. The names are the `event` column, stable for auditors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    DaemonStarted,
    DaemonStopped,
    DaemonRecovered,
    ConfigLoaded,
    /// SIGHUP: the config was re-read and the service loop restarted with it.
    ConfigReloaded,
    /// SIGHUP: the new config was refused (problems found before
    /// draining, or the new loop could not start); the previous one runs.
    ConfigRefused,
    FileClaimed,
    FileDuplicate,
    FileDone,
    FileRejected,
    FileEmpty,
    RecordsSkipped,
    BatchSealed,
    BatchExported,
    BatchSent,
    BatchDelivered,
    RecordsLibraryRejected,
    BatchParked,
    BatchRetried,
    BatchSplit,
    /// Entries up to a seq were exported and deleted (`fepd audit export
    /// --prune`); the entry carries the pruned head so the chain still
    /// verifies from it.
    LogPruned,
    /// `fepd selftest` probed the library's routes (the joint test, 联调).
    Selftest,
    /// A retention pass deleted what `[retention]` no longer keeps; the
    /// counts say how much of each kind.
    RetentionPass,
    /// The library refused fepd's credentials: the first refusal of an
    /// episode (token requests then back off for minutes).
    CredentialsRefused,
    /// A token was granted again after a refusal episode.
    CredentialsAccepted,
    /// A pull-mode acknowledgement whose counts do not add up to the batch
    /// (or that came for a batch fepd had parked).
    AckDiscrepancy,
    /// The sink mode changed: batches exported for the collector were
    /// taken back to be pushed (or the reverse is under way).
    SinkSwitched,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::DaemonStarted => "daemon_started",
            Event::DaemonStopped => "daemon_stopped",
            Event::DaemonRecovered => "daemon_recovered",
            Event::ConfigLoaded => "config_loaded",
            Event::ConfigReloaded => "config_reloaded",
            Event::ConfigRefused => "config_refused",
            Event::FileClaimed => "file_claimed",
            Event::FileDuplicate => "file_duplicate",
            Event::FileDone => "file_done",
            Event::FileRejected => "file_rejected",
            Event::FileEmpty => "file_empty",
            Event::RecordsSkipped => "records_skipped",
            Event::BatchSealed => "batch_sealed",
            Event::BatchExported => "batch_exported",
            Event::BatchSent => "batch_sent",
            Event::BatchDelivered => "batch_delivered",
            Event::RecordsLibraryRejected => "records_library_rejected",
            Event::BatchParked => "batch_parked",
            Event::BatchRetried => "batch_retried",
            Event::BatchSplit => "batch_split",
            Event::LogPruned => "log_pruned",
            Event::Selftest => "selftest",
            Event::RetentionPass => "retention_pass",
            Event::CredentialsRefused => "credentials_refused",
            Event::CredentialsAccepted => "credentials_accepted",
            Event::AckDiscrepancy => "ack_discrepancy",
            Event::SinkSwitched => "sink_switched",
        }
    }
}

/// One entry to append; `seq`, `time` and `hash` are filled in by [`append`].
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub dataset: Option<&'a str>,
    pub file: Option<&'a str>,
    pub batch: Option<&'a str>,
    pub counts: Option<Value>,
    pub details: Option<Value>,
}

/// The log head: the last entry's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// The current head; `seq` 0 and an empty hash for an empty log.
pub fn head(conn: &Connection) -> rusqlite::Result<Head> {
    Ok(conn
        .query_row(
            "SELECT seq, hash FROM exchange_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| {
                Ok(Head {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                })
            },
        )
        .optional()?
        .unwrap_or(Head {
            seq: 0,
            hash: String::new(),
        }))
}

/// The canonical text an entry's hash covers.
#[allow(clippy::too_many_arguments)] // one argument per entry field
pub fn canonical_entry(
    seq: i64,
    time: &str,
    event: &str,
    dataset: Option<&str>,
    file: Option<&str>,
    batch: Option<&str>,
    counts: Option<&Value>,
    details: Option<&Value>,
) -> String {
    let mut m = Map::new();
    m.insert("seq".into(), json!(seq));
    m.insert("time".into(), json!(time));
    m.insert("event".into(), json!(event));
    for (k, v) in [("dataset", dataset), ("file", file), ("batch", batch)] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [("counts", counts), ("details", details)] {
        if let Some(v) = v {
            m.insert(k.into(), v.clone());
        }
    }
    canon::to_canonical(&Value::Object(m))
}

/// The chained hash of an entry given its predecessor's hash.
pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut buf = Vec::with_capacity(prev_hash.len() + canonical.len());
    buf.extend_from_slice(prev_hash.as_bytes());
    buf.extend_from_slice(canonical.as_bytes());
    canon::sha256_hex(&buf)
}

/// Appends `entry` as event `event`; returns the new head. Call inside the
/// transaction that makes the change the entry records.
pub fn append(
    conn: &Connection,
    tz: chrono::FixedOffset,
    event: Event,
    entry: Entry<'_>,
) -> rusqlite::Result<Head> {
    let prev = head(conn)?;
    append_after(conn, tz, &prev, event, entry)
}

/// Appends an entry that records no other change, in a transaction of its
/// own that takes the write lock first: the head it chains to cannot move
/// under it while the daemon's other connections append.
pub fn append_alone(
    conn: &mut Connection,
    tz: chrono::FixedOffset,
    event: Event,
    entry: Entry<'_>,
) -> rusqlite::Result<Head> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let head = append(&tx, tz, event, entry)?;
    tx.commit()?;
    Ok(head)
}

/// Appends after `prev`, the head read in this transaction.
fn append_after(
    conn: &Connection,
    tz: chrono::FixedOffset,
    prev: &Head,
    event: Event,
    entry: Entry<'_>,
) -> rusqlite::Result<Head> {
    let seq = prev.seq + 1;
    let time = super::now_text(tz);
    let canonical = canonical_entry(
        seq,
        &time,
        event.as_str(),
        entry.dataset,
        entry.file,
        entry.batch,
        entry.counts.as_ref(),
        entry.details.as_ref(),
    );
    let hash = chain_hash(&prev.hash, &canonical);
    conn.execute(
        "INSERT INTO exchange_log (seq, time, event, dataset, file, batch, counts, details, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            seq,
            time,
            event.as_str(),
            entry.dataset,
            entry.file,
            entry.batch,
            entry.counts.map(|v| v.to_string()),
            entry.details.map(|v| v.to_string()),
            hash
        ],
    )?;
    Ok(Head { seq, hash })
}

/// Where the chain first fails, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The entry's stored hash does not match its content and predecessor
    /// (edited, reordered or inserted).
    BadHash { seq: i64 },
    /// Sequence numbers are not consecutive (an entry was deleted or
    /// inserted), or the log does not start at 1 nor right after a pruned
    /// head that a `log_pruned` checkpoint names.
    Gap { expected: i64, found: i64 },
    /// A `log_pruned` checkpoint names a head the chain contradicts.
    BadCheckpoint { seq: i64 },
    /// A stored column is not the text fepd writes for its value (a
    /// duplicate JSON member, other spacing, not JSON, another SQL type):
    /// the row was edited, even if it still parses to the hashed entry.
    NotAsWritten { seq: i64, column: &'static str },
}

impl Break {
    /// The first sequence number found bad.
    pub fn seq(&self) -> i64 {
        match self {
            Break::BadHash { seq }
            | Break::BadCheckpoint { seq }
            | Break::NotAsWritten { seq, .. } => *seq,
            Break::Gap { expected, .. } => *expected,
        }
    }
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::BadHash { seq } => write!(
                f,
                "entry {seq}: stored hash does not match its content and predecessor (edited, reordered or inserted)"
            ),
            Break::Gap { expected, found } => write!(
                f,
                "entry {expected} is missing: the next entry found is {found} (deleted or inserted entries)"
            ),
            Break::BadCheckpoint { seq } => write!(
                f,
                "entry {seq}: the pruned head this checkpoint names contradicts the chain"
            ),
            Break::NotAsWritten { seq, column } => write!(
                f,
                "entry {seq}: the stored {column} is not the text fepd wrote (edited: a duplicate member, other spacing or not JSON)"
            ),
        }
    }
}

/// One stored entry, as read back from the table or an archive line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredEntry {
    pub seq: i64,
    pub time: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    pub hash: String,
}

/// The columns [`StoredEntry::from_row`] reads, in order.
pub const ENTRY_COLS: &str = "seq, time, event, dataset, file, batch, counts, details, hash";

impl StoredEntry {
    pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEntry> {
        // Text that is not JSON (only a tampered row holds such) reads as
        // absent; the hash then no longer matches.
        let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str::<Value>(&s).ok());
        Ok(StoredEntry {
            seq: r.get(0)?,
            time: r.get(1)?,
            event: r.get(2)?,
            dataset: r.get(3)?,
            file: r.get(4)?,
            batch: r.get(5)?,
            counts: parse(r.get(6)?),
            details: parse(r.get(7)?),
            hash: r.get(8)?,
        })
    }

    /// Reads a row for verification: the entry, or `NotAsWritten` when a
    /// column is not exactly what [`append`] stores for the entry it
    /// parses to. Columns are read in [`ENTRY_COLS`] order.
    pub fn verbatim(
        r: &rusqlite::Row<'_>,
    ) -> rusqlite::Result<std::result::Result<StoredEntry, Break>> {
        use rusqlite::types::ValueRef;
        let seq = match r.get_ref(0)? {
            ValueRef::Integer(i) => i,
            // Without a number the row cannot be placed: name what follows.
            _ => {
                return Ok(Err(Break::NotAsWritten {
                    seq: 0,
                    column: "seq",
                }));
            }
        };
        let bad = |column| Break::NotAsWritten { seq, column };
        let text = |i: usize,
                    column: &'static str|
         -> rusqlite::Result<std::result::Result<Option<String>, Break>> {
            Ok(match r.get_ref(i)? {
                ValueRef::Null => Ok(None),
                ValueRef::Text(t) => std::str::from_utf8(t)
                    .map(|t| Some(t.to_string()))
                    .map_err(|_| bad(column)),
                _ => Err(bad(column)),
            })
        };
        let required = |i, column| -> rusqlite::Result<std::result::Result<String, Break>> {
            Ok(text(i, column)?.and_then(|t| t.ok_or(bad(column))))
        };
        let json = |i, column| -> rusqlite::Result<std::result::Result<Option<Value>, Break>> {
            Ok(text(i, column)?.and_then(|t| match t {
                None => Ok(None),
                Some(t) => match serde_json::from_str::<Value>(&t) {
                    Ok(v) if serde_json::to_string(&v).is_ok_and(|w| w == t) => Ok(Some(v)),
                    _ => Err(bad(column)),
                },
            }))
        };
        macro_rules! take {
            ($e:expr) => {
                match $e? {
                    Ok(v) => v,
                    Err(b) => return Ok(Err(b)),
                }
            };
        }
        Ok(Ok(StoredEntry {
            seq,
            time: take!(required(1, "time")),
            event: take!(required(2, "event")),
            dataset: take!(text(3, "dataset")),
            file: take!(text(4, "file")),
            batch: take!(text(5, "batch")),
            counts: take!(json(6, "counts")),
            details: take!(json(7, "details")),
            hash: take!(required(8, "hash")),
        }))
    }

    /// Reads one archive line (as `fepd audit export` writes them): the
    /// entry, or why the line is not one — including a line that parses to
    /// an entry but is not the text the export wrote for it.
    pub fn from_archive_line(line: &str) -> std::result::Result<StoredEntry, String> {
        let e: StoredEntry =
            serde_json::from_str(line).map_err(|e| format!("not an exchange-log entry: {e}"))?;
        let written = serde_json::to_string(&e).expect("entries serialise");
        if written != line {
            return Err(format!(
                "entry {}: the line is not the text the export wrote (edited: a duplicate member, other spacing or order)",
                e.seq
            ));
        }
        Ok(e)
    }

    /// The canonical text the entry's hash covers.
    pub fn canonical(&self) -> String {
        canonical_entry(
            self.seq,
            &self.time,
            &self.event,
            self.dataset.as_deref(),
            self.file.as_deref(),
            self.batch.as_deref(),
            self.counts.as_ref(),
            self.details.as_ref(),
        )
    }

    /// The head a `log_pruned` checkpoint carries.
    pub fn pruned_head(&self) -> Option<Head> {
        if self.event != Event::LogPruned.as_str() {
            return None;
        }
        let d = self.details.as_ref()?;
        Some(Head {
            seq: d.get("prunedSeq")?.as_i64()?,
            hash: d.get("prunedHash")?.as_str()?.to_string(),
        })
    }
}

/// Recomputes a chain fed entry by entry, in seq order.
///
/// The first entry chains from the empty hash when its seq is 1, else from
/// the pruned head a `log_pruned` checkpoint names for the seq before it
/// (the checkpoints are gathered beforehand: a checkpoint is appended
/// after the entries it follows).
#[derive(Debug, Default)]
pub struct Chain {
    /// Pruned heads named by checkpoints: seq → hash.
    anchors: std::collections::HashMap<i64, String>,
    /// Hashes of fed entries whose seq a checkpoint names.
    seen: std::collections::HashMap<i64, String>,
    first: Option<(i64, String)>,
    last: Option<Head>,
    count: i64,
}

impl Chain {
    pub fn new(checkpoints: impl IntoIterator<Item = Head>) -> Chain {
        Chain {
            anchors: checkpoints.into_iter().map(|h| (h.seq, h.hash)).collect(),
            ..Default::default()
        }
    }

    /// Checks `e` against its predecessor; the first error is where the
    /// chain breaks (later calls are meaningless after one).
    pub fn feed(&mut self, e: &StoredEntry) -> std::result::Result<(), Break> {
        let prev_hash = match &self.last {
            Some(last) if e.seq != last.seq + 1 => {
                return Err(Break::Gap {
                    expected: last.seq + 1,
                    found: e.seq,
                });
            }
            Some(last) => last.hash.clone(),
            None if e.seq == 1 => String::new(),
            None => match self.anchors.get(&(e.seq - 1)) {
                Some(h) => h.clone(),
                None => {
                    let expected = self
                        .anchors
                        .keys()
                        .filter(|&&s| s < e.seq)
                        .max()
                        .map_or(1, |s| s + 1);
                    return Err(Break::Gap {
                        expected,
                        found: e.seq,
                    });
                }
            },
        };
        if self.first.is_none() {
            self.first = Some((e.seq, prev_hash.clone()));
        }
        if e.hash != chain_hash(&prev_hash, &e.canonical()) {
            return Err(Break::BadHash { seq: e.seq });
        }
        if let Some(p) = e.pruned_head() {
            let (first_seq, anchor) = self.first.as_ref().expect("set above");
            let consistent = if p.seq >= e.seq {
                false
            } else if p.seq == first_seq - 1 {
                *anchor == p.hash
            } else if p.seq >= *first_seq {
                self.seen.get(&p.seq) == Some(&p.hash)
            } else {
                // Pruned before what this chain holds: nothing to compare.
                true
            };
            if !consistent {
                return Err(Break::BadCheckpoint { seq: e.seq });
            }
        }
        if self.anchors.contains_key(&e.seq) {
            self.seen.insert(e.seq, e.hash.clone());
        }
        self.last = Some(Head {
            seq: e.seq,
            hash: e.hash.clone(),
        });
        self.count += 1;
        Ok(())
    }

    /// Entries checked so far.
    pub fn count(&self) -> i64 {
        self.count
    }

    /// The first entry's seq, if any was fed.
    pub fn first_seq(&self) -> Option<i64> {
        self.first.as_ref().map(|f| f.0)
    }

    /// The last entry checked.
    pub fn last(&self) -> Option<&Head> {
        self.last.as_ref()
    }
}

/// The pruned heads of every `log_pruned` checkpoint in the table.
pub fn checkpoints(conn: &Connection) -> rusqlite::Result<Vec<Head>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENTRY_COLS} FROM exchange_log WHERE event = ?1 ORDER BY seq"
    ))?;
    let rows = stmt.query_map([Event::LogPruned.as_str()], StoredEntry::from_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.extend(r?.pruned_head());
    }
    Ok(out)
}

/// Recomputes the whole chain; `Ok(n)` with the number of entries checked.
pub fn verify(conn: &Connection) -> rusqlite::Result<std::result::Result<i64, Break>> {
    let mut chain = Chain::new(checkpoints(conn)?);
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENTRY_COLS} FROM exchange_log ORDER BY seq"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let fed = StoredEntry::verbatim(r)?.and_then(|e| chain.feed(&e));
        if let Err(b) = fed {
            return Ok(Err(b));
        }
    }
    Ok(Ok(chain.count()))
}

/// Deletes the entries up to `through` (which must be the head `pruned`
/// the caller archived) and appends the `log_pruned` checkpoint carrying
/// it. The only place entries are ever deleted; call inside one
/// transaction. `None` when entry `through` is no longer what was
/// archived.
pub fn prune_through(
    conn: &Connection,
    tz: chrono::FixedOffset,
    pruned: &Head,
    mut details: Map<String, Value>,
) -> rusqlite::Result<Option<Head>> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT hash FROM exchange_log WHERE seq = ?1",
            [pruned.seq],
            |r| r.get(0),
        )
        .optional()?;
    if stored.as_deref() != Some(pruned.hash.as_str()) {
        return Ok(None);
    }
    let (first, n): (i64, i64) = conn.query_row(
        "SELECT COALESCE(MIN(seq), 0), COUNT(*) FROM exchange_log WHERE seq <= ?1",
        [pruned.seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // The head is read before the delete: when every entry goes, the
    // checkpoint still continues the numbering.
    let prev = head(conn)?;
    conn.execute("DELETE FROM exchange_log WHERE seq <= ?1", [pruned.seq])?;
    details.insert("prunedSeq".into(), json!(pruned.seq));
    details.insert("prunedHash".into(), json!(pruned.hash));
    details.insert("firstSeq".into(), json!(first));
    let head = append_after(
        conn,
        tz,
        &prev,
        Event::LogPruned,
        Entry {
            counts: Some(json!({"entries": n})),
            details: Some(Value::Object(details)),
            ..Default::default()
        },
    )?;
    Ok(Some(head))
}
