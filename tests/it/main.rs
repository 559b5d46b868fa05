//! Integration tests: the `fepd` binary against real files, a real SQLite
//! state database and, for push mode, `fepd simulate-library` on loopback.

mod data;
mod harness;
mod killtest;

mod audit;
mod audit_bytes;
mod backup;
mod bad_input;
mod crash;
mod credentials;
mod diskfull;
mod library_side;
mod hostile_parse;
mod hostile_intake;
mod docs;
mod packaging;
mod pipeline;
mod push;
mod reload;
mod schedule;
mod service;
mod shutdown;
mod startup_refusals;
mod spool_access;
mod validate_cmd;

mod system_credentials;
mod operator;
mod retention;
