//! The exit statuses of a rotation, which are those of the `warden` binary (its `exit.rs`,
//! whose tests check that the two agree): a script that runs `warden rotate` or
//! `warden-rotate` reads the same numbers.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done: the kind is at the target (or the dry run printed its plan) |
//! | 1 | refused: another rotation is under way, a bad version, or any other error |
//! | 2 | usage error |
//! | 3 | timed out: holders remain in the old version; the rotation stays begun |
//! | 5 | no such resource kind |
//! | 7 | unavailable: no member reachable, or no quorum |
//! | 8 | permission denied (a rotation needs `admin` on the kind) |
//! | 130 | interrupted by Ctrl-C (the rotation stays begun) |
//! | 141 | standard output closed by its reader |

use warden_client::{ClientError, Code};

use crate::driver::{Error, Outcome};

/// Done.
pub const DONE: u8 = 0;
/// Refused, or any error without a status of its own.
pub const OTHER: u8 = 1;
/// Timed out with holders left; the rotation stays begun.
pub const TIMEOUT: u8 = 3;
/// No such resource kind.
pub const NOT_FOUND: u8 = 5;
/// No member could serve.
pub const UNAVAILABLE: u8 = 7;
/// The cluster refused the caller.
pub const PERMISSION_DENIED: u8 = 8;
/// Stopped by Ctrl-C.
pub const INTERRUPTED: u8 = 130;
/// Standard output closed by its reader.
pub const CLOSED_PIPE: u8 = 141;

/// The status of a run's outcome.
pub fn of_outcome(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Planned | Outcome::Done => DONE,
        Outcome::TimedOut => TIMEOUT,
    }
}

/// The status of a run's error.
pub fn of_error(error: &Error) -> u8 {
    match error {
        Error::Client(e) => of_client_error(e),
        Error::Refused(_) => OTHER,
        Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => CLOSED_PIPE,
        Error::Output(_) => OTHER,
    }
}

/// The status of a client error, as `warden` gives it.
pub fn of_client_error(error: &ClientError) -> u8 {
    match error {
        ClientError::Unavailable { .. } => UNAVAILABLE,
        ClientError::Server { code, .. } => match code {
            Code::NotFound => NOT_FOUND,
            Code::Unavailable => UNAVAILABLE,
            Code::PermissionDenied | Code::Unauthenticated => PERMISSION_DENIED,
            Code::DeadlineExceeded => TIMEOUT,
            _ => OTHER,
        },
        _ => OTHER,
    }
}

#[cfg(test)]
mod tests {
    use warden_client::ErrorKind;

    use super::*;

    fn server(code: Code, kind: ErrorKind) -> Error {
        Error::Client(ClientError::Server { code, message: "m".into(), kind: Some(kind) })
    }

    #[test]
    fn refusals_and_failures_have_warden_statuses() {
        assert_eq!(of_error(&server(Code::NotFound, ErrorKind::NoResource)), NOT_FOUND);
        let elsewhere = server(Code::FailedPrecondition, ErrorKind::InvalidResourceRequest);
        assert_eq!(of_error(&elsewhere), OTHER);
        assert_eq!(of_error(&Error::Refused("x".into())), OTHER);
        let denied = server(Code::PermissionDenied, ErrorKind::PermissionDenied);
        assert_eq!(of_error(&denied), PERMISSION_DENIED);
        assert_eq!(of_error(&server(Code::Unavailable, ErrorKind::NoQuorum)), UNAVAILABLE);
        let gone = ClientError::Unavailable { endpoints: "a".into(), last: "b".into() };
        assert_eq!(of_error(&Error::Client(gone)), UNAVAILABLE);
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(of_error(&Error::Output(pipe)), CLOSED_PIPE);
        assert_eq!(of_outcome(&Outcome::TimedOut), TIMEOUT);
        assert_eq!(of_outcome(&Outcome::Done), DONE);
        assert_eq!(of_outcome(&Outcome::Planned), DONE);
    }
}
