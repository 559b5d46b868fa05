//! Integration tests: the `fepd` binary against real files, a real SQLite
//! state database and, for push mode, `fepd simulate-library` on loopback.

mod data;
mod harness;
mod killtest;

mod audit;
mod backup;
mod bad_input;
mod crash;
mod credentials;
mod diskfull;
mod docs;
mod packaging;
mod pipeline;
mod push;
mod reload;
mod schedule;
mod shutdown;
mod spool_access;
mod validate_cmd;
