//! Integration tests: the `fepd` binary against real files, a real SQLite
//! state database and, for push mode, `fepd simulate-library` on loopback.

mod data;
mod harness;
mod killtest;

mod audit;
mod bad_input;
mod crash;
mod data_staff;
mod diskfull;
mod pipeline;
mod push;
mod reload;
mod schedule;
mod shutdown;
mod validate_cmd;
