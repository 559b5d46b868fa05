//! The alert messages, in Chinese: what happened, since when, what it
//! affects, what to do — with the section of the operations manual
//! (docs/zh/安装与运维手册.md §10) — and never a record's values or a
//! secret. One rendering for every channel; each channel only shapes it.

use chrono::{DateTime, FixedOffset};

use super::episodes::Step;
use super::triggers::{Condition, Kind};

/// Where the manual explains every alert (docs/zh/安装与运维手册.md §10).
pub const MANUAL: &str = "docs/zh/安装与运维手册.md#10-告警";

/// How urgent a message is (syslog severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Critical,
    Warning,
    Notice,
    Info,
}

impl Level {
    /// The RFC 5424 severity.
    pub fn severity(self) -> u8 {
        match self {
            Level::Critical => 2,
            Level::Warning => 4,
            Level::Notice => 5,
            Level::Info => 6,
        }
    }
}

/// One message for the channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `raised`, `repeated`, `resolved` or `heartbeat`.
    pub state: &'static str,
    /// The alert kind (`batch_parked`…), or `heartbeat`.
    pub kind: &'static str,
    pub subject: String,
    pub level: Level,
    /// One line: 【fepd 告警】… or 【fepd 恢复】….
    pub title: String,
    /// The lines of the message, plain text.
    pub lines: Vec<String>,
}

impl Message {
    /// The lines joined for a plain-text body.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// The Chinese name of the alert kind `kind` (`batch_parked`…), as its
/// messages title it.
pub fn kind_title(kind: &str) -> Option<&'static str> {
    Kind::parse(kind).map(|k| meaning(k).0)
}

/// What an alert affects and what to do about it.
fn meaning(kind: Kind) -> (&'static str, &'static str, &'static str) {
    match kind {
        Kind::BatchParked => (
            "批次被搁置",
            "搁置批次中的记录没有送达资源库，也不会自动重发",
            "用 fepd batches list --state parked 查看原因，修正后执行 fepd batches retry",
        ),
        Kind::RouteStalled => (
            "投递停滞",
            "该路由的数据没有送达资源库，积压在增加",
            "查看 fepd status 中该路由的 last_error，检查网络与资源库状态；拉取模式下确认资源库在收取投递目录",
        ),
        Kind::OldestPending => (
            "待投递批次等待过久",
            "资源库收到的数据比办理时间晚",
            "查看 fepd status 的 routes 与 last_error；拉取模式下确认资源库的采集程序在运行",
        ),
        Kind::IntakePaused => (
            "接收已暂停",
            "收件箱中的文件暂不处理，数据专员放入的文件会等待",
            "磁盘不足时清理空间（见 [retention]）；积压过高时先排除投递故障，积压回落后自动恢复",
        ),
        Kind::CredentialsRefused => (
            "资源库拒绝凭据",
            "推送模式下所有批次暂停投递，前置机按退避间隔重试",
            "核对 [sink.http] 的 client_id 与密钥（或 app_id、sys_code），更新后执行 systemctl reload fepd",
        ),
        Kind::CredentialExpiry => (
            "资源库凭据即将过期",
            "过期后资源库会拒绝前置机的凭据，推送停止",
            "向资源库管理方申请新凭据，更新密钥与 credential_expires 后执行 systemctl reload fepd",
        ),
        Kind::SqlSource => (
            "前置库采集异常",
            "该数据集的前置库数据没有采进来，水位停在原处；恢复后从水位接着采，不丢不重",
            "查看 fepd status 中该数据源的 last error：连接、密码（password_file / password_env）、表或列是否变化，数据库是否可用",
        ),
        Kind::CanaryFailed => (
            "探测批次失败",
            "定时向该路由发送的零记录探测批次没有被资源库接受：真实批次很可能也送不进去",
            "执行 fepd selftest 逐项检查（凭据、令牌、路由、探测批次），对照资源库的答复排查网络、凭据或路由配置",
        ),
        Kind::Unbalanced => (
            "对账不平",
            "当天的记录去向无法全部说清（收到、拒收、跳过、封装、送达之间不相等），可能有记录丢失或状态库被改动",
            "执行 fepd audit report --day 日期 查看明细，fepd doctor 检查状态库与磁盘是否一致，保全现场后联系维护方",
        ),
        Kind::LogBroken => (
            "交换日志校验失败",
            "交换日志有条目在 fepd 之外被改动、删除或插入，审计无法证明这段交换记录；数据照常收发",
            "立即保全现场（fepd state backup 备份状态库，勿修改），执行 fepd audit verify 查看断点并与资源库确认的链头比对（--witness），通知审计人员（见审计员指南）",
        ),
    }
}

/// The message for one step of an episode. `host` and `sender` say which
/// exchange host speaks; `at` is now.
pub fn alert(step: &Step, host: &str, sender: &str, at: DateTime<FixedOffset>) -> Message {
    let (state, c): (&'static str, &Condition) = match step {
        Step::Raised(c) => ("raised", c),
        Step::Repeated(c) => ("repeated", c),
        Step::Resolved(c) => ("resolved", c),
    };
    let (name, affects, action) = meaning(c.kind);
    let since = c.since.map(stamp).unwrap_or_else(|| "-".into());
    let whence = format!("主机：{host}（前置机 {sender}）");
    let (title, level, lines) = if state == "resolved" {
        let title = format!("【fepd 恢复】{name}：{}", c.subject);
        let lines = vec![
            title.clone(),
            whence,
            format!("已恢复：{}", c.what),
            format!("开始时间：{since}"),
            format!("恢复时间：{}", stamp(at)),
        ];
        (title, Level::Notice, lines)
    } else {
        let again = if state == "repeated" {
            "（仍未恢复）"
        } else {
            ""
        };
        let title = format!("【fepd 告警】{name}：{}{again}", c.subject);
        let lines = vec![
            title.clone(),
            whence,
            format!("发生了什么：{}", c.what),
            format!("开始时间：{since}"),
            format!("影响：{affects}"),
            format!("处理：{action}（见 {MANUAL}）"),
        ];
        let level = if c.kind.critical() {
            Level::Critical
        } else {
            Level::Warning
        };
        (title, level, lines)
    };
    Message {
        state,
        kind: c.kind.as_str(),
        subject: c.subject.clone(),
        level,
        title,
        lines,
    }
}

/// The heartbeat: fepd is alive, with the day's counts per dataset.
pub fn heartbeat(
    host: &str,
    sender: &str,
    at: DateTime<FixedOffset>,
    counts: &[crate::state::figures::DayCounts],
) -> Message {
    let title = format!("【fepd 运行正常】{host}");
    let mut lines = vec![
        title.clone(),
        format!("主机：{host}（前置机 {sender}），时间：{}", stamp(at)),
        "今日计数（接收 / 封批 / 送达，记录条数）：".to_string(),
    ];
    if counts.is_empty() {
        lines.push("今日尚无数据".to_string());
    }
    for c in counts {
        lines.push(format!(
            "{}：{} / {} / {}",
            c.dataset, c.received, c.sealed, c.delivered
        ));
    }
    Message {
        state: "heartbeat",
        kind: "heartbeat",
        subject: host.to_string(),
        level: Level::Info,
        title,
        lines,
    }
}

fn stamp(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_says_what_since_when_affects_and_action() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00+08:00").unwrap();
        let c = Condition {
            kind: Kind::BatchParked,
            subject: "case_accept".into(),
            since: Some(at),
            what: "数据集 case_accept 有 1 个批次被搁置".into(),
        };
        let m = alert(&Step::Raised(c.clone()), "fep1", "230000-zwfw", at);
        assert_eq!(m.title, "【fepd 告警】批次被搁置：case_accept");
        let t = m.text();
        for part in [
            "发生了什么：",
            "开始时间：2026-12-01 10:00:00",
            "影响：",
            "处理：",
            MANUAL,
        ] {
            assert!(t.contains(part), "{part} in {t}");
        }
        let r = alert(&Step::Resolved(c), "fep1", "230000-zwfw", at);
        assert!(r.title.starts_with("【fepd 恢复】"));
        assert_eq!(r.level, Level::Notice);
    }
}
