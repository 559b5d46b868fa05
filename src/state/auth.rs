//! Credential refusals per route: what `fepd status` and `/healthz` show
//! while the library refuses fepd's credentials ("refused since T").
//!
//! The push forwarder writes a row when a route's token request is refused
//! (401 on the token endpoint, a lock-out) and deletes the rows when a
//! token is granted again or the daemon (re)starts with a new config.

use rusqlite::{Connection, params};

/// One route waiting for the library to accept fepd's credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    pub route: String,
    /// When the first refusal of this episode was seen.
    pub since: String,
    pub reason: String,
    /// When fepd asks for a token next.
    pub next_attempt: Option<String>,
}

/// Records a refusal for `route`; an episode already open keeps its
/// `since`. Returns true when this opened the episode for the route.
pub fn refused(
    conn: &Connection,
    route: &str,
    now: &str,
    reason: &str,
    next_attempt: &str,
) -> rusqlite::Result<bool> {
    let opened = conn.execute(
        "INSERT OR IGNORE INTO credential_refusal (route, since, reason, next_attempt) VALUES (?1, ?2, ?3, ?4)",
        params![route, now, reason, next_attempt],
    )? == 1;
    if !opened {
        conn.execute(
            "UPDATE credential_refusal SET reason = ?2, next_attempt = ?3 WHERE route = ?1",
            params![route, reason, next_attempt],
        )?;
    }
    Ok(opened)
}

/// Ends every open episode (a token was granted, or a new config is in
/// force); returns how many routes were waiting.
pub fn clear(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM credential_refusal", [])
}

/// Routes whose credentials are refused right now, oldest episode first.
/// Public for `/healthz` and `fepd status`.
pub fn refusals(conn: &Connection) -> rusqlite::Result<Vec<Refusal>> {
    let mut stmt = conn.prepare(
        "SELECT route, since, reason, next_attempt FROM credential_refusal ORDER BY since, route",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Refusal {
            route: r.get(0)?,
            since: r.get(1)?,
            reason: r.get(2)?,
            next_attempt: r.get(3)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_keeps_its_start_until_cleared() {
        let d = tempfile::tempdir().unwrap();
        let c = crate::state::open(&d.path().join("fepd.db")).unwrap();
        assert!(refused(&c, "zwfw/a", "T1", "HTTP 401 invalid_client", "T2").unwrap());
        assert!(!refused(&c, "zwfw/a", "T3", "HTTP 429 locked", "T4").unwrap());
        let r = refusals(&c).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].since.as_str(), r[0].reason.as_str()),
            ("T1", "HTTP 429 locked")
        );
        assert_eq!(r[0].next_attempt.as_deref(), Some("T4"));
        assert_eq!(clear(&c).unwrap(), 1);
        assert!(refusals(&c).unwrap().is_empty());
    }
}
