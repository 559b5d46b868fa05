//! 系统: version, uptime, folders, sink mode, free disk and datasets;
//! the alert channels with the last result of each (named as the alert
//! log names them, never with a URL or a secret); retention (the last
//! `retention_pass` entry, what it deleted, when the next is due); the
//! console's users. No secrets.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::access::Action;
use super::html::{page, respond};
use super::{Console, store_failed};

pub async fn show(State(c): State<Console>, headers: HeaderMap) -> Response {
    let who = match c.allowed(&headers, Action::System).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let found = c
        .blocking(|c| -> Result<_, crate::state::StoreError> {
            let conn = c.reader()?;
            let retention = crate::state::listing::last_retention(&conn)?;
            Ok((
                c.admin.report()?,
                crate::state::users::list(&conn)?,
                retention,
            ))
        })
        .await;
    let (report, users, retention) = match found {
        Ok(f) => f,
        Err(e) => return store_failed(Some(&who), &e),
    };
    let cfg = c.cfg();
    let body = html! {
        table {
            tr { th { "版本" } td { (report.daemon.version) } }
            tr { th { "进程号" } td { (report.daemon.pid.map(|p| p.to_string()).unwrap_or_default()) } }
            tr { th { "已运行" } td { (report.daemon.uptime_secs.unwrap_or(0)) " 秒" } }
            tr { th { "状态目录" } td { (cfg.state_dir.display()) } }
            tr { th { "收件目录" } td { (cfg.spool_dir.display()) } }
            tr { th { "发送方式" } td { (format!("{:?}", cfg.sink.mode)) } }
            tr { th { "可用磁盘" } td { (report.disk_free_bytes.map(|b| format!("{} MiB", b >> 20)).unwrap_or_default()) } }
            tr { th { "数据集" } td { (cfg.datasets.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join("、")) } }
        }
        p.note { "密钥与令牌不在此显示（配置中只保存其文件路径或环境变量名）。" }
        h2 { "告警渠道" }
        (channels(&c))
        h2 { "保留期限" }
        (retention_status(&c, retention))
        h2 { "控制台用户" }
        table {
            tr { th { "用户" } th { "角色" } th { "数据集" } th { "状态" } th { "最近变更" } }
            @for u in &users {
                tr { td { (u.name) }
                     td { (super::access::Role::parse(&u.role).map_or(u.role.as_str(), |r| r.title())) }
                     td { (u.datasets.join("、")) }
                     td { @if u.disabled { "已停用" } @else if u.locked_until_ms > crate::state::now_ms() { "已锁定" } @else { "正常" } }
                     td { (u.changed_at) } }
            }
        }
    };
    respond(StatusCode::OK, page("系统", Some(&who), body))
}

/// The configured alert channels, by the names the alert log uses, each
/// with its last send since the daemon started. A webhook shows its host
/// only: its path and query may carry a robot's key.
fn channels(c: &Console) -> Markup {
    let a = &c.cfg().alerts;
    let tz = c.cfg().tz();
    let host = |u: &str| {
        reqwest::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "—".into())
    };
    let mut rows: Vec<(String, String)> = Vec::new();
    for (i, w) in a.webhook.iter().enumerate() {
        rows.push((
            format!("webhook[{i}]"),
            format!("Webhook（{:?}）→ {}", w.format, host(&w.url)),
        ));
    }
    for (i, s) in a.smtp.iter().enumerate() {
        rows.push((
            format!("smtp[{i}]"),
            format!("邮件 → {}（{} 个收件人）", s.server, s.to.len()),
        ));
    }
    for (i, s) in a.syslog.iter().enumerate() {
        rows.push((format!("syslog[{i}]"), format!("syslog → {}", s.address)));
    }
    if let Some(u) = &a.heartbeat_url {
        rows.push(("heartbeat_url".into(), format!("心跳地址 → {}", host(u))));
    }
    let last = c.admin.health.alert_results.snapshot();
    html! {
        @if rows.is_empty() { p.note { "未配置告警渠道（[alerts]）。" } }
        @else {
            table {
                tr { th { "渠道" } th { "目标" } th { "最近发送" } th { "告警" } th { "结果" } }
                @for (name, what) in &rows {
                    tr {
                        td { (name) } td { (what) }
                        @match last.get(name) {
                            None => { td { "—" } td { "—" } td.note { "自启动以来未发送" } }
                            Some(l) => {
                                td { (l.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S")) }
                                td { (crate::alerts::message::kind_title(&l.kind).unwrap_or(&l.kind)) }
                                @match &l.error {
                                    None => td.ok { "成功" },
                                    Some(e) => td.bad { "失败：" (e) },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What `[retention]` keeps, the last pass (when, what it deleted) and
/// when the next is due (a pass every `interval`, the first a minute after
/// start).
fn retention_status(c: &Console, last: Option<(String, serde_json::Value)>) -> Markup {
    let k = &c.cfg().retention;
    let every = humantime::format_duration(k.interval.0).to_string();
    let n = |v: &serde_json::Value, f: &str| v[f].as_i64().unwrap_or(0);
    html! {
        table {
            tr { th { "批次报文" } td { (k.batch_bodies) } th { "记录明细" } td { (k.record_rows) } }
            tr { th { "done/ 文件" } td { (k.done_files) } th { "rejected/ 文件" } td { (k.rejected_files) } }
            tr { th { "已送达批次文件" } td { (k.delivered_files) } th { "执行间隔" } td { (every) } }
        }
        @match &last {
            None => p.note { "自状态数据库建立以来尚未执行保留清理（守护进程启动约 1 分钟后执行第一次）。" },
            Some((time, v)) => {
                p {
                    "最近一次清理：" (time) "，删除批次报文 " (n(v, "batchBodies")) " 个、记录明细 "
                    (n(v, "recordRows")) " 行、done/ 文件 " (n(v, "doneFiles")) " 个、rejected/ 文件 "
                    (n(v, "rejectedFiles")) " 个、已送达批次文件 " (n(v, "deliveredFiles")) " 个；数据库 "
                    (n(v, "dbBytes") >> 20) " MiB。"
                }
                p { "下一次：" (next_due(time, k.interval.0, c.cfg().tz())) }
            }
        }
    }
}

/// The last pass's time plus the interval, as local time text.
fn next_due(last: &str, every: std::time::Duration, tz: chrono::FixedOffset) -> String {
    match chrono::DateTime::parse_from_rfc3339(last) {
        Ok(t) => {
            let next = t + chrono::Duration::from_std(every).unwrap_or_default();
            next.with_timezone(&tz)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        }
        Err(_) => "—".into(),
    }
}
