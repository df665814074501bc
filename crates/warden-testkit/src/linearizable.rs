//! Linearizability checking for histories of key-value register operations.
//!
//! Fault tests record, for every client request, what was asked, what came back, and
//! when it was sent and answered. Warden promises that each key behaves like one register
//! whose operations take effect atomically at some instant between call and return. This
//! module decides whether a recorded history keeps that promise, so that a fault run fails
//! on a real ordering bug (a stale read, a lost update) rather than on a hand-written guess.
//!
//! # Method
//!
//! The search is Wing & Gong's, with Lowe's memoisation of (set of linearized operations,
//! register value): the algorithm of Porcupine and Knossos. It runs per key, because a
//! history is linearizable iff every key's sub-history is (linearizability is local), and
//! small searches are cheap where one big search would be exponential.
//!
//! # Time
//!
//! Intervals are closed: an operation that returned at `t` and another called at `t` may be
//! ordered either way, since two equal clock readings prove nothing about order.
//!
//! # Unknown outcomes
//!
//! An operation without an output (timed out, connection lost) may have taken effect at any
//! instant after its call, even after the client gave up, or never. A read of unknown
//! outcome says nothing and is ignored; a write, compare-and-set or delete of unknown
//! outcome may be placed anywhere after its call or left out. Such an operation never causes
//! a violation by itself. The search prunes a state that has placed more of these
//! operations than an already visited state with the same completed operations and the same
//! value: it can do nothing that the visited state could not.
//!
//! # Bound
//!
//! The search is exponential in the worst case. [`check_with_limit`] caps the search states
//! visited per key; a key whose search reaches the cap is listed in [`Report::unknown`]
//! rather than judged.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The cap on search states per key used by [`check`].
pub const DEFAULT_MAX_STATES: usize = 1_000_000;

/// What an operation asked of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// Read the current value.
    Read,
    /// Set the value.
    Write(u64),
    /// Set the value to `new` if the current value equals `expected`.
    Cas {
        /// The value the key must hold; `None`: the key must be absent.
        expected: Option<u64>,
        /// The value to set.
        new: u64,
    },
    /// Remove the key.
    Delete,
}

/// What an operation answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// The value read; `None`: the key was absent.
    Read(Option<u64>),
    /// The write was applied.
    Write,
    /// Whether the compare-and-set applied.
    Cas(bool),
    /// Whether the key existed when it was deleted.
    Delete(bool),
}

/// One client request as the client recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The client that sent it; used in messages only.
    pub client: u64,
    /// The key it touched.
    pub key: String,
    /// When it was sent, on a clock shared by all clients (any monotonic unit).
    pub call: u64,
    /// When its answer (or the client's giving up) came; `None` if never.
    pub ret: Option<u64>,
    /// What it asked.
    pub input: Input,
    /// What it answered; `None` if the outcome is unknown. An operation with `ret` set but
    /// no output is one the client gave up on: it may still take effect after `ret`.
    pub output: Option<Output>,
}

/// The verdict on a whole history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Number of distinct keys in the history.
    pub keys: usize,
    /// Number of operations in the history.
    pub operations: usize,
    /// Keys whose sub-history is not linearizable (or holds malformed operations), in key
    /// order.
    pub violations: Vec<Violation>,
    /// Keys whose search reached the state cap, in key order: neither proven good nor bad.
    pub unknown: Vec<String>,
}

impl Report {
    /// True when every key was checked and found linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty() && self.unknown.is_empty()
    }
}

/// A key whose operations fit no order that agrees with their times and the register's
/// rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// For people: the longest linearizable prefix, the value after it, and the operation
    /// that could not come next. Operations are named `#i`, their index in the history.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {:?}: {}", self.key, self.message)
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Read => write!(f, "read"),
            Input::Write(v) => write!(f, "write {v}"),
            Input::Cas { expected, new } => write!(f, "cas {} to {new}", Shown(*expected)),
            Input::Delete => write!(f, "delete"),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Read(v) => write!(f, "{}", Shown(*v)),
            Output::Write => write!(f, "ok"),
            Output::Cas(true) => write!(f, "applied"),
            Output::Cas(false) => write!(f, "not applied"),
            Output::Delete(true) => write!(f, "existed"),
            Output::Delete(false) => write!(f, "did not exist"),
        }
    }
}

/// Checks `history` with the default state cap, [`DEFAULT_MAX_STATES`] per key.
pub fn check(history: &[Operation]) -> Report {
    check_with_limit(history, DEFAULT_MAX_STATES)
}

/// Checks `history`, visiting at most `max_states` search states (pairs of a set of
/// linearized operations and a value) per key; a key that needs more is reported in
/// [`Report::unknown`]. Memory and time per key grow with the states visited.
pub fn check_with_limit(history: &[Operation], max_states: usize) -> Report {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (at, op) in history.iter().enumerate() {
        by_key.entry(op.key.as_str()).or_default().push(at);
    }
    let mut report = Report { keys: by_key.len(), operations: history.len(), ..Report::default() };
    for (key, indices) in by_key {
        match check_key(history, &indices, max_states) {
            Verdict::Linearizable => {}
            Verdict::Violation(message) => {
                report.violations.push(Violation { key: key.to_owned(), message })
            }
            Verdict::Unknown => report.unknown.push(key.to_owned()),
        }
    }
    report
}

/// The register's value; `None`: the key is absent.
type Value = Option<u64>;

/// Shows a value as a number or `absent`.
struct Shown(Value);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => write!(f, "absent"),
        }
    }
}

enum Verdict {
    Linearizable,
    Violation(String),
    Unknown,
}

/// An operation of one key as the search sees it.
struct KeyOp {
    /// Index in the history, for messages.
    at: usize,
    call: u64,
    /// `None` exactly when the outcome is unknown: no deadline, may be left out.
    ret: Option<u64>,
    input: Input,
    output: Option<Output>,
}

fn check_key(history: &[Operation], indices: &[usize], max_states: usize) -> Verdict {
    let mut ops = Vec::with_capacity(indices.len());
    let mut malformed = Vec::new();
    for &at in indices {
        let Some(op) = history.get(at) else { continue };
        match prepare(at, op) {
            Ok(Some(op)) => ops.push(op),
            Ok(None) => {}
            Err(why) => malformed.push(why),
        }
    }
    if !malformed.is_empty() {
        let shown = malformed.len().min(5);
        return Verdict::Violation(format!(
            "{} malformed operations, key not checked: {}",
            malformed.len(),
            malformed[..shown].join("; ")
        ));
    }
    ops.sort_by_key(|op| (op.call, op.at));
    Search::new(&ops, max_states).run(history)
}

/// Validates one operation; `Ok(None)` for a read of unknown outcome, which says nothing.
fn prepare(at: usize, op: &Operation) -> Result<Option<KeyOp>, String> {
    if let Some(ret) = op.ret
        && ret < op.call
    {
        return Err(format!("#{at} returned at {ret}, before its call at {}", op.call));
    }
    let known = match (op.output, op.ret) {
        (Some(_), None) => return Err(format!("#{at} has an output but no return time")),
        (Some(out), Some(_)) if !same_kind(op.input, out) => {
            return Err(format!("#{at} answered {out:?} to {:?}", op.input));
        }
        (Some(_), Some(_)) => true,
        (None, _) if op.input == Input::Read => return Ok(None),
        (None, _) => false,
    };
    Ok(Some(KeyOp {
        at,
        call: op.call,
        ret: if known { op.ret } else { None },
        input: op.input,
        output: op.output,
    }))
}

fn same_kind(input: Input, output: Output) -> bool {
    matches!(
        (input, output),
        (Input::Read, Output::Read(_))
            | (Input::Write(_), Output::Write)
            | (Input::Cas { .. }, Output::Cas(_))
            | (Input::Delete, Output::Delete(_))
    )
}

/// The register's rules: the value after `op` runs on `value`, or `None` if `op` could not
/// have answered what it did. An operation of unknown outcome always runs.
fn step(value: Value, op: &KeyOp) -> Option<Value> {
    match (op.input, op.output) {
        (Input::Read, Some(Output::Read(seen))) => (seen == value).then_some(value),
        (Input::Read, None) => Some(value),
        (Input::Write(v), Some(Output::Write) | None) => Some(Some(v)),
        (Input::Cas { expected, new }, Some(Output::Cas(true))) => {
            (value == expected).then_some(Some(new))
        }
        (Input::Cas { expected, .. }, Some(Output::Cas(false))) => {
            (value != expected).then_some(value)
        }
        (Input::Cas { expected, new }, None) => {
            Some(if value == expected { Some(new) } else { value })
        }
        (Input::Delete, Some(Output::Delete(existed))) => {
            (value.is_some() == existed).then_some(None)
        }
        (Input::Delete, None) => Some(None),
        _ => None,
    }
}

/// A call or return event in the time-ordered event list.
#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_return: bool,
}

/// Lowe's doubly linked, circular list of call and return events, sorted by time with
/// calls first at equal times (closed intervals). Linearizing an operation lifts its
/// events out; backtracking puts them back (dancing links, strictly last out first in).
/// Operations of unknown outcome have no return event.
struct EntryList {
    entries: Vec<Entry>,
    /// Index `entries.len()` is the sentinel.
    next: Vec<usize>,
    prev: Vec<usize>,
    call_of: Vec<usize>,
    return_of: Vec<Option<usize>>,
}

impl EntryList {
    fn new(ops: &[KeyOp]) -> Self {
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call, false, i));
            if let Some(ret) = op.ret {
                events.push((ret, true, i));
            }
        }
        events.sort_unstable();
        let len = events.len() + 1;
        let mut list = Self {
            entries: Vec::with_capacity(events.len()),
            next: (0..len).map(|i| (i + 1) % len).collect(),
            prev: (0..len).map(|i| (i + len - 1) % len).collect(),
            call_of: vec![0; ops.len()],
            return_of: vec![None; ops.len()],
        };
        for (e, &(_, is_return, op)) in events.iter().enumerate() {
            list.entries.push(Entry { op, is_return });
            if is_return {
                list.return_of[op] = Some(e);
            } else {
                list.call_of[op] = e;
            }
        }
        list
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        self.prev[n] = e;
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        if let Some(r) = self.return_of[op] {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, op: usize) {
        if let Some(r) = self.return_of[op] {
            self.relink(r);
        }
        self.relink(self.call_of[op]);
    }

    /// Appends the operations that may come next, those called before the earliest
    /// pending return: completed ones first, then those of unknown outcome.
    fn candidates(&self, ops: &[KeyOp], out: &mut Vec<usize>, later: &mut Vec<usize>) {
        let sentinel = self.entries.len();
        let mut e = self.next[sentinel];
        while e != sentinel {
            let entry = self.entries[e];
            if entry.is_return {
                break;
            }
            if ops[entry.op].ret.is_some() {
                out.push(entry.op);
            } else {
                later.push(entry.op);
            }
            e = self.next[e];
        }
        out.append(later);
    }
}

enum Visit {
    New,
    Seen,
    Full,
}

/// Lowe's cache of visited states, with the unknown-outcome operations kept apart: for a
/// set of completed operations and a value, the sets of unknown-outcome operations
/// visited, none a superset of another.
struct Cache {
    seen: HashMap<(Box<[u64]>, Value), Vec<Box<[u64]>>>,
    visited: usize,
    limit: usize,
}

impl Cache {
    fn visit(&mut self, done: &[u64], placed: &[u64], value: Value) -> Visit {
        let placed = trimmed(placed);
        let known = self.seen.entry((compact(done), value)).or_default();
        if known.iter().any(|k| is_subset(k, placed)) {
            return Visit::Seen;
        }
        if self.visited >= self.limit {
            return Visit::Full;
        }
        known.retain(|k| !is_subset(placed, k));
        known.push(placed.into());
        self.visited += 1;
        Visit::New
    }
}

/// A bitset without its leading all-ones words (their count comes first) and trailing
/// zero words. Completed operations are linearized roughly in call order, so this stays
/// about as long as the concurrency window, not the history.
fn compact(bits: &[u64]) -> Box<[u64]> {
    let lead = bits.iter().take_while(|&&w| w == u64::MAX).count();
    let rest = trimmed(bits.get(lead..).unwrap_or_default());
    let mut key = Vec::with_capacity(rest.len() + 1);
    key.push(lead as u64);
    key.extend_from_slice(rest);
    key.into_boxed_slice()
}

fn trimmed(bits: &[u64]) -> &[u64] {
    let len = bits.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
    bits.get(..len).unwrap_or_default()
}

fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().enumerate().all(|(i, &w)| w & !b.get(i).copied().unwrap_or(0) == 0)
}

fn flip(bits: &mut [u64], i: usize) {
    bits[i / 64] ^= 1 << (i % 64);
}

/// A search node's candidates: `arena[next..end]` are still to try.
struct Frame {
    start: usize,
    next: usize,
    end: usize,
}

/// The deepest point reached (most completed operations), kept for the message.
/// `path[..low]` of the current search equals `ops[..low]`, so saving copies only the
/// part that changed.
#[derive(Default)]
struct Best {
    ops: Vec<usize>,
    done: usize,
    low: usize,
}

impl Best {
    fn record(&mut self, path: &[(usize, Value)], done: usize) {
        if done > self.done {
            self.ops.truncate(self.low);
            self.ops.extend(path.iter().skip(self.low).map(|&(op, _)| op));
            self.low = path.len();
            self.done = done;
        }
    }
}

struct Search<'a> {
    ops: &'a [KeyOp],
    /// Bit of each operation: among completed ones if `ret` is set, else among unknown ones.
    bit: Vec<usize>,
    completed: usize,
    list: EntryList,
    done: Vec<u64>,
    placed: Vec<u64>,
    cache: Cache,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [KeyOp], max_states: usize) -> Self {
        let (mut completed, mut unknown) = (0, 0);
        let bit = ops
            .iter()
            .map(|op| {
                let counter = if op.ret.is_some() { &mut completed } else { &mut unknown };
                *counter += 1;
                *counter - 1
            })
            .collect();
        Self {
            ops,
            bit,
            completed,
            list: EntryList::new(ops),
            done: vec![0; completed.div_ceil(64)],
            placed: vec![0; unknown.div_ceil(64)],
            cache: Cache { seen: HashMap::new(), visited: 0, limit: max_states },
        }
    }

    fn toggle(&mut self, op: usize) {
        let bits = if self.ops[op].ret.is_some() { &mut self.done } else { &mut self.placed };
        flip(bits, self.bit[op]);
    }

    fn visit(&mut self, value: Value) -> Visit {
        self.cache.visit(&self.done, &self.placed, value)
    }

    fn push_frame(&self, frames: &mut Vec<Frame>, arena: &mut Vec<usize>, later: &mut Vec<usize>) {
        let start = arena.len();
        self.list.candidates(self.ops, arena, later);
        frames.push(Frame { start, next: start, end: arena.len() });
    }

    /// Depth-first search over orders, trying at each node every operation that may come
    /// next; a node already visited (or dominated by one) is not entered again.
    fn run(mut self, history: &[Operation]) -> Verdict {
        if self.completed == 0 {
            return Verdict::Linearizable;
        }
        let mut value: Value = None;
        match self.visit(value) {
            Visit::Full => return Verdict::Unknown,
            Visit::New | Visit::Seen => {}
        }
        let (mut frames, mut arena, mut later) = (Vec::new(), Vec::new(), Vec::new());
        let mut path: Vec<(usize, Value)> = Vec::new();
        let mut done = 0;
        let mut best = Best::default();
        self.push_frame(&mut frames, &mut arena, &mut later);
        loop {
            let Some(frame) = frames.last_mut() else {
                return Verdict::Violation(self.explain(history, &best.ops));
            };
            if frame.next < frame.end {
                let op = arena[frame.next];
                frame.next += 1;
                let Some(after) = step(value, &self.ops[op]) else {
                    continue;
                };
                self.toggle(op);
                match self.visit(after) {
                    Visit::New => {}
                    Visit::Seen => {
                        self.toggle(op);
                        continue;
                    }
                    Visit::Full => return Verdict::Unknown,
                }
                self.list.lift(op);
                path.push((op, value));
                value = after;
                if self.ops[op].ret.is_some() {
                    done += 1;
                    if done == self.completed {
                        return Verdict::Linearizable;
                    }
                    best.record(&path, done);
                }
                self.push_frame(&mut frames, &mut arena, &mut later);
            } else {
                arena.truncate(frame.start);
                frames.pop();
                let Some((op, before)) = path.pop() else {
                    continue;
                };
                value = before;
                self.toggle(op);
                self.list.unlift(op);
                if self.ops[op].ret.is_some() {
                    done -= 1;
                }
                best.low = best.low.min(path.len());
            }
        }
    }

    /// Describes the deepest point the search reached: the prefix, the value after it,
    /// and the earliest-returning operation that could not come next.
    fn explain(&self, history: &[Operation], best: &[usize]) -> String {
        let mut value = None;
        let mut in_prefix = vec![false; self.ops.len()];
        for &op in best {
            value = step(value, &self.ops[op]).unwrap_or(value);
            in_prefix[op] = true;
        }
        let pending = |i: &usize| !in_prefix[*i] && self.ops[*i].ret.is_some();
        let Some(blocked) =
            (0..self.ops.len()).filter(pending).min_by_key(|&i| (self.ops[i].ret, i))
        else {
            return "search failed with every operation linearized".to_owned();
        };
        let deadline = self.ops[blocked].ret;
        let describe = |i: usize| describe(history, self.ops[i].at);
        let done = best.iter().filter(|&&i| self.ops[i].ret.is_some()).count();
        let mut message = format!(
            "no order fits the {} completed operations (and {} of unknown outcome); ",
            self.completed,
            self.ops.len() - self.completed
        );
        if best.is_empty() {
            message.push_str("none can come first");
        } else {
            let shown = best.len().min(4);
            let tail: Vec<String> =
                best[best.len() - shown..].iter().map(|&i| describe(i)).collect();
            message.push_str(&format!(
                "the longest linearizable prefix places {done} of them, ending with {}{}",
                if shown < best.len() { "... " } else { "" },
                tail.join(", ")
            ));
        }
        message.push_str(&format!(
            "; the value is then {}, and {} cannot come next",
            Shown(value),
            describe(blocked)
        ));
        let others: Vec<String> = (0..self.ops.len())
            .filter(|i| *i != blocked && pending(i) && Some(self.ops[*i].call) <= deadline)
            .take(6)
            .map(describe)
            .collect();
        if !others.is_empty() {
            message.push_str(&format!(", nor can {}", others.join(", ")));
        }
        message
    }
}

/// `#7 (client 2: cas 1 to 3 -> applied, 120..180)`.
fn describe(history: &[Operation], at: usize) -> String {
    let Some(op) = history.get(at) else {
        return format!("#{at}");
    };
    let output = op.output.map_or_else(|| "unknown".to_owned(), |out| out.to_string());
    let ret = op.ret.map_or_else(|| "never".to_owned(), |r| r.to_string());
    format!("#{at} (client {}: {} -> {output}, {}..{ret})", op.client, op.input, op.call)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    const K: &str = "k";

    fn done(client: u64, call: u64, ret: u64, input: Input, output: Output) -> Operation {
        Operation { client, key: K.to_owned(), call, ret: Some(ret), input, output: Some(output) }
    }

    fn write(client: u64, call: u64, ret: u64, v: u64) -> Operation {
        done(client, call, ret, Input::Write(v), Output::Write)
    }

    fn read(client: u64, call: u64, ret: u64, seen: Option<u64>) -> Operation {
        done(client, call, ret, Input::Read, Output::Read(seen))
    }

    fn cas(
        client: u64,
        call: u64,
        ret: u64,
        expected: Option<u64>,
        new: u64,
        ok: bool,
    ) -> Operation {
        done(client, call, ret, Input::Cas { expected, new }, Output::Cas(ok))
    }

    fn delete(client: u64, call: u64, ret: u64, existed: bool) -> Operation {
        done(client, call, ret, Input::Delete, Output::Delete(existed))
    }

    /// Sent at `call`, never answered.
    fn lost(client: u64, call: u64, input: Input) -> Operation {
        Operation { client, key: K.to_owned(), call, ret: None, input, output: None }
    }

    fn on(key: &str, mut op: Operation) -> Operation {
        op.key = key.to_owned();
        op
    }

    fn assert_linearizable(history: &[Operation]) {
        let report = check(history);
        assert!(report.is_linearizable(), "{report:#?}");
    }

    /// Asserts exactly one violation, on `K`, and returns its message.
    fn assert_violation(history: &[Operation]) -> String {
        let report = check(history);
        assert!(report.unknown.is_empty(), "{report:#?}");
        assert_eq!(report.violations.len(), 1, "{report:#?}");
        assert_eq!(report.violations[0].key, K);
        report.violations[0].message.clone()
    }

    #[test]
    fn empty_history_is_linearizable() {
        let report = check(&[]);
        assert_eq!(report, Report::default());
        assert!(report.is_linearizable());
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let history = [
            read(1, 0, 1, None),
            write(1, 2, 3, 1),
            read(2, 4, 5, Some(1)),
            cas(1, 6, 7, Some(1), 2, true),
            cas(2, 8, 9, Some(1), 3, false),
            read(1, 10, 11, Some(2)),
            delete(2, 12, 13, true),
            read(1, 14, 15, None),
            delete(1, 16, 17, false),
            cas(2, 18, 19, None, 5, true),
            read(1, 20, 21, Some(5)),
        ];
        let report = check(&history);
        assert_eq!(report.keys, 1);
        assert_eq!(report.operations, 11);
        assert!(report.is_linearizable(), "{report:#?}");
    }

    #[test]
    fn concurrent_history_with_one_valid_order_is_linearizable() {
        // Both writes span both of the first reads; only w1, r, w2, r, r fits.
        let history = [
            write(1, 0, 100, 1),
            write(2, 0, 100, 2),
            read(3, 10, 20, Some(1)),
            read(3, 30, 40, Some(2)),
            read(3, 110, 120, Some(2)),
        ];
        assert_linearizable(&history);
        let mut bad = history.clone();
        bad[4] = read(3, 110, 120, Some(1));
        assert_violation(&bad);
    }

    #[test]
    fn intervals_are_closed() {
        // The read was called at the instant the write returned: it may come first.
        assert_linearizable(&[write(1, 0, 10, 1), read(2, 10, 20, None)]);
        assert_violation(&[write(1, 0, 10, 1), read(2, 11, 20, None)]);
    }

    #[test]
    fn stale_read_is_a_violation() {
        let message =
            assert_violation(&[write(1, 0, 10, 1), write(1, 20, 30, 2), read(2, 40, 50, Some(1))]);
        assert!(message.contains("#2 (client 2: read -> 1, 40..50) cannot come next"), "{message}");
        assert!(message.contains("the value is then 2"), "{message}");
    }

    #[test]
    fn read_of_a_value_never_written_is_a_violation() {
        let message =
            assert_violation(&[write(1, 0, 10, 1), write(2, 5, 15, 2), read(3, 0, 20, Some(7))]);
        assert!(message.contains("#2 (client 3: read -> 7"), "{message}");
    }

    #[test]
    fn two_cas_applied_from_the_same_value_is_a_lost_update() {
        let start = write(1, 0, 10, 0);
        assert_violation(&[
            start.clone(),
            cas(2, 20, 40, Some(0), 1, true),
            cas(3, 20, 40, Some(0), 2, true),
        ]);
        assert_linearizable(&[
            start.clone(),
            cas(2, 20, 40, Some(0), 1, true),
            cas(3, 20, 40, Some(0), 2, false),
            read(1, 50, 60, Some(1)),
        ]);
        assert_violation(&[
            start,
            cas(2, 20, 40, Some(0), 1, true),
            cas(3, 20, 40, Some(0), 2, false),
            read(1, 50, 60, Some(2)),
        ]);
    }

    #[test]
    fn read_going_back_in_time_is_a_violation() {
        // The second write spans both reads, yet once seen it cannot be unseen.
        let history = [
            write(1, 0, 10, 1),
            write(1, 20, 100, 2),
            read(2, 30, 40, Some(2)),
            read(2, 50, 60, Some(1)),
        ];
        assert_violation(&history);
        // The reverse order (old, then new) is fine.
        let mut good = history.clone();
        good[2] = read(2, 30, 40, Some(1));
        good[3] = read(2, 50, 60, Some(2));
        assert_linearizable(&good);
    }

    #[test]
    fn timed_out_write_that_took_effect_is_linearizable() {
        assert_linearizable(&[
            write(1, 0, 10, 1),
            lost(2, 20, Input::Write(2)),
            read(3, 30, 40, Some(1)),
            read(3, 50, 60, Some(2)),
            read(3, 70, 80, Some(2)),
        ]);
    }

    #[test]
    fn timed_out_write_that_never_took_effect_is_linearizable() {
        assert_linearizable(&[
            write(1, 0, 10, 1),
            lost(2, 20, Input::Write(2)),
            lost(2, 25, Input::Cas { expected: Some(1), new: 3 }),
            lost(2, 26, Input::Delete),
            read(3, 30, 40, Some(1)),
            write(1, 50, 60, 4),
            read(3, 70, 80, Some(4)),
        ]);
    }

    #[test]
    fn timed_out_write_seen_then_unseen_is_a_violation() {
        assert_violation(&[
            write(1, 0, 10, 1),
            lost(2, 20, Input::Write(2)),
            read(3, 30, 40, Some(2)),
            read(3, 50, 60, Some(1)),
        ]);
    }

    #[test]
    fn timed_out_write_cannot_act_before_its_call() {
        assert_violation(&[lost(2, 20, Input::Write(2)), read(3, 0, 10, Some(2))]);
    }

    #[test]
    fn abandoned_write_may_take_effect_after_the_client_gave_up() {
        let mut abandoned = write(2, 20, 30, 2);
        abandoned.output = None;
        assert_linearizable(&[
            write(1, 0, 10, 1),
            abandoned,
            read(3, 40, 50, Some(1)),
            read(3, 60, 70, Some(2)),
        ]);
    }

    #[test]
    fn read_of_unknown_outcome_is_ignored() {
        assert_linearizable(&[
            write(1, 0, 10, 1),
            lost(2, 20, Input::Read),
            read(3, 30, 40, Some(1)),
        ]);
    }

    #[test]
    fn delete_semantics() {
        assert_linearizable(&[
            delete(1, 0, 1, false),
            write(1, 2, 3, 1),
            delete(2, 4, 5, true),
            read(1, 6, 7, None),
            cas(1, 8, 9, None, 2, true),
        ]);
        // Deleting an absent key cannot report that it existed.
        assert_violation(&[delete(1, 0, 1, true)]);
        // Nor a present key that it did not.
        assert_violation(&[write(1, 0, 1, 1), delete(1, 2, 3, false)]);
        // A completed delete leaves nothing to read.
        assert_violation(&[write(1, 0, 1, 1), delete(1, 2, 3, true), read(2, 4, 5, Some(1))]);
        // Two deletes cannot both find the key.
        assert_violation(&[write(1, 0, 1, 1), delete(1, 2, 9, true), delete(2, 2, 9, true)]);
        // A delete of unknown outcome may have removed the key.
        assert_linearizable(&[write(1, 0, 1, 1), lost(1, 2, Input::Delete), read(2, 4, 5, None)]);
    }

    #[test]
    fn violations_are_reported_per_key() {
        let history = [
            on("a", write(1, 0, 10, 1)),
            on("b", write(2, 0, 10, 1)),
            on("a", write(1, 20, 30, 2)),
            on("b", write(2, 20, 30, 2)),
            on("a", read(3, 40, 50, Some(1))),
            on("b", read(3, 40, 50, Some(2))),
        ];
        let report = check(&history);
        assert_eq!(report.keys, 2);
        assert_eq!(report.operations, 6);
        assert!(report.unknown.is_empty());
        assert_eq!(report.violations.len(), 1, "{report:#?}");
        assert_eq!(report.violations[0].key, "a");
        assert!(report.violations[0].message.contains("#4"), "{report:#?}");
    }

    #[test]
    fn malformed_operations_are_violations() {
        let mut backwards = write(1, 10, 5, 1);
        backwards.ret = Some(5);
        let mismatched = done(1, 0, 1, Input::Read, Output::Write);
        let mut no_return = read(1, 0, 1, None);
        no_return.ret = None;
        for op in [backwards, mismatched, no_return] {
            let message = assert_violation(&[write(2, 0, 1, 1), op]);
            assert!(message.contains("malformed"), "{message}");
            assert!(message.contains("#1"), "{message}");
        }
    }

    /// Ten writers overlap ten readers; one read saw a value nobody wrote, so the search
    /// must rule out every order of the writers before it can say so.
    fn hard_history() -> Vec<Operation> {
        let mut history: Vec<Operation> = (0..10).map(|c| write(c, 0, 100, c)).collect();
        history.extend((0..10).map(|c| read(10 + c, 0, 100, Some(c))));
        history.push(read(20, 0, 100, Some(99)));
        history
    }

    #[test]
    fn state_cap_yields_unknown_not_a_verdict() {
        let history = hard_history();
        let full = check(&history);
        assert_eq!(full.violations.len(), 1, "{full:#?}");
        assert!(full.unknown.is_empty());
        for max_states in [0, 1, 100] {
            let capped = check_with_limit(&history, max_states);
            assert!(capped.violations.is_empty(), "{capped:#?}");
            assert_eq!(capped.unknown, vec![K.to_owned()]);
            assert!(!capped.is_linearizable());
        }
        // A linearizable history under a tiny cap is not claimed good either.
        let capped = check_with_limit(&hard_history()[..20], 3);
        assert!(capped.violations.is_empty(), "{capped:#?}");
        assert_eq!(capped.unknown, vec![K.to_owned()]);
    }

    // ---- Reference checker and generated histories ----

    /// The register as a sequential object: the next value and the answer.
    fn apply(value: Option<u64>, input: Input) -> (Option<u64>, Output) {
        match input {
            Input::Read => (value, Output::Read(value)),
            Input::Write(v) => (Some(v), Output::Write),
            Input::Cas { expected, new } if value == expected => (Some(new), Output::Cas(true)),
            Input::Cas { .. } => (value, Output::Cas(false)),
            Input::Delete => (None, Output::Delete(value.is_some())),
        }
    }

    /// Tries every subset of the unknown-outcome operations and every permutation of the
    /// chosen operations: linearizable iff one permutation replays on the sequential
    /// register and never puts an operation before one that returned before it was called.
    fn brute_force(history: &[Operation]) -> bool {
        let ops: Vec<&Operation> =
            history.iter().filter(|op| !(op.output.is_none() && op.input == Input::Read)).collect();
        let unknown: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].output.is_none()).collect();
        (0..1u32 << unknown.len()).any(|mask| {
            let mut chosen: Vec<usize> = (0..ops.len())
                .filter(|&i| {
                    ops[i].output.is_some()
                        || unknown
                            .iter()
                            .position(|&u| u == i)
                            .is_some_and(|bit| mask & (1 << bit) != 0)
                })
                .collect();
            permutations(&ops, &mut chosen, &mut Vec::new(), None)
        })
    }

    fn permutations(
        ops: &[&Operation],
        left: &mut Vec<usize>,
        placed: &mut Vec<usize>,
        value: Option<u64>,
    ) -> bool {
        if left.is_empty() {
            return true;
        }
        for k in 0..left.len() {
            let j = left[k];
            let deadline = ops[j].ret.filter(|_| ops[j].output.is_some());
            if placed.iter().any(|&i| deadline.is_some_and(|ret| ret < ops[i].call)) {
                continue;
            }
            let (next, answer) = apply(value, ops[j].input);
            if ops[j].output.is_some_and(|out| out != answer) {
                continue;
            }
            left.remove(k);
            placed.push(j);
            let found = permutations(ops, left, placed, next);
            placed.pop();
            left.insert(k, j);
            if found {
                return true;
            }
        }
        false
    }

    #[derive(Debug, Clone, Copy)]
    enum Fate {
        Answered,
        LostApplied,
        LostDropped,
        AbandonedApplied,
    }

    /// One operation of a generated serial execution: it takes effect `gap` after the
    /// previous one, and its interval reaches `before` earlier and `after` later.
    #[derive(Debug, Clone)]
    struct Spec {
        client: u64,
        gap: u64,
        before: u64,
        after: u64,
        input: Input,
        fate: Fate,
    }

    fn input_strategy(values: u64) -> impl Strategy<Value = Input> {
        prop_oneof![
            2 => Just(Input::Read),
            1 => (0..values).prop_map(Input::Write),
            1 => (proptest::option::of(0..values), 0..values)
                .prop_map(|(expected, new)| Input::Cas { expected, new }),
            1 => Just(Input::Delete),
        ]
    }

    fn spec_strategy(values: u64, spread: u64) -> impl Strategy<Value = Spec> {
        let fate = prop_oneof![
            8 => Just(Fate::Answered),
            1 => Just(Fate::LostApplied),
            1 => Just(Fate::LostDropped),
            1 => Just(Fate::AbandonedApplied),
        ];
        (0..4u64, 0..4u64, 0..spread, 0..spread, input_strategy(values), fate).prop_map(
            |(client, gap, before, after, input, fate)| Spec {
                client,
                gap,
                before,
                after,
                input,
                fate,
            },
        )
    }

    /// Runs the specs in order on a sequential register, each taking effect at a point
    /// inside its interval: a linearizable history by construction.
    fn serial_history(key: &str, specs: &[Spec], start: u64) -> Vec<Operation> {
        let (mut at, mut value) = (start, None);
        specs
            .iter()
            .map(|spec| {
                at += spec.gap;
                let (next, answer) = apply(value, spec.input);
                let (ret, output) = match spec.fate {
                    Fate::Answered => (Some(at + spec.after), Some(answer)),
                    Fate::LostApplied | Fate::LostDropped => (None, None),
                    Fate::AbandonedApplied => (Some(at + spec.after), None),
                };
                if !matches!(spec.fate, Fate::LostDropped) {
                    value = next;
                }
                Operation {
                    client: spec.client,
                    key: key.to_owned(),
                    call: at - spec.before.min(at),
                    ret,
                    input: spec.input,
                    output,
                }
            })
            .collect()
    }

    /// Replaces one operation's answer with another of the same kind; an unanswered one
    /// becomes answered.
    fn mutate(history: &mut [Operation], which: usize, choice: u64) {
        let len = history.len();
        let op = &mut history[which % len];
        op.output = Some(match op.input {
            Input::Read => Output::Read([None, Some(0), Some(1), Some(2)][choice as usize % 4]),
            Input::Write(_) => Output::Write,
            Input::Cas { .. } => Output::Cas(choice % 2 == 0),
            Input::Delete => Output::Delete(choice % 2 == 0),
        });
        op.ret = Some(op.ret.unwrap_or(op.call + choice % 7));
    }

    /// Small one-key histories: serial ones with tight, overlapping intervals, half of
    /// them with one answer changed.
    fn small_history() -> impl Strategy<Value = Vec<Operation>> {
        (
            proptest::collection::vec(spec_strategy(3, 6), 1..=7),
            proptest::option::of((0..7usize, 0..8u64)),
        )
            .prop_map(|(specs, mutation)| {
                let mut history = serial_history(K, &specs, 10);
                if let Some((which, choice)) = mutation {
                    mutate(&mut history, which, choice);
                }
                history
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn agrees_with_brute_force_on_small_histories(history in small_history()) {
            let report = check(&history);
            prop_assert!(report.unknown.is_empty());
            prop_assert_eq!(report.is_linearizable(), brute_force(&history), "{:#?}", report);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn serial_executions_pass(
            keys in proptest::collection::vec(
                proptest::collection::vec(spec_strategy(4, 40), 1..120), 1..4),
        ) {
            let mut history = Vec::new();
            for (k, specs) in keys.iter().enumerate() {
                history.extend(serial_history(&format!("key{k}"), specs, 100));
            }
            let report = check(&history);
            prop_assert!(report.is_linearizable(), "{:#?}", report);
            prop_assert_eq!(report.keys, keys.len());
        }

        #[test]
        fn a_read_of_an_unwritten_value_is_caught(
            specs in proptest::collection::vec(spec_strategy(4, 40), 1..120),
            which in any::<usize>(),
        ) {
            let mut history = serial_history(K, &specs, 100);
            let reads: Vec<usize> = (0..history.len())
                .filter(|&i| history[i].output.is_some() && history[i].input == Input::Read)
                .collect();
            prop_assume!(!reads.is_empty());
            history[reads[which % reads.len()]].output = Some(Output::Read(Some(999)));
            let report = check(&history);
            prop_assert!(report.unknown.is_empty());
            prop_assert_eq!(report.violations.len(), 1, "{:#?}", report);
        }
    }

    /// The brute-force comparison is only as strong as its mix of verdicts: both kinds
    /// must be common.
    #[test]
    fn small_histories_mix_both_verdicts() {
        let mut runner = TestRunner::deterministic();
        let strategy = small_history();
        let (mut good, mut bad) = (0, 0);
        for _ in 0..2000 {
            let history = strategy.new_tree(&mut runner).unwrap().current();
            let verdict = brute_force(&history);
            assert_eq!(check(&history).is_linearizable(), verdict, "{history:#?}");
            if verdict { good += 1 } else { bad += 1 }
        }
        assert!(good > 400 && bad > 400, "good {good}, bad {bad}");
    }

    // ---- Size ----

    /// A tiny deterministic generator (SplitMix64) for the large histories.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        }
    }

    /// `clients` clients each run `per_client` operations one after another on random
    /// keys; each takes effect at a random point of its interval, and about 3% time out.
    fn large_history(seed: u64, clients: u64, per_client: usize, keys: u64) -> Vec<Operation> {
        let mut rng = Rng(seed);
        let mut planned = Vec::new();
        for client in 0..clients {
            let mut now = rng.below(10);
            for _ in 0..per_client {
                let call = now;
                let ret = call + 1 + rng.below(50);
                let effect = call + rng.below(ret - call + 1);
                let input = match rng.below(5) {
                    0 | 1 => Input::Read,
                    2 => Input::Write(rng.below(1000)),
                    3 => Input::Cas {
                        expected: Some(rng.below(1000)).filter(|_| rng.below(4) > 0),
                        new: rng.below(1000),
                    },
                    _ => Input::Delete,
                };
                let timed_out = rng.below(33) == 0;
                let applied = rng.below(2) == 0;
                let key = format!("key{}", rng.below(keys));
                planned.push((effect, client, key, call, ret, input, timed_out, applied));
                now = ret + rng.below(5);
            }
        }
        planned.sort_by_key(|p| p.0);
        let mut values: HashMap<String, Option<u64>> = HashMap::new();
        planned
            .into_iter()
            .map(|(_, client, key, call, ret, input, timed_out, applied)| {
                let value = values.entry(key.clone()).or_default();
                let (next, answer) = apply(*value, input);
                if !timed_out || applied {
                    *value = next;
                }
                Operation {
                    client,
                    key,
                    call,
                    ret: Some(ret).filter(|_| !timed_out),
                    input,
                    output: Some(answer).filter(|_| !timed_out),
                }
            })
            .collect()
    }

    #[test]
    fn large_history_over_many_keys() {
        let history = large_history(7, 10, 1000, 20);
        let report = check(&history);
        assert_eq!(report.operations, 10_000);
        assert_eq!(report.keys, 20);
        assert!(report.is_linearizable(), "{report:#?}");
    }

    #[test]
    fn large_history_on_one_key_with_a_late_stale_read() {
        let mut history = large_history(11, 10, 300, 1);
        assert!(check(&history).is_linearizable());
        let last_read =
            history.iter().rposition(|op| op.input == Input::Read && op.output.is_some()).unwrap();
        history[last_read].output = Some(Output::Read(Some(5000)));
        let report = check(&history);
        assert!(report.unknown.is_empty(), "{report:#?}");
        assert_eq!(report.violations.len(), 1, "{report:#?}");
    }
}
