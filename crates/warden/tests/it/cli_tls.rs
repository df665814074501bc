//! The CLI against a cluster with mutual TLS on both ports, its certificates made by
//! `warden certs dev`: with --cacert/--cert/--key (before or after the command) it works,
//! with https:// endpoints too, and `warden whoami` names the client certificate's
//! identity; without a client certificate it is refused.

use std::time::Duration;

use tempfile::TempDir;
use warden_client::{Client, TlsFiles};

use crate::processes::{ProcessCluster, run_warden};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_mutual_tls() {
    let dir = TempDir::new().unwrap();
    let pki = dir.path().join("pki");
    let pki_arg = pki.to_str().unwrap().to_owned();
    let made = run_warden(&["certs", "dev", "--out", &pki_arg, "--client", "alice"], None, LIMIT);
    assert_eq!(made.code, Some(0), "{}", made.err);
    let file = |name: &str| pki.join(name).to_str().unwrap().to_owned();
    let tls = |id: usize| {
        format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{ca}\"\npeer_ca = \"{ca}\"\n",
            file(&format!("node{id}.crt")),
            file(&format!("node{id}.key")),
            ca = file("ca.crt"),
        )
    };
    let cluster = ProcessCluster::start_with(3, dir, tls);
    let files = TlsFiles {
        ca: pki.join("ca.crt"),
        cert: Some(pki.join("alice.crt")),
        key: Some(pki.join("alice.key")),
    };
    let client = Client::with_tls(cluster.clients.clone(), &files).unwrap();
    let started = std::time::Instant::now();
    while !client.status().await.is_ok_and(|s| s.leader_id != 0) {
        assert!(started.elapsed() < Duration::from_secs(15), "no leader:\n{}", cluster.log(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let endpoints = cluster.clients.join(",");
    let (ca, cert, key) = (file("ca.crt"), file("alice.crt"), file("alice.key"));
    let before = ["--endpoints", &endpoints, "--cacert", &ca, "--cert", &cert, "--key", &key];
    let put = run_warden(&[&before[..], &["put", "/tls", "yes"]].concat(), None, LIMIT);
    assert_eq!(put.code, Some(0), "{}", put.err);

    // The cluster knows the client by its certificate's CN.
    let whoami = run_warden(&[&before[..], &["whoami"]].concat(), None, LIMIT);
    assert_eq!((whoami.code, whoami.out.trim()), (Some(0), "alice"), "{}", whoami.err);
    let json = run_warden(&[&before[..], &["-o", "json", "whoami"]].concat(), None, LIMIT);
    assert_eq!(json.out.trim(), r#"{"identity":"alice"}"#, "{}", json.err);
    // A session alice opens, and a lock it holds, show her identity.
    let session = client.open_session(Duration::from_secs(10)).await.unwrap();
    let guard = client.mutex(&session, "/tls-lock").acquire().await.unwrap();
    let id = session.id().to_string();
    let info = run_warden(&[&before[..], &["session", "info", &id]].concat(), None, LIMIT);
    assert!(info.out.contains("identity \"alice\""), "{}{}", info.out, info.err);
    let lock = run_warden(&[&before[..], &["lock", "status", "/tls-lock"]].concat(), None, LIMIT);
    assert!(lock.out.contains(&format!("session {id} (alice)")), "{}{}", lock.out, lock.err);
    guard.release().await.unwrap();
    session.close().await.unwrap();

    let https: Vec<String> = cluster.clients.iter().map(|c| format!("https://{c}")).collect();
    let https = https.join(",");
    let after =
        ["get", "/tls", "--endpoints", &https, "--cacert", &ca, "--cert", &cert, "--key", &key];
    let get = run_warden(&after, None, LIMIT);
    assert_eq!((get.code, get.out.trim()), (Some(0), "yes"), "{}", get.err);
    assert_eq!(&client.get("/tls").await.unwrap().data[..], b"yes");

    // The CA alone: the cluster asks for a client certificate.
    let refused =
        run_warden(&["--endpoints", &endpoints, "--cacert", &ca, "get", "/tls"], None, LIMIT);
    // Under TLS 1.3 the refusal comes after the handshake: the error the client sees may
    // be the alert (CertificateRequired) or only the closed connection.
    assert_eq!(refused.code, Some(7), "served without a client certificate: {}", refused.err);
    assert!(!refused.err.is_empty());
    // Plain text against TLS members, and https without a CA.
    let plain = run_warden(&["--endpoints", &endpoints, "get", "/tls"], None, LIMIT);
    assert_ne!(plain.code, Some(0), "served in plain text");
    let no_ca = run_warden(&["--endpoints", &https, "get", "/tls"], None, LIMIT);
    assert!(no_ca.err.contains("https needs TLS files"), "{}", no_ca.err);
    // A certificate without its key, and a missing CA file, are told apart.
    let half = run_warden(
        &["--endpoints", &endpoints, "--cacert", &ca, "--cert", &cert, "get", "/tls"],
        None,
        LIMIT,
    );
    assert!(half.err.contains("--cert and --key go together"), "{}", half.err);
    let missing = file("nowhere.crt");
    let gone =
        run_warden(&["--endpoints", &endpoints, "--cacert", &missing, "get", "/tls"], None, LIMIT);
    assert!(
        gone.err.contains("nowhere.crt") && gone.err.contains("cannot be read"),
        "{}",
        gone.err
    );
}
