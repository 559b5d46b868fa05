//! Fault injection: the dice that decide which push requests are answered
//! 503 and which lose their answer. One seeded generator, rolled a fixed
//! number of times per request, so the same `--seed` and the same order of
//! requests give the same faults.

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The faults of one push request, decided when it arrives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Roll {
    /// Answer 503 without looking at the request.
    pub fail: bool,
    /// Close the connection instead of answering, once the batch is stored.
    pub drop: bool,
}

pub(crate) struct Faults {
    dice: Mutex<StdRng>,
    fail_rate: f64,
    drop_rate: f64,
    /// Added to every push request before it is looked at.
    pub latency: Duration,
    /// The `Retry-After` of injected 503s.
    pub retry_after_secs: u64,
}

impl Faults {
    pub(crate) fn new(
        seed: Option<u64>,
        fail_rate: f64,
        drop_rate: f64,
        latency: Duration,
        retry_after_secs: u64,
    ) -> Self {
        let dice = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Faults {
            dice: Mutex::new(dice),
            fail_rate,
            drop_rate,
            latency,
            retry_after_secs,
        }
    }

    /// Rolls for one request. Both dice are always rolled, whatever the
    /// rates, so that changing one rate does not reshuffle the other's
    /// outcomes for a given seed.
    pub(crate) fn roll(&self) -> Roll {
        let mut dice = self.dice.lock().expect("fault dice mutex poisoned");
        let fail: f64 = dice.random();
        let drop: f64 = dice.random();
        Roll {
            fail: fail < self.fail_rate,
            drop: drop < self.drop_rate,
        }
    }
}
