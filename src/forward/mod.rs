//! Forward: deliver sealed batches and record what the library said.
//!
//! Two sinks share the outbox table: [`outbox`] (pull mode, PROTOCOL.md §5:
//! batch files the library's collector picks up and acknowledges with
//! `.ack`/`.nack` files) and, in push mode, the HTTP forwarder. Either way a
//! batch's body is sent exactly as sealed, and delivery state only moves
//! forward in a transaction with its exchange-log entry. Only `forward/`
//! talks to the library.

pub mod http;
pub mod outbox;

#[cfg(test)]
mod model_tests;
