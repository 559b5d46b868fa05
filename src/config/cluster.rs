//! `[cluster]`: several fepd nodes sharing one NATS JetStream cluster
//! (docs/cluster.md). Absent, fepd is a single host and no NATS code runs.
//! Its problems are listed with the rest by `fepd check-config`.

use serde::Deserialize;

/// `[cluster]` (docs/cluster.md): where the JetStream servers are, this
/// node's name, and the replication and timing of what the nodes share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The JetStream servers (`nats://host:4222`), any of which will do;
    /// the client moves to another when one goes away.
    pub nats: Vec<String>,
    /// This node's name, unique in the cluster: letters, digits, `_`, `-`.
    pub node: String,
    /// Copies of every stream and bucket the servers keep (1..=5; 3 keeps
    /// everything through the loss of one server).
    #[serde(default = "defaults::stream_replicas")]
    pub stream_replicas: usize,
    /// A message a node took but has not answered for this long (its push
    /// still running is kept alive by progress acks; a node that died is
    /// not) goes to another node.
    #[serde(default = "defaults::ack_wait_secs")]
    pub ack_wait_secs: u64,
    /// Longest wait for one request to the servers (a publish's
    /// acknowledgement, a fetch) before it is counted as failed.
    #[serde(default = "defaults::request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Shared spool (docs/cluster.md "Shared spool"): a claimed file's
    /// lease lasts this long unrenewed; another node takes over a file in
    /// `work/` it has seen without a lease for as long.
    #[serde(default = "defaults::lease_secs")]
    pub lease_secs: u64,
    /// The fleet view (docs/cluster.md "Fleet view"): each node puts its
    /// status in the bucket `FEPD_NODES` this often; `fepd status
    /// --cluster` calls an entry older than three of these stale.
    #[serde(default = "defaults::heartbeat_secs")]
    pub heartbeat_secs: u64,
}

mod defaults {
    pub fn stream_replicas() -> usize {
        3
    }
    pub fn ack_wait_secs() -> u64 {
        30
    }
    pub fn request_timeout_secs() -> u64 {
        5
    }
    pub fn lease_secs() -> u64 {
        30
    }
    pub fn heartbeat_secs() -> u64 {
        10
    }
}

/// Whether `s` may name a node: letters, digits, `_`, `-`, at most 64.
pub fn node_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Cluster {
    /// The servers as pages, messages and logs show them: scheme, host
    /// and port, without any `user:password@` a URL carries.
    pub fn servers_shown(&self) -> String {
        self.nats
            .iter()
            .map(|url| {
                let host = url.find("://").map_or(0, |i| i + 3);
                match url[host..].rfind('@') {
                    Some(at) => format!("{}{}", &url[..host], &url[host + at + 1..]),
                    None => url.clone(),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every problem of the section; `push` is whether the sink is push
    /// mode, which cluster mode needs.
    pub(super) fn problems(&self, push: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.nats.is_empty() {
            out.push("cluster.nats: list at least one JetStream server (nats://host:4222) / 至少填写一个 JetStream 服务器地址".into());
        }
        for url in &self.nats {
            if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                out.push(format!(
                    "cluster.nats: {url:?} must start with nats:// or tls:// / 地址须以 nats:// 或 tls:// 开头"
                ));
            }
        }
        if !node_name_ok(&self.node) {
            out.push(format!(
                "cluster.node: {:?} must be 1–64 letters, digits, _ or - / 节点名只能由字母、数字、_、- 组成",
                self.node
            ));
        }
        if !(1..=5).contains(&self.stream_replicas) {
            out.push("cluster.stream_replicas: must be 1..=5 / 副本数须为 1 到 5".into());
        }
        if self.ack_wait_secs == 0 || self.request_timeout_secs == 0 {
            out.push("cluster: ack_wait_secs and request_timeout_secs must be ≥ 1".into());
        }
        if self.heartbeat_secs == 0 {
            out.push("cluster.heartbeat_secs: must be ≥ 1 / 心跳间隔至少 1 秒".into());
        }
        if self.lease_secs < 3 {
            out.push(
                "cluster.lease_secs: must be ≥ 3 (a lease is renewed every third of it)".into(),
            );
        }
        if !push {
            out.push("cluster: cluster mode delivers by push (sink.mode = \"http\" with [sink.http]) / 集群模式须使用推送方式 (sink.mode = \"http\")".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_shown_without_their_credentials() {
        let c: Cluster = toml::from_str(
            r#"nats = ["nats://fepd:s3cret@10.0.0.1:4222", "tls://10.0.0.2:4222", "10.0.0.3"]
node = "a""#,
        )
        .unwrap();
        let shown = c.servers_shown();
        assert_eq!(shown, "nats://10.0.0.1:4222, tls://10.0.0.2:4222, 10.0.0.3");
        assert!(!shown.contains("s3cret"));
    }
}
