//! One daemon per state directory: an exclusive lock on `fepd.lock` in the
//! state folder, taken before recovery and held until the process exits,
//! and the heartbeat beside it that `fepd status` reads.
//!
//! Design constraints:
//! - The lock is `flock(2)` (through `std::fs::File::try_lock`): the kernel
//!   drops it when the process dies, even by SIGKILL, so a crash never
//!   leaves a stale lock that an operator must delete by hand.
//! - The lock file is never deleted or replaced: a new inode would let a
//!   second daemon lock a file the first one no longer sees.
//! - Its text (pid, version, start time) is written once, after the lock is
//!   held; the heartbeat is a separate small file replaced by rename, so a
//!   reader never sees half of it.
//! - Readers (`fepd status`, `/status`) only *test* the lock with a shared
//!   try-lock released at once; a daemon starting in that instant retries
//!   for a moment instead of failing.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// File names in the state folder.
const LOCK_FILE: &str = "fepd.lock";
const HEARTBEAT_FILE: &str = "fepd.heartbeat";

/// How often the running daemon writes its heartbeat (at most this long
/// apart while the intake loop is alive).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// Why the instance lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another fepd (pid {pid}, started {started}) holds {}", state_dir.display())]
    Held {
        pid: String,
        started: String,
        state_dir: PathBuf,
    },
    #[error("instance lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the lock file says about the daemon holding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub version: String,
    /// Start time in the configured offset (RFC 3339).
    pub started: String,
    /// Start time, milliseconds since the epoch (for the uptime).
    pub started_ms: i64,
}

/// The daemon's last heartbeat: when, and what it saw of its own health.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Beat {
    pub pid: u32,
    /// RFC 3339 in the configured offset.
    pub time: String,
    pub time_ms: i64,
    pub intake_paused: bool,
    pub disk_full: bool,
    /// Why `/healthz` would answer 503; empty when healthy.
    pub problems: Vec<String>,
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    state_dir: PathBuf,
    pub holder: Holder,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Takes the lock of `state_dir` (creating the folder if needed), or says
/// which daemon holds it.
pub fn acquire(state_dir: &Path, tz: chrono::FixedOffset) -> Result<InstanceLock, LockError> {
    std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    let path = state_dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    // A `fepd status` may hold a shared lock for an instant: retry briefly
    // before concluding that another daemon runs.
    let mut tries = 0;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                let h = read_holder(&mut file);
                return Err(LockError::Held {
                    pid: h.as_ref().map_or("?".into(), |h| h.pid.to_string()),
                    started: h.map_or("?".into(), |h| h.started),
                    state_dir: state_dir.to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
    }
    let now = chrono::Utc::now();
    let holder = Holder {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started: now
            .with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        started_ms: now.timestamp_millis(),
    };
    let text = serde_json::to_vec(&holder).expect("a holder serializes");
    file.set_len(0).map_err(io(&path))?;
    file.rewind().map_err(io(&path))?;
    file.write_all(&text).map_err(io(&path))?;
    file.sync_data().map_err(io(&path))?;
    Ok(InstanceLock {
        _file: file,
        state_dir: state_dir.to_owned(),
        holder,
    })
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

impl InstanceLock {
    /// The state folder this lock guards.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Writes the heartbeat (temp file + rename; no fsync: a heartbeat
    /// lost in a power cut says nothing wrong, the daemon is gone too).
    pub fn beat(&self, beat: &Beat) -> std::io::Result<()> {
        let path = self.state_dir.join(HEARTBEAT_FILE);
        let tmp = self.state_dir.join(format!(".{HEARTBEAT_FILE}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(beat).expect("a heartbeat serializes"),
        )?;
        std::fs::rename(&tmp, &path)
    }
}

/// What a reader learns about the daemon of `state_dir`.
#[derive(Debug, Clone)]
pub enum Presence {
    /// A daemon holds the lock.
    Running { holder: Holder, beat: Option<Beat> },
    /// No daemon holds it; the last heartbeat of the last one, if any.
    Stopped { last_beat: Option<Beat> },
}

/// Whether a daemon holds `state_dir`, without ever keeping the lock.
pub fn presence(state_dir: &Path) -> Presence {
    let beat = std::fs::read(state_dir.join(HEARTBEAT_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Beat>(&b).ok());
    let Ok(mut file) = File::open(state_dir.join(LOCK_FILE)) else {
        return Presence::Stopped { last_beat: beat };
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Presence::Stopped { last_beat: beat }
        }
        Err(_) => match read_holder(&mut file) {
            // The heartbeat belongs to this daemon only if the pids match;
            // otherwise it is the previous one's and this one has not
            // beaten yet.
            Some(holder) => Presence::Running {
                beat: beat.filter(|b| b.pid == holder.pid),
                holder,
            },
            None => Presence::Running {
                holder: Holder {
                    pid: 0,
                    version: "?".into(),
                    started: "?".into(),
                    started_ms: 0,
                },
                beat,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz() -> chrono::FixedOffset {
        chrono::FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), tz()).unwrap();
        let err = acquire(dir.path(), tz()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("another fepd (pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(matches!(presence(dir.path()), Presence::Running { .. }));
        drop(first);
        assert!(matches!(presence(dir.path()), Presence::Stopped { .. }));
        acquire(dir.path(), tz()).unwrap();
    }

    #[test]
    fn heartbeat_is_read_back_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = acquire(dir.path(), tz()).unwrap();
        assert!(matches!(
            presence(dir.path()),
            Presence::Running { beat: None, .. }
        ));
        lock.beat(&Beat {
            pid: std::process::id(),
            time: "t".into(),
            ..Default::default()
        })
        .unwrap();
        match presence(dir.path()) {
            Presence::Running { holder, beat } => {
                assert_eq!(holder.pid, std::process::id());
                assert_eq!(beat.unwrap().time, "t");
            }
            p => panic!("{p:?}"),
        }
        drop(lock);
        match presence(dir.path()) {
            Presence::Stopped { last_beat } => assert_eq!(last_beat.unwrap().time, "t"),
            p => panic!("{p:?}"),
        }
    }
}
