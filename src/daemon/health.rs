//! The daemon's view of its own liveness, shared by the parts that make
//! progress (intake loop, workers, forwarder) and read by `/healthz`,
//! `/metrics`, `/status` and the heartbeat.
//!
//! Each part reports what only it can know: the intake loop ticks, a
//! worker or forwarder holds a [`PartGuard`] that marks it dead when its
//! thread or task ends, the forwarder says whether the library refuses
//! its credentials and when a route last delivered. What the database
//! knows (backlog, oldest pending batch) is read from it at request time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// The intake loop ticks at least every [`super::lock::HEARTBEAT_EVERY`];
/// silence for this long means it is stuck.
const INTAKE_STUCK: Duration = Duration::from_secs(60);

/// Upper bounds of the delivery-latency buckets (sealed → delivered), in
/// seconds: sub-second pushes up to a collector that comes once a day.
const LATENCY_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// Shared liveness state of one service loop.
pub struct Health {
    started: Instant,
    stopping: AtomicBool,
    intake_tick: Mutex<Instant>,
    /// Part name → `None` while alive, `Some(why)` once it ended.
    parts: Mutex<BTreeMap<String, Option<String>>>,
    /// Why the library refuses fepd's credentials, while it does.
    credentials_refused: Mutex<Option<String>>,
    /// Per route: when it last delivered a batch (this process).
    last_delivery: Mutex<HashMap<String, Instant>>,
    /// Sealed → delivered, per route, in seconds.
    pub delivery_latency: Family<RouteLabel, Histogram>,
    /// Token requests the library refused or locked out.
    pub auth_failures: Counter,
    /// Alert sends that failed, per channel (`crate::alerts`).
    pub alert_failures: crate::alerts::Failures,
    /// Each alert channel's last send (the console's 系统 page).
    pub alert_results: crate::alerts::Results,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    pub fn new() -> Health {
        Health {
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            intake_tick: Mutex::new(Instant::now()),
            parts: Mutex::default(),
            credentials_refused: Mutex::default(),
            last_delivery: Mutex::default(),
            delivery_latency: Family::new_with_constructor(|| {
                Histogram::new(LATENCY_BUCKETS.iter().copied())
            }),
            auth_failures: Counter::default(),
            alert_failures: Default::default(),
            alert_results: Default::default(),
        }
    }

    /// Since when this service loop runs (for "no delivery yet" stalls).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The loop is draining: parts ending now is expected.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// The intake loop went round once.
    pub fn intake_tick(&self) {
        *lock(&self.intake_tick) = Instant::now();
    }

    /// Registers a part (a worker thread, the forwarder) as alive until the
    /// returned guard is dropped.
    pub fn part(self: &std::sync::Arc<Self>, name: impl Into<String>) -> PartGuard {
        let name = name.into();
        lock(&self.parts).insert(name.clone(), None);
        PartGuard {
            health: self.clone(),
            name,
        }
    }

    /// The forwarder got a token: credentials work (again).
    pub fn credentials_ok(&self) {
        let mut c = lock(&self.credentials_refused);
        if c.take().is_some() {
            tracing::info!("the library accepts fepd's credentials again");
        }
    }

    /// The library refused the credentials (401 on the token endpoint,
    /// `invalid_client`, a lock-out).
    pub fn credentials_refused(&self, why: &str) {
        self.auth_failures.inc();
        *lock(&self.credentials_refused) = Some(why.to_string());
    }

    /// A batch of `route` sealed at `sealed_at` (RFC 3339) was delivered.
    pub fn delivered(&self, route: &str, sealed_at: &str) {
        lock(&self.last_delivery).insert(route.to_string(), Instant::now());
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(sealed_at) {
            let secs = (chrono::Utc::now() - t.to_utc()).num_milliseconds().max(0) as f64 / 1e3;
            self.delivery_latency
                .get_or_create(&RouteLabel {
                    route: route.to_string(),
                })
                .observe(secs);
        }
    }

    /// When `route` last delivered in this process.
    pub fn last_delivery(&self, route: &str) -> Option<Instant> {
        lock(&self.last_delivery).get(route).copied()
    }

    /// Why the daemon is not healthy, from what the parts reported (the
    /// caller adds what the database and the intake gate say).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.stopping.load(Ordering::SeqCst) {
            out.push("draining: the service loop is stopping".to_string());
            return out;
        }
        let idle = lock(&self.intake_tick).elapsed();
        if idle > INTAKE_STUCK {
            out.push(format!(
                "intake loop stuck: no tick for {} s",
                idle.as_secs()
            ));
        }
        for (name, ended) in lock(&self.parts).iter() {
            if let Some(why) = ended {
                out.push(format!("{name} is not running: {why}"));
            }
        }
        if let Some(why) = lock(&self.credentials_refused).as_ref() {
            out.push(format!("credentials refused by the library: {why}"));
        }
        out
    }
}

/// Marks its part dead when dropped (a thread returning or unwinding, a
/// task ending).
pub struct PartGuard {
    health: std::sync::Arc<Health>,
    name: String,
}

impl Drop for PartGuard {
    fn drop(&mut self) {
        let why = if std::thread::panicking() {
            "it panicked"
        } else {
            "it ended"
        };
        lock(&self.health.parts).insert(self.name.clone(), Some(why.to_string()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_part_that_ends_makes_the_daemon_unhealthy_until_it_drains() {
        let h = Arc::new(Health::new());
        let g = h.part("worker-case_accept");
        assert!(h.problems().is_empty());
        drop(g);
        assert_eq!(
            h.problems(),
            vec!["worker-case_accept is not running: it ended"]
        );
        h.set_stopping();
        assert_eq!(h.problems().len(), 1);
        assert!(h.problems()[0].starts_with("draining"));
    }

    #[test]
    fn refused_credentials_are_reported_until_a_token_is_had() {
        let h = Health::new();
        h.credentials_refused("HTTP 401 invalid_client");
        h.credentials_refused("HTTP 401 invalid_client");
        assert_eq!(h.auth_failures.get(), 2);
        assert!(h.problems()[0].contains("invalid_client"));
        h.credentials_ok();
        assert!(h.problems().is_empty());
    }

    #[test]
    fn delivery_latency_is_observed_per_route() {
        let h = Health::new();
        let sealed = (chrono::Utc::now() - chrono::Duration::seconds(3)).to_rfc3339();
        h.delivered("zwfw/case_accept", &sealed);
        assert!(h.last_delivery("zwfw/case_accept").is_some());
        assert!(h.last_delivery("zwfw/other").is_none());
        let mut text = String::new();
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register("lat", "l", h.delivery_latency.clone());
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(
            text.contains("lat_bucket{le=\"5.0\",route=\"zwfw/case_accept\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("lat_bucket{le=\"2.0\",route=\"zwfw/case_accept\"} 0"),
            "{text}"
        );
    }
}
