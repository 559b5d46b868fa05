//! fepd — the front-end processor (前置机) exchange daemon.
//!
//! The modules read like the pipeline: `intake` claims files from the spool
//! (whose layout `spool` owns), `decode` turns their bytes into UTF-8,
//! `parse` streams records out of them,
//! `validate` gives each record a verdict, `seal` dedupes and packs valid
//! records into batches, `outbox` owns each batch's lifecycle in the `state`
//! database, `forward` delivers batches (pull or push), and `report` writes
//! what data staff read (`template` the workbooks
//! they fill). `daemon` wires the stages
//! together; `cli` is the command-line glue. See ARCHITECTURE.md.

pub mod alerts;
pub mod audit;
pub mod canon;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod daemon;
pub mod decode;
pub mod doctor;
pub mod forward;
pub mod fsio;
pub mod intake;
pub mod oneline;
pub mod outbox;
pub mod parse;
pub mod report;
pub mod retention;
pub mod seal;
pub mod secrets;
pub mod simulate;
pub mod source;
pub mod spool;
pub mod state;
pub mod template;
pub mod validate;
