//! The rotation checkers: no id held under two versions at once, fenced writes per id that
//! never go back to a lower token, and every rotation begun switched, leaving no old
//! version behind.
//!
//! They judge what the fault suite's rotation workload recorded: each write a holder of an
//! id's lock made through the cluster, guarded by a compare that its waiter node still
//! exists ([`IdWrite`]), and each rotation as the rotator saw it ([`Rotation`]). Like
//! [`crate::checks`], each returns one line per violation and is tested on hand-made good
//! and bad histories.

use std::collections::{BTreeMap, HashMap};

/// A write by a holder of an id's lock, guarded by a compare that its waiter node exists
/// (so it applies only while the hold lasts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdWrite {
    /// The writer (worker).
    pub client: u64,
    /// The id.
    pub id: String,
    /// The version its lock was in (`KIND/<version>/<id>`).
    pub version: String,
    /// The hold's fencing token.
    pub token: u64,
    /// Whether the compare held and the write applied.
    pub applied: bool,
    /// The revision of the answer (of the write when applied).
    pub revision: u64,
}

/// One rotation, as the rotator saw it. Times are ns since the run began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The version the kind rotated from, as the first answered Rotate said.
    pub from: String,
    /// The version it rotates to.
    pub to: String,
    /// When the rotation was begun (its Rotate answered).
    pub begun_at: u64,
    /// Whether the rotator forced it.
    pub forced: bool,
    /// When the rotator saw the kind at `to`, if it did.
    pub switched_at: Option<u64>,
}

/// Applied writes by id, in revision order.
fn applied_by_id(writes: &[IdWrite]) -> BTreeMap<&str, Vec<&IdWrite>> {
    let mut by_id: BTreeMap<&str, Vec<&IdWrite>> = BTreeMap::new();
    for w in writes.iter().filter(|w| w.applied) {
        by_id.entry(w.id.as_str()).or_default().push(w);
    }
    for ws in by_id.values_mut() {
        ws.sort_by_key(|w| w.revision);
    }
    by_id
}

/// No id held under two versions at once: for each id, the applied writes under a version
/// all come before (in revision order) the first applied write under any later version.
/// `order` lists the versions in the order the kind went through them; a write under a
/// version not in it is a violation too.
pub fn versions(writes: &[IdWrite], order: &[String]) -> Vec<String> {
    let rank: HashMap<&str, usize> =
        order.iter().enumerate().map(|(i, v)| (v.as_str(), i)).collect();
    let mut found = Vec::new();
    for (id, ws) in applied_by_id(writes) {
        let mut latest: Option<(usize, &IdWrite)> = None;
        for w in ws {
            let Some(&r) = rank.get(w.version.as_str()) else {
                found.push(format!(
                    "id {id}: client {}'s write at revision {} was under version {:?}, which the kind never had",
                    w.client, w.revision, w.version
                ));
                continue;
            };
            match latest {
                Some((lr, l)) if r < lr => found.push(format!(
                    "id {id}: client {}'s write under {} (token {}) applied at revision {} after client {}'s under {} (token {}) at revision {}",
                    w.client, w.version, w.token, w.revision, l.client, l.version, l.token, l.revision
                )),
                _ => latest = Some((r, w)),
            }
        }
    }
    found
}

/// Fenced writes: for each id, the applied writes in revision order never go back to a
/// lower token, and no token of the id writes for two clients; no write applies at a
/// revision before its token (a token is the revision of its grant); no two applied writes
/// share a revision. Tokens are per lock: ids granted in one command (a switch grants every
/// lock of the new version at once) share one.
pub fn fenced(writes: &[IdWrite]) -> Vec<String> {
    let mut found = Vec::new();
    let mut owner: HashMap<(&str, u64), u64> = HashMap::new();
    for w in writes.iter().filter(|w| w.applied) {
        if let Some(other) = owner.insert((w.id.as_str(), w.token), w.client)
            && other != w.client
        {
            found.push(format!(
                "token {} wrote for clients {other} and {} (id {})",
                w.token, w.client, w.id
            ));
        }
        if w.revision <= w.token {
            found.push(format!(
                "id {}: client {}'s write with token {} applied at revision {}, not after its grant",
                w.id, w.client, w.token, w.revision
            ));
        }
    }
    let mut revisions: HashMap<u64, &IdWrite> = HashMap::new();
    for w in writes.iter().filter(|w| w.applied) {
        if let Some(other) = revisions.insert(w.revision, w)
            && other != w
        {
            found.push(format!(
                "two writes applied at revision {} (ids {} and {})",
                w.revision, other.id, w.id
            ));
        }
    }
    for (id, ws) in applied_by_id(writes) {
        let mut highest: Option<&IdWrite> = None;
        for w in ws {
            match highest {
                Some(h) if w.token < h.token => found.push(format!(
                    "id {id}: client {}'s write with token {} applied at revision {} after client {}'s with token {} at revision {}",
                    w.client, w.token, w.revision, h.client, h.token, h.revision
                )),
                _ => highest = Some(w),
            }
        }
    }
    found
}

/// Rotations: each begun rotation switched. The rule: the suite waits, once the workloads
/// have stopped, the faults are healed and every session of theirs has ended (closed, or
/// expired after its ttl), up to a bound for the kind to stop rotating; a rotation still
/// not switched then is a violation, for nothing was left to drain. Besides: each rotation
/// starts from where the one before went (`init` for the first; a Rotate answered after
/// its own switch says it started at its target), the kind ends at the last target, and
/// of its versions only that one is left (`left`: the kind's children at the end).
pub fn rotations(init: &str, rotations: &[Rotation], end: &str, left: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut at = init;
    for r in rotations {
        if r.from != at && r.from != r.to {
            found.push(format!(
                "the rotation to {} started from {}, yet the kind was at {at}",
                r.to, r.from
            ));
        }
        if r.switched_at.is_none() {
            found.push(format!(
                "the rotation to {} (begun {} ms into the run{}) never switched, even after the workloads' sessions ended",
                r.to,
                r.begun_at / 1_000_000,
                if r.forced { ", forced" } else { "" }
            ));
        }
        at = &r.to;
    }
    if end != at {
        found.push(format!("the kind ended at {end}, not at {at} where the last rotation went"));
    }
    for version in left.iter().filter(|v| v.as_str() != end) {
        found.push(format!("the old version {version} is still there at the end (at {end})"));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(client: u64, id: &str, version: &str, token: u64, revision: u64) -> IdWrite {
        IdWrite { client, id: id.into(), version: version.into(), token, applied: true, revision }
    }

    fn order(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("v{i}")).collect()
    }

    #[test]
    fn versions_find_an_id_written_under_an_old_version_after_a_new_one() {
        let good = [
            write(1, "a", "v1", 10, 11),
            write(2, "b", "v1", 12, 13),
            write(1, "a", "v2", 20, 21),
            // Another id may lag in revision order: each id is judged on its own.
            write(2, "b", "v2", 22, 23),
            write(3, "a", "v3", 30, 31),
        ];
        assert!(versions(&good, &order(3)).is_empty(), "{:?}", versions(&good, &order(3)));
        // A refused write under the old version changes nothing.
        let refused = [
            write(1, "a", "v2", 20, 21),
            IdWrite { applied: false, ..write(2, "a", "v1", 12, 22) },
        ];
        assert!(versions(&refused, &order(2)).is_empty());

        let interleaved =
            [write(1, "a", "v1", 10, 11), write(2, "a", "v2", 20, 21), write(1, "a", "v1", 10, 22)];
        assert_eq!(versions(&interleaved, &order(2)).len(), 1);
        // Recorded out of order, judged in revision order.
        let shuffled = [write(1, "a", "v1", 10, 22), write(2, "a", "v2", 20, 21)];
        assert_eq!(versions(&shuffled, &order(2)).len(), 1);
        let unknown = [write(1, "a", "v9", 10, 11)];
        assert_eq!(versions(&unknown, &order(2)).len(), 1);
    }

    #[test]
    fn fenced_finds_lower_tokens_shared_tokens_and_writes_before_their_grant() {
        let good = [
            write(1, "a", "v1", 10, 11),
            write(1, "a", "v1", 10, 12),
            write(2, "a", "v1", 13, 14),
            IdWrite { applied: false, ..write(1, "a", "v1", 10, 15) },
            // Another id's lower token is not a step back.
            write(3, "b", "v1", 5, 16),
        ];
        assert!(fenced(&good).is_empty(), "{:?}", fenced(&good));
        let back = [write(2, "a", "v1", 13, 14), write(1, "a", "v1", 10, 15)];
        assert_eq!(fenced(&back).len(), 1);
        let shared = [write(1, "a", "v1", 10, 11), write(2, "a", "v1", 10, 12)];
        assert_eq!(fenced(&shared).len(), 1);
        // Two ids granted by one switch share a token.
        let switch = [write(1, "a", "v2", 10, 11), write(2, "b", "v2", 10, 12)];
        assert!(fenced(&switch).is_empty());
        let early = [write(1, "a", "v1", 10, 10)];
        assert_eq!(fenced(&early).len(), 1);
        let same_revision = [write(1, "a", "v1", 10, 11), write(2, "b", "v1", 9, 11)];
        assert_eq!(fenced(&same_revision).len(), 1);
    }

    fn rotation(from: &str, to: &str, switched: bool) -> Rotation {
        Rotation {
            from: from.into(),
            to: to.into(),
            begun_at: 1_000_000,
            forced: false,
            switched_at: switched.then_some(2_000_000),
        }
    }

    #[test]
    fn rotations_find_unswitched_skipped_and_leftover_versions() {
        let good = &[rotation("v1", "v2", true), rotation("v2", "v3", true)][..];
        assert!(rotations("v1", good, "v3", &["v3".into()]).is_empty());
        assert!(rotations("v1", &[], "v1", &[]).is_empty());
        // The second Rotate was answered only after its switch (asked again): from = to.
        let again = [rotation("v1", "v2", true), rotation("v3", "v3", true)];
        assert!(rotations("v1", &again, "v3", &[]).is_empty());

        let stuck = [rotation("v1", "v2", true), rotation("v2", "v3", false)];
        assert_eq!(rotations("v1", &stuck, "v3", &[]).len(), 1);
        let skipped = [rotation("v1", "v2", true), rotation("v1", "v3", true)];
        assert_eq!(rotations("v1", &skipped, "v3", &[]).len(), 1);
        assert_eq!(rotations("v1", good, "v2", &[]).len(), 1, "ended elsewhere");
        let left = ["v2".to_owned(), "v3".to_owned()];
        assert_eq!(rotations("v1", good, "v3", &left).len(), 1, "v2 left behind");
    }
}
