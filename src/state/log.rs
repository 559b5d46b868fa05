//! The exchange log: append-only and hash-chained.
//!
//! Each entry's `hash = SHA-256(prev_hash ‖ JCS(entry))`, where `prev_hash`
//! is the previous entry's hash as lowercase hex text (empty for the first
//! entry) and `entry` is the entry's fields without `hash`, absent ones
//! omitted. An entry is appended in the same transaction as the state change
//! it records, so the log never says more or less than what happened.
//!
//! The hash covers the parsed entry, so verification also checks that each
//! stored row is exactly the text `append` writes for that entry (the
//! `counts` and `details` columns are serde_json's compact form, one text
//! per value): a row edited so that it parses to the same entry — a
//! duplicate JSON member, re-spacing, a value that is not JSON — is caught
//! as well as one whose content changed.
//! Entries never carry personal data: only names of files, batch ids,
//! counts and rule names. What is appended is a typed [`LogEntry`] (one
//! variant per event, `log/entry.rs`); `log/columns.rs` is the one place
//! its columns are built.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use crate::canon;

mod columns;
mod entry;
mod verify;
pub use columns::Columns;
pub use entry::{
    AlertEpisode, Archived, Changed, ClusterPush, ConfigSummary, LogEntry, Parking, Retained,
    Verdict,
};
pub use verify::{Break, Chain, ENTRY_COLS, StoredEntry, checkpoints, verify};

/// What happened. The names are the `event` column, stable for auditors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    DaemonStarted,
    DaemonStopped,
    DaemonRecovered,
    ConfigLoaded,
    /// SIGHUP: the config was re-read and the service loop restarted with it.
    ConfigReloaded,
    /// SIGHUP: the new config was refused (problems found before
    /// draining, or the new loop could not start); the previous one runs.
    ConfigRefused,
    FileClaimed,
    FileDuplicate,
    FileDone,
    FileRejected,
    FileEmpty,
    RecordsSkipped,
    BatchSealed,
    BatchExported,
    BatchSent,
    BatchDelivered,
    RecordsLibraryRejected,
    BatchParked,
    BatchRetried,
    BatchSplit,
    /// Entries up to a seq were exported and deleted (`fepd audit export
    /// --prune`); the entry carries the pruned head so the chain still
    /// verifies from it.
    LogPruned,
    /// `fepd selftest` probed the library's routes (the joint test, 联调).
    Selftest,
    /// A retention pass deleted what `[retention]` no longer keeps; the
    /// counts say how much of each kind.
    RetentionPass,
    /// The library refused fepd's credentials: the first refusal of an
    /// episode (token requests then back off for minutes).
    CredentialsRefused,
    /// A token was granted again after a refusal episode.
    CredentialsAccepted,
    /// A pull-mode acknowledgement whose counts do not add up to the batch
    /// (or that came for a batch fepd had parked).
    AckDiscrepancy,
    /// The sink mode changed: batches exported for the collector were
    /// taken back to be pushed (or the reverse is under way).
    SinkSwitched,
    /// `fepd replay` sealed a batch that re-sends delivered records.
    BatchReplayed,
    /// An alert episode began (README.md, "Alerts"): its kind and subject.
    AlertRaised,
    /// An alert episode ended: the condition cleared.
    AlertResolved,
    /// The web console (README "Web console"): a login, a refused login,
    /// a lock-out, a session's end, a refused request, an upload.
    ConsoleLogin,
    ConsoleLoginFailed,
    ConsoleLockedOut,
    ConsoleLogout,
    ConsoleRefused,
    ConsoleUpload,
    /// `fepd users` added a console user or changed one.
    UserChanged,
    /// The console showed a rejected value in clear to a user granted it.
    ConsoleReveal,
    /// Cluster mode (docs/cluster.md): a sealed batch was stored in the
    /// cluster's replicated stream.
    BatchHandedOff,
    /// Cluster mode: a node pushed a batch from the cluster's stream.
    ClusterPushed,
    /// Cluster mode: another node took over a file this node had been
    /// reading; this node left it.
    FileTakenOver,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::DaemonStarted => "daemon_started",
            Event::DaemonStopped => "daemon_stopped",
            Event::DaemonRecovered => "daemon_recovered",
            Event::ConfigLoaded => "config_loaded",
            Event::ConfigReloaded => "config_reloaded",
            Event::ConfigRefused => "config_refused",
            Event::FileClaimed => "file_claimed",
            Event::FileDuplicate => "file_duplicate",
            Event::FileDone => "file_done",
            Event::FileRejected => "file_rejected",
            Event::FileEmpty => "file_empty",
            Event::RecordsSkipped => "records_skipped",
            Event::BatchSealed => "batch_sealed",
            Event::BatchExported => "batch_exported",
            Event::BatchSent => "batch_sent",
            Event::BatchDelivered => "batch_delivered",
            Event::RecordsLibraryRejected => "records_library_rejected",
            Event::BatchParked => "batch_parked",
            Event::BatchRetried => "batch_retried",
            Event::BatchSplit => "batch_split",
            Event::LogPruned => "log_pruned",
            Event::Selftest => "selftest",
            Event::RetentionPass => "retention_pass",
            Event::CredentialsRefused => "credentials_refused",
            Event::CredentialsAccepted => "credentials_accepted",
            Event::AckDiscrepancy => "ack_discrepancy",
            Event::SinkSwitched => "sink_switched",
            Event::BatchReplayed => "batch_replayed",
            Event::AlertRaised => "alert_raised",
            Event::AlertResolved => "alert_resolved",
            Event::ConsoleLogin => "console_login",
            Event::ConsoleLoginFailed => "console_login_failed",
            Event::ConsoleLockedOut => "console_locked_out",
            Event::ConsoleLogout => "console_logout",
            Event::ConsoleRefused => "console_refused",
            Event::ConsoleUpload => "console_upload",
            Event::UserChanged => "user_changed",
            Event::ConsoleReveal => "console_reveal",
            Event::BatchHandedOff => "batch_handed_off",
            Event::ClusterPushed => "cluster_pushed",
            Event::FileTakenOver => "file_taken_over",
        }
    }
}

/// The log head: the last entry's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// The current head; `seq` 0 and an empty hash for an empty log.
pub fn head(conn: &Connection) -> rusqlite::Result<Head> {
    Ok(conn
        .query_row(
            "SELECT seq, hash FROM exchange_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| {
                Ok(Head {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                })
            },
        )
        .optional()?
        .unwrap_or(Head {
            seq: 0,
            hash: String::new(),
        }))
}

/// The canonical text an entry's hash covers.
#[allow(clippy::too_many_arguments)] // one argument per entry field
pub fn canonical_entry(
    seq: i64,
    time: &str,
    event: &str,
    dataset: Option<&str>,
    file: Option<&str>,
    batch: Option<&str>,
    counts: Option<&Value>,
    details: Option<&Value>,
) -> String {
    let mut m = Map::new();
    m.insert("seq".into(), json!(seq));
    m.insert("time".into(), json!(time));
    m.insert("event".into(), json!(event));
    for (k, v) in [("dataset", dataset), ("file", file), ("batch", batch)] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [("counts", counts), ("details", details)] {
        if let Some(v) = v {
            m.insert(k.into(), v.clone());
        }
    }
    canon::to_canonical(&Value::Object(m))
}

/// The chained hash of an entry given its predecessor's hash.
pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut buf = Vec::with_capacity(prev_hash.len() + canonical.len());
    buf.extend_from_slice(prev_hash.as_bytes());
    buf.extend_from_slice(canonical.as_bytes());
    canon::sha256_hex(&buf)
}

/// Appends `entry`; returns the new head. Call inside the transaction
/// that makes the change the entry records.
pub fn append(
    conn: &Connection,
    tz: chrono::FixedOffset,
    entry: LogEntry<'_>,
) -> rusqlite::Result<Head> {
    let prev = head(conn)?;
    append_after(conn, tz, &prev, entry)
}

/// Appends an entry that records no other change, in a transaction of its
/// own that takes the write lock first: the head it chains to cannot move
/// under it while the daemon's other connections append.
pub fn append_alone(
    conn: &mut Connection,
    tz: chrono::FixedOffset,
    entry: LogEntry<'_>,
) -> rusqlite::Result<Head> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let head = append(&tx, tz, entry)?;
    tx.commit()?;
    Ok(head)
}

/// Appends after `prev`, the head read in this transaction.
fn append_after(
    conn: &Connection,
    tz: chrono::FixedOffset,
    prev: &Head,
    entry: LogEntry<'_>,
) -> rusqlite::Result<Head> {
    let seq = prev.seq + 1;
    let time = super::now_text(tz);
    let event = entry.event();
    let entry = entry.columns();
    let canonical = canonical_entry(
        seq,
        &time,
        event.as_str(),
        entry.dataset,
        entry.file,
        entry.batch,
        entry.counts.as_ref(),
        entry.details.as_ref(),
    );
    let hash = chain_hash(&prev.hash, &canonical);
    conn.execute(
        "INSERT INTO exchange_log (seq, time, event, dataset, file, batch, counts, details, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            seq,
            time,
            event.as_str(),
            entry.dataset,
            entry.file,
            entry.batch,
            entry.counts.map(|v| v.to_string()),
            entry.details.map(|v| v.to_string()),
            hash
        ],
    )?;
    Ok(Head { seq, hash })
}

/// Deletes the entries up to `through` (which must be the head `pruned`
/// the caller archived, where `archived` says) and appends the
/// `log_pruned` checkpoint carrying it. The only place entries are ever
/// deleted; call inside one transaction. `None` when entry `through` is no
/// longer what was archived.
pub fn prune_through(
    conn: &Connection,
    tz: chrono::FixedOffset,
    pruned: &Head,
    archived: Archived<'_>,
) -> rusqlite::Result<Option<Head>> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT hash FROM exchange_log WHERE seq = ?1",
            [pruned.seq],
            |r| r.get(0),
        )
        .optional()?;
    if stored.as_deref() != Some(pruned.hash.as_str()) {
        return Ok(None);
    }
    let (first, n): (i64, i64) = conn.query_row(
        "SELECT COALESCE(MIN(seq), 0), COUNT(*) FROM exchange_log WHERE seq <= ?1",
        [pruned.seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // The head is read before the delete: when every entry goes, the
    // checkpoint still continues the numbering.
    let prev = head(conn)?;
    conn.execute("DELETE FROM exchange_log WHERE seq <= ?1", [pruned.seq])?;
    let head = append_after(
        conn,
        tz,
        &prev,
        LogEntry::LogPruned {
            entries: n,
            archived,
            pruned_seq: pruned.seq,
            pruned_hash: &pruned.hash,
            first_seq: first,
        },
    )?;
    Ok(Some(head))
}

/// Tampering with stored entries, for the tests that prove verification
/// and pruning catch it. fepd itself never rewrites the log (the test
/// below searches the sources for any statement that would).
#[cfg(test)]
pub(crate) mod tamper {
    use rusqlite::{Connection, params};

    /// Deletes entry `seq`.
    pub fn delete(conn: &Connection, seq: i64) {
        conn.execute("DELETE FROM exchange_log WHERE seq = ?1", [seq])
            .expect("delete an entry");
    }

    /// Rewrites entry `seq`'s event name, leaving its hash as it was.
    pub fn set_event(conn: &Connection, seq: i64, event: &str) {
        conn.execute(
            "UPDATE exchange_log SET event = ?2 WHERE seq = ?1",
            params![seq, event],
        )
        .expect("rewrite an entry");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_prune_deletes_exchange_log_entries() {
        // The log is append-only from fepd's side: search the sources for
        // any other statement that deletes or rewrites entries.
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![src];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let text = std::fs::read_to_string(&p)
                    .unwrap_or_default()
                    .to_uppercase();
                // Tests tamper on purpose; only the code before them counts.
                let code = text.split("#[CFG(TEST)]").next().unwrap_or_default();
                let n: usize = [
                    "DELETE FROM EXCHANGE_LOG",
                    "UPDATE EXCHANGE_LOG",
                    "REPLACE INTO EXCHANGE_LOG",
                    "DROP TABLE EXCHANGE_LOG",
                    "DROP TABLE IF EXISTS EXCHANGE_LOG",
                ]
                .iter()
                .map(|b| code.matches(b).count())
                .sum();
                // `state::log::prune_through` holds the one DELETE.
                let allowed = usize::from(p.ends_with("state/log.rs"));
                if n != allowed && (n > 0 || allowed > 0) {
                    offenders.push(format!("{}: {n}", p.display()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "exchange_log changed outside prune: {offenders:?}"
        );
    }
}
