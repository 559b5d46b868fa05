//! `fepd audit verify`: recompute the chain, optionally through archives
//! written by `export`, and check it against witness heads the library
//! kept (`auditHead` of every batch it received, docs/protocol.md §3).
//!
//! Rows are checked as stored (`StoredEntry::verbatim`): the hash covers
//! the parsed entry, and a row must also be the one text fepd writes for
//! it, so no edit of a stored row passes. The chain alone catches an
//! edited, deleted, inserted or reordered entry; it cannot catch a tail cut off and rewritten as a new,
//! self-consistent chain. The witness does: every head the library holds
//! must name an entry that exists with exactly that hash.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use super::{AuditError, Result, io_err};
use crate::state::entries;
use crate::state::log::{self, Break, Chain, Head, StoredEntry};

/// Where and why the chain failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The first bad sequence number.
    pub seq: i64,
    pub message: String,
}

impl From<Break> for Finding {
    fn from(b: Break) -> Finding {
        Finding {
            seq: b.seq(),
            message: b.to_string(),
        }
    }
}

/// The state database's chain, and the chain through the archives.
#[derive(Debug, Clone, Serialize)]
pub struct ChainCheck {
    pub entries: i64,
    pub first_seq: Option<i64>,
    pub head: Option<Head>,
    pub broken: Option<Finding>,
}

/// A witness head the log contradicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mismatch {
    /// The entry exists with another hash: it was rewritten.
    OtherHash {
        seq: i64,
        witness: String,
        log: String,
    },
    /// The library saw an entry the log no longer reaches: truncated.
    BeyondEnd { seq: i64, end: i64 },
    /// Within the log's range but absent (the chain check names the gap).
    Missing { seq: i64 },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::OtherHash { seq, witness, log } => write!(
                f,
                "entry {seq}: the library holds hash {witness}, the log {log} (rewritten)"
            ),
            Mismatch::BeyondEnd { seq, end } => write!(
                f,
                "entry {seq}: the library holds it, but the log ends at {end} (truncated)"
            ),
            Mismatch::Missing { seq } => {
                write!(f, "entry {seq}: the library holds it, the log lacks it")
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WitnessCheck {
    /// Heads compared with an entry (log or archive).
    pub matched: usize,
    /// Heads naming entries pruned from the log, with no archive given.
    pub unverifiable: usize,
    pub mismatches: Vec<Mismatch>,
    /// The highest seq the witness vouches for; entries after it are
    /// protected by the chain only, until the next batch carries a head.
    pub witnessed_through: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub log: ChainCheck,
    /// With archives: the chain from the archives' first entry through the
    /// log's last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_archives: Option<ChainCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<WitnessCheck>,
}

impl Verification {
    /// True when nothing was found wrong.
    pub fn ok(&self) -> bool {
        self.log.broken.is_none()
            && self
                .with_archives
                .as_ref()
                .is_none_or(|a| a.broken.is_none())
            && self
                .witness
                .as_ref()
                .is_none_or(|w| w.mismatches.is_empty())
    }
}

/// Reads witness heads: JSON lines of `{"seq":…,"hash":…}` (blank lines
/// ignored), as `GET /sim/audit-heads` and the library export them.
pub fn read_witness(path: &Path) -> Result<Vec<Head>> {
    #[derive(serde::Deserialize)]
    struct W {
        seq: i64,
        hash: String,
    }
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io_err(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let w: W = serde_json::from_str(&line).map_err(|e| {
            AuditError::Usage(format!(
                "{} line {}: not a {{seq, hash}} head: {e}",
                path.display(),
                i + 1
            ))
        })?;
        out.push(Head {
            seq: w.seq,
            hash: w.hash,
        });
    }
    Ok(out)
}

/// One archive line as an entry; a line that is not one is a finding.
fn archive_entries(
    path: &Path,
) -> Result<impl Iterator<Item = std::result::Result<StoredEntry, String>>> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let name = path.display().to_string();
    Ok(std::io::BufReader::new(f)
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(move |(i, l)| {
            let l = l.map_err(|e| format!("{name} line {}: {e}", i + 1))?;
            StoredEntry::from_archive_line(&l).map_err(|e| format!("{name} line {}: {e}", i + 1))
        }))
}

/// Verifies the log in `conn`, through `archives` (oldest first) when
/// given, against `witness` heads when given.
pub fn verify(
    conn: &Connection,
    archives: &[PathBuf],
    witness: Option<&[Head]>,
) -> Result<Verification> {
    let wanted: HashSet<i64> = witness.unwrap_or_default().iter().map(|h| h.seq).collect();
    let mut found: HashMap<i64, String> = HashMap::new();

    // The state database alone.
    let db_checkpoints = log::checkpoints(conn)?;
    let mut chain = Chain::new(db_checkpoints.clone());
    let mut broken = None;
    let mut db_first = None;
    let mut db_last = None;
    entries::each_row(conn, None, |r| -> rusqlite::Result<ControlFlow<()>> {
        // The chain is checked over the row exactly as stored; the witness
        // only needs seq and hash, which a row altered elsewhere still has.
        let verbatim = StoredEntry::verbatim(r)?;
        let e = match &verbatim {
            Ok(e) => Some(e.clone()),
            Err(_) => StoredEntry::from_row(r).ok(),
        };
        if let Some(e) = &e {
            db_first.get_or_insert(e.seq);
            db_last = Some(e.seq);
            if wanted.contains(&e.seq) {
                found.insert(e.seq, e.hash.clone());
            }
        }
        if broken.is_none()
            && let Err(b) = verbatim.and_then(|e| chain.feed(&e))
        {
            broken = Some(Finding::from(b));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let log_check = ChainCheck {
        entries: chain.count(),
        first_seq: chain.first_seq(),
        head: chain.last().cloned(),
        broken,
    };

    // Archives, then the log after them, as one chain.
    let mut with_archives = None;
    let mut archive_last = None;
    if !archives.is_empty() {
        let mut anchors = db_checkpoints;
        for a in archives {
            for e in archive_entries(a)?.flatten() {
                anchors.extend(e.pruned_head());
            }
        }
        let mut chain = Chain::new(anchors);
        let mut broken: Option<Finding> = None;
        'archives: for a in archives {
            for e in archive_entries(a)? {
                let e = match e {
                    Ok(e) => e,
                    Err(message) => {
                        let seq = chain.last().map_or(1, |h| h.seq + 1);
                        broken = Some(Finding { seq, message });
                        break 'archives;
                    }
                };
                if wanted.contains(&e.seq) {
                    found.entry(e.seq).or_insert_with(|| e.hash.clone());
                }
                archive_last = Some(e.seq);
                if let Err(b) = chain.feed(&e) {
                    broken = Some(b.into());
                    break 'archives;
                }
            }
        }
        if broken.is_none() {
            let after = chain.last().map_or(0, |h| h.seq);
            entries::each_row(
                conn,
                Some(after),
                |r| -> rusqlite::Result<ControlFlow<()>> {
                    if let Err(b) = StoredEntry::verbatim(r)?.and_then(|e| chain.feed(&e)) {
                        broken = Some(b.into());
                        return Ok(ControlFlow::Break(()));
                    }
                    Ok(ControlFlow::Continue(()))
                },
            )?;
        }
        with_archives = Some(ChainCheck {
            entries: chain.count(),
            first_seq: chain.first_seq(),
            head: chain.last().cloned(),
            broken,
        });
    }

    let witness = witness.map(|heads| {
        let end = db_last.max(archive_last).unwrap_or(0);
        let mut w = WitnessCheck::default();
        for h in heads.iter().filter(|h| h.seq > 0) {
            match found.get(&h.seq) {
                Some(hash) if *hash == h.hash => {
                    w.matched += 1;
                    w.witnessed_through = w.witnessed_through.max(Some(h.seq));
                }
                Some(hash) => w.mismatches.push(Mismatch::OtherHash {
                    seq: h.seq,
                    witness: h.hash.clone(),
                    log: hash.clone(),
                }),
                None if h.seq > end => w.mismatches.push(Mismatch::BeyondEnd { seq: h.seq, end }),
                None if db_first.is_some_and(|f| h.seq < f) => w.unverifiable += 1,
                None => w.mismatches.push(Mismatch::Missing { seq: h.seq }),
            }
        }
        w.mismatches.sort_by_key(|m| match m {
            Mismatch::OtherHash { seq, .. }
            | Mismatch::BeyondEnd { seq, .. }
            | Mismatch::Missing { seq } => *seq,
        });
        w.mismatches.dedup();
        w
    });

    Ok(Verification {
        log: log_check,
        with_archives,
        witness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::log::{LogEntry, append};

    fn tz() -> chrono::FixedOffset {
        chrono::FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn db_with(n: usize) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::state::open(&dir.path().join("fepd.db")).unwrap();
        for i in 0..n {
            append(
                &conn,
                tz(),
                LogEntry::BatchSealed {
                    dataset: "case_accept",
                    batch: &format!("B{i}"),
                    records: i,
                    bytes: 0,
                    digest: "d",
                    route: "r",
                    file_id: None,
                },
            )
            .unwrap();
        }
        (dir, conn)
    }

    fn heads(conn: &Connection, seqs: &[i64]) -> Vec<Head> {
        seqs.iter()
            .map(|s| Head {
                seq: *s,
                hash: entries::entry(conn, *s).unwrap().unwrap().hash,
            })
            .collect()
    }

    #[test]
    fn an_intact_log_verifies_and_the_witness_matches() {
        let (_d, conn) = db_with(6);
        let w = heads(&conn, &[2, 5]);
        let v = verify(&conn, &[], Some(&w)).unwrap();
        assert!(v.ok(), "{v:?}");
        assert_eq!(v.log.entries, 6);
        assert_eq!(v.witness.unwrap().witnessed_through, Some(5));
    }

    #[test]
    fn deleting_the_first_entry_is_a_gap_at_1() {
        let (_d, conn) = db_with(4);
        crate::state::log::tamper::delete(&conn, 1);
        let v = verify(&conn, &[], None).unwrap();
        assert_eq!(v.log.broken.unwrap().seq, 1);
    }

    #[test]
    fn a_head_beyond_the_end_or_with_another_hash_is_a_mismatch() {
        let (_d, conn) = db_with(5);
        let mut w = heads(&conn, &[2, 4]);
        w.push(Head {
            seq: 9,
            hash: "ab".into(),
        });
        w[0].hash = "00".into();
        let v = verify(&conn, &[], Some(&w)).unwrap();
        assert!(v.log.broken.is_none());
        let m = v.witness.unwrap().mismatches;
        assert!(matches!(m[0], Mismatch::OtherHash { seq: 2, .. }), "{m:?}");
        assert_eq!(m[1], Mismatch::BeyondEnd { seq: 9, end: 5 });
    }
}
