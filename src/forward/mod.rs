//! Forward: the two delivery modes, behind one seam.
//!
//! [`pull`] (docs/protocol.md §5: batch files the library's collector picks
//! up and acknowledges with `.ack`/`.nack` files) and [`push`] (HTTP to the
//! library, §2–§4) share the outbox table. Either way a batch's body is
//! sent exactly as sealed, and what the library said is recorded by
//! `crate::outbox` (export, deliver, park, split, fail, `apply`): neither
//! mode changes a batch's state itself. [`switch`] prepares the outbox
//! when the mode changes. Only `forward/` talks to the library.

pub mod pull;
pub mod push;
pub mod switch;
