//! The outbox: the one owner of a batch's lifecycle (docs/protocol.md §4).
//!
//! A batch is born `sealed` ([`seal`]) and its body never changes. From
//! there only the functions of this module move it, one function per
//! transition, each changing the row and appending its exchange-log entry
//! inside the caller's transaction:
//!
//! ```text
//!            export            deliver
//!  sealed ──────────► exported ────────► delivered
//!    │ ▲  ◄──────────  │  (requeue_exported: pull → push;
//!    │ │               │   export_again: its file was lost)
//!    │ │               │ park
//!    │ │ retry         ▼
//!    │ └────────── parked ──(deliver, a collector's .ack only)──► delivered
//!    │ split (413)
//!    ▼
//!  split ──► halves ID.1, ID.2 born sealed
//!
//!            hand_off (cluster mode, after the stream's acknowledgement)
//!  sealed ──────────► handed_off   (delivered by any node from the stream)
//!                         │  the library's answer, sent back to this node
//!                         ├──► delivered
//!                         ├──► parked  (retry: sealed, handed off anew)
//!                         └──► split   (413: halves born sealed)
//! ```
//!
//! `fail` counts a failed attempt (back-off) without changing the state;
//! [`apply`] classifies a library's answer into those transitions. A move
//! the state machine does not allow is refused: the function returns
//! `false` and writes nothing. The delivery modes (`forward::pull`,
//! `forward::push`) and the operator's commands only call these; the SQL
//! stays in `state::batches`.

mod backoff;
mod deliver;
mod lifecycle;
mod replay;
pub mod replay_request;
mod reply;
mod split;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

pub use backoff::delay as retry_delay;
pub use deliver::{Delivery, RemoteRejected, deliver, record_delivery};
pub use lifecycle::{
    Sealing, export, export_again, fail, hand_off, park, requeue_exported, retry, seal,
};
pub use replay::{Unreplayable, replay, replay_stored};
pub use reply::{Reply, apply, apply_via, split};
pub use split::{Half, halves};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// Where a batch stands. Stored as its [`BatchState::as_str`] text in
/// `batch.state`, the words databases of every release hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    /// Pending: waiting to be pushed, or to be exported in pull mode.
    Sealed,
    /// Pull mode: written to the outbox folder, waiting for the collector.
    Exported,
    /// The library answered 200 (or the collector wrote an `.ack`).
    Delivered,
    /// Dead letter: not sent again until an operator retries it.
    Parked,
    /// Replaced by its halves `ID.1`, `ID.2` after a 413.
    Split,
    /// Cluster mode (docs/cluster.md): stored in the cluster's replicated
    /// stream, acknowledged by its servers; any node delivers it from there.
    #[serde(rename = "handed_off")]
    HandedOff,
}

impl BatchState {
    /// Every state, in lifecycle order.
    pub const ALL: [BatchState; 6] = [
        BatchState::Sealed,
        BatchState::Exported,
        BatchState::Delivered,
        BatchState::Parked,
        BatchState::Split,
        BatchState::HandedOff,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Sealed => "sealed",
            BatchState::Exported => "exported",
            BatchState::Delivered => "delivered",
            BatchState::Parked => "parked",
            BatchState::Split => "split",
            BatchState::HandedOff => "handed_off",
        }
    }

    /// The state a stored word names; `None` for any other word.
    pub fn parse(s: &str) -> Option<BatchState> {
        BatchState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Not yet answered for: `sealed` or `exported` (the backlog).
    pub fn is_pending(self) -> bool {
        matches!(self, BatchState::Sealed | BatchState::Exported)
    }
}

impl std::fmt::Display for BatchState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that table columns (`{:<10}`) line up as with a string.
        f.pad(self.as_str())
    }
}

impl FromSql for BatchState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        BatchState::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown batch state {s:?}").into()))
    }
}

impl ToSql for BatchState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}
