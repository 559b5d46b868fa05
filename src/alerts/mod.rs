//! Alerts (README.md, "Alerts"; docs/zh/安装与运维手册.md §10): the
//! daemon's one task that tells people about trouble, by webhook (钉钉,
//! 企业微信, plain JSON), e-mail or syslog.
//!
//! Every `[alerts] interval` the triggers (`triggers`) read the status
//! report — what `fepd status` shows — and the episodes (`episodes`) turn
//! the conditions into messages (`message`): raised once, repeated every
//! `repeat`, resolved with a 恢复 message. Raised and resolved are
//! exchange-log entries (`alert_raised`, `alert_resolved`), appended
//! through `state::log` like every other. The channels (`channels`,
//! `syslog`) send each message in a task of its own with a timeout: a dead
//! channel never holds the daemon. A heartbeat reports the day's counts.
//! The rule this module owns: alerts only read state and report; they
//! never change a batch, a file or the intake.
//!
//! Episodes live in the running loop: a restart (or reload) raises an
//! alert again if its condition still holds.

pub mod channels;
mod episodes;
mod message;
mod syslog;
mod triggers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use tokio_util::sync::CancellationToken;

pub use channels::{ChannelLabel, Failures};
use episodes::{Episodes, Step};
pub use triggers::credential_days_left;

use crate::config::Config;
use crate::daemon::status::Report;
use crate::state::StoreError;
use crate::state::log::{self, AlertEpisode, LogEntry};

/// How the engine reads the status report (the daemon's admin view).
pub type ReportFn = Arc<dyn Fn() -> Result<Report, StoreError> + Send + Sync>;

/// The alert task of one service loop, prepared (every fallible step)
/// before any thread or task starts.
pub struct Alerts {
    cfg: Arc<Config>,
    channels: channels::Channels,
    host: String,
}

impl Alerts {
    /// Builds the channels (the HTTP client, the syslog targets).
    pub fn prepare(cfg: &Arc<Config>, failures: Failures) -> Result<Alerts, reqwest::Error> {
        let host = hostname();
        let channels = channels::Channels::new(&cfg.alerts, &host, failures)?;
        Ok(Alerts {
            cfg: cfg.clone(),
            channels,
            host,
        })
    }

    /// Starts the task; it ends with `cancel`.
    pub fn start(self, report: ReportFn, cancel: CancellationToken) {
        let engine = Engine {
            cfg: self.cfg,
            report,
            channels: self.channels,
            host: self.host,
            episodes: Episodes::default(),
            log_break: None,
            unbalanced: Vec::new(),
        };
        tokio::spawn(engine.run(cancel));
    }
}

struct Engine {
    cfg: Arc<Config>,
    report: ReportFn,
    channels: channels::Channels,
    host: String,
    episodes: Episodes,
    /// What the last verification of the exchange log found broken.
    log_break: Option<triggers::LogBreak>,
    /// The reconciliation identities the last check found failing.
    unbalanced: Vec<triggers::Condition>,
}

impl Engine {
    async fn run(mut self, cancel: CancellationToken) {
        let period = |p: &crate::config::Checked<crate::config::Period>| p.ok().and_then(|p| p.0);
        let interval = period(&self.cfg.alerts.interval).unwrap_or(Duration::from_secs(15));
        let heartbeat = period(&self.cfg.alerts.heartbeat);
        let verify = period(&self.cfg.alerts.verify_log);
        let mut check = tokio::time::interval(verify.unwrap_or(Duration::from_secs(86_400)));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(heartbeat.unwrap_or(Duration::from_secs(86_400)));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first heartbeat is one period after the start, not at it.
        beat.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => self.evaluate().await,
                _ = beat.tick(), if heartbeat.is_some() => self.heartbeat().await,
                _ = check.tick(), if verify.is_some() => self.verify_log().await,
            }
        }
    }

    fn now(&self) -> DateTime<FixedOffset> {
        chrono::Utc::now().with_timezone(&self.cfg.tz())
    }

    async fn evaluate(&mut self) {
        let report = self.report.clone();
        let r = match tokio::task::spawn_blocking(move || report()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "alerts: status unreadable; triggers not evaluated");
                return;
            }
            Err(_) => return,
        };
        let now = self.now();
        let mut conditions = triggers::evaluate(&self.cfg, &r, now);
        conditions.extend(self.log_break.as_ref().map(triggers::log_broken));
        conditions.extend(self.unbalanced.iter().cloned());
        let repeat = self.cfg.alerts.repeat.ok().and_then(|p| p.0);
        let steps = self.episodes.step(Instant::now(), now, conditions, repeat);
        for step in steps {
            self.record(&step).await;
            let m = message::alert(&step, &self.host, &self.cfg.sender, now);
            match &step {
                Step::Resolved(_) => {
                    tracing::info!(kind = m.kind, subject = %m.subject, "alert resolved")
                }
                _ => tracing::warn!(kind = m.kind, subject = %m.subject, "ALERT {}", m.title),
            }
            self.channels.send(&m);
        }
    }

    /// `alert_raised` / `alert_resolved` in the exchange log; a repeat is
    /// not an entry.
    async fn record(&self, step: &Step) {
        let (c, raised) = match step {
            Step::Raised(c) => (c.clone(), true),
            Step::Resolved(c) => (c.clone(), false),
            Step::Repeated(_) => return,
        };
        let db = self.cfg.state_db();
        let tz = self.cfg.tz();
        let done = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let mut conn = crate::state::open(&db)?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let since = c
                .since
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string())
                .unwrap_or_default();
            let episode = AlertEpisode {
                kind: c.kind.as_str(),
                subject: &c.subject,
                since: &since,
            };
            let entry = match raised {
                true => LogEntry::AlertRaised(episode),
                false => LogEntry::AlertResolved(episode),
            };
            log::append(&tx, tz, entry)?;
            tx.commit()?;
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %format!("{e:#}"), "alerts: exchange-log entry not written");
        }
    }

    /// Verifies the exchange log's chain (as `fepd audit verify`, on a
    /// read-only connection); a break holds as a condition until a later
    /// verification passes. A verification that cannot run changes nothing.
    async fn verify_log(&mut self) {
        let db = self.cfg.state_db();
        let tz = self.cfg.tz();
        let today = self.now().date_naive();
        let datasets: Vec<String> = self.cfg.datasets.iter().map(|d| d.name.clone()).collect();
        let reconcile = self.cfg.alerts.reconcile;
        let found = tokio::task::spawn_blocking(move || {
            let conn = crate::state::open_read_only(&db)?;
            let v = crate::audit::verify::verify(&conn, &[], None)?;
            let mut unbalanced = Vec::new();
            if reconcile {
                for day in [today - chrono::Days::new(1), today] {
                    let r = crate::audit::report::report(&conn, day, tz, &datasets)?;
                    unbalanced.extend(triggers::unbalanced(&r));
                }
            }
            Ok::<_, crate::audit::AuditError>((v, unbalanced))
        })
        .await;
        match found {
            Ok(Ok((v, unbalanced))) => {
                self.unbalanced = unbalanced;
                self.log_break = v.log.broken.map(|b| {
                    let found = match &self.log_break {
                        Some(old) if old.seq == b.seq => old.found,
                        _ => self.now(),
                    };
                    triggers::LogBreak {
                        seq: b.seq,
                        message: b.message,
                        found,
                    }
                });
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "alerts: the exchange log could not be verified");
            }
            Err(_) => {}
        }
    }

    async fn heartbeat(&self) {
        let now = self.now();
        let day = now.date_naive();
        let bound =
            |d: chrono::NaiveDate| format!("{}T00:00:00{}", d.format("%Y-%m-%d"), now.offset());
        let (lo, hi) = (bound(day), bound(day + chrono::Days::new(1)));
        let db = self.cfg.state_db();
        let counts = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let conn = crate::state::open_read_only(&db)?;
            Ok(crate::state::figures::day_counts(&conn, &lo, &hi)?)
        })
        .await;
        let counts = match counts {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "alerts: heartbeat counts unreadable");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        self.channels.send(&message::heartbeat(
            &self.host,
            &self.cfg.sender,
            now,
            &counts,
        ));
        if let Some(url) = &self.cfg.alerts.heartbeat_url {
            self.channels.ping(url);
        }
    }
}

/// What `fepd check-config` says of alerts and credential expiry beyond
/// `Config::problems`: warnings (credentials expiring within
/// `credential_warn_days`) and problems (an expiry date already past, a
/// secret file of a channel fepd could not read).
pub fn check_config(cfg: &Config) -> (Vec<String>, Vec<String>) {
    let (mut warnings, mut problems) = (Vec::new(), Vec::new());
    let now = chrono::Utc::now().with_timezone(&cfg.tz());
    match credential_days_left(cfg, now) {
        Some(d) if d < 0 => problems.push(
            "sink.http.credential_expires: the library credentials have expired; renew them and update credential_expires".to_string(),
        ),
        Some(d) if d <= i64::from(cfg.alerts.credential_warn_days) => warnings.push(format!(
            "sink.http.credential_expires: the library credentials expire in {d} day(s); renew them before then"
        )),
        _ => {}
    }
    let files = cfg
        .alerts
        .webhook
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            Some((
                format!("alerts.webhook[{i}].secret_file"),
                w.secret_file.as_ref()?,
            ))
        })
        .chain(cfg.alerts.smtp.iter().enumerate().filter_map(|(i, s)| {
            Some((
                format!("alerts.smtp[{i}].password_file"),
                s.password_file.as_ref()?,
            ))
        }));
    for (key, f) in files {
        if let Some(why) = crate::config::secret::secret_file_problem(f) {
            problems.push(format!("{key}: {why}"));
        }
    }
    (warnings, problems)
}

/// This host's name, for messages (which exchange host speaks).
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "-".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
