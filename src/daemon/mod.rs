//! Daemon: the stages wired into a long-running service.
//!
//! `run` takes its shutdown signal as an argument (so tests drive it),
//! recovers what a previous run left in `work/`, then runs one intake task,
//! one worker thread per dataset (parsing and SQLite are blocking work) and
//! the forwarder, until asked to drain.

mod admin;
pub mod backpressure;
pub mod job;
pub mod progress;
pub mod read;
mod run;

pub use run::{Loaded, Stop, load, run};
