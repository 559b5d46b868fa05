//! The simulator's SQLite connection, owned by one dedicated thread. Async
//! handlers send it closures and await the answer, so no SQLite call ever
//! runs on a runtime thread, and because one thread runs every job, the
//! "look up (sender, batchId), then insert" of a push cannot race another.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::ledger;

/// Why the simulator's own database failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store thread has stopped")]
    Closed,
    #[error("starting the store thread: {0}")]
    Spawn(#[from] std::io::Error),
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

enum Message {
    Job(Job),
    Close,
}

/// Handle to the store thread.
pub(crate) struct Store {
    jobs: mpsc::Sender<Message>,
    // Taken by `close`, which joins the thread so that the database is
    // closed (and the WAL checkpointed) before the simulator says it stopped.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (or creates) the database at `path`, in memory when `None`.
    pub(crate) async fn open(path: Option<&Path>) -> Result<Store, StoreError> {
        let path = path.map(Path::to_path_buf);
        let (jobs, inbox) = mpsc::channel::<Message>();
        let (opened_tx, opened_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("sim-store".into())
            .spawn(move || {
                let mut conn = match ledger::open(path.as_deref()) {
                    Ok(conn) => {
                        let _ = opened_tx.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(Message::Job(job)) = inbox.recv() {
                    job(&mut conn);
                }
            })?;
        opened_rx.await.map_err(|_| StoreError::Closed)??;
        Ok(Store {
            jobs,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `f` on the store thread and returns its result.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs
            .send(Message::Job(job))
            .map_err(|_| StoreError::Closed)?;
        Ok(rx.await.map_err(|_| StoreError::Closed)??)
    }

    /// Adds one to a `/sim/stats` counter.
    pub(crate) async fn bump(&self, counter: &'static str) -> Result<(), StoreError> {
        self.call(move |conn| ledger::bump(conn, counter)).await
    }

    /// Finishes the jobs already queued, then closes the database.
    pub(crate) async fn close(&self) -> Result<(), StoreError> {
        let thread = self.thread.lock().expect("store mutex poisoned").take();
        let Some(thread) = thread else {
            return Ok(());
        };
        // The thread may already be gone if it failed; joining tells.
        let _ = self.jobs.send(Message::Close);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(|_| StoreError::Closed)
    }
}
