//! `fepd audit report --day`: the daily reconciliation per dataset.
//!
//! See the module doc of `audit` for the definitions. In short: the files
//! whose verdict fell on the day (in the configured timezone), their
//! record counts, and the delivery state — as of now — of the batches
//! sealed from them. The two identities are checked and shown.

use std::collections::BTreeMap;

use chrono::{FixedOffset, NaiveDate};
use rusqlite::Connection;
use serde::Serialize;

use super::{Result, day_bounds, instant};
use crate::state::daily;
use crate::state::files::FileState;

/// One dataset's day. Record counts unless named otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DatasetDay {
    pub dataset: String,
    /// Files finished that day (done or rejected; duplicates apart).
    pub files: i64,
    pub files_rejected: i64,
    /// Files recognised as a copy of an earlier one (nothing re-sent).
    pub files_duplicate: i64,
    pub received: i64,
    pub rejected: i64,
    /// unchanged + stale.
    pub skipped: i64,
    pub unchanged: i64,
    pub stale: i64,
    pub sealed: i64,
    /// Accepted records of delivered batches.
    pub delivered: i64,
    pub library_rejected: i64,
    pub parked: i64,
    /// In batches sealed or exported, not yet acknowledged.
    pub pending: i64,
    /// Batches (after splits) holding the sealed records.
    pub batches: i64,
    /// For information: batches sealed that day from any file, and their
    /// records (a file spanning midnight seals on one day, finishes on the
    /// next).
    pub batches_sealed_that_day: i64,
    pub records_sealed_that_day: i64,
    /// received = rejected + skipped + sealed
    pub received_balances: bool,
    /// sealed = delivered + library_rejected + parked + pending
    pub sealed_balances: bool,
}

impl DatasetDay {
    fn add(&mut self, o: &DatasetDay) {
        self.files += o.files;
        self.files_rejected += o.files_rejected;
        self.files_duplicate += o.files_duplicate;
        self.received += o.received;
        self.rejected += o.rejected;
        self.skipped += o.skipped;
        self.unchanged += o.unchanged;
        self.stale += o.stale;
        self.sealed += o.sealed;
        self.delivered += o.delivered;
        self.library_rejected += o.library_rejected;
        self.parked += o.parked;
        self.pending += o.pending;
        self.batches += o.batches;
        self.batches_sealed_that_day += o.batches_sealed_that_day;
        self.records_sealed_that_day += o.records_sealed_that_day;
    }

    fn check(&mut self) {
        self.skipped = self.unchanged + self.stale;
        self.received_balances = self.received == self.rejected + self.skipped + self.sealed;
        self.sealed_balances =
            self.sealed == self.delivered + self.library_rejected + self.parked + self.pending;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DayReport {
    pub day: String,
    pub timezone: String,
    pub from: String,
    pub until: String,
    pub generated_at: String,
    pub datasets: Vec<DatasetDay>,
    pub total: DatasetDay,
}

impl DayReport {
    /// Both identities hold for every dataset.
    pub fn balances(&self) -> bool {
        self.datasets
            .iter()
            .all(|d| d.received_balances && d.sealed_balances)
    }
}

/// The report for `day` in `tz`; `datasets` (the configured ones) are
/// listed even when idle, others found in the data are added.
pub fn report(
    conn: &Connection,
    day: NaiveDate,
    tz: FixedOffset,
    datasets: &[String],
) -> Result<DayReport> {
    let (start, end) = day_bounds(day, tz);
    // Times are stored as local text with an offset; a window one day
    // wider on each side catches every offset, the instant decides.
    let lo = (day - chrono::Days::new(1)).format("%Y-%m-%d").to_string();
    let hi = (day + chrono::Days::new(2)).format("%Y-%m-%d").to_string();
    let within = |t: &str| instant(t).is_some_and(|t| t >= start && t < end);

    let mut by: BTreeMap<String, DatasetDay> = datasets
        .iter()
        .map(|d| {
            (
                d.clone(),
                DatasetDay {
                    dataset: d.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();

    let mut file_ids: Vec<(String, i64)> = Vec::new();
    for f in daily::files_finished(conn, &lo, &hi)? {
        if !within(&f.finished_at) {
            continue;
        }
        let d = get(&mut by, &f.dataset);
        match f.state {
            FileState::Duplicate => {
                d.files_duplicate += 1;
                continue;
            }
            FileState::Rejected => d.files_rejected += 1,
            _ => {}
        }
        d.files += 1;
        d.received += f.counts.received;
        d.sealed += f.counts.sealed;
        d.unchanged += f.counts.skipped;
        d.stale += f.counts.stale;
        d.rejected += f.counts.rejected;
        file_ids.push((f.dataset, f.id));
    }
    for (ds, id) in &file_ids {
        let d = get(&mut by, ds);
        for b in daily::batches_of_file(conn, *id)? {
            d.batches += 1;
            match b.state.as_str() {
                "delivered" => {
                    d.delivered += b.count - b.lib_rejected;
                    d.library_rejected += b.lib_rejected;
                }
                "parked" => d.parked += b.count,
                _ => d.pending += b.count,
            }
        }
    }
    for b in daily::sealed(conn, &lo, &hi)? {
        if !within(&b.sealed_at) {
            continue;
        }
        let d = get(&mut by, &b.dataset);
        d.batches_sealed_that_day += 1;
        d.records_sealed_that_day += b.count;
    }

    let mut total = DatasetDay {
        dataset: "(total)".into(),
        ..Default::default()
    };
    let mut out = Vec::new();
    for (_, mut d) in by {
        d.check();
        total.add(&d);
        out.push(d);
    }
    total.check();
    Ok(DayReport {
        day: day.format("%Y-%m-%d").to_string(),
        timezone: tz.to_string(),
        from: start.to_rfc3339(),
        until: end.to_rfc3339(),
        generated_at: crate::state::now_text(tz),
        datasets: out,
        total,
    })
}

fn get<'a>(by: &'a mut BTreeMap<String, DatasetDay>, ds: &str) -> &'a mut DatasetDay {
    by.entry(ds.to_string()).or_insert_with(|| DatasetDay {
        dataset: ds.to_string(),
        ..Default::default()
    })
}

const COLUMNS: [&str; 13] = [
    "dataset",
    "files",
    "received",
    "rejected",
    "skipped",
    "sealed",
    "delivered",
    "library_rejected",
    "parked",
    "pending",
    "batches",
    "received_balances",
    "sealed_balances",
];

fn cells(d: &DatasetDay) -> [String; 13] {
    [
        d.dataset.clone(),
        d.files.to_string(),
        d.received.to_string(),
        d.rejected.to_string(),
        d.skipped.to_string(),
        d.sealed.to_string(),
        d.delivered.to_string(),
        d.library_rejected.to_string(),
        d.parked.to_string(),
        d.pending.to_string(),
        d.batches.to_string(),
        d.received_balances.to_string(),
        d.sealed_balances.to_string(),
    ]
}

/// CSV: a header row, one row per dataset, then the total.
pub fn to_csv(r: &DayReport) -> String {
    let mut out = String::new();
    out.push_str("day,");
    out.push_str(&COLUMNS.join(","));
    out.push('\n');
    for d in r.datasets.iter().chain(std::iter::once(&r.total)) {
        out.push_str(&r.day);
        out.push(',');
        out.push_str(&cells(d).join(","));
        out.push('\n');
    }
    out
}

/// A table for people.
pub fn to_text(r: &DayReport) -> String {
    let mut out = format!(
        "exchange report for {} ({} to {}), generated {}\n\
         files finished that day; their batches' delivery state as of now\n\n",
        r.day, r.from, r.until, r.generated_at
    );
    out.push_str(&format!(
        "{:<16} {:>6} {:>9} {:>9} {:>8} {:>8} {:>10} {:>9} {:>7} {:>8}  balances\n",
        "dataset",
        "files",
        "received",
        "rejected",
        "skipped",
        "sealed",
        "delivered",
        "lib-rej",
        "parked",
        "pending"
    ));
    for d in r.datasets.iter().chain(std::iter::once(&r.total)) {
        let ok = match (d.received_balances, d.sealed_balances) {
            (true, true) => "✓".to_string(),
            (a, b) => format!(
                "✗{}{}",
                if a {
                    ""
                } else {
                    " received≠rejected+skipped+sealed"
                },
                if b {
                    ""
                } else {
                    " sealed≠delivered+lib-rej+parked+pending"
                }
            ),
        };
        out.push_str(&format!(
            "{:<16} {:>6} {:>9} {:>9} {:>8} {:>8} {:>10} {:>9} {:>7} {:>8}  {}\n",
            d.dataset,
            d.files,
            d.received,
            d.rejected,
            d.skipped,
            d.sealed,
            d.delivered,
            d.library_rejected,
            d.parked,
            d.pending,
            ok
        ));
    }
    let sealed_today: i64 = r.total.records_sealed_that_day;
    out.push_str(&format!(
        "\nbatches sealed that day (any file): {} with {} records; duplicate files: {}\n",
        r.total.batches_sealed_that_day, sealed_today, r.total.files_duplicate
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::daily::fixtures;

    #[test]
    fn identities_hold_on_hand_made_rows_and_the_day_is_local() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::state::open(&dir.path().join("fepd.db")).unwrap();
        let add_file =
            |id: i64, finished: &str, c: [i64; 5]| fixtures::finished_file(&conn, id, finished, c);
        let add_batch =
            |id: &str, file: i64, state: &str, count: i64, lib: i64, parent: Option<&str>| {
                fixtures::batch(&conn, id, file, state, count, lib, parent)
            };
        // received 10 = 1 rejected + 2 unchanged + 1 stale + 6 sealed.
        add_file(1, "2026-11-20T23:59:59+08:00", [10, 6, 2, 1, 1]);
        add_batch("A", 1, "delivered", 3, 1, None);
        add_batch("B", 1, "split", 3, 0, None);
        add_batch("B.1", 1, "parked", 2, 0, Some("B"));
        add_batch("B.2", 1, "sealed", 1, 0, Some("B"));
        // Finished on the 21st in +08:00, though the 20th in UTC.
        add_file(2, "2026-11-21T00:00:00+08:00", [5, 5, 0, 0, 0]);
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let r = report(
            &conn,
            NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            tz,
            &["evaluation".into()],
        )
        .unwrap();
        assert!(r.balances(), "{r:#?}");
        let d = r
            .datasets
            .iter()
            .find(|d| d.dataset == "case_accept")
            .unwrap();
        assert_eq!((d.files, d.received, d.skipped, d.sealed), (1, 10, 3, 6));
        assert_eq!(
            (
                d.delivered,
                d.library_rejected,
                d.parked,
                d.pending,
                d.batches
            ),
            (2, 1, 2, 1, 3)
        );
        assert_eq!(
            (d.batches_sealed_that_day, d.records_sealed_that_day),
            (2, 6)
        );
        assert!(
            r.datasets
                .iter()
                .any(|d| d.dataset == "evaluation" && d.files == 0)
        );
        assert!(to_csv(&r).lines().count() == 4);
    }
}
