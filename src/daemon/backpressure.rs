//! Back-pressure: when the outbox holds too much undelivered data, intake
//! pauses — no new file is claimed and files in progress wait between
//! chunks — until the backlog falls below the low-water mark. Data waits
//! in the spool instead of failing (PRODUCT.md guarantee 3).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::config::Backpressure;
use crate::state::batches;

/// Shared pause state, with hysteresis between the two marks.
pub struct Gate {
    cfg: Backpressure,
    paused: AtomicBool,
    last_check: Mutex<Option<Instant>>,
}

/// How often the backlog is measured at most.
const CHECK_EVERY: Duration = Duration::from_millis(200);

impl Gate {
    pub fn new(cfg: Backpressure) -> Gate {
        Gate {
            cfg,
            paused: AtomicBool::new(false),
            last_check: Mutex::new(None),
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
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

    /// Measures the backlog (at most every 200 ms) and updates the state,
    /// logging each transition; returns whether intake is paused.
    pub fn check(&self, conn: &Connection) -> bool {
        {
            let last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
                return self.is_paused();
            }
        }
        self.measure(conn)
    }

    /// Measures the backlog now (after a commit that sealed a batch) and
    /// updates the state; returns whether intake is paused.
    pub fn measure(&self, conn: &Connection) -> bool {
        *self.last_check.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let Ok((_, records, bytes)) = batches::total_backlog(conn) else {
            return self.is_paused();
        };
        let was = self.is_paused();
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
        now
    }

    /// Blocks while intake is paused, re-measuring, unless `stopping`.
    pub fn wait_while_paused(&self, conn: &Connection, stopping: &dyn Fn() -> bool) {
        while self.measure(conn) && !stopping() {
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
        };
        assert!(!Gate::decide(&cfg, false, 999, u64::MAX));
        assert!(Gate::decide(&cfg, false, 1000, 0));
        assert!(Gate::decide(&cfg, true, 900, 0), "still above low water");
        assert!(!Gate::decide(&cfg, true, 799, 0));
    }
}
