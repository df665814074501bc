//! Property tests of warden-core: random command sequences against the whole state machine.

#![allow(unreachable_pub)]

mod acl;
mod deadlock;
mod determinism;
mod hierarchy;
mod invariants;
mod limits;
mod lock_nodes;
mod lock_stats;
mod queue;
mod quota;
mod reentrant;
mod steps;
