use std::cell::RefCell;
use std::collections::VecDeque;

use warden_client::{Code, ErrorKind, LockEntry, LockScope, ResourceHolder, WaitMode};

use super::*;

/// A kind that answers status from a script (the last answer repeats), and records the
/// rotations and forces asked.
struct Scripted {
    statuses: RefCell<VecDeque<ResourceStatus>>,
    rotations: RefCell<Vec<String>>,
    forces: RefCell<u32>,
    /// The force answer (switched or not); None refuses it (not admin).
    force_switches: Option<bool>,
    /// What a status answers after a force.
    after_force: Option<ResourceStatus>,
}

fn holder(session: u64, token: Option<u64>) -> ResourceHolder {
    ResourceHolder {
        id: "42".into(),
        lock: "/orders/v1/42".into(),
        entry: LockEntry {
            waiter: "/orders/v1/42/w-0000000001".into(),
            session_id: session,
            mode: WaitMode::Exclusive,
            token,
            since_ms: 0,
            identity: String::new(),
            scope: LockScope::Node,
            priority: 0,
            owner: None,
            holds: 1,
        },
    }
}

fn at(version: &str, to: Option<&str>, holders: Vec<ResourceHolder>) -> ResourceStatus {
    ResourceStatus {
        kind: "/orders".into(),
        version: version.into(),
        rotating_to: to.map(str::to_owned),
        current: holders,
        waiting: vec![],
        revision: 1,
    }
}

impl Scripted {
    fn new(statuses: Vec<ResourceStatus>) -> Scripted {
        Scripted {
            statuses: RefCell::new(statuses.into()),
            rotations: RefCell::default(),
            forces: RefCell::default(),
            force_switches: Some(false),
            after_force: None,
        }
    }
}

impl Kind for Scripted {
    async fn rotate(&self, to: &str) -> Result<Rotation, ClientError> {
        self.rotations.borrow_mut().push(to.to_owned());
        Ok(Rotation { from: "v1".into(), to: to.into(), switched: false, revoked: 0 })
    }

    async fn force(&self) -> Result<Rotation, ClientError> {
        *self.forces.borrow_mut() += 1;
        let Some(switched) = self.force_switches else {
            return Err(ClientError::Server {
                code: Code::PermissionDenied,
                message: "needs admin".into(),
                kind: Some(ErrorKind::PermissionDenied),
            });
        };
        if let Some(after) = self.after_force.clone() {
            *self.statuses.borrow_mut() = VecDeque::from([after]);
        }
        Ok(Rotation { from: "v1".into(), to: "v2".into(), switched, revoked: 1 })
    }

    async fn status(&self) -> Result<ResourceStatus, ClientError> {
        let mut statuses = self.statuses.borrow_mut();
        let next =
            if statuses.len() > 1 { statuses.pop_front() } else { statuses.front().cloned() };
        next.ok_or_else(|| ClientError::UnexpectedResponse { message: "no status".into() })
    }
}

#[derive(Default)]
struct Events(Vec<Event>);

impl Report for Events {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        self.0.push(event.clone());
        Ok(())
    }
}

fn options(timeout: Option<u64>, force_after: Option<u64>) -> Options {
    Options {
        to: "v2".into(),
        dry_run: false,
        timeout: timeout.map(Duration::from_secs),
        force_after: force_after.map(Duration::from_secs),
        poll: Duration::from_millis(250),
    }
}

fn names(events: &Events) -> Vec<&'static str> {
    events
        .0
        .iter()
        .map(|e| match e {
            Event::Plan { .. } => "plan",
            Event::Begun { picked_up: false, .. } => "begun",
            Event::Begun { picked_up: true, .. } => "picked up",
            Event::Progress(_) => "progress",
            Event::Forced(_) => "forced",
            Event::Done { .. } => "done",
            Event::TimedOut { .. } => "timeout",
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_rotation_waits_for_the_holder_reports_changes_only_and_ends_at_the_switch() {
    let one = at("v1", Some("v2"), vec![holder(7, Some(3)), holder(8, None)]);
    let left = at("v1", Some("v2"), vec![holder(7, Some(3))]);
    let kind = Scripted::new(vec![
        at("v1", None, vec![holder(7, Some(3))]),
        one.clone(),
        one.clone(),
        one,
        left.clone(),
        left,
        at("v2", None, vec![]),
    ]);
    let mut events = Events::default();
    let started = Instant::now();
    let outcome = run(&kind, &options(None, None), &mut events).await;
    assert_eq!(outcome.ok(), Some(Outcome::Done));
    assert_eq!(names(&events), ["begun", "progress", "progress", "done"]);
    assert_eq!(*kind.rotations.borrow(), ["v2"]);
    assert_eq!(*kind.forces.borrow(), 0);
    // Five polls of progress before the switch was read.
    assert_eq!(started.elapsed(), Duration::from_millis(5 * 250));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_gives_up_and_a_rerun_picks_up_where_the_rotation_is() {
    let stuck = at("v1", Some("v2"), vec![holder(7, Some(3))]);
    let kind = Scripted::new(vec![at("v1", None, vec![holder(7, Some(3))]), stuck.clone()]);
    let mut events = Events::default();
    let started = Instant::now();
    let outcome = run(&kind, &options(Some(2), None), &mut events).await;
    assert_eq!(outcome.ok(), Some(Outcome::TimedOut));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(names(&events), ["begun", "progress", "timeout"]);

    // Run again: the rotation is found under way; the holder leaves.
    let kind = Scripted::new(vec![stuck.clone(), stuck, at("v2", None, vec![])]);
    let mut events = Events::default();
    let outcome = run(&kind, &options(Some(2), None), &mut events).await;
    assert_eq!(outcome.ok(), Some(Outcome::Done));
    assert_eq!(names(&events), ["picked up", "progress", "done"]);
    assert_eq!(*kind.rotations.borrow(), ["v2"], "begun again: an idempotent call");
}

#[tokio::test(start_paused = true)]
async fn force_after_forces_once_then_waits_for_the_switch() {
    let stuck = at("v1", Some("v2"), vec![holder(7, Some(3))]);
    let mut kind = Scripted::new(vec![at("v1", None, vec![]), stuck]);
    // The revoked holder's lock-delay: still v1 for a poll, then switched.
    kind.after_force = Some(at("v1", Some("v2"), vec![]));
    let mut events = Events::default();
    let started = Instant::now();
    let outcome = run(&kind, &options(Some(10), Some(1)), &mut events).await;
    // The scripted kind never switches by itself: the loop ran to its timeout, having
    // forced exactly once, at 1 s.
    assert_eq!(outcome.ok(), Some(Outcome::TimedOut));
    assert_eq!(*kind.forces.borrow(), 1);
    assert_eq!(names(&events), ["begun", "progress", "forced", "progress", "timeout"]);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_force_that_switches_ends_the_run_and_one_refused_fails_it() {
    let stuck = at("v1", Some("v2"), vec![holder(7, Some(3))]);
    let mut kind = Scripted::new(vec![at("v1", None, vec![]), stuck.clone()]);
    kind.force_switches = Some(true);
    let mut events = Events::default();
    let outcome = run(&kind, &options(None, Some(1)), &mut events).await;
    assert_eq!(outcome.ok(), Some(Outcome::Done));
    assert_eq!(names(&events), ["begun", "progress", "forced", "done"]);
    assert!(matches!(events.0.last(), Some(Event::Done { revoked: 1, .. })));

    let mut kind = Scripted::new(vec![stuck]);
    kind.force_switches = None;
    let outcome = run(&kind, &options(None, Some(1)), &mut Events::default()).await;
    assert!(matches!(outcome, Err(Error::Client(e)) if e.code() == Some(Code::PermissionDenied)));
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_only_reads_and_a_kind_at_the_target_or_rotating_elsewhere_is_settled_first() {
    let kind = Scripted::new(vec![at("v1", None, vec![holder(7, Some(3))])]);
    let mut events = Events::default();
    let dry = Options { dry_run: true, ..options(None, Some(0)) };
    assert_eq!(run(&kind, &dry, &mut events).await.ok(), Some(Outcome::Planned));
    assert_eq!(names(&events), ["plan"]);
    assert!(kind.rotations.borrow().is_empty() && *kind.forces.borrow() == 0);

    let kind = Scripted::new(vec![at("v2", None, vec![])]);
    let mut events = Events::default();
    assert_eq!(run(&kind, &options(None, None), &mut events).await.ok(), Some(Outcome::Done));
    assert_eq!(names(&events), ["done"]);
    assert!(kind.rotations.borrow().is_empty());

    let kind = Scripted::new(vec![at("v1", Some("v3"), vec![])]);
    for dry_run in [false, true] {
        let o = Options { dry_run, ..options(None, None) };
        match run(&kind, &o, &mut Events::default()).await {
            Err(Error::Refused(why)) => assert!(why.contains("rotating from v1 to v3"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(kind.rotations.borrow().is_empty());
}
