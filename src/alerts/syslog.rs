//! The syslog channel: one RFC 5424 line per message, facility `daemon`,
//! severity by the alert's level, sent to `unix:/dev/log` (a datagram),
//! `udp://HOST:PORT` or `tcp://HOST:PORT` (octet-counting framing, RFC
//! 6587 §3.4.1). The formatter is small and tested here.

use chrono::{DateTime, FixedOffset};
use tokio::io::AsyncWriteExt;

use super::message::Message;

/// `daemon` (RFC 5424 §6.2.1).
const FACILITY_DAEMON: u8 = 3;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(String),
    Udp(String),
    Tcp(String),
}

impl Target {
    /// Parses `unix:/PATH`, `udp://HOST:PORT`, `tcp://HOST:PORT`
    /// (`config::Alerts::problems` refuses anything else).
    pub fn parse(address: &str) -> Option<Target> {
        if let Some(p) = address.strip_prefix("unix:") {
            return Some(Target::Unix(p.to_string()));
        }
        if let Some(a) = address.strip_prefix("udp://") {
            return Some(Target::Udp(a.to_string()));
        }
        address
            .strip_prefix("tcp://")
            .map(|a| Target::Tcp(a.to_string()))
    }
}

/// The RFC 5424 line: `<PRI>1 TIMESTAMP HOSTNAME fepd PROCID MSGID - MSG`,
/// MSGID the alert kind, MSG UTF-8 with its BOM and no line breaks.
pub fn line(m: &Message, host: &str, pid: u32, at: DateTime<FixedOffset>) -> String {
    let pri = FACILITY_DAEMON * 8 + m.level.severity();
    let field = |s: &str, max: usize| -> String {
        let s: String = s
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(max)
            .collect();
        if s.is_empty() { "-".into() } else { s }
    };
    let msg = m.lines.join(" | ").replace(['\n', '\r'], " ");
    format!(
        "<{pri}>1 {} {} fepd {pid} {} - \u{feff}{msg}",
        at.format("%Y-%m-%dT%H:%M:%S%.3f%:z"),
        field(host, 255),
        field(m.kind, 32),
    )
}

/// Sends one line.
pub async fn send(target: &Target, line: &str) -> std::io::Result<()> {
    match target {
        Target::Unix(path) => {
            let s = tokio::net::UnixDatagram::unbound()?;
            s.send_to(line.as_bytes(), path).await?;
        }
        Target::Udp(addr) => {
            let to = tokio::net::lookup_host(addr.as_str())
                .await?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))?;
            let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let s = tokio::net::UdpSocket::bind(bind).await?;
            s.send_to(line.as_bytes(), to).await?;
        }
        Target::Tcp(addr) => {
            let mut s = tokio::net::TcpStream::connect(addr.as_str()).await?;
            s.write_all(framed(line).as_bytes()).await?;
            s.shutdown().await?;
        }
    }
    Ok(())
}

/// Octet-counting framing (RFC 6587 §3.4.1): `LEN SP MSG`.
fn framed(line: &str) -> String {
    format!("{} {line}", line.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::message::Level;

    #[test]
    fn lines_follow_rfc_5424() {
        let m = Message {
            state: "raised",
            kind: "batch_parked",
            subject: "case_accept".into(),
            level: Level::Warning,
            title: "t".into(),
            lines: vec!["【fepd 告警】批次被搁置".into(), "第二行".into()],
        };
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00+08:00").unwrap();
        let l = line(&m, "fep 1", 42, at);
        assert_eq!(
            l,
            "<28>1 2026-12-01T10:00:00.000+08:00 fep1 fepd 42 batch_parked - \u{feff}【fepd 告警】批次被搁置 | 第二行"
        );
        let crit = Message {
            level: Level::Critical,
            ..m
        };
        assert!(line(&crit, "", 1, at).starts_with("<26>1 "));
        assert!(line(&crit, "", 1, at).contains(" - fepd 1 "));
        assert_eq!(framed("abc"), "3 abc");
        assert_eq!(framed("告"), "3 告");
        assert_eq!(
            Target::parse("tcp://127.0.0.1:514"),
            Some(Target::Tcp("127.0.0.1:514".into()))
        );
        assert_eq!(
            Target::parse("unix:/dev/log"),
            Some(Target::Unix("/dev/log".into()))
        );
    }
}
