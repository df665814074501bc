//! Resource kinds and their version rotation (DESIGN §5 "Version rotation"), on the recipe
//! framework.
//!
//! A kind `R` (say `/orders`) is a node of kind [`NodeKind::Resource`] whose data holds its
//! current version and, while a rotation is under way, the version it rotates to:
//! `version=v1` or `version=v1 to=v2`. The locks of its ids live at `R/<version>/<id>`,
//! made by [`acquire`], which picks the version in the same command that queues the
//! session: no client ever names a version, so none can race a switch.
//!
//! A rotation to `V` ([`begin`]) marks `R` draining: new acquisitions queue in the new
//! version's locks, which grant nothing while `R` drains (the framework's gate), or fail at once if the
//! caller asked not to wait. The switch happens in the command that empties the old version
//! (its last holder or waiter leaves, its last lock-delay ends: the old version's subtree,
//! containers that go with their last child, is then gone), or after an operator forces it
//! ([`force`], which revokes what is left, lock-delay included). At the switch `R` takes
//! the new version and its locks grant, each in its own FIFO order. No id is ever held in
//! two versions: the new version grants nothing until the old one holds nothing.
//!
//! Every step is in the replicated state, so a rotation survives a leader change, and
//! every command is idempotent, so a tool interrupted halfway can run again.

use crate::error::CoreError;
use crate::ids::SessionId;
use crate::namespace::Mutation;
use crate::node::{Node, NodeKind};
use crate::path;
use crate::queue::{LockKind, WaitMode};
use crate::recipe::{self, Joined, Leaving, WaiterView};
use crate::response::Output;
use crate::tree::Tree;
use crate::{HoldRef, lock};

pub use crate::queue_data::ResourceState;

/// The resource kind at `path`, if there is one.
pub fn state(tree: &Tree, path: &str) -> Option<ResourceState> {
    tree.get(path)
        .filter(|n| n.kind == NodeKind::Resource)
        .and_then(|n| ResourceState::decode(&n.data))
}

/// The resource kind `path` is in or under (itself included), if any: the nearest such
/// ancestor.
pub fn enclosing(tree: &Tree, path: &str) -> Option<String> {
    tree.nearest_of_kind(path, NodeKind::Resource).map(str::to_owned)
}

/// Refuses a recipe call at `path` under a resource kind: only the kind's own acquire makes
/// locks there.
pub(crate) fn refuse_within(tree: &Tree, path: &str) -> Result<(), CoreError> {
    match enclosing(tree, path) {
        Some(kind) => Err(CoreError::InvalidResourceRequest {
            reason: format!(
                "{path:?} is under the resource kind {kind:?}, whose locks are made by locking its ids (`warden lock --resource {kind} ID`), which picks the version"
            ),
        }),
        None => Ok(()),
    }
}

/// Checks that `name` can be one path segment (a version or an id).
fn segment(name: &str, what: &str) -> Result<(), CoreError> {
    let bad = name.is_empty()
        || name.contains('/')
        || name == "."
        || name == ".."
        || name.chars().any(char::is_control);
    if bad {
        // Malformed input (INVALID_ARGUMENT), as a lock request that does not fit.
        return Err(CoreError::InvalidLockRequest {
            reason: format!(
                "{what} {name:?} must be one path segment (no \"/\", not empty, not \".\" or \"..\")"
            ),
        });
    }
    Ok(())
}

fn resource(tree: &Tree, path: &str) -> Result<ResourceState, CoreError> {
    match tree.get(path) {
        Some(n) if n.kind == NodeKind::Resource => {
            ResourceState::decode(&n.data).ok_or_else(|| CoreError::InvalidResourceRequest {
                reason: format!("{path:?} holds unreadable resource data"),
            })
        }
        Some(_) => Err(CoreError::WrongRecipe {
            path: path.to_owned(),
            is: "a plain node".to_owned(),
            asked: "resource kind".to_owned(),
        }),
        None => Err(CoreError::NoResource { path: path.to_owned() }),
    }
}

/// Makes the resource kind at `path` at `version`; one already there is left as it is.
pub(crate) fn init(m: &mut Mutation<'_>, path: &str, version: &str) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    segment(version, "a version")?;
    if let Some(existing) = m.tree().get(path) {
        if existing.kind != NodeKind::Resource {
            return Err(CoreError::WrongRecipe {
                path: path.to_owned(),
                is: "a plain node".to_owned(),
                asked: "resource kind".to_owned(),
            });
        }
        let state = resource(m.tree(), path)?;
        return Ok(Output::ResourceInitialized { created: false, version: state.version });
    }
    if let Some(outer) = path::parent(path).and_then(|p| enclosing(m.tree(), p)) {
        return Err(CoreError::LockManaged { path: outer });
    }
    // A queue's children are its waiters: a kind there would be read as one.
    if let Some(queue) =
        path::parent(path).filter(|p| m.tree().get(p).is_some_and(|n| n.kind == NodeKind::Queue))
    {
        return Err(CoreError::LockManaged { path: queue.to_owned() });
    }
    let state = ResourceState { version: version.to_owned(), to: None };
    m.create_internal(path, state.encode(), NodeKind::Resource, 0, false)?;
    Ok(Output::ResourceInitialized { created: true, version: version.to_owned() })
}

pub use crate::command::WhileDraining;

/// Queues `session` on the lock of `id` of the resource kind at `path`, in the version
/// that grants now, or, while the kind drains, in the new one (or fails, as asked).
#[allow(clippy::too_many_arguments)]
pub(crate) fn acquire(
    m: &mut Mutation<'_>,
    session: SessionId,
    path: &str,
    id: &str,
    kind: LockKind,
    mode: WaitMode,
    delay_ms: u64,
    draining: WhileDraining,
) -> Result<Joined, CoreError> {
    path::validate(path, m.limits())?;
    segment(id, "an id")?;
    let state = resource(m.tree(), path)?;
    // A session already queued for the id (in either version) keeps its place.
    for version in std::iter::once(&state.version).chain(state.to.as_ref()) {
        let lock = format!("{}{version}/{id}", path::child_prefix(path));
        let mine = recipe::waiters(m.tree(), &lock)
            .is_some_and(|(_, ws)| ws.iter().any(|w| w.session == session));
        if mine {
            return lock::acquire(m, session, &lock, kind, mode, delay_ms, &Default::default());
        }
    }
    let version = match (&state.to, draining) {
        (None, _) => &state.version,
        (Some(to), WhileDraining::Wait) => to,
        (Some(to), WhileDraining::Fail) => {
            return Err(CoreError::Draining {
                path: path.to_owned(),
                from: state.version.clone(),
                to: to.clone(),
            });
        }
    };
    let lock = format!("{}{version}/{id}", path::child_prefix(path));
    lock::acquire(m, session, &lock, kind, mode, delay_ms, &Default::default())
}

/// Begins the rotation of the resource kind at `path` to `to` (or finds it under way, or
/// done). The switch may happen at once, if the old version holds nothing.
pub(crate) fn begin(m: &mut Mutation<'_>, path: &str, to: &str) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    segment(to, "a version")?;
    let state = resource(m.tree(), path)?;
    match &state.to {
        Some(going) if going != to => {
            return Err(CoreError::InvalidResourceRequest {
                reason: format!(
                    "{path:?} is already rotating from {} to {going}; let that rotation finish (or force it) before rotating to {to}",
                    state.version
                ),
            });
        }
        Some(_) => {}
        None if state.version == to => {
            return Ok(Output::Rotation {
                from: state.version.clone(),
                to: to.to_owned(),
                switched: true,
                revoked: 0,
            });
        }
        None => {
            let draining =
                ResourceState { version: state.version.clone(), to: Some(to.to_owned()) };
            m.set_internal(path, draining.encode());
        }
    }
    let switched = settle(m, path);
    Ok(Output::Rotation { from: state.version, to: to.to_owned(), switched, revoked: 0 })
}

/// Forces the rotation under way at `path`: revokes every hold and wait left in the old
/// version (holders are told, and lock-delays apply: the switch waits for them to end).
pub(crate) fn force(m: &mut Mutation<'_>, path: &str) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    let state = resource(m.tree(), path)?;
    let Some(to) = state.to.clone() else {
        return Err(CoreError::InvalidResourceRequest {
            reason: format!(
                "{path:?} is not rotating (it is at {}); begin a rotation first",
                state.version
            ),
        });
    };
    let left = old_waiters(m.tree(), path, &state);
    for (lock, w) in &left {
        recipe::leave(m, w.session, lock, &HoldRef::Any, Leaving::Revoked)?;
    }
    let switched = settle(m, path);
    Ok(Output::Rotation { from: state.version, to, switched, revoked: left.len() as u64 })
}

/// The holders and waiters left in the old version of a kind that drains, by lock.
pub fn old_waiters(tree: &Tree, path: &str, state: &ResourceState) -> Vec<(String, WaiterView)> {
    versions_waiters(tree, path, &state.version)
}

/// Every waiter of the locks of one version of the kind at `path`, with its lock.
pub fn versions_waiters(tree: &Tree, path: &str, version: &str) -> Vec<(String, WaiterView)> {
    let version_path = format!("{}{version}", path::child_prefix(path));
    tree.children(&version_path)
        .filter_map(|(lock, _)| Some((lock.to_owned(), recipe::waiters(tree, lock)?.1)))
        .flat_map(|(lock, ws)| ws.into_iter().map(move |w| (lock.clone(), w)))
        .collect()
}

/// Switches the kind at `path` to the version it rotates to, if its old version holds
/// nothing any more (its subtree is gone, or empty); then the new version's locks grant.
/// Returns whether it switched (or had nothing to switch).
pub(crate) fn settle(m: &mut Mutation<'_>, path: &str) -> bool {
    let Some(state) = state(m.tree(), path) else { return false };
    let Some(to) = state.to else { return true };
    let old = format!("{}{}", path::child_prefix(path), state.version);
    if m.tree().get(&old).is_some_and(|n: &Node| n.stat.num_children > 0) {
        return false;
    }
    if m.tree().contains(&old) {
        m.delete(&old, None, false).ok();
    }
    m.set_internal(path, ResourceState { version: to.clone(), to: None }.encode());
    let new = format!("{}{to}", path::child_prefix(path));
    let locks: Vec<String> = m.tree().children(&new).map(|(p, _)| p.to_owned()).collect();
    for lock in locks {
        recipe::grant(m, &lock);
    }
    true
}

/// The resource kinds among `paths`' ancestors (up to an id's waiter: `R/v/id/w-N`) that
/// are rotating.
pub(crate) fn rotating_touched<'p>(
    tree: &Tree,
    paths: impl Iterator<Item = &'p str>,
) -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    for p in paths {
        let mut current = path::parent(p);
        for _ in 0..3 {
            let Some(c) = current else { break };
            if state(tree, c).is_some_and(|s| s.to.is_some()) {
                found.insert(c.to_owned());
            }
            current = path::parent(c);
        }
    }
    found
}

#[cfg(test)]
#[path = "resource_test.rs"]
mod tests;
