//! The one place that converts between the wire (`warden.v1`, [`crate::v1`]) and the
//! core's types (`warden_core`), both ways, for the server and the client alike.
//!
//! A member turns requests into the core's commands and the core's outputs, stats and
//! events into answers; the client turns the core's types a program writes (compares,
//! transaction ops, create modes) into requests, and answers back into the core's types.
//! Written once, the two sides cannot drift apart: a compare operator or a node kind means
//! the same on both ends.
//!
//! A conversion that can meet a value it does not know (an enum number from a newer peer,
//! a oneof left unset, a name it cannot read) returns a [`ConvertError`] naming the field,
//! the value and what is accepted; it never takes a default in its place. The server
//! answers it with INVALID_ARGUMENT, the client reports it as an answer it cannot read.
//!
//! One file per area of the API: [`kv`] (stats, origins, create/set/delete), [`txn`]
//! (compares, transaction ops and results), [`lock`] (lock types, acquires, releases,
//! lock status, and the names of every recipe's queue), [`lock_stats`] (lock statistics
//! and their histograms), [`election`] (leaders), [`watch`]
//! (events and scopes), [`session`] (lost holds).

pub mod election;
mod error;
pub mod kv;
pub mod lock;
pub mod lock_stats;
pub mod session;
pub mod txn;
pub mod watch;

pub use error::ConvertError;
