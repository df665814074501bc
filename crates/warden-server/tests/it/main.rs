//! Multi-node tests of warden-server: in-process nodes talking over real loopback sockets.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod acl;
mod audit;
mod backup;
mod client_api;
mod cluster;
mod conformance;
mod deadlock;
mod failover;
mod fanout;
mod fatal;
mod hierarchy;
mod http;
mod identity;
mod limits;
mod listing;
mod lock_stats;
mod locks;
mod membership;
mod partition;
mod recipes;
mod reentrant;
mod replication;
mod resources;
mod rest;
mod rest_schema;
mod sessions;
mod space;
mod status_page;
mod tls;
mod transport;
mod txn_errors;
mod watch;
