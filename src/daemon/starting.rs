//! Telling systemd a long start goes on: opening the state database
//! migrates an older schema, and a big database's migration takes minutes
//! (ops manual §5) — longer than the 90 s a `Type=notify` unit is given to
//! say it is ready.

use std::time::Duration;

/// Runs `work` (opening the state database, which migrates an older
/// schema), calling `ping` every `every` until it returns: a migration of
/// a big database takes minutes (ops manual §5), longer than systemd's
/// 90 s start timeout for a `Type=notify` unit. The pinging thread ends
/// with `work`.
pub(super) fn while_starting<T>(
    work: impl FnOnce() -> T,
    every: Duration,
    ping: impl Fn() + Send,
) -> T {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(every) {
                ping();
            }
        });
        let out = work();
        drop(done);
        out
    })
}

/// Tells systemd the start goes on (a no-op outside systemd).
pub(super) fn still_starting() {
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::ExtendTimeoutUsec(30_000_000),
        sd_notify::NotifyState::Status("opening the state database (an upgrade may take minutes)"),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_long_start_is_reported_while_it_lasts_and_a_short_one_not_at_all() {
        let pings = AtomicUsize::new(0);
        let ping = || {
            pings.fetch_add(1, Ordering::SeqCst);
        };
        let out = while_starting(
            || {
                std::thread::sleep(Duration::from_millis(450));
                7
            },
            Duration::from_millis(100),
            ping,
        );
        assert_eq!(out, 7);
        let n = pings.load(Ordering::SeqCst);
        assert!((2..=5).contains(&n), "{n} pings");
        // Once the work is done, no more.
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(pings.load(Ordering::SeqCst), n);
        pings.store(0, Ordering::SeqCst);
        while_starting(|| (), Duration::from_millis(100), ping);
        assert_eq!(pings.load(Ordering::SeqCst), 0);
    }
}
