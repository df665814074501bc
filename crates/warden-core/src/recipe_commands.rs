//! Which recipe applies which command: the one place that names every recipe's commands,
//! so that [`State::apply`](crate::State::apply) hands them all over in one arm.

use crate::command::{Command, HoldRef};
use crate::error::CoreError;
use crate::ids::SessionId;
use crate::namespace::Mutation;
use crate::recipe::{self, Joined, Leaving};
use crate::response::Output;
use crate::{barrier, election, lock};

/// Applies a recipe's command.
pub(crate) fn apply(
    m: &mut Mutation<'_>,
    command: Command,
    session: Option<SessionId>,
) -> Result<Output, CoreError> {
    let needs =
        |path: &str| session.ok_or_else(|| CoreError::SessionRequired { path: path.to_owned() });
    match command {
        Command::Acquire { path, kind, mode, delay_ms } => needs(&path)
            .and_then(|s| lock::acquire(m, s, &path, kind, mode, delay_ms))
            .map(Joined::output),
        Command::Release { path, hold } => {
            needs(&path).and_then(|s| recipe::leave(m, s, &path, &hold, Leaving::Released))
        }
        Command::Revoke { path, session } => {
            recipe::leave(m, session, &path, &HoldRef::Any, Leaving::Revoked)
        }
        Command::WakeLocks => Ok(Output::LocksWoken { count: recipe::wake(m) }),
        Command::Campaign { path, value } => {
            needs(&path).and_then(|s| election::campaign(m, s, &path, &value)).map(Joined::output)
        }
        Command::Proclaim { path, token, value } => {
            needs(&path).and_then(|s| election::proclaim(m, s, &path, token, value))
        }
        Command::Resign { path, token } => {
            needs(&path).and_then(|s| election::resign(m, s, &path, token))
        }
        Command::SetBarrier { path } => barrier::set(m, &path),
        Command::RemoveBarrier { path } => barrier::remove(m, &path),
        Command::WaitBarrier { path } => needs(&path).and_then(|s| barrier::wait(m, s, &path)),
        Command::EnterBarrier { path, count } => {
            needs(&path).and_then(|s| barrier::enter(m, s, &path, count)).map(Joined::output)
        }
        Command::LeaveBarrier { path } => needs(&path).and_then(|s| barrier::leave(m, s, &path)),
        // State::apply hands over only the commands above.
        other => Err(CoreError::Decode {
            what: "recipe command".to_owned(),
            reason: format!("{other:?} is not a recipe's command"),
        }),
    }
}

#[cfg(test)]
#[path = "recipe_test.rs"]
mod tests;
