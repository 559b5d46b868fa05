//! The scanner: which inbox files are complete, and claiming them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config::Ready;
use crate::fsio;

/// One dataset's inbox and where claimed files go.
#[derive(Debug, Clone)]
pub struct Inbox {
    pub dataset: String,
    pub dir: PathBuf,
    pub work: PathBuf,
    pub ready: Ready,
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

/// Decides, across scans, which inbox files are complete, and claims them.
pub struct Scanner {
    inboxes: Vec<Inbox>,
    spool: PathBuf,
    settle: Duration,
    /// Files the watcher saw closed after writing or renamed in: complete.
    hot: HashSet<PathBuf>,
    /// Files found by a scan, waiting to settle.
    seen: HashMap<PathBuf, Seen>,
    /// Paths already warned about (symlinks, unreadable files, unknown
    /// folders), so a long-lived daemon does not repeat itself every scan.
    warned: HashSet<PathBuf>,
    /// Datasets collected on a schedule: between collections, a scan of
    /// their inbox takes only what the watcher saw complete.
    scheduled: HashSet<String>,
    /// Scheduled datasets whose collection is due (until every file their
    /// scan found has settled and been taken).
    collecting: HashSet<String>,
}

/// Names writers use while a file is incomplete, and our own markers.
fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".part")
        || name.ends_with(".tmp")
        || name.ends_with(".ok")
}

impl Scanner {
    pub fn new(spool: &Path, inboxes: Vec<Inbox>, settle: Duration) -> Scanner {
        Scanner {
            inboxes,
            spool: spool.to_owned(),
            settle,
            hot: HashSet::new(),
            seen: HashMap::new(),
            warned: HashSet::new(),
            scheduled: HashSet::new(),
            collecting: HashSet::new(),
        }
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

    /// The watcher saw `path` closed after writing or renamed in.
    pub fn mark_complete(&mut self, path: PathBuf) {
        self.hot.insert(path);
    }

    /// Whether any file is waiting to settle (the caller then scans again
    /// soon rather than at the next rescan).
    pub fn has_pending(&self) -> bool {
        !self.seen.is_empty()
    }

    /// Scans every inbox and claims what is complete, oldest claim first.
    pub fn scan(&mut self) -> Vec<Claimed> {
        let mut out = Vec::new();
        let inboxes = self.inboxes.clone();
        let mut present = HashSet::new();
        for inbox in &inboxes {
            let full = !self.scheduled.contains(&inbox.dataset)
                || self.collecting.contains(&inbox.dataset);
            self.scan_inbox(inbox, full, &mut out, &mut present);
        }
        // Forget files that disappeared (taken away, or claimed).
        self.seen.retain(|p, _| present.contains(p));
        self.hot.retain(|p| present.contains(p));
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

    /// Scans one inbox; unless `full`, only files the watcher saw complete
    /// (or whose marker it saw) are taken.
    fn scan_inbox(
        &mut self,
        inbox: &Inbox,
        full: bool,
        out: &mut Vec<Claimed>,
        present: &mut HashSet<PathBuf>,
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
        let mut names: Vec<(String, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok().map(|n| (n, e.path())))
            .collect();
        names.sort();
        for (name, path) in names {
            if is_ignored_name(&name) {
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if !meta.file_type().is_file() {
                if self.warned.insert(path.clone()) {
                    let kind = if meta.file_type().is_symlink() {
                        "symlink"
                    } else if meta.is_dir() {
                        "directory"
                    } else {
                        "special file"
                    };
                    tracing::warn!(dataset = %inbox.dataset, file = %name, kind, "ignored: not a regular file (never followed)");
                }
                continue;
            }
            present.insert(path.clone());
            if !self.is_complete(inbox, full, &name, &path, &meta) {
                continue;
            }
            if let Err(e) = fs::File::open(&path) {
                if self.warned.insert(path.clone()) {
                    tracing::warn!(dataset = %inbox.dataset, file = %name, error = %e, "unreadable file left in place");
                }
                continue;
            }
            match claim(inbox, &name, &path) {
                Ok(c) => {
                    self.seen.remove(&path);
                    self.hot.remove(&path);
                    out.push(c);
                }
                Err(e) => {
                    if self.warned.insert(path.clone()) {
                        tracing::warn!(dataset = %inbox.dataset, file = %name, error = %e, "cannot claim file");
                    }
                }
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
                (full || self.hot.contains(&marker) || self.hot.contains(path)) && marker.exists()
            }
            Ready::Settle => {
                if self.hot.contains(path) {
                    return true;
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
                tracing::warn!(folder = %name, "spool folder is not a configured dataset; its files are left in place");
            }
        }
    }
}

/// Claims `inbox/name` by renaming it into `work/` under a fresh claim id.
fn claim(inbox: &Inbox, name: &str, path: &Path) -> std::io::Result<Claimed> {
    fs::create_dir_all(&inbox.work)?;
    let work_name = format!("{}~{}", crate::seal::new_batch_id(), name);
    // Only the work/ entry is made durable here: if power fails before the
    // inbox entry's removal reaches the disk, the file shows up in both
    // places and the second copy is recognised by its content as a
    // duplicate. Losing the work/ entry instead would be harmless too (the
    // file is still in the inbox), but then no claim row may point at it,
    // and none does yet: rows are written after this returns.
    fs::rename(path, inbox.work.join(&work_name))?;
    fsio::sync_dir(&inbox.work)?;
    if inbox.ready == Ready::Marker {
        let marker = inbox.dir.join(format!("{name}.ok"));
        let _ = fs::remove_file(&marker);
        let _ = fsio::sync_dir(&inbox.dir);
    }
    Ok(Claimed {
        dataset: inbox.dataset.clone(),
        work_name,
    })
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
