//! Pull mode's forwarder thread (docs/protocol.md §5): outbox passes —
//! export, `.ack`/`.nack` handling — woken by sealed batches and by the
//! arrival of acknowledgements, with a poll as the fallback.

use std::path::PathBuf;
use std::sync::{Arc, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backpressure::{DISK_RETRY, Gate};
use super::error::DaemonError;
use super::health::Health;
use crate::config::Loaded;
use crate::forward::pull::Outbox;

/// Pull mode's forwarder: a thread of its own.
pub(super) fn start(
    loaded: &Loaded,
    tz: chrono::FixedOffset,
    health: &Arc<Health>,
    gate: &Arc<Gate>,
    wake: std_mpsc::Receiver<()>,
    wake_tx: std_mpsc::SyncSender<()>,
    stopping: &CancellationToken,
) -> Result<JoinHandle<()>, DaemonError> {
    let cfg = &loaded.cfg;
    let mut outbox = Outbox::new(cfg.sink.outbox_dir.clone(), cfg.spool_dir.clone(), tz)
        .with_catalog(loaded.catalog.clone());
    outbox.health = health.clone();
    let db = cfg.state_db();
    let stop = stopping.clone();
    let gate = gate.clone();
    let watch_dir = cfg.sink.outbox_dir.clone();
    let alive = health.part("outbox forwarder");
    std::thread::Builder::new()
        .name("outbox".into())
        .spawn(move || {
            let _alive = alive;
            outbox_loop(db, &mut outbox, watch_dir, wake, wake_tx, stop, &gate)
        })
        .map_err(DaemonError::os("spawning the outbox forwarder"))
}

fn outbox_loop(
    db: PathBuf,
    outbox: &mut Outbox,
    watch_dir: PathBuf,
    wake: std_mpsc::Receiver<()>,
    wake_tx: std_mpsc::SyncSender<()>,
    stop: CancellationToken,
    gate: &Gate,
) {
    let Some(mut conn) =
        super::worker::open_state(&db, "outbox forwarder", &|| stop.is_cancelled())
    else {
        return;
    };
    // Acknowledgements arrive as files: watch for them so delivery is
    // recorded promptly; the poll below is the fallback. Only the arrival
    // of an .ack or .nack wakes the loop: the pass itself opens these
    // folders, and waking on every event would make it chase its own tail.
    let _watcher = {
        use notify::event::{AccessKind, AccessMode, ModifyKind};
        use notify::{EventKind, RecursiveMode, Watcher};
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else {
                let _ = wake_tx.try_send(());
                return;
            };
            let arrival = matches!(
                ev.kind,
                EventKind::Create(_)
                    | EventKind::Modify(ModifyKind::Name(_))
                    | EventKind::Access(AccessKind::Close(AccessMode::Write))
            );
            let marker = ev
                .paths
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "ack" || e == "nack"));
            if arrival && marker {
                let _ = wake_tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(&watch_dir, RecursiveMode::Recursive).map(|_| w))
        .ok()
    };
    loop {
        let mut wait = Duration::from_millis(1000);
        match outbox.pass(&mut conn) {
            Ok(_) => gate.disk_ok("outbox"),
            Err(e) if e.is_disk_full() => {
                gate.disk_failed("outbox", &format_args!("{e:#}"));
                wait = DISK_RETRY;
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "outbox pass failed; retrying"),
        }
        if stop.is_cancelled() {
            break;
        }
        match wake.recv_timeout(wait) {
            Ok(()) => while wake.try_recv().is_ok() {},
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}
