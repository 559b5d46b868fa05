//! Reading the exchange log for auditors: verify, show, trace, report,
//! export and prune.
//!
//! Everything here is a function over the state database (a
//! `rusqlite::Connection`) and, for verification, files the auditor holds
//! (witness heads exported by the library, archives written by `export`).
//! Nothing here talks to the network, and nothing writes SQL except
//! [`retention::prune`], which goes through `state::log::prune_through` —
//! the one code path that deletes exchange-log entries.
//!
//! Definitions auditors rely on:
//!
//! - **Times** are the entries' own times (GB/T 7408.1 with offset); a
//!   day (`--day`, `--since DATE`, `--until DATE`) is midnight to midnight
//!   in the configured timezone. `--until DATE` includes the whole day.
//! - **Verification** ([`verify`]) recomputes `hash = SHA-256(prev_hash ‖
//!   JCS(entry))` from the first entry (prev = "" at seq 1, or the pruned
//!   head a `log_pruned` checkpoint names), and requires consecutive seqs.
//!   Witness heads (`{seq, hash}` the library received in `auditHead`)
//!   must each name an entry that exists with that hash.
//! - **The daily report** ([`report`]) counts, per dataset, the files
//!   *finished* that day (their verdict's time) and the batches sealed
//!   from those files, whenever they were sealed; delivery states are as
//!   of the moment the report runs. This makes every record count exactly
//!   once, on the day its file finished, and the identities exact:
//!   `received = rejected + skipped + sealed` (skipped = unchanged +
//!   stale) and `sealed = delivered + library_rejected + parked +
//!   pending`, where `delivered` is the accepted records of delivered
//!   batches, `library_rejected` the records the library refused inside
//!   them, `parked` the records of parked batches and `pending` those of
//!   batches not yet acknowledged (`sealed` or `exported`). A batch split
//!   after a 413 counts through its halves. Batches sealed that day
//!   (whatever file they came from) are shown beside, for information.
//! - **Traces** ([`trace`]) follow a record key through `rejection.key`
//!   (validation), `batch_record.key` (sealed batches and their log
//!   entries) and `remote_rejection.key` (library refusals). A record
//!   skipped as unchanged leaves no per-key trace (only counts).
//!
//! No output carries personal data: entries hold only names, ids, counts
//! and rules; traces show rejection rules and messages, never values.

pub mod report;
pub mod retention;
pub mod show;
pub mod trace;
pub mod verify;

use crate::state::StoreError;
use chrono::{DateTime, Days, FixedOffset, NaiveDate, TimeZone};

/// Errors of the audit commands that are not findings.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
}

pub type Result<T> = std::result::Result<T, AuditError>;

impl From<rusqlite::Error> for AuditError {
    fn from(e: rusqlite::Error) -> AuditError {
        AuditError::Store(StoreError::Sql(e))
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Store(StoreError::io(path, source))
}

/// The instant an entry's time text names; `None` when it is not a
/// date-time with offset (only a tampered entry holds such).
pub fn instant(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok()
}

/// Midnight starting `day` in `tz`.
pub fn day_start(day: NaiveDate, tz: FixedOffset) -> DateTime<FixedOffset> {
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("a fixed offset has no gaps")
}

/// `[start, end)` of `day` in `tz`.
pub fn day_bounds(
    day: NaiveDate,
    tz: FixedOffset,
) -> (DateTime<FixedOffset>, DateTime<FixedOffset>) {
    let next = day.checked_add_days(Days::new(1)).expect("date in range");
    (day_start(day, tz), day_start(next, tz))
}

pub fn parse_day(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| AuditError::Usage(format!("{text:?} is not a date like 2026-11-20")))
}

/// Which end of a range a bound is, for a bare date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A date means its midnight (`--since`).
    Start,
    /// A date means the whole day is included (`--until`).
    End,
}

/// A bound given as `YYYY-MM-DD` or a date-time with offset, as an
/// instant: for `End::End` the first instant *after* the range (exclusive).
pub fn parse_bound(text: &str, end: End, tz: FixedOffset) -> Result<DateTime<FixedOffset>> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let (start, next) = day_bounds(d, tz);
        return Ok(if end == End::Start { start } else { next });
    }
    let local = || {
        ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
            .and_then(|t| tz.from_local_datetime(&t).single())
    };
    match instant(text).or_else(local) {
        Some(t) if end == End::End => Ok(t + chrono::Duration::seconds(1)),
        Some(t) => Ok(t),
        None => Err(AuditError::Usage(format!(
            "{text:?} is neither a date like 2026-11-20 nor a date-time like 2026-11-20T08:00:00+08:00 (without an offset, in the configured timezone)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz8() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn a_day_is_midnight_to_midnight_in_the_configured_offset() {
        let (s, e) = day_bounds(parse_day("2026-11-20").unwrap(), tz8());
        assert_eq!(s.to_rfc3339(), "2026-11-20T00:00:00+08:00");
        assert_eq!(e.to_rfc3339(), "2026-11-21T00:00:00+08:00");
        // 23:30 UTC on the 19th is the 20th in +08:00.
        let t = instant("2026-11-19T23:30:00+00:00").unwrap();
        assert!(s <= t && t < e);
    }

    #[test]
    fn until_includes_the_whole_day_or_the_second_named() {
        let e = parse_bound("2026-11-20", End::End, tz8()).unwrap();
        assert_eq!(e.to_rfc3339(), "2026-11-21T00:00:00+08:00");
        let e = parse_bound("2026-11-20T10:00:00+08:00", End::End, tz8()).unwrap();
        assert_eq!(e.to_rfc3339(), "2026-11-20T10:00:01+08:00");
        assert!(parse_bound("yesterday", End::Start, tz8()).is_err());
    }

    #[test]
    fn a_date_time_without_offset_is_in_the_configured_timezone() {
        let s = parse_bound("2026-11-20T08:30:00", End::Start, tz8()).unwrap();
        assert_eq!(s.to_rfc3339(), "2026-11-20T08:30:00+08:00");
        let s = parse_bound("2026-11-20 08:30:00", End::Start, tz8()).unwrap();
        assert_eq!(s.to_rfc3339(), "2026-11-20T08:30:00+08:00");
    }
}
