//! The namespace tree: every node, keyed so that a node's children are one sorted range.
//!
//! Nodes live in one `BTreeMap` keyed by `(depth, path)`. All children of `/a` have depth
//! `depth(/a) + 1` and start with `/a/`, so they form one contiguous, sorted range: listing
//! children needs no per-node child set (less memory per node), and iteration order, hence
//! snapshot bytes, is deterministic.
//!
//! Every change goes through [`Tree::insert`], [`Tree::update`] or [`Tree::remove`], which
//! keep the derived indexes right (session → ephemeral nodes, and the recipe queues blocked
//! by a lock-delay, so the leader's twice-a-second check does not scan a million locks) and
//! record the previous value in an undo journal, so a command that fails halfway (a transaction's third operation) is rolled back
//! exactly.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::SessionId;
use crate::node::{Node, NodeKind};
use crate::path;
use crate::queue_data;
use crate::quota;

type NodeKey = (u32, String);

fn key(path: &str) -> NodeKey {
    (path::depth(path), path.to_owned())
}

/// All nodes of the namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tree {
    nodes: BTreeMap<NodeKey, Node>,
    /// Derived from `nodes`: the ephemeral nodes of each session.
    #[serde(skip)]
    ephemerals: BTreeMap<SessionId, BTreeSet<String>>,
    /// Derived from `nodes`: the queue nodes under a lock-delay.
    #[serde(skip)]
    blocked_queues: BTreeSet<String>,
    /// Previous values of the nodes changed by the command being applied.
    #[serde(skip)]
    journal: Vec<(NodeKey, Option<Node>)>,
    /// Paths changed by committed commands since the last [`Tree::take_dirty`].
    #[serde(skip)]
    dirty: BTreeSet<String>,
    /// Derived from `nodes`: their counted size ([`crate::quota::node_bytes`]), kept as
    /// they change (and as a rollback undoes them).
    #[serde(skip)]
    bytes: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// A tree holding only the root.
    pub fn new() -> Tree {
        let mut nodes = BTreeMap::new();
        nodes.insert(key(path::ROOT), Node::root());
        Tree {
            nodes,
            ephemerals: BTreeMap::new(),
            blocked_queues: BTreeSet::new(),
            journal: Vec::new(),
            dirty: BTreeSet::new(),
            bytes: quota::node_bytes(path::ROOT, &Node::root()),
        }
    }

    /// The counted size of the nodes ([`crate::quota`]).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The counted size of the nodes, counted again from scratch (to check
    /// [`Tree::bytes`]).
    pub fn recount_bytes(&self) -> u64 {
        self.nodes.iter().map(|((_, p), n)| quota::node_bytes(p, n)).sum()
    }

    /// A tree of the given nodes, as loaded from storage. The root is added if missing.
    pub fn from_nodes(nodes: impl IntoIterator<Item = (String, Node)>) -> Tree {
        let mut tree = Tree::new();
        tree.nodes.extend(nodes.into_iter().map(|(p, n)| (key(&p), n)));
        tree.rebuild_index();
        tree
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&key(path))
    }

    /// Whether a node exists at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(&key(path))
    }

    /// The number of nodes, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: the root is always there.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node with its path, in (depth, path) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|((_, p), n)| (p.as_str(), n))
    }

    /// The children of `parent` as (full path, node), sorted by name.
    pub fn children<'a>(&'a self, parent: &str) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        let depth = path::depth(parent) + 1;
        let prefix = path::child_prefix(parent);
        self.nodes
            .range((depth, prefix.clone())..)
            .take_while(move |((d, p), _)| *d == depth && p.starts_with(&prefix))
            .map(|((_, p), n)| (p.as_str(), n))
    }

    /// The children of `parent` whose names sort after `after`, as (full path, node),
    /// sorted by name: the next page of a listing that ended at `after`.
    pub fn children_after<'a>(
        &'a self,
        parent: &str,
        after: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        let depth = path::depth(parent) + 1;
        let prefix = path::child_prefix(parent);
        let start = (depth, format!("{prefix}{after}"));
        self.nodes
            .range((std::ops::Bound::Excluded(start), std::ops::Bound::Unbounded))
            .take_while(move |((d, p), _)| *d == depth && p.starts_with(&prefix))
            .map(|((_, p), n)| (p.as_str(), n))
    }

    /// Every descendant of `path`, deepest first, each depth in path order: deleting them in
    /// this order never deletes a node before its children.
    pub fn descendants(&self, path: &str) -> Vec<String> {
        let prefix = path::child_prefix(path);
        let mut levels: Vec<Vec<String>> = Vec::new();
        let mut depth = path::depth(path) + 1;
        loop {
            let level: Vec<String> = self
                .nodes
                .range((depth, prefix.clone())..)
                .take_while(|((d, p), _)| *d == depth && p.starts_with(&prefix))
                .map(|((_, p), _)| p.clone())
                .collect();
            if level.is_empty() {
                break;
            }
            levels.push(level);
            depth += 1;
        }
        levels.into_iter().rev().flatten().collect()
    }

    /// The nearest node at or above `path` of `kind`, if any.
    pub fn nearest_of_kind<'a>(&self, path: &'a str, kind: NodeKind) -> Option<&'a str> {
        let mut current = Some(path);
        while let Some(p) = current {
            if self.get(p).is_some_and(|n| n.kind == kind) {
                return Some(p);
            }
            current = path::parent(p);
        }
        None
    }

    /// The ephemeral nodes owned by `session`, sorted.
    pub fn ephemerals_of(&self, session: SessionId) -> impl Iterator<Item = &str> {
        self.ephemerals.get(&session).into_iter().flatten().map(String::as_str)
    }

    /// The sessions that own at least one ephemeral node.
    pub fn ephemeral_owners(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.ephemerals.keys().copied()
    }

    /// The queue nodes under a lock-delay, sorted by path.
    pub fn blocked_queues(&self) -> impl Iterator<Item = &str> {
        self.blocked_queues.iter().map(String::as_str)
    }

    /// Inserts or replaces the node at `path`.
    pub fn insert(&mut self, path: &str, node: Node) {
        let k = key(path);
        if let Some(old) = self.nodes.get(&k) {
            let old = old.clone();
            self.index_remove(path, &old);
        }
        self.index_add(path, &node);
        let old = self.nodes.insert(k.clone(), node);
        self.journal.push((k, old));
    }

    /// Changes the node at `path` in place; false if there is none.
    pub fn update(&mut self, path: &str, change: impl FnOnce(&mut Node)) -> bool {
        let k = key(path);
        let Some(node) = self.nodes.get_mut(&k) else {
            return false;
        };
        let old = node.clone();
        change(node);
        let reindex = old.stat.ephemeral_owner != node.stat.ephemeral_owner
            || old.kind == NodeKind::Queue
            || node.kind == NodeKind::Queue;
        if reindex {
            let new = node.clone();
            self.index_remove(path, &old);
            self.index_add(path, &new);
        } else {
            let new = quota::node_bytes(path, node);
            self.bytes = self.bytes.saturating_sub(quota::node_bytes(path, &old)) + new;
        }
        self.journal.push((k, Some(old)));
        true
    }

    /// Removes the node at `path`, returning it.
    pub fn remove(&mut self, path: &str) -> Option<Node> {
        let k = key(path);
        let old = self.nodes.remove(&k)?;
        self.index_remove(path, &old);
        self.journal.push((k, Some(old.clone())));
        Some(old)
    }

    /// Forgets the undo journal: the changes so far are final, and their paths dirty.
    pub fn commit(&mut self) {
        for ((_, p), _) in self.journal.drain(..) {
            self.dirty.insert(p);
        }
    }

    /// The paths changed (created, set or deleted) since the last call, for incremental
    /// persistence: each is either in the tree now or was deleted.
    pub fn take_dirty(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dirty)
    }

    /// Undoes every change since the last [`Tree::commit`].
    pub fn rollback(&mut self) {
        while let Some((k, old)) = self.journal.pop() {
            if let Some(current) = self.nodes.remove(&k) {
                self.index_remove(&k.1, &current);
            }
            if let Some(node) = old {
                self.index_add(&k.1, &node);
                self.nodes.insert(k, node);
            }
        }
    }

    /// Rebuilds the derived index after deserialization.
    pub fn rebuild_index(&mut self) {
        self.ephemerals.clear();
        self.blocked_queues.clear();
        self.journal.clear();
        self.bytes = 0;
        let nodes = std::mem::take(&mut self.nodes);
        for ((_, p), n) in &nodes {
            self.index_add(p, n);
        }
        self.nodes = nodes;
    }

    fn index_add(&mut self, path: &str, node: &Node) {
        self.bytes += quota::node_bytes(path, node);
        if node.stat.ephemeral_owner != 0 {
            self.ephemerals.entry(node.stat.ephemeral_owner).or_default().insert(path.to_owned());
        }
        if queue_data::blocked_until(node).is_some() {
            self.blocked_queues.insert(path.to_owned());
        }
    }

    fn index_remove(&mut self, path: &str, node: &Node) {
        self.bytes = self.bytes.saturating_sub(quota::node_bytes(path, node));
        if node.kind == NodeKind::Queue {
            self.blocked_queues.remove(path);
        }
        let owner = node.stat.ephemeral_owner;
        if owner == 0 {
            return;
        }
        if let Some(set) = self.ephemerals.get_mut(&owner) {
            set.remove(path);
            if set.is_empty() {
                self.ephemerals.remove(&owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Stat;

    fn node(owner: SessionId) -> Node {
        Node { stat: Stat { ephemeral_owner: owner, ..Stat::default() }, ..Node::root() }
    }

    fn paths<'a>(it: impl Iterator<Item = (&'a str, &'a Node)>) -> Vec<&'a str> {
        it.map(|(p, _)| p).collect()
    }

    #[test]
    fn children_are_one_sorted_range() {
        let mut t = Tree::new();
        for p in ["/b", "/a", "/a/y", "/a/x", "/a/x/1", "/ab", "/a-", "/c"] {
            t.insert(p, node(0));
        }
        assert_eq!(paths(t.children("/")), ["/a", "/a-", "/ab", "/b", "/c"]);
        assert_eq!(paths(t.children("/a")), ["/a/x", "/a/y"]);
        assert_eq!(paths(t.children("/a/x")), ["/a/x/1"]);
        assert!(paths(t.children("/ab")).is_empty());
        assert_eq!(t.descendants("/a"), ["/a/x/1", "/a/x", "/a/y"]);
        assert_eq!(paths(t.children_after("/", "")), ["/a", "/a-", "/ab", "/b", "/c"]);
        assert_eq!(paths(t.children_after("/", "a-")), ["/ab", "/b", "/c"]);
        assert_eq!(paths(t.children_after("/", "aa")), ["/ab", "/b", "/c"], "after a missing name");
        assert_eq!(paths(t.children_after("/a", "x")), ["/a/y"]);
        assert!(paths(t.children_after("/a", "y")).is_empty());
        assert_eq!(t.descendants("/a/y"), Vec::<String>::new());
    }

    #[test]
    fn index_follows_every_change() {
        let mut t = Tree::new();
        t.insert("/e1", node(7));
        t.insert("/e2", node(7));
        t.insert("/p", node(0));
        assert_eq!(t.ephemerals_of(7).collect::<Vec<_>>(), ["/e1", "/e2"]);
        t.remove("/e1");
        assert_eq!(t.ephemerals_of(7).collect::<Vec<_>>(), ["/e2"]);
        t.update("/e2", |n| n.stat.ephemeral_owner = 8);
        assert_eq!(t.ephemerals_of(7).count(), 0);
        assert_eq!(t.ephemerals_of(8).collect::<Vec<_>>(), ["/e2"]);
        assert_eq!(t.ephemeral_owners().collect::<Vec<_>>(), [8]);
    }

    #[test]
    fn rollback_restores_nodes_and_index() {
        let mut t = Tree::new();
        t.insert("/keep", node(5));
        t.commit();
        let before: Vec<(String, Node)> =
            t.iter().map(|(p, n)| (p.to_owned(), n.clone())).collect();
        t.insert("/new", node(5));
        t.update("/keep", |n| n.stat.version = 9);
        t.insert("/new", node(6));
        t.remove("/keep");
        assert!(!t.update("/missing", |n| n.stat.version = 1));
        t.rollback();
        let after: Vec<(String, Node)> = t.iter().map(|(p, n)| (p.to_owned(), n.clone())).collect();
        assert_eq!(before, after);
        assert_eq!(t.ephemerals_of(5).collect::<Vec<_>>(), ["/keep"]);
        assert_eq!(t.ephemerals_of(6).count(), 0);
    }

    #[test]
    fn committed_changes_are_dirty_rolled_back_ones_are_not() {
        let mut t = Tree::new();
        t.insert("/a", node(0));
        t.commit();
        t.insert("/b", node(0));
        t.rollback();
        t.update("/a", |n| n.stat.version = 1);
        t.remove("/a");
        t.insert("/c", node(0));
        t.commit();
        assert_eq!(t.take_dirty().into_iter().collect::<Vec<_>>(), ["/a", "/c"]);
        assert!(t.take_dirty().is_empty());
    }

    #[test]
    fn rebuilds_index() {
        let mut t = Tree::new();
        t.insert("/e", node(3));
        let copy = Tree::from_nodes(t.iter().map(|(p, n)| (p.to_owned(), n.clone())));
        assert_eq!(copy.ephemerals_of(3).collect::<Vec<_>>(), ["/e"]);
        assert_eq!(copy.len(), 2);
    }
}
