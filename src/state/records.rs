//! What was last sealed per record key: the memory behind dedupe.

use rusqlite::{Connection, OptionalExtension, params};

/// The last sealed version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub hash: String,
    pub version: Option<i64>,
}

/// The last sealed version of `key` in `dataset`: its newest row in the
/// tail (`recent`), else its row in `record_state`. Reads the tail's rows
/// of the dataset (the sealing path asks its `RecentKeys` instead).
pub fn last_sealed(
    conn: &Connection,
    dataset: &str,
    key: &str,
) -> rusqlite::Result<Option<Sealed>> {
    let newest = conn
        .prepare_cached(
            "SELECT br.hash, br.version FROM batch b
             JOIN batch_record br ON br.batch_id = b.batch_id
             WHERE b.seq > (SELECT seq FROM record_merge) AND b.dataset = ?1
               AND br.key = ?2 AND br.sets_last = 1
             ORDER BY b.seq DESC, br.idx DESC LIMIT 1",
        )?
        .query_row(params![dataset, key], |r| {
            Ok(Sealed {
                hash: r.get(0)?,
                version: r.get(1)?,
            })
        })
        .optional()?;
    match newest {
        Some(s) => Ok(Some(s)),
        None => merged(conn, dataset, key),
    }
}

/// The last sealed version of `key` as merged into `record_state` (the
/// tail aside).
pub fn merged(conn: &Connection, dataset: &str, key: &str) -> rusqlite::Result<Option<Sealed>> {
    let mut stmt = conn
        .prepare_cached("SELECT hash, version FROM record_state WHERE dataset = ?1 AND key = ?2")?;
    stmt.query_row(params![dataset, key], |r| {
        Ok(Sealed {
            hash: r.get(0)?,
            version: r.get(1)?,
        })
    })
    .optional()
}

/// The places (`batch_id`, `idx`) the key's versions were written to, in
/// the order they were written: those merged into `record_state`, then the
/// tail's.
pub fn history(
    conn: &Connection,
    dataset: &str,
    key: &str,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let h: Option<Option<String>> = conn
        .query_row(
            "SELECT history FROM record_state WHERE dataset = ?1 AND key = ?2",
            params![dataset, key],
            |r| r.get(0),
        )
        .optional()?;
    let mut places: Vec<(String, i64)> = h
        .flatten()
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| {
            let (b, i) = p.rsplit_once(':')?;
            Some((b.to_string(), i.parse().ok()?))
        })
        .collect();
    let mut tail = conn.prepare_cached(
        "SELECT br.batch_id, br.idx FROM batch b
         JOIN batch_record br ON br.batch_id = b.batch_id
         WHERE b.seq > (SELECT seq FROM record_merge) AND b.dataset = ?1 AND br.key = ?2
         ORDER BY b.seq, br.idx",
    )?;
    for p in tail.query_map(params![dataset, key], |r| Ok((r.get(0)?, r.get(1)?)))? {
        places.push(p?);
    }
    Ok(places)
}

/// v4 → v5: where each version of a key went moves from an index of
/// `batch_record` by key into `record_state.history` (see `state::SCHEMA`), built
/// from that index once, which is then dropped, inside the migration's
/// transaction (on the benchmark machine: 4 s for a million keys, 2.5 min
/// for ten million).
pub(super) fn history_into_record_state(tx: &Connection) -> rusqlite::Result<()> {
    // A database without both tables gets them from SCHEMA, as v5 has them.
    let count = |sql: &str| tx.query_row(sql, [], |r| r.get::<_, i64>(0));
    let tables = count(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('record_state', 'batch_record')",
    )?;
    let has_history =
        count("SELECT COUNT(*) FROM pragma_table_info('record_state') WHERE name = 'history'")?;
    if tables < 2 || has_history > 0 {
        return Ok(());
    }
    let started = std::time::Instant::now();
    tx.execute_batch(
        "ALTER TABLE record_state ADD COLUMN history TEXT;
         CREATE INDEX IF NOT EXISTS batch_record_key ON batch_record(key);
         UPDATE record_state SET history = (
             SELECT group_concat(br.batch_id || ':' || br.idx, ',' ORDER BY b.seq, br.idx)
             FROM batch_record br JOIN batch b ON b.batch_id = br.batch_id
             WHERE br.key = record_state.key AND b.dataset = record_state.dataset);
         DROP INDEX batch_record_key;",
    )?;
    tracing::info!(
        millis = started.elapsed().as_millis() as u64,
        "state database: each key's history moved into record_state (one-time, schema v5)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(c: &Connection, seq: i64, id: &str) {
        c.execute(
            "INSERT INTO batch (seq, sort_key, batch_id, dataset, route, count, bytes, digest, state, sealed_at)
             VALUES (?1, ?1, ?2, 'ds', 'r', 2, 1, 'd', 'delivered', 't')",
            params![seq, id],
        )
        .unwrap();
    }

    #[test]
    fn a_v4_database_gets_each_keys_history_from_its_old_index_in_seal_order() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("fepd.db");
        {
            // v4: no history column, an index of batch_record by key.
            let c = crate::state::open(&path).unwrap();
            c.execute_batch(
                "ALTER TABLE record_state DROP COLUMN history;
                 CREATE INDEX batch_record_key ON batch_record(key);
                 PRAGMA user_version = 4;",
            )
            .unwrap();
            // A2 was sealed after B1, though its id sorts first.
            place(&c, 1, "B1");
            place(&c, 2, "A2");
            for (b, i, k) in [("B1", 0, "K"), ("B1", 1, "L"), ("A2", 0, "K")] {
                c.execute(
                    "INSERT INTO batch_record (batch_id, idx, key, hash, op) VALUES (?1, ?2, ?3, 'h', 'upsert')",
                    params![b, i, k],
                )
                .unwrap();
            }
            for (k, b) in [("K", "A2"), ("L", "B1")] {
                c.execute(
                    "INSERT INTO record_state (dataset, key, hash, op, batch_id) VALUES ('ds', ?1, 'h', 'upsert', ?2)",
                    params![k, b],
                )
                .unwrap();
            }
        }
        let c = crate::state::open(&path).unwrap();
        assert_eq!(
            history(&c, "ds", "K").unwrap(),
            [("B1".to_string(), 0), ("A2".to_string(), 0)]
        );
        assert_eq!(history(&c, "ds", "L").unwrap(), [("B1".to_string(), 1)]);
        let indexes: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'batch_record_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0, "the index by key is gone");
        // Sealing again appends (from the tail, then merged); a split half
        // or replay adds a place only.
        place(&c, 3, "C3");
        place(&c, 4, "C3.1");
        for (b, i, hash, last) in [("C3", 5, "h2", 1), ("C3.1", 0, "h2", 0)] {
            c.execute(
                "INSERT INTO batch_record (batch_id, idx, key, hash, op, sets_last) VALUES (?1, ?2, 'K', ?3, 'upsert', ?4)",
                params![b, i, hash, last],
            )
            .unwrap();
        }
        let expected = [
            ("B1".to_string(), 0),
            ("A2".to_string(), 0),
            ("C3".to_string(), 5),
            ("C3.1".to_string(), 0),
        ];
        assert_eq!(history(&c, "ds", "K").unwrap(), expected);
        assert_eq!(last_sealed(&c, "ds", "K").unwrap().unwrap().hash, "h2");
        assert_eq!(merged(&c, "ds", "K").unwrap().unwrap().hash, "h");
        let mut c = c;
        assert_eq!(crate::state::recent::merge(&mut c).unwrap(), 2);
        assert_eq!(
            history(&c, "ds", "K").unwrap(),
            expected,
            "the same after the merge"
        );
        assert_eq!(merged(&c, "ds", "K").unwrap().unwrap().hash, "h2");
    }
}
