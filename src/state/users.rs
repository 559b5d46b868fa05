//! The console's named users (README "Web console"; schema v5): one row
//! per person, with a role, the datasets a data-staff member may see, an
//! argon2id hash of the password (the PHC string; never the password),
//! the lock-out counters, and whether the user may see personal values in
//! clear (`reveal`, schema v6; README "Web console"). `fepd users` writes the rows; the console
//! reads them and counts failed logins.
//!
//! Sessions are not here: the console keeps them in memory, so a restart
//! of the daemon logs everyone out.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// Created by `state::open` (and by the migration to schema v5).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS console_user (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,            -- admin | auditor | operator | data_staff
    datasets    TEXT NOT NULL DEFAULT '', -- data_staff: the datasets they see, comma-separated
    hash        TEXT NOT NULL,            -- argon2id PHC string
    disabled    INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,  -- failed logins in a row
    locked_until_ms INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    changed_at  TEXT NOT NULL,            -- last change of password or status
    reveal      INTEGER NOT NULL DEFAULT 0  -- may see a rejected value in clear (each reveal logged)
);
"#;

/// Schema v5 → v6: the `reveal` grant.
pub const V6: &str = "ALTER TABLE console_user ADD COLUMN reveal INTEGER NOT NULL DEFAULT 0;";

/// A user as stored (the hash included; callers never show it).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub name: String,
    pub role: String,
    pub datasets: Vec<String>,
    #[serde(skip)]
    pub hash: String,
    pub disabled: bool,
    pub failures: i64,
    pub locked_until_ms: i64,
    pub created_at: String,
    pub changed_at: String,
    /// Granted to see a rejected record's value in clear, once per
    /// request, each reveal an exchange-log entry.
    pub reveal: bool,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let datasets: String = r.get(2)?;
    Ok(User {
        name: r.get(0)?,
        role: r.get(1)?,
        datasets: datasets
            .split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect(),
        hash: r.get(3)?,
        disabled: r.get::<_, i64>(4)? != 0,
        failures: r.get(5)?,
        locked_until_ms: r.get(6)?,
        created_at: r.get(7)?,
        changed_at: r.get(8)?,
        reveal: r.get::<_, i64>(9)? != 0,
    })
}

const COLS: &str = "name, role, datasets, hash, disabled, failures, locked_until_ms, created_at, changed_at, reveal";

/// One user by name.
pub fn get(conn: &Connection, name: &str) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM console_user WHERE name = ?1"),
        [name],
        row,
    )
    .optional()
}

/// Every user, by name.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    conn.prepare(&format!("SELECT {COLS} FROM console_user ORDER BY name"))?
        .query_map([], row)?
        .collect()
}

/// Adds a user; `false` when the name is taken.
pub fn add(
    conn: &Connection,
    name: &str,
    role: &str,
    datasets: &[String],
    hash: &str,
    now: &str,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT INTO console_user (name, role, datasets, hash, created_at, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(name) DO NOTHING",
        params![name, role, datasets.join(","), hash, now],
    )?;
    Ok(n == 1)
}

/// Sets a new password hash, which also ends a lock-out; `false` when
/// there is no such user.
pub fn set_hash(conn: &Connection, name: &str, hash: &str, now: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE console_user SET hash = ?2, failures = 0, locked_until_ms = 0, changed_at = ?3
         WHERE name = ?1",
        params![name, hash, now],
    )?;
    Ok(n == 1)
}

/// Disables (or enables again) a user; `false` when there is no such user.
pub fn set_disabled(
    conn: &Connection,
    name: &str,
    disabled: bool,
    now: &str,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE console_user SET disabled = ?2, failures = 0, locked_until_ms = 0, changed_at = ?3
         WHERE name = ?1",
        params![name, disabled, now],
    )?;
    Ok(n == 1)
}

/// Grants (or withdraws) the reveal of personal values; `false` when
/// there is no such user. Read at each reveal, so it takes effect at once.
pub fn set_reveal(conn: &Connection, name: &str, reveal: bool) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE console_user SET reveal = ?2 WHERE name = ?1",
        params![name, reveal],
    )?;
    Ok(n == 1)
}

/// Counts a failed login; once `limit` failures in a row are reached the
/// account is locked until `lock_until_ms` and the count starts again.
/// Returns whether this failure locked it.
pub fn fail(
    conn: &Connection,
    name: &str,
    limit: i64,
    lock_until_ms: i64,
) -> rusqlite::Result<bool> {
    let failures: Option<i64> = conn
        .query_row(
            "UPDATE console_user SET failures = failures + 1 WHERE name = ?1 RETURNING failures",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    if failures.is_some_and(|f| f >= limit) {
        conn.execute(
            "UPDATE console_user SET failures = 0, locked_until_ms = ?2 WHERE name = ?1",
            params![name, lock_until_ms],
        )?;
        return Ok(true);
    }
    Ok(false)
}

/// A successful login clears the failure count.
pub fn succeed(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE console_user SET failures = 0, locked_until_ms = 0 WHERE name = ?1",
        [name],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_added_once_locked_after_the_limit_and_unlocked_by_a_new_password() {
        let d = tempfile::tempdir().unwrap();
        let c = crate::state::open(&d.path().join("fepd.db")).unwrap();
        let ds = vec!["case_accept".to_string(), "evaluation".to_string()];
        assert!(add(&c, "王五", "data_staff", &ds, "$argon2id$x", "T").unwrap());
        assert!(!add(&c, "王五", "admin", &[], "$argon2id$y", "T").unwrap());
        let u = get(&c, "王五").unwrap().unwrap();
        assert_eq!((u.role.as_str(), u.datasets.clone()), ("data_staff", ds));
        assert!(!fail(&c, "王五", 3, 99).unwrap());
        assert!(!fail(&c, "王五", 3, 99).unwrap());
        assert!(fail(&c, "王五", 3, 99).unwrap());
        let u = get(&c, "王五").unwrap().unwrap();
        assert_eq!((u.failures, u.locked_until_ms), (0, 99));
        assert!(set_hash(&c, "王五", "$argon2id$z", "T2").unwrap());
        let u = get(&c, "王五").unwrap().unwrap();
        assert_eq!((u.locked_until_ms, u.hash.as_str()), (0, "$argon2id$z"));
        assert!(!fail(&c, "nobody", 1, 99).unwrap());
        assert!(set_disabled(&c, "王五", true, "T3").unwrap());
        assert!(list(&c).unwrap()[0].disabled);
        assert!(!get(&c, "王五").unwrap().unwrap().reveal);
        assert!(set_reveal(&c, "王五", true).unwrap());
        assert!(get(&c, "王五").unwrap().unwrap().reveal);
        assert!(!set_reveal(&c, "nobody", true).unwrap());
    }

    /// A v4 database (before the console) opens as current with the
    /// users' table, its rows kept.
    #[test]
    fn a_v4_database_gains_the_users_table() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("fepd.db");
        {
            let c = crate::state::open(&path).unwrap();
            c.execute_batch("DROP TABLE console_user; PRAGMA user_version = 4;")
                .unwrap();
            assert!(
                crate::state::files::attempt_of(&c, "none")
                    .unwrap()
                    .is_none()
            );
        }
        let c = crate::state::open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, crate::state::SCHEMA_VERSION);
        assert!(list(&c).unwrap().is_empty());
    }

    /// A v5 database (users without the reveal grant) opens as current,
    /// its users kept and granted nothing.
    #[test]
    fn a_v5_database_gains_the_reveal_grant_ungranted() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("fepd.db");
        {
            let c = crate::state::open(&path).unwrap();
            c.execute_batch(
                "ALTER TABLE console_user DROP COLUMN reveal; PRAGMA user_version = 5;
                 INSERT INTO console_user (name, role, hash, created_at, changed_at)
                 VALUES ('甲', 'auditor', '$argon2id$x', 'T', 'T');",
            )
            .unwrap();
        }
        let c = crate::state::open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, crate::state::SCHEMA_VERSION);
        let u = get(&c, "甲").unwrap().unwrap();
        assert_eq!((u.role.as_str(), u.reveal), ("auditor", false));
    }
}
