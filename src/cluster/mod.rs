//! Cluster mode (`[cluster]`, docs/cluster.md): several fepd nodes share
//! one NATS JetStream cluster. This folder owns everything NATS: no code
//! outside `src/cluster/` talks to it (ARCHITECTURE.md, invariants).
//!
//! - [`handoff`]: after a chunk's seal transaction commits, each sealed
//!   batch is published, its stored body unchanged, to the replicated
//!   stream [`STREAM`] (one subject per route, `Nats-Msg-Id` = batch id so
//!   the servers drop a re-publish after a crash), in seal order; only
//!   after the servers' acknowledgement does `outbox::hand_off` record it
//!   as handed off. With JetStream down, batches stay `sealed` here
//!   (intake goes on up to the back-pressure mark) and go when it returns.
//! - [`deliver`]: one durable pull consumer per route, shared by every
//!   node: whichever node fetches a message pushes its body with
//!   `forward::push` and acks (delivered, duplicate), naks with a delay
//!   (try again) or terminates it (parked), recording the push in its own
//!   exchange log. A node that dies mid-push leaves the message un-acked:
//!   the servers give it to another node after `ack_wait_secs`, and the
//!   library's idempotency by batch id makes the second push a duplicate.
//!
//! - [`answers`]: the library's final answer to each push, sent back to
//!   the batch's origin node, which applies it to its own row (delivered,
//!   parked, split) as if it had pushed the batch itself.
//! - [`logpub`]: each node's exchange-log entries, as stored, published
//!   to the stream `FEPD_LOG` (`fepd.log.<node>`), resuming after the
//!   last one the stream holds.
//! - [`fleet`]: each node's status in the bucket `FEPD_NODES`, put every
//!   `heartbeat_secs` and at a clean stop; `fepd status --cluster` reads
//!   them back.
//! - [`view`]: the console's 集群 page — the fleet, the newest entries of
//!   the cluster's log, each node's chain — read within bounded waits.
//!
//! The stream and consumers are created idempotently by the tasks that
//! use them, and again after a failure, so a node starts (and seals)
//! while the servers are away.

pub mod answers;
pub mod deliver;
pub mod fleet;
pub mod handoff;
pub mod lease;
pub mod logpub;
pub mod view;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};

use crate::config::Cluster;

/// The stream every node hands its sealed batches off to.
pub const STREAM: &str = "FEPD_BATCHES";

/// Headers of a handed-off batch (the body is the sealed wire body).
pub mod header {
    /// JetStream's de-duplication id: the batch id.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const BATCH: &str = "Fepd-Batch-Id";
    pub const ROUTE: &str = "Fepd-Route";
    pub const DATASET: &str = "Fepd-Dataset";
    /// The node that sealed the batch.
    pub const ORIGIN: &str = "Fepd-Origin";
    /// The batch's place in its node's seal order (`batch.sort_key`).
    pub const SORT_KEY: &str = "Fepd-Sort-Key";
    pub const RECORDS: &str = "Fepd-Records";
}

/// Why the cluster's servers could not be used (each task retries).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to the JetStream servers: {0}")]
    Connect(#[source] async_nats::ConnectError),
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error("{0}")]
    State(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no answer within {0} s")]
    NoAnswer(u64),
    #[error("a state task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ClusterError {
    /// A JetStream error of any of the client's kinds, as its text.
    pub fn js(e: impl std::fmt::Display) -> ClusterError {
        ClusterError::JetStream(e.to_string())
    }

    /// The state database's error, boxed.
    pub fn state(e: impl std::error::Error + Send + Sync + 'static) -> ClusterError {
        ClusterError::State(Box::new(e))
    }
}

/// The subject a route's batches are published on: `fepd.batch.<category>.<resource>`
/// (both are letters, digits, `_`, `-`: valid subject tokens).
pub fn subject(route: &str) -> String {
    let (category, resource) = route.split_once('/').unwrap_or((route, "_"));
    format!("fepd.batch.{category}.{resource}")
}

/// The durable consumer of a route, shared by every node: its name is the
/// route in hex, so no two routes can meet in one name.
pub fn consumer_name(route: &str) -> String {
    format!("route_{}", hex::encode(route))
}

/// A connection to the cluster: the client keeps reconnecting to any of
/// the listed servers for as long as the node runs.
#[derive(Clone)]
pub struct Nats {
    pub js: jetstream::Context,
    pub cfg: Cluster,
}

impl Nats {
    /// Connects (the first connection is retried in the background, so
    /// this returns at once even with every server down; only a malformed
    /// address fails here).
    pub async fn connect(cfg: &Cluster) -> Result<Nats, ClusterError> {
        let client = Self::options(cfg, "fepd")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(cfg.nats.as_slice())
            .await
            .map_err(ClusterError::Connect)?;
        Ok(Self::over(client, cfg))
    }

    /// Connects once, for a command (`fepd status --cluster`): fails when
    /// none of the servers answers within `request_timeout_secs`.
    pub async fn connect_once(cfg: &Cluster) -> Result<Nats, ClusterError> {
        let client = Self::options(cfg, "fepd status")
            .connect(cfg.nats.as_slice())
            .await
            .map_err(ClusterError::Connect)?;
        Ok(Self::over(client, cfg))
    }

    /// [`Nats::connect_once`] within a bound: every server tried once,
    /// each within `request_timeout_secs` (a command, the console's 集群
    /// page: none of them waits longer than [`Nats::reach_limit`] to
    /// connect). Each JetStream request then may take up to that bound
    /// too: a reader makes a handful of them and is bounded as a whole by
    /// its caller, and a cluster busy with a node's hand-offs may answer
    /// one past `request_timeout_secs` (the daemon's own requests keep the
    /// short bound: it retries them).
    pub async fn connect_within(cfg: &Cluster) -> Result<Nats, ClusterError> {
        let limit = Self::reach_limit(cfg);
        let mut nats = tokio::time::timeout(limit, Self::connect_once(cfg))
            .await
            .unwrap_or(Err(ClusterError::NoAnswer(limit.as_secs())))?;
        nats.js.set_timeout(limit);
        Ok(nats)
    }

    /// How long reaching the cluster may take: `request_timeout_secs` for
    /// each listed server, and two more.
    pub fn reach_limit(cfg: &Cluster) -> Duration {
        Duration::from_secs(cfg.request_timeout_secs.max(1) * (cfg.nats.len() as u64 + 2))
    }

    /// The client's options: named `WHO NODE` on the servers, every wait
    /// bounded by `request_timeout_secs`.
    fn options(cfg: &Cluster, who: &str) -> async_nats::ConnectOptions {
        let timeout = Self::timeout(cfg);
        async_nats::ConnectOptions::new()
            .name(format!("{who} {}", cfg.node))
            .connection_timeout(timeout)
            .request_timeout(Some(timeout))
    }

    fn timeout(cfg: &Cluster) -> Duration {
        Duration::from_secs(cfg.request_timeout_secs.max(1))
    }

    /// JetStream over a connected client, its requests bounded like the
    /// client's.
    fn over(client: async_nats::Client, cfg: &Cluster) -> Nats {
        let mut js = jetstream::new(client);
        js.set_timeout(Self::timeout(cfg));
        Nats {
            js,
            cfg: cfg.clone(),
        }
    }

    /// The batch stream, created if absent: file storage, `stream_replicas`
    /// copies, work-queue retention (a message goes once a node acked it),
    /// re-publishes of a batch id dropped for a day.
    pub async fn stream(&self) -> Result<stream::Stream, ClusterError> {
        self.work_queue(STREAM, "fepd.batch.>").await
    }

    /// A work-queue stream `name` on `subjects`, created if absent: file
    /// storage, `stream_replicas` copies, a message gone once a node acked
    /// it, re-publishes of a message id dropped for a day.
    pub(crate) async fn work_queue(
        &self,
        name: &str,
        subjects: &str,
    ) -> Result<stream::Stream, ClusterError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: name.to_string(),
                subjects: vec![subjects.to_string()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: self.cfg.stream_replicas,
                duplicate_window: Duration::from_secs(24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(ClusterError::js)
    }

    /// The durable pull consumer `name` of `stream` for the subject
    /// `filter`, created if absent: explicit acks, everything from the
    /// start, redelivered after `ack_wait_secs` without an ack or
    /// progress; at most `max_ack_pending` messages out at once (0: the
    /// servers' default).
    pub(crate) async fn durable(
        &self,
        stream: stream::Stream,
        name: &str,
        filter: String,
        max_ack_pending: i64,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, ClusterError> {
        let mut config = consumer::pull::Config {
            durable_name: Some(name.to_string()),
            filter_subject: filter,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(self.cfg.ack_wait_secs.max(1)),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        };
        if max_ack_pending > 0 {
            config.max_ack_pending = max_ack_pending;
        }
        stream
            .get_or_create_consumer(name, config)
            .await
            .map_err(ClusterError::js)
    }

    /// A key-value bucket, created if absent (entries expire after
    /// `max_age`, zero for never). Its stream is created here with a
    /// key-value bucket's settings (`KV_<bucket>`, one value per key,
    /// roll-ups, direct gets), as the client would: the client's own bucket
    /// creation first reads account information in a form servers before
    /// 2.10 do not answer.
    pub async fn bucket(&self, name: &str, max_age: Duration) -> Result<kv::Store, ClusterError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: format!("KV_{name}"),
                subjects: vec![format!("$KV.{name}.>")],
                max_messages_per_subject: 1,
                max_age,
                storage: stream::StorageType::File,
                num_replicas: self.cfg.stream_replicas,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(ClusterError::js)?;
        self.js.get_key_value(name).await.map_err(ClusterError::js)
    }

    /// The keys of `kv` ([`Nats::bucket`]), sorted, read from its
    /// stream's subjects: one request answered by the stream's leader,
    /// where the client's own `keys()` creates a consumer on the servers
    /// for each call (a meta-layer proposal, the slowest request a loaded
    /// cluster answers). A key whose value was deleted is listed; reading
    /// it gives none.
    pub async fn keys(kv: &kv::Store) -> Result<Vec<String>, ClusterError> {
        use futures_util::TryStreamExt;
        let mut subjects = kv
            .stream
            .info_with_subjects(format!("{}>", kv.prefix))
            .await
            .map_err(ClusterError::js)?;
        let mut keys = Vec::new();
        while let Some((subject, _)) = subjects.try_next().await.map_err(ClusterError::js)? {
            if let Some(key) = subject.strip_prefix(&kv.prefix) {
                keys.push(key.to_string());
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// A route's durable pull consumer, created if absent: explicit acks,
    /// one message in flight at a time across every node (stream order
    /// is the route's delivery order, docs/cluster.md "Order"),
    /// redelivered after `ack_wait_secs` without an ack or progress.
    pub async fn consumer(
        &self,
        route: &str,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, ClusterError> {
        let name = consumer_name(route);
        self.durable(self.stream().await?, &name, subject(route), 1)
            .await
    }
}

/// A spool shared by several nodes (`lease`): the files this node holds,
/// each dataset's `work/` folder, and each dataset's worker.
pub struct SharedSpool {
    pub held: lease::Held,
    pub work: Vec<(String, std::path::PathBuf)>,
    pub workers: std::collections::HashMap<String, std::sync::mpsc::Sender<String>>,
}

/// Cluster mode made ready by the service loop before any task starts
/// (ARCHITECTURE.md, "A reload never stops the service"): the connection
/// and the tasks' own connections to the state database.
pub struct Prepared {
    nats: Nats,
    handoff_db: rusqlite::Connection,
    deliver_db: rusqlite::Connection,
    db: std::path::PathBuf,
}

impl Prepared {
    pub async fn new(cfg: &Cluster, db: &std::path::Path) -> Result<Prepared, ClusterError> {
        Ok(Prepared {
            nats: Nats::connect(cfg).await?,
            handoff_db: crate::state::open(db).map_err(ClusterError::state)?,
            deliver_db: crate::state::open(db).map_err(ClusterError::state)?,
            db: db.to_path_buf(),
        })
    }

    /// Starts the hand-off (woken by `wake` when a worker sealed), the
    /// lease task, the fleet heartbeat (from `status`), the exchange log's
    /// publisher, the answers' task and one delivery
    /// task per route of `routes`, until `cancel`; `abandon` gives
    /// the messages of pushes still running back to the stream.
    pub fn start(
        self,
        tz: chrono::FixedOffset,
        (forwarder, routes): (std::sync::Arc<crate::forward::push::Forwarder>, Vec<String>),
        (spool, status): (SharedSpool, fleet::Source),
        wake: std::sync::Arc<tokio::sync::Notify>,
        cancel: tokio_util::sync::CancellationToken,
        abandon: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        use std::sync::{Arc, Mutex};
        tracing::info!(node = %self.nats.cfg.node, servers = self.nats.cfg.nats.len(), routes = routes.len(), "cluster mode: handing sealed batches off to JetStream, delivering from it");
        let handoff = handoff::Handoff {
            nats: self.nats.clone(),
            db: Arc::new(Mutex::new(self.handoff_db)),
            tz,
        };
        let leases = lease::Leases {
            nats: self.nats.clone(),
            held: spool.held,
            work: spool.work,
            workers: spool.workers,
        };
        let heartbeat = fleet::Heartbeat {
            nats: self.nats.clone(),
            source: Arc::new(status),
        };
        let answers = answers::Answers {
            nats: self.nats.clone(),
            db: self.db.clone(),
            spool: forwarder.spool.clone(),
            catalog: forwarder.catalog.clone(),
            tz,
        };
        let log = logpub::LogPublisher {
            nats: self.nats.clone(),
            db: self.db,
        };
        let delivery = Arc::new(deliver::Delivery {
            nats: self.nats,
            forwarder,
            db: Arc::new(Mutex::new(self.deliver_db)),
            tz,
        });
        let f = tokio::spawn(heartbeat.run(cancel.clone()));
        let p = tokio::spawn(log.run(cancel.clone()));
        let h = tokio::spawn(handoff.run(wake, cancel.clone()));
        let l = tokio::spawn(leases.run(cancel.clone()));
        let a = tokio::spawn(answers.run(cancel.clone()));
        let d = tokio::spawn(delivery.run(routes, cancel, abandon));
        tokio::spawn(async move {
            let _ = tokio::join!(h, l, d, f, p, a);
        })
    }
}

/// A retry pause that doubles from 1 s to 8 s while a task keeps failing.
pub(crate) fn pause(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_distinct_subjects_and_consumers() {
        assert_eq!(subject("zwfw/case_accept"), "fepd.batch.zwfw.case_accept");
        assert_ne!(consumer_name("a_b/c"), consumer_name("a/b_c"));
        assert!(
            consumer_name("zwfw/case-accept")
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        );
    }

    #[test]
    fn pauses_grow_to_eight_seconds() {
        assert_eq!(pause(0), Duration::from_secs(1));
        assert_eq!(pause(2), Duration::from_secs(4));
        assert_eq!(pause(9), Duration::from_secs(8));
    }
}
