//! Intake: notice files dropped into `spool/<dataset>/inbox/` and claim the
//! complete ones by an atomic rename into `work/`.
//!
//! The watcher (`notify`) only wakes the scanner; the scan of the folder is
//! the ground truth, run at start-up, every `rescan_secs`, on watcher
//! overflow and on every wake-up, so NFS/CIFS spools that give no events
//! still work. Intake never reads file contents: it only decides when a
//! file is complete (the drop contract) and moves it — by descriptor,
//! never following links (`claim`) — and reports, once, every file it
//! will not take (`refusal`).

pub mod claim;
pub mod refusal;
pub mod scan;
mod watch;

pub use scan::{Claimed, Inbox, Scanner};
pub use watch::{Wake, watch};
