//! 集群 (cluster mode, docs/cluster.md "Fleet view"): what `fepd status
//! --cluster`, `fepd audit show --cluster` and `fepd audit verify
//! --cluster` show, on one page — every node with its state (the same
//! `NodeStatus::state`), the newest entries of the cluster's exchange log
//! (of one node with `?node=`), and, asked for with `?verify=1`, each
//! node's chain as the cluster holds it (`logpub::verify_node`).
//!
//! The servers are read by `cluster::view` on the async side, every wait
//! bounded: with none answering, the page says so and names them. The
//! chain check's hashing runs on the console's own threads (`pool`). A
//! host without `[cluster]` answers with a page saying it is no cluster
//! node.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::Console;
use super::access::Action;
use super::html::{page, respond};
use super::pages::{age, entry_cells, entry_head};
use crate::cluster::Nats;
use crate::cluster::fleet::{NodeState, NodeStatus};
use crate::cluster::view::{self, Ask, Published, View};
use crate::state::log::Head;

/// Each node's chain: its entries and head, or where it breaks.
type Chains = Vec<(String, Result<(i64, Head), String>)>;

/// The newest entries the page shows.
const LOG_ROWS: usize = 200;

#[derive(serde::Deserialize, Default)]
pub struct ClusterQuery {
    /// Entries of this node only.
    #[serde(default)]
    node: String,
    /// `1`: read every node's entries and verify each chain.
    #[serde(default)]
    verify: String,
}

pub async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<ClusterQuery>,
) -> Response {
    let who = match c.allowed(&headers, Action::Cluster).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let Some(cfg) = c.cfg().cluster.clone() else {
        let body = html! {
            p.bad { "本机不是集群节点：配置中没有 [cluster] 段。" }
            p { "本机的运行状况见" a href="/" { "总览" } "；集群模式的配置见 docs/cluster.md。" }
        };
        return respond(StatusCode::OK, page("集群", Some(&who), body));
    };
    let node = Some(q.node.trim().to_string()).filter(|n| !n.is_empty());
    let ask = Ask {
        node: node.clone(),
        last: LOG_ROWS,
        verify: q.verify == "1",
    };
    let view = match view::read(&cfg, &ask).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "console: the cluster's servers do not answer");
            let body = html! {
                p.bad {
                    "无法连接集群服务器（" (cfg.servers_shown()) "）：在 "
                    (Nats::reach_limit(&cfg).as_secs()) " 秒内未能从任何服务器读到集群状态。节点列表、集群交换日志与链校验暂时无法显示。"
                }
                p.note { "原因（reason）：" (e) }
                p.note { "本机的运行状况见" a href="/" { "总览" } "；服务器恢复后刷新本页。" }
            };
            return respond(StatusCode::OK, page("集群", Some(&who), body));
        }
    };
    let View { nodes, log, chains } = view;
    // Hashing every entry is work for the console's threads, not the
    // async ones.
    let chains = match chains {
        None => None,
        Some(Err(why)) => Some(Err(why)),
        Some(Ok(by_node)) => Some(Ok(c
            .blocking(move |_| {
                by_node
                    .iter()
                    .map(|(n, e)| (n.clone(), crate::cluster::logpub::verify_node(e)))
                    .collect::<Vec<_>>()
            })
            .await)),
    };
    let body = html! {
        h2 { "节点" }
        (fleet(&nodes))
        h2 { "集群交换日志" }
        (entries(node.as_deref(), &nodes, &log))
        h2 { "链校验" }
        (verify(node.as_deref(), chains))
        p.note { "节点 " (cfg.node) " 读取自 " (cfg.servers_shown()) "，更新于 "
                 (chrono::Utc::now().with_timezone(&c.cfg().tz()).format("%H:%M:%S")) }
    };
    respond(StatusCode::OK, page("集群", Some(&who), body))
}

/// The fleet, as `fepd status --cluster` lists it; a stale node in red.
fn fleet(nodes: &[NodeStatus]) -> Markup {
    let now_ms = chrono::Utc::now().timestamp_millis();
    html! {
        @if nodes.is_empty() { p.note { "集群中尚无节点上报状态。" } }
        @else {
            table {
                tr { th { "节点" } th { "主机" } th { "状态" } th { "待交接批次" } th { "待交接记录" }
                     th { "最近送达" } th { "搁置" } th { "状态上报于" } th { "告警" } th { "收件" } }
                @for n in nodes {
                    @let state = n.state(now_ms);
                    tr class=[(state == NodeState::Stale).then_some("bad")] {
                        td { (n.node) } td { (n.host) }
                        td { @match state {
                            NodeState::Running => span.ok { "运行中 running" },
                            NodeState::Stopped => span { "已停止 stopped" },
                            NodeState::Stale => strong { "失联 STALE" },
                        } }
                        td { (n.backlog_batches) } td { (n.backlog_records) }
                        td { (n.last_delivery.as_deref().unwrap_or("—")) }
                        td { @if n.parked > 0 { span.bad { (n.parked) } } @else { "0" } }
                        td { (age(((now_ms - n.updated_ms).max(0)) / 1000)) "前" }
                        td { @if n.alerts.is_empty() { "—" } @else {
                            (n.alerts.iter().map(|k| crate::alerts::message::kind_title(k).unwrap_or(k)).collect::<Vec<_>>().join("、"))
                        } }
                        td { @if n.intake_paused { span.bad { "已暂停" } } @else { "正常" } }
                    }
                }
            }
            p.note { "三个心跳周期没有上报的节点显示为失联（被杀、挂起或与集群断开）；正常停止的节点显示为已停止。" }
        }
    }
}

/// The newest entries, newest first, each with its node.
fn entries(
    node: Option<&str>,
    nodes: &[NodeStatus],
    log: &Result<Vec<Published>, String>,
) -> Markup {
    html! {
        form method="get" action="/cluster" {
            "节点 "
            select name="node" {
                option value="" selected[node.is_none()] { "全部" }
                @for n in nodes { option value=(n.node) selected[node == Some(n.node.as_str())] { (n.node) } }
            }
            " " button { "查看" }
        }
        @match log {
            Err(why) => p.bad { "暂时无法读取集群交换日志：" (why) },
            Ok(rows) if rows.is_empty() => p.note { "集群交换日志中还没有条目。" },
            Ok(rows) => {
                table {
                    tr { th { "节点" } (entry_head()) }
                    @for (n, e) in rows {
                        tr { td { (n) } @match e {
                            Ok(e) => (entry_cells(e)),
                            Err(why) => td.bad colspan="8" { "该条无法读取：" (why) },
                        } }
                    }
                }
                @if rows.len() == LOG_ROWS {
                    p.note { "只显示最近 " (LOG_ROWS) " 条；全部条目用 fepd audit show --cluster 查看。" }
                }
            }
        }
    }
}

/// Each node's chain, or the button that asks for the check.
fn verify(node: Option<&str>, chains: Option<Result<Chains, String>>) -> Markup {
    html! {
        @match chains {
            None => form method="get" action="/cluster" {
                @if let Some(n) = node { input type="hidden" name="node" value=(n); }
                input type="hidden" name="verify" value="1";
                button { "校验各节点哈希链" }
                span.note { "（读取集群中的全部日志条目并逐条重算哈希，与 fepd audit verify --cluster 相同；日志很长时需要一些时间）" }
            },
            Some(Err(why)) => p.bad { "暂时无法读取集群交换日志：" (why) },
            Some(Ok(rows)) if rows.is_empty() => p.note { "集群中尚无节点发布交换日志。" },
            Some(Ok(rows)) => table {
                tr { th { "节点" } th { "结果" } }
                @for (n, r) in &rows {
                    tr { td { (n) } @match r {
                        Ok((count, head)) => td.ok {
                            "链完整（chain intact）：" (count) " 条，最新序号 " (head.seq) "，哈希 " code { (head.hash) }
                        },
                        Err(why) => td.bad { "链已损坏（CHAIN BROKEN）：" (why) },
                    } }
                }
            },
        }
    }
}
