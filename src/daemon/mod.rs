//! Daemon: the stages wired into a long-running service.
//!
//! `run` takes its shutdown signal as an argument (so tests drive it),
//! recovers what a previous run left in `work/`, then runs one intake task,
//! one worker thread per dataset (parsing and SQLite are blocking work) and
//! the forwarder, until asked to drain.

pub mod access;
pub(crate) mod admin;
pub mod backpressure;
pub mod changed;
pub mod check;
mod drain;
mod error;
pub mod health;
mod intake_loop;
pub mod job;
pub mod lock;
pub mod preflight;
pub mod progress;
mod pull;
pub mod read;
pub(crate) mod run;
mod service;
mod starting;
pub mod status;
mod worker;

pub use error::DaemonError;
pub use run::{Start, Stop, run};
pub use service::{serve, shutdown_signal};
