//! One behaviour suite, two implementations: the core applied in process, and a real
//! member behind the gRPC client. Each step's outcome (value, stat but for clock fields,
//! or error kind) must match, and match what the suite expects.

use std::sync::Mutex;

use bytes::Bytes;
use warden_client::{Client, ClientError, Consistency};
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

/// The operations the suite uses.
trait Kv {
    async fn create(&self, path: &str, data: &str, mode: CreateMode) -> Outcome;
    async fn set(&self, path: &str, data: &str, version: Option<u64>) -> Outcome;
    async fn delete(&self, path: &str, version: Option<u64>, recursive: bool) -> Outcome;
    async fn get(&self, path: &str) -> Outcome;
    async fn children(&self, path: &str) -> Outcome;
}

/// Clock fields differ between implementations; everything else must not.
fn timeless(mut s: Stat) -> Stat {
    s.ctime_ms = 0;
    s.mtime_ms = 0;
    s
}

/// The core, applied directly.
struct InProcess {
    state: Mutex<(State, u64)>,
}

fn kind(e: &CoreError) -> String {
    let debug = format!("{e:?}");
    debug.split([' ', '{', '(']).next().unwrap_or_default().to_owned()
}

impl InProcess {
    fn apply(&self, command: Command) -> Result<Output, String> {
        let mut guard = self.state.lock().unwrap();
        guard.1 += 1;
        let ctx = ApplyContext { index: guard.1, time_ms: 0, term: 1 };
        guard.0.apply(Request::new(command), &ctx).response.outcome.map_err(|e| kind(&e))
    }
}

impl Kv for InProcess {
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
        }) {
            Ok(Output::Deleted { count }) => Outcome::Deleted(count),
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
        ClientError::Server { kind, .. } => Outcome::Error(kind),
        other => panic!("transport failure in the conformance suite: {other}"),
    }
}

impl Kv for Client {
    async fn create(&self, path: &str, data: &str, mode: CreateMode) -> Outcome {
        match Client::create(self, path, data.to_owned(), mode).await {
            Ok((path, stat)) => Outcome::Created(path, timeless(stat)),
            Err(e) => remote(e),
        }
    }
    async fn set(&self, path: &str, data: &str, version: Option<u64>) -> Outcome {
        match Client::set(self, path, data.to_owned(), version).await {
            Ok(stat) => Outcome::Stat(timeless(stat)),
            Err(e) => remote(e),
        }
    }
    async fn delete(&self, path: &str, version: Option<u64>, recursive: bool) -> Outcome {
        match Client::delete(self, path, version, recursive).await {
            Ok(count) => Outcome::Deleted(count),
            Err(e) => remote(e),
        }
    }
    async fn get(&self, path: &str) -> Outcome {
        match Client::get(self, path).await {
            Ok(node) => Outcome::Value(node.data, timeless(node.stat)),
            Err(e) => remote(e),
        }
    }
    async fn children(&self, path: &str) -> Outcome {
        match Client::children(self, path, Consistency::Linearizable).await {
            Ok(children) => Outcome::Children(children.into_iter().map(|(n, _)| n).collect()),
            Err(e) => remote(e),
        }
    }
}

fn err(kind: &str) -> Outcome {
    Outcome::Error(kind.into())
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
    step!(kv.create("/a", "1", p).await, |o| *o == err("NodeExists"));
    step!(kv.create("/x/y", "", p).await, |o| *o == err("NoParent"));
    step!(kv.create("a", "", p).await, |o| *o == err("InvalidPath"));
    step!(kv.create("/a/", "", p).await, |o| *o == err("InvalidPath"));
    step!(
        kv.create("/a/q-", "", p.sequential()).await,
        |o| matches!(o, Outcome::Created(path, _) if path == "/a/q-0000000000")
    );
    step!(
        kv.create("/a/q-", "", p.sequential()).await,
        |o| matches!(o, Outcome::Created(path, _) if path == "/a/q-0000000001")
    );
    step!(kv.create("/c", "", CreateMode::CONTAINER.sequential()).await, |o| *o
        == err("InvalidCreateMode"));
    step!(kv.create("/e", "", CreateMode::EPHEMERAL).await, |o| *o == err("SessionRequired"));
    step!(kv.set("/a", "2", Some(0)).await, |o| matches!(o, Outcome::Stat(s) if s.version == 1));
    step!(kv.set("/a", "3", Some(0)).await, |o| *o == err("BadVersion"));
    step!(kv.set("/nope", "3", None).await, |o| *o == err("NoNode"));
    step!(
        kv.get("/a").await,
        |o| matches!(o, Outcome::Value(d, s) if d == "2" && s.num_children == 2 && s.cversion == 2)
    );
    step!(kv.children("/a").await, |o| *o
        == Outcome::Children(vec!["q-0000000000".into(), "q-0000000001".into()]));
    step!(kv.delete("/a", None, false).await, |o| *o == err("NotEmpty"));
    step!(kv.delete("/a", Some(7), true).await, |o| *o == err("BadVersion"));
    step!(kv.delete("/", None, true).await, |o| *o == err("RootNotDeletable"));
    step!(kv.create("/locks", "", CreateMode::CONTAINER).await, |o| matches!(
        o,
        Outcome::Created(..)
    ));
    step!(kv.create("/locks/w", "", p).await, |o| matches!(o, Outcome::Created(..)));
    step!(kv.delete("/locks/w", None, false).await, |o| *o == Outcome::Deleted(2));
    step!(kv.get("/locks").await, |o| *o == err("NoNode"));
    step!(kv.delete("/a", Some(1), true).await, |o| *o == Outcome::Deleted(3));
    step!(kv.children("/").await, |o| *o == Outcome::Children(vec![]));
    step!(kv.get("/").await, |o| matches!(o, Outcome::Value(_, s) if s.cversion > 0));
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_core_and_the_grpc_client_behave_alike() {
    let in_process = InProcess { state: Mutex::new((State::default(), 0)) };
    let expected = suite(&in_process).await;
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let got = suite(&cluster.client()).await;
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(g, e, "step {i}: gRPC and in-process differ");
    }
    assert_eq!(expected.len(), got.len());
    cluster.stop().await;
}
