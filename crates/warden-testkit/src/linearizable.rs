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
//! a violation by itself.
//!
//! # Search
//!
//! Two passes share one state space: a state is the set of placed operations and the value.
//!
//! - First a depth-first search, Lowe's as such (an event list with a backtracking stack and
//!   a cache of visited states), on a quarter of the state budget. On a linearizable history
//!   it goes nearly straight to an order.
//! - If that runs out, a sweep visits the states breadth first, one layer per number of
//!   completed operations placed. It reaches each state by all its ways before going on, so
//!   it never expands a state that merely placed more unknown-outcome operations than
//!   another; depth first, such states make most of the work once operations time out.
//!
//! Both use these reductions, each sound (a proof sketch sits beside its code):
//!
//! - an operation that leaves the value as it found it (a read, a compare-and-set that did
//!   not apply, a delete of an absent key) is placed as soon as it fits, with no branching;
//! - operations of unknown outcome are placed only as a block just before a completed
//!   operation that does not fit without them, since any other placement could move later
//!   or go; and same-input ones are placed in call order;
//! - a state is skipped if one already reached has the same completed operations, the same
//!   value and a subset of its unknown-outcome operations.
//!
//! # Bound
//!
//! The search is exponential in the worst case. [`check_with_limit`] caps the states reached
//! per key, which bounds both time and memory; a key whose search reaches the cap is listed
//! in [`Report::unknown`] rather than judged.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
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

/// Checks `history`, reaching at most `max_states` search states (a set of linearized
/// operations and a value) per key: a quarter for the depth-first pass, the rest for the
/// sweep. A key that needs more is reported in [`Report::unknown`]. Time and memory per key
/// grow with the states reached (memory by some tens of bytes each, plus the window of
/// operations in flight).
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

/// A set of placed completed operations (see [`compact`]) and the value.
type StateKey = (Box<[u64]>, Value);

/// Where a block of unknown-outcome operations started, if in one, and the set of those
/// placed (trimmed): with a [`StateKey`], one search state.
type Covering = (Option<Value>, Box<[u64]>);

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

/// How a search pass ended.
enum Outcome {
    Linearizable,
    /// No order exists; the operations of a longest linearizable prefix, in order.
    Violation(Vec<usize>),
    OutOfStates,
}

/// Stops a sweep early.
enum Stop {
    Linearizable,
    OutOfStates,
}

/// An operation of one key as the search sees it.
#[derive(Clone, Copy)]
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
    let (ops, stand_in) = match key_ops(history, indices) {
        Ok(key) => key,
        Err(malformed) => return Verdict::Violation(malformed),
    };
    let rules = Rules::new(&ops, stand_in);
    let quick = max_states / 4;
    let outcome = match Dfs::new(&rules, quick).run() {
        Outcome::OutOfStates => Sweep::new(&rules, max_states - quick).run(),
        outcome => outcome,
    };
    match outcome {
        Outcome::Linearizable => Verdict::Linearizable,
        Outcome::Violation(prefix) => Verdict::Violation(rules.explain(history, &prefix)),
        Outcome::OutOfStates => Verdict::Unknown,
    }
}

/// The operations at `indices`, validated, in call order, with unseen values merged (and
/// the stand-in), or why some are malformed.
fn key_ops(history: &[Operation], indices: &[usize]) -> Result<(Vec<KeyOp>, Option<u64>), String> {
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
        return Err(format!(
            "{} malformed operations, key not checked: {}",
            malformed.len(),
            malformed[..shown].join("; ")
        ));
    }
    ops.sort_by_key(|op| (op.call, op.at));
    let stand_in = merge_unseen_values(&mut ops);
    Ok((ops, stand_in))
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

/// Rewrites every written value that no read returned and no compare-and-set expected to
/// one stand-in value, itself never read or expected, and returns the stand-in.
///
/// No operation can tell such values apart: each read or compare-and-set compares the value
/// with a value other than all of them, and a delete only asks whether one is there. So the
/// history is linearizable iff the rewritten one is, and the rewrite makes writes of unseen
/// values twins, which the search places in call order instead of trying each.
fn merge_unseen_values(ops: &mut [KeyOp]) -> Option<u64> {
    let mut seen = HashSet::new();
    for op in ops.iter() {
        match (op.input, op.output) {
            (Input::Read, Some(Output::Read(Some(v)))) => seen.insert(v),
            (Input::Cas { expected: Some(v), .. }, _) => seen.insert(v),
            _ => false,
        };
    }
    let stand_in = (0..=u64::MAX).rev().find(|v| !seen.contains(v))?;
    for op in ops.iter_mut() {
        match &mut op.input {
            Input::Write(v) | Input::Cas { new: v, .. } if !seen.contains(v) => *v = stand_in,
            _ => {}
        }
    }
    Some(stand_in)
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

/// Whether a completed `op` leaves the value as it found it wherever it fits.
///
/// Such an operation, once it fits, is placed at once with no alternative tried: any
/// linearization from here places it later, and moving it to the front keeps every value
/// the others see (it changes none) and every real-time order (it may come next, so no
/// pending operation returned before its call).
fn is_identity(op: &KeyOp) -> bool {
    match (op.input, op.output) {
        (Input::Read, Some(_)) => true,
        (Input::Cas { .. }, Some(Output::Cas(false))) => true,
        (Input::Cas { expected, new }, Some(Output::Cas(true))) => expected == Some(new),
        (Input::Delete, Some(Output::Delete(false))) => true,
        _ => false,
    }
}

/// One key's operations and what both search passes need to know about them.
///
/// Each operation has a bit: completed ones in one set, unknown-outcome ones in another,
/// both numbered in call order.
struct Rules<'a> {
    ops: &'a [KeyOp],
    bit: Vec<usize>,
    /// The completed operations, by bit.
    known_ops: Vec<usize>,
    /// The unknown-outcome operations, by bit.
    unknown_ops: Vec<usize>,
    /// For an unknown-outcome operation, the one called last before it with the same
    /// input. Such twins are interchangeable but for the earlier call, so they are placed
    /// in call order: a linearization using a later twin can swap it for the earlier.
    twin: Vec<Option<usize>>,
    /// The value of [`merge_unseen_values`].
    stand_in: Option<u64>,
    /// For each value read or expected, the last completed operation (by bit) that reads
    /// or expects it; `usize::MAX` if an unknown-outcome compare-and-set expects it.
    last_mention: HashMap<u64, usize>,
    /// For an unknown-outcome write or compare-and-set, the first pending completed bit
    /// from which its written value is dead (see [`Rules::dead_class`]); `usize::MAX` for
    /// other operations.
    dies_at: Vec<usize>,
    /// For an unknown-outcome write or compare-and-set, its class once its value is dead:
    /// 0 for writes, one per expected value for compare-and-sets.
    class: Vec<usize>,
    classes: usize,
}

impl<'a> Rules<'a> {
    fn new(ops: &'a [KeyOp], stand_in: Option<u64>) -> Self {
        let (mut known_ops, mut unknown_ops) = (Vec::new(), Vec::new());
        let mut last_with: HashMap<Input, usize> = HashMap::new();
        let mut bit = Vec::with_capacity(ops.len());
        let mut twin = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let set = if op.ret.is_some() { &mut known_ops } else { &mut unknown_ops };
            bit.push(set.len());
            set.push(i);
            twin.push(if op.ret.is_some() { None } else { last_with.insert(op.input, i) });
        }
        let mut last_mention: HashMap<u64, usize> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let mention = match (op.input, op.output) {
                (Input::Read, Some(Output::Read(Some(v)))) => v,
                (Input::Cas { expected: Some(v), .. }, _) => v,
                _ => continue,
            };
            let last = if op.ret.is_some() { bit[i] } else { usize::MAX };
            let entry = last_mention.entry(mention).or_default();
            *entry = (*entry).max(last);
        }
        let (mut dies_at, mut class) = (vec![usize::MAX; ops.len()], vec![0; ops.len()]);
        let mut cas_classes: HashMap<Option<u64>, usize> = HashMap::new();
        for &op in &unknown_ops {
            let written = match ops[op].input {
                Input::Write(v) => v,
                Input::Cas { expected, new } => {
                    let next = cas_classes.len() + 1;
                    class[op] = *cas_classes.entry(expected).or_insert(next);
                    new
                }
                _ => continue,
            };
            dies_at[op] = match last_mention.get(&written) {
                Some(&last) => last.saturating_add(1),
                None => 0,
            };
        }
        let classes = cas_classes.len() + 1;
        Self {
            ops,
            bit,
            known_ops,
            unknown_ops,
            twin,
            stand_in,
            last_mention,
            dies_at,
            class,
            classes,
        }
    }

    fn is_known(&self, op: usize) -> bool {
        self.ops[op].ret.is_some()
    }

    fn fits(&self, op: usize, value: Value) -> bool {
        step(value, &self.ops[op]).is_some()
    }

    /// Whether unknown-outcome `op` may be placed given those `placed`: not yet, and no
    /// earlier twin waiting.
    fn may_place(&self, op: usize, placed: &[u64]) -> bool {
        !is_set(placed, self.bit[op]) && self.twin[op].is_none_or(|t| is_set(placed, self.bit[t]))
    }

    /// The operations that may come next: those called before the earliest return of a
    /// pending completed operation (closed intervals: a call at that very time counts).
    fn candidates(
        &self,
        done: &[u64],
        placed: &[u64],
        known: &mut Vec<usize>,
        unknown: &mut Vec<usize>,
    ) {
        known.clear();
        unknown.clear();
        let deadline = self.deadline(done, Some(known));
        for &op in &self.unknown_ops {
            if self.ops[op].call > deadline {
                break;
            }
            if !is_set(placed, self.bit[op]) {
                unknown.push(op);
            }
        }
    }

    /// The earliest return of a pending completed operation; pushes the completed
    /// operations called by then to `known`, if given.
    fn deadline(&self, done: &[u64], mut known: Option<&mut Vec<usize>>) -> u64 {
        let mut deadline = u64::MAX;
        for &op in self.known_ops.get(first_zero(done)..).unwrap_or_default() {
            if is_set(done, self.bit[op]) {
                continue;
            }
            if self.ops[op].call > deadline {
                break;
            }
            if let Some(known) = known.as_mut() {
                known.push(op);
            }
            deadline = deadline.min(self.ops[op].ret.unwrap_or(u64::MAX));
        }
        deadline
    }

    /// Whether an operation not yet placed (all before completed bit `first_pending` are)
    /// may still read or expect `v`. Once none may, `v` is as good as the stand-in.
    fn is_live(&self, v: Value, first_pending: usize) -> bool {
        v.is_none_or(|v| self.last_mention.get(&v).is_some_and(|&last| last >= first_pending))
    }

    /// The value the rest of the history sees: `v`, or the stand-in if `v` is dead.
    fn canonical_value(&self, v: Value, first_pending: usize) -> Value {
        match self.stand_in {
            Some(stand_in) if !self.is_live(v, first_pending) => Some(stand_in),
            _ => v,
        }
    }

    /// For an unknown-outcome write or compare-and-set whose written value is dead, its
    /// class: writes, or compare-and-sets expecting the same value. Such operations of one
    /// class, once called, are interchangeable from here on: they act alike on every value
    /// the rest of the history can tell apart.
    fn dead_class(&self, op: usize, first_pending: usize) -> Option<usize> {
        (self.stand_in.is_some() && first_pending >= self.dies_at[op]).then_some(self.class[op])
    }

    /// Keeps, of the unknown-outcome candidates, only the first of each dead class: the
    /// others can do nothing it cannot.
    fn first_of_classes(&self, done: &[u64], unknown: &mut Vec<usize>) {
        let first_pending = first_zero(done);
        let mut seen = Vec::new();
        unknown.retain(|&op| match self.dead_class(op, first_pending) {
            Some(class) if seen.contains(&class) => false,
            Some(class) => {
                seen.push(class);
                true
            }
            None => true,
        });
    }

    /// Rewrites `placed` so that in each dead class the earliest-called operations are the
    /// placed ones, as many as before: states that differ only in which were placed become
    /// one. All operations of a class called by the deadline may come anywhere from here on,
    /// so which of them were placed does not matter.
    fn canonical_placed(&self, done: &[u64], placed: &mut [u64]) {
        if placed.iter().all(|&w| w == 0) {
            return;
        }
        let (first_pending, deadline) = (first_zero(done), self.deadline(done, None));
        let mut counts = vec![0usize; self.classes];
        let mut members = Vec::new();
        for &op in &self.unknown_ops {
            if self.ops[op].call > deadline {
                break;
            }
            if let Some(class) = self.dead_class(op, first_pending) {
                let bit = self.bit[op];
                if is_set(placed, bit) {
                    counts[class] += 1;
                    flip(placed, bit);
                }
                members.push((class, bit));
            }
        }
        for (class, bit) in members {
            if counts[class] > 0 {
                counts[class] -= 1;
                flip(placed, bit);
            }
        }
    }

    /// Appends to `out` the moves worth trying from a state with `value`, given the
    /// candidates; `block` is the value before the current block of unknown-outcome
    /// operations, if the last one placed was one.
    ///
    /// Outside a block: an identity operation that fits, alone, if there is one; else the
    /// completed operations that fit, and the unknown-outcome ones that change the value
    /// if some completed operation does not fit (a block must end just before one).
    /// Inside a block that started from `b`: the completed operations that fit now but
    /// did not at `b` (else the block could move past them or go), and unknown-outcome
    /// compare-and-sets that apply (a write or delete inside a block would erase what came
    /// before it, and a compare-and-set that does not apply changes nothing).
    fn moves(
        &self,
        (known, unknown): (&[usize], &[usize]),
        value: Value,
        block: Option<Value>,
        placed: &[u64],
        out: &mut Vec<usize>,
    ) {
        let start = out.len();
        let unknown = unknown.iter().copied().filter(|&op| self.may_place(op, placed));
        match block {
            None => {
                if let Some(&op) =
                    known.iter().find(|&&op| is_identity(&self.ops[op]) && self.fits(op, value))
                {
                    out.push(op);
                    return;
                }
                out.extend(known.iter().copied().filter(|&op| self.fits(op, value)));
                if out.len() - start < known.len() {
                    out.extend(unknown.filter(|&op| {
                        step(value, &self.ops[op]).is_some_and(|after| after != value)
                    }));
                }
            }
            Some(b) => {
                out.extend(
                    known.iter().copied().filter(|&op| self.fits(op, value) && !self.fits(op, b)),
                );
                out.extend(unknown.filter(|&op| {
                    matches!(self.ops[op].input,
                        Input::Cas { expected, new } if expected == value && Some(new) != value)
                }));
            }
        }
    }

    /// Describes where the search got stuck: the longest linearizable prefix, the value
    /// after it, and the earliest-returning operation that could not come next.
    fn explain(&self, history: &[Operation], prefix: &[usize]) -> String {
        let mut value = None;
        let mut in_prefix = vec![false; self.ops.len()];
        for &op in prefix {
            let original = history.get(self.ops[op].at).map_or(self.ops[op].input, |o| o.input);
            let op_as_asked = KeyOp { input: original, ..self.ops[op] };
            value = step(value, &op_as_asked).unwrap_or(value);
            in_prefix[op] = true;
        }
        let pending = |i: &usize| !in_prefix[*i] && self.is_known(*i);
        let Some(blocked) =
            (0..self.ops.len()).filter(pending).min_by_key(|&i| (self.ops[i].ret, i))
        else {
            return "search failed with every operation linearized".to_owned();
        };
        let deadline = self.ops[blocked].ret;
        let describe = |i: usize| describe(history, self.ops[i].at);
        let mut message = format!(
            "no order fits the {} completed operations (and {} of unknown outcome); ",
            self.known_ops.len(),
            self.unknown_ops.len()
        );
        if prefix.is_empty() {
            message.push_str("none can come first");
        } else {
            let done = prefix.iter().filter(|&&i| self.is_known(i)).count();
            let shown = prefix.len().min(4);
            let tail: Vec<String> =
                prefix[prefix.len() - shown..].iter().map(|&i| describe(i)).collect();
            message.push_str(&format!(
                "the longest linearizable prefix places {done} of them, ending with {}{}",
                if shown < prefix.len() { "... " } else { "" },
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

// ---- Bitsets ----

fn is_set(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn flip(bits: &mut [u64], i: usize) {
    bits[i / 64] ^= 1 << (i % 64);
}

fn first_zero(bits: &[u64]) -> usize {
    let full = bits.iter().take_while(|&&w| w == u64::MAX).count();
    full * 64 + bits.get(full).map_or(0, |w| w.trailing_ones() as usize)
}

/// A bitset without its leading all-ones words (their count comes first) and trailing
/// zero words. Completed operations are placed roughly in call order, so this stays about
/// as long as the concurrency window, not the history.
fn compact(bits: &[u64]) -> Box<[u64]> {
    let lead = bits.iter().take_while(|&&w| w == u64::MAX).count();
    let rest = trimmed(bits.get(lead..).unwrap_or_default());
    let mut key = Vec::with_capacity(rest.len() + 1);
    key.push(lead as u64);
    key.extend_from_slice(rest);
    key.into_boxed_slice()
}

/// The inverse of [`compact`], into a bitset of the right length.
fn expand(key: &[u64], bits: &mut [u64]) {
    let lead = key.first().map_or(0, |&n| n as usize);
    let rest = key.get(1..).unwrap_or_default();
    for (i, w) in bits.iter_mut().enumerate() {
        *w = if i < lead { u64::MAX } else { rest.get(i - lead).copied().unwrap_or(0) };
    }
}

fn trimmed(bits: &[u64]) -> &[u64] {
    let len = bits.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
    bits.get(..len).unwrap_or_default()
}

fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().enumerate().all(|(i, &w)| w & !b.get(i).copied().unwrap_or(0) == 0)
}

// ---- Depth first ----

/// A call or return in the time-ordered event list.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_return: bool,
}

/// Lowe's doubly linked, circular list of call and return events, sorted by time with
/// calls first at equal times (closed intervals). Placing an operation lifts its events
/// out; backtracking puts them back (dancing links, strictly last out first in).
/// Operations of unknown outcome have no return event.
struct EntryList {
    entries: Vec<Event>,
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
            list.entries.push(Event { op, is_return });
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

    /// The candidates of [`Rules::candidates`], read off the list: the calls before the
    /// first return left.
    fn candidates(&self, ops: &[KeyOp], known: &mut Vec<usize>, unknown: &mut Vec<usize>) {
        known.clear();
        unknown.clear();
        let sentinel = self.entries.len();
        let mut e = self.next[sentinel];
        while e != sentinel {
            let entry = self.entries[e];
            if entry.is_return {
                break;
            }
            if ops[entry.op].ret.is_some() {
                known.push(entry.op);
            } else {
                unknown.push(entry.op);
            }
            e = self.next[e];
        }
    }
}

enum Visit {
    New,
    Seen,
    Full,
}

/// Lowe's cache of visited states, with the unknown-outcome operations kept apart: for a
/// set of completed operations and a value, the (block start, unknown-outcome set) pairs
/// visited, none covered by another.
///
/// A visited state covers a new one with the same completed operations and value if it
/// placed a subset of its unknown-outcome operations and allows every move it allows (it is
/// outside a block, or in a block that started from the same value): every continuation of
/// the new state is then one of the visited state too, so skipping it loses nothing.
struct Cache {
    seen: HashMap<StateKey, Vec<Covering>>,
    visited: usize,
    limit: usize,
}

impl Cache {
    fn visit(&mut self, done: &[u64], placed: &[u64], value: Value, block: Option<Value>) -> Visit {
        let placed = trimmed(placed);
        let covers = |b: Option<Value>, u: &[u64], block: Option<Value>, placed: &[u64]| {
            (b.is_none() || b == block) && is_subset(u, placed)
        };
        let known = self.seen.entry((compact(done), value)).or_default();
        if known.iter().any(|(b, u)| covers(*b, u, block, placed)) {
            return Visit::Seen;
        }
        if self.visited >= self.limit {
            return Visit::Full;
        }
        known.retain(|(b, u)| !covers(block, placed, *b, u));
        known.push((block, placed.into()));
        self.visited += 1;
        Visit::New
    }
}

/// A search node's moves: `arena[next..end]` are still to try.
struct Frame {
    start: usize,
    next: usize,
    end: usize,
}

/// One placed operation and the state before it, to undo it.
struct Placed {
    op: usize,
    value: Value,
    block: Option<Value>,
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
    fn record(&mut self, path: &[Placed], done: usize) {
        if done > self.done {
            self.ops.truncate(self.low);
            self.ops.extend(path.iter().skip(self.low).map(|p| p.op));
            self.low = path.len();
            self.done = done;
        }
    }
}

/// The depth-first pass: Lowe's search. A node is the set of placed operations, the
/// value, and, inside a block of unknown-outcome operations, the value the block started
/// from.
struct Dfs<'a> {
    rules: &'a Rules<'a>,
    list: EntryList,
    done: Vec<u64>,
    placed: Vec<u64>,
    cache: Cache,
    known: Vec<usize>,
    unknown: Vec<usize>,
}

impl<'a> Dfs<'a> {
    fn new(rules: &'a Rules<'a>, max_states: usize) -> Self {
        Self {
            rules,
            list: EntryList::new(rules.ops),
            done: vec![0; rules.known_ops.len().div_ceil(64)],
            placed: vec![0; rules.unknown_ops.len().div_ceil(64)],
            cache: Cache { seen: HashMap::new(), visited: 0, limit: max_states },
            known: Vec::new(),
            unknown: Vec::new(),
        }
    }

    fn toggle(&mut self, op: usize) {
        let bits = if self.rules.is_known(op) { &mut self.done } else { &mut self.placed };
        flip(bits, self.rules.bit[op]);
    }

    /// The moves of [`Rules::moves`]; unknown-outcome operations whose value is dead come
    /// first, as using one costs nothing later.
    fn moves(&mut self, value: Value, block: Option<Value>, arena: &mut Vec<usize>) {
        self.list.candidates(self.rules.ops, &mut self.known, &mut self.unknown);
        self.rules.first_of_classes(&self.done, &mut self.unknown);
        let first_pending = first_zero(&self.done);
        self.unknown.sort_by_key(|&op| self.rules.dead_class(op, first_pending).is_none());
        let candidates = (self.known.as_slice(), self.unknown.as_slice());
        self.rules.moves(candidates, value, block, &self.placed, arena);
    }

    /// Tries each move of a node in turn, entering each state at most once, and backtracks
    /// when a node has no move left. Complete despite the pruning: take a node from which
    /// a linearization exists, with the shortest such continuation; its first move (made
    /// canonical by the reductions) is tried and leads to a node entered, or covered by
    /// one entered, from which a linearization at least one step shorter exists; by
    /// induction, the search would have found it.
    fn run(mut self) -> Outcome {
        if self.rules.known_ops.is_empty() {
            return Outcome::Linearizable;
        }
        let (mut value, mut block): (Value, Option<Value>) = (None, None);
        if let Visit::Full = self.cache.visit(&self.done, &self.placed, value, block) {
            return Outcome::OutOfStates;
        }
        let completed = self.rules.known_ops.len();
        let mut arena = Vec::new();
        self.moves(value, block, &mut arena);
        let mut frames = vec![Frame { start: 0, next: 0, end: arena.len() }];
        let mut path: Vec<Placed> = Vec::new();
        let mut done = 0;
        let mut best = Best::default();
        loop {
            let Some(frame) = frames.last_mut() else {
                return Outcome::Violation(best.ops);
            };
            if frame.next == frame.end {
                arena.truncate(frame.start);
                frames.pop();
                if let Some(last) = path.pop() {
                    (value, block) = (last.value, last.block);
                    self.toggle(last.op);
                    self.list.unlift(last.op);
                    done -= usize::from(self.rules.is_known(last.op));
                    best.low = best.low.min(path.len());
                }
                continue;
            }
            let op = arena[frame.next];
            frame.next += 1;
            let Some(after) = step(value, &self.rules.ops[op]) else {
                continue;
            };
            let known = self.rules.is_known(op);
            if known && done + 1 == completed {
                return Outcome::Linearizable;
            }
            let block_after = if known { None } else { block.or(Some(value)) };
            self.toggle(op);
            self.list.lift(op);
            path.push(Placed { op, value, block });
            best.record(&path, done + usize::from(known));
            let start = arena.len();
            self.moves(after, block_after, &mut arena);
            let visit = if arena.len() == start {
                Visit::Seen
            } else {
                self.cache.visit(&self.done, &self.placed, after, block_after)
            };
            match visit {
                Visit::New => {
                    (value, block) = (after, block_after);
                    done += usize::from(known);
                    frames.push(Frame { start, next: start, end: arena.len() });
                }
                Visit::Seen => {
                    arena.truncate(start);
                    path.pop();
                    best.low = best.low.min(path.len());
                    self.list.unlift(op);
                    self.toggle(op);
                }
                Visit::Full => return Outcome::OutOfStates,
            }
        }
    }
}

// ---- Breadth first ----

/// No trail entry: the start of the history.
const ROOT: usize = usize::MAX;

/// The states of one layer of the sweep, all with the same number of completed operations
/// placed: grouped by (completed set, value), each group keeping the unknown-outcome sets
/// none of which contains another (a state with more placed can do nothing more).
#[derive(Default)]
struct Layer {
    index: HashMap<StateKey, usize>,
    groups: Vec<Group>,
}

struct Group {
    done: Box<[u64]>,
    value: Value,
    /// Unknown-outcome sets, each with its trail entry (how the state was reached).
    variants: Vec<(Box<[u64]>, usize)>,
}

impl Layer {
    /// Adds a state unless one already there covers it; `trail` is asked only if added.
    fn insert(
        &mut self,
        done: Box<[u64]>,
        value: Value,
        placed: &[u64],
        trail: impl FnOnce() -> usize,
    ) -> bool {
        let placed = trimmed(placed);
        let g = match self.index.entry((done, value)) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                self.groups.push(Group { done: e.key().0.clone(), value, variants: Vec::new() });
                *e.insert(self.groups.len() - 1)
            }
        };
        let variants = &mut self.groups[g].variants;
        if variants.iter().any(|(u, _)| is_subset(u, placed)) {
            return false;
        }
        variants.retain(|(u, _)| !is_subset(placed, u));
        variants.push((placed.into(), trail()));
        true
    }
}

/// The breadth-first pass. The trail records, for each state added, the operation placed
/// and the trail entry it came from, so a state's order can be read back for the message.
struct Sweep<'a> {
    rules: &'a Rules<'a>,
    trail: Vec<(usize, usize)>,
    states: usize,
    limit: usize,
    done: Vec<u64>,
    placed: Vec<u64>,
    scratch: Vec<u64>,
    known: Vec<usize>,
    unknown: Vec<usize>,
}

impl<'a> Sweep<'a> {
    fn new(rules: &'a Rules<'a>, max_states: usize) -> Self {
        Self {
            rules,
            trail: Vec::new(),
            states: 0,
            limit: max_states,
            done: vec![0; rules.known_ops.len().div_ceil(64)],
            placed: vec![0; rules.unknown_ops.len().div_ceil(64)],
            scratch: Vec::new(),
            known: Vec::new(),
            unknown: Vec::new(),
        }
    }

    fn count_state(&mut self) -> Result<(), Stop> {
        self.states += 1;
        if self.states > self.limit { Err(Stop::OutOfStates) } else { Ok(()) }
    }

    /// Expands layer after layer until one holds every completed operation (linearizable)
    /// or none can be reached (a violation; any state of the last layer gives a longest
    /// linearizable prefix).
    fn run(mut self) -> Outcome {
        if self.rules.known_ops.is_empty() {
            return Outcome::Linearizable;
        }
        let mut layer = Layer::default();
        if self.count_state().is_err() {
            return Outcome::OutOfStates;
        }
        layer.insert(compact(&self.done), None, &[], || ROOT);
        loop {
            let mut next = Layer::default();
            for group in &layer.groups {
                for (placed, trail) in &group.variants {
                    match self.expand(group, placed, *trail, &mut next) {
                        Ok(()) => {}
                        Err(Stop::Linearizable) => return Outcome::Linearizable,
                        Err(Stop::OutOfStates) => return Outcome::OutOfStates,
                    }
                }
            }
            if next.groups.is_empty() {
                let trail = layer.groups.first().and_then(|g| g.variants.first()).map(|v| v.1);
                return Outcome::Violation(self.path(trail.unwrap_or(ROOT)));
            }
            layer = next;
        }
    }

    /// Adds to `next` every state one completed operation (perhaps after a block of
    /// unknown-outcome ones) beyond the given one.
    fn expand(
        &mut self,
        group: &Group,
        placed: &[u64],
        trail: usize,
        next: &mut Layer,
    ) -> Result<(), Stop> {
        expand(&group.done, &mut self.done);
        self.placed.fill(0);
        self.placed[..placed.len()].copy_from_slice(placed);
        self.rules.candidates(&self.done, &self.placed, &mut self.known, &mut self.unknown);
        self.rules.first_of_classes(&self.done, &mut self.unknown);
        let mut moves = Vec::new();
        let candidates = (self.known.as_slice(), self.unknown.as_slice());
        self.rules.moves(candidates, group.value, None, &self.placed, &mut moves);
        let mut seen = HashSet::new();
        for op in moves {
            let Some(after) = step(group.value, &self.rules.ops[op]) else { continue };
            if self.rules.is_known(op) {
                self.place_known(op, after, &[], trail, next)?;
            } else {
                self.extend_block(&mut vec![op], group.value, after, trail, next, &mut seen)?;
            }
        }
        Ok(())
    }

    /// Adds the state after completed `op`, preceded by the unknown-outcome `block`.
    fn place_known(
        &mut self,
        op: usize,
        value: Value,
        block: &[usize],
        trail: usize,
        next: &mut Layer,
    ) -> Result<(), Stop> {
        let bit = self.rules.bit[op];
        flip(&mut self.done, bit);
        let first_pending = first_zero(&self.done);
        let key = compact(&self.done);
        self.scratch.clone_from(&self.placed);
        self.rules.canonical_placed(&self.done, &mut self.scratch);
        flip(&mut self.done, bit);
        if first_pending >= self.rules.known_ops.len() {
            return Err(Stop::Linearizable);
        }
        let value = self.rules.canonical_value(value, first_pending);
        let steps = &mut self.trail;
        let added = next.insert(key, value, &self.scratch, || {
            let mut at = trail;
            for &placed in block.iter().chain([&op]) {
                steps.push((at, placed));
                at = steps.len() - 1;
            }
            at
        });
        if added { self.count_state() } else { Ok(()) }
    }

    /// Continues the block of unknown-outcome operations `block` (the last already
    /// applied: the value is `value`, it was `before` the block) with every move allowed.
    fn extend_block(
        &mut self,
        block: &mut Vec<usize>,
        before: Value,
        value: Value,
        trail: usize,
        next: &mut Layer,
        seen: &mut HashSet<(Box<[u64]>, Value)>,
    ) -> Result<(), Stop> {
        let Some(&last) = block.last() else { return Ok(()) };
        flip(&mut self.placed, self.rules.bit[last]);
        let result = self.extend_placed_block(block, before, value, trail, next, seen);
        flip(&mut self.placed, self.rules.bit[last]);
        result
    }

    fn extend_placed_block(
        &mut self,
        block: &mut Vec<usize>,
        before: Value,
        value: Value,
        trail: usize,
        next: &mut Layer,
        seen: &mut HashSet<(Box<[u64]>, Value)>,
    ) -> Result<(), Stop> {
        if !seen.insert((trimmed(&self.placed).into(), value)) {
            return Ok(());
        }
        self.count_state()?;
        let mut moves = Vec::new();
        let candidates = (self.known.as_slice(), self.unknown.as_slice());
        self.rules.moves(candidates, value, Some(before), &self.placed, &mut moves);
        for op in moves {
            let Some(after) = step(value, &self.rules.ops[op]) else { continue };
            if self.rules.is_known(op) {
                self.place_known(op, after, block, trail, next)?;
            } else {
                block.push(op);
                let result = self.extend_block(block, before, after, trail, next, seen);
                block.pop();
                result?;
            }
        }
        Ok(())
    }

    /// The operations placed on the way to a trail entry, in order.
    fn path(&self, mut at: usize) -> Vec<usize> {
        let mut ops = Vec::new();
        while let Some(&(from, op)) = self.trail.get(at) {
            ops.push(op);
            at = from;
        }
        ops.reverse();
        ops
    }
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

    /// Operations `0..gaps` apart, intervals reaching `0..spread` either side, values
    /// `0..values`.
    fn spec_strategy(values: u64, gaps: u64, spread: u64) -> impl Strategy<Value = Spec> {
        let fate = prop_oneof![
            8 => Just(Fate::Answered),
            1 => Just(Fate::LostApplied),
            1 => Just(Fate::LostDropped),
            1 => Just(Fate::AbandonedApplied),
        ];
        (0..4u64, 0..gaps, 0..spread, 0..spread, input_strategy(values), fate).prop_map(
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
            Input::Read => Output::Read(Some(choice % 5).filter(|&v| v < 4)),
            Input::Write(_) => Output::Write,
            Input::Cas { .. } => Output::Cas(choice.is_multiple_of(2)),
            Input::Delete => Output::Delete(choice.is_multiple_of(2)),
        });
        op.ret = Some(op.ret.unwrap_or(op.call + choice % 7));
    }

    /// Small one-key histories: serial ones with tight, overlapping intervals, half of
    /// them with one answer changed.
    fn small_history() -> impl Strategy<Value = Vec<Operation>> {
        (
            proptest::collection::vec(spec_strategy(3, 4, 6), 1..=7),
            proptest::option::weighted(0.85, (0..7usize, 0..8u64)),
        )
            .prop_map(|(specs, mutation)| {
                let mut history = serial_history(K, &specs, 10);
                if let Some((which, choice)) = mutation {
                    mutate(&mut history, which, choice);
                }
                history
            })
    }

    /// Medium one-key histories, too long for brute force: some 20 to 60 operations
    /// with a handful in flight at once, most with up to three answers changed.
    fn medium_history() -> impl Strategy<Value = Vec<Operation>> {
        (
            proptest::collection::vec(spec_strategy(5, 4, 8), 20..60),
            proptest::collection::vec((any::<usize>(), 0..8u64), 0..=3),
        )
            .prop_map(|(specs, mutations)| {
                let mut history = serial_history(K, &specs, 10);
                for (which, choice) in mutations {
                    mutate(&mut history, which, choice);
                }
                history
            })
    }

    /// The verdict of each pass alone on a one-key history: `None` if it ran out of states.
    fn pass_verdicts(history: &[Operation], max_states: usize) -> [Option<bool>; 2] {
        let indices: Vec<usize> = (0..history.len()).collect();
        let (ops, stand_in) = key_ops(history, &indices).unwrap();
        let rules = Rules::new(&ops, stand_in);
        let verdict = |outcome| match outcome {
            Outcome::Linearizable => Some(true),
            Outcome::Violation(_) => Some(false),
            Outcome::OutOfStates => None,
        };
        [verdict(Dfs::new(&rules, max_states).run()), verdict(Sweep::new(&rules, max_states).run())]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn agrees_with_brute_force_on_small_histories(history in small_history()) {
            let expected = brute_force(&history);
            let report = check(&history);
            prop_assert!(report.unknown.is_empty());
            prop_assert_eq!(report.is_linearizable(), expected, "{:#?}", report);
            // The sweep rarely runs within `check` on histories this small: try each pass.
            let [dfs, sweep] = pass_verdicts(&history, 1_000_000);
            prop_assert_eq!(dfs, Some(expected), "depth first");
            prop_assert_eq!(sweep, Some(expected), "sweep");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn both_passes_agree_on_medium_histories(history in medium_history()) {
            let [dfs, sweep] = pass_verdicts(&history, 2_000_000);
            prop_assert!(dfs.is_some() && sweep.is_some(), "{:?} {:?}", dfs, sweep);
            prop_assert_eq!(dfs, sweep);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn serial_executions_pass(
            keys in proptest::collection::vec(
                proptest::collection::vec(spec_strategy(6, 10, 20), 1..150), 1..4),
        ) {
            let mut history = Vec::new();
            for (k, specs) in keys.iter().enumerate() {
                history.extend(serial_history(&format!("key{k}"), specs, 100));
            }
            let report = check(&history);
            prop_assert!(report.is_linearizable(), "{:#?}", report);
            prop_assert_eq!(report.keys, keys.len());
            prop_assert_eq!(report.operations, history.len());
        }

        #[test]
        fn a_read_of_an_unwritten_value_is_caught(
            specs in proptest::collection::vec(spec_strategy(6, 10, 20), 1..150),
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
    /// must be common, and the medium histories must mix them too.
    #[test]
    fn generated_histories_mix_both_verdicts() {
        let mut runner = TestRunner::deterministic();
        let strategy = small_history();
        let (mut good, mut bad) = (0, 0);
        for _ in 0..2000 {
            let history = strategy.new_tree(&mut runner).unwrap().current();
            let verdict = brute_force(&history);
            assert_eq!(check(&history).is_linearizable(), verdict, "{history:#?}");
            if verdict { good += 1 } else { bad += 1 }
        }
        assert!(good > 400 && bad > 400, "small: good {good}, bad {bad}");
        let strategy = medium_history();
        let (mut good, mut bad) = (0, 0);
        for _ in 0..300 {
            let history = strategy.new_tree(&mut runner).unwrap().current();
            if check(&history).is_linearizable() { good += 1 } else { bad += 1 }
        }
        assert!(good > 60 && bad > 60, "medium: good {good}, bad {bad}");
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

    /// `clients` clients each run `per_client` operations one after another (up to 50
    /// time units each) on `keys` random keys; each takes effect at a random point of its
    /// interval, and one in `timeout_one_in` times out, taking effect or not.
    fn large_history(
        seed: u64,
        (clients, per_client, keys): (u64, usize, u64),
        timeout_one_in: u64,
    ) -> Vec<Operation> {
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
                let timed_out = rng.below(timeout_one_in) == 0;
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

    /// Makes the last answered read of `key` see a value nobody wrote.
    fn spoil_last_read(history: &mut [Operation], key: &str) {
        let last = history
            .iter()
            .rposition(|op| op.key == key && op.input == Input::Read && op.output.is_some())
            .unwrap();
        history[last].output = Some(Output::Read(Some(5000)));
    }

    /// The fault suite's shape: 10 clients, 10,000 operations over 20 keys, 3% timed out.
    #[test]
    fn large_history_over_many_keys() {
        let mut history = large_history(7, (10, 1000, 20), 33);
        let report = check(&history);
        assert_eq!((report.operations, report.keys), (10_000, 20));
        assert!(report.is_linearizable(), "{report:#?}");
        spoil_last_read(&mut history, "key13");
        let report = check(&history);
        assert!(report.unknown.is_empty(), "{report:#?}");
        assert_eq!(report.violations.len(), 1, "{report:#?}");
        assert_eq!(report.violations[0].key, "key13");
    }

    /// A hot key: 10 clients, 1,000 operations on one key, 3% timed out, and a bad read at
    /// the very end, so that the search must rule out every order of the whole history.
    #[test]
    fn hot_key_with_a_late_bad_read() {
        let mut history = large_history(11, (10, 100, 1), 33);
        assert!(check(&history).is_linearizable());
        spoil_last_read(&mut history, "key0");
        let report = check(&history);
        assert!(report.unknown.is_empty(), "{report:#?}");
        assert_eq!(report.violations.len(), 1, "{report:#?}");
    }

    /// The same at 3,000 operations, and at 10% timed out; about a second each in release.
    #[test]
    #[ignore = "slow in debug builds"]
    fn hotter_keys_with_a_late_bad_read() {
        for (per_client, timeout_one_in) in [(300, 33), (100, 10)] {
            let mut history = large_history(11, (10, per_client, 1), timeout_one_in);
            assert!(check(&history).is_linearizable());
            spoil_last_read(&mut history, "key0");
            let report = check(&history);
            assert!(report.unknown.is_empty(), "{report:#?}");
            assert_eq!(report.violations.len(), 1, "{report:#?}");
        }
    }
}
