//! Why the service could not start, or stopped with an error: the daemon's
//! one error type. Each variant says which step failed in words an
//! operator reads in the journal and in a refused reload's
//! `config_refused` entry; the binary's edge (`cli/`) only reports it.

use crate::state::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state database or a file beside it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A step asked of the operating system: a folder, a listener, a
    /// thread, a signal handler, the runtime.
    #[error("{what}: {source}")]
    Os {
        what: String,
        source: std::io::Error,
    },
    /// A dataset's `schedule` could not be set up.
    #[error("{what}: {source}")]
    Schedule {
        what: String,
        source: tokio_cron_scheduler::JobSchedulerError,
    },
    /// `[admin] token_file` cannot be used.
    #[error("admin.token_file: {0}")]
    AdminToken(String),
    /// `[console]`'s TLS certificate or key cannot be used.
    #[error("{0}")]
    ConsoleTls(String),
    /// `sink.mode = "http"` without its section (the config check refuses
    /// this first; kept for a config built in code).
    #[error("sink.mode = \"http\" needs [sink.http]")]
    NoHttpSink,
    /// The alert channels could not be prepared (their HTTP client).
    #[error("preparing the alert channels: {0}")]
    Alerts(#[from] reqwest::Error),
    /// The push forwarder could not be prepared (credentials, client).
    #[error("preparing the push forwarder: {0}")]
    Push(#[from] crate::forward::push::PushError),
    /// Cluster mode could not be prepared (a malformed server address, the
    /// state database's connections for its tasks).
    #[error("preparing cluster mode: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Exported batches could not be taken back after a switch of the sink
    /// mode.
    #[error("preparing the outbox: {0}")]
    Switch(#[from] crate::forward::switch::SwitchError),
}

impl DaemonError {
    /// The error-maker for a failed operating-system step, for `map_err`.
    pub fn os(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
        let what = what.into();
        move |source| DaemonError::Os { what, source }
    }

    /// The error-maker for a failed scheduler step, for `map_err`.
    pub fn schedule(
        what: impl Into<String>,
    ) -> impl FnOnce(tokio_cron_scheduler::JobSchedulerError) -> DaemonError {
        let what = what.into();
        move |source| DaemonError::Schedule { what, source }
    }
}

impl From<rusqlite::Error> for DaemonError {
    fn from(e: rusqlite::Error) -> DaemonError {
        DaemonError::Store(e.into())
    }
}
