//! # warden-core
//!
//! The deterministic state machine of warden: the namespace tree, sessions, revisions and
//! change events. Every replica applies the same log entries through [`State::apply`] and
//! reaches the same state, answers and events.
//!
//! It is not a server, a store or a network client: it does no I/O, reads no clock, draws
//! no random number and spawns no task. Time and ids arrive in the [`ApplyContext`] of each
//! log entry. Replication, persistence and the API live in the other crates.
//!
//! ```
//! use warden_core::{ApplyContext, Command, CreateMode, Output, Request, State};
//!
//! let mut state = State::default();
//! let ctx = ApplyContext { index: 1, time_ms: 1_700_000_000_000, term: 1 };
//! let create = Command::Create { path: "/app".into(), data: "v1".into(), mode: CreateMode::PERSISTENT };
//! let applied = state.apply(Request::new(create), &ctx);
//! assert!(matches!(applied.response.outcome, Ok(Output::Created { .. })));
//! assert_eq!(applied.response.revision, 1);
//! assert_eq!(state.get("/app").map(|n| n.data.clone()), Ok("v1".into()));
//! ```

pub mod acl;
pub mod barrier;
pub mod codec;
mod command;
pub mod deadlock;
mod delete;
pub mod election;
mod error;
mod event;
mod ids;
pub mod invariants;
mod limits;
pub mod lock;
pub mod lock_family;
mod lock_invariants;
pub mod lock_stats;
mod namespace;
mod node;
pub mod path;
mod path_rule;
pub mod queue;
pub mod queue_counts;
pub mod queue_data;
pub mod quota;
pub mod recipe;
mod recipe_commands;
pub mod resource;
mod response;
mod session;
mod snapshot;
mod state;
mod tree;
mod txn;
mod watch;

pub use command::{
    AcquireOptions, Check, Command, Compare, CompareOp, HoldRef, LogCommand, Request, TxnOp,
};
pub use error::{CoreError, CycleStep, PolicyProblem};
pub use event::{Event, EventKind};
pub use ids::{ApplyContext, RequestId, SessionId};
pub use limits::Limits;
pub use node::{CreateMode, MAX_SEQUENCE, Node, NodeKind, Stat};
pub use response::{Output, Response};
pub use session::{Session, SessionTable};
pub use state::{Applied, Changes, ResourceView, State, StateMeta};
pub use tree::Tree;
pub use watch::WatchFilter;
