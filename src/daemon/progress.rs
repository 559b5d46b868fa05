//! Progress of the files being read (in `work/`), for `fepd status` and
//! `/status`: records committed so far, the rate since the claim, and for
//! line formats (CSV, JSON Lines) an estimate of the records left and the
//! time they will take. The estimate samples the head of the file for its
//! average line length, so it is cheap and only as good as that sample.

use std::io::Read;
use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use crate::state::files::{self, InProgress};

/// One file in `work/`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkFile {
    pub file: String,
    pub records_done: i64,
    pub elapsed_secs: i64,
    pub records_per_sec: f64,
    /// CSV / JSON Lines: the records the whole file likely holds.
    pub estimated_records: Option<i64>,
    pub eta_secs: Option<i64>,
}

/// How much of a file's head is read to estimate its line length.
const SAMPLE_BYTES: u64 = 256 * 1024;

/// The files of `dataset` being read, with their progress.
pub fn work_files(
    conn: &Connection,
    spool: &Path,
    dataset: &str,
) -> rusqlite::Result<Vec<WorkFile>> {
    let now = chrono::Utc::now();
    let work = crate::spool::Spool::new(spool, dataset).work;
    Ok(files::in_progress(conn, dataset)?
        .into_iter()
        .map(|f| progress(&f, &work, now))
        .collect())
}

fn progress(f: &InProgress, work: &Path, now: chrono::DateTime<chrono::Utc>) -> WorkFile {
    // The claim time has whole seconds: no rate is given in the first one.
    let elapsed_ms = chrono::DateTime::parse_from_rfc3339(&f.claimed_at)
        .map(|t| {
            (now - t.with_timezone(&chrono::Utc))
                .num_milliseconds()
                .max(0)
        })
        .unwrap_or(0);
    let elapsed = elapsed_ms / 1000;
    let rate = if elapsed_ms >= 1000 {
        f.records_done as f64 * 1000.0 / elapsed_ms as f64
    } else {
        0.0
    };
    let header = match f.format.as_deref() {
        Some("csv") => 1,
        Some("jsonl") => 0,
        _ => -1,
    };
    let estimated = match (header, f.size) {
        (h, Some(size)) if h >= 0 => {
            estimate_lines(&work.join(&f.work_name), size as u64).map(|n| (n - h).max(0))
        }
        _ => None,
    };
    let eta = estimated
        .filter(|_| rate > 0.0)
        .map(|total| ((total - f.records_done).max(0) as f64 / rate).ceil() as i64);
    WorkFile {
        file: f.name.clone(),
        records_done: f.records_done,
        elapsed_secs: elapsed,
        records_per_sec: (rate * 10.0).round() / 10.0,
        estimated_records: estimated,
        eta_secs: eta,
    }
}

/// Lines in a file of `size` bytes, from the line length of its head
/// (exact when the head is the whole file).
fn estimate_lines(path: &Path, size: u64) -> Option<i64> {
    let mut head = Vec::with_capacity(SAMPLE_BYTES as usize);
    std::fs::File::open(path)
        .ok()?
        .take(SAMPLE_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    let lines = head.iter().filter(|&&b| b == b'\n').count() as u64;
    if head.len() as u64 >= size {
        let unterminated = u64::from(head.last().is_some_and(|&b| b != b'\n'));
        return Some((lines + unterminated) as i64);
    }
    if lines == 0 {
        return None;
    }
    Some((size * lines / head.len() as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_lines_from_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        std::fs::write(&p, "a,b\n1,2\n3,4").unwrap();
        assert_eq!(estimate_lines(&p, 11), Some(3));
        let long = "x".repeat(99) + "\n";
        std::fs::write(&p, long.repeat(10_000)).unwrap();
        // Estimated from the head: within a line of the truth.
        let n = estimate_lines(&p, 1_000_000).unwrap();
        assert!((9_998..=10_000).contains(&n), "{n}");
    }

    #[test]
    fn rate_and_eta_from_the_claim_time() {
        let now = chrono::Utc::now();
        let claimed = (now - chrono::Duration::seconds(10)).to_rfc3339();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w~f.jsonl"), "{}\n".repeat(300)).unwrap();
        let f = InProgress {
            name: "f.jsonl".into(),
            work_name: "w~f.jsonl".into(),
            records_done: 100,
            claimed_at: claimed,
            size: Some(900),
            format: Some("jsonl".into()),
        };
        let p = progress(&f, dir.path(), now);
        assert_eq!(p.records_per_sec, 10.0);
        assert_eq!(p.estimated_records, Some(300));
        assert_eq!(p.eta_secs, Some(20));
    }
}
