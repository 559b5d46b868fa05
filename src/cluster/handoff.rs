//! The hand-off (docs/cluster.md "Hand-off"): this node's sealed batches,
//! in seal order, published to the cluster's stream and recorded as
//! handed off (`outbox::hand_off`) only after the servers acknowledged
//! them. A batch stays `sealed` until then: with the servers away, intake
//! goes on sealing up to the back-pressure mark (the backlog counts
//! `sealed` batches), and the hand-off resumes in seal order when they
//! return. A crash between the acknowledgement and the local commit
//! publishes the batch again: the stream drops it by its `Nats-Msg-Id`
//! ([`msg_id`]: the batch id, and a new id for each retry after a park).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{ClusterError, Nats, header, pause, subject};
use crate::state::batches::{self, BatchRow};

/// Batches read from the outbox per pass.
const PASS: usize = 64;

/// Everything the hand-off task needs.
pub struct Handoff {
    pub nats: Nats,
    /// The hand-off's own connection to the state database.
    pub db: Arc<Mutex<Connection>>,
    pub tz: FixedOffset,
}

impl Handoff {
    /// Runs until `cancel`: a pass at every wake-up (a worker sealed), and
    /// at least every second; failures are retried with a growing pause,
    /// logged once per outage.
    pub async fn run(self, wake: Arc<Notify>, cancel: CancellationToken) {
        let mut failures = 0u32;
        loop {
            match self.pass(&cancel).await {
                Ok(n) => {
                    if failures > 0 {
                        tracing::info!(
                            node = %self.nats.cfg.node,
                            "JetStream reachable again; handing off sealed batches"
                        );
                    }
                    failures = 0;
                    if n > 0 {
                        tracing::debug!(batches = n, "handed off");
                    }
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(node = %self.nats.cfg.node, error = %e, "cannot hand sealed batches off to JetStream; they stay sealed here and go when it answers");
                    }
                    failures = failures.saturating_add(1);
                }
            }
            let wait = if failures > 0 {
                pause(failures)
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Hands off every sealed batch, oldest first; how many.
    async fn pass(&self, cancel: &CancellationToken) -> Result<usize, ClusterError> {
        let mut done = 0;
        loop {
            let db = self.db.clone();
            let rows = tokio::task::spawn_blocking(move || {
                let conn = db.lock().unwrap_or_else(|p| p.into_inner());
                let rows = batches::sealed_in_order(&conn, PASS).map_err(ClusterError::state)?;
                let mut out = Vec::with_capacity(rows.len());
                for b in rows {
                    let body = batches::body(&conn, &b.batch_id).map_err(ClusterError::state)?;
                    let times =
                        batches::handoffs(&conn, &b.batch_id).map_err(ClusterError::state)?;
                    out.push((b, body, times));
                }
                Ok::<_, ClusterError>(out)
            })
            .await??;
            if rows.is_empty() {
                return Ok(done);
            }
            for (b, body, times) in rows {
                if cancel.is_cancelled() {
                    return Ok(done);
                }
                let Some(body) = body else {
                    // `fepd doctor` names an undelivered batch without its
                    // body; nothing can be handed off for it.
                    return Err(ClusterError::JetStream(format!(
                        "batch {} has no stored body",
                        b.batch_id
                    )));
                };
                let seq = self.publish(&b, body, times).await?;
                self.record(b, seq).await?;
                done += 1;
            }
        }
    }

    /// Publishes one batch, handed off `times` times before, and waits
    /// for the servers' acknowledgement; its stream sequence.
    async fn publish(&self, b: &BatchRow, body: Vec<u8>, times: i64) -> Result<u64, ClusterError> {
        let mut h = HeaderMap::new();
        h.insert(header::MSG_ID, msg_id(&b.batch_id, times).as_str());
        h.insert(header::BATCH, b.batch_id.as_str());
        h.insert(header::ROUTE, b.route.as_str());
        h.insert(header::DATASET, b.dataset.as_str());
        h.insert(header::ORIGIN, self.nats.cfg.node.as_str());
        h.insert(header::SORT_KEY, b.sort_key.as_str());
        h.insert(header::RECORDS, b.count.to_string().as_str());
        let ack = self
            .nats
            .js
            .publish_with_headers(subject(&b.route), h, body.into())
            .await
            .map_err(ClusterError::js)?
            .await
            .map_err(ClusterError::js)?;
        if ack.duplicate {
            tracing::info!(batch = %b.batch_id, "batch already in the stream (handed off before a restart)");
        }
        Ok(ack.sequence)
    }

    /// `sealed` → `handed_off` (one more hand-off counted), with its
    /// exchange-log entry.
    async fn record(&self, b: BatchRow, seq: u64) -> Result<(), ClusterError> {
        let (db, tz, node) = (self.db.clone(), self.tz, self.nats.cfg.node.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = db.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ClusterError::state)?;
            crate::outbox::hand_off(&tx, tz, &b, &node, seq).map_err(ClusterError::state)?;
            tx.commit().map_err(ClusterError::state)
        })
        .await?
    }
}

/// The message id of a batch's hand-off after `times` earlier ones: the
/// batch id the first time, so a re-publish after a crash is dropped by
/// the stream; `ID#n` once the library parked it and an operator retried
/// it (`fepd batches retry`), which the stream would otherwise drop as a
/// re-publish for a day. The library sees the batch id either way.
pub fn msg_id(batch_id: &str, times: i64) -> String {
    match times {
        0 => batch_id.to_string(),
        n => format!("{batch_id}#{n}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_retried_batch_is_published_under_a_new_message_id() {
        assert_eq!(super::msg_id("B1", 0), "B1");
        assert_eq!(super::msg_id("B1", 1), "B1#1");
        assert_ne!(super::msg_id("B1", 1), super::msg_id("B1", 2));
    }
}
