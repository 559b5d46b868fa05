//! Integration tests: the `fepd` binary against real files, a real SQLite
//! state database and, for push mode, `fepd simulate-library` on loopback.

mod config;
mod data;
mod harness;
mod killtest;
mod mariadb;
mod nats;
mod pg;
mod receivers;
mod sql_checks;
mod surface;
mod webdriver;

mod alerts;
mod audit;
mod audit_bytes;
mod backup;
mod bad_input;
mod cluster;
mod console;
mod console_admin;
mod console_browser;
mod console_ops;
mod console_records;
mod crash;
mod credentials;
mod data_staff;
mod data_staff_reports;
mod diskfull;
mod docs;
mod doctor;
mod hostile_intake;
mod hostile_parse;
mod library_side;
mod packaging;
mod pipeline;
mod push;
mod push_order;
mod reload;
mod replay;
mod schedule;
mod selftest;
mod service;
mod shutdown;
mod spool_access;
mod sql_datasets;
mod sql_mysql;
mod sql_postgres;
mod sql_source;
mod startup_refusals;
mod upgrade;
mod validate_cmd;

mod operator;
mod retention;
mod system_credentials;
