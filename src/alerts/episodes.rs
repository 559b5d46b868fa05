//! Alert episodes: an alert (kind + subject) fires once when its
//! condition starts, again every `repeat` while it holds, and once more as
//! 恢复 when it clears (README.md, "Alerts"). Pure bookkeeping: the
//! engine feeds it the conditions of each evaluation and sends what it
//! returns.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};

use super::triggers::{Condition, Kind};

/// What an evaluation changed for one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The condition began: the first message, and `alert_raised`.
    Raised(Condition),
    /// Still holding after `repeat`: the same alert again.
    Repeated(Condition),
    /// The condition cleared: a 恢复 message, and `alert_resolved`.
    Resolved(Condition),
}

#[derive(Debug)]
struct Open {
    condition: Condition,
    last_sent: Instant,
}

/// The open episodes of one service loop.
#[derive(Debug, Default)]
pub struct Episodes {
    open: BTreeMap<(Kind, String), Open>,
}

impl Episodes {
    /// Goes on with episodes an earlier run raised and did not resolve: no
    /// second `alert_raised`; repeats count from `now`; a condition that no
    /// longer holds at the first evaluation is resolved.
    pub fn resume(&mut self, now: Instant, open: Vec<Condition>) {
        for c in open {
            self.open.insert(
                (c.kind, c.subject.clone()),
                Open {
                    condition: c,
                    last_sent: now,
                },
            );
        }
    }

    /// Compares this evaluation's conditions with the open episodes.
    /// `repeat` is the period of repeats (`None`: never); credential
    /// expiry repeats once a day whatever it is.
    pub fn step(
        &mut self,
        now: Instant,
        at: DateTime<FixedOffset>,
        conditions: Vec<Condition>,
        repeat: Option<Duration>,
    ) -> Vec<Step> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for mut c in conditions {
            let key = (c.kind, c.subject.clone());
            seen.insert(key.clone());
            match self.open.get_mut(&key) {
                None => {
                    c.since = c.since.or(Some(at));
                    out.push(Step::Raised(c.clone()));
                    self.open.insert(
                        key,
                        Open {
                            condition: c,
                            last_sent: now,
                        },
                    );
                }
                Some(o) => {
                    c.since = o.condition.since;
                    o.condition = c;
                    let every = match o.condition.kind {
                        Kind::CredentialExpiry => Some(Duration::from_secs(86_400)),
                        _ => repeat,
                    };
                    if every.is_some_and(|e| now.duration_since(o.last_sent) >= e) {
                        o.last_sent = now;
                        out.push(Step::Repeated(o.condition.clone()));
                    }
                }
            }
        }
        let cleared: Vec<_> = self
            .open
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for k in cleared {
            if let Some(o) = self.open.remove(&k) {
                out.push(Step::Resolved(o.condition));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(n: i64) -> Condition {
        Condition {
            kind: Kind::BatchParked,
            subject: "case_accept".into(),
            since: None,
            what: format!("{n} 个批次被搁置"),
        }
    }

    #[test]
    fn an_episode_fires_once_repeats_and_resolves() {
        let mut e = Episodes::default();
        let t0 = Instant::now();
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00+08:00").unwrap();
        let rep = Some(Duration::from_secs(60));
        let s = e.step(t0, at, vec![parked(1)], rep);
        assert!(matches!(&s[..], [Step::Raised(c)] if c.since == Some(at)));
        assert!(
            e.step(t0 + Duration::from_secs(30), at, vec![parked(1)], rep)
                .is_empty()
        );
        let s = e.step(t0 + Duration::from_secs(61), at, vec![parked(2)], rep);
        assert!(
            matches!(&s[..], [Step::Repeated(c)] if c.what.starts_with('2') && c.since == Some(at))
        );
        assert!(
            e.step(t0 + Duration::from_secs(90), at, vec![parked(2)], rep)
                .is_empty()
        );
        let s = e.step(t0 + Duration::from_secs(91), at, vec![], rep);
        assert!(matches!(&s[..], [Step::Resolved(c)] if c.kind == Kind::BatchParked));
        assert!(
            e.step(t0 + Duration::from_secs(92), at, vec![], rep)
                .is_empty()
        );
    }

    #[test]
    fn without_repeat_an_episode_is_sent_once() {
        let mut e = Episodes::default();
        let t0 = Instant::now();
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00+08:00").unwrap();
        assert_eq!(e.step(t0, at, vec![parked(1)], None).len(), 1);
        assert!(
            e.step(t0 + Duration::from_secs(99_999), at, vec![parked(1)], None)
                .is_empty()
        );
    }

    #[test]
    fn credential_expiry_warns_once_a_day_whatever_repeat_says() {
        let expiring = Condition {
            kind: Kind::CredentialExpiry,
            subject: "library".into(),
            since: None,
            what: "凭据 3 天后到期".into(),
        };
        let day = Duration::from_secs(86_400);
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00+08:00").unwrap();
        for repeat in [None, Some(Duration::from_secs(60))] {
            let mut e = Episodes::default();
            let t0 = Instant::now();
            assert_eq!(e.step(t0, at, vec![expiring.clone()], repeat).len(), 1);
            let hour_later = t0 + Duration::from_secs(3600);
            assert!(
                e.step(hour_later, at, vec![expiring.clone()], repeat)
                    .is_empty(),
                "{repeat:?}"
            );
            let s = e.step(t0 + day, at, vec![expiring.clone()], repeat);
            assert!(matches!(&s[..], [Step::Repeated(_)]), "{repeat:?}");
        }
    }
}
