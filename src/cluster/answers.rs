//! The library's answers, back to the batch's origin (docs/cluster.md
//! "Answers"). The node that pushed a batch from the stream is often not
//! the node that sealed it: the origin holds the batch's row, its body,
//! its per-record rows and the file the records came from. So the pushing
//! node publishes the library's final answer — delivered (with the
//! records it refused), parked, or too large — to the stream [`STREAM`]
//! on the subject `fepd.answer.<origin>` before it acks the batch's
//! message, and the origin applies it with the same outbox transitions as
//! a push of its own (`outbox::apply_via`, `via = "cluster"`):
//!
//! - delivered → the batch `delivered` with the receipt, its refused
//!   records reported beside their file (`report::library`);
//! - parked → the batch `parked` with the reason, retried by an operator's
//!   `fepd batches retry` (handed off anew under a new message id);
//! - too large → the batch split in halves, born sealed and handed off.
//!
//! The answer's message id is the batch's stream sequence, so a second
//! push of the same message (a node that died before its ack) adds no
//! second answer. An answer names the hand-off it answers (the batch
//! message's id): one for a batch no longer `handed_off` under that id
//! changes nothing, and one that overtook the origin's own commit of the
//! hand-off (the batch still `sealed`) is offered again a second later.
//! Until its answer arrives a batch stays `handed_off` on its origin, and
//! retention keeps its body.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{AckKind, Message, consumer, stream};
use chrono::FixedOffset;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{ClusterError, Nats, header, pause};
use crate::outbox::{RemoteRejected, Reply};
use crate::state::batches;
use crate::validate::Catalog;

/// The stream of answers on their way back to the batches' origins.
pub const STREAM: &str = "FEPD_ANSWERS";

/// Longest a fetch waits for an answer before asking again.
const FETCH_WAIT: Duration = Duration::from_secs(5);

/// The subject of the answers for the batches `origin` sealed.
pub fn subject(origin: &str) -> String {
    format!("fepd.answer.{origin}")
}

/// The library's final answer to a push, as the pushing node saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Delivered {
        receipt_id: String,
        accepted: Option<i64>,
        rejected: Vec<RemoteRejected>,
        duplicate: bool,
    },
    Parked {
        reason: String,
    },
    TooLarge,
}

/// One answer message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub batch: String,
    /// The batch message's id (`handoff::msg_id`): which hand-off of the
    /// batch the answer is for.
    pub msg_id: String,
    /// The node that pushed the batch.
    pub node: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Outcome {
    /// The answer for the outbox's transitions; `None` for a "try again",
    /// which stays with the pushing node (the stream offers it again).
    pub fn of(reply: &Reply) -> Option<Outcome> {
        Some(match reply {
            Reply::Delivered {
                receipt_id,
                accepted,
                rejected,
                duplicate,
            } => Outcome::Delivered {
                receipt_id: receipt_id.clone(),
                accepted: *accepted,
                rejected: rejected.clone(),
                duplicate: *duplicate,
            },
            Reply::Park { reason } => Outcome::Parked {
                reason: reason.clone(),
            },
            Reply::TooLarge => Outcome::TooLarge,
            Reply::Retry { .. } => return None,
        })
    }

    fn into_reply(self) -> Reply {
        match self {
            Outcome::Delivered {
                receipt_id,
                accepted,
                rejected,
                duplicate,
            } => Reply::Delivered {
                receipt_id,
                accepted,
                rejected,
                duplicate,
            },
            Outcome::Parked { reason } => Reply::Park { reason },
            Outcome::TooLarge => Reply::TooLarge,
        }
    }
}

impl Nats {
    /// The answers' stream, created if absent: file storage,
    /// `stream_replicas` copies, work-queue retention (an answer goes once
    /// its origin applied it), re-publishes dropped for a day.
    pub async fn answers_stream(&self) -> Result<stream::Stream, ClusterError> {
        self.work_queue(STREAM, "fepd.answer.>").await
    }

    /// Publishes `answer` for `origin` and waits for the servers'
    /// acknowledgement (the stream made by [`Nats::answers_stream`] first).
    /// `stream_seq` is the batch message's sequence in the batch stream:
    /// the answer's message id.
    pub async fn send_answer(
        &self,
        origin: &str,
        stream_seq: u64,
        answer: &Answer,
    ) -> Result<(), ClusterError> {
        let mut h = HeaderMap::new();
        h.insert(header::MSG_ID, format!("answer.{stream_seq}").as_str());
        h.insert(header::BATCH, answer.batch.as_str());
        let body = serde_json::to_vec(answer).map_err(ClusterError::js)?;
        self.js
            .publish_with_headers(subject(origin), h, body.into())
            .await
            .map_err(ClusterError::js)?
            .await
            .map_err(ClusterError::js)?;
        Ok(())
    }

    /// This node's durable consumer of the answers for its batches.
    async fn answers_consumer(
        &self,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, ClusterError> {
        let name = format!("answers_{}", hex::encode(&self.cfg.node));
        self.durable(
            self.answers_stream().await?,
            &name,
            subject(&self.cfg.node),
            0,
        )
        .await
    }
}

/// The task that applies the answers for this node's batches.
pub struct Answers {
    pub nats: Nats,
    /// The state database (a connection of its own per answer).
    pub db: PathBuf,
    /// The spool, where a file's report of refused records is written.
    pub spool: PathBuf,
    /// The dataset schemas, to mask refused records in their reports.
    pub catalog: Catalog,
    pub tz: FixedOffset,
}

impl Answers {
    /// Runs until `cancel`; a failure of the servers or of the state
    /// pauses it and it starts again.
    pub async fn run(self, cancel: CancellationToken) {
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            // Cancelled at any wait: an answer being applied is applied or
            // not (its own transaction) and, unacked, comes again; applying
            // it twice changes nothing.
            let served = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.serve(&cancel) => r,
            };
            match served {
                Ok(()) => return,
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(node = %self.nats.cfg.node, error = %e, "cannot read the library's answers from the cluster; retrying");
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

    async fn serve(&self, cancel: &CancellationToken) -> Result<(), ClusterError> {
        use futures_util::StreamExt;
        let consumer = self.nats.answers_consumer().await?;
        loop {
            let fetched = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                f = consumer.fetch().max_messages(16).expires(FETCH_WAIT).messages() => f,
            };
            let mut batch = fetched.map_err(ClusterError::js)?;
            while let Some(msg) = batch.next().await {
                self.handle(msg.map_err(ClusterError::js)?).await?;
            }
        }
    }

    /// Applies one answer, then acks it. An answer that cannot be read is
    /// terminated (never offered again) with an error in the log.
    async fn handle(&self, msg: Message) -> Result<(), ClusterError> {
        let answer: Answer = match serde_json::from_slice(&msg.payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(subject = %msg.subject, error = %e, "an answer in the cluster's stream cannot be read; dropped");
                return msg.ack_with(AckKind::Term).await.map_err(ClusterError::js);
            }
        };
        let (db, spool, catalog, tz) = (
            self.db.clone(),
            self.spool.clone(),
            self.catalog.clone(),
            self.tz,
        );
        let applied =
            tokio::task::spawn_blocking(move || apply(&db, &spool, &catalog, tz, answer)).await??;
        match applied {
            Applied::Done => msg.double_ack().await.map_err(ClusterError::js),
            // The hand-off's own commit has not landed yet: offered again.
            Applied::NotYet => msg
                .ack_with(AckKind::Nak(Some(NOT_YET)))
                .await
                .map_err(ClusterError::js),
        }
    }
}

/// How long an answer that came before its batch's hand-off was
/// recorded waits to be offered again.
const NOT_YET: Duration = Duration::from_secs(1);

/// What became of an answer.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// Applied, or nothing to apply: acked.
    Done,
    /// The batch is still `sealed` here: the servers acknowledged its
    /// hand-off, and the answer came, before this node committed the
    /// hand-off. Offered again shortly.
    NotYet,
}

/// Applies `answer` to this node's batch in the state database at `db`.
fn apply(
    db: &std::path::Path,
    spool: &std::path::Path,
    catalog: &Catalog,
    tz: FixedOffset,
    answer: Answer,
) -> Result<Applied, ClusterError> {
    use crate::outbox::BatchState;
    let mut conn = crate::state::open(db).map_err(ClusterError::state)?;
    let Some(b) = batches::get(&conn, &answer.batch).map_err(ClusterError::state)? else {
        tracing::warn!(batch = %answer.batch, node = %answer.node, "the library's answer names a batch this node does not hold; ignored");
        return Ok(Applied::Done);
    };
    let times = batches::handoffs(&conn, &b.batch_id).map_err(ClusterError::state)?;
    // The id of the batch's latest hand-off, once it is recorded.
    let latest = super::handoff::msg_id(&b.batch_id, (times - 1).max(0));
    match b.state {
        BatchState::Sealed if answer.msg_id == super::handoff::msg_id(&b.batch_id, times) => {
            return Ok(Applied::NotYet);
        }
        BatchState::HandedOff if answer.msg_id == latest => {}
        _ => {
            // Applied before (the answer came twice), or an answer to an
            // earlier hand-off of a batch retried since: nothing to change.
            tracing::debug!(batch = %b.batch_id, state = b.state.as_str(), "answer for a batch no longer handed off under that id; nothing to change");
            return Ok(Applied::Done);
        }
    }
    crate::outbox::apply_via(
        &mut conn,
        tz,
        spool,
        catalog,
        &b,
        answer.outcome.into_reply(),
        "cluster",
    )
    .map_err(ClusterError::state)?;
    Ok(Applied::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state database holding one sealed batch `B1`.
    fn one_batch() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fepd.db");
        let conn = crate::state::open(&db).unwrap();
        let new = batches::NewBatch {
            sort_key: None,
            batch_id: "B1",
            dataset: "case_accept",
            route: "zwfw/case_accept",
            file_id: None,
            parent_id: None,
            count: 1,
            digest: "d",
            body: b"{}",
            sealed_at: "2026-12-02T10:00:00+08:00",
        };
        batches::insert(&conn, &new, []).unwrap();
        (dir, db)
    }

    fn state(db: &std::path::Path) -> crate::outbox::BatchState {
        let conn = crate::state::open(db).unwrap();
        batches::get(&conn, "B1").unwrap().unwrap().state
    }

    fn parked(msg_id: &str) -> Answer {
        Answer {
            batch: "B1".into(),
            msg_id: msg_id.into(),
            node: "b".into(),
            outcome: Outcome::Parked {
                reason: "HTTP 400 400003".into(),
            },
        }
    }

    #[test]
    fn an_answer_applies_to_the_hand_off_it_names_only() {
        use crate::outbox::BatchState::*;
        let (dir, db) = one_batch();
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let cat = Catalog::default();
        let go = |a: Answer| apply(&db, dir.path(), &cat, tz, a).unwrap();
        let hand_off = || {
            let conn = crate::state::open(&db).unwrap();
            let b = batches::get(&conn, "B1").unwrap().unwrap();
            assert!(crate::outbox::hand_off(&conn, tz, &b, "a", 1).unwrap());
        };
        // The answer overtook this node's commit of the hand-off.
        assert_eq!(go(parked("B1")), Applied::NotYet);
        assert_eq!(state(&db), Sealed);
        hand_off();
        assert_eq!(go(parked("B1")), Applied::Done);
        assert_eq!(state(&db), Parked);
        // The same answer again changes nothing.
        assert_eq!(go(parked("B1")), Applied::Done);
        assert_eq!(state(&db), Parked);
        // Retried: the first hand-off's answer is stale; the second's
        // waits for its commit, then applies.
        {
            let conn = crate::state::open(&db).unwrap();
            let b = batches::get(&conn, "B1").unwrap().unwrap();
            assert!(crate::outbox::retry(&conn, tz, &b, "op").unwrap());
        }
        assert_eq!(go(parked("B1")), Applied::Done);
        assert_eq!(state(&db), Sealed);
        assert_eq!(go(parked("B1#1")), Applied::NotYet);
        hand_off();
        assert_eq!(go(parked("B1")), Applied::Done);
        assert_eq!(state(&db), HandedOff);
        assert_eq!(go(parked("B1#1")), Applied::Done);
        assert_eq!(state(&db), Parked);
    }

    #[test]
    fn each_origin_has_its_subject() {
        assert_eq!(subject("city-01"), "fepd.answer.city-01");
    }

    #[test]
    fn an_answer_reads_back_as_it_was_sent_and_a_retry_is_not_one() {
        let a = Answer {
            batch: "B1".into(),
            msg_id: "B1".into(),
            node: "b".into(),
            outcome: Outcome::of(&Reply::Delivered {
                receipt_id: "R1".into(),
                accepted: Some(9),
                rejected: vec![RemoteRejected {
                    index: 3,
                    key: None,
                    code: "422001".into(),
                    message: "bad".into(),
                }],
                duplicate: false,
            })
            .unwrap(),
        };
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Answer>(&text).unwrap(), a);
        assert!(text.contains(r#""outcome":"delivered""#), "{text}");
        assert_eq!(
            Outcome::of(&Reply::TooLarge).unwrap().into_reply(),
            Reply::TooLarge
        );
        assert_eq!(
            Outcome::of(&Reply::Retry {
                wait: None,
                reason: "503".into()
            }),
            None
        );
    }
}
