//! The README's "Securing a cluster", run as written: `warden certs dev`, three `warden
//! server` processes from the shipped `config/secure/` files (on free ports instead of
//! 7400-7422), `acl/example.toml` put in force at founding; then each client does what its
//! rules allow and is refused (exit 8) what they do not, and `warden acl apply` refuses a
//! bad file with its line.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use warden_testkit::members::loopback_ports;

use crate::processes::run_warden;

const LIMIT: Duration = Duration::from_secs(30);

/// The three servers; killed when dropped.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn securing_a_cluster_as_the_readme_says() {
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    let at = |p: &str| root.join(p).to_str().unwrap().to_owned();
    // 1. The certificates.
    let certs = at("certs");
    let made = run_warden(
        &[
            "certs", "dev", "--out", &certs, "--client", "admin", "--client", "web", "--client",
            "billing",
        ],
        None,
        LIMIT,
    );
    assert_eq!(made.code, Some(0), "{}", made.err);
    std::fs::create_dir_all(root.join("acl")).unwrap();
    std::fs::copy(repo("acl/example.toml"), root.join("acl/example.toml")).unwrap();

    // 2-4. The three members, from the shipped files, run from the folder they name paths in.
    let ports = loopback_ports(3);
    let mut children = Vec::new();
    for id in 1..=3 {
        let mut text =
            std::fs::read_to_string(repo(&format!("config/secure/node{id}.toml"))).unwrap();
        for (i, (c, p, h)) in ports.iter().enumerate() {
            for (offset, port) in [(0, c), (1, p), (2, h)] {
                let shipped = format!("127.0.0.1:74{i}{offset}");
                text = text.replace(&shipped, &format!("127.0.0.1:{port}"));
            }
        }
        let config = root.join(format!("node{id}.toml"));
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(root.join(format!("node{id}.log"))).unwrap();
        children.push(
            Command::new(env!("CARGO_BIN_EXE_warden"))
                .args(["server", "--config", config.to_str().unwrap()])
                .current_dir(root)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let servers = Servers(children);
    let logs = || {
        (1..=3)
            .map(|id| {
                std::fs::read_to_string(root.join(format!("node{id}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let endpoints: Vec<String> = ports.iter().map(|(c, _, _)| format!("127.0.0.1:{c}")).collect();
    let endpoints = endpoints.join(",");
    let ca = at("certs/ca.crt");
    let as_ = |who: &str| -> Vec<String> {
        vec![
            "--endpoints".into(),
            endpoints.clone(),
            "--cacert".into(),
            ca.clone(),
            "--cert".into(),
            at(&format!("certs/{who}.crt")),
            "--key".into(),
            at(&format!("certs/{who}.key")),
        ]
    };
    let run = |who: &str, args: &[&str]| {
        let mut all: Vec<String> = as_(who);
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run_warden(&refs, None, LIMIT)
    };

    // The founding leader puts acl/example.toml in force.
    let started = std::time::Instant::now();
    let policy = loop {
        let got = run("admin", &["acl", "get"]);
        if got.code == Some(0) && got.out.contains("[[rule]]") {
            break got.out;
        }
        assert!(started.elapsed() < LIMIT, "no policy in force: {}\n{}", got.err, logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(policy.contains("spiffe://warden/app/deployer"), "{policy}");

    // 5. Each client: what its rules allow works, the rest exits 8 and says why.
    let created = run("admin", &["create", "/config"]);
    assert_eq!(created.code, Some(0), "{}", created.err);
    assert_eq!(run("admin", &["put", "/config/db", "postgres://db1"]).code, Some(0));
    let refused = run("web", &["put", "/config/db", "postgres://evil"]);
    assert_eq!(refused.code, Some(8), "{}", refused.err);
    assert!(refused.err.contains("\"web\" may not write \"/config/db\""), "{}", refused.err);
    // The member that refused it logged the refusal inside the request's span, which names
    // the caller (the line is written before the answer is sent).
    let logged = logs();
    assert!(
        logged.lines().any(|l| l.contains("request{rpc=\"/warden.v1.KV/Set\" identity=\"web\"}")
            && l.contains("request denied")),
        "no denial line naming web:\n{logged}"
    );
    let read = run("web", &["get", "/config/db"]);
    assert_eq!((read.code, read.out.trim()), (Some(0), "postgres://db1"), "{}", read.err);
    let locked = run("billing", &["lock", "/locks/billing/invoices", "--", "true"]);
    assert_eq!(locked.code, Some(0), "{}", locked.err);
    let refused = run("web", &["lock", "/locks/billing/invoices", "--", "true"]);
    assert_eq!(refused.code, Some(8), "{}", refused.err);
    let refused = run("web", &["session", "list"]);
    assert_eq!(refused.code, Some(8), "{}", refused.err);
    let refused = run("billing", &["acl", "apply", &at("acl/example.toml")]);
    assert_eq!(refused.code, Some(8), "{}", refused.err);
    let whoami = run("web", &["whoami"]);
    assert_eq!(whoami.out.trim(), "web");

    // 6. A bad file is refused with its line, and the policy in force stays.
    let bad = root.join("bad.toml");
    std::fs::write(
        &bad,
        "[[rule]]\nidentities = [\"web\"]\npermissions = [\"rule-the-world\"]\npaths = [\"/\"]\n",
    )
    .unwrap();
    let refused = run("admin", &["acl", "apply", bad.to_str().unwrap()]);
    assert_eq!(refused.code, Some(1), "{}", refused.err);
    assert!(refused.err.contains("line 3"), "{}", refused.err);
    assert_eq!(run("admin", &["acl", "get"]).out, policy);
    // A file larger than a request may be (valid, all comments) is refused before it is
    // sent, saying so, not taken for a cluster that cannot be reached.
    let huge = root.join("huge.toml");
    std::fs::write(&huge, "# a comment\n".repeat(500_000)).unwrap();
    let refused = run("admin", &["acl", "apply", huge.to_str().unwrap()]);
    assert_eq!(refused.code, Some(1), "{}", refused.err);
    assert!(refused.err.contains("message limit"), "{}", refused.err);
    assert_eq!(run("admin", &["acl", "get"]).out, policy);
    // Without a client certificate nothing gets in.
    let anonymous =
        run_warden(&["--endpoints", &endpoints, "--cacert", &ca, "get", "/config/db"], None, LIMIT);
    assert_eq!(anonymous.code, Some(7), "{}", anonymous.err);
    drop(servers);
}

/// `warden dev --secure` makes its certificates and the dev policy when the folder has
/// none, and the command its banner suggests works; without a certificate nothing does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_secure_makes_its_certificates_and_locks_the_cluster_down() {
    use std::io::{BufRead, BufReader};

    let dir = TempDir::new().unwrap();
    let certs = dir.path().join("certs");
    let base = warden_testkit::free_ports(23);
    let log = std::fs::File::create(dir.path().join("dev.log")).unwrap();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "dev",
            "--secure",
            "--certs",
            certs.to_str().unwrap(),
            "--base-port",
            &base.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let try_line = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("try: warden ").map(str::to_owned));
    let servers = Servers(vec![dev]);
    let err = || std::fs::read_to_string(dir.path().join("dev.log")).unwrap_or_default();
    let Some(try_line) = try_line else { panic!("no try: line; stderr: {}", err()) };
    for file in ["ca.crt", "node1.crt", "node3.key", "admin.crt", "admin.key", "acl.toml"] {
        assert!(certs.join(file).exists(), "{file} was not made");
    }
    let args: Vec<&str> = try_line.split_whitespace().collect();
    let put = run_warden(&args, None, LIMIT);
    assert_eq!(put.code, Some(0), "{}\n{}", put.err, err());
    let flags = &args[..args.len() - 3];
    // The first leader puts the dev policy in force (until then only `admin` gets in).
    let started = std::time::Instant::now();
    loop {
        let get = run_warden(&[flags, &["acl", "get"]].concat(), None, LIMIT);
        if get.out.contains("identities = [\"admin\"]") {
            break;
        }
        assert!(started.elapsed() < LIMIT, "dev policy not in force: {}{}", get.out, get.err);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The CA only, no client certificate: refused.
    let endpoints = flags[1];
    let ca = certs.join("ca.crt");
    let refused = run_warden(
        &["--endpoints", endpoints, "--cacert", ca.to_str().unwrap(), "get", "/hello"],
        None,
        LIMIT,
    );
    assert_eq!(refused.code, Some(7), "{}", refused.err);
    drop(lines);
    drop(servers);
}
