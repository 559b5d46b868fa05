//! Delivery by any node (docs/cluster.md "Delivery"): per route, this
//! node pulls from the route's durable consumer, shared by every node, one
//! message at a time, and pushes its body with `forward::push` (the same
//! token handling and classification of the answer as single-host push).
//! The answer decides the message's fate, after the push is recorded in
//! this node's exchange log (`cluster_pushed`):
//!
//! | answer | message |
//! |---|---|
//! | delivered, duplicate | ack (the servers confirm it) |
//! | try again (429, 5xx, no answer) | nak, redelivered after the library's `Retry-After` or the back-off |
//! | park (400, 409, …), too large (413) | term: never redelivered from this message |
//!
//! Every answer but "try again" is first sent back to the batch's origin
//! node (`answers`), which records the batch delivered (its refused
//! records reported beside their file), parks it (for `fepd batches
//! retry`) or splits it.
//!
//! While a push runs, progress acks keep the message this node's; a node
//! that dies mid-push stops sending them, and after `ack_wait_secs` the
//! servers hand the message to another node, whose push the library
//! answers as a duplicate if the first one got through.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use chrono::FixedOffset;
use rusqlite::Connection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::answers::{Answer, Outcome};
use super::{ClusterError, Nats, header, pause};
use crate::forward::push::Forwarder;
use crate::outbox::Reply;
use crate::state::log::{self, ClusterPush, LogEntry};

/// Longest a fetch waits for a message before asking again.
const FETCH_WAIT: Duration = Duration::from_secs(5);

/// Everything the delivery tasks need.
pub struct Delivery {
    pub nats: Nats,
    pub forwarder: Arc<Forwarder>,
    /// The delivery's own connection to the state database (its exchange
    /// log entries).
    pub db: Arc<Mutex<Connection>>,
    pub tz: FixedOffset,
}

impl Delivery {
    /// One task per route until `cancel`; `abandon` (the end of the grace
    /// period) gives a running push's message back to the stream.
    pub async fn run(
        self: Arc<Self>,
        routes: Vec<String>,
        cancel: CancellationToken,
        abandon: CancellationToken,
    ) {
        let mut tasks = JoinSet::new();
        for r in routes {
            tasks.spawn(self.clone().route(r, cancel.clone(), abandon.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// A route's loop: fetch, push, answer; a failure of the servers or of
    /// the state pauses the loop and it starts again.
    async fn route(
        self: Arc<Self>,
        route: String,
        cancel: CancellationToken,
        abandon: CancellationToken,
    ) {
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            match self.serve(&route, &cancel, &abandon).await {
                Ok(()) => return,
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(route = %route, error = %e, "cannot deliver from the cluster's stream; retrying");
                    }
                    failures = failures.saturating_add(1);
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(pause(failures)) => {}
                    }
                }
            }
        }
    }

    /// Fetches and handles messages until `cancel` (`Ok`) or a failure.
    async fn serve(
        &self,
        route: &str,
        cancel: &CancellationToken,
        abandon: &CancellationToken,
    ) -> Result<(), ClusterError> {
        use futures_util::StreamExt;
        // The route's consumer, and the stream the answers go to
        // (`answers`); made again after any failure. A stop does not wait
        // for slow servers here: nothing is in flight yet.
        let ready = async {
            let consumer = self.nats.consumer(route).await?;
            self.nats.answers_stream().await?;
            Ok::<_, ClusterError>(consumer)
        };
        let consumer = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            c = ready => c?,
        };
        loop {
            let fetched = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                f = consumer.fetch().max_messages(1).expires(FETCH_WAIT).messages() => f,
            };
            let mut batch = fetched.map_err(ClusterError::js)?;
            loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    n = batch.next() => n,
                };
                match next {
                    None => break,
                    Some(Err(e)) => return Err(ClusterError::js(e)),
                    Some(Ok(msg)) => self.handle(route, msg, abandon).await?,
                }
            }
        }
    }

    /// Pushes one message's body and answers the message.
    async fn handle(
        &self,
        route: &str,
        msg: Message,
        abandon: &CancellationToken,
    ) -> Result<(), ClusterError> {
        let text = |name: &str| {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
                .unwrap_or_default()
        };
        let (batch, dataset, origin) = (
            text(header::BATCH),
            text(header::DATASET),
            text(header::ORIGIN),
        );
        let delivery = msg.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
        if batch.is_empty() {
            tracing::error!(
                route,
                "a message in the batch stream carries no batch id; terminated"
            );
            msg.ack_with(AckKind::Term)
                .await
                .map_err(ClusterError::js)?;
            return Ok(());
        }
        let body = msg.payload.clone();
        let push = self.forwarder.push_body(route, &batch, &body);
        tokio::pin!(push);
        let every = Duration::from_secs(self.nats.cfg.ack_wait_secs.max(3) / 3);
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let reply = loop {
            tokio::select! {
                r = &mut push => break r,
                _ = progress.tick() => {
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
                _ = abandon.cancelled() => {
                    // The push may or may not have reached the library:
                    // another node pushes it again, as a duplicate if so.
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                    return Ok(());
                }
            }
        };
        let mut entry = ClusterPush {
            dataset: &dataset,
            batch: &batch,
            route,
            origin: &origin,
            node: &self.nats.cfg.node,
            outcome: "retry",
            receipt_id: None,
            accepted: None,
            library_rejected: 0,
            delivery,
            reason: None,
        };
        let (ack, reason) = match &reply {
            Reply::Delivered {
                receipt_id,
                accepted,
                rejected,
                duplicate,
            } => {
                entry.outcome = if *duplicate { "duplicate" } else { "delivered" };
                entry.receipt_id = Some(receipt_id);
                entry.accepted = *accepted;
                entry.library_rejected = rejected.len();
                (AckKind::Ack, None)
            }
            Reply::Retry { wait, reason } => {
                let wait = wait.unwrap_or_else(|| {
                    crate::outbox::retry_delay(delivery as u32 - 1, rand::random::<f64>())
                });
                (AckKind::Nak(Some(wait)), Some(reason.clone()))
            }
            Reply::Park { reason } => {
                entry.outcome = "parked";
                (AckKind::Term, Some(reason.clone()))
            }
            Reply::TooLarge => {
                entry.outcome = "too_large";
                (
                    AckKind::Term,
                    Some("HTTP 413 413001: the origin node splits the batch in halves".to_string()),
                )
            }
        };
        entry.reason = reason.as_deref();
        // Still this node's while the push is recorded and answered.
        let _ = msg.ack_with(AckKind::Progress).await;
        self.record(LogEntry::ClusterPushed(entry.clone())).await?;
        // The final answer goes back to the batch's origin before the
        // message is acked or terminated: should that fail, the message
        // is offered again, and its next push is answered as a duplicate.
        if let Some(outcome) = Outcome::of(&reply)
            && !origin.is_empty()
        {
            let seq = msg.info().map_err(ClusterError::js)?.stream_sequence;
            let answer = Answer {
                batch: batch.clone(),
                msg_id: text(header::MSG_ID),
                node: self.nats.cfg.node.clone(),
                outcome,
            };
            self.nats.send_answer(&origin, seq, &answer).await?;
        }
        match ack {
            // Confirmed by the servers; an ack lost on the way leaves the
            // message to be pushed again, which the library answers as a
            // duplicate.
            AckKind::Ack => return msg.double_ack().await.map_err(ClusterError::js),
            AckKind::Term if entry.outcome == "parked" => {
                tracing::error!(dataset = %dataset, batch = %batch, origin = %origin, reason = ?entry.reason, "ALERT: batch parked by the library; parked on its origin node, where `fepd batches retry` resends it")
            }
            AckKind::Nak(_) => {
                tracing::warn!(dataset = %dataset, batch = %batch, delivery, reason = ?entry.reason, "send failed; the stream will offer it again")
            }
            _ => {}
        }
        msg.ack_with(ack).await.map_err(ClusterError::js)
    }

    /// Appends `entry` to this node's exchange log in a transaction of its own.
    async fn record(&self, entry: LogEntry<'_>) -> Result<(), ClusterError> {
        let db = self.db.clone();
        let tz = self.tz;
        // The entry borrows from the message: it is appended on this task,
        // inside `block_in_place`, rather than moved to a blocking thread.
        tokio::task::block_in_place(move || {
            let mut conn = db.lock().unwrap_or_else(|p| p.into_inner());
            log::append_alone(&mut conn, tz, entry).map(|_| ())
        })
        .map_err(ClusterError::state)
    }
}
