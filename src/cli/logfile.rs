//! Daily operational log files that roll at local midnight.
//!
//! `tracing-appender`'s rolling appender dates and rolls its files in UTC
//! only (08:00 in Beijing), while receipts and the exchange log use the
//! configured offset; this writer names each file by the local date
//! (`fepd.YYYY-MM-DD.log`, the appender's naming, so older files keep
//! their place) and keeps the newest `retention_days` of them. It runs on
//! the non-blocking writer's own thread, so a roll never delays the daemon.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use chrono::{FixedOffset, NaiveDate};

const PREFIX: &str = "fepd.";
const SUFFIX: &str = ".log";

/// The file of the current local day, reopened when the day changes.
pub struct DailyFile {
    dir: PathBuf,
    tz: FixedOffset,
    /// Files kept (0 = all).
    keep: usize,
    day: NaiveDate,
    file: File,
}

impl DailyFile {
    pub fn new(dir: PathBuf, tz: FixedOffset, keep: usize) -> std::io::Result<DailyFile> {
        std::fs::create_dir_all(&dir)?;
        let day = today(tz);
        let file = open(&dir, day)?;
        let me = DailyFile {
            dir,
            tz,
            keep,
            day,
            file,
        };
        me.prune();
        Ok(me)
    }

    /// Deletes the oldest daily files beyond `keep`.
    fn prune(&self) {
        if self.keep == 0 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut days: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                n.strip_prefix(PREFIX)
                    .and_then(|r| r.strip_suffix(SUFFIX))
                    .is_some_and(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
            })
            .collect();
        days.sort();
        let excess = days.len().saturating_sub(self.keep);
        for name in &days[..excess] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }
}

fn today(tz: FixedOffset) -> NaiveDate {
    chrono::Utc::now().with_timezone(&tz).date_naive()
}

fn open(dir: &std::path::Path, day: NaiveDate) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{PREFIX}{}{SUFFIX}", day.format("%Y-%m-%d"))))
}

impl Write for DailyFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let now = today(self.tz);
        if now != self.day {
            self.file = open(&self.dir, now)?;
            self.day = now;
            self.prune();
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_the_local_date_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["2020-01-01", "2020-01-02", "2020-01-03"] {
            std::fs::write(dir.path().join(format!("fepd.{d}.log")), "old\n").unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), "").unwrap();
        // +14:00 and -12:00 are on different dates for most of the day;
        // each file is named by its own offset's date.
        for hours in [14, -12] {
            let tz = FixedOffset::east_opt(hours * 3600).unwrap();
            let mut f = DailyFile::new(dir.path().to_owned(), tz, 2).unwrap();
            writeln!(f, "hello").unwrap();
            let name = format!("fepd.{}.log", today(tz).format("%Y-%m-%d"));
            assert!(dir.path().join(&name).exists(), "{name}");
        }
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert!(left.contains(&"other.txt".to_string()));
        assert!(!left.iter().any(|n| n.starts_with("fepd.2020")), "{left:?}");
    }
}
