//! What the console's 集群 page reads from the cluster's servers (README
//! "Web console", docs/cluster.md "Fleet view"): the fleet (`fleet::
//! read_all`, as `fepd status --cluster` reads it), the newest entries of
//! the cluster's exchange log (`logpub::newest`) and, when asked, every
//! node's entries for the chain check (`logpub::by_node`, as `fepd audit
//! verify --cluster` reads them).
//!
//! Rules this module owns:
//! - every wait is bounded: reaching the servers and the fleet within
//!   [`Nats::reach_limit`] (a page that says the servers cannot be
//!   reached, never a hung one), the log within [`LOG_SECS`] more, the
//!   chain check's full read within [`VERIFY_SECS`] more;
//! - one connection per page: the page is opened by a person now and
//!   then, so a connection made for it (one handshake on loopback or the
//!   LAN) costs less than a client kept reconnecting in the background for
//!   the daemon's life, and a page never meets a connection another page
//!   left half-broken; it is closed when the page is read;
//! - these are network waits on the async side: no console thread
//!   (`console::pool`) and no pipeline thread waits on them.

use std::time::Duration;

use super::fleet::NodeStatus;
use super::logpub::{self, ByNode};
use super::{ClusterError, Nats};
use crate::config::Cluster;
use crate::state::log::StoredEntry;

/// How much longer than reaching the servers the newest entries may take.
pub const LOG_SECS: u64 = 20;

/// How much longer the chain check's read of every entry may take (a log
/// longer than that is verified by `fepd audit verify --cluster`).
pub const VERIFY_SECS: u64 = 60;

/// What the page asks for.
pub struct Ask {
    /// Entries of this node only.
    pub node: Option<String>,
    /// How many of the newest entries.
    pub last: usize,
    /// Read every entry for the chain check.
    pub verify: bool,
}

/// A published entry with its node: the entry, or why its line is not
/// one.
pub type Published = (String, Result<StoredEntry, String>);

/// What the servers answered.
pub struct View {
    /// Every node's status, by name.
    pub nodes: Vec<NodeStatus>,
    /// The newest entries first, `(node, entry or why its line is not
    /// one)`; or why they could not be read.
    pub log: Result<Vec<Published>, String>,
    /// When asked: every node's entries, for `logpub::verify_node`; or
    /// why they could not be read.
    pub chains: Option<Result<ByNode, String>>,
}

/// Reads the page's parts; `Err` when no server answers (or the fleet
/// cannot be read) within [`Nats::reach_limit`].
pub async fn read(cfg: &Cluster, ask: &Ask) -> Result<View, ClusterError> {
    let reach = Nats::reach_limit(cfg);
    let nats = Nats::connect_within(cfg).await?;
    let nodes = tokio::time::timeout(reach, super::fleet::read_all(&nats))
        .await
        .unwrap_or(Err(ClusterError::NoAnswer(reach.as_secs())))?;
    let log_limit = reach + Duration::from_secs(LOG_SECS);
    let log = match tokio::time::timeout(
        log_limit,
        logpub::newest(&nats, ask.last, ask.node.as_deref()),
    )
    .await
    {
        Ok(Ok(lines)) => Ok(lines
            .into_iter()
            .map(|(node, line)| {
                let e = StoredEntry::from_archive_line(&line);
                (node, e)
            })
            .collect()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(ClusterError::NoAnswer(log_limit.as_secs()).to_string()),
    };
    let chains = match ask.verify {
        false => None,
        true => {
            let limit = reach + Duration::from_secs(VERIFY_SECS);
            Some(
                match tokio::time::timeout(limit, logpub::by_node(&nats)).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(ClusterError::NoAnswer(limit.as_secs()).to_string()),
                },
            )
        }
    };
    Ok(View { nodes, log, chains })
}
