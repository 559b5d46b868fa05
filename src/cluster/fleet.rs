//! The fleet view (docs/cluster.md "Fleet view"): every node puts a small
//! status of its own in the key-value bucket [`BUCKET`] (key: the node's
//! name) at start, every `heartbeat_secs` and, marked stopped, at a clean
//! stop; `fepd status --cluster` reads every node's entry back.
//!
//! An entry is built from the node's own status report (the one behind
//! `fepd status --json`) and its exchange log's figures: counts, times,
//! alert kinds — never a record's value. Publishing never holds up the
//! pipeline: it runs in its own task, and a failure is logged once per
//! episode and tried again at the next beat.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{ClusterError, Nats};
use crate::daemon::status::Report;
use crate::state::StoreError;

/// The key-value bucket of node statuses (entries never expire: a node
/// gone for good shows as stale until an operator purges it).
pub const BUCKET: &str = "FEPD_NODES";

/// One node's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    /// The fepd version the node runs.
    pub version: String,
    /// The node's host name.
    pub host: String,
    pub started_at: String,
    pub updated_at: String,
    /// `updated_at` in milliseconds since the epoch (the stale decision).
    pub updated_ms: i64,
    /// The node's own `heartbeat_secs`.
    pub heartbeat_secs: u64,
    /// Put by the node's clean stop.
    pub stopped: bool,
    /// Sealed batches not handed off yet, and their records.
    pub backlog_batches: i64,
    pub backlog_records: i64,
    pub handed_off_today: i64,
    pub last_hand_off: Option<String>,
    /// The last push of this node the library took.
    pub last_delivery: Option<String>,
    /// Batches parked in this node's outbox: those it sealed that the
    /// library refused, whichever node pushed them (docs/cluster.md
    /// "Answers"), and those an operator parked.
    pub parked: i64,
    /// The kinds of the node's open alert episodes.
    pub alerts: Vec<String>,
    pub intake_paused: bool,
}

/// What `fepd status --cluster` calls a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Its last entry is fresh.
    Running,
    /// It stopped cleanly.
    Stopped,
    /// It has not put an entry for three heartbeats: killed, hung, or cut
    /// off from the cluster.
    Stale,
}

impl NodeStatus {
    /// The node's state at `now_ms`: stopped if it said so, stale once
    /// its entry is older than three of its heartbeats, else running.
    pub fn state(&self, now_ms: i64) -> NodeState {
        let limit = 3 * self.heartbeat_secs.max(1) as i64 * 1000;
        if self.stopped {
            NodeState::Stopped
        } else if now_ms - self.updated_ms > limit {
            NodeState::Stale
        } else {
            NodeState::Running
        }
    }
}

/// Where an entry's figures come from: the node's status report (as
/// `/status` answers it) and its exchange log.
pub struct Source {
    pub report: Arc<dyn Fn() -> Result<Report, StoreError> + Send + Sync>,
    pub db: std::path::PathBuf,
    pub tz: chrono::FixedOffset,
}

impl Source {
    /// The entry as of now (blocking: reads the state database).
    fn entry(
        &self,
        node: &str,
        started_at: &str,
        beat: u64,
        stopped: bool,
    ) -> Result<NodeStatus, StoreError> {
        let r = (self.report)()?;
        let now = chrono::Utc::now().with_timezone(&self.tz);
        let conn = crate::state::open_read_only(&self.db)?;
        let figures = crate::state::figures::cluster(&conn, &now.format("%Y-%m-%d").to_string())?;
        let mut alerts: Vec<String> = crate::state::episodes::open(&conn)?
            .into_iter()
            .map(|e| e.kind)
            .collect();
        alerts.dedup();
        Ok(NodeStatus {
            node: node.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            host: host_name(),
            started_at: started_at.to_string(),
            updated_at: now.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            updated_ms: now.timestamp_millis(),
            heartbeat_secs: beat,
            stopped,
            backlog_batches: r.datasets.iter().map(|d| d.backlog_batches).sum(),
            backlog_records: r.backlog_records as i64,
            handed_off_today: figures.handed_off_today,
            last_hand_off: figures.last_hand_off,
            last_delivery: figures.last_delivery,
            parked: r.datasets.iter().map(|d| d.parked).sum::<i64>(),
            alerts,
            intake_paused: r.intake_paused,
        })
    }
}

/// The host's name (no pid, no address).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The heartbeat task: puts this node's entry at once, every
/// `heartbeat_secs`, and marked stopped when `cancel` fires.
pub struct Heartbeat {
    pub nats: Nats,
    pub source: Arc<Source>,
}

impl Heartbeat {
    pub async fn run(self, cancel: CancellationToken) {
        let beat = self.nats.cfg.heartbeat_secs.max(1);
        let started_at = crate::state::now_text(self.source.tz);
        let mut failing = false;
        loop {
            let stopping = cancel.is_cancelled();
            let put = self.put(&started_at, beat, stopping);
            // A clean stop waits for its last entry a moment only.
            let res = match stopping {
                true => tokio::time::timeout(Duration::from_secs(3), put)
                    .await
                    .unwrap_or_else(|_| Err(ClusterError::js("timed out"))),
                false => put.await,
            };
            match res {
                Ok(()) if failing => {
                    tracing::info!(node = %self.nats.cfg.node, "node status published again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(node = %self.nats.cfg.node, error = %e, "cannot publish this node's status to the cluster; trying again every heartbeat");
                    failing = true;
                }
                Err(_) => {}
            }
            if stopping {
                return;
            }
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(beat)) => {}
            }
        }
    }

    async fn put(&self, started_at: &str, beat: u64, stopped: bool) -> Result<(), ClusterError> {
        let source = self.source.clone();
        let (node, started) = (self.nats.cfg.node.clone(), started_at.to_string());
        let entry =
            tokio::task::spawn_blocking(move || source.entry(&node, &started, beat, stopped))
                .await?
                .map_err(ClusterError::state)?;
        let body = serde_json::to_vec(&entry).map_err(ClusterError::js)?;
        let kv = self.nats.bucket(BUCKET, Duration::ZERO).await?;
        kv.put(&self.nats.cfg.node, body.into())
            .await
            .map_err(ClusterError::js)?;
        Ok(())
    }
}

/// Every node's entry, by name (`fepd status --cluster`). An entry that
/// does not parse is skipped.
pub async fn read_all(nats: &Nats) -> Result<Vec<NodeStatus>, ClusterError> {
    let kv = nats.bucket(BUCKET, Duration::ZERO).await?;
    let mut out = Vec::new();
    for k in Nats::keys(&kv).await? {
        if let Some(v) = kv.get(&k).await.map_err(ClusterError::js)?
            && let Ok(e) = serde_json::from_slice::<NodeStatus>(&v)
        {
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(updated_ms: i64, stopped: bool) -> NodeStatus {
        NodeStatus {
            node: "a".into(),
            version: "0".into(),
            host: "h".into(),
            started_at: String::new(),
            updated_at: String::new(),
            updated_ms,
            heartbeat_secs: 10,
            stopped,
            backlog_batches: 0,
            backlog_records: 0,
            handed_off_today: 0,
            last_hand_off: None,
            last_delivery: None,
            parked: 0,
            alerts: vec![],
            intake_paused: false,
        }
    }

    #[test]
    fn a_node_is_stale_after_three_missed_heartbeats() {
        let e = entry(1_000_000, false);
        assert_eq!(e.state(1_000_000), NodeState::Running);
        assert_eq!(e.state(1_030_000), NodeState::Running);
        assert_eq!(e.state(1_030_001), NodeState::Stale);
        // A clock behind the entry's is not stale.
        assert_eq!(e.state(990_000), NodeState::Running);
    }

    #[test]
    fn a_cleanly_stopped_node_is_stopped_however_old() {
        let e = entry(1_000_000, true);
        assert_eq!(e.state(1_000_000), NodeState::Stopped);
        assert_eq!(e.state(9_000_000), NodeState::Stopped);
    }
}
