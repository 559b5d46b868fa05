//! The keys sealed lately, kept out of `record_state` until a merge folds
//! them in (schema v9).
//!
//! Writing each sealed record's key into `record_state` as it was sealed
//! cost more than everything else a record costs: keys come in no
//! particular order, so every record dirtied a page of that B-tree of its
//! own, written to the WAL at the commit and again at the checkpoint. Now
//! a sealed record's only row is its `batch_record` row, appended in seal
//! order, carrying what dedupe needs (hash, version order, `sets_last`).
//!
//! - **The tail** is the batches after `record_merge.seq`. Their
//!   `sets_last` rows are the newest sealed versions of their keys.
//! - **[`RecentKeys`]**, owned by a connection that seals one dataset,
//!   indexes that dataset's tail in memory: a 64-bit fingerprint of the
//!   key → the row's place (batch seq, index), about 30 bytes a key and no
//!   allocation per record. A hit is confirmed by reading the row (its key
//!   must be the key asked for); two keys with one fingerprint keep the
//!   second in a small map by key. It is brought up to date from the
//!   database at the start of each transaction that seals ([`sync`]), so
//!   batches sealed by another connection or process count, and rebuilt
//!   from it when a transaction that noted keys did not commit.
//! - **[`merge`]** folds the tail into `record_state` in key order, one
//!   upsert per key, so a page of that tree is written once for all its
//!   keys in the tail, and moves `record_merge.seq`. The worker merges
//!   when its index holds [`MERGE_AT`] keys and whenever intake is idle;
//!   retention merges before it prunes `batch_record` rows, and never
//!   prunes the tail's.
//!
//! A key's last sealed version is its newest tail row if it has one, else
//! its `record_state` row (`records::last_sealed` reads both).
//!
//! [`sync`]: RecentKeys::sync

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};

use rusqlite::{Connection, OptionalExtension, params};

use super::records::Sealed;

/// Keys in a connection's index at which its worker merges the tail
/// before going on. An index of 2^18 slots of 17 bytes (~4.5 MiB) holds
/// 229,376 keys before it doubles; merging at 3/4 of the table leaves a
/// chunk's keys (`[intake] chunk_records`, 5,000 by default, to the next
/// batch boundary) room, so the table never doubles (for a moment, old and
/// new table: 13.5 MiB) nor holds 2^19 slots. At 65,536 the 2 GiB file
/// sealed slower (20,510 against 31,281 rec/s: more merges into a larger
/// tree) at no lower peak RSS (84 against 75 MiB).
pub const MERGE_AT: usize = 196_608;

/// The page cache of a merge, MiB: it visits `record_state`'s pages in
/// key order, each once, so a small cache serves it as well as a large
/// one; and SQLite's sorter, which puts the tail in key order, holds as
/// much in memory as the cache before it spills to a temporary file.
const MERGE_CACHE_MIB: u32 = 2;

/// A `batch_record` row of the tail: its batch's `seq` (high 44 bits) and
/// its index (low 20: `[batch] max_records` is at most 1,000,000), in one
/// word, so that an entry of the index is 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place(u64);

impl Place {
    fn new(seq: i64, idx: usize) -> Place {
        debug_assert!(idx < 1 << 20 && (0..1 << 44).contains(&seq));
        Place(((seq as u64) << 20) | idx as u64)
    }

    fn seq(self) -> i64 {
        (self.0 >> 20) as i64
    }

    fn idx(self) -> i64 {
        (self.0 & ((1 << 20) - 1)) as i64
    }
}

/// What the index knows of a key.
#[derive(Debug, Clone)]
pub struct Found {
    fp: u64,
    /// The key is (or goes) in the map by key: its fingerprint is another
    /// key's.
    by_key: bool,
    /// The key's newest tail row, read; `None`: not in the tail.
    sealed: Option<Sealed>,
}

impl Found {
    /// The key's newest sealed version in the tail, if it has one there.
    pub fn sealed(&self) -> Option<&Sealed> {
        self.sealed.as_ref()
    }
}

/// The in-memory index of one dataset's tail (module docs).
#[derive(Debug)]
pub struct RecentKeys {
    dataset: String,
    hasher: RandomState,
    by_fp: HashMap<u64, Place>,
    /// Keys whose fingerprint another key of the tail holds.
    by_key: HashMap<String, Place>,
    /// The highest batch seq whose rows are in the index or merged;
    /// `None`: to be loaded.
    seen: Option<i64>,
    /// The bits of the fingerprint kept: all of them, but few in tests
    /// that make keys share one.
    fp_mask: u64,
    /// `record_merge.seq` when last read.
    merged: i64,
    /// Keys were noted in a transaction that has not committed yet.
    open: bool,
    /// The highest seq noted in the open transaction.
    noted: i64,
}

impl RecentKeys {
    pub fn new(dataset: &str) -> RecentKeys {
        RecentKeys {
            dataset: dataset.to_string(),
            hasher: RandomState::new(),
            by_fp: HashMap::new(),
            by_key: HashMap::new(),
            seen: None,
            fp_mask: u64::MAX,
            merged: 0,
            open: false,
            noted: 0,
        }
    }

    /// An index whose fingerprints keep `bits` bits: keys share them.
    #[cfg(test)]
    fn colliding(dataset: &str, bits: u32) -> RecentKeys {
        RecentKeys {
            fp_mask: u64::MAX >> (64 - bits),
            ..RecentKeys::new(dataset)
        }
    }

    /// Keys indexed.
    pub fn len(&self) -> usize {
        self.by_fp.len() + self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives the index's memory back (intake idle, the tail merged): the
    /// next [`sync`](Self::sync) rebuilds it from the database.
    pub fn release(&mut self) {
        self.by_fp = HashMap::new();
        self.by_key = HashMap::new();
        self.seen = None;
    }

    /// Brings the index up to date with the database, inside the
    /// transaction about to seal: drops what a merge folded in, reads the
    /// rows of batches sealed since (by any connection), and starts again
    /// from the database after a transaction that noted keys rolled back.
    pub fn sync(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let merged = merged_seq(conn)?;
        if self.open || self.seen.is_none() {
            self.by_fp = HashMap::new();
            self.by_key = HashMap::new();
            self.seen = Some(merged);
            self.merged = merged;
            self.open = false;
        }
        if merged > self.merged {
            // The table keeps its size: a worker that merged at the bound
            // fills it again (`release` gives it back when intake idles).
            self.by_fp.retain(|_, p| p.seq() > merged);
            self.by_key.retain(|_, p| p.seq() > merged);
            self.merged = merged;
        }
        let seen = self.seen.unwrap_or(0).max(merged);
        let last = last_seq(conn)?;
        if last > seen {
            let mut stmt = conn.prepare_cached(
                "SELECT b.seq, br.idx, br.key FROM batch b
                 JOIN batch_record br ON br.batch_id = b.batch_id
                 WHERE b.seq > ?1 AND b.dataset = ?2 AND br.sets_last = 1
                 ORDER BY b.seq, br.idx",
            )?;
            let rows = stmt
                .query_map(params![seen, self.dataset], |r| {
                    Ok((
                        Place::new(r.get(0)?, r.get::<_, i64>(1)? as usize),
                        r.get::<_, String>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (at, key) in rows {
                let found = self.find(conn, &key)?;
                self.put(&key, &found, at);
            }
        }
        self.seen = Some(last.max(seen));
        self.open = false;
        Ok(())
    }

    /// Looks `key` up in the tail. Inside a transaction after [`sync`](Self::sync).
    pub fn find(&self, conn: &Connection, key: &str) -> rusqlite::Result<Found> {
        let fp = self.hasher.hash_one(key) & self.fp_mask;
        let (by_key, sealed) = match (self.by_key.get(key), self.by_fp.get(&fp)) {
            (Some(&at), _) => (true, row_at(conn, at)?.map(|(_, s)| s)),
            (None, Some(&at)) => match row_at(conn, at)? {
                Some((k, s)) if k == key => (false, Some(s)),
                _ => (true, None),
            },
            (None, None) => (false, None),
        };
        Ok(Found { fp, by_key, sealed })
    }

    /// The last sealed version of `key`: its newest tail row, else its
    /// merged row in `record_state`.
    pub fn last_sealed(&self, conn: &Connection, key: &str) -> rusqlite::Result<Option<Sealed>> {
        match self.find(conn, key)?.sealed {
            Some(sealed) => Ok(Some(sealed)),
            None => super::records::merged(conn, &self.dataset, key),
        }
    }

    /// Notes that `key`'s newest sealed version is now row `idx` of batch
    /// `seq`, written in the open transaction; `found` is what
    /// [`find`](Self::find) said of it just before.
    pub fn note(&mut self, key: &str, found: &Found, seq: i64, idx: usize) {
        self.open = true;
        self.noted = self.noted.max(seq);
        self.put(key, found, Place::new(seq, idx));
    }

    fn put(&mut self, key: &str, found: &Found, at: Place) {
        match found.by_key {
            true => self.by_key.insert(key.to_string(), at),
            false => self.by_fp.insert(found.fp, at),
        };
    }

    /// The transaction that noted keys committed.
    pub fn committed(&mut self) {
        if self.open {
            self.seen = Some(self.seen.unwrap_or(0).max(self.noted));
        }
        self.open = false;
    }
}

/// `record_merge.seq`: the batches up to it are in `record_state`.
pub fn merged_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT seq FROM record_merge WHERE one = 1")?
        .query_row([], |r| r.get(0))
        .optional()
        .map(|s| s.unwrap_or(0))
}

/// The seq of the last batch sealed (0: none).
fn last_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM batch")?
        .query_row([], |r| r.get(0))
}

/// The key and sealed version of the row at `at`, if it is still there.
fn row_at(conn: &Connection, at: Place) -> rusqlite::Result<Option<(String, Sealed)>> {
    conn.prepare_cached(
        "SELECT br.key, br.hash, br.version FROM batch b
         JOIN batch_record br ON br.batch_id = b.batch_id AND br.idx = ?2
         WHERE b.seq = ?1",
    )?
    .query_row(params![at.seq(), at.idx()], |r| {
        Ok((
            r.get(0)?,
            Sealed {
                hash: r.get(1)?,
                version: r.get(2)?,
            },
        ))
    })
    .optional()
}

/// Whether batches after the merge mark have rows to fold in.
pub fn tail_waiting(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(last_seq(conn)? > merged_seq(conn)?)
}

/// Folds the tail into `record_state` in one transaction: for each key in
/// key order, its newest `sets_last` row becomes its last sealed version
/// and every row's place is appended to its history, in seal order; then
/// `record_merge.seq` moves to the last batch. Returns the rows folded in.
pub fn merge(conn: &mut Connection) -> rusqlite::Result<usize> {
    let started = std::time::Instant::now();
    let cache: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    conn.pragma_update(None, "cache_size", -(MERGE_CACHE_MIB as i64) * 1024)?;
    let merged = merge_in(conn, started);
    conn.pragma_update(None, "cache_size", cache)?;
    merged
}

fn merge_in(conn: &mut Connection, started: std::time::Instant) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let from = merged_seq(&tx)?;
    let to = last_seq(&tx)?;
    if to <= from {
        return Ok(0);
    }
    let mut rows = 0usize;
    {
        // SQLite's sorter puts the rows in key order (spilling to a
        // temporary file rather than growing the heap).
        let mut read = tx.prepare(
            "SELECT b.dataset, br.key, br.batch_id, br.idx, br.hash, br.version, br.op, br.sets_last
             FROM batch b JOIN batch_record br ON br.batch_id = b.batch_id
             WHERE b.seq > ?1 AND b.seq <= ?2
             ORDER BY b.dataset, br.key, b.seq, br.idx",
        )?;
        let mut upsert = tx.prepare(
            "INSERT INTO record_state (dataset, key, hash, version, op, batch_id, history)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(dataset, key) DO UPDATE SET hash = excluded.hash,
               version = COALESCE(excluded.version, record_state.version), op = excluded.op,
               batch_id = excluded.batch_id,
               history = COALESCE(record_state.history || ',', '') || excluded.history",
        )?;
        let mut places_only = tx.prepare(
            "UPDATE record_state SET history = COALESCE(history || ',', '') || ?3
             WHERE dataset = ?1 AND key = ?2",
        )?;
        let mut group = Group::default();
        let mut q = read.query(params![from, to])?;
        while let Some(r) = q.next()? {
            rows += 1;
            let dataset: &str = r.get_ref(0)?.as_str()?;
            let key: &str = r.get_ref(1)?.as_str()?;
            if !group.is(dataset, key) {
                group.write(&mut upsert, &mut places_only)?;
                group.start(dataset, key);
            }
            let batch_id: &str = r.get_ref(2)?.as_str()?;
            let idx: i64 = r.get(3)?;
            if !group.history.is_empty() {
                group.history.push(',');
            }
            group.history.push_str(batch_id);
            group.history.push(':');
            let _ = write!(group.history, "{idx}");
            if r.get::<_, i64>(7)? == 1 {
                group.last = Some(Last {
                    hash: r.get(4)?,
                    version: r.get(5)?,
                    op: r.get(6)?,
                    batch_id: batch_id.to_string(),
                });
            }
        }
        group.write(&mut upsert, &mut places_only)?;
    }
    tx.execute("UPDATE record_merge SET seq = ?1 WHERE one = 1", [to])?;
    tx.commit()?;
    tracing::info!(
        rows,
        millis = started.elapsed().as_millis() as u64,
        "sealed keys merged into record_state"
    );
    Ok(rows)
}

/// The rows of one key during a merge.
#[derive(Default)]
struct Group {
    dataset: String,
    key: String,
    history: String,
    last: Option<Last>,
    started: bool,
}

struct Last {
    hash: String,
    version: Option<i64>,
    op: String,
    batch_id: String,
}

impl Group {
    fn is(&self, dataset: &str, key: &str) -> bool {
        self.started && self.key == key && self.dataset == dataset
    }

    fn start(&mut self, dataset: &str, key: &str) {
        self.dataset.clear();
        self.dataset.push_str(dataset);
        self.key.clear();
        self.key.push_str(key);
        self.history.clear();
        self.last = None;
        self.started = true;
    }

    fn write(
        &mut self,
        upsert: &mut rusqlite::Statement<'_>,
        places_only: &mut rusqlite::Statement<'_>,
    ) -> rusqlite::Result<()> {
        if !self.started {
            return Ok(());
        }
        match self.last.take() {
            Some(l) => upsert.execute(params![
                self.dataset,
                self.key,
                l.hash,
                l.version,
                l.op,
                l.batch_id,
                self.history
            ])?,
            // Only split halves or replays of the key: places, as before.
            None => places_only.execute(params![self.dataset, self.key, self.history])?,
        };
        Ok(())
    }
}

/// v8 → v9: the two columns of `batch_record` and the merge mark, set to
/// the last batch (all earlier batches are in `record_state` already).
pub(super) fn v9(tx: &Connection) -> rusqlite::Result<()> {
    let has = |table: &str, col: &str| -> rusqlite::Result<bool> {
        tx.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, col],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    if !has("batch_record", "key")? {
        // No such table yet: SCHEMA makes it as v9 has it.
        return Ok(());
    }
    if !has("batch_record", "version")? {
        tx.execute_batch(
            "ALTER TABLE batch_record ADD COLUMN version INTEGER;
             ALTER TABLE batch_record ADD COLUMN sets_last INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    let last: i64 = match has("batch", "seq")? {
        true => last_seq(tx)?,
        false => 0,
    };
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS record_merge (
             one INTEGER PRIMARY KEY CHECK (one = 1),
             seq INTEGER NOT NULL
         );",
    )?;
    tx.execute(
        "INSERT INTO record_merge (one, seq) VALUES (1, ?1)
         ON CONFLICT(one) DO UPDATE SET seq = excluded.seq",
        [last],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
