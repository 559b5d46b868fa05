//! Back-pressure: when the outbox holds too much undelivered data, intake
//! pauses — no new file is claimed and files in progress wait between
//! chunks — until the backlog falls below the low-water mark. Data waits
//! in the spool instead of failing (README.md, "Watching it run": back-pressure).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::config::Backpressure;
use crate::state::batches;

/// Shared pause state: the outbox backlog (with hysteresis between the two
/// marks) and the disk (full, or below `min_free_bytes`).
pub struct Gate {
    cfg: Backpressure,
    /// Folders whose filesystems must keep `min_free_bytes` free.
    watched: Vec<PathBuf>,
    paused: AtomicBool,
    disk_full: AtomicBool,
    disk: Mutex<Disk>,
    last_check: Mutex<Option<Instant>>,
}

/// Why the disk holds intake back.
#[derive(Default)]
struct Disk {
    /// Parts of the daemon whose last write failed for lack of space
    /// (`worker-<dataset>`, `outbox`); each clears its own entry when a
    /// retry succeeds.
    failing: BTreeSet<String>,
    /// A watched filesystem is below `min_free_bytes`.
    low: Option<String>,
}

impl Disk {
    fn full(&self) -> bool {
        !self.failing.is_empty() || self.low.is_some()
    }
}

/// How often the backlog is measured at most.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// How long a part that hit a full disk waits before trying again.
pub const DISK_RETRY: Duration = Duration::from_secs(2);

/// Bytes available to fepd on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

impl Gate {
    pub fn new(cfg: Backpressure, watched: Vec<PathBuf>) -> Gate {
        Gate {
            cfg,
            watched,
            paused: AtomicBool::new(false),
            disk_full: AtomicBool::new(false),
            disk: Mutex::new(Disk::default()),
            last_check: Mutex::new(None),
        }
    }

    /// Whether intake is paused, for either reason.
    pub fn is_paused(&self) -> bool {
        self.backlog_paused() || self.is_disk_full()
    }

    /// Whether the outbox backlog holds intake back.
    pub fn backlog_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Whether the disk holds intake back (a write failed for lack of
    /// space, or free space is below `min_free_bytes`).
    pub fn is_disk_full(&self) -> bool {
        self.disk_full.load(Ordering::SeqCst)
    }

    /// Whether a backlog of `records`/`bytes` keeps intake paused, given
    /// whether it is paused now.
    pub fn decide(cfg: &Backpressure, paused: bool, records: u64, bytes: u64) -> bool {
        let over = |v: u64, high: u64, pct: u64| high > 0 && v >= high * pct / 100;
        if paused {
            // Stay paused until both fall below the low-water mark.
            let pct = cfg.low_water_percent as u64;
            over(records, cfg.high_water_records, pct) || over(bytes, cfg.high_water_bytes, pct)
        } else {
            over(records, cfg.high_water_records, 100) || over(bytes, cfg.high_water_bytes, 100)
        }
    }

    /// The first watched folder whose filesystem is below `min_free`, with
    /// its free bytes.
    pub fn low_space(min_free: u64, folders: &[PathBuf]) -> Option<(PathBuf, u64)> {
        if min_free == 0 {
            return None;
        }
        folders.iter().find_map(|f| {
            free_bytes(f)
                .filter(|&b| b < min_free)
                .map(|b| (f.clone(), b))
        })
    }

    /// Measures (at most every 200 ms) and updates the state, logging each
    /// transition; returns whether intake is paused.
    pub fn check(&self, conn: &Connection) -> bool {
        {
            let last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
                return self.is_paused();
            }
        }
        self.measure(conn);
        self.is_paused()
    }

    /// Whether the backlog `conn` sees (a chunk's own batches included)
    /// has reached the high-water mark; changes nothing. A chunk ends at
    /// the batch boundary where this turns true, so the file then waits in
    /// `wait_while_paused` as it did when every batch was its own chunk.
    pub fn at_high_water(&self, conn: &Connection) -> bool {
        if self.cfg.high_water_records == 0 && self.cfg.high_water_bytes == 0 {
            return false;
        }
        batches::total_backlog(conn)
            .map(|(_, records, bytes)| Gate::decide(&self.cfg, false, records as u64, bytes as u64))
            .unwrap_or(false)
    }

    /// Measures the backlog and the free space now and updates the state.
    pub fn measure(&self, conn: &Connection) {
        *self.last_check.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let low = Gate::low_space(self.cfg.min_free_bytes, &self.watched).map(|(f, b)| {
            format!(
                "{} has {b} bytes free, below min_free_bytes = {}",
                f.display(),
                self.cfg.min_free_bytes
            )
        });
        self.update_disk(|d| d.low = low);
        let Ok((_, records, bytes)) = batches::total_backlog(conn) else {
            return;
        };
        let was = self.backlog_paused();
        let now = Gate::decide(&self.cfg, was, records as u64, bytes as u64);
        if now != was {
            self.paused.store(now, Ordering::SeqCst);
            if now {
                tracing::warn!(
                    backlog_records = records,
                    backlog_bytes = bytes,
                    high_water_records = self.cfg.high_water_records,
                    high_water_bytes = self.cfg.high_water_bytes,
                    "intake paused: the outbox backlog reached its high-water mark"
                );
            } else {
                tracing::info!(
                    backlog_records = records,
                    backlog_bytes = bytes,
                    "intake resumed: the outbox backlog fell below its low-water mark"
                );
            }
        }
    }

    /// Records that a write by `who` failed for lack of space: intake
    /// pauses until every part that failed has written again.
    pub fn disk_failed(&self, who: &str, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        self.update_disk(|d| {
            if d.failing.insert(who.to_string()) {
                tracing::error!(part = who, error = %error, retry_in_secs = DISK_RETRY.as_secs(), "disk full: a write failed for lack of space; nothing was half-written, the work is retried from its last checkpoint");
            }
        });
    }

    /// Records that `who` wrote successfully (clears its disk failure).
    pub fn disk_ok(&self, who: &str) {
        if !self.is_disk_full() {
            return;
        }
        self.update_disk(|d| {
            d.failing.remove(who);
        });
    }

    fn update_disk(&self, f: impl FnOnce(&mut Disk)) {
        let mut d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        let was = d.full();
        let low_was = d.low.is_some();
        f(&mut d);
        let now = d.full();
        // Once per episode: the text changes with every byte written.
        if !low_was && let Some(why) = &d.low {
            tracing::warn!(reason = %why, "disk space low");
        }
        if now != was {
            self.disk_full.store(now, Ordering::SeqCst);
            if now {
                tracing::error!(
                    "intake paused: disk full or below min_free_bytes; new files wait in the inbox until space returns"
                );
            } else {
                tracing::info!("intake resumed: disk space available again");
            }
        }
    }

    /// Blocks while the backlog holds intake back, re-measuring, unless
    /// `stopping`. (A full disk does not block here: work in progress is
    /// retried by its owner, which is how the daemon learns that space
    /// returned.)
    pub fn wait_while_paused(&self, conn: &Connection, stopping: &dyn Fn() -> bool) {
        loop {
            self.measure(conn);
            if !self.backlog_paused() || stopping() {
                return;
            }
            std::thread::sleep(CHECK_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_between_high_and_low_water() {
        let cfg = Backpressure {
            high_water_records: 1000,
            high_water_bytes: 0,
            low_water_percent: 80,
            min_free_bytes: 0,
        };
        assert!(!Gate::decide(&cfg, false, 999, u64::MAX));
        assert!(Gate::decide(&cfg, false, 1000, 0));
        assert!(Gate::decide(&cfg, true, 900, 0), "still above low water");
        assert!(!Gate::decide(&cfg, true, 799, 0));
    }

    #[test]
    fn intake_stays_paused_until_every_failing_part_has_written_again() {
        let gate = Gate::new(Backpressure::default(), Vec::new());
        assert!(!gate.is_paused());
        gate.disk_failed("worker-a", &"no space");
        gate.disk_failed("outbox", &"no space");
        assert!(gate.is_paused() && gate.is_disk_full());
        gate.disk_ok("worker-a");
        assert!(gate.is_disk_full(), "the outbox still fails");
        gate.disk_ok("worker-b");
        assert!(
            gate.is_disk_full(),
            "a part that never failed clears nothing"
        );
        gate.disk_ok("outbox");
        assert!(!gate.is_paused());
    }

    #[test]
    fn low_space_compares_free_bytes_with_the_minimum() {
        let d = tempfile::tempdir().unwrap();
        let here = vec![d.path().to_path_buf()];
        assert!(free_bytes(d.path()).is_some_and(|b| b > 0));
        assert_eq!(Gate::low_space(0, &here), None, "0 disables the check");
        assert_eq!(Gate::low_space(1, &here), None);
        let (folder, free) = Gate::low_space(u64::MAX, &here).unwrap();
        assert_eq!(folder, d.path());
        assert!(free < u64::MAX);
    }
}
