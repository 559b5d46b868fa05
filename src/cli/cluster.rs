//! The commands that read the cluster's servers rather than the state
//! database.
//!
//! `fepd status --cluster`: the fleet view (docs/cluster.md "Fleet
//! view"). Reads every node's last status from the key-value bucket
//! `FEPD_NODES` on the servers of `[cluster] nats` and shows each node as
//! running, stopped (a clean stop) or stale (no status for three of its
//! heartbeats). Refuses, with exit code 1, a config without `[cluster]`;
//! fails, with exit code 3 and the servers named, when none answers. A
//! stale node is a finding: the list is printed, and the exit code is 1.
//!
//! `fepd audit show --cluster`: every node's exchange-log entries as the
//! stream `FEPD_LOG` holds them, one JSON line each, `{"node", "entry"}`
//! (the entry as `fepd audit show --json` prints it on its node).

use std::io::Write;

use serde::Serialize;

use crate::cli::Exit;
use crate::cluster::fleet::{NodeState, NodeStatus};
use crate::config::Config;

/// One node in `--json`: its entry, its state and the entry's age.
#[derive(Serialize)]
struct Row<'a> {
    state: NodeState,
    age_secs: i64,
    #[serde(flatten)]
    entry: &'a NodeStatus,
}

/// Runs `read` against the cluster of `cfg`, or says why it cannot: no
/// `[cluster]` (exit 1), no server answering (exit 3). `what` names the
/// command in the message.
fn with_cluster<T, F>(cfg: &Config, what: &str, read: F) -> anyhow::Result<Result<T, Exit>>
where
    F: AsyncFnOnce(&crate::cluster::Nats) -> Result<T, crate::cluster::ClusterError>,
{
    let Some(c) = &cfg.cluster else {
        eprintln!(
            "{what}: this config has no [cluster] section; this fepd is a single host (`fepd status` shows it) / 配置中没有 [cluster] 段，本机不是集群节点"
        );
        return Ok(Err(Exit::Findings));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Every server tried once, each within request_timeout_secs; reading
    // may take longer for a long log.
    let res = rt.block_on(async {
        let nats = crate::cluster::Nats::connect_within(c)
            .await
            .map_err(|e| e.to_string())?;
        read(&nats).await.map_err(|e| e.to_string())
    });
    match res {
        Ok(v) => Ok(Ok(v)),
        Err(e) => {
            eprintln!(
                "{what}: cannot reach the cluster at {} ({e}) / 无法连接集群服务器",
                c.servers_shown()
            );
            Ok(Err(Exit::Failed))
        }
    }
}

/// `fepd audit show --cluster`.
pub fn log(cfg: &Config) -> anyhow::Result<Exit> {
    let out = std::io::stdout();
    let read = with_cluster(cfg, "fepd audit show --cluster", async |nats| {
        let mut out = out.lock();
        crate::cluster::logpub::each(nats, |node, line| {
            let entry = serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|_| serde_json::Value::String(line.to_string()));
            let _ = writeln!(out, "{}", serde_json::json!({"node": node, "entry": entry}));
        })
        .await
    })?;
    Ok(match read {
        Ok(()) => Exit::Ok,
        Err(x) => x,
    })
}

/// `fepd audit verify --cluster`: each node's entries, as the stream
/// `FEPD_LOG` holds them, re-read as the exact lines the node published
/// and walked as that node's own chain (`state::log::Chain`, as `fepd
/// audit verify` walks an archive). One line per node; exit 1 when a
/// chain is broken.
pub fn verify(cfg: &Config) -> anyhow::Result<Exit> {
    use crate::cluster::logpub;
    let read = with_cluster(cfg, "fepd audit verify --cluster", async |nats| {
        logpub::by_node(nats).await
    })?;
    let nodes = match read {
        Ok(n) => n,
        Err(x) => return Ok(x),
    };
    if nodes.is_empty() {
        println!(
            "cluster: no node has published its exchange log yet (集群中尚无节点发布交换日志)"
        );
    }
    let mut broken = false;
    for (node, entries) in &nodes {
        match logpub::verify_node(entries) {
            Ok((n, head)) => println!(
                "{node}: chain intact (链完整): {n} entries, head seq {} hash {}",
                head.seq, head.hash
            ),
            Err(why) => {
                broken = true;
                println!("{node}: CHAIN BROKEN (链已损坏): {why}");
            }
        }
    }
    Ok(if broken { Exit::Findings } else { Exit::Ok })
}

/// `fepd status --cluster [--json]`.
pub fn status(cfg: &Config, json: bool) -> anyhow::Result<Exit> {
    let entries = match with_cluster(cfg, "fepd status --cluster", async |nats| {
        crate::cluster::fleet::read_all(nats).await
    })? {
        Ok(e) => e,
        Err(x) => return Ok(x),
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let rows: Vec<Row> = entries
        .iter()
        .map(|e| Row {
            state: e.state(now_ms),
            age_secs: ((now_ms - e.updated_ms).max(0)) / 1000,
            entry: e,
        })
        .collect();
    // A stale node is something wrong: exit 1 (README, "Exit codes").
    let exit = match rows.iter().any(|r| r.state == NodeState::Stale) {
        true => Exit::Findings,
        false => Exit::Ok,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(exit);
    }
    if rows.is_empty() {
        println!("cluster: no node has published its status yet (集群中尚无节点上报状态)");
        return Ok(Exit::Ok);
    }
    println!(
        "{:<16} {:<8} {:>8} {:>9} {:<25} {:>6}  {:<8} alerts",
        "node", "state", "backlog", "records", "last delivery", "parked", "age"
    );
    for r in &rows {
        let e = r.entry;
        let state = match r.state {
            NodeState::Running => "running",
            NodeState::Stopped => "stopped",
            NodeState::Stale => "STALE",
        };
        println!(
            "{:<16} {:<8} {:>8} {:>9} {:<25} {:>6}  {:<8} {}",
            e.node,
            state,
            e.backlog_batches,
            e.backlog_records,
            e.last_delivery.as_deref().unwrap_or("-"),
            e.parked,
            super::status::duration(r.age_secs as u64),
            match (e.alerts.is_empty(), e.intake_paused) {
                (true, false) => "-".to_string(),
                (_, true) => format!("intake paused (暂停接收) {}", e.alerts.join(",")),
                (false, false) => e.alerts.join(","),
            }
        );
    }
    Ok(exit)
}
