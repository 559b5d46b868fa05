//! Send windows (`[[dataset]] send_window = "22:00-06:00"`): the times of
//! day, in the configured timezone, when a dataset's batches may be pushed.

use std::time::Duration;

use chrono::{NaiveTime, Timelike};

const DAY: u32 = 24 * 60;

/// A daily window `from`–`to` (minutes after midnight); `to` before `from`
/// wraps past midnight. Never empty. Read from config as `"HH:MM-HH:MM"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct SendWindow {
    from: u32,
    to: u32,
}

impl SendWindow {
    /// Parses `HH:MM-HH:MM` (`24:00` allowed as an end).
    pub fn parse(s: &str) -> Result<SendWindow, String> {
        let bad = || format!("{s:?} is not a window like \"22:00-06:00\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            if h.is_empty() || h.len() > 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
        };
        let (from, to) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if from % DAY == to % DAY && !(from == 0 && to == DAY) {
            return Err(format!("{s:?} is empty (it starts where it ends)"));
        }
        Ok(SendWindow { from, to })
    }

    fn minute(t: NaiveTime) -> u32 {
        t.hour() * 60 + t.minute()
    }

    /// Whether the window is open at time of day `t`.
    pub fn contains(&self, t: NaiveTime) -> bool {
        let m = Self::minute(t);
        if self.from < self.to {
            self.from <= m && m < self.to
        } else {
            m >= self.from || m < self.to % DAY
        }
    }

    /// How long from `t` until the window opens (zero if it is open).
    pub fn until_open(&self, t: NaiveTime) -> Duration {
        if self.contains(t) {
            return Duration::ZERO;
        }
        let now = t.num_seconds_from_midnight();
        let open = self.from * 60;
        let secs = (open + DAY * 60 - now) % (DAY * 60);
        Duration::from_secs(u64::from(secs))
    }
}

impl TryFrom<String> for SendWindow {
    type Error = String;
    fn try_from(s: String) -> Result<SendWindow, String> {
        SendWindow::parse(&s)
    }
}

impl std::fmt::Display for SendWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.from / 60,
            self.from % 60,
            self.to / 60,
            self.to % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn parses_and_wraps_past_midnight() {
        let night = SendWindow::parse("22:00-06:00").unwrap();
        assert!(night.contains(t(23, 59)) && night.contains(t(0, 0)) && night.contains(t(5, 59)));
        assert!(
            !night.contains(t(6, 0)) && !night.contains(t(12, 0)) && !night.contains(t(21, 59))
        );
        assert_eq!(night.until_open(t(21, 0)), Duration::from_secs(3600));
        assert_eq!(night.until_open(t(6, 0)), Duration::from_secs(16 * 3600));
        let day = SendWindow::parse("08:30-24:00").unwrap();
        assert!(day.contains(t(23, 59)) && !day.contains(t(8, 29)));
        assert!(SendWindow::parse("00:00-24:00").unwrap().contains(t(3, 3)));
        assert_eq!(day.to_string(), "08:30-24:00");
    }

    #[test]
    fn refuses_what_is_not_a_window() {
        for s in [
            "",
            "22:00",
            "22-06",
            "25:00-06:00",
            "22:60-06:00",
            "10:00-10:00",
            "x:00-06:00",
        ] {
            assert!(SendWindow::parse(s).is_err(), "{s:?}");
        }
    }

    proptest! {
        /// Open exactly when the wait until opening is zero, and after the
        /// wait the window is open.
        #[test]
        fn the_wait_ends_inside_the_window(from in 0u32..1440, len in 1u32..1440, now in 0u32..86400) {
            let to = (from + len) % 1440;
            let w = SendWindow { from, to: if to == 0 { 1440 } else { to } };
            let at = NaiveTime::from_num_seconds_from_midnight_opt(now, 0).unwrap();
            let wait = w.until_open(at);
            prop_assert_eq!(wait.is_zero(), w.contains(at));
            let then = NaiveTime::from_num_seconds_from_midnight_opt(
                ((u64::from(now) + wait.as_secs()) % 86400) as u32, 0).unwrap();
            prop_assert!(w.contains(then));
            prop_assert!(wait < Duration::from_secs(86400));
        }
    }
}
