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

/// Sets glibc's allocator for a daemon that runs for months with a
/// thread per dataset, before any of them starts. By default glibc gives
/// each thread an arena of its own (up to eight per core), each keeping
/// what was freed in it, and after a large buffer (a batch body) is freed
/// it serves the next ones from those arenas instead of fresh pages:
/// memory freed stays resident. Two arenas, large buffers always from
/// fresh pages and given back when freed, and the heap's free top trimmed
/// past 128 KiB keep the resident size near what is in use: the 2 GiB
/// file's peak RSS went from 77–96 to 62–72 MiB (README.md "Benchmarks").
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's parameters; it is
    // called before the daemon starts its threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}
