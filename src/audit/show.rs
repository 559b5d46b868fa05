//! `fepd audit show`: the entries that match a filter, oldest first.

use std::ops::ControlFlow;

use chrono::{DateTime, FixedOffset};
use rusqlite::Connection;

use super::{Result, instant};
use crate::state::entries::{self, Match};
use crate::state::log::StoredEntry;

/// Which entries to show; every part is optional and they combine.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Entries at or after this instant.
    pub since: Option<DateTime<FixedOffset>>,
    /// Entries before this instant (exclusive).
    pub until: Option<DateTime<FixedOffset>>,
    pub dataset: Option<String>,
    pub event: Option<String>,
    /// The file's name as dropped in the inbox.
    pub file: Option<String>,
    pub batch: Option<String>,
}

impl Filter {
    fn admits_time(&self, time: &str) -> bool {
        // An entry whose time is unreadable (only a tampered one) is shown
        // only when no time bound was asked for.
        match instant(time) {
            Some(t) => self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u),
            None => self.since.is_none() && self.until.is_none(),
        }
    }
}

/// Calls `each` for every matching entry in seq order, at most `limit`.
pub fn entries(
    conn: &Connection,
    f: &Filter,
    limit: Option<usize>,
    mut each: impl FnMut(&StoredEntry) -> std::io::Result<()>,
) -> Result<usize> {
    let m = Match {
        dataset: f.dataset.as_deref(),
        event: f.event.as_deref(),
        file: f.file.as_deref(),
        batch: f.batch.as_deref(),
    };
    let mut n = 0;
    entries::each_matching(conn, &m, |e| -> Result<ControlFlow<()>> {
        if limit.is_some_and(|l| n >= l) {
            return Ok(ControlFlow::Break(()));
        }
        if !f.admits_time(&e.time) {
            return Ok(ControlFlow::Continue(()));
        }
        each(&e).map_err(super::io_err(std::path::Path::new("stdout")))?;
        n += 1;
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(n)
}

/// One entry as a table row: seq, time, event, dataset, file or batch,
/// counts and details as compact JSON. Text from outside (a file name with
/// a newline, say) has its control characters escaped, so no row can be
/// forged; the JSON columns are escaped by their encoder.
pub fn table_row(e: &StoredEntry) -> String {
    use crate::oneline::escape;
    let subject = match (&e.file, &e.batch) {
        (Some(f), Some(b)) => format!("{f} {b}"),
        (Some(f), None) => f.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => "-".into(),
    };
    let json =
        |v: &Option<serde_json::Value>| v.as_ref().map_or("-".to_string(), |v| v.to_string());
    format!(
        "{:>7}  {:<25}  {:<26}  {:<14}  {:<30}  {}  {}",
        e.seq,
        escape(&e.time),
        escape(&e.event),
        escape(e.dataset.as_deref().unwrap_or("-")),
        escape(&subject),
        json(&e.counts),
        json(&e.details)
    )
}

pub fn table_header() -> String {
    format!(
        "{:>7}  {:<25}  {:<26}  {:<14}  {:<30}  counts  details",
        "seq", "time", "event", "dataset", "file / batch"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::files::Counts;
    use crate::state::log::{LogEntry, Verdict, append};

    #[test]
    fn filters_combine() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::state::open(&dir.path().join("fepd.db")).unwrap();
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let done = |dataset| {
            LogEntry::FileDone(Verdict {
                dataset,
                file: "f.csv",
                counts: Counts::default(),
                file_id: 1,
                sha256: "ab",
                final_name: "f.csv",
                fault: None,
                changed_after_claim: None,
            })
        };
        let sealed = LogEntry::BatchSealed {
            dataset: "a",
            batch: "B1",
            records: 1,
            bytes: 2,
            digest: "d",
            route: "r",
            file_id: Some(1),
        };
        for entry in [done("a"), done("b"), sealed] {
            append(&conn, tz, entry).unwrap();
        }
        let mut seqs = vec![];
        let f = Filter {
            dataset: Some("a".into()),
            ..Default::default()
        };
        entries(&conn, &f, None, |e| {
            seqs.push(e.seq);
            Ok(())
        })
        .unwrap();
        assert_eq!(seqs, [1, 3]);
        let f = Filter {
            dataset: Some("a".into()),
            event: Some("file_done".into()),
            since: Some(chrono::Utc::now().with_timezone(&tz) + chrono::Duration::days(1)),
            ..Default::default()
        };
        assert_eq!(entries(&conn, &f, None, |_| Ok(())).unwrap(), 0);
    }
}
