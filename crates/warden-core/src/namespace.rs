//! The rules of the namespace: create, set and delete, and the bookkeeping they imply
//! (parent counters, sequence numbers, container clean-up, events).
//!
//! A [`Mutation`] is one command's change to the tree at one revision. It records an event
//! per change, and the deleted nodes its caller asks for as they were (an event of a
//! deletion carries no value, and what a node held when it went is what statistics are
//! counted from); the caller commits it or rolls it back as a whole.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::error::CoreError;
use crate::event::{Event, EventKind};
use crate::ids::SessionId;
use crate::limits::Limits;
use crate::node::{CreateMode, MAX_SEQUENCE, Node, NodeKind, Stat};
use crate::path;
use crate::queue_data::QueueConfig;
use crate::tree::Tree;

/// One command's changes to the tree.
pub(crate) struct Mutation<'a> {
    tree: &'a mut Tree,
    limits: &'a Limits,
    revision: u64,
    time_ms: u64,
    events: Vec<Event>,
    /// The nodes deleted so far that `keep_removed` chose, as they were, in the order they
    /// went.
    removed: Vec<(String, Node)>,
    /// Which deleted nodes to keep in `removed` (none without it).
    keep_removed: Option<fn(&str, &Node) -> bool>,
}

/// What a committed mutation did: its events, and the nodes it deleted as they were.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// The changes, in order.
    pub(crate) events: Vec<Event>,
    /// The deleted nodes chosen by [`Mutation::keeping_removed`] (path, node as it was
    /// before it went), in the order they went.
    pub(crate) removed: Vec<(String, Node)>,
}

impl<'a> Mutation<'a> {
    /// Starts changing `tree` at `revision`, the revision the command gets if it changes
    /// anything, with the leader's clock at `time_ms`.
    pub(crate) fn new(tree: &'a mut Tree, limits: &'a Limits, revision: u64, time_ms: u64) -> Self {
        Mutation {
            tree,
            limits,
            revision,
            time_ms,
            events: Vec::new(),
            removed: Vec::new(),
            keep_removed: None,
        }
    }

    /// Keeps the deleted nodes `keep` chooses, as they were, for [`Finished::removed`] (the
    /// others are dropped at once: a large recursive delete does not hold them all).
    pub(crate) fn keeping_removed(mut self, keep: fn(&str, &Node) -> bool) -> Self {
        self.keep_removed = Some(keep);
        self
    }

    /// The tree as changed so far.
    pub(crate) fn tree(&self) -> &Tree {
        self.tree
    }

    /// The limits commands are checked against.
    pub(crate) fn limits(&self) -> &Limits {
        self.limits
    }

    /// The leader's clock for this command.
    pub(crate) fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// The revision this command gets if it changes anything.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// The paths changed so far by this command.
    pub(crate) fn changed_paths(&self) -> Vec<String> {
        self.events.iter().map(|e| e.path.clone()).collect()
    }

    /// Ends the mutation: on success the changes stay and their events and deleted nodes
    /// are returned; on failure every change is undone and there is nothing to report.
    pub(crate) fn finish(self, ok: bool) -> Finished {
        if ok {
            self.tree.commit();
            Finished { events: self.events, removed: self.removed }
        } else {
            self.tree.rollback();
            Finished::default()
        }
    }

    /// Creates a node; returns its final path and stat.
    pub(crate) fn create(
        &mut self,
        path: &str,
        data: Bytes,
        mode: CreateMode,
        session: Option<SessionId>,
    ) -> Result<(String, Stat), CoreError> {
        mode.validate()?;
        let owner = match (mode.kind, session) {
            (NodeKind::Ephemeral, Some(s)) => s,
            (NodeKind::Ephemeral, None) => {
                return Err(CoreError::SessionRequired { path: path.to_owned() });
            }
            _ => 0,
        };
        // A sequential path may end in "/" (ZooKeeper allows "/locks/" + counter), so the
        // rules are checked on the path as it will be, with a placeholder counter.
        let checked = if mode.sequential { format!("{path}{:010}", 0) } else { path.to_owned() };
        path::check(&checked, self.limits)
            .map_err(|rule| CoreError::InvalidPath { path: path.to_owned(), rule })?;
        if checked == path::ROOT {
            return Err(CoreError::NodeExists { path: path::ROOT.to_owned() });
        }
        self.check_value(path, &data)?;
        let parent_path = path::parent(&checked).unwrap_or(path::ROOT).to_owned();
        let parent = self.tree.get(&parent_path).ok_or_else(|| CoreError::NoParent {
            path: path.to_owned(),
            parent: parent_path.clone(),
        })?;
        if parent.stat.ephemeral_owner != 0 {
            return Err(CoreError::EphemeralParent { path: path.to_owned(), parent: parent_path });
        }
        if parent.kind == NodeKind::Queue {
            return Err(CoreError::LockManaged { path: parent_path });
        }
        // A resource kind's subtree is made by its own commands only.
        if let Some(kind) = self.tree.nearest_of_kind(&parent_path, NodeKind::Resource) {
            return Err(CoreError::LockManaged { path: kind.to_owned() });
        }
        self.insert_node(path, &parent_path, data, mode.kind, owner, mode.sequential)
    }

    /// Creates a node made by a recipe (a lock, a waiter): the caller checked the rules.
    /// `path` is the full path, or the prefix of a sequential name. Returns the path.
    pub(crate) fn create_internal(
        &mut self,
        path: &str,
        data: Bytes,
        kind: NodeKind,
        owner: SessionId,
        sequential: bool,
    ) -> Result<String, CoreError> {
        let checked = if sequential { format!("{path}{:010}", 0) } else { path.to_owned() };
        path::check(&checked, self.limits)
            .map_err(|rule| CoreError::InvalidPath { path: path.to_owned(), rule })?;
        let parent_path = path::parent(&checked).unwrap_or(path::ROOT).to_owned();
        let parent = self.tree.get(&parent_path).ok_or_else(|| CoreError::NoParent {
            path: path.to_owned(),
            parent: parent_path.clone(),
        })?;
        if parent.stat.ephemeral_owner != 0 {
            return Err(CoreError::EphemeralParent { path: path.to_owned(), parent: parent_path });
        }
        self.insert_node(path, &parent_path, data, kind, owner, sequential).map(|(full, _)| full)
    }

    fn insert_node(
        &mut self,
        path: &str,
        parent_path: &str,
        data: Bytes,
        kind: NodeKind,
        owner: SessionId,
        sequential: bool,
    ) -> Result<(String, Stat), CoreError> {
        let parent_path = parent_path.to_owned();
        let Some(parent) = self.tree.get(&parent_path) else {
            return Err(CoreError::NoParent { path: path.to_owned(), parent: parent_path });
        };
        let full = if sequential {
            let seq = parent.next_sequence;
            if seq > MAX_SEQUENCE {
                return Err(CoreError::SequenceOverflow { parent: parent_path });
            }
            format!("{path}{seq:010}")
        } else {
            path.to_owned()
        };
        if self.tree.contains(&full) {
            return Err(CoreError::NodeExists { path: full });
        }
        let stat = Stat {
            create_revision: self.revision,
            mod_revision: self.revision,
            ephemeral_owner: owner,
            ctime_ms: self.time_ms,
            mtime_ms: self.time_ms,
            data_length: data.len() as u64,
            ..Stat::default()
        };
        self.emit(EventKind::Created, &full, stat, Some(data.clone()));
        self.tree.insert(&full, Node { data, stat, kind, next_sequence: 0 });
        self.tree.update(&parent_path, |p| {
            p.stat.num_children += 1;
            p.stat.cversion += 1;
            if sequential {
                p.next_sequence += 1;
            }
        });
        self.emit_children(&parent_path);
        Ok((full, stat))
    }

    /// Sets a node's value; returns its new stat.
    pub(crate) fn set(
        &mut self,
        path: &str,
        data: Bytes,
        expected_version: Option<u64>,
    ) -> Result<Stat, CoreError> {
        path::validate(path, self.limits)?;
        self.check_value(path, &data)?;
        let node = self.tree.get(path).ok_or_else(|| CoreError::no_node(path))?;
        check_version(path, node, expected_version)?;
        if is_managed(self.tree, path) {
            return Err(CoreError::LockManaged { path: path.to_owned() });
        }
        Ok(self.set_internal(path, data))
    }

    /// Sets the value of a node a recipe manages; returns its new stat.
    pub(crate) fn set_internal(&mut self, path: &str, data: Bytes) -> Stat {
        let Some(node) = self.tree.get(path) else { return Stat::default() };
        let (revision, time_ms) = (self.revision, self.time_ms);
        let event_data = data.clone();
        let mut stat = node.stat;
        self.tree.update(path, |n| {
            n.stat.version += 1;
            n.stat.mod_revision = revision;
            n.stat.mtime_ms = time_ms;
            n.stat.data_length = data.len() as u64;
            n.data = data;
            stat = n.stat;
        });
        self.emit(EventKind::Data, path, stat, Some(event_data));
        stat
    }

    /// Turns the container at `path` into a node of `kind` with `data`, keeping its
    /// children (a recipe taking over a path that only held its descendants); returns
    /// whether there was such a container.
    pub(crate) fn retype_container(&mut self, path: &str, kind: NodeKind, data: Bytes) -> bool {
        if self.tree.get(path).is_none_or(|n| n.kind != NodeKind::Container) {
            return false;
        }
        self.tree.update(path, |n| n.kind = kind);
        self.set_internal(path, data);
        true
    }

    /// Deletes a node (with its descendants if `recursive`); returns how many nodes went,
    /// containers emptied by the deletion included.
    pub(crate) fn delete(
        &mut self,
        path: &str,
        expected_version: Option<u64>,
        recursive: bool,
    ) -> Result<u64, CoreError> {
        path::validate(path, self.limits)?;
        if path == path::ROOT {
            return Err(CoreError::RootNotDeletable);
        }
        let node = self.tree.get(path).ok_or_else(|| CoreError::no_node(path))?;
        check_version(path, node, expected_version)?;
        if !recursive && node.stat.num_children > 0 {
            return Err(CoreError::NotEmpty {
                path: path.to_owned(),
                children: node.stat.num_children,
            });
        }
        let mut count = 0;
        for descendant in self.tree.descendants(path) {
            self.detach(&descendant);
            count += 1;
        }
        Ok(count + self.delete_leaf(path))
    }

    /// A mark of how far this command has got, for [`Mutation::deleted_since`].
    pub(crate) fn mark(&self) -> usize {
        self.events.len()
    }

    /// How many nodes this command deleted since `mark`.
    pub(crate) fn deleted_since(&self, mark: usize) -> u64 {
        self.events.iter().skip(mark).filter(|e| e.kind == EventKind::Deleted).count() as u64
    }

    /// Deletes `path` and its descendants, except the nodes in `keep` (locks under a
    /// lock-delay and the nodes above them up to `path`): a kept node that is not a lock
    /// becomes a container, so that it goes with the last kept lock under it.
    pub(crate) fn delete_keeping(&mut self, path: &str, keep: &BTreeSet<String>) {
        for descendant in self.tree.descendants(path) {
            if !keep.contains(&descendant) {
                self.detach(&descendant);
            }
        }
        if !keep.contains(path) {
            self.delete_leaf(path);
            return;
        }
        for kept in keep.iter().rev() {
            if self.tree.get(kept).is_some_and(|n| n.kind != NodeKind::Queue) {
                self.tree.update(kept, |n| n.kind = NodeKind::Container);
                self.emit_children(kept);
            }
        }
    }

    /// Deletes every ephemeral node of `session`; returns how many nodes went, containers
    /// emptied by the deletions included.
    pub(crate) fn delete_ephemerals(&mut self, session: SessionId) -> u64 {
        let owned: Vec<String> = self.tree.ephemerals_of(session).map(str::to_owned).collect();
        owned.iter().map(|p| self.delete_leaf(p)).sum()
    }

    /// Deletes a node without children, then its parent's bookkeeping, then the containers
    /// this empties; returns how many nodes went.
    fn delete_leaf(&mut self, path: &str) -> u64 {
        let mut count = 0;
        let mut current = path.to_owned();
        loop {
            let Some(parent) = self.detach(&current) else {
                return count;
            };
            count += 1;
            self.emit_children(&parent);
            match self.tree.get(&parent) {
                Some(p) if p.kind == NodeKind::Container && p.stat.num_children == 0 => {
                    current = parent;
                }
                // A queue goes with its last waiter, unless its kind keeps it or a
                // lock-delay holds it.
                Some(p)
                    if p.kind == NodeKind::Queue
                        && p.stat.num_children == 0
                        && QueueConfig::decode(&p.data).is_none_or(|c| {
                            !c.kind.persists() && c.blocked_until_ms <= self.time_ms
                        }) =>
                {
                    current = parent;
                }
                _ => return count,
            }
        }
    }

    /// Removes one node, updates its parent's counters and records the deletion; returns
    /// the parent's path, or `None` if there was no such node.
    fn detach(&mut self, path: &str) -> Option<String> {
        let node = self.tree.remove(path)?;
        self.emit(EventKind::Deleted, path, node.stat, None);
        if self.keep_removed.is_some_and(|keep| keep(path, &node)) {
            self.removed.push((path.to_owned(), node));
        }
        let parent = path::parent(path).unwrap_or(path::ROOT).to_owned();
        self.tree.update(&parent, |p| {
            p.stat.num_children = p.stat.num_children.saturating_sub(1);
            p.stat.cversion += 1;
        });
        Some(parent)
    }

    fn check_value(&self, path: &str, data: &Bytes) -> Result<(), CoreError> {
        if data.len() > self.limits.max_value_bytes {
            return Err(CoreError::ValueTooLarge {
                path: path.to_owned(),
                len: data.len(),
                max: self.limits.max_value_bytes,
            });
        }
        Ok(())
    }

    fn emit_children(&mut self, parent: &str) {
        if let Some(stat) = self.tree.get(parent).map(|p| p.stat) {
            self.emit(EventKind::Children, parent, stat, None);
        }
    }

    fn emit(&mut self, kind: EventKind, path: &str, stat: Stat, data: Option<Bytes>) {
        self.events.push(Event {
            revision: self.revision,
            kind,
            path: path.to_owned(),
            stat,
            data,
        });
    }
}

/// Whether `path` is managed by a recipe (a queue node or one of its waiters, a resource
/// kind or anything under it): clients may not set it or create under it.
fn is_managed(tree: &Tree, path: &str) -> bool {
    let is_queue = |p: &str| tree.get(p).is_some_and(|n| n.kind == NodeKind::Queue);
    is_queue(path)
        || path::parent(path).is_some_and(is_queue)
        || tree.nearest_of_kind(path, NodeKind::Resource).is_some()
}

pub(crate) fn check_version(
    path: &str,
    node: &Node,
    expected: Option<u64>,
) -> Result<(), CoreError> {
    match expected {
        Some(expected) if expected != node.stat.version => Err(CoreError::BadVersion {
            path: path.to_owned(),
            expected,
            actual: node.stat.version,
        }),
        _ => Ok(()),
    }
}
