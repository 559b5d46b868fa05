//! The per-route scheduler of push mode: one task per route with pending
//! batches, at most `concurrency` at once, each sending its route's batches
//! in seal order (docs/protocol.md §4) and handing every answer to
//! `crate::outbox::apply`. A route whose next batch's send window is
//! closed is held until it opens.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Forwarder, refusal};
use crate::config::AuthMode;
use crate::outbox::{self, Reply};
use crate::state::batches::{self, BatchRow};

/// How long a route whose sender failed waits before it restarts.
const ROUTE_RESTART: Duration = Duration::from_secs(2);

impl Forwarder {
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
