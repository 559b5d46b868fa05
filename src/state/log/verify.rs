//! Verifying the exchange log as stored: each row re-read as the exact text
//! `append` writes for its entry (`StoredEntry`), the chain walked from a
//! known head (`Chain`), and where it first breaks (`Break`).

use rusqlite::Connection;
use serde_json::Value;

use super::*;

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
