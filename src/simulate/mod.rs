//! `fepd simulate-library`: a local stand-in for the resource library
//! (统一信息资源库) that implements the library side of docs/protocol.md §2, §2a
//! and §3 — both token variants, batch verification, idempotency by
//! (sender, batchId) — plus fault injection, for fepd's tests and for
//! rehearsing the 联调.
//!
//! Codemap: `options` (command line), `auth` (tokens), `push` (the push
//! endpoint) with `verify` (bytes → checked batch) and `envelope` (codes),
//! `store` (the SQLite thread) with `ledger` (what is kept, and the
//! queries), `faults` and `sever` (injected overloads and dropped answers),
//! `export` (the `/sim/*` endpoints tests read, behind `--inspect-token`).
//!
//! Invariants: a batch is stored in one transaction before it is answered;
//! SQLite is only touched on the store thread; tokens and secrets are never
//! logged.

mod auth;
mod envelope;
mod export;
mod faults;
mod ledger;
mod options;
mod push;
mod sever;
mod store;
mod verify;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use ledger::SimStats;
pub use options::{Route, Secret, SimOptions};
pub use store::StoreError;

/// Why the simulator could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("opening the simulator database: {0}")]
    Open(#[source] StoreError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
    #[error("closing the simulator database: {0}")]
    Close(#[source] StoreError),
    #[error("the simulator task panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
}

use auth::TokenBook;
use faults::Faults;
use sever::{SeverableListener, Severance};
use store::Store;

/// Runs the simulator until `shutdown` completes, then drains open requests
/// and closes the database. This is what `fepd simulate-library` calls.
pub async fn run(
    opts: SimOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    let sim = start(opts).await?;
    tracing::info!(addr = %sim.addr(), "simulated resource library listening");
    sim.run_until(shutdown).await
}

/// Opens the database, binds the listener and starts serving in the
/// background. Binding happens before this returns, so with port 0 the
/// caller learns the address from `addr()` and can connect at once.
pub async fn start(opts: SimOptions) -> Result<RunningSimulator, SimError> {
    let store = Store::open(opts.db.as_deref())
        .await
        .map_err(SimError::Open)?;
    let bind = |source| SimError::Bind {
        addr: opts.listen,
        source,
    };
    let listener = TcpListener::bind(opts.listen).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    tracing::debug!(options = ?opts, "simulator options");

    let lib = Arc::new(Library::new(opts, store));
    let app = router(lib.clone());
    let stop = CancellationToken::new();
    let signal = stop.clone().cancelled_owned();
    let served = tokio::spawn(async move {
        let served = axum::serve(
            SeverableListener(listener),
            app.into_make_service_with_connect_info::<Severance>(),
        )
        .with_graceful_shutdown(signal)
        .await;
        // Close the store whatever happened to the server, so that what was
        // stored is on disk and the WAL checkpointed.
        let closed = lib.store.close().await;
        served.map_err(SimError::Serve)?;
        closed.map_err(SimError::Close)
    });
    Ok(RunningSimulator {
        addr,
        _stop_on_drop: stop.clone().drop_guard(),
        stop,
        served,
    })
}

/// A simulator serving in the background.
pub struct RunningSimulator {
    addr: SocketAddr,
    stop: CancellationToken,
    // A simulator dropped without `shutdown` (a failing test, typically)
    // still stops serving instead of lingering on its port.
    _stop_on_drop: DropGuard,
    served: JoinHandle<Result<(), SimError>>,
}

impl RunningSimulator {
    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the `base` of docs/protocol.md's paths.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish, closes the database.
    pub async fn shutdown(self) -> Result<(), SimError> {
        self.stop.cancel();
        self.served.await.map_err(SimError::Panicked)?
    }

    /// Serves until `shutdown` completes (then shuts down as `shutdown()`
    /// does) or until serving fails.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), SimError> {
        let RunningSimulator {
            stop,
            _stop_on_drop,
            mut served,
            ..
        } = self;
        tokio::select! {
            // The server task only ends by itself when it failed.
            result = &mut served => result.map_err(SimError::Panicked)?,
            () = shutdown => {
                stop.cancel();
                served.await.map_err(SimError::Panicked)?
            }
        }
    }
}

/// The state every handler shares: the simulated library.
pub(crate) struct Library {
    opts: SimOptions,
    /// `opts.routes` by their `category/resource` path, for the lookup on
    /// every push.
    routes: HashMap<String, Route>,
    tokens: TokenBook,
    faults: Faults,
    store: Store,
}

impl Library {
    fn new(opts: SimOptions, store: Store) -> Self {
        Library {
            routes: opts.routes.iter().map(|r| (r.path(), r.clone())).collect(),
            tokens: TokenBook::new(
                Duration::from_secs(opts.token_ttl),
                opts.token_max_uses,
                Duration::from_secs(opts.lockout_secs),
            ),
            faults: Faults::new(
                opts.seed,
                opts.fail_rate,
                opts.drop_rate,
                Duration::from_millis(opts.latency_ms),
                opts.retry_after,
            ),
            store,
            opts,
        }
    }

    /// Adds one to a `/sim/stats` counter. A failure only costs a count, so
    /// it is logged rather than turned into a failed request.
    async fn count(&self, counter: &'static str) {
        if let Err(e) = self.store.bump(counter).await {
            tracing::warn!(counter, error = %e, "counting an event failed");
        }
    }
}

fn router(lib: Arc<Library>) -> Router {
    Router::new()
        .route("/api/v1/token", post(auth::client_credentials))
        .route("/apigateway/getAccessToken", post(auth::app_key_token))
        .route(
            "/api/v1/resources/{category}/{resource}/batches",
            post(push::push),
        )
        .merge(
            Router::new()
                .route("/sim/stats", get(export::stats))
                .route("/sim/records", get(export::records))
                .route("/sim/batches", get(export::batches))
                .route("/sim/audit-heads", get(export::audit_heads))
                .route_layer(axum::middleware::from_fn_with_state(
                    lib.clone(),
                    export::require_inspect_token,
                )),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(lib.opts.max_body_bytes))
        .with_state(lib)
}

async fn not_found() -> Response {
    let body = serde_json::json!({"code": "404001", "message": "no such endpoint", "data": null});
    (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}
