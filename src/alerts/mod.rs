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
//! Two self-checks run beside them: every `verify_log` the exchange log's
//! chain is verified and today's and yesterday's reconciliation must
//! balance; on the `canary` schedule (push mode) a zero-record probe goes
//! to every route, as `fepd selftest` sends it.
//!
//! Episodes open at a restart or reload are read back from the exchange
//! log (`state::episodes`) and go on: not raised twice, resolved when they
//! clear. Credential expiry is the exception: its warning goes out at every
//! start, as promised.

pub mod channels;
mod episodes;
pub mod message;
mod syslog;
mod triggers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use tokio_util::sync::CancellationToken;

pub use channels::{ChannelLabel, Failures, LastSend, Results};
use episodes::{Episodes, Step};
pub use triggers::credential_days_left;

use crate::config::Config;
use crate::daemon::status::Report;
use crate::state::StoreError;
use crate::state::log::{self, AlertEpisode, LogEntry};

/// How the engine reads the status report (the daemon's admin view).
pub type ReportFn = Arc<dyn Fn() -> Result<Report, StoreError> + Send + Sync>;

/// Push mode's scheduled probe: the forwarder that sends it, and each
/// route with the dataset (and its schema version) it is probed for.
pub struct Canary {
    pub forwarder: Arc<crate::forward::push::Forwarder>,
    pub routes: Vec<(String, String, String)>,
}

/// The alert task of one service loop, prepared (every fallible step)
/// before any thread or task starts.
pub struct Alerts {
    cfg: Arc<Config>,
    channels: channels::Channels,
    host: String,
}

impl Alerts {
    /// Builds the channels (the HTTP client, the syslog targets).
    pub fn prepare(
        cfg: &Arc<Config>,
        failures: Failures,
        results: Results,
    ) -> Result<Alerts, reqwest::Error> {
        let host = hostname();
        let channels = channels::Channels::new(&cfg.alerts, &host, failures, results)?;
        Ok(Alerts {
            cfg: cfg.clone(),
            channels,
            host,
        })
    }

    /// Starts the task; it ends with `cancel`.
    pub fn start(self, report: ReportFn, canary: Option<Canary>, cancel: CancellationToken) {
        let engine = Engine {
            cfg: self.cfg,
            report,
            channels: self.channels,
            host: self.host,
            episodes: Episodes::default(),
            log_break: None,
            unbalanced: Vec::new(),
            canary,
            canary_failed: std::collections::BTreeMap::new(),
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
    canary: Option<Canary>,
    /// Routes whose last probe failed: since when, and the answer.
    canary_failed: std::collections::BTreeMap<String, (DateTime<FixedOffset>, String)>,
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
        self.resume().await;
        let (probe_tx, mut probe_rx) = tokio::sync::mpsc::channel::<()>(1);
        let _probes = match &self.canary {
            Some(_) => self.schedule_canary(probe_tx).await,
            None => None,
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => self.evaluate().await,
                _ = beat.tick(), if heartbeat.is_some() => self.heartbeat().await,
                _ = check.tick(), if verify.is_some() => self.verify_log().await,
                Some(()) = probe_rx.recv() => self.probe().await,
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
        for (route, (since, answer)) in &self.canary_failed {
            conditions.push(triggers::Condition {
                kind: triggers::Kind::CanaryFailed,
                subject: route.clone(),
                since: Some(*since),
                what: format!("路由 {route} 的探测批次未被接受：{answer}"),
            });
        }
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

    /// Seeds the episodes an earlier run left open (see the module doc).
    async fn resume(&mut self) {
        let db = self.cfg.state_db();
        let found = tokio::task::spawn_blocking(move || {
            let conn = crate::state::open_read_only(&db)?;
            crate::state::episodes::open(&conn).map_err(StoreError::from)
        })
        .await;
        let open = match found {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "alerts: open episodes unreadable; conditions still holding are raised again");
                return;
            }
            Err(_) => return,
        };
        let resumed: Vec<triggers::Condition> = open
            .into_iter()
            .filter_map(|o| {
                let kind = triggers::Kind::parse(&o.kind)?;
                (kind != triggers::Kind::CredentialExpiry).then(|| triggers::Condition {
                    kind,
                    subject: o.subject,
                    since: DateTime::parse_from_rfc3339(&o.since).ok(),
                    what: "fepd 重启前已告警的情况".into(),
                })
            })
            .collect();
        if !resumed.is_empty() {
            tracing::info!(
                episodes = resumed.len(),
                "alerts: going on with the episodes open before the restart"
            );
        }
        self.episodes.resume(Instant::now(), resumed);
    }

    /// The cron job that asks for a probe on the `canary` schedule (in the
    /// configured timezone); `None`, with a warning, if it cannot start.
    async fn schedule_canary(
        &self,
        tx: tokio::sync::mpsc::Sender<()>,
    ) -> Option<tokio_cron_scheduler::JobScheduler> {
        let expr = self.cfg.alerts.canary.clone();
        let started = async {
            let sched = tokio_cron_scheduler::JobScheduler::new().await?;
            let job = tokio_cron_scheduler::Job::new_async_tz(
                expr.as_str(),
                self.cfg.tz(),
                move |_, _| {
                    let tx = tx.clone();
                    Box::pin(async move {
                        let _ = tx.try_send(());
                    })
                },
            )?;
            sched.add(job).await?;
            sched.start().await?;
            Ok::<_, tokio_cron_scheduler::JobSchedulerError>(sched)
        };
        match started.await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, schedule = %expr, "alerts: the canary could not be scheduled");
                None
            }
        }
    }

    /// One round of the canary: a `selftest` entry (by `fepd canary`) whose
    /// head the probes carry, then a zero-record probe on every route. A
    /// route's failure holds until a later probe of it passes.
    async fn probe(&mut self) {
        let Some(canary) = &self.canary else { return };
        let db = self.cfg.state_db();
        let tz = self.cfg.tz();
        let library = self.cfg.sink.http.as_ref().map(|h| h.base_url.clone());
        let routes: Vec<String> = canary.routes.iter().map(|r| r.0.clone()).collect();
        let head = tokio::task::spawn_blocking(move || {
            let mut conn = crate::state::open(&db)?;
            log::append_alone(
                &mut conn,
                tz,
                LogEntry::Selftest {
                    library: library.as_deref(),
                    routes: routes.iter().map(String::as_str).collect(),
                    by: "fepd canary",
                },
            )
            .map_err(StoreError::from)
        })
        .await;
        let head = match head {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "alerts: canary not sent, the exchange log is unwritable");
                return;
            }
            Err(_) => return,
        };
        for (route, dataset, version) in &canary.routes {
            let failed = canary
                .forwarder
                .probe_verdict(route, dataset, &self.cfg.sender, version, &head)
                .await
                .err();
            match failed {
                None => {
                    self.canary_failed.remove(route);
                }
                Some(answer) => {
                    tracing::warn!(route = %route, answer = %answer, "canary probe failed");
                    let since = self
                        .canary_failed
                        .get(route)
                        .map_or_else(|| self.now(), |(s, _)| *s);
                    self.canary_failed.insert(route.clone(), (since, answer));
                }
            }
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
    for (i, s) in cfg.alerts.smtp.iter().enumerate() {
        if let (None, None, Some(var)) = (&s.password_credential, &s.password_file, &s.password_env)
            && std::env::var_os(var).is_none_or(|v| v.is_empty())
        {
            problems.push(format!(
                "alerts.smtp[{i}].password_env: environment variable {var} is not set"
            ));
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
