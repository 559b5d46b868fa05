//! The per-route scheduler of push mode: one task per route with pending
//! batches, at most `concurrency` routes at once. Each route keeps up to
//! its `inflight` batches in flight, chosen by `order` (docs/protocol.md
//! §4 rule 3: order per record key; `inflight = 1` is strict seal order),
//! and hands every answer to `crate::outbox::apply` — the scheduler never
//! changes a batch's state itself. A route whose next batch's send window
//! is closed is held until it opens.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Forwarder, PushError, order, refusal};
use crate::config::AuthMode;
use crate::outbox::{self, Reply};
use crate::state::batches::{self, BatchRow};

/// How long a route whose sender failed waits before it restarts.
const ROUTE_RESTART: Duration = Duration::from_secs(2);

/// How often a route with room for more batches looks for newly sealed
/// ones while others are in flight.
const POLL: Duration = Duration::from_millis(250);

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
    ) -> Result<(), PushError> {
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
                            tracing::error!(route = %r, error = %e, retry_in_secs = ROUTE_RESTART.as_secs(), "route sender failed; restarting it");
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
        // Let in-flight requests finish: each route task sends nothing new
        // once it sees the cancellation, records the answers of the batches
        // in flight (or abandons them at the end of the grace period).
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// The in-flight limit of `route`: its dataset's `inflight`, else
    /// `[sink.http] inflight` (docs/protocol.md §4 rule 3).
    fn inflight_for(&self, route: &str) -> usize {
        self.inflight
            .get(route)
            .copied()
            .unwrap_or(self.http.inflight)
            .max(1)
    }

    /// Sends a route's pending batches until none is left or a drain is
    /// asked for: up to the route's `inflight` at once, chosen by
    /// [`order::choose`] among the oldest [`order::LOOKAHEAD`] × `inflight`
    /// pending batches, each answer recorded as it comes.
    async fn drive_route(
        self: &Arc<Self>,
        db: &Db,
        route: &str,
        cancel: &CancellationToken,
        abandon: &CancellationToken,
    ) -> Result<(), PushError> {
        let limit = self.inflight_for(route);
        let url = self.push_url(route);
        let in_query = self.tokens.mode() == AuthMode::AppKeyHmac;
        // Keys of the batches in the window, by batch id (read once each).
        let mut known: HashMap<String, Arc<order::Keys>> = HashMap::new();
        // Batches sent and not answered: their keys, by batch id.
        let mut flying: HashMap<String, Arc<order::Keys>> = HashMap::new();
        let mut sends: JoinSet<(BatchRow, Reply)> = JoinSet::new();
        loop {
            let mut next_due: Option<i64> = None;
            if !cancel.is_cancelled() {
                let r = route.to_string();
                let window = db
                    .call(move |c| batches::pending_window(c, &r, limit * order::LOOKAHEAD))
                    .await?;
                if window.is_empty() && sends.is_empty() {
                    return Ok(());
                }
                if let Some(head) = window.first()
                    && self.hold_for_window(route, head)
                {
                    // The route's next batch waits for its window; so do
                    // the ones behind it. Answers in flight are recorded
                    // first, then the slot is freed.
                    while let Some(done) = sends.join_next().await {
                        let (b, reply) = done?;
                        self.record(db, &b, reply).await?;
                    }
                    return Ok(());
                }
                known.retain(|id, _| window.iter().any(|b| &b.batch_id == id));
                for b in &window {
                    if !known.contains_key(&b.batch_id) {
                        let id = b.batch_id.clone();
                        let keys = db.call(move |c| batches::keys(c, &id)).await?;
                        let keys = if keys.is_empty() && b.count > 0 {
                            order::Keys::Unknown
                        } else {
                            order::Keys::Known(keys.into_iter().collect())
                        };
                        known.insert(b.batch_id.clone(), Arc::new(keys));
                    }
                }
                let now = crate::state::now_ms();
                // Batches in flight that fell out of the window (an earlier
                // one put back by an operator) still hold their keys.
                let mut entries: Vec<(Option<&BatchRow>, Arc<order::Keys>)> = flying
                    .iter()
                    .filter(|(id, _)| !window.iter().any(|b| &b.batch_id == *id))
                    .map(|(_, k)| (None, k.clone()))
                    .collect();
                entries.extend(window.iter().map(|b| (Some(b), known[&b.batch_id].clone())));
                let pending: Vec<order::Pending<'_>> = entries
                    .iter()
                    .map(|(b, keys)| order::Pending {
                        keys,
                        in_flight: b.is_none_or(|b| flying.contains_key(&b.batch_id)),
                        due: b.is_some_and(|b| b.next_attempt_ms <= now),
                    })
                    .collect();
                for i in order::choose(&pending, limit) {
                    let (Some(b), keys) = &entries[i] else {
                        continue;
                    };
                    flying.insert(b.batch_id.clone(), keys.clone());
                    self.launch(&mut sends, db, (*b).clone(), &url, in_query, abandon)
                        .await?;
                }
                next_due = window
                    .iter()
                    .filter(|b| !flying.contains_key(&b.batch_id) && b.next_attempt_ms > now)
                    .map(|b| b.next_attempt_ms - now)
                    .min();
            } else if sends.is_empty() {
                return Ok(());
            }
            // Wait for an answer, the end of a back-off, or (with room for
            // more, and more than one allowed) a look at newly sealed
            // batches, which may pass one waiting for a retry.
            let wait = match next_due {
                Some(ms) => Duration::from_millis(ms as u64),
                None if sends.is_empty() => return Ok(()),
                None => POLL,
            };
            let wait = if limit > 1 && flying.len() < limit {
                wait.min(POLL)
            } else {
                wait
            };
            tokio::select! {
                done = sends.join_next(), if !sends.is_empty() => {
                    if let Some(done) = done {
                        let (b, reply) = done?;
                        flying.remove(&b.batch_id);
                        self.record(db, &b, reply).await?;
                    }
                }
                _ = cancel.cancelled(), if !cancel.is_cancelled() => {}
                _ = tokio::time::sleep(wait), if !cancel.is_cancelled() => {}
            }
        }
    }

    /// Whether `route` is held because `head`'s send window is closed
    /// (marking it closed until the window opens).
    fn hold_for_window(&self, route: &str, head: &BatchRow) -> bool {
        let Some(w) = self.windows.get(&head.dataset) else {
            return false;
        };
        let now = chrono::Utc::now().with_timezone(&self.tz).time();
        let wait = w.until_open(now);
        if wait.is_zero() {
            return false;
        }
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if closed
            .insert(route.to_string(), std::time::Instant::now() + wait)
            .is_none()
        {
            tracing::info!(route, dataset = %head.dataset, window = %w, opens_in_secs = wait.as_secs(), "send window closed: batches wait in the outbox until it opens");
        }
        true
    }

    /// Starts sending `b`; its answer comes back through `sends`.
    async fn launch(
        self: &Arc<Self>,
        sends: &mut JoinSet<(BatchRow, Reply)>,
        db: &Db,
        b: BatchRow,
        url: &str,
        in_query: bool,
        abandon: &CancellationToken,
    ) -> Result<(), PushError> {
        let id = b.batch_id.clone();
        let body = db
            .call(move |c| batches::body(c, &id))
            .await?
            .unwrap_or_default();
        tracing::debug!(dataset = %b.dataset, batch = %b.batch_id, records = b.count, attempt = b.attempts + 1, "sending batch");
        let me = self.clone();
        let url = url.to_string();
        let abandon = abandon.clone();
        sends.spawn(async move {
            let reply = tokio::select! {
                r = me.send_with_token(&url, in_query, &b.batch_id, &body) => r,
                _ = abandon.cancelled() => {
                    // Shutdown's grace period is over and the library has
                    // not answered. Whether it stored the batch or not, the
                    // batch stays pending under the same id: the next start
                    // resends it and the library de-duplicates by batch id.
                    tracing::warn!(dataset = %b.dataset, batch = %b.batch_id, "shutdown grace period over: in-flight request abandoned; the batch is resent at the next start");
                    Reply::Retry {
                        wait: Some(Duration::ZERO),
                        reason: "request abandoned at shutdown (grace period over)".into(),
                    }
                }
            };
            (b, reply)
        });
        Ok(())
    }

    /// Records a reply: delivered, parked, split or scheduled for retry;
    /// then where the credentials stand.
    async fn record(&self, db: &Db, b: &BatchRow, reply: Reply) -> Result<(), PushError> {
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
    async fn sync_credentials(&self, db: &Db, route: &str) -> Result<(), PushError> {
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
    fn open(path: &std::path::Path) -> Result<Db, PushError> {
        let conn = crate::state::open(path).map_err(PushError::state)?;
        Ok(Db(Arc::new(Mutex::new(conn))))
    }

    async fn call<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, PushError>
    where
        T: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let db = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = db.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c).map_err(PushError::state)
        })
        .await?
    }
}
