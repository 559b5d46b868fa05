//! The alert channels: webhooks (plain JSON, 钉钉 and 企业微信 group
//! robots), SMTP (lettre) and syslog. Every send runs in a task of its own
//! with `[alerts] send_timeout_secs`, so a dead channel never holds the
//! engine, another channel, intake or delivery; a failure is logged with
//! the channel's name (`webhook[0]`, never its URL, which may hold a
//! robot's key) and counted in `fepd_alert_send_failures`. Each channel's
//! last result is kept in memory ([`Results`]) for the console's 系统
//! page.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::json;
use sha2::Sha256;

use super::message::Message;
use super::syslog;
use crate::config::{Alerts, Smtp, SmtpTls, Webhook, WebhookFormat};

/// `channel` label of `fepd_alert_send_failures`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: String,
}

/// Failed sends per channel, since start.
pub type Failures = Family<ChannelLabel, Counter>;

/// One channel's last send: when, which alert kind, and the error when it
/// failed (the channel's own words, never its URL).
#[derive(Debug, Clone)]
pub struct LastSend {
    pub at: chrono::DateTime<chrono::Utc>,
    pub kind: String,
    pub error: Option<String>,
}

/// The last send per channel name (`webhook[0]`, `heartbeat_url`…), since
/// start.
#[derive(Clone, Default)]
pub struct Results(Arc<Mutex<BTreeMap<String, LastSend>>>);

impl Results {
    fn set(&self, channel: &str, kind: &str, error: Option<String>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(
            channel.to_string(),
            LastSend {
                at: chrono::Utc::now(),
                kind: kind.to_string(),
                error,
            },
        );
    }

    /// A copy of the last results, by channel name.
    pub fn snapshot(&self) -> BTreeMap<String, LastSend> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

enum Kind {
    Webhook(Webhook),
    Smtp(Smtp),
    Syslog(syslog::Target),
}

struct Channel {
    name: String,
    kind: Kind,
}

/// Every configured channel, and what they share.
#[derive(Clone)]
pub struct Channels {
    all: Arc<Vec<Channel>>,
    http: reqwest::Client,
    timeout: Duration,
    failures: Failures,
    results: Results,
    host: Arc<str>,
}

impl Channels {
    pub fn new(
        a: &Alerts,
        host: &str,
        failures: Failures,
        results: Results,
    ) -> Result<Channels, reqwest::Error> {
        let mut all = Vec::new();
        for (i, w) in a.webhook.iter().enumerate() {
            all.push(Channel {
                name: format!("webhook[{i}]"),
                kind: Kind::Webhook(w.clone()),
            });
        }
        for (i, s) in a.smtp.iter().enumerate() {
            all.push(Channel {
                name: format!("smtp[{i}]"),
                kind: Kind::Smtp(s.clone()),
            });
        }
        for (i, s) in a.syslog.iter().enumerate() {
            if let Some(t) = syslog::Target::parse(&s.address) {
                all.push(Channel {
                    name: format!("syslog[{i}]"),
                    kind: Kind::Syslog(t),
                });
            }
        }
        let timeout = Duration::from_secs(a.send_timeout_secs.max(1));
        Ok(Channels {
            all: Arc::new(all),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .build()?,
            timeout,
            failures,
            results,
            host: host.into(),
        })
    }

    /// Sends `m` on every channel, each in its own task; returns at once.
    pub fn send(&self, m: &Message) {
        for i in 0..self.all.len() {
            let this = self.clone();
            let m = m.clone();
            tokio::spawn(async move {
                let c = &this.all[i];
                let r = tokio::time::timeout(this.timeout, this.send_one(c, &m)).await;
                let err = match r {
                    Ok(Ok(())) => {
                        this.results.set(&c.name, m.kind, None);
                        return;
                    }
                    Ok(Err(e)) => e,
                    Err(_) => format!("no answer within {} s", this.timeout.as_secs()),
                };
                this.results.set(&c.name, m.kind, Some(err.clone()));
                this.failures
                    .get_or_create(&ChannelLabel {
                        channel: c.name.clone(),
                    })
                    .inc();
                tracing::warn!(channel = %c.name, kind = m.kind, error = %err, "alert not sent");
            });
        }
    }

    /// GETs a dead-man's-switch URL (the heartbeat's); failures as a send's.
    pub fn ping(&self, url: &str) {
        let this = self.clone();
        let url = url.to_string();
        tokio::spawn(async move {
            let r = this.http.get(&url).send().await;
            let err = match r {
                Ok(resp) if resp.status().is_success() => {
                    this.results.set("heartbeat_url", "heartbeat", None);
                    return;
                }
                Ok(resp) => format!("HTTP {}", resp.status().as_u16()),
                Err(e) => e.without_url().to_string(),
            };
            this.results
                .set("heartbeat_url", "heartbeat", Some(err.clone()));
            this.failures
                .get_or_create(&ChannelLabel {
                    channel: "heartbeat_url".into(),
                })
                .inc();
            tracing::warn!(channel = "heartbeat_url", error = %err, "heartbeat not sent");
        });
    }

    async fn send_one(&self, c: &Channel, m: &Message) -> Result<(), String> {
        match &c.kind {
            Kind::Webhook(w) => self.webhook(w, m).await,
            Kind::Smtp(s) => smtp(s, m, self.timeout).await,
            Kind::Syslog(t) => {
                let now = chrono::Utc::now().fixed_offset();
                let l = syslog::line(m, &self.host, std::process::id(), now);
                syslog::send(t, &l).await.map_err(|e| e.to_string())
            }
        }
    }

    async fn webhook(&self, w: &Webhook, m: &Message) -> Result<(), String> {
        let text = m.text();
        let body = match w.format {
            WebhookFormat::Json => json!({
                "state": m.state, "kind": m.kind, "subject": m.subject,
                "level": format!("{:?}", m.level).to_lowercase(),
                "title": m.title, "text": text, "host": &*self.host,
            }),
            // Markdown line breaks need two spaces or a blank line; a
            // blank line between lines reads best in both robots.
            WebhookFormat::Dingtalk => json!({
                "msgtype": "markdown",
                "markdown": {"title": m.title, "text": m.lines.join("\n\n")},
            }),
            WebhookFormat::Wecom => json!({
                "msgtype": "markdown",
                "markdown": {"content": m.lines.join("\n")},
            }),
        };
        let mut req = self.http.post(&w.url).json(&body);
        if let Some(f) = &w.secret_file {
            let secret = crate::config::secret::read_secret_file(f)
                .map_err(|e| format!("secret_file: {e}"))?;
            let ts = chrono::Utc::now().timestamp_millis();
            req = req.query(&[
                ("timestamp", ts.to_string()),
                ("sign", dingtalk_sign(&secret, ts)),
            ]);
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        if w.format != WebhookFormat::Json {
            // Both robots answer 200 with {"errcode":0,…}; anything else
            // is a refusal (bad signature, key, rate limit).
            let v: serde_json::Value =
                resp.json().await.map_err(|e| e.without_url().to_string())?;
            let code = v.get("errcode").and_then(|c| c.as_i64()).unwrap_or(-1);
            if code != 0 {
                return Err(format!("errcode {code}"));
            }
        }
        Ok(())
    }
}

/// 钉钉 robot signing: base64(HMAC-SHA256(secret, "{timestamp}\n{secret}"));
/// the query encoder URL-encodes it.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn smtp(s: &Smtp, m: &Message, timeout: Duration) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut b = lettre::Message::builder()
        .from(s.from.parse().map_err(|x| e(&x))?)
        .subject(m.title.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for to in &s.to {
        b = b.to(to.parse().map_err(|x| e(&x))?);
    }
    let mail = b.body(m.text()).map_err(|x| e(&x))?;
    let builder = match (s.tls, &s.ca_file) {
        (SmtpTls::None, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.server),
        (SmtpTls::Starttls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.server).map_err(|x| e(&x))?
        }
        (SmtpTls::Tls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&s.server).map_err(|x| e(&x))?
        }
        // A site CA: the same checks, with its certificate trusted too.
        (tls, Some(ca)) => {
            use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
            let pem = std::fs::read(ca).map_err(|x| format!("ca_file {}: {x}", ca.display()))?;
            let params = TlsParameters::builder(s.server.clone())
                .add_root_certificate(
                    Certificate::from_pem(&pem)
                        .map_err(|x| format!("ca_file {}: {x}", ca.display()))?,
                )
                .build_rustls()
                .map_err(|x| e(&x))?;
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.server).tls(match tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            })
        }
    };
    let mut builder = builder.port(s.port()).timeout(Some(timeout));
    if let Some(user) = &s.username {
        let source = crate::secrets::source(
            s.password_credential.as_ref(),
            s.password_file.as_ref(),
            s.password_env.as_ref(),
        );
        let password = crate::secrets::read(source).map_err(|x| format!("password: {x}"))?;
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    builder
        .build()
        .send(mail)
        .await
        .map(|_| ())
        .map_err(|x| e(&x))
}

#[cfg(test)]
mod tests {
    #[test]
    fn dingtalk_signature_is_base64_hmac_of_timestamp_and_secret() {
        // Computed independently: printf '1700000000000\nSECabc' |
        // openssl dgst -sha256 -hmac SECabc -binary | base64
        assert_eq!(
            super::dingtalk_sign("SECabc", 1_700_000_000_000),
            "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM="
        );
    }
}
