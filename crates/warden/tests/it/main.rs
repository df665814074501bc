//! Tests of the `warden` binary: real server processes killed with SIGKILL, and the CLI.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod certs;
mod cli;
mod cli_acl;
mod cli_barrier;
mod cli_elect;
mod cli_exit;
mod cli_lock;
mod cli_lock_stats;
mod cli_rotate;
mod cli_snapshot;
mod cli_tls;
mod cli_values;
mod crash;
mod elections;
mod faults;
mod lock_deletes;
mod lock_holders;
mod logs;
mod membership;
mod processes;
mod python_client;
mod scale;
