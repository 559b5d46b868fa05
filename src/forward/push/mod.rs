//! Push mode (docs/protocol.md §2–§4), one of the two delivery modes: send
//! sealed batches to the library. This module sends and schedules; what an
//! answer does to the batch is `crate::outbox::apply`'s.
//!
//! One task per route with pending batches, at most `concurrency` at once.
//! A route sends its batches strictly in seal order: the oldest pending
//! batch is retried (backoff, forever) before anything behind it is sent.
//! Parked batches are no longer pending, so they never block their route.
//! Every outcome is one transaction with its exchange-log entry.

mod auth;
pub mod refusal;
mod send;

pub use auth::{Credentials, TokenError, TokenSource, key_info};
pub use send::classify;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::FixedOffset;
use rusqlite::Connection;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{AuthMode, HttpSink};
use crate::outbox::{self, Reply};
use crate::state::batches::{self, BatchRow};

/// How long a route whose sender failed waits before it restarts.
const ROUTE_RESTART: Duration = Duration::from_secs(2);

/// Reads a secret from its configured source (`crate::secrets`: a
/// systemd credential, a file refused if group/world-readable, or an
/// environment variable), naming `what` in the error.
pub fn read_secret(src: Option<crate::secrets::Source<'_>>, what: &str) -> anyhow::Result<String> {
    crate::secrets::read(src).with_context(|| what.to_string())
}

/// Credentials for the configured auth mode.
pub fn credentials(h: &HttpSink) -> anyhow::Result<Credentials> {
    Ok(match h.auth {
        AuthMode::ClientCredentials => Credentials::ClientCredentials {
            client_id: h
                .client_id
                .clone()
                .context("sink.http.client_id is required")?,
            client_secret: read_secret(
                crate::secrets::source(
                    h.client_secret_credential.as_ref(),
                    h.client_secret_file.as_ref(),
                    h.client_secret_env.as_ref(),
                ),
                "client secret",
            )?,
        },
        AuthMode::AppKeyHmac => Credentials::AppKeyHmac {
            app_id: h.app_id.clone().context("sink.http.app_id is required")?,
            app_key: read_secret(
                crate::secrets::source(
                    h.app_key_credential.as_ref(),
                    h.app_key_file.as_ref(),
                    h.app_key_env.as_ref(),
                ),
                "app key",
            )?,
            sys_code: h
                .sys_code
                .clone()
                .context("sink.http.sys_code is required")?,
        },
    })
}

/// The HTTP client: rustls, optional extra CA, request timeout.
pub fn client(h: &HttpSink) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(h.request_timeout_secs))
        .connect_timeout(Duration::from_secs(h.request_timeout_secs.min(10)))
        .user_agent(concat!("fepd/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &h.ca_file {
        let pem = std::fs::read(ca).with_context(|| format!("reading ca_file {}", ca.display()))?;
        b = b.add_root_certificate(
            reqwest::Certificate::from_pem(&pem).context("ca_file is not a PEM certificate")?,
        );
    }
    Ok(b.build()?)
}

/// Everything the push forwarder needs.
pub struct Forwarder {
    pub db: PathBuf,
    pub spool: PathBuf,
    pub tz: FixedOffset,
    pub http: HttpSink,
    pub tokens: Arc<TokenSource>,
    pub client: reqwest::Client,
    /// The dataset schemas, to mask refused records in their reports.
    pub catalog: crate::validate::Catalog,
    /// Per dataset: when its batches may be sent (`send_window`).
    pub windows: std::collections::HashMap<String, crate::config::SendWindow>,
    /// Routes waiting for a send window to open, and until when.
    closed: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Where `/healthz` learns of refused credentials and deliveries.
    pub health: Arc<crate::daemon::health::Health>,
}

impl Forwarder {
    pub fn new(
        db: PathBuf,
        spool: PathBuf,
        tz: FixedOffset,
        http: HttpSink,
    ) -> anyhow::Result<Forwarder> {
        let client = client(&http)?;
        let creds = credentials(&http)?;
        let base = http.base_url.trim_end_matches('/').to_string();
        let token_url = match creds.mode() {
            AuthMode::ClientCredentials => format!("{base}{}", http.token_path),
            AuthMode::AppKeyHmac => format!("{base}{}", http.app_token_path),
        };
        if base.starts_with("http://") {
            tracing::warn!(base_url = %base, "the library is reached over plain http://: credentials and personal data cross the network unencrypted");
        }
        Ok(Forwarder {
            tokens: Arc::new(TokenSource::new(
                client.clone(),
                token_url,
                creds,
                Duration::from_secs(http.credential_backoff_secs.max(1)),
            )),
            client,
            db,
            spool,
            tz,
            http,
            windows: Default::default(),
            closed: Default::default(),
            catalog: Default::default(),
            health: Default::default(),
        })
    }

    /// The schemas that mask records the library refused, in their reports.
    pub fn with_catalog(mut self, catalog: crate::validate::Catalog) -> Forwarder {
        self.catalog = catalog;
        self
    }

    fn push_url(&self, route: &str) -> String {
        let (category, resource) = route.split_once('/').unwrap_or((route, ""));
        format!(
            "{}{}",
            self.http.base_url.trim_end_matches('/'),
            self.http
                .push_path
                .replace("{category}", category)
                .replace("{resource}", resource)
        )
    }

    /// Pushes a zero-record probe batch (docs/protocol.md §3) on `route` for
    /// `dataset`: the library checks auth, route and digest, answers 200
    /// with `accepted: 0` and stores nothing. Used by `fepd selftest`.
    pub async fn probe(
        &self,
        route: &str,
        dataset: &str,
        sender: &str,
        schema_version: &str,
        audit_head: &crate::state::log::Head,
    ) -> Reply {
        let batch_id = crate::seal::new_batch_id();
        let created_at = crate::state::now_text(self.tz);
        let (body, _) = crate::seal::build_body(
            &crate::seal::BatchHeader {
                batch_id: &batch_id,
                sender,
                dataset,
                schema_version,
                created_at: &created_at,
                audit_head,
            },
            &[],
        );
        let in_query = self.tokens.mode() == AuthMode::AppKeyHmac;
        self.send_with_token(&self.push_url(route), in_query, &batch_id, &body)
            .await
    }

    /// Whether `route` waits for a send window (clears it once open).
    fn window_closed(&self, route: &str) -> bool {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        match closed.get(route) {
            Some(until) if *until > std::time::Instant::now() => true,
            Some(_) => {
                closed.remove(route);
                tracing::info!(route, "send window open: sending");
                false
            }
            None => false,
        }
    }

    /// Asks for a token (the first step of `fepd selftest`).
    pub async fn token(&self) -> Result<(), TokenError> {
        self.tokens.get().await.map(|_| ())
    }

    /// Runs until `cancel`; `wake` is notified when batches are sealed.
    /// After `cancel`, requests in flight are awaited until `abandon`
    /// (the end of the shutdown grace period).
    pub async fn run(
        self: Arc<Self>,
        wake: Arc<Notify>,
        cancel: CancellationToken,
        abandon: CancellationToken,
    ) -> anyhow::Result<()> {
        let db = Db::open(&self.db)?;
        let mut running: HashSet<String> = HashSet::new();
        let mut tasks: JoinSet<String> = JoinSet::new();
        loop {
            let routes = db.call(|c| batches::routes_with_pending(c)).await?;
            for r in routes {
                if running.len() >= self.http.concurrency.max(1) {
                    break;
                }
                if self.window_closed(&r) {
                    continue;
                }
                if running.insert(r.clone()) {
                    let me = self.clone();
                    let db = db.clone();
                    let cancel = cancel.clone();
                    let abandon = abandon.clone();
                    tasks.spawn(async move {
                        if let Err(e) = me.drive_route(&db, &r, &cancel, &abandon).await {
                            // A state failure (a full disk, say): the reply
                            // was not recorded, so the batch is still
                            // pending. Pause before the route restarts, so
                            // the library is not flooded with resends.
                            tracing::error!(route = %r, error = %format!("{e:#}"), retry_in_secs = ROUTE_RESTART.as_secs(), "route sender failed; restarting it");
                            tokio::select! {
                                _ = cancel.cancelled() => {}
                                _ = tokio::time::sleep(ROUTE_RESTART) => {}
                            }
                        }
                        r
                    });
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                Some(done) = tasks.join_next() => {
                    if let Ok(r) = done { running.remove(&r); }
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        // Let in-flight requests finish: each route task stops after its
        // current batch once it sees the cancellation (or abandons it at
        // the end of the grace period).
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Sends a route's pending batches in order until none is left or a
    /// drain is asked for.
    async fn drive_route(
        &self,
        db: &Db,
        route: &str,
        cancel: &CancellationToken,
        abandon: &CancellationToken,
    ) -> anyhow::Result<()> {
        let url = self.push_url(route);
        let in_query = self.tokens.mode() == AuthMode::AppKeyHmac;
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let r = route.to_string();
            let Some(b) = db.call(move |c| batches::next_for_route(c, &r)).await? else {
                return Ok(());
            };
            if let Some(w) = self.windows.get(&b.dataset) {
                let now = chrono::Utc::now().with_timezone(&self.tz).time();
                let wait = w.until_open(now);
                if !wait.is_zero() {
                    // The route's next batch waits for its window; so do the
                    // ones behind it (order per route). The slot is freed.
                    let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
                    if closed
                        .insert(route.to_string(), std::time::Instant::now() + wait)
                        .is_none()
                    {
                        tracing::info!(route, dataset = %b.dataset, window = %w, opens_in_secs = wait.as_secs(), "send window closed: batches wait in the outbox until it opens");
                    }
                    return Ok(());
                }
            }
            let wait_ms = b.next_attempt_ms - crate::state::now_ms();
            if wait_ms > 0 {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                }
                continue;
            }
            let id = b.batch_id.clone();
            let body = db
                .call(move |c| batches::body(c, &id))
                .await?
                .unwrap_or_default();
            tracing::debug!(dataset = %b.dataset, batch = %b.batch_id, records = b.count, attempt = b.attempts + 1, "sending batch");
            let reply = tokio::select! {
                r = self.send_with_token(&url, in_query, &b.batch_id, &body) => r,
                _ = abandon.cancelled() => {
                    // Shutdown's grace period is over and the library has
                    // not answered. Whether it stored the batch or not, the
                    // batch stays pending under the same id: the next start
                    // resends it and the library de-duplicates by batch id.
                    tracing::warn!(dataset = %b.dataset, batch = %b.batch_id, "shutdown grace period over: in-flight request abandoned; the batch is resent at the next start");
                    let reply = Reply::Retry {
                        wait: Some(Duration::ZERO),
                        reason: "request abandoned at shutdown (grace period over)".into(),
                    };
                    self.record(db, &b, reply).await?;
                    return Ok(());
                }
            };
            self.record(db, &b, reply).await?;
        }
    }

    /// One send, with docs/protocol.md §2's rule for 401: renew the token once
    /// and retry the request once; a second 401 is retried later, never
    /// parked.
    async fn send_with_token(
        &self,
        url: &str,
        in_query: bool,
        batch_id: &str,
        body: &[u8],
    ) -> Reply {
        for attempt in 0..2 {
            let token = match self.tokens.get().await {
                Ok(t) => {
                    self.health.credentials_ok();
                    t
                }
                // A refused credential waits as the back-off decides
                // (minutes, growing); alerted once per episode by
                // `sync_credentials`, and shown by /healthz.
                Err(e @ TokenError::Refused { .. }) => {
                    self.health.credentials_refused(&e.to_string());
                    return Reply::Retry {
                        wait: e.retry_in(),
                        reason: e.to_string(),
                    };
                }
                Err(e) => {
                    return Reply::Retry {
                        wait: e.retry_in(),
                        reason: e.to_string(),
                    };
                }
            };
            match send::send(
                &self.client,
                url,
                in_query,
                &token,
                batch_id,
                body,
                self.http.gzip,
            )
            .await
            {
                Reply::Unauthorized => {
                    self.tokens.invalidate(&token).await;
                    if attempt == 1 {
                        tracing::error!(
                            batch = batch_id,
                            "ALERT: push refused with 401 even with a fresh token; the credentials may need renewing"
                        );
                    }
                }
                other => return other,
            }
        }
        Reply::Retry {
            wait: None,
            reason: "HTTP 401 twice (token refused)".into(),
        }
    }

    /// Records a reply: delivered, parked, split or scheduled for retry;
    /// then where the credentials stand.
    async fn record(&self, db: &Db, b: &BatchRow, reply: Reply) -> anyhow::Result<()> {
        let tz = self.tz;
        let b = b.clone();
        let spool = self.spool.clone();
        let delivered = matches!(reply, Reply::Delivered { .. });
        let (route, sealed_at) = (b.route.clone(), b.sealed_at.clone());
        let catalog = self.catalog.clone();
        db.call(move |c| outbox::apply(c, tz, &spool, &catalog, &b, reply))
            .await?;
        if delivered {
            self.health.delivered(&route, &sealed_at);
        }
        self.sync_credentials(db, &route).await
    }

    /// Writes where the credentials stand for `route` (see
    /// [`refusal::record`]); nothing while no episode is under way.
    async fn sync_credentials(&self, db: &Db, route: &str) -> anyhow::Result<()> {
        let opened = self.tokens.refusals.take_opened();
        let episode = self.tokens.refusals.episode();
        let ended = self.tokens.refusals.take_ended();
        if episode.is_none() && !ended {
            return Ok(());
        }
        let tz = self.tz;
        let route = route.to_string();
        db.call(move |c| refusal::record(c, tz, &route, opened, episode, ended))
            .await
    }
}

/// The forwarder's connection, used from blocking tasks.
#[derive(Clone)]
struct Db(Arc<Mutex<Connection>>);

impl Db {
    fn open(path: &std::path::Path) -> anyhow::Result<Db> {
        Ok(Db(Arc::new(Mutex::new(crate::state::open(path)?))))
    }

    async fn call<T: Send + 'static, E: Into<anyhow::Error> + Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> anyhow::Result<T> {
        let db = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = db.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c).map_err(Into::into)
        })
        .await?
    }
}
