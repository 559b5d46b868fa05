//! The watcher: inotify (via `notify`) events turned into wake-ups.

use std::path::PathBuf;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Why the scanner should look now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// This file was renamed in: it is complete.
    Complete(PathBuf),
    /// This file was closed after writing: complete unless written again
    /// within the quiet period.
    Closed(PathBuf),
    /// Something changed (a marker appeared, a file was created).
    Changed,
    /// The watcher lost events: rescan everything.
    Overflow,
    /// A dataset's scheduled collection is due (`[[dataset]] schedule`).
    Collect(String),
}

/// Watches `dirs` (not recursively) and sends wake-ups. The returned
/// watcher must be kept alive. Failure to watch is not fatal: the periodic
/// rescan still finds every file, only later.
pub fn watch(dirs: &[PathBuf], tx: mpsc::Sender<Wake>) -> notify::Result<RecommendedWatcher> {
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let wakes: Vec<Wake> = match res {
            Err(_) => vec![Wake::Overflow],
            Ok(ev) if ev.need_rescan() => vec![Wake::Overflow],
            Ok(ev) => match ev.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                    ev.paths.into_iter().map(Wake::Closed).collect()
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                    ev.paths.into_iter().map(Wake::Complete).collect()
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                    ev.paths.into_iter().skip(1).map(Wake::Complete).collect()
                }
                EventKind::Create(_) | EventKind::Modify(_) => vec![Wake::Changed],
                _ => vec![],
            },
        };
        for w in wakes {
            // A full channel means the scanner already has work queued; it
            // will rescan, so a lost wake-up costs nothing but must not block
            // the watcher thread.
            if tx.try_send(w).is_err() {
                let _ = tx.try_send(Wake::Overflow);
            }
        }
    })?;
    for d in dirs {
        w.watch(d, RecursiveMode::NonRecursive)?;
    }
    Ok(w)
}
