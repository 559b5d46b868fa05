//! Console sessions, kept in the daemon's memory (a restart or reload
//! logs everyone out): a random 256-bit id in the cookie, of which only
//! the SHA-256 is stored; each session's CSRF token, which every form
//! carries back; the idle and absolute timeouts of `[console]`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngExt;

use super::access::Role;

/// The session cookie's name.
pub const COOKIE: &str = "fepd_session";
/// The login form's own cookie: the form carries the same random value
/// back (a double-submitted token), so a login cannot be forged either.
pub const LOGIN_COOKIE: &str = "fepd_login";

/// Who a request is from.
#[derive(Debug, Clone)]
pub struct Who {
    pub user: String,
    pub role: Role,
    /// A data-staff member's datasets (empty for other roles).
    pub datasets: Vec<String>,
    pub csrf: String,
    /// The stored key of the session (the hash of its id).
    pub key: String,
    /// When the user logged in (the state database's time text): a
    /// password or status changed after it ends the session.
    pub since: String,
    /// Granted to see personal values in clear: read from the state
    /// database at every request (`Console::who`), never kept.
    pub reveal: bool,
    /// This host is a cluster node (`[cluster]` configured): the menu
    /// links 集群 only then. Set at every request (`Console::who`).
    pub cluster: bool,
}

impl Who {
    /// Whether this user may see `dataset`: every role but data staff
    /// sees all; data staff their own.
    pub fn sees(&self, dataset: &str) -> bool {
        self.role != Role::DataStaff || self.datasets.iter().any(|d| d == dataset)
    }
}

struct Session {
    who: Who,
    created: Instant,
    used: Instant,
}

/// Why a cookie names no live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// No cookie, or one naming no session.
    None,
    /// Unused for longer than the idle timeout (`user` named for the log).
    Idle(String),
    /// Older than the absolute timeout.
    Expired(String),
}

/// The live sessions.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    absolute: Duration,
}

/// A random token of 256 bits, URL-safe base64.
pub fn token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key_of(id: &str) -> String {
    crate::canon::sha256_hex(id.as_bytes())
}

impl Sessions {
    pub fn new(idle: Duration, absolute: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            absolute,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the map cannot leave a session half-made.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session; returns the id for the cookie.
    pub fn start(&self, user: &str, role: Role, datasets: Vec<String>, since: String) -> String {
        let id = token();
        let key = key_of(&id);
        let now = Instant::now();
        let who = Who {
            user: user.to_string(),
            role,
            datasets,
            csrf: token(),
            key: key.clone(),
            since,
            reveal: false,
            cluster: false,
        };
        let mut map = self.map();
        map.retain(|_, s| !self.over(s, now));
        map.insert(
            key,
            Session {
                who,
                created: now,
                used: now,
            },
        );
        id
    }

    fn over(&self, s: &Session, now: Instant) -> bool {
        now - s.used > self.idle || now - s.created > self.absolute
    }

    /// The session the cookie `id` names, marked used now unless it is a
    /// page refreshing itself (`touch` false: the overview's automatic
    /// refresh does not keep an unattended session alive).
    pub fn find(&self, id: Option<&str>, touch: bool) -> Result<Who, Ended> {
        let Some(id) = id else {
            return Err(Ended::None);
        };
        let key = key_of(id);
        let now = Instant::now();
        let mut map = self.map();
        let Some(s) = map.get_mut(&key) else {
            return Err(Ended::None);
        };
        if now - s.created > self.absolute {
            let user = s.who.user.clone();
            map.remove(&key);
            return Err(Ended::Expired(user));
        }
        if now - s.used > self.idle {
            let user = s.who.user.clone();
            map.remove(&key);
            return Err(Ended::Idle(user));
        }
        if touch {
            s.used = now;
        }
        Ok(s.who.clone())
    }

    /// Ends the session stored under `key`.
    pub fn end(&self, key: &str) {
        self.map().remove(key);
    }

    /// Ends every session of `user` (disabled, or a new password).
    pub fn end_user(&self, user: &str) {
        self.map().retain(|_, s| s.who.user != user);
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value: never readable by scripts, never sent by
/// another site, only over HTTPS when the console is served over it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// Compares without an early exit (a CSRF token guessed in part learns
/// nothing from the time taken).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_when_idle_and_its_id_is_not_stored() {
        let s = Sessions::new(Duration::from_millis(50), Duration::from_secs(60));
        let id = s.start("张三", Role::Operator, vec![], "T".into());
        let who = s.find(Some(&id), true).unwrap();
        assert_eq!(who.user, "张三");
        assert_ne!(who.key, id);
        assert!(!s.map().contains_key(&id));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(
            s.find(Some(&id), true).unwrap_err(),
            Ended::Idle("张三".into())
        );
        assert_eq!(s.find(Some(&id), true).unwrap_err(), Ended::None);
    }

    #[test]
    fn a_page_refreshing_itself_does_not_keep_a_session_alive() {
        // Idle after 1 s; a refresh at 0.6 s, then 0.6 s more: idle since
        // the start, not since the refresh. (Margins of 0.4 s each way: a
        // loaded machine oversleeps; 50 ms against 80 ms failed so.)
        let s = Sessions::new(Duration::from_millis(1000), Duration::from_secs(60));
        let id = s.start("张三", Role::Operator, vec![], "T".into());
        std::thread::sleep(Duration::from_millis(600));
        assert!(s.find(Some(&id), false).is_ok());
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            s.find(Some(&id), false).unwrap_err(),
            Ended::Idle("张三".into())
        );
    }

    #[test]
    fn a_session_ends_at_the_absolute_limit_even_when_used() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_millis(50));
        let id = s.start("李四", Role::Auditor, vec![], "T".into());
        assert!(s.find(Some(&id), true).is_ok());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(
            s.find(Some(&id), true).unwrap_err(),
            Ended::Expired("李四".into())
        );
    }

    #[test]
    fn cookies_are_read_by_name_and_set_with_their_flags() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", "a=1; fepd_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        let c = set_cookie(COOKIE, "v", true, None);
        assert!(c.contains("HttpOnly; SameSite=Strict") && c.ends_with("Secure"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("a", "ab"));
    }
}
