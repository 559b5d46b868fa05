//! The console's own threads for its blocking work (SQLite, argon2,
//! reading a file): [`super::BUSY`] of them, started with the console and
//! ended with it, each at a lower scheduling priority (nice
//! [`NICE`]) than the daemon's pipeline threads. However many pages are
//! asked for, the console takes at most that many threads, and when the
//! cores are scarce the pipeline's workers, readers and forwarder run
//! first: a busy console slows its own pages, not the pipeline (README
//! "Web console"; `scripts/console-load.sh` measures it).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// The nice value of the console's threads (the pipeline's is the
/// process's own, normally 0): under contention the scheduler gives them
/// about a tenth of a pipeline thread's share.
pub const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking jobs in turn.
pub struct Pool {
    jobs: Mutex<Sender<Job>>,
}

impl Pool {
    /// Starts `threads` threads; they end when the pool is dropped.
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("console-{n}"))
                .spawn(move || serve(&rx))?;
        }
        Ok(Pool {
            jobs: Mutex::new(tx),
        })
    }

    /// Runs `f` on one of the pool's threads and waits for it without
    /// holding an async thread; a panic in `f` goes on in the caller.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.send(job).is_ok(),
            Err(_) => false,
        };
        assert!(sent, "the console's threads have ended");
        match rx.await {
            Ok(Ok(v)) => v,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => panic!("a console thread ended during a request"),
        }
    }
}

/// A pool thread: lowers its own priority, then runs jobs until the pool
/// is gone.
fn serve(jobs: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Sets this thread's nice value to [`NICE`] (Linux: per thread, by its
/// id). Raising one's own nice value needs no privilege; if it fails
/// anyway the thread runs at the process's priority.
fn lower_priority() {
    // SAFETY: gettid and setpriority only read their arguments.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE)
    };
    if rc != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "console: could not lower the priority of its threads"
        );
    }
}

/// This thread's nice value (for the test).
#[cfg(test)]
fn nice() -> i32 {
    // SAFETY: as above.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_pool_s_threads_at_a_lower_priority_and_panics_reach_the_caller() {
        let pool = Pool::new(2).unwrap();
        let ours = nice();
        let (name, theirs) = pool
            .run(|| (std::thread::current().name().map(str::to_string), nice()))
            .await;
        assert!(name.is_some_and(|n| n.starts_with("console-")));
        assert_eq!(theirs, (ours + NICE).min(19));
        let caught = tokio::spawn(async move { pool.run(|| panic!("boom")).await }).await;
        assert!(caught.is_err());
    }
}
