//! One behaviour suite, two implementations: the core applied in process, and a real
//! member behind the gRPC client. Each step's outcome (value, stat but for clock fields and
//! session ids, or error kind) must match, and match what the suite expects; and the events
//! the core emitted must be exactly those a watch of the member delivered.

use std::sync::Mutex;

use bytes::Bytes;
use warden_client::{Client, ClientError, Consistency, ErrorKind};
use warden_core::{ApplyContext, Command, CoreError, CreateMode, Output, Request, Stat, State};

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

/// What a step produced, comparable across implementations.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Created(String, Stat),
    Stat(Stat),
    Deleted(u64),
    Value(Bytes, Stat),
    Children(Vec<String>),
    /// The error kind, as in `warden-error`.
    Error(String),
}

/// An event, comparable across implementations.
type EventView = (u64, warden_core::EventKind, String, Stat, Option<Bytes>);

fn view(e: warden_core::Event) -> EventView {
    (e.revision, e.kind, e.path, timeless(e.stat), e.data)
}

/// The operations the suite uses.
trait Kv {
    /// Opens a session; returns a handle for the calls below.
    async fn open_session(&self) -> usize;
    async fn create_in(&self, session: usize, path: &str, data: &str, mode: CreateMode) -> Outcome;
    async fn close_session(&self, session: usize) -> Outcome;
    /// Every event up to the current revision, in order.
    async fn events(&self) -> Vec<EventView>;
    async fn create(&self, path: &str, data: &str, mode: CreateMode) -> Outcome;
    async fn set(&self, path: &str, data: &str, version: Option<u64>) -> Outcome;
    async fn delete(&self, path: &str, version: Option<u64>, recursive: bool) -> Outcome;
    async fn get(&self, path: &str) -> Outcome;
    async fn children(&self, path: &str) -> Outcome;
}

/// Clock fields and session ids (log indexes) differ between implementations; everything
/// else must not.
fn timeless(mut s: Stat) -> Stat {
    s.ctime_ms = 0;
    s.mtime_ms = 0;
    s.ephemeral_owner = s.ephemeral_owner.min(1);
    s
}

/// The core, applied directly.
struct InProcess {
    state: Mutex<(State, u64)>,
    events: Mutex<Vec<warden_core::Event>>,
    sessions: Mutex<Vec<u64>>,
}

fn kind(e: &CoreError) -> String {
    let debug = format!("{e:?}");
    debug.split([' ', '{', '(']).next().unwrap_or_default().to_owned()
}

impl InProcess {
    fn apply_in(&self, session: Option<u64>, command: Command) -> Result<Output, String> {
        let mut guard = self.state.lock().unwrap();
        guard.1 += 1;
        let ctx = ApplyContext { index: guard.1, time_ms: 0, term: 1 };
        let applied = guard.0.apply(Request { session, id: None, command }, &ctx);
        self.events.lock().unwrap().extend(applied.events);
        applied.response.outcome.map_err(|e| kind(&e))
    }

    fn apply(&self, command: Command) -> Result<Output, String> {
        self.apply_in(None, command)
    }
}

impl Kv for InProcess {
    async fn open_session(&self) -> usize {
        let Ok(Output::SessionOpened { id, .. }) =
            self.apply(Command::OpenSession { ttl_ms: 60_000, identity: String::new() })
        else {
            panic!("open");
        };
        let mut sessions = self.sessions.lock().unwrap();
        sessions.push(id);
        sessions.len() - 1
    }
    async fn create_in(&self, session: usize, path: &str, data: &str, mode: CreateMode) -> Outcome {
        let id = self.sessions.lock().unwrap()[session];
        let command = Command::Create {
            path: path.into(),
            data: Bytes::copy_from_slice(data.as_bytes()),
            mode,
        };
        match self.apply_in(Some(id), command) {
            Ok(Output::Created { path, stat }) => Outcome::Created(path, timeless(stat)),
            Ok(other) => panic!("{other:?}"),
            Err(k) => Outcome::Error(k),
        }
    }
    async fn close_session(&self, session: usize) -> Outcome {
        let id = self.sessions.lock().unwrap()[session];
        match self.apply(Command::CloseSession { id }) {
            Ok(Output::SessionClosed { deleted, .. }) => Outcome::Deleted(deleted),
            Ok(other) => panic!("{other:?}"),
            Err(k) => Outcome::Error(k),
        }
    }
    async fn events(&self) -> Vec<EventView> {
        self.events.lock().unwrap().iter().cloned().map(view).collect()
    }
    async fn create(&self, path: &str, data: &str, mode: CreateMode) -> Outcome {
        match self.apply(Command::Create {
            path: path.into(),
            data: Bytes::copy_from_slice(data.as_bytes()),
            mode,
        }) {
            Ok(Output::Created { path, stat }) => Outcome::Created(path, timeless(stat)),
            Ok(other) => panic!("{other:?}"),
            Err(k) => Outcome::Error(k),
        }
    }
    async fn set(&self, path: &str, data: &str, version: Option<u64>) -> Outcome {
        let command = Command::Set {
            path: path.into(),
            data: Bytes::copy_from_slice(data.as_bytes()),
            expected_version: version,
        };
        match self.apply(command) {
            Ok(Output::Set { stat }) => Outcome::Stat(timeless(stat)),
            Ok(other) => panic!("{other:?}"),
            Err(k) => Outcome::Error(k),
        }
    }
    async fn delete(&self, path: &str, version: Option<u64>, recursive: bool) -> Outcome {
        match self.apply(Command::Delete {
            path: path.into(),
            expected_version: version,
            recursive,
            revoke_locks: false,
        }) {
            Ok(Output::Deleted { count, .. }) => Outcome::Deleted(count),
            Ok(other) => panic!("{other:?}"),
            Err(k) => Outcome::Error(k),
        }
    }
    async fn get(&self, path: &str) -> Outcome {
        let guard = self.state.lock().unwrap();
        match guard.0.get(path) {
            Ok(node) => Outcome::Value(node.data.clone(), timeless(node.stat)),
            Err(e) => Outcome::Error(kind(&e)),
        }
    }
    async fn children(&self, path: &str) -> Outcome {
        let guard = self.state.lock().unwrap();
        match guard.0.children(path) {
            Ok(children) => Outcome::Children(children.into_iter().map(|(n, _)| n).collect()),
            Err(e) => Outcome::Error(kind(&e)),
        }
    }
}

fn remote(e: ClientError) -> Outcome {
    match e {
        ClientError::Server { kind, .. } => {
            Outcome::Error(kind.map(ErrorKind::as_str).unwrap_or_default().to_owned())
        }
        other => panic!("transport failure in the conformance suite: {other}"),
    }
}

/// A member behind the gRPC client, with a watch of everything from revision 1.
struct Remote {
    client: Client,
    sessions: tokio::sync::Mutex<Vec<Option<warden_client::Session>>>,
    watcher: tokio::sync::Mutex<warden_client::Watcher>,
}

impl Kv for Remote {
    async fn open_session(&self) -> usize {
        let session = self.client.open_session(std::time::Duration::from_secs(60)).await.unwrap();
        let mut sessions = self.sessions.lock().await;
        sessions.push(Some(session));
        sessions.len() - 1
    }
    async fn create_in(&self, session: usize, path: &str, data: &str, mode: CreateMode) -> Outcome {
        let sessions = self.sessions.lock().await;
        let session = sessions[session].as_ref().unwrap();
        match self.client.create_in(session, path, data.to_owned(), mode).await {
            Ok((path, stat)) => Outcome::Created(path, timeless(stat)),
            Err(e) => remote(e),
        }
    }
    async fn close_session(&self, session: usize) -> Outcome {
        let session = self.sessions.lock().await[session].take().unwrap();
        match session.close().await {
            Ok(deleted) => Outcome::Deleted(deleted),
            Err(e) => remote(e),
        }
    }
    async fn events(&self) -> Vec<EventView> {
        let last = self.client.get("/").await.unwrap().revision;
        let mut watcher = self.watcher.lock().await;
        let mut events = Vec::new();
        loop {
            let batch = tokio::time::timeout(std::time::Duration::from_secs(10), watcher.next())
                .await
                .expect("the watch stalled")
                .unwrap();
            events.extend(batch.events.into_iter().map(view));
            if batch.revision >= last {
                return events;
            }
        }
    }
    async fn create(&self, path: &str, data: &str, mode: CreateMode) -> Outcome {
        match self.client.create(path, data.to_owned(), mode).await {
            Ok((path, stat)) => Outcome::Created(path, timeless(stat)),
            Err(e) => remote(e),
        }
    }
    async fn set(&self, path: &str, data: &str, version: Option<u64>) -> Outcome {
        match self.client.set(path, data.to_owned(), version).await {
            Ok(stat) => Outcome::Stat(timeless(stat)),
            Err(e) => remote(e),
        }
    }
    async fn delete(&self, path: &str, version: Option<u64>, recursive: bool) -> Outcome {
        match self.client.delete(path, version, recursive).await {
            Ok(count) => Outcome::Deleted(count),
            Err(e) => remote(e),
        }
    }
    async fn get(&self, path: &str) -> Outcome {
        match self.client.get(path).await {
            Ok(node) => Outcome::Value(node.data, timeless(node.stat)),
            Err(e) => remote(e),
        }
    }
    async fn children(&self, path: &str) -> Outcome {
        match self.client.children(path, Consistency::Linearizable).await {
            Ok(children) => Outcome::Children(children.into_iter().map(|(n, _)| n).collect()),
            Err(e) => remote(e),
        }
    }
}

fn err(kind: ErrorKind) -> Outcome {
    Outcome::Error(kind.as_str().into())
}

/// The suite: every step's outcome, checked against what the rules say.
async fn suite(kv: &impl Kv) -> Vec<Outcome> {
    let mut log = Vec::new();
    let p = CreateMode::PERSISTENT;
    macro_rules! step {
        ($call:expr, $check:expr) => {{
            let outcome = $call;
            let check: &dyn Fn(&Outcome) -> bool = &$check;
            assert!(check(&outcome), "step {} gave {outcome:?}", log.len());
            log.push(outcome);
        }};
    }
    step!(
        kv.create("/a", "1", p).await,
        |o| matches!(o, Outcome::Created(path, s) if path == "/a" && s.version == 0)
    );
    step!(kv.create("/a", "1", p).await, |o| *o == err(ErrorKind::NodeExists));
    step!(kv.create("/x/y", "", p).await, |o| *o == err(ErrorKind::NoParent));
    step!(kv.create("a", "", p).await, |o| *o == err(ErrorKind::InvalidPath));
    step!(kv.create("/a/", "", p).await, |o| *o == err(ErrorKind::InvalidPath));
    step!(
        kv.create("/a/q-", "", p.sequential()).await,
        |o| matches!(o, Outcome::Created(path, _) if path == "/a/q-0000000000")
    );
    step!(
        kv.create("/a/q-", "", p.sequential()).await,
        |o| matches!(o, Outcome::Created(path, _) if path == "/a/q-0000000001")
    );
    step!(kv.create("/c", "", CreateMode::CONTAINER.sequential()).await, |o| *o
        == err(ErrorKind::InvalidCreateMode));
    step!(kv.create("/e", "", CreateMode::EPHEMERAL).await, |o| *o
        == err(ErrorKind::SessionRequired));
    step!(kv.set("/a", "2", Some(0)).await, |o| matches!(o, Outcome::Stat(s) if s.version == 1));
    step!(kv.set("/a", "3", Some(0)).await, |o| *o == err(ErrorKind::BadVersion));
    step!(kv.set("/nope", "3", None).await, |o| *o == err(ErrorKind::NoNode));
    step!(
        kv.get("/a").await,
        |o| matches!(o, Outcome::Value(d, s) if d == "2" && s.num_children == 2 && s.cversion == 2)
    );
    step!(kv.children("/a").await, |o| *o
        == Outcome::Children(vec!["q-0000000000".into(), "q-0000000001".into()]));
    step!(kv.delete("/a", None, false).await, |o| *o == err(ErrorKind::NotEmpty));
    step!(kv.delete("/a", Some(7), true).await, |o| *o == err(ErrorKind::BadVersion));
    step!(kv.delete("/", None, true).await, |o| *o == err(ErrorKind::RootNotDeletable));
    step!(kv.create("/locks", "", CreateMode::CONTAINER).await, |o| matches!(
        o,
        Outcome::Created(..)
    ));
    step!(kv.create("/locks/w", "", p).await, |o| matches!(o, Outcome::Created(..)));
    step!(kv.delete("/locks/w", None, false).await, |o| *o == Outcome::Deleted(2));
    step!(kv.get("/locks").await, |o| *o == err(ErrorKind::NoNode));
    step!(kv.delete("/a", Some(1), true).await, |o| *o == Outcome::Deleted(3));
    step!(kv.children("/").await, |o| *o == Outcome::Children(vec![]));
    step!(kv.get("/").await, |o| matches!(o, Outcome::Value(_, s) if s.cversion > 0));

    // Sessions: ephemeral nodes belong to one and go with it, with the containers they empty.
    let s = kv.open_session().await;
    let eph = CreateMode::EPHEMERAL;
    step!(
        kv.create_in(s, "/eph", "x", eph).await,
        |o| matches!(o, Outcome::Created(_, st) if st.ephemeral_owner == 1)
    );
    step!(kv.create_in(s, "/eph/child", "", p).await, |o| *o == err(ErrorKind::EphemeralParent));
    step!(kv.create("/c2", "", CreateMode::CONTAINER).await, |o| matches!(o, Outcome::Created(..)));
    step!(
        kv.create_in(s, "/c2/w-", "", eph.sequential()).await,
        |o| matches!(o, Outcome::Created(path, _) if path == "/c2/w-0000000000")
    );
    step!(kv.close_session(s).await, |o| *o == Outcome::Deleted(3));
    step!(kv.get("/eph").await, |o| *o == err(ErrorKind::NoNode));
    step!(kv.get("/c2").await, |o| *o == err(ErrorKind::NoNode));
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_core_and_the_grpc_client_behave_alike() {
    let in_process = InProcess {
        state: Mutex::new((State::default(), 0)),
        events: Mutex::new(Vec::new()),
        sessions: Mutex::new(Vec::new()),
    };
    let expected = suite(&in_process).await;
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let watcher = client.watch("/", warden_client::Scope::Prefix, 1, false).await.unwrap();
    let remote = Remote {
        client,
        sessions: tokio::sync::Mutex::new(Vec::new()),
        watcher: tokio::sync::Mutex::new(watcher),
    };
    let got = suite(&remote).await;
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(g, e, "step {i}: gRPC and in-process differ");
    }
    assert_eq!(expected.len(), got.len());
    let (core_events, watched) = (in_process.events().await, remote.events().await);
    assert!(core_events.len() > 20, "the suite makes many changes: {}", core_events.len());
    assert_eq!(watched, core_events, "the watch delivered exactly the core's events");
    cluster.stop().await;
}
