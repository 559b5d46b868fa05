//! `[alerts]`: where alerts go (`[[alerts.webhook]]`, `[[alerts.smtp]]`,
//! `[[alerts.syslog]]`), when they fire (the trigger thresholds, each of
//! which can be switched off) and how often they repeat; and
//! `[sink.http] credential_expires`. Durations are humantime text
//! (`"10m"`, `"1h"`) or `"off"`; like every typed value they are parsed
//! once here, and a bad one is a problem `fepd check-config` lists
//! (docs/zh/安装与运维手册.md §10, the alerts section).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Deserialize;

use super::values::Checked;

/// A duration, or `"off"` (also `"0"`): the trigger or repeat is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Period(pub Option<Duration>);

impl TryFrom<String> for Period {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        if t == "off" || t == "0" {
            return Ok(Period(None));
        }
        humantime::parse_duration(t)
            .map(|d| Period((!d.is_zero()).then_some(d)))
            .map_err(|e| {
                format!("{s:?} is not a duration like \"10m\" or \"1h\", nor \"off\" ({e})")
            })
    }
}

fn every(secs: u64) -> Checked<Period> {
    Checked::Ok(Period(Some(Duration::from_secs(secs))))
}

/// `[alerts]`: the channels and the triggers (README.md, "Alerts").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alerts {
    /// How often the triggers are evaluated.
    pub interval: Checked<Period>,
    /// An alert still holding is sent again this often.
    pub repeat: Checked<Period>,
    /// A route with backlog and no delivery for this long.
    pub stall: Checked<Period>,
    /// The oldest pending batch older than this.
    pub oldest_pending: Checked<Period>,
    /// A parked batch (dead letter) raises an alert per dataset.
    pub parked: bool,
    /// Intake paused (outbox high-water mark, disk low or full).
    pub intake_paused: bool,
    /// The library refuses fepd's credentials (push mode).
    pub credentials_refused: bool,
    /// Warn this many days before `[sink.http] credential_expires` (0 = off).
    pub credential_warn_days: u32,
    /// The exchange log's hash chain is verified this often (as `fepd audit
    /// verify`); a break raises an alert.
    pub verify_log: Checked<Period>,
    /// A SQL source (前置库) whose polls fail, or that has not polled for
    /// this long ("off" = never for the second).
    pub sql_lag: Checked<Period>,
    /// At each `verify_log`, today's and yesterday's reconciliation (`fepd
    /// audit report`) must balance; an identity that fails raises an alert.
    pub reconcile: bool,
    /// Push mode: a zero-record probe batch on every route on this cron
    /// schedule (six fields, as a dataset's `schedule`; "off" = none); a
    /// route whose probe fails raises an alert until one passes.
    pub canary: String,
    /// An "alive" message with the day's counts this often (a duration, or "off").
    pub heartbeat: Checked<Period>,
    /// Also GET this URL at each heartbeat (a dead-man's-switch service).
    pub heartbeat_url: Option<String>,
    /// Longest wait for one send on one channel.
    pub send_timeout_secs: u64,
    pub webhook: Vec<Webhook>,
    pub smtp: Vec<Smtp>,
    pub syslog: Vec<Syslog>,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            interval: every(15),
            repeat: every(3600),
            stall: every(600),
            oldest_pending: every(3600),
            parked: true,
            intake_paused: true,
            credentials_refused: true,
            credential_warn_days: 7,
            verify_log: every(3600),
            sql_lag: every(1800),
            reconcile: true,
            canary: "0 0 * * * *".into(),
            heartbeat: every(86400),
            heartbeat_url: None,
            send_timeout_secs: 10,
            webhook: Vec::new(),
            smtp: Vec::new(),
            syslog: Vec::new(),
        }
    }
}

/// The message shape a webhook expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"kind","subject","state","title","text",…}`.
    #[default]
    Json,
    /// 钉钉 group robot (markdown message; signed when `secret_file` is set).
    Dingtalk,
    /// 企业微信 group robot (markdown message; the key is in the URL).
    Wecom,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// 钉钉 robot signing secret (`SEC…`), owner-readable only.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    #[default]
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub server: String,
    /// Default 25 (`none`), 587 (`starttls`) or 465 (`tls`).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The password from this environment variable instead.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The password from this systemd credential (`LoadCredential=`)
    /// instead; preferred over a file, a file over a variable.
    #[serde(default)]
    pub password_credential: Option<String>,
    /// A PEM certificate of the CA that signed the mail server's
    /// certificate (a site's own CA), trusted beside the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Smtp {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Syslog {
    /// `unix:/dev/log`, `udp://HOST:PORT` or `tcp://HOST:PORT`.
    pub address: String,
}

/// `credential_expires = "2026-12-31"` (valid through that day, in the
/// configured timezone) or an RFC 3339 time with its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Date(NaiveDate),
    Time(DateTime<FixedOffset>),
}

impl Expiry {
    /// Whole days from `today` to the last valid day (0: it ends today;
    /// negative: it has ended).
    pub fn days_left(self, now: DateTime<FixedOffset>) -> i64 {
        let last = match self {
            Expiry::Date(d) => d,
            Expiry::Time(t) => t.with_timezone(&now.timezone()).date_naive(),
        };
        let ended = match self {
            Expiry::Date(_) => false,
            Expiry::Time(t) => t <= now,
        };
        let days = (last - now.date_naive()).num_days();
        if ended && days == 0 { -1 } else { days }
    }
}

impl TryFrom<String> for Expiry {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
            return Ok(Expiry::Date(d));
        }
        DateTime::parse_from_rfc3339(s.trim())
            .map(Expiry::Time)
            .map_err(|_| {
                format!("{s:?} is not a date (2026-12-31) nor an RFC 3339 time with offset")
            })
    }
}

impl Alerts {
    /// Problems that need no file system, one line each.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, v) in [
            ("interval", &self.interval),
            ("repeat", &self.repeat),
            ("stall", &self.stall),
            ("oldest_pending", &self.oldest_pending),
            ("heartbeat", &self.heartbeat),
            ("verify_log", &self.verify_log),
            ("sql_lag", &self.sql_lag),
        ] {
            if let Some(why) = v.problem() {
                out.push(format!("alerts.{key}: {why}"));
            }
        }
        if self.canary != "off"
            && let Err(why) = super::Schedule::try_from(self.canary.clone())
        {
            out.push(format!("alerts.canary: {why} (or \"off\")"));
        }
        if self.interval.ok().is_some_and(|p| p.0.is_none()) {
            out.push(
                "alerts.interval: must be a duration (the triggers' evaluation period)".into(),
            );
        }
        if self.send_timeout_secs == 0 {
            out.push("alerts.send_timeout_secs: must be ≥ 1".into());
        }
        let http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        if let Some(u) = &self.heartbeat_url
            && !http(u)
        {
            out.push("alerts.heartbeat_url: must start with http:// or https://".into());
        }
        for (i, w) in self.webhook.iter().enumerate() {
            if !http(&w.url) {
                out.push(format!(
                    "alerts.webhook[{i}].url: must start with http:// or https://"
                ));
            }
            if w.secret_file.is_some() && w.format != WebhookFormat::Dingtalk {
                out.push(format!(
                    "alerts.webhook[{i}].secret_file: only 钉钉 robots (format = \"dingtalk\") sign their messages"
                ));
            }
        }
        for (i, s) in self.smtp.iter().enumerate() {
            if s.server.trim().is_empty() {
                out.push(format!("alerts.smtp[{i}].server: must not be empty"));
            }
            if s.to.is_empty() {
                out.push(format!("alerts.smtp[{i}].to: needs at least one address"));
            }
            for a in std::iter::once(&s.from).chain(&s.to) {
                if a.parse::<lettre::Address>().is_err() {
                    out.push(format!("alerts.smtp[{i}]: {a:?} is not a mail address"));
                }
            }
            if s.username.is_some() && s.tls == SmtpTls::None {
                out.push(format!(
                    "alerts.smtp[{i}]: a login needs tls = \"starttls\" or \"tls\" (with \"none\" the password would cross the network in clear)"
                ));
            }
            if s.ca_file.is_some() && s.tls == SmtpTls::None {
                out.push(format!(
                    "alerts.smtp[{i}]: ca_file needs tls = \"starttls\" or \"tls\""
                ));
            }
            let password = s.password_file.is_some()
                || s.password_env.is_some()
                || s.password_credential.is_some();
            if s.username.is_some() != password {
                out.push(format!(
                    "alerts.smtp[{i}]: username and a password (password_credential, password_file or password_env) go together"
                ));
            }
            if let Some(c) = &s.password_credential
                && !crate::secrets::credential_name_ok(c)
            {
                out.push(format!(
                    "alerts.smtp[{i}].password_credential: {c:?} is not a credential name (a plain file name)"
                ));
            }
        }
        for (i, s) in self.syslog.iter().enumerate() {
            let a = s.address.as_str();
            let ok = a.strip_prefix("unix:").is_some_and(|p| p.starts_with('/'))
                || ["udp://", "tcp://"].iter().any(|p| {
                    a.strip_prefix(p)
                        .is_some_and(|h| h.rsplit_once(':').is_some())
                });
            if !ok {
                out.push(format!(
                    "alerts.syslog[{i}].address: {a:?} is not unix:/PATH, udp://HOST:PORT or tcp://HOST:PORT"
                ));
            }
        }
        out
    }

    /// Resolves secret file paths against the config's folder.
    pub(super) fn resolve(&mut self, resolve: impl Fn(&mut PathBuf)) {
        for w in &mut self.webhook {
            if let Some(p) = w.secret_file.as_mut() {
                resolve(p);
            }
        }
        for s in &mut self.smtp {
            if let Some(p) = s.password_file.as_mut() {
                resolve(p);
            }
            if let Some(p) = s.ca_file.as_mut() {
                resolve(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_durations_or_off() {
        assert_eq!(
            Period::try_from("10m".to_string()),
            Ok(Period(Some(Duration::from_secs(600))))
        );
        assert_eq!(Period::try_from("off".to_string()), Ok(Period(None)));
        assert_eq!(Period::try_from("0".to_string()), Ok(Period(None)));
        assert!(Period::try_from("soon".to_string()).is_err());
    }

    #[test]
    fn channel_problems_are_listed_one_line_each() {
        let a: Alerts = toml::from_str(
            r#"
stall = "soon"
[[webhook]]
url = "ftp://x"
format = "wecom"
secret_file = "/s"
[[smtp]]
server = "mail"
tls = "none"
from = "not an address"
to = []
username = "fepd"
password_file = "/p"
[[syslog]]
address = "udp:/x"
"#,
        )
        .unwrap();
        let p = a.problems();
        for want in [
            "alerts.stall:",
            "alerts.webhook[0].url:",
            "alerts.webhook[0].secret_file:",
            "alerts.smtp[0].to:",
            "\"not an address\" is not a mail address",
            "alerts.smtp[0]: a login needs tls",
            "alerts.syslog[0].address:",
        ] {
            assert!(p.iter().any(|l| l.contains(want)), "{want} in {p:#?}");
        }
        assert_eq!(p.len(), 7, "{p:#?}");
        assert!(Alerts::default().problems().is_empty());
    }

    #[test]
    fn an_smtp_login_takes_its_password_from_a_credential_a_file_or_a_variable() {
        let smtp = |extra: &str| -> Vec<String> {
            let a: Alerts = toml::from_str(&format!(
                "[[smtp]]\nserver = \"mail\"\ntls = \"starttls\"\nfrom = \"f@x.cn\"\nto = [\"o@x.cn\"]\n{extra}"
            ))
            .unwrap();
            a.problems()
        };
        assert!(smtp("username = \"u\"\npassword_env = \"P\"").is_empty());
        assert!(smtp("username = \"u\"\npassword_credential = \"fepd.smtp\"").is_empty());
        assert!(
            smtp("username = \"u\"")
                .iter()
                .any(|l| l.contains("go together"))
        );
        assert!(
            smtp("password_env = \"P\"")
                .iter()
                .any(|l| l.contains("go together"))
        );
        assert!(
            smtp("username = \"u\"\npassword_credential = \"../x\"")
                .iter()
                .any(|l| l.contains("is not a credential name"))
        );
    }

    #[test]
    fn days_left_count_whole_days_in_the_configured_offset() {
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-28T23:30:00+08:00")
            .unwrap()
            .with_timezone(&tz);
        let date = |s: &str| Expiry::try_from(s.to_string()).unwrap();
        assert_eq!(date("2026-12-31").days_left(now), 3);
        assert_eq!(date("2026-12-28").days_left(now), 0);
        assert_eq!(date("2026-12-27").days_left(now), -1);
        assert_eq!(date("2026-12-29T00:00:00+08:00").days_left(now), 1);
        assert_eq!(date("2026-12-28T12:00:00+08:00").days_left(now), -1);
        assert!(Expiry::try_from("next year".to_string()).is_err());
    }
}
