//! What a recipe's nodes keep in their data, as readable text: the queue node's settings
//! (and, for an election, a copy of its leader), and each waiter's request, grant and
//! value.
//!
//! A queue node's first line is `kind=mutex delay_ms=0 blocked_until_ms=0` (`kind=semaphore
//! permits=N`, `kind=election`, `kind=barrier`, `kind=double count=N`); a queue whose kind
//! records its head adds ` head=w-NNNNNNNNNN token=T session=S` and, after a newline, the
//! head's value. A waiter's first line is `mode=exclusive` (`shared`, `permits:N`,
//! `member`), then ` scope=subtree` for a hold of a subtree, ` priority=P` for a priority
//! above 0, ` token=R at=T` once granted (`T`: the grant's time, leader clock in ms; a
//! waiter granted before grant times were kept has no ` at=`), then, for a reentrant
//! lock's waiter, ` owner=O holds=N` (its owner and hold count), then ` revoked` or
//! ` resigned` in the last value it gets before it is deleted; after a newline, its value
//! (an election candidate's). Only the recipes write these nodes, so the text is always
//! readable; a value never reaches the first line, and an owner is one word without `=`
//! (the lock checks it).
//!
//! A resource kind's node keeps `version=V`, or `version=V to=W` while it rotates.
//!
//! A leaf module: it imports only the rule's types, so the tree can index queue nodes by
//! their deadline without importing the recipes.

use bytes::Bytes;

use crate::ids::SessionId;
use crate::node::{Node, NodeKind};
use crate::queue::{QueueKind, Scope, WaitMode};

/// A queue's settings and state, as kept in the first line of its node's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// What kind of queue (which recipe).
    pub kind: QueueKind,
    /// Lock-delay after a holder's session expires, ms.
    pub delay_ms: u64,
    /// Nothing is granted before this time (leader clock, ms); 0 when not blocked.
    pub blocked_until_ms: u64,
}

/// The first line of `data` and what follows its newline (empty if there is none).
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The value of field `name` in a header line of `name=value` words.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The number in field `name` of a header line.
fn number<T: std::str::FromStr>(line: &str, name: &str) -> Option<T> {
    field(line, name)?.parse().ok()
}

/// The header line of `data`, if it is text.
fn header(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(split(data).0).ok()
}

impl QueueConfig {
    /// The header line kept in the queue node (without a head).
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.line())
    }

    fn line(&self) -> String {
        let kind = match self.kind {
            QueueKind::Mutex => "kind=mutex".to_owned(),
            QueueKind::ReadWrite => "kind=rwlock".to_owned(),
            QueueKind::Semaphore { permits } => format!("kind=semaphore permits={permits}"),
            QueueKind::Election => "kind=election".to_owned(),
            QueueKind::Barrier => "kind=barrier".to_owned(),
            QueueKind::DoubleBarrier { count } => format!("kind=double count={count}"),
        };
        format!("{kind} delay_ms={} blocked_until_ms={}", self.delay_ms, self.blocked_until_ms)
    }

    /// Reads the header line of a queue node's data.
    pub fn decode(data: &[u8]) -> Option<QueueConfig> {
        let line = header(data)?;
        let kind = match field(line, "kind")? {
            "mutex" => QueueKind::Mutex,
            "rwlock" => QueueKind::ReadWrite,
            "semaphore" => QueueKind::Semaphore { permits: number(line, "permits")? },
            "election" => QueueKind::Election,
            "barrier" => QueueKind::Barrier,
            "double" => QueueKind::DoubleBarrier { count: number(line, "count")? },
            _ => return None,
        };
        Some(QueueConfig {
            kind,
            delay_ms: number(line, "delay_ms")?,
            blocked_until_ms: number(line, "blocked_until_ms")?,
        })
    }

    /// The whole data of a queue node with this config and `head` recorded.
    pub fn with_head(&self, head: Option<&Head>) -> Bytes {
        let mut line = self.line();
        let Some(head) = head else { return Bytes::from(line) };
        line.push_str(&format!(
            " head={} token={} session={}\n",
            head.name, head.token, head.session
        ));
        let mut data = line.into_bytes();
        data.extend_from_slice(&head.value);
        Bytes::from(data)
    }
}

/// The first holder of a queue that records it (an election's leader), as its queue node
/// keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The holder's waiter name (`w-NNNNNNNNNN`), under the queue node.
    pub name: String,
    /// Its token.
    pub token: u64,
    /// Its session.
    pub session: SessionId,
    /// Its value.
    pub value: Bytes,
}

impl Head {
    /// The head recorded in a queue node's data, if any.
    pub fn decode(data: &[u8]) -> Option<Head> {
        let line = header(data)?;
        Some(Head {
            name: field(line, "head")?.to_owned(),
            token: field(line, "token")?.parse().ok()?,
            session: field(line, "session")?.parse().ok()?,
            value: Bytes::copy_from_slice(split(data).1),
        })
    }
}

/// Why a waiter left, as its last value says (before its deletion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// An operator took it out.
    Revoked,
    /// Its holder gave up an election.
    Resigned,
}

impl Mark {
    /// The word in the waiter's header line.
    pub fn word(self) -> &'static str {
        match self {
            Mark::Revoked => "revoked",
            Mark::Resigned => "resigned",
        }
    }
}

/// A waiter's request and grant, as kept in the first line of the waiter node's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterInfo {
    /// What it asks for.
    pub mode: WaitMode,
    /// Its token, once granted.
    pub token: Option<u64>,
    /// What its hold covers (` scope=subtree`; absent for the lock's own path).
    pub scope: Scope,
    /// Its priority (` priority=P`; absent for 0).
    pub priority: u32,
    /// When it was granted (leader clock, ms): what a hold's length is counted from
    /// ([`crate::lock_stats`]).
    pub granted_ms: Option<u64>,
    /// The owner of a reentrant lock's waiter (a thread, a task of its session).
    pub owner: Option<String>,
    /// How many acquires of its owner its hold counts, from 1 (always 1 without an owner,
    /// and while it waits): the hold ends when releases bring it to 0.
    pub holds: u32,
}

impl WaiterInfo {
    /// A waiter that asks for `mode` (the lock's own path, priority 0, no owner), not
    /// granted.
    pub fn new(mode: WaitMode) -> WaiterInfo {
        WaiterInfo {
            mode,
            token: None,
            scope: Scope::Node,
            priority: 0,
            granted_ms: None,
            owner: None,
            holds: 1,
        }
    }

    /// The header line kept in the waiter node (a waiter without a value).
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.line())
    }

    fn line(&self) -> String {
        let mode = match self.mode {
            WaitMode::Exclusive => "mode=exclusive".to_owned(),
            WaitMode::Shared => "mode=shared".to_owned(),
            WaitMode::Permits(n) => format!("mode=permits:{n}"),
            WaitMode::Member => "mode=member".to_owned(),
        };
        let mut line = mode;
        if self.scope == Scope::Subtree {
            line.push_str(" scope=subtree");
        }
        if self.priority != 0 {
            line.push_str(&format!(" priority={}", self.priority));
        }
        if let Some(token) = self.token {
            line.push_str(&format!(" token={token}"));
        }
        if let Some(at) = self.granted_ms {
            line.push_str(&format!(" at={at}"));
        }
        if let Some(owner) = &self.owner {
            line.push_str(&format!(" owner={owner} holds={}", self.holds));
        }
        line
    }

    /// The whole data of a waiter: this header, an optional mark, and `value`.
    pub fn with_value(&self, mark: Option<Mark>, value: &[u8]) -> Bytes {
        let mut line = self.line();
        if let Some(mark) = mark {
            line.push(' ');
            line.push_str(mark.word());
        }
        if value.is_empty() {
            return Bytes::from(line);
        }
        let mut data = line.into_bytes();
        data.push(b'\n');
        data.extend_from_slice(value);
        Bytes::from(data)
    }

    /// Reads the header line of a waiter node's data.
    pub fn decode(data: &[u8]) -> Option<WaiterInfo> {
        let line = header(data)?;
        let mode = match field(line, "mode")? {
            "exclusive" => WaitMode::Exclusive,
            "shared" => WaitMode::Shared,
            "member" => WaitMode::Member,
            m => WaitMode::Permits(m.strip_prefix("permits:")?.parse().ok()?),
        };
        let token = match field(line, "token") {
            Some(t) => Some(t.parse().ok()?),
            None => None,
        };
        let scope = match field(line, "scope") {
            None => Scope::Node,
            Some("subtree") => Scope::Subtree,
            Some(_) => return None,
        };
        let priority = match field(line, "priority") {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        let granted_ms = match field(line, "at") {
            Some(t) => Some(t.parse().ok()?),
            None => None,
        };
        let owner = field(line, "owner").map(str::to_owned);
        let holds = match field(line, "holds") {
            Some(n) => n.parse().ok().filter(|n| *n >= 1)?,
            None => 1,
        };
        Some(WaiterInfo { mode, token, scope, priority, granted_ms, owner, holds })
    }
}

/// A waiter's value (an election candidate's), after its header line.
pub fn value_of(data: &[u8]) -> Bytes {
    Bytes::copy_from_slice(split(data).1)
}

/// The mark in a waiter's last value, if it has one.
pub fn mark_of(data: &[u8]) -> Option<Mark> {
    let line = header(data)?;
    line.split(' ').find_map(|w| match w {
        "revoked" => Some(Mark::Revoked),
        "resigned" => Some(Mark::Resigned),
        _ => None,
    })
}

/// A resource kind's state, as its node keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceState {
    /// The version whose locks grant.
    pub version: String,
    /// The version a rotation under way goes to.
    pub to: Option<String>,
}

impl ResourceState {
    /// The node's data.
    pub fn encode(&self) -> Bytes {
        match &self.to {
            Some(to) => Bytes::from(format!("version={} to={to}", self.version)),
            None => Bytes::from(format!("version={}", self.version)),
        }
    }

    /// Reads a resource node's data.
    pub fn decode(data: &[u8]) -> Option<ResourceState> {
        let line = header(data)?;
        Some(ResourceState {
            version: field(line, "version")?.to_owned(),
            to: field(line, "to").map(str::to_owned),
        })
    }
}

/// When the lock-delay of a queue node ends; `None` for any other node or a queue that is
/// not blocked.
pub fn blocked_until(node: &Node) -> Option<u64> {
    if node.kind != NodeKind::Queue {
        return None;
    }
    let until = QueueConfig::decode(&node.data)?.blocked_until_ms;
    (until != 0).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_and_waiters_round_trip_as_text() {
        let kinds = [
            QueueKind::Mutex,
            QueueKind::ReadWrite,
            QueueKind::Semaphore { permits: 3 },
            QueueKind::Election,
            QueueKind::Barrier,
            QueueKind::DoubleBarrier { count: 8 },
        ];
        for kind in kinds {
            let config = QueueConfig { kind, delay_ms: 5, blocked_until_ms: 9 };
            assert_eq!(QueueConfig::decode(&config.encode()), Some(config));
            let head =
                Head { name: "w-0000000001".into(), token: 4, session: 7, value: "a\nb c".into() };
            let data = config.with_head(Some(&head));
            assert_eq!(QueueConfig::decode(&data), Some(config), "{data:?}");
            assert_eq!(Head::decode(&data), Some(head));
            assert_eq!(Head::decode(&config.encode()), None);
        }
        let modes = [WaitMode::Exclusive, WaitMode::Shared, WaitMode::Permits(2), WaitMode::Member];
        let owners = [(None, 1), (Some("task-7".to_owned()), 1), (Some("t".to_owned()), 300)];
        for mode in modes {
            let cases = [
                (None, Scope::Node, 0, None),
                (Some(42), Scope::Subtree, 7, None),
                (Some(1), Scope::Node, 10, Some(7)),
            ];
            for ((token, scope, priority, granted_ms), (owner, holds)) in
                cases.into_iter().flat_map(|c| owners.clone().map(move |o| (c, o)))
            {
                let info = WaiterInfo { mode, token, scope, priority, granted_ms, owner, holds };
                assert_eq!(WaiterInfo::decode(&info.encode()), Some(info.clone()));
                let data = info.with_value(Some(Mark::Resigned), b"x revoked\ny");
                assert_eq!(WaiterInfo::decode(&data).as_ref(), Some(&info));
                assert_eq!(mark_of(&data), Some(Mark::Resigned));
                assert_eq!(value_of(&data), Bytes::from_static(b"x revoked\ny"));
                assert_eq!(
                    mark_of(&info.with_value(None, b"revoked")),
                    None,
                    "a value is not a mark"
                );
            }
        }
        assert_eq!(
            &QueueConfig { kind: QueueKind::Mutex, delay_ms: 0, blocked_until_ms: 0 }.encode()[..],
            b"kind=mutex delay_ms=0 blocked_until_ms=0"
        );
        assert_eq!(QueueConfig::decode(b"kind=bogus delay_ms=0 blocked_until_ms=0"), None);
        assert_eq!(WaiterInfo::decode(b"\xff"), None);
        let granted = WaiterInfo {
            token: Some(9),
            granted_ms: Some(1_500),
            ..WaiterInfo::new(WaitMode::Shared)
        };
        assert_eq!(&granted.encode()[..], b"mode=shared token=9 at=1500");
        assert_eq!(WaiterInfo::decode(b"mode=shared token=9 at=x"), None);
        // A reentrant waiter's header, word for word; a count of 0 is no count.
        let info = WaiterInfo {
            token: Some(9),
            owner: Some("task-7".into()),
            holds: 3,
            ..WaiterInfo::new(WaitMode::Exclusive)
        };
        assert_eq!(&info.encode()[..], b"mode=exclusive token=9 owner=task-7 holds=3");
        assert_eq!(&WaiterInfo::new(WaitMode::Shared).encode()[..], b"mode=shared");
        assert_eq!(WaiterInfo::decode(b"mode=exclusive token=9 owner=t holds=0"), None);
        assert_eq!(WaiterInfo::decode(b"mode=exclusive owner=t holds=x"), None);
        // An owner named like a mark is no mark.
        let named = WaiterInfo { owner: Some("revoked".into()), ..info };
        assert_eq!(mark_of(&named.encode()), None);
    }
}
