//! Per-dataset and per-route figures for `fepd status`, `/status` and
//! `/metrics`: one set of queries behind every surface that shows them.

use rusqlite::{Connection, OptionalExtension};

/// What the state database knows of one dataset.
#[derive(Debug, Clone, Default)]
pub struct DatasetFigures {
    pub received: i64,
    pub rejected: i64,
    pub sealed: i64,
    pub skipped: i64,
    pub delivered: i64,
    pub parked: i64,
    pub retries: i64,
    pub last_delivery: Option<String>,
    pub last_error: Option<String>,
}

pub fn dataset(conn: &Connection, ds: &str) -> rusqlite::Result<DatasetFigures> {
    let mut f = DatasetFigures::default();
    (f.received, f.rejected, f.sealed, f.skipped) = conn.query_row(
        "SELECT COALESCE(SUM(received), 0), COALESCE(SUM(rejected), 0), COALESCE(SUM(sealed), 0),
                COALESCE(SUM(skipped + stale), 0)
         FROM file WHERE dataset = ?1",
        [ds],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    (f.delivered, f.parked, f.retries, f.last_delivery) = conn.query_row(
        "SELECT COALESCE(SUM(CASE WHEN state = 'delivered' THEN count END), 0),
                COUNT(CASE WHEN state = 'parked' THEN 1 END),
                COALESCE(SUM(attempts), 0),
                MAX(delivered_at)
         FROM batch WHERE dataset = ?1",
        [ds],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    f.last_error = conn
        .query_row(
            "SELECT last_error FROM batch WHERE dataset = ?1 AND last_error IS NOT NULL
             ORDER BY seq DESC LIMIT 1",
            [ds],
            |r| r.get(0),
        )
        .ok();
    Ok(f)
}

/// A route with pending batches.
#[derive(Debug, Clone)]
pub struct PendingRoute {
    pub route: String,
    pub pending_batches: i64,
    /// `sealed_at` of the oldest pending batch.
    pub oldest_sealed_at: String,
    /// When the route last delivered (its last batch in seal order).
    pub last_delivery: Option<String>,
}

/// Routes with pending batches; delivery follows seal order per route, so
/// the delivered batch last in that order is the last delivered.
pub fn pending_routes(conn: &Connection) -> rusqlite::Result<Vec<PendingRoute>> {
    let mut stmt = conn.prepare(
        "SELECT route, COUNT(*), MIN(sealed_at),
           (SELECT d.delivered_at FROM batch d WHERE d.state = 'delivered' AND d.route = p.route
            ORDER BY d.sort_key DESC LIMIT 1)
         FROM batch p WHERE state IN ('sealed', 'exported') GROUP BY route ORDER BY route",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(PendingRoute {
            route: r.get(0)?,
            pending_batches: r.get(1)?,
            oldest_sealed_at: r.get(2)?,
            last_delivery: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// One dataset's counts over a time range, for the alerts' heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub dataset: String,
    /// Records in files finished in the range.
    pub received: i64,
    /// Records in batches sealed in the range.
    pub sealed: i64,
    /// Records in batches delivered in the range.
    pub delivered: i64,
}

/// Counts per dataset between `lo` (inclusive) and `hi` (exclusive),
/// RFC 3339 times in the offset the daemon writes; datasets with none
/// are left out.
pub fn day_counts(conn: &Connection, lo: &str, hi: &str) -> rusqlite::Result<Vec<DayCounts>> {
    let mut stmt = conn.prepare(
        "SELECT dataset, SUM(received), SUM(sealed), SUM(delivered) FROM (
           SELECT dataset, received, 0 AS sealed, 0 AS delivered FROM file
            WHERE finished_at >= ?1 AND finished_at < ?2
           UNION ALL
           SELECT dataset, 0, count, 0 FROM batch
            WHERE parent_id IS NULL AND sealed_at >= ?1 AND sealed_at < ?2
           UNION ALL
           SELECT dataset, 0, 0, count FROM batch
            WHERE state = 'delivered' AND delivered_at >= ?1 AND delivered_at < ?2)
         GROUP BY dataset ORDER BY dataset",
    )?;
    let rows = stmt.query_map([lo, hi], |r| {
        Ok(DayCounts {
            dataset: r.get(0)?,
            received: r.get(1)?,
            sealed: r.get(2)?,
            delivered: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The state database's schema version (0 for one just created).
pub fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// What a cluster node's exchange log says of its share of the cluster's
/// work (docs/cluster.md "Fleet view").
#[derive(Debug, Clone, Default)]
pub struct ClusterFigures {
    /// `batch_handed_off` entries whose time starts with `today`.
    pub handed_off_today: i64,
    pub last_hand_off: Option<String>,
    /// The last `cluster_pushed` this node made that the library took
    /// (delivered or duplicate).
    pub last_delivery: Option<String>,
}

// Each reads the log's index by (event, time), not the log: a day's
// times run from `today` to before `today` and "U" (every time is
// `YYYY-MM-DDThh:…`); the last delivery is walked back from the newest
// push.
const HANDED_OFF_TODAY: &str = "SELECT COUNT(*) FROM exchange_log
    WHERE event = 'batch_handed_off' AND time >= ?1 AND time < ?1 || 'U'";
const LAST_HAND_OFF: &str = "SELECT MAX(time) FROM exchange_log WHERE event = 'batch_handed_off'";
const LAST_DELIVERY: &str = "SELECT time FROM exchange_log WHERE event = 'cluster_pushed'
    AND json_extract(details, '$.outcome') IN ('delivered', 'duplicate')
    ORDER BY time DESC LIMIT 1";

/// `today` is the local date, `YYYY-MM-DD`, as entry times begin.
pub fn cluster(conn: &Connection, today: &str) -> rusqlite::Result<ClusterFigures> {
    Ok(ClusterFigures {
        handed_off_today: conn.query_row(HANDED_OFF_TODAY, [today], |r| r.get(0))?,
        last_hand_off: conn.query_row(LAST_HAND_OFF, [], |r| r.get(0))?,
        last_delivery: conn.query_row(LAST_DELIVERY, [], |r| r.get(0)).optional()?,
    })
}

#[cfg(test)]
mod cluster_tests {
    use super::*;

    #[test]
    fn a_node_s_figures_count_today_only_and_its_last_taken_push_from_the_index() {
        let d = tempfile::tempdir().unwrap();
        let c = crate::state::open(&d.path().join("fepd.db")).unwrap();
        let entries = [
            ("2026-12-01T23:59:59+08:00", "batch_handed_off", "{}"),
            ("2026-12-02T00:00:00+08:00", "batch_handed_off", "{}"),
            ("2026-12-02T09:30:00+08:00", "batch_handed_off", "{}"),
            (
                "2026-12-02T10:00:00+08:00",
                "cluster_pushed",
                r#"{"outcome":"delivered"}"#,
            ),
            (
                "2026-12-02T10:05:00+08:00",
                "cluster_pushed",
                r#"{"outcome":"duplicate"}"#,
            ),
            (
                "2026-12-02T11:00:00+08:00",
                "cluster_pushed",
                r#"{"outcome":"parked"}"#,
            ),
            ("2026-12-03T00:00:01+08:00", "file_done", "{}"),
        ];
        for (time, event, details) in entries {
            c.execute(
                "INSERT INTO exchange_log (time, event, details, hash) VALUES (?1, ?2, ?3, 'h')",
                (time, event, details),
            )
            .unwrap();
        }
        let f = cluster(&c, "2026-12-02").unwrap();
        assert_eq!(f.handed_off_today, 2);
        assert_eq!(
            f.last_hand_off.as_deref(),
            Some("2026-12-02T09:30:00+08:00")
        );
        assert_eq!(
            f.last_delivery.as_deref(),
            Some("2026-12-02T10:05:00+08:00")
        );
        assert_eq!(cluster(&c, "2026-12-04").unwrap().handed_off_today, 0);
        // Read every heartbeat for the daemon's life: never a scan of the
        // whole log.
        for sql in [HANDED_OFF_TODAY, LAST_HAND_OFF, LAST_DELIVERY] {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            if st.parameter_count() == 1 {
                st.raw_bind_parameter(1, "2026-12-02").unwrap();
            }
            let mut rows = st.raw_query();
            let mut plan = Vec::new();
            while let Some(r) = rows.next().unwrap() {
                plan.push(r.get::<_, String>(3).unwrap());
            }
            assert!(
                plan.iter()
                    .all(|p| p.contains("USING COVERING INDEX exchange_log_event")
                        || p.contains("USING INDEX exchange_log_event")),
                "{sql}: {plan:?}"
            );
        }
    }
}
