//! The scanner: which inbox files are complete, and claiming them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::claim::{self, Attempt};
use super::refusal::{Name, NotTaken, classify_kind, classify_name, escape};
use crate::config::Ready;
use crate::fsio;

/// One dataset's inbox and where claimed files go.
#[derive(Debug, Clone)]
pub struct Inbox {
    pub dataset: String,
    pub dir: PathBuf,
    pub work: PathBuf,
    pub ready: Ready,
    /// Larger files are refused by their size, never read.
    pub max_file_bytes: u64,
}

/// A file moved into `work/`: `work/<work_name>`, where `work_name` is
/// `<claim id>~<original name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub dataset: String,
    pub work_name: String,
}

/// What a rescan saw of a file last time (for the settle rule).
#[derive(Debug, Clone, Copy)]
struct Seen {
    size: u64,
    mtime: Option<SystemTime>,
    since: Instant,
}

/// How long a file closed after writing stays untouched before it is
/// claimed, unless configured: a writer that closes and appends again
/// (`echo header > f; echo row >> f`) does so well within it.
pub const DEFAULT_QUIET: Duration = Duration::from_millis(200);

/// Decides, across scans, which inbox files are complete, and claims them.
pub struct Scanner {
    inboxes: Vec<Inbox>,
    spool: PathBuf,
    settle: Duration,
    quiet: Duration,
    /// Files the watcher saw renamed in: complete.
    hot: HashSet<PathBuf>,
    /// Files the watcher saw closed after writing, and when: complete once
    /// `quiet` has passed with no new close.
    closed: HashMap<PathBuf, Instant>,
    /// Files some process still held open for writing at the last scan.
    busy: HashSet<PathBuf>,
    /// Files found by a scan, waiting to settle.
    seen: HashMap<PathBuf, Seen>,
    /// Folders already warned about (unreadable inboxes, unknown folders),
    /// so a long-lived daemon does not repeat itself every scan.
    warned: HashSet<PathBuf>,
    /// Files not taken, reported once each (again if the reason changes or
    /// the file comes back after leaving).
    reported: HashMap<PathBuf, &'static str>,
    /// Datasets collected on a schedule: between collections, a scan of
    /// their inbox takes only what the watcher saw complete.
    scheduled: HashSet<String>,
    /// Scheduled datasets whose collection is due (until every file their
    /// scan found has settled and been taken).
    collecting: HashSet<String>,
}

impl Scanner {
    pub fn new(spool: &Path, inboxes: Vec<Inbox>, settle: Duration) -> Scanner {
        Scanner {
            inboxes,
            spool: spool.to_owned(),
            settle,
            quiet: DEFAULT_QUIET,
            hot: HashSet::new(),
            closed: HashMap::new(),
            busy: HashSet::new(),
            seen: HashMap::new(),
            warned: HashSet::new(),
            reported: HashMap::new(),
            scheduled: HashSet::new(),
            collecting: HashSet::new(),
        }
    }

    /// The quiet period after a close (`[intake] quiet_ms`).
    pub fn set_quiet(&mut self, quiet: Duration) {
        self.quiet = quiet;
    }

    /// `dataset` is collected on a schedule ([`Scanner::collect`]) rather
    /// than by every rescan.
    pub fn set_scheduled(&mut self, dataset: &str) {
        self.scheduled.insert(dataset.to_string());
    }

    /// A scheduled collection of `dataset` is due: the next scans take
    /// every complete file of its inbox.
    pub fn collect(&mut self, dataset: &str) {
        if self.scheduled.contains(dataset) {
            self.collecting.insert(dataset.to_string());
        }
    }

    /// The watcher saw `path` renamed in: complete by the drop contract.
    pub fn mark_complete(&mut self, path: PathBuf) {
        self.hot.insert(path);
    }

    /// The watcher saw `path` closed after writing: complete unless it is
    /// written again within the quiet period.
    pub fn mark_closed(&mut self, path: PathBuf) {
        self.closed.insert(path, Instant::now());
    }

    /// Whether any file is waiting to settle, for its quiet period or for
    /// its writer (the caller then scans again soon, after
    /// [`Scanner::retry_in`], rather than at the next rescan).
    pub fn has_pending(&self) -> bool {
        !self.seen.is_empty() || !self.closed.is_empty() || !self.busy.is_empty()
    }

    /// When to scan again for the files waiting: the end of the first
    /// quiet period, at most half a second.
    pub fn retry_in(&self) -> Duration {
        let now = Instant::now();
        self.closed
            .values()
            .map(|t| (*t + self.quiet).saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::MAX)
            .clamp(Duration::from_millis(10), Duration::from_millis(500))
    }

    /// Scans every inbox and claims what is complete, oldest claim first.
    pub fn scan(&mut self) -> Vec<Claimed> {
        let mut out = Vec::new();
        let inboxes = self.inboxes.clone();
        let mut present = HashSet::new();
        let mut listed = HashSet::new();
        self.busy.clear();
        for inbox in &inboxes {
            let full = !self.scheduled.contains(&inbox.dataset)
                || self.collecting.contains(&inbox.dataset);
            self.scan_inbox(inbox, full, &mut out, &mut present, &mut listed);
        }
        // Forget files that disappeared (taken away, or claimed).
        self.seen.retain(|p, _| present.contains(p));
        self.hot.retain(|p| present.contains(p));
        self.closed.retain(|p, _| present.contains(p));
        self.reported.retain(|p, _| listed.contains(p));
        // A collection ends once nothing found in its inbox waits to settle.
        let seen = &self.seen;
        self.collecting.retain(|ds| {
            inboxes
                .iter()
                .filter(|i| &i.dataset == ds)
                .any(|i| seen.keys().any(|p| p.parent() == Some(i.dir.as_path())))
        });
        self.warn_unknown_folders();
        out
    }

    /// Logs a file not taken, once while it stays.
    fn report(&mut self, inbox: &Inbox, path: &Path, why: &NotTaken) {
        if self.reported.get(path) == Some(&why.code()) {
            return;
        }
        self.reported.insert(path.to_owned(), why.code());
        let shown = match why {
            NotTaken::NotUtf8 { shown } => shown.clone(),
            _ => escape(&path.file_name().unwrap_or_default().to_string_lossy()),
        };
        tracing::warn!(dataset = %inbox.dataset, file = %shown, code = why.code(), reason = %why.reason(), "file not taken; left in the inbox (listed by `fepd status`)");
    }

    /// Scans one inbox; unless `full`, only files the watcher saw complete
    /// (or whose marker it saw) are taken.
    fn scan_inbox(
        &mut self,
        inbox: &Inbox,
        full: bool,
        out: &mut Vec<Claimed>,
        present: &mut HashSet<PathBuf>,
        listed: &mut HashSet<PathBuf>,
    ) {
        let entries = match fs::read_dir(&inbox.dir) {
            Ok(e) => e,
            Err(e) => {
                if self.warned.insert(inbox.dir.clone()) {
                    tracing::warn!(dataset = %inbox.dataset, dir = %inbox.dir.display(), error = %e, "cannot read inbox");
                }
                return;
            }
        };
        let mut entries: Vec<(std::ffi::OsString, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name(), e.path()))
            .collect();
        entries.sort();
        for (os_name, path) in entries {
            listed.insert(path.clone());
            let name = match classify_name(&os_name, inbox.ready) {
                Name::Data(n) => n.to_string(),
                Name::Pending => continue,
                Name::Refused(why) => {
                    self.report(inbox, &path, &why);
                    continue;
                }
            };
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if let Some(why) = classify_kind(&meta, inbox.max_file_bytes) {
                self.report(inbox, &path, &why);
                continue;
            }
            present.insert(path.clone());
            if !self.is_complete(inbox, full, &name, &path, &meta) {
                continue;
            }
            match claim::claim(&inbox.dir, &inbox.work, &name, inbox.max_file_bytes) {
                Attempt::Taken { work_name } => {
                    self.seen.remove(&path);
                    self.hot.remove(&path);
                    self.closed.remove(&path);
                    self.reported.remove(&path);
                    if inbox.ready == Ready::Marker {
                        let marker = inbox.dir.join(format!("{name}.ok"));
                        let _ = fs::remove_file(&marker);
                        let _ = fsio::sync_dir(&inbox.dir);
                    }
                    out.push(Claimed {
                        dataset: inbox.dataset.clone(),
                        work_name,
                    });
                }
                Attempt::Busy => {
                    tracing::debug!(dataset = %inbox.dataset, file = %escape(&name), "still open for writing; not claimed yet");
                    self.busy.insert(path);
                }
                Attempt::Refused(why) => self.report(inbox, &path, &why),
                Attempt::Gone => {}
            }
        }
    }

    fn is_complete(
        &mut self,
        inbox: &Inbox,
        full: bool,
        name: &str,
        path: &Path,
        meta: &fs::Metadata,
    ) -> bool {
        match inbox.ready {
            Ready::Marker => {
                let marker = inbox.dir.join(format!("{name}.ok"));
                let woken = |p: &Path| self.hot.contains(p) || self.closed.contains_key(p);
                (full || woken(&marker) || woken(path)) && marker.exists()
            }
            Ready::Settle => {
                if self.hot.contains(path) {
                    return true;
                }
                if let Some(t) = self.closed.get(path) {
                    // Closed after writing: wait for the quiet period, in
                    // which an appending writer closes again.
                    return t.elapsed() >= self.quiet;
                }
                if !full {
                    return false;
                }
                let now = Instant::now();
                let cur = Seen {
                    size: meta.len(),
                    mtime: meta.modified().ok(),
                    since: now,
                };
                match self.seen.get(path) {
                    Some(s) if s.size == cur.size && s.mtime == cur.mtime => {
                        now.duration_since(s.since) >= self.settle
                    }
                    _ => {
                        self.seen.insert(path.to_owned(), cur);
                        self.settle.is_zero()
                    }
                }
            }
        }
    }

    fn warn_unknown_folders(&mut self) {
        let Ok(entries) = fs::read_dir(&self.spool) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "outbox" || name.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            if !self.inboxes.iter().any(|i| i.dataset == name) && self.warned.insert(e.path()) {
                tracing::warn!(folder = %escape(&name), "spool folder is not a configured dataset; its files are left in place");
            }
        }
    }
}

/// Files left in `work/` by an earlier run, oldest claim first.
pub fn leftovers(work: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(work)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox(dir: &Path, ready: Ready) -> Inbox {
        Inbox {
            dataset: "case_accept".into(),
            dir: dir.join("case_accept/inbox"),
            work: dir.join("case_accept/work"),
            ready,
            max_file_bytes: 1 << 30,
        }
    }

    #[test]
    fn settle_rule_waits_then_claims_and_skips_partial_names() {
        let d = tempfile::tempdir().unwrap();
        let ib = inbox(d.path(), Ready::Settle);
        fs::create_dir_all(&ib.dir).unwrap();
        fs::write(ib.dir.join("a.csv"), "x").unwrap();
        fs::write(ib.dir.join("b.csv.part"), "x").unwrap();
        fs::write(ib.dir.join(".c.csv"), "x").unwrap();
        let mut s = Scanner::new(d.path(), vec![ib.clone()], Duration::from_millis(50));
        assert!(
            s.scan().is_empty(),
            "first sight only starts the settle clock"
        );
        std::thread::sleep(Duration::from_millis(60));
        let got = s.scan();
        assert_eq!(got.len(), 1);
        assert!(got[0].work_name.ends_with("~a.csv"));
        assert!(ib.work.join(&got[0].work_name).exists());
        assert!(ib.dir.join("b.csv.part").exists());
    }

    #[test]
    fn watcher_marked_files_are_taken_at_once() {
        let d = tempfile::tempdir().unwrap();
        let ib = inbox(d.path(), Ready::Settle);
        fs::create_dir_all(&ib.dir).unwrap();
        fs::write(ib.dir.join("a.csv"), "x").unwrap();
        let mut s = Scanner::new(d.path(), vec![ib.clone()], Duration::from_secs(60));
        s.mark_complete(ib.dir.join("a.csv"));
        assert_eq!(s.scan().len(), 1);
    }

    #[test]
    fn a_scheduled_inbox_is_collected_only_when_due_but_watcher_files_go_at_once() {
        let d = tempfile::tempdir().unwrap();
        let ib = inbox(d.path(), Ready::Settle);
        fs::create_dir_all(&ib.dir).unwrap();
        fs::write(ib.dir.join("a.csv"), "x").unwrap();
        let mut s = Scanner::new(d.path(), vec![ib.clone()], Duration::ZERO);
        s.set_scheduled("case_accept");
        assert!(s.scan().is_empty(), "found by a rescan between collections");
        assert!(!s.has_pending(), "not even tracked");
        // The watcher saw this one complete: taken whatever the schedule.
        fs::write(ib.dir.join("b.csv"), "x").unwrap();
        s.mark_complete(ib.dir.join("b.csv"));
        let got = s.scan();
        assert_eq!(got.len(), 1);
        assert!(got[0].work_name.ends_with("~b.csv"));
        // The collection is due: the rest is taken, then it ends.
        s.collect("case_accept");
        let got = s.scan();
        assert_eq!(got.len(), 1);
        assert!(got[0].work_name.ends_with("~a.csv"));
        fs::write(ib.dir.join("c.csv"), "x").unwrap();
        assert!(
            s.scan().is_empty(),
            "the collection ended with the last file"
        );
    }

    #[test]
    fn a_scheduled_collection_lasts_until_its_files_settle() {
        let d = tempfile::tempdir().unwrap();
        let ib = inbox(d.path(), Ready::Settle);
        fs::create_dir_all(&ib.dir).unwrap();
        fs::write(ib.dir.join("a.csv"), "x").unwrap();
        let mut s = Scanner::new(d.path(), vec![ib.clone()], Duration::from_millis(50));
        s.set_scheduled("case_accept");
        s.collect("case_accept");
        assert!(s.scan().is_empty(), "first sight starts the settle clock");
        assert!(s.has_pending());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(s.scan().len(), 1, "still collecting: taken once settled");
    }

    #[test]
    fn marker_mode_needs_ok_file_and_removes_it() {
        let d = tempfile::tempdir().unwrap();
        let ib = inbox(d.path(), Ready::Marker);
        fs::create_dir_all(&ib.dir).unwrap();
        fs::write(ib.dir.join("a.csv"), "x").unwrap();
        let mut s = Scanner::new(d.path(), vec![ib.clone()], Duration::ZERO);
        assert!(s.scan().is_empty());
        fs::write(ib.dir.join("a.csv.ok"), "").unwrap();
        assert_eq!(s.scan().len(), 1);
        assert!(!ib.dir.join("a.csv.ok").exists());
    }

    #[test]
    fn symlinks_and_directories_are_never_taken() {
        let d = tempfile::tempdir().unwrap();
        let ib = inbox(d.path(), Ready::Settle);
        fs::create_dir_all(ib.dir.join("sub")).unwrap();
        fs::write(d.path().join("target.csv"), "x").unwrap();
        std::os::unix::fs::symlink(d.path().join("target.csv"), ib.dir.join("link.csv")).unwrap();
        let mut s = Scanner::new(d.path(), vec![ib.clone()], Duration::ZERO);
        assert!(s.scan().is_empty());
        assert!(s.scan().is_empty());
        assert!(ib.dir.join("link.csv").exists());
    }
}
