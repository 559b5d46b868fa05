//! Credential back-off: when the library refuses fepd's credentials (401
//! `invalid_client` on the token endpoint, a refused `app_key_hmac`, a
//! `temporarily_locked` answer), token requests wait like a person would —
//! `base`, then 2×, 4×… up to 30× `base` (1, 2, 4, 8, 16, 30 min with the
//! default 60 s) — instead of the 1 s transient backoff. The library locks
//! a client out after 5 failures in 10 minutes (docs/protocol.md §2); this
//! schedule makes at most 4 requests in any 10 minutes (at 0, 1, 3 and 7
//! min), so a wrong secret never locks out the client id (and with it any
//! correctly configured sender sharing it).
//!
//! One episode lasts from the first refusal to the next granted token (or
//! a reload, which starts a new token source). It is alerted once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::FixedOffset;
use rusqlite::{Connection, TransactionBehavior};

use crate::state::log::{self, LogEntry};

/// The wait after the `n`-th refusal of an episode (n ≥ 1).
pub fn step(base: Duration, n: u32) -> Duration {
    let cap = base.saturating_mul(30);
    base.saturating_mul(
        1u32.checked_shl(n.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX),
    )
    .min(cap)
}

/// A refusal episode as the forwarder reports it (status, `/healthz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// Wall-clock time of the first refusal.
    pub since: chrono::DateTime<chrono::Utc>,
    pub reason: String,
    /// Token requests refused so far in this episode.
    pub refusals: u32,
    /// No token request before this.
    pub next: Instant,
    pub next_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct Book {
    episode: Option<Episode>,
    /// An episode began and nobody has alerted it yet.
    opened: bool,
    /// An episode ended and nobody has recorded that yet.
    ended: bool,
}

/// The back-off state of one token source.
pub struct Refusals {
    base: Duration,
    book: Mutex<Book>,
}

impl Refusals {
    pub fn new(base: Duration) -> Refusals {
        Refusals {
            base,
            book: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// While an episode waits: its reason and how long until the next
    /// token request may be made.
    pub fn waiting(&self) -> Option<(String, Duration)> {
        let book = self.book();
        let e = book.episode.as_ref()?;
        let left = e.next.saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| (e.reason.clone(), left))
    }

    /// Records a refusal; `at_least` is the library's `Retry-After`, if
    /// any. Returns the wait before the next token request.
    pub fn refused(&self, reason: String, at_least: Option<Duration>) -> Duration {
        let mut book = self.book();
        let now = chrono::Utc::now();
        let refusals = book.episode.as_ref().map_or(0, |e| e.refusals) + 1;
        let wait = step(self.base, refusals).max(at_least.unwrap_or_default());
        let since = match &book.episode {
            Some(e) => e.since,
            None => {
                book.opened = true;
                book.ended = false;
                now
            }
        };
        book.episode = Some(Episode {
            since,
            reason,
            refusals,
            next: Instant::now() + wait,
            next_at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
        });
        wait
    }

    /// A token was granted: the episode, if any, is over.
    pub fn granted(&self) {
        let mut book = self.book();
        if book.episode.take().is_some() {
            book.ended = true;
            book.opened = false;
        }
    }

    pub fn episode(&self) -> Option<Episode> {
        self.book().episode.clone()
    }

    /// The episode that began and has not been alerted yet (once).
    pub fn take_opened(&self) -> Option<Episode> {
        let mut book = self.book();
        if !std::mem::take(&mut book.opened) {
            return None;
        }
        book.episode.clone()
    }

    /// Whether an episode ended since the last call (once).
    pub fn take_ended(&self) -> bool {
        std::mem::take(&mut self.book().ended)
    }
}

/// Writes the back-off state where `fepd status` and `/healthz` read it:
/// `route`'s "refused since" while `episode` lasts, one
/// `credentials_refused` entry and ALERT when it began (`opened`), and
/// `credentials_accepted` when a token was granted again (`ended`).
pub fn record(
    conn: &mut Connection,
    tz: FixedOffset,
    route: &str,
    opened: Option<Episode>,
    episode: Option<Episode>,
    ended: bool,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let text = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    };
    if let Some(e) = &episode {
        crate::state::auth::refused(&tx, route, &text(e.since), &e.reason, &text(e.next_at))?;
    }
    if let Some(e) = &opened {
        let retry_in = e.next.saturating_duration_since(Instant::now());
        log::append(
            &tx,
            tz,
            LogEntry::CredentialsRefused {
                reason: &e.reason,
                route,
                retry_in_secs: retry_in.as_secs(),
            },
        )?;
        tracing::error!(reason = %e.reason, retry_in_secs = retry_in.as_secs(), "ALERT: the library refuses fepd's credentials; token requests back off (doubling, up to 30× credential_backoff_secs) until they are accepted — renew the secret and reload");
    }
    if episode.is_none() && ended {
        let routes = crate::state::auth::clear(&tx)?;
        log::append(&tx, tz, LogEntry::CredentialsAccepted { routes })?;
        tracing::info!("credentials accepted again: a token was granted");
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_doubles_to_thirty_times_the_base() {
        let m = Duration::from_secs(60);
        let mins: Vec<u64> = (1..=8).map(|n| step(m, n).as_secs() / 60).collect();
        assert_eq!(mins, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    /// The figure in the docs: with a wrong secret and the default base,
    /// token requests in the first 10 minutes, and at most in any
    /// 10-minute window over a day — always below the library's lock-out
    /// threshold of 5 (docs/protocol.md §2).
    #[test]
    fn never_five_requests_in_ten_minutes() {
        let base = Duration::from_secs(60);
        let mut at = vec![0u64];
        let mut n = 0;
        while *at.last().unwrap() < 86_400 {
            n += 1;
            at.push(at.last().unwrap() + step(base, n).as_secs());
        }
        let first_ten = at.iter().filter(|&&t| t < 600).count();
        assert_eq!(first_ten, 4, "{at:?}");
        let worst = at
            .iter()
            .map(|&s| at.iter().filter(|&&t| t >= s && t < s + 600).count())
            .max()
            .unwrap();
        assert_eq!(worst, 4);
    }

    #[test]
    fn an_episode_is_alerted_once_and_ended_by_a_token() {
        let r = Refusals::new(Duration::from_secs(60));
        assert!(r.waiting().is_none());
        assert_eq!(
            r.refused("HTTP 401 invalid_client".into(), None),
            Duration::from_secs(60)
        );
        assert!(r.take_opened().is_some());
        assert!(r.take_opened().is_none());
        let since = r.episode().unwrap().since;
        // A lock-out's Retry-After is honoured when longer than the step.
        assert_eq!(
            r.refused(
                "HTTP 429 temporarily_locked".into(),
                Some(Duration::from_secs(600))
            ),
            Duration::from_secs(600)
        );
        assert_eq!(r.episode().unwrap().since, since);
        assert!(r.waiting().is_some());
        assert!(!r.take_ended());
        r.granted();
        assert!(r.episode().is_none() && r.waiting().is_none());
        assert!(r.take_ended());
        assert!(!r.take_ended());
    }
}
