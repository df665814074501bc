//! The REST API on the HTTP port of real members, over sockets, as curl would use it:
//! sessions, a lock taken, contended, handed over and released; semaphores; elections;
//! errors as JSON with the HTTP status of their gRPC code; a blocking acquire whose client
//! hangs up leaves no waiter behind; and the ACL decision (an anonymous caller is refused
//! as over gRPC, an mTLS identity is the caller).
//!
//! The client is a small HTTP/1.1 one over a TCP (or TLS) stream, `Connection: close`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tonic::Code;
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;
use warden_proto::v1::lock_client::LockClient;
use warden_proto::v1::session_client::SessionClient;

use crate::cluster::{FAST_TIMING, TestCluster};
use crate::tls::{Pki, channel};

/// An answer: status code and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) code: u16,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Checks that this is an error answer with `code`, of `kind`, and returns its message.
    #[track_caller]
    fn error(&self, code: u16, kind: ErrorKind) -> String {
        assert_eq!(self.code, code, "{}", self.body);
        let body = self.json();
        assert_eq!(body["error"], kind.as_str(), "{body}");
        assert!(body["code"].is_string(), "{body}");
        body["message"].as_str().expect("a message").to_owned()
    }
}

/// Where requests go: plain HTTP, or HTTPS presenting a client certificate (or none).
#[derive(Clone)]
pub(crate) struct Http {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
}

impl Http {
    pub(crate) fn plain(addr: SocketAddr) -> Http {
        Http { addr, tls: None }
    }

    /// HTTPS trusting `pki`'s CA, presenting `who`'s certificate if any.
    fn tls(addr: SocketAddr, pki: &Pki, who: Option<&str>) -> Http {
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(pki.path("ca.crt")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let config = match who {
            None => builder.with_no_client_auth(),
            Some(who) => {
                let certs = CertificateDer::pem_file_iter(pki.path(&format!("{who}.crt")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{who}.key"))).unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
        };
        Http { addr, tls: Some(TlsConnector::from(Arc::new(config))) }
    }

    /// The raw request `method path` with `body`, as bytes.
    fn raw(&self, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    }

    /// Sends a request and reads the whole answer (writing and reading at once, so that
    /// an answer sent before the body is read reaches us).
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Answer, String> {
        let request = self.raw(method, path, body);
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
        let raw = match &self.tls {
            None => exchange(tcp, request).await,
            Some(tls) => {
                let name = ServerName::try_from("localhost").unwrap();
                let stream = tls.connect(name, tcp).await.map_err(|e| e.to_string())?;
                exchange(stream, request).await
            }
        }?;
        parse(&raw)
    }

    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        timeout(Duration::from_secs(30), self.send(method, path, body.as_bytes()))
            .await
            .unwrap_or_else(|_| panic!("{method} {path} timed out"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None).await
    }

    /// Opens a session; returns its id.
    async fn session(&self) -> u64 {
        let opened = self.post("/v1/sessions", json!({ "ttl_ms": 10_000 })).await;
        assert_eq!(opened.code, 201, "{}", opened.body);
        opened.json()["session_id"].as_u64().expect("a session id")
    }

    /// The waiters (holders first) of the lock at `path`.
    async fn waiters(&self, path: &str) -> Vec<Value> {
        let status = self.get(&format!("/v1/locks/status?path={path}")).await;
        assert_eq!(status.code, 200, "{}", status.body);
        status.json()["waiters"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (at most 10 s) until the lock at `path` has `n` waiters.
    async fn until_waiters(&self, path: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let waiters = self.waiters(path).await;
            if waiters.len() == n {
                return waiters;
            }
            assert!(Instant::now() < deadline, "{path}: still {waiters:?}, not {n} waiters");
            sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    request: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let (mut read, mut write) = tokio::io::split(stream);
    // The member may answer (413) and close before it has read the whole body.
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        write
    });
    let mut raw = Vec::new();
    let read = read.read_to_end(&mut raw).await;
    drop(writer.await);
    match read {
        Ok(_) => Ok(raw),
        // A TLS peer that closes without close_notify: what came is the answer.
        Err(_) if !raw.is_empty() => Ok(raw),
        Err(e) => Err(e.to_string()),
    }
}

fn parse(raw: &[u8]) -> Result<Answer, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no answer: {text:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    let code = code.ok_or_else(|| format!("no status in {status:?}"))?;
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Ok(Answer { code, body })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// One member, once it serves sessions (its session tracker learns that it leads within
/// a tick of the election; until then session calls answer 503 `NotLeader`).
async fn one_member() -> (TestCluster, Http) {
    let cluster = TestCluster::start_with(1, FAST_TIMING, |_| {}).await;
    let http = Http::plain(cluster.node(1).http_addr());
    until_serving(&http, "/v1/sessions").await;
    (cluster, http)
}

/// Waits (at most 10 s) until `http`'s GET `path` answers 200: the member leads with its
/// session tracker up, and (with ACLs) its policy is in force.
async fn until_serving(http: &Http, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http.get(path).await;
        if answer.code == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "GET {path}: still {} {}", answer.code, answer.body);
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curl_session_takes_a_lock_hands_it_over_and_releases_it() {
    let (cluster, http) = one_member().await;
    let (a, b) = (http.session().await, http.session().await);
    let got = http.get(&format!("/v1/sessions/{a}")).await;
    assert_eq!(got.code, 200, "{}", got.body);
    assert_eq!(got.json()["session_id"], a);
    assert_eq!(got.json()["ttl_ms"], 10_000);

    let taken = http.post("/v1/locks/acquire", json!({"path": "/locks/db", "session_id": a})).await;
    assert_eq!(taken.code, 200, "{}", taken.body);
    let first = taken.json();
    let token = first["token"].as_u64().expect("a token");
    assert!(token > 0, "{first}");
    assert_eq!(first["mode"], "exclusive");
    assert_eq!(first["header"]["member_id"], 1);

    // A second session's try fails at once, and leaves no wait behind.
    let tried = http.post("/v1/locks/acquire", json!({"path": "/locks/db", "session_id": b})).await;
    tried.error(409, ErrorKind::AlreadyLocked);
    assert_eq!(http.waiters("/locks/db").await.len(), 1);

    // With a timeout it blocks until the holder releases.
    let waiting = {
        let http = http.clone();
        tokio::spawn(async move {
            let body = json!({"path": "/locks/db", "session_id": b, "timeout_ms": 20_000});
            http.post("/v1/locks/acquire", body).await
        })
    };
    let queued = http.until_waiters("/locks/db", 2).await;
    assert_eq!(queued[0]["session_id"], a);
    assert_eq!(queued[0]["token"], token);
    assert_eq!(queued[1]["session_id"], b);
    assert!(!waiting.is_finished(), "the acquire did not wait");

    // Renewing the lock renews its session and checks the hold.
    let renewed = http
        .post("/v1/locks/renew", json!({"path": "/locks/db", "session_id": a, "token": token}))
        .await;
    assert_eq!(renewed.code, 200, "{}", renewed.body);
    assert_eq!(renewed.json()["ttl_ms"], 10_000);

    let released = http
        .post("/v1/locks/release", json!({"path": "/locks/db", "session_id": a, "token": token}))
        .await;
    assert_eq!(released.code, 200, "{}", released.body);
    assert_eq!(released.json()["held"], true);
    let handed = waiting.await.unwrap();
    assert_eq!(handed.code, 200, "{}", handed.body);
    let second = handed.json()["token"].as_u64().expect("a token");
    assert!(second > token, "tokens increase: {token} then {second}");

    // The old holder's renewal says its hold is gone (and still renews its session).
    let stale = http
        .post("/v1/locks/renew", json!({"path": "/locks/db", "session_id": a, "token": token}))
        .await;
    stale.error(409, ErrorKind::HoldEnded);
    let kept = http.post(&format!("/v1/sessions/{a}/keepalive"), json!({})).await;
    assert_eq!(kept.code, 200, "{}", kept.body);
    assert_eq!(kept.json()["ttl_ms"], 10_000);
    let listed = http
        .post(
            &format!("/v1/sessions/{a}/keepalive"),
            json!({"held": [{"path": "/locks/db", "token": token}]}),
        )
        .await;
    assert_eq!(listed.json()["lost"][0]["path"], "/locks/db", "{}", listed.body);

    let sessions = http.get("/v1/sessions").await;
    assert_eq!(sessions.json()["count"], 2, "{}", sessions.body);
    // Closing b releases its hold.
    let closed = http.call("DELETE", &format!("/v1/sessions/{b}"), None).await;
    assert_eq!(closed.code, 200, "{}", closed.body);
    assert!(closed.json()["deleted"].as_u64() >= Some(1), "{}", closed.body);
    http.get(&format!("/v1/sessions/{b}")).await.error(404, ErrorKind::SessionExpired);
    http.get("/v1/locks/status?path=/locks/db").await.error(404, ErrorKind::NoNode);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphores_grant_up_to_their_permits() {
    let (cluster, http) = one_member().await;
    let (a, b, c) = (http.session().await, http.session().await, http.session().await);
    let take = |s: u64, timeout_ms: u64| json!({"path": "/pool", "session_id": s, "permits": 2, "timeout_ms": timeout_ms});
    for s in [a, b] {
        let got = http.post("/v1/semaphores/acquire", take(s, 0)).await;
        assert_eq!(got.code, 200, "{}", got.body);
        assert_eq!(got.json()["mode"], "permits:1");
    }
    http.post("/v1/semaphores/acquire", take(c, 0)).await.error(409, ErrorKind::AlreadyLocked);
    http.post("/v1/semaphores/acquire", take(c, 100)).await.error(409, ErrorKind::Timeout);
    let status = http.get("/v1/semaphores/status?path=/pool").await;
    assert_eq!(status.code, 200, "{}", status.body);
    assert_eq!(status.json()["type"], "semaphore");
    assert_eq!(status.json()["permits"], 2);
    assert_eq!(status.json()["waiters"].as_array().map(Vec::len), Some(2));
    let released =
        http.post("/v1/semaphores/release", json!({"path": "/pool", "session_id": a})).await;
    assert_eq!(released.code, 200, "{}", released.body);
    let got = http.post("/v1/semaphores/acquire", take(c, 5_000)).await;
    assert_eq!(got.code, 200, "{}", got.body);
    // A lock is not a semaphore.
    let mutex = http.post("/v1/locks/acquire", json!({"path": "/m", "session_id": a})).await;
    assert_eq!(mutex.code, 200, "{}", mutex.body);
    http.get("/v1/semaphores/status?path=/m").await.error(409, ErrorKind::InvalidLockRequest);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_campaign_lead_proclaim_and_resign() {
    let (cluster, http) = one_member().await;
    let (a, b) = (http.session().await, http.session().await);
    let campaign = |s: u64, value: &str, timeout_ms: u64| json!({"name": "/elect/svc", "session_id": s, "value": value, "timeout_ms": timeout_ms});
    let led = http.post("/v1/elections/campaign", campaign(a, "host-a", 1_000)).await;
    assert_eq!(led.code, 200, "{}", led.body);
    let leader = led.json()["leader"].clone();
    assert_eq!(leader["session_id"], a);
    assert_eq!(leader["value"], "host-a");
    let token = leader["token"].as_u64().expect("a token");

    http.post("/v1/elections/campaign", campaign(b, "host-b", 100))
        .await
        .error(409, ErrorKind::Timeout);
    let now = http.get("/v1/elections/leader?name=/elect/svc").await;
    assert_eq!(now.json()["leader"]["value"], "host-a", "{}", now.body);

    // Bytes that are not UTF-8 go as base64 both ways.
    let proclaimed = http
        .post(
            "/v1/elections/proclaim",
            json!({"name": "/elect/svc", "session_id": a, "token": token, "value_base64": "/wA="}),
        )
        .await;
    assert_eq!(proclaimed.code, 200, "{}", proclaimed.body);
    let now = http.get("/v1/elections/leader?name=/elect/svc").await.json();
    assert_eq!(now["leader"]["value_base64"], "/wA=", "{now}");
    assert!(now["leader"].get("value").is_none(), "{now}");

    let waiting = {
        let http = http.clone();
        tokio::spawn(async move {
            http.post("/v1/elections/campaign", campaign(b, "host-b", 20_000)).await
        })
    };
    http.until_waiters("/elect/svc", 2).await;
    let resigned = http
        .post(
            "/v1/elections/resign",
            json!({"name": "/elect/svc", "session_id": a, "token": token}),
        )
        .await;
    assert_eq!(resigned.code, 200, "{}", resigned.body);
    let next = waiting.await.unwrap();
    assert_eq!(next.code, 200, "{}", next.body);
    assert_eq!(next.json()["leader"]["session_id"], b);
    let now = http.get("/v1/elections/leader?name=/elect/svc").await.json();
    assert_eq!(now["leader"]["value"], "host-b", "{now}");
    http.get("/v1/elections/leader?name=/elect/none").await.error(404, ErrorKind::NoLeader);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_the_http_status_of_their_code() {
    let (cluster, http) = one_member().await;
    let message =
        http.call("POST", "/v1/sessions", None).await.error(400, ErrorKind::InvalidArgument);
    assert!(message.contains("ttl_ms"), "{message}");
    let bad = http.send("POST", "/v1/sessions", b"{\"ttl_ms\": ").await.unwrap();
    let message = bad.error(400, ErrorKind::InvalidArgument);
    assert!(message.contains("not the JSON"), "{message}");
    let typo = http
        .post("/v1/locks/acquire", json!({"path": "/l", "session_id": 1, "timout_ms": 5}))
        .await;
    assert!(typo.error(400, ErrorKind::InvalidArgument).contains("timout_ms"));
    http.post("/v1/sessions/12345/keepalive", json!({}))
        .await
        .error(404, ErrorKind::SessionExpired);
    http.get("/v1/sessions/12345").await.error(404, ErrorKind::SessionExpired);
    http.get("/v1/sessions/x").await.error(400, ErrorKind::InvalidArgument);
    http.post("/v1/locks/acquire", json!({"path": "/l", "session_id": 12345}))
        .await
        .error(404, ErrorKind::SessionExpired);
    http.get("/v1/locks/status").await.error(400, ErrorKind::InvalidArgument);
    http.get("/v1/nothing/here").await.error(404, ErrorKind::NoEndpoint);
    http.call("PUT", "/v1/sessions", None).await.error(405, ErrorKind::NoEndpoint);
    let s = http.session().await;
    http.post("/v1/locks/acquire", json!({"path": "no-slash", "session_id": s}))
        .await
        .error(400, ErrorKind::InvalidPath);
    let over = json!({"path": "/l", "session_id": s, "timeout_ms": 50_001});
    http.post("/v1/locks/acquire", over).await.error(400, ErrorKind::InvalidArgument);
    // A body over limits.max_request_bytes (4 MiB by default) is refused, not read.
    let huge = vec![b' '; (4 << 20) + 1];
    let refused = http.send("POST", "/v1/sessions", &huge).await.unwrap();
    assert!(refused.error(413, ErrorKind::RequestTooLarge).contains("limits.max_request_bytes"));
    // The document is served as it is in the repository.
    let document = http.get("/v1/openapi.json").await;
    assert_eq!(document.code, 200);
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json"))
            .unwrap();
    assert_eq!(document.body, file);
    cluster.stop().await;
}

/// A blocking acquire whose HTTP client hangs up is dropped with its connection, which
/// withdraws its wait, as a dropped gRPC call does: nothing is left in the queue, and the
/// lock is not granted to the session that left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_leaves_no_waiter_behind() {
    let (cluster, http) = one_member().await;
    let (a, b) = (http.session().await, http.session().await);
    let taken = http.post("/v1/locks/acquire", json!({"path": "/held", "session_id": a})).await;
    let token = taken.json()["token"].as_u64().expect("a token");
    let body = json!({"path": "/held", "session_id": b, "timeout_ms": 45_000}).to_string();
    let mut stream = TcpStream::connect(http.addr).await.unwrap();
    stream.write_all(&http.raw("POST", "/v1/locks/acquire", body.as_bytes())).await.unwrap();
    http.until_waiters("/held", 2).await;
    drop(stream);
    let left = http.until_waiters("/held", 1).await;
    assert_eq!(left[0]["session_id"], a);
    // Released now, the lock has nobody waiting for it: b was not granted it.
    let released = http
        .post("/v1/locks/release", json!({"path": "/held", "session_id": a, "token": token}))
        .await;
    assert_eq!(released.code, 200, "{}", released.body);
    http.get("/v1/locks/status?path=/held").await.error(404, ErrorKind::NoNode);
    cluster.stop().await;
}

/// The policy of the ACL tests: admin everything; alice may lock under /a; bob nothing.
const POLICY: &str = r#"
[[rule]]
identities = ["admin"]
permissions = ["all"]
paths = ["/", "/**"]

[[rule]]
identities = ["alice"]
permissions = ["read", "write", "create", "delete", "watch", "lock"]
paths = ["/a", "/a/**"]
"#;

/// With ACLs on and no TLS every caller is anonymous: the REST call is refused 403 with
/// the very message a gRPC client gets for the same call, and audited alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_rest_caller_is_refused_exactly_like_a_grpc_one() {
    let dir = tempfile::TempDir::new().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let cluster =
        TestCluster::start_with(1, FAST_TIMING, |c| c.acl.file = Some(policy.clone())).await;
    let http = Http::plain(cluster.node(1).http_addr());
    // Opening a session needs nothing; locking needs `lock` on the path.
    let session = http.session().await;
    let body = json!({"path": "/a/x", "session_id": session});
    let deadline = Instant::now() + Duration::from_secs(10);
    let rest = loop {
        let answer = http.post("/v1/locks/acquire", body.clone()).await;
        // Until the policy is in force the member refuses everyone (the same way).
        if answer.json()["message"].as_str().is_some_and(|m| m.contains("/a/x"))
            || Instant::now() > deadline
        {
            break answer;
        }
        sleep(Duration::from_millis(50)).await;
    };
    let rest_message = rest.error(403, ErrorKind::PermissionDenied);
    assert_eq!(rest.json()["code"], "PERMISSION_DENIED");
    let mut locks = LockClient::new(cluster.channel(1).await);
    let acquire =
        pb::AcquireRequest { path: "/a/x".into(), session_id: session, ..Default::default() };
    let grpc = locks.try_acquire(acquire).await.unwrap_err();
    assert_eq!(grpc.code(), Code::PermissionDenied);
    assert_eq!(grpc.message(), rest_message);
    assert!(rest_message.contains("the anonymous caller"), "{rest_message}");
    // The operators' views behind an ACL check are refused too.
    http.get("/v1/sessions").await.error(403, ErrorKind::PermissionDenied);
    http.get("/v1/locks/stats").await.error(403, ErrorKind::PermissionDenied);
    // Both denials are in the audit log, under the same action.
    let audit = cluster.configs[0].audit_file();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let denials = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| {
                l["kind"] == "denied" && l["action"] == "Lock.Acquire" && l["path"] == "/a/x"
            })
            .count();
        if denials >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "denials not audited:\n{text}");
        sleep(Duration::from_millis(50)).await;
    }
    cluster.stop().await;
}

/// With `[tls]` and `tls.client_ca` the HTTP port is HTTPS and requires a client
/// certificate, whose identity is the caller: alice may lock under /a, bob may not, and a
/// client without a certificate is refused by the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtls_identity_is_the_rest_caller() {
    warden_server::install_crypto_provider();
    let pki = Pki::new();
    let policy = pki.path("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let cluster = TestCluster::start_with(1, FAST_TIMING, |c| {
        c.tls = pki.member_tls(c.node_id);
        c.acl.file = Some(policy.clone());
    })
    .await;
    let addr = cluster.node(1).http_addr();
    let (alice, bob) = (Http::tls(addr, &pki, Some("alice")), Http::tls(addr, &pki, Some("bob")));
    let admin = Http::tls(addr, &pki, Some("admin"));
    until_serving(&admin, "/v1/sessions").await;

    let whoami = alice.get("/v1/whoami").await;
    assert_eq!(whoami.json()["identity"], "alice", "{}", whoami.body);
    let session = alice.session().await;
    let got = alice.post("/v1/locks/acquire", json!({"path": "/a/x", "session_id": session})).await;
    assert_eq!(got.code, 200, "{}", got.body);
    let info = alice.get(&format!("/v1/sessions/{session}")).await;
    assert_eq!(info.json()["identity"], "alice", "{}", info.body);

    let theirs = bob.session().await;
    let message = bob
        .post("/v1/locks/acquire", json!({"path": "/a/y", "session_id": theirs}))
        .await
        .error(403, ErrorKind::PermissionDenied);
    assert!(message.contains("\"bob\""), "{message}");
    // Another identity's session is not bob's to renew or close.
    bob.post(&format!("/v1/sessions/{session}/keepalive"), json!({}))
        .await
        .error(403, ErrorKind::PermissionDenied);
    bob.call("DELETE", &format!("/v1/sessions/{session}"), None)
        .await
        .error(403, ErrorKind::PermissionDenied);
    // The same identity over gRPC is refused the same way.
    let mut sessions = SessionClient::new(
        channel(cluster.node(1).client_addr(), pki.client_tls(Some("bob"))).await.unwrap(),
    );
    let denied = sessions.close(pb::CloseSessionRequest { session_id: session }).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Without a client certificate, no request gets through; plain HTTP neither.
    let anonymous = Http::tls(addr, &pki, None);
    assert!(anonymous.send("GET", "/health/live", b"").await.is_err());
    let plain = Http::plain(addr).send("GET", "/health/live", b"").await;
    assert!(plain.is_err() || plain.as_ref().is_ok_and(|a| a.code != 200), "{plain:?}");
    // The operators' endpoints are served over the same HTTPS.
    assert_eq!(admin.get("/health/live").await.code, 200);
    cluster.stop().await;
}
