//! Which recipe applies which command: the one place that names every recipe's commands,
//! so that [`State::apply`](crate::State::apply) hands them all over in one arm.

use crate::command::{Command, HoldRef};
use crate::error::CoreError;
use crate::ids::SessionId;
use crate::namespace::Mutation;
use crate::recipe::{self, Joined, Leaving};
use crate::response::Output;
use crate::{barrier, election, lock, resource};

/// The path a command would make a recipe at (a join, or a barrier's set), other than
/// a resource kind's own acquire.
fn joined_path(command: &Command) -> Option<&str> {
    match command {
        Command::Acquire { path, .. }
        | Command::Campaign { path, .. }
        | Command::SetBarrier { path }
        | Command::WaitBarrier { path }
        | Command::EnterBarrier { path, .. } => Some(path),
        _ => None,
    }
}

/// Applies a recipe's command.
pub(crate) fn apply(
    m: &mut Mutation<'_>,
    command: Command,
    session: Option<SessionId>,
) -> Result<Output, CoreError> {
    // Only a resource kind's own acquire makes recipes under it.
    if let Some(path) = joined_path(&command) {
        resource::refuse_within(m.tree(), path)?;
    }
    let needs =
        |path: &str| session.ok_or_else(|| CoreError::SessionRequired { path: path.to_owned() });
    match command {
        Command::Acquire { path, kind, mode, delay_ms, options } => needs(&path)
            .and_then(|s| lock::acquire(m, s, &path, kind, mode, delay_ms, &options))
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
        Command::InitResource { path, version } => resource::init(m, &path, &version),
        Command::AcquireResource { path, id, kind, mode, delay_ms, draining } => needs(&path)
            .and_then(|s| resource::acquire(m, s, &path, &id, kind, mode, delay_ms, draining))
            .map(Joined::output),
        Command::BeginRotation { path, to } => resource::begin(m, &path, &to),
        Command::ForceRotation { path } => resource::force(m, &path),
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
