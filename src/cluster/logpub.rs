//! The cluster's exchange log (docs/cluster.md "Exchange log in the
//! cluster"): each node publishes its own exchange-log entries — as
//! stored, with their hashes, the lines `fepd audit show --json` prints —
//! to the stream [`STREAM`] on the subject `fepd.log.<node>`, in seq
//! order, each only after the previous one was acknowledged.
//!
//! The cursor is the stream itself: at start, and after any failure, the
//! task reads the seq of the last message on its subject and goes on
//! after it, so a restart neither skips nor repeats an entry; a re-publish
//! after a lost acknowledgement is dropped by its message id
//! (`<node>.<seq>`). Each node's chain stays its own: the stream is a
//! copy, verified per node like the local log.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::stream;
use tokio_util::sync::CancellationToken;

use super::{ClusterError, Nats};
use crate::state::log::StoredEntry;

/// The stream of every node's exchange-log entries.
pub const STREAM: &str = "FEPD_LOG";

/// The header carrying an entry's seq in its node's log.
pub const SEQ: &str = "Fepd-Seq";

/// Entries read from the state database per pass.
const PASS: usize = 256;

/// A node's subject in [`STREAM`].
pub fn subject(node: &str) -> String {
    format!("fepd.log.{node}")
}

/// The node a [`subject`] names.
fn node_of(subject: &str) -> &str {
    subject.strip_prefix("fepd.log.").unwrap_or(subject)
}

impl Nats {
    /// The log stream, created if absent: file storage, `stream_replicas`
    /// copies, kept (limits retention, no age limit), re-publishes dropped
    /// for a day.
    pub async fn log_stream(&self) -> Result<stream::Stream, ClusterError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: STREAM.to_string(),
                subjects: vec!["fepd.log.>".to_string()],
                storage: stream::StorageType::File,
                num_replicas: self.cfg.stream_replicas,
                duplicate_window: Duration::from_secs(24 * 3600),
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(ClusterError::js)
    }
}

/// The publishing task.
pub struct LogPublisher {
    pub nats: Nats,
    /// The state database (read-only here).
    pub db: PathBuf,
}

impl LogPublisher {
    /// Runs until `cancel`: publishes what the log gained, then waits a
    /// second (or, failing, the retry pause) and looks again.
    pub async fn run(self, cancel: CancellationToken) {
        let mut cursor: Option<i64> = None;
        let mut failures = 0u32;
        loop {
            match self.pass(&mut cursor).await {
                Ok(more) => {
                    if failures > 0 {
                        tracing::info!(node = %self.nats.cfg.node, "publishing the exchange log to the cluster again");
                    }
                    failures = 0;
                    if more {
                        continue;
                    }
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(node = %self.nats.cfg.node, error = %e, "cannot publish exchange-log entries to the cluster; they go when it answers");
                    }
                    failures += 1;
                    // Read the cursor back from the stream next time.
                    cursor = None;
                }
            }
            let wait = match failures {
                0 => Duration::from_secs(1),
                n => super::pause(n - 1),
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass; whether a full pass was read (more may wait).
    async fn pass(&self, cursor: &mut Option<i64>) -> Result<bool, ClusterError> {
        let subject = subject(&self.nats.cfg.node);
        let after = match *cursor {
            Some(c) => c,
            None => {
                let c = last_published(&self.nats, &subject).await?;
                *cursor = Some(c);
                c
            }
        };
        let db = self.db.clone();
        let entries = tokio::task::spawn_blocking(move || read_after(&db, after))
            .await?
            .map_err(ClusterError::state)?;
        for (seq, line) in &entries {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                super::header::MSG_ID,
                format!("{}.{seq}", self.nats.cfg.node).as_str(),
            );
            headers.insert(SEQ, seq.to_string().as_str());
            self.nats
                .js
                .publish_with_headers(subject.clone(), headers, line.clone().into())
                .await
                .map_err(ClusterError::js)?
                .await
                .map_err(ClusterError::js)?;
            *cursor = Some(*seq);
        }
        Ok(entries.len() == PASS)
    }
}

/// The seq of the last entry this node published (0 for none).
async fn last_published(nats: &Nats, subject: &str) -> Result<i64, ClusterError> {
    let stream = nats.log_stream().await?;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => Ok(m
            .headers
            .get(SEQ)
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or(0)),
        Err(e)
            if e.kind()
                == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            Ok(0)
        }
        Err(e) => Err(ClusterError::js(e)),
    }
}

/// Up to [`PASS`] entries after `after`, each as its `audit show --json`
/// line.
fn read_after(
    db: &std::path::Path,
    after: i64,
) -> Result<Vec<(i64, String)>, crate::state::StoreError> {
    let conn = crate::state::open_read_only(db)?;
    let mut out = Vec::new();
    crate::state::entries::each_row::<crate::state::StoreError>(&conn, Some(after), |r| {
        let e = StoredEntry::from_row(r)?;
        let line = serde_json::to_string(&e).expect("entries serialise");
        out.push((e.seq, line));
        Ok(match out.len() >= PASS {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        })
    })?;
    Ok(out)
}

/// Every entry in the cluster's log, in stream order (each node's in its
/// seq order), as `(node, line)` (`fepd audit show --cluster`).
pub async fn each(nats: &Nats, mut f: impl FnMut(&str, &str)) -> Result<(), ClusterError> {
    let mut stream = nats.log_stream().await?;
    let info = stream.info().await.map_err(ClusterError::js)?.state.clone();
    if info.messages == 0 {
        return Ok(());
    }
    for seq in info.first_sequence..=info.last_sequence {
        let m = match stream.get_raw_message(seq).await {
            Ok(m) => m,
            // A deleted message leaves a hole.
            Err(_) => continue,
        };
        f(node_of(&m.subject), &String::from_utf8_lossy(&m.payload));
    }
    Ok(())
}

/// The messages [`newest`] looks at, at most, to find its entries (one
/// request each): a node filter on a long log shows what this window
/// holds; `fepd audit show --cluster` reads every entry.
pub const NEWEST_SCAN: u64 = 5_000;

/// The last `n` entries of the cluster's log, newest first, as `(node,
/// line)` — of `node` only when given —, among the last [`NEWEST_SCAN`]
/// messages of the stream (the console's 集群 page).
pub async fn newest(
    nats: &Nats,
    n: usize,
    node: Option<&str>,
) -> Result<Vec<(String, String)>, ClusterError> {
    let mut stream = nats.log_stream().await?;
    let info = stream.info().await.map_err(ClusterError::js)?.state.clone();
    let mut out = Vec::new();
    if info.messages == 0 {
        return Ok(out);
    }
    let floor = info
        .first_sequence
        .max(info.last_sequence.saturating_sub(NEWEST_SCAN - 1));
    let mut seq = info.last_sequence;
    while seq >= floor && seq > 0 && out.len() < n {
        // A deleted message leaves a hole.
        if let Ok(m) = stream.get_raw_message(seq).await {
            let name = node_of(&m.subject);
            if node.is_none_or(|n| n == name) {
                out.push((name.to_string(), String::from_utf8_lossy(&m.payload).into()));
            }
        }
        seq -= 1;
    }
    Ok(out)
}

/// Each node's entries as the stream holds them, re-read as the exact
/// lines the node published (`StoredEntry::from_archive_line`), in seq
/// order: what [`verify_node`] walks.
pub type ByNode = std::collections::BTreeMap<String, Vec<Result<StoredEntry, String>>>;

/// Every node's entries, read once through [`each`] (`fepd audit verify
/// --cluster` and the console's 链校验).
pub async fn by_node(nats: &Nats) -> Result<ByNode, ClusterError> {
    let mut nodes = ByNode::new();
    each(nats, |node, line| {
        let e = StoredEntry::from_archive_line(line);
        nodes.entry(node.to_string()).or_default().push(e);
    })
    .await?;
    Ok(nodes)
}

/// One node's published entries walked as that node's own chain
/// (`state::log::Chain`, as `fepd audit verify` walks an archive): how
/// many and its head, or where it first breaks.
pub fn verify_node(
    entries: &[Result<StoredEntry, String>],
) -> Result<(i64, crate::state::log::Head), String> {
    let entries = entries
        .iter()
        .map(|e| e.as_ref().map_err(String::clone))
        .collect::<Result<Vec<_>, _>>()?;
    let mut chain = crate::state::log::Chain::new(entries.iter().filter_map(|e| e.pruned_head()));
    for e in &entries {
        chain.feed(e).map_err(|b| b.to_string())?;
    }
    let head = chain.last().cloned().ok_or("no entry")?;
    Ok((chain.count(), head))
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_node_has_its_subject() {
        assert_eq!(super::subject("city-01"), "fepd.log.city-01");
        assert_eq!(super::node_of(&super::subject("city-01")), "city-01");
    }
}
