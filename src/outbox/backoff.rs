//! Retry delays: exponential backoff with full jitter (1 s start, 5 min
//! cap), as docs/protocol.md §4 asks for transient failures.

use std::time::Duration;

pub const BASE: Duration = Duration::from_secs(1);
pub const CAP: Duration = Duration::from_secs(300);

/// The ceiling of the delay before attempt `attempts + 1`.
pub fn ceiling(attempts: u32) -> Duration {
    let exp = BASE.saturating_mul(1u32.checked_shl(attempts.min(31)).unwrap_or(u32::MAX));
    exp.min(CAP)
}

/// A delay drawn uniformly from `[0, ceiling(attempts)]` ("full jitter"),
/// so that many senders recovering from the same outage spread out.
pub fn delay(attempts: u32, unit: f64) -> Duration {
    ceiling(attempts).mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceiling_doubles_from_one_second_to_the_cap() {
        assert_eq!(ceiling(0), Duration::from_secs(1));
        assert_eq!(ceiling(1), Duration::from_secs(2));
        assert_eq!(ceiling(8), Duration::from_secs(256));
        assert_eq!(ceiling(9), CAP);
        assert_eq!(ceiling(1000), CAP);
    }

    proptest! {
        #[test]
        fn delay_never_exceeds_ceiling(attempts in 0u32..10_000, unit in 0.0f64..=1.0) {
            let d = delay(attempts, unit);
            prop_assert!(d <= ceiling(attempts));
            prop_assert!(d <= CAP);
        }
    }
}
