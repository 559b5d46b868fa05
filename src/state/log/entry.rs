//! The typed exchange-log entries: one variant per event, with its fields.
//!
//! Every entry fepd appends is a [`LogEntry`]; each variant names the
//! fields its event records, so no call site can misspell or forget a
//! member. `columns.rs` turns a variant into the stored `dataset`, `file`,
//! `batch`, `counts` and `details` columns — the members and values fepd
//! has always written (`entry_tests.rs` pins the text of every variant).

use super::Event;
use crate::state::files::Counts;

/// One entry to append; `seq`, `time` and `hash` are filled in by
/// [`super::append`]. Counts of records, bytes and files are plain numbers;
/// nothing here carries personal data (names of files, batch ids, counts
/// and rule names only).
#[derive(Debug, Clone)]
pub enum LogEntry<'a> {
    /// A fresh start of the daemon.
    DaemonStarted { version: &'a str, pid: u32 },
    /// SIGTERM/SIGINT: the daemon drained and stopped.
    DaemonStopped,
    /// Files left in `work/` by the previous run are resumed.
    DaemonRecovered { files: usize },
    /// The config of a fresh start.
    ConfigLoaded(ConfigSummary<'a>),
    /// SIGHUP: the config was re-read and the service loop restarted.
    ConfigReloaded(ConfigSummary<'a>),
    /// SIGHUP: the new config was refused at `stage` (`check` or `start`).
    ConfigRefused {
        stage: &'a str,
        problems: &'a [String],
    },
    /// A file was claimed and identified; `encoding` is left out when the
    /// file was not decoded.
    FileClaimed {
        dataset: &'a str,
        file: &'a str,
        file_id: i64,
        work_name: &'a str,
        sha256: &'a str,
        size: u64,
        format: &'a str,
        encoding: Option<&'a str>,
    },
    /// A committed chunk found records unchanged or stale.
    RecordsSkipped {
        dataset: &'a str,
        file: &'a str,
        unchanged: i64,
        stale: i64,
    },
    /// The verdict of a file read to the end with records and no rejection.
    FileDone(Verdict<'a>),
    /// The verdict of a file read to the end without a record.
    FileEmpty(Verdict<'a>),
    /// The verdict of a file with a fault or a rejected record.
    FileRejected(Verdict<'a>),
    /// The breaker set a file aside after `dead_attempts` attempts died on
    /// it: event `file_rejected`, with `deadAttempts` instead of
    /// `changedAfterClaim`.
    FileSetAside {
        dataset: &'a str,
        file: &'a str,
        counts: Counts,
        file_id: i64,
        sha256: &'a str,
        final_name: &'a str,
        fault: &'a str,
        dead_attempts: i64,
    },
    /// Cluster mode (docs/cluster.md): another node took the file over;
    /// this node, which had committed `records_done` of its records, left
    /// it to that node.
    FileTakenOver {
        dataset: &'a str,
        file: &'a str,
        file_id: i64,
        records_done: i64,
    },
    /// The file had the same bytes as `duplicate_of`, an earlier file.
    FileDuplicate {
        dataset: &'a str,
        file: &'a str,
        file_id: i64,
        sha256: &'a str,
        duplicate_of: &'a str,
        duplicate_of_id: i64,
        final_name: &'a str,
    },
    /// A batch was sealed; `file_id` (its source file) is `null` when none.
    BatchSealed {
        dataset: &'a str,
        batch: &'a str,
        records: usize,
        bytes: usize,
        digest: &'a str,
        route: &'a str,
        file_id: Option<i64>,
    },
    /// Cluster mode (docs/cluster.md): the batch was stored in the
    /// cluster's stream (`stream_seq`) by `node` and acknowledged there.
    BatchHandedOff {
        dataset: &'a str,
        batch: &'a str,
        records: i64,
        route: &'a str,
        node: &'a str,
        stream_seq: u64,
    },
    /// Cluster mode: this node (`node`) pushed a batch sealed by `origin`
    /// from the cluster's stream, and what came of it (`outcome`:
    /// `delivered`, `duplicate`, `retry`, `parked`, `too_large`);
    /// `delivery` counts the stream's deliveries of the message, this one
    /// included.
    ClusterPushed(ClusterPush<'a>),
    /// A batch file was written to the outbox folder (pull mode).
    BatchExported {
        dataset: &'a str,
        batch: &'a str,
        records: i64,
    },
    /// A failed attempt to send a batch (`outcome` is always `failed`).
    BatchSent {
        dataset: &'a str,
        batch: &'a str,
        records: i64,
        attempt: i64,
        reason: &'a str,
        retry_in_ms: u64,
        via: &'a str,
    },
    /// The library accepted a batch. `was_parked` is present only for a
    /// batch that was parked (its last error, `null` when it had none).
    BatchDelivered {
        dataset: &'a str,
        batch: &'a str,
        records: i64,
        accepted: i64,
        rejected: usize,
        receipt_id: &'a str,
        duplicate: bool,
        via: &'a str,
        attempts: Option<i64>,
        was_parked: Option<Option<&'a str>>,
    },
    /// The library refused records of a batch it accepted: one code per
    /// refused record (`records` counts them).
    RecordsLibraryRejected {
        dataset: &'a str,
        batch: &'a str,
        codes: Vec<&'a str>,
        file_id: Option<i64>,
    },
    /// A batch was parked (dead letter), and why.
    BatchParked {
        dataset: &'a str,
        batch: &'a str,
        records: i64,
        why: Parking<'a>,
    },
    /// An operator sent a parked batch again.
    BatchRetried {
        dataset: &'a str,
        batch: &'a str,
        previous_error: Option<&'a str>,
        by: &'a str,
    },
    /// A batch the library found too large was split in two halves (id,
    /// record count); the route's batch size is lowered to the first's.
    BatchSplit {
        dataset: &'a str,
        batch: &'a str,
        records: i64,
        first: (&'a str, usize),
        second: (&'a str, usize),
    },
    /// Entries up to `pruned_seq` were exported and deleted; written only
    /// by [`super::prune_through`].
    LogPruned {
        entries: i64,
        archived: Archived<'a>,
        pruned_seq: i64,
        pruned_hash: &'a str,
        first_seq: i64,
    },
    /// `fepd selftest` probed the library's routes.
    Selftest {
        library: Option<&'a str>,
        routes: Vec<&'a str>,
        by: &'a str,
    },
    /// A retention pass deleted what `[retention]` no longer keeps.
    RetentionPass(Retained<'a>),
    /// The first refusal of fepd's credentials in an episode.
    CredentialsRefused {
        reason: &'a str,
        route: &'a str,
        retry_in_secs: u64,
    },
    /// A token was granted again; `routes` were refused until then.
    CredentialsAccepted { routes: usize },
    /// A pull-mode acknowledgement whose counts do not add up.
    AckDiscrepancy {
        dataset: &'a str,
        batch: &'a str,
        records: i64,
        accepted: i64,
        rejected: usize,
        unaccounted: i64,
        receipt_id: &'a str,
        via: &'a str,
    },
    /// Exported batches were taken back to be pushed: how many per dataset.
    SinkSwitched { requeued: &'a [(String, usize)] },
    /// `fepd replay` (补传): `batch` re-sends the records of `replay_of`,
    /// asked for by `by` because of `reason`.
    BatchReplayed {
        dataset: &'a str,
        batch: &'a str,
        replay_of: &'a str,
        records: i64,
        by: &'a str,
        reason: &'a str,
    },
    /// An alert episode began (`alert_raised`).
    AlertRaised(AlertEpisode<'a>),
    /// An alert episode ended (`alert_resolved`).
    AlertResolved(AlertEpisode<'a>),
    /// The web console: `user` logged in with `role` (`console_login`).
    ConsoleLogin { user: &'a str, role: &'a str },
    /// A login refused (`console_login_failed`); `reason` is `password`,
    /// `unknown_user`, `locked` or `disabled`.
    ConsoleLoginFailed { user: &'a str, reason: &'a str },
    /// Failed logins reached the limit: `user` is locked until `until`
    /// (`console_locked_out`).
    ConsoleLockedOut {
        user: &'a str,
        failures: i64,
        until: &'a str,
    },
    /// A session ended (`console_logout`): `reason` is `logout`, `idle`
    /// or `expired` (the absolute limit).
    ConsoleLogout { user: &'a str, reason: &'a str },
    /// A request the console refused for security (`console_refused`):
    /// `reason` is `role` (the user's role may not do `action`),
    /// `dataset` (not one of the user's datasets) or `csrf` (a form
    /// without the session's token).
    ConsoleRefused {
        user: &'a str,
        role: &'a str,
        action: &'a str,
        reason: &'a str,
    },
    /// A file uploaded through the console (`console_upload`): checked as
    /// `fepd validate` checks it, and dropped into the inbox when
    /// `enqueued`.
    ConsoleUpload {
        user: &'a str,
        dataset: &'a str,
        file: &'a str,
        size: u64,
        records: u64,
        rejected: u64,
        enqueued: bool,
    },
    /// `fepd users` or the console's 用户 page changed a console user
    /// (`user_changed`): `change` is `added`, `password`, `disabled`,
    /// `enabled`, `reveal_granted` or `reveal_revoked`.
    UserChanged {
        user: &'a str,
        change: &'a str,
        role: &'a str,
        by: &'a str,
    },
    /// A user granted the reveal saw one rejected record's field in clear
    /// in the console (`console_reveal`): the file, the record's number in
    /// it and the field's name — never the value.
    ConsoleReveal {
        user: &'a str,
        dataset: &'a str,
        file: &'a str,
        record: i64,
        field: &'a str,
    },
}

/// One alert episode (README.md, "Alerts"): its kind (`batch_parked`,
/// `route_stalled`…), its subject (a dataset, a route, `intake`,
/// `sink.http`) and since when its condition holds. No values of records.
#[derive(Debug, Clone)]
pub struct AlertEpisode<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    pub since: &'a str,
}

/// What `config_loaded` and `config_reloaded` record of the config.
#[derive(Debug, Clone)]
pub struct ConfigSummary<'a> {
    pub datasets: Vec<&'a str>,
    /// `outbox` or `http`.
    pub sink: &'a str,
}

/// A file's verdict after its records were read (`file_done`,
/// `file_empty`, `file_rejected`). `fault` and `changed_after_claim` are
/// always present, `null` when there is none.
#[derive(Debug, Clone)]
pub struct Verdict<'a> {
    pub dataset: &'a str,
    pub file: &'a str,
    pub counts: Counts,
    pub file_id: i64,
    pub sha256: &'a str,
    pub final_name: &'a str,
    pub fault: Option<&'a str>,
    pub changed_after_claim: Option<Changed<'a>>,
}

/// How a file changed after its claim, and the name it went back to the
/// inbox under. `from_bytes`/`to_bytes` are `null` for a rewrite.
#[derive(Debug, Clone)]
pub struct Changed<'a> {
    /// `grew`, `shrank` or `rewritten`.
    pub change: &'a str,
    pub from_bytes: Option<u64>,
    pub to_bytes: Option<u64>,
    pub returned_as: &'a str,
}

/// Where `fepd audit export --prune` archived the entries it pruned, and
/// who pruned them: kept in the `log_pruned` checkpoint for auditors.
#[derive(Debug, Clone)]
pub struct Archived<'a> {
    /// The archive's file name.
    pub archive: &'a str,
    pub archive_sha256: &'a str,
    pub until: &'a str,
    pub by: &'a str,
}

/// Why a batch was parked.
#[derive(Debug, Clone)]
pub enum Parking<'a> {
    /// An operator's `fepd batches park`.
    Operator { reason: &'a str, by: &'a str },
    /// The library's answer over `via`.
    Library { reason: &'a str, via: &'a str },
    /// The collector's refusal file (`.nack`), with its code and message.
    Refused {
        code: &'a str,
        message: &'a str,
        via: &'a str,
    },
}

impl Parking<'_> {
    /// The reason stored on the parked batch (its `last_error`): the
    /// operator's or the library's words, or the refusal's code and message.
    pub fn reason(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Parking::Operator { reason, .. } | Parking::Library { reason, .. } => (*reason).into(),
            Parking::Refused { code, message, .. } => format!("{code} {message}").into(),
        }
    }
}

/// What a retention pass deleted, and the keep times it applied (as
/// written in the config, `never` for kept forever).
#[derive(Debug, Clone)]
pub struct Retained<'a> {
    pub batch_bodies: usize,
    pub body_bytes: i64,
    pub record_rows: usize,
    pub done_files: u64,
    pub done_bytes: u64,
    pub rejected_files: u64,
    pub rejected_bytes: u64,
    pub delivered_files: u64,
    pub delivered_bytes: u64,
    pub db_pages_freed: i64,
    pub db_bytes: i64,
    pub keep_batch_bodies: &'a str,
    pub keep_record_rows: &'a str,
    pub keep_done_files: &'a str,
    pub keep_rejected_files: &'a str,
    pub keep_delivered_files: &'a str,
    /// `incremental` or `none`.
    pub auto_vacuum: &'a str,
}

/// One push of a batch from the cluster's stream (docs/cluster.md).
#[derive(Debug, Clone)]
pub struct ClusterPush<'a> {
    pub dataset: &'a str,
    pub batch: &'a str,
    pub route: &'a str,
    /// The node that sealed the batch.
    pub origin: &'a str,
    /// The node that pushed it (this one).
    pub node: &'a str,
    pub outcome: &'a str,
    pub receipt_id: Option<&'a str>,
    pub accepted: Option<i64>,
    /// Records the library refused in an accepted batch.
    pub library_rejected: usize,
    pub delivery: u64,
    /// Why it was not delivered (`retry`, `parked`).
    pub reason: Option<&'a str>,
}

impl<'a> LogEntry<'a> {
    /// The event this entry records.
    pub fn event(&self) -> Event {
        use LogEntry as E;
        match self {
            E::DaemonStarted { .. } => Event::DaemonStarted,
            E::DaemonStopped => Event::DaemonStopped,
            E::DaemonRecovered { .. } => Event::DaemonRecovered,
            E::ConfigLoaded(_) => Event::ConfigLoaded,
            E::ConfigReloaded(_) => Event::ConfigReloaded,
            E::ConfigRefused { .. } => Event::ConfigRefused,
            E::FileClaimed { .. } => Event::FileClaimed,
            E::RecordsSkipped { .. } => Event::RecordsSkipped,
            E::FileDone(_) => Event::FileDone,
            E::FileEmpty(_) => Event::FileEmpty,
            E::FileRejected(_) | E::FileSetAside { .. } => Event::FileRejected,
            E::FileDuplicate { .. } => Event::FileDuplicate,
            E::FileTakenOver { .. } => Event::FileTakenOver,
            E::BatchSealed { .. } => Event::BatchSealed,
            E::BatchExported { .. } => Event::BatchExported,
            E::BatchHandedOff { .. } => Event::BatchHandedOff,
            E::ClusterPushed(_) => Event::ClusterPushed,
            E::BatchSent { .. } => Event::BatchSent,
            E::BatchDelivered { .. } => Event::BatchDelivered,
            E::RecordsLibraryRejected { .. } => Event::RecordsLibraryRejected,
            E::BatchParked { .. } => Event::BatchParked,
            E::BatchRetried { .. } => Event::BatchRetried,
            E::BatchSplit { .. } => Event::BatchSplit,
            E::LogPruned { .. } => Event::LogPruned,
            E::Selftest { .. } => Event::Selftest,
            E::RetentionPass(_) => Event::RetentionPass,
            E::CredentialsRefused { .. } => Event::CredentialsRefused,
            E::CredentialsAccepted { .. } => Event::CredentialsAccepted,
            E::AckDiscrepancy { .. } => Event::AckDiscrepancy,
            E::SinkSwitched { .. } => Event::SinkSwitched,
            E::BatchReplayed { .. } => Event::BatchReplayed,
            E::AlertRaised(_) => Event::AlertRaised,
            E::AlertResolved(_) => Event::AlertResolved,
            E::ConsoleLogin { .. } => Event::ConsoleLogin,
            E::ConsoleLoginFailed { .. } => Event::ConsoleLoginFailed,
            E::ConsoleLockedOut { .. } => Event::ConsoleLockedOut,
            E::ConsoleLogout { .. } => Event::ConsoleLogout,
            E::ConsoleRefused { .. } => Event::ConsoleRefused,
            E::ConsoleUpload { .. } => Event::ConsoleUpload,
            E::UserChanged { .. } => Event::UserChanged,
            E::ConsoleReveal { .. } => Event::ConsoleReveal,
        }
    }
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
