//! Exit statuses an operator can script on, and the one mapping from errors to them.
//!
//! 2 is clap's usage error; `warden lock` passes its command's status through, so the
//! statuses of warden's own failures stay few and fixed. The rotate tool (`warden-rotate`,
//! whose code `warden rotate` runs) gives the same statuses; a test here checks it.

use tonic::Code;
use warden_client::{ClientError, ErrorKind, LockError};

/// Any error without a status of its own.
pub(crate) const OTHER: u8 = 1;
/// Not granted or not done in time (`warden lock|elect|barrier --timeout`, a server
/// deadline).
pub(crate) const TIMEOUT: u8 = 3;
/// The lock or leadership was lost (revoked, or its session gone) while `warden lock` or
/// `warden elect` waited or ran.
pub(crate) const LOST: u8 = 4;
/// No such node or session.
pub(crate) const NOT_FOUND: u8 = 5;
/// The node already exists, or is not at the expected version.
pub(crate) const CONFLICT: u8 = 6;
/// No member could serve the request: none reachable, or no quorum.
pub(crate) const UNAVAILABLE: u8 = 7;
/// The cluster refused the caller.
pub(crate) const PERMISSION_DENIED: u8 = 8;
/// An acquire refused because its wait would have closed a deadlock cycle: nothing
/// changed, and trying again after the other sessions move on may succeed (unlike a
/// conflict, 6, nothing needs re-reading; unlike a loss, 4, nothing was held).
pub(crate) const DEADLOCK: u8 = 9;
/// `warden lock`: the command was found but could not be run.
pub(crate) const CANNOT_RUN: u8 = 126;
/// `warden lock`: no such command.
pub(crate) const NO_COMMAND: u8 = 127;
/// Stopped by Ctrl-C (128 + SIGINT).
pub(crate) const INTERRUPTED: u8 = 130;
/// Standard output was closed by its reader (128 + SIGPIPE, as a shell reports `ls | head`).
pub(crate) const CLOSED_PIPE: u8 = 141;

/// The table `warden --help` ends with (and the README repeats).
pub(crate) const HELP: &str = "\
Exit status:
  0    success
  1    any other error (the message says what)
  2    usage error: a bad flag or argument
  3    timeout: warden lock, elect or barrier --timeout ran out (opening the session
       included), or a deadline; warden rotate --timeout ran out with holders left on
       the old version (the rotation stays begun: run it again to pick it up)
  4    lock lost or leadership lost: revoked by an operator (or by a forced rotation),
       or its session gone, while warden lock or warden elect waited or ran
  5    not found: no such node, session, resource kind or member; no leader (warden
       elect leader)
  6    already exists, or version mismatch (put/rm --version N), or a compare of
       warden txn did not hold (nothing was applied); a member id in use with other
       addresses (warden member add)
  7    unavailable: no member reachable, or no quorum (see warden cluster status);
       warden endpoint health: a member is not healthy
  8    permission denied (warden rotate and resource init need admin on the kind)
  9    deadlock: the lock's wait would have closed a cycle of sessions waiting for
       each other (the message names it); nothing changed
  130  interrupted by Ctrl-C
  141  standard output closed by its reader (warden ls / | head -1)
warden lock, warden elect and warden barrier NAME exit with their command's own status
once the command ran (126 if it cannot be run, 127 if it is not found).";

/// The exit status for `error`: that of the first client or lock error in its chain.
pub(crate) fn code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<LockError>() {
            return lock_code(e);
        }
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return client_code(e);
        }
    }
    OTHER
}

fn lock_code(error: &LockError) -> u8 {
    match error {
        LockError::Timeout { .. } => TIMEOUT,
        LockError::SessionLost { .. } | LockError::Revoked { .. } | LockError::HoldEnded { .. } => {
            LOST
        }
        LockError::AlreadyLocked { .. } | LockError::OtherOwner { .. } => OTHER,
        LockError::Deadlock { .. } => DEADLOCK,
        LockError::Backend(e) => client_code(e),
    }
}

fn client_code(error: &ClientError) -> u8 {
    match error {
        ClientError::Unavailable { .. } => UNAVAILABLE,
        ClientError::Server { code, kind, .. } => match code {
            // A wait or a hold (a lock's, a leadership) that ended: revoked, or gone with
            // its session.
            Code::Aborted | Code::FailedPrecondition
                if matches!(
                    kind,
                    Some(ErrorKind::WaitRevoked | ErrorKind::WaitEnded | ErrorKind::HoldEnded)
                ) =>
            {
                LOST
            }
            Code::Aborted if *kind == Some(ErrorKind::Deadlock) => DEADLOCK,
            Code::NotFound => NOT_FOUND,
            // The CLI meets it only naming a session (session info or close ID).
            Code::FailedPrecondition if *kind == Some(ErrorKind::SessionExpired) => NOT_FOUND,
            Code::AlreadyExists => CONFLICT,
            // ABORTED is a version conflict (BadVersion, or a transaction op failing on
            // one), except a session's stale leader term.
            Code::Aborted if *kind != Some(ErrorKind::StaleTerm) => CONFLICT,
            Code::Unavailable => UNAVAILABLE,
            Code::PermissionDenied | Code::Unauthenticated => PERMISSION_DENIED,
            Code::DeadlineExceeded => TIMEOUT,
            _ => OTHER,
        },
        ClientError::InvalidEndpoint { .. }
        | ClientError::Tls { .. }
        | ClientError::OutcomeUnknown { .. }
        | ClientError::MessageTooLarge { .. }
        | ClientError::UnexpectedResponse { .. }
        | ClientError::Compacted { .. } => OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: Code, kind: Option<ErrorKind>) -> anyhow::Error {
        ClientError::Server { code, message: "m".into(), kind }.into()
    }

    #[test]
    fn client_errors_map_to_their_status() {
        assert_eq!(code(&server(Code::NotFound, Some(ErrorKind::NoNode))), NOT_FOUND);
        assert_eq!(code(&server(Code::AlreadyExists, Some(ErrorKind::NodeExists))), CONFLICT);
        assert_eq!(code(&server(Code::Aborted, Some(ErrorKind::BadVersion))), CONFLICT);
        assert_eq!(code(&server(Code::Aborted, Some(ErrorKind::TxnOpFailed))), CONFLICT);
        assert_eq!(code(&server(Code::Aborted, Some(ErrorKind::StaleTerm))), OTHER);
        assert_eq!(code(&server(Code::FailedPrecondition, Some(ErrorKind::LockInUse))), OTHER);
        assert_eq!(
            code(&server(Code::FailedPrecondition, Some(ErrorKind::SessionExpired))),
            NOT_FOUND
        );
        assert_eq!(code(&server(Code::Unavailable, Some(ErrorKind::NoQuorum))), UNAVAILABLE);
        assert_eq!(code(&server(Code::PermissionDenied, None)), PERMISSION_DENIED);
        assert_eq!(code(&server(Code::NotFound, Some(ErrorKind::NoLeader))), NOT_FOUND);
        assert_eq!(code(&server(Code::Aborted, Some(ErrorKind::WaitEnded))), LOST);
        assert_eq!(code(&server(Code::Aborted, Some(ErrorKind::WaitRevoked))), LOST);
        assert_eq!(code(&server(Code::FailedPrecondition, Some(ErrorKind::HoldEnded))), LOST);
        assert_eq!(code(&server(Code::FailedPrecondition, Some(ErrorKind::WrongRecipe))), OTHER);
        assert_eq!(code(&server(Code::DeadlineExceeded, None)), TIMEOUT);
        assert_eq!(code(&server(Code::Aborted, Some(ErrorKind::Deadlock))), DEADLOCK);
        assert_eq!(code(&server(Code::InvalidArgument, Some(ErrorKind::InvalidPath))), OTHER);
        let unavailable = ClientError::Unavailable { endpoints: "a".into(), last: "b".into() };
        assert_eq!(code(&anyhow::Error::from(unavailable)), UNAVAILABLE);
    }

    #[test]
    fn the_rotate_tool_gives_the_same_statuses() {
        use warden_rotate::exit as tool;
        assert_eq!(
            [tool::OTHER, tool::TIMEOUT, tool::NOT_FOUND, tool::UNAVAILABLE],
            [OTHER, TIMEOUT, NOT_FOUND, UNAVAILABLE]
        );
        assert_eq!(
            [tool::PERMISSION_DENIED, tool::INTERRUPTED, tool::CLOSED_PIPE],
            [PERMISSION_DENIED, INTERRUPTED, CLOSED_PIPE]
        );
        // The errors a rotation meets, mapped the same way by both.
        let errors = [
            (Code::NotFound, Some(ErrorKind::NoResource)),
            (Code::FailedPrecondition, Some(ErrorKind::InvalidResourceRequest)),
            (Code::InvalidArgument, Some(ErrorKind::InvalidResourceRequest)),
            (Code::PermissionDenied, Some(ErrorKind::PermissionDenied)),
            (Code::Unauthenticated, Some(ErrorKind::Unauthenticated)),
            (Code::Unavailable, Some(ErrorKind::NoQuorum)),
            (Code::DeadlineExceeded, None),
            (Code::Internal, Some(ErrorKind::Internal)),
        ];
        for (c, kind) in errors {
            let e = ClientError::Server { code: c, message: "m".into(), kind };
            assert_eq!(tool::of_client_error(&e), client_code(&e), "{c:?} {kind:?}");
        }
        let gone = ClientError::Unavailable { endpoints: "a".into(), last: "b".into() };
        assert_eq!(tool::of_client_error(&gone), client_code(&gone));
    }

    #[test]
    fn lock_errors_and_context_keep_their_status() {
        let lost = LockError::SessionLost { path: "/l".into() };
        assert_eq!(code(&anyhow::Error::from(lost)), LOST);
        let timeout = LockError::Timeout { path: "/l".into(), waited: Default::default() };
        assert_eq!(code(&anyhow::Error::from(timeout)), TIMEOUT);
        let deadlock = LockError::Deadlock { path: "/l".into(), message: "m".into() };
        let wrapped = anyhow::Error::from(deadlock).context("cannot take the lock \"/l\"");
        assert_eq!(code(&wrapped), DEADLOCK);
        let backend = LockError::Backend(ClientError::Server {
            code: Code::NotFound,
            message: "m".into(),
            kind: Some(ErrorKind::NoNode),
        });
        assert_eq!(code(&anyhow::Error::from(backend)), NOT_FOUND);
        let wrapped =
            server(Code::AlreadyExists, Some(ErrorKind::NodeExists)).context("creating /a");
        assert_eq!(code(&wrapped), CONFLICT);
        assert_eq!(code(&anyhow::anyhow!("plain")), OTHER);
    }
}
