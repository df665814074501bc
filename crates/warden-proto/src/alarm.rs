//! The kinds of alarm a member reports (`Cluster.Status`'s `alarms`, the `warden_alarm`
//! metric's `kind` label, `GET /health`), spelt once for server, client and CLI.

/// The disk under the member's data directory is below its reserve
/// (`[space] min_free_bytes`): writes that add data are refused.
pub const ALARM_NOSPACE: &str = "nospace";

/// The cluster's data-size quota (`[space] quota_backend_bytes`) is used up: a write was
/// refused and would still not fit.
pub const ALARM_QUOTA: &str = "quota";

/// Every kind, for metrics that show each one from the start.
pub const ALL_ALARMS: &[&str] = &[ALARM_NOSPACE, ALARM_QUOTA];
