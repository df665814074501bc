//! Structural invariants of the state, checked by tests after every step.
//!
//! These hold after any sequence of commands; a violation is a bug in the core. The checker
//! is public so the server's tests can run it on a replica's state too.

use std::collections::BTreeMap;

use crate::limits::Limits;
use crate::node::NodeKind;
use crate::path;
use crate::state::State;

/// Returns a description of every invariant the state breaks (empty when sound):
/// every ephemeral node's owner session is live; no ephemeral node has children;
/// `num_children` matches the children; every non-root node has a parent and a well-formed
/// path (not necessarily within limits lowered since it was made); no container
/// that has lost its last child is left (it may be empty only if it never had a child);
/// the ephemeral and blocked-lock indexes match the nodes; the count of sessions per
/// identity matches the sessions; every lock grants exactly what its rule allows; lock
/// statistics are bounded, their eviction index matches them, and their counts agree
/// (a wait counted per acquisition, no more contended than acquisitions, no histogram
/// whose buckets disagree with its count); a hold counts from 1 to
/// [`MAX_HOLDS`](crate::lock::MAX_HOLDS) acquires, more than 1 only for a reentrant
/// (owned) hold; the data size kept for the quota equals a recount.
pub fn violations(state: &State) -> Vec<String> {
    let mut found = Vec::new();
    let tree = state.tree();
    // Paths are well formed, but not necessarily within the limits in force: lowering the
    // limits (`SetLimits`) keeps the nodes already there.
    let well_formed = Limits {
        max_path_bytes: usize::MAX,
        max_segment_bytes: usize::MAX,
        max_path_depth: usize::MAX,
        ..state.limits().clone()
    };
    let (kept, recounted) = (state.data_bytes(), state.recount_data_bytes());
    if kept != recounted {
        found.push(format!("the counted data size is {kept} bytes, a recount says {recounted}"));
    }
    let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
    for (p, node) in tree.iter() {
        if p == path::ROOT {
            continue;
        }
        match path::parent(p) {
            Some(parent) if tree.contains(parent) => *counted.entry(parent).or_default() += 1,
            _ => found.push(format!("{p} has no parent")),
        }
        if path::check(p, &well_formed).is_err() {
            found.push(format!("{p} is not a valid path"));
        }
        let owner = node.stat.ephemeral_owner;
        if (owner != 0) != (node.kind == NodeKind::Ephemeral) {
            found.push(format!("{p} has kind {:?} and owner {owner}", node.kind));
        }
        if owner != 0 && state.session(owner).is_none() {
            found.push(format!("{p} is owned by session {owner}, which is not live"));
        }
        if owner != 0 && !state.ephemerals_of(owner).any(|e| e == p) {
            found.push(format!("{p} is missing from the index of session {owner}"));
        }
    }
    for (p, node) in tree.iter() {
        let children = counted.get(p).copied().unwrap_or(0);
        if node.stat.num_children != children {
            found.push(format!("{p} says {} children, has {children}", node.stat.num_children));
        }
        if node.kind == NodeKind::Ephemeral && children > 0 {
            found.push(format!("ephemeral {p} has {children} children"));
        }
        if node.kind == NodeKind::Container && children == 0 && node.stat.cversion > 0 {
            found.push(format!("container {p} lost its last child but was not deleted"));
        }
    }
    // Recipe queues: an election's or a barrier's granted waiters are the first ones,
    // exactly as many as the queue rule allows (fewer only while a lock-delay blocks new
    // grants), and tokens never decrease along the queue; locks are checked by
    // `lock_invariants` against a brute-force reading of their rule; an empty queue is one
    // that persists, is blocked, or still has locks below it; an election's recorded
    // leader is its first holder.
    for (p, node) in tree.iter().filter(|(_, n)| n.kind == NodeKind::Queue) {
        let Some((config, waiters)) = crate::recipe::waiters(tree, p) else {
            found.push(format!("queue {p} has unreadable data {:?}", node.data));
            continue;
        };
        // Its children are its waiters, and for a lock the paths to the locks below it.
        let mut others = 0;
        for (child, n) in tree.children(p) {
            let waiter = crate::recipe::queue_of_waiter(child) == Some(p)
                && n.kind == NodeKind::Ephemeral
                && crate::queue_data::WaiterInfo::decode(&n.data).is_some();
            let below = config.kind.is_lock()
                && crate::recipe::queue_of_waiter(child).is_none()
                && matches!(n.kind, NodeKind::Container | NodeKind::Queue);
            if !waiter && !below {
                found.push(format!("queue {p} has {child}, which is not a waiter"));
            }
            others += u64::from(!waiter);
        }
        if waiters.is_empty()
            && others == 0
            && !config.kind.persists()
            && config.blocked_until_ms == 0
        {
            found.push(format!("queue {p} has no waiters left but was not deleted"));
        }
        // Reentrant counts: only a lock's waiter has an owner, a well-formed one; only a
        // holder with an owner counts more than one acquire, and never past the bound.
        for w in &waiters {
            let info = &w.info;
            if let Some(owner) = &info.owner
                && (!config.kind.is_lock() || crate::lock::check_owner(owner).is_err())
            {
                found.push(format!("{}: owner {owner:?} in a {}", w.path, config.kind));
            }
            let counts = info.owner.is_some() && info.token.is_some();
            if info.holds == 0 || info.holds > crate::lock::MAX_HOLDS || (info.holds > 1 && !counts)
            {
                found.push(format!(
                    "{}: hold count {} (owner {:?}, token {:?})",
                    w.path, info.holds, info.owner, info.token
                ));
            }
        }
        if config.kind.is_lock() {
            continue;
        }
        let modes: Vec<_> = waiters.iter().map(|w| w.info.mode).collect();
        let granted = waiters.iter().take_while(|w| w.info.token.is_some()).count();
        let allowed = crate::queue::holders(config.kind, &modes, granted);
        if config.kind.records_head() {
            let head = crate::queue_data::Head::decode(&node.data);
            let first = waiters.first().filter(|w| w.info.token.is_some());
            let recorded = head
                .as_ref()
                .map(|h| (format!("{}{}", path::child_prefix(p), h.name), h.token, h.session));
            let actual = first.map(|w| (w.path.clone(), w.info.token.unwrap_or(0), w.session));
            if recorded != actual {
                found.push(format!(
                    "election {p} records leader {recorded:?}, its first holder is {actual:?}"
                ));
            }
        }
        if waiters.iter().skip(granted).any(|w| w.info.token.is_some()) {
            found.push(format!("queue {p}: a waiter holds while an earlier one waits"));
        }
        let held_back = config.blocked_until_ms != 0;
        if granted > allowed || (granted < allowed && !held_back) {
            found.push(format!("queue {p}: {granted} granted, the rule allows {allowed}"));
        }
        let tokens: Vec<u64> = waiters.iter().filter_map(|w| w.info.token).collect();
        if tokens.windows(2).any(|t| t[0] > t[1]) {
            found.push(format!("queue {p}: tokens out of queue order {tokens:?}"));
        }
    }
    found.extend(crate::lock_invariants::violations(tree));
    // Resource kinds: only the current version's locks grant (no id is held under two
    // versions), and no version but the current one and the one it rotates to exists.
    for (p, node) in tree.iter().filter(|(_, n)| n.kind == NodeKind::Resource) {
        let Some(state) = crate::queue_data::ResourceState::decode(&node.data) else {
            found.push(format!("resource kind {p} has unreadable data {:?}", node.data));
            continue;
        };
        for (version, _) in tree.children(p) {
            let name = path::name(version);
            if name != state.version && state.to.as_deref() != Some(name) {
                found.push(format!("resource kind {p} at {} has a version {name}", state.version));
            }
            if name == state.version {
                continue;
            }
            let held = crate::resource::versions_waiters(tree, p, name)
                .iter()
                .filter(|(_, w)| w.info.token.is_some())
                .count();
            if held > 0 {
                found.push(format!(
                    "resource kind {p} at {}: {held} held in version {name}",
                    state.version
                ));
            }
        }
    }
    let blocked: Vec<&str> = tree
        .iter()
        .filter(|(_, n)| crate::queue_data::blocked_until(n).is_some())
        .map(|(p, _)| p)
        .collect();
    let mut indexed: Vec<&str> = tree.blocked_queues().collect();
    indexed.sort_unstable_by(|a, b| (path::depth(a), *a).cmp(&(path::depth(b), *b)));
    if blocked != indexed {
        found.push(format!("blocked locks are {blocked:?}, the index says {indexed:?}"));
    }
    let mut identities: BTreeMap<&str, usize> = BTreeMap::new();
    for session in state.sessions() {
        *identities.entry(session.identity.as_str()).or_default() += 1;
    }
    for (identity, count) in identities {
        let indexed = state.sessions_of(identity);
        if indexed != count {
            found.push(format!(
                "identity {identity:?} has {count} sessions, the index says {indexed}"
            ));
        }
    }
    let stats = state.lock_stats_table();
    if !stats.index_is_sound() {
        found.push(format!("lock statistics: {} tracked, index or bound broken", stats.len()));
    }
    for (p, s) in stats.iter() {
        let sums = [&s.wait, &s.hold].map(|h| h.counts.iter().sum::<u64>() == h.count);
        if s.wait.count != s.acquisitions || s.contended > s.acquisitions || sums != [true; 2] {
            found.push(format!("lock statistics of {p} disagree with themselves: {s:?}"));
        }
        if s.last_revision > state.revision() {
            found.push(format!("lock statistics of {p} are from the future: {s:?}"));
        }
    }
    for session in state.sessions() {
        for e in state.ephemerals_of(session.id) {
            if tree.get(e).map(|n| n.stat.ephemeral_owner) != Some(session.id) {
                found
                    .push(format!("index says session {} owns {e}, the tree does not", session.id));
            }
        }
    }
    found
}
