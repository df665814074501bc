//! `warden certs dev`: the files it writes name the right identities, chain to its CA,
//! and serve as server and client certificates; existing files are not replaced.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;

use crate::processes::run_warden;

fn cert(dir: &Path, name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(dir.join(format!("{name}.crt"))).unwrap()
}

#[test]
fn dev_certificates_name_their_identities_and_chain_to_the_ca() {
    rustls::crypto::ring::default_provider().install_default().ok();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pki");
    let out_arg = out.to_str().unwrap();
    let args = ["certs", "dev", "--out", out_arg, "--client", "alice", "--client", "bob"];
    let run = run_warden(&args, None, Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "{}", run.err);

    for name in ["ca", "node1", "node2", "node3", "alice", "bob"] {
        let key = out.join(format!("{name}.key"));
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "{name}");
        PrivateKeyDer::from_pem_file(&key).unwrap();
    }
    assert!(!out.join("node4.crt").exists());
    for i in 1..=3 {
        let identity = warden_server::identity(&cert(&out, &format!("node{i}"))).unwrap();
        assert_eq!(identity, format!("spiffe://warden/member/{i}"));
    }
    assert_eq!(warden_server::identity(&cert(&out, "alice")).unwrap(), "alice");
    assert_eq!(warden_server::identity(&cert(&out, "bob")).unwrap(), "bob");

    let mut roots = RootCertStore::empty();
    roots.add(cert(&out, "ca")).unwrap();
    let roots = Arc::new(roots);
    let now = UnixTime::now();
    let clients = WebPkiClientVerifier::builder(Arc::clone(&roots)).build().unwrap();
    let servers = WebPkiServerVerifier::builder(Arc::clone(&roots)).build().unwrap();
    for name in ["node1", "node2", "node3", "alice", "bob"] {
        clients.verify_client_cert(&cert(&out, name), &[], now).unwrap();
    }
    for host in ["localhost", "127.0.0.1"] {
        let host = ServerName::try_from(host).unwrap();
        servers.verify_server_cert(&cert(&out, "node2"), &[], &host, &[], now).unwrap();
    }
    // A client certificate is not a server certificate.
    let localhost = ServerName::try_from("localhost").unwrap();
    assert!(servers.verify_server_cert(&cert(&out, "alice"), &[], &localhost, &[], now).is_err());

    // Another run's CA does not vouch for these certificates.
    let other = dir.path().join("other");
    let run = run_warden(
        &["certs", "dev", "--out", other.to_str().unwrap(), "--nodes", "1"],
        None,
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(0), "{}", run.err);
    let mut other_roots = RootCertStore::empty();
    other_roots.add(cert(&other, "ca")).unwrap();
    let other_clients = WebPkiClientVerifier::builder(Arc::new(other_roots)).build().unwrap();
    assert!(other_clients.verify_client_cert(&cert(&out, "alice"), &[], now).is_err());
}

#[test]
fn dev_certificates_replace_files_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let first =
        run_warden(&["certs", "dev", "--out", out, "--nodes", "1"], None, Duration::from_secs(30));
    assert_eq!(first.code, Some(0), "{}", first.err);
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();

    let again =
        run_warden(&["certs", "dev", "--out", out, "--nodes", "1"], None, Duration::from_secs(30));
    assert_ne!(again.code, Some(0));
    assert!(again.err.contains("already exists") && again.err.contains("--force"), "{}", again.err);
    assert_eq!(std::fs::read(dir.path().join("ca.crt")).unwrap(), ca, "nothing was replaced");

    let args = ["certs", "dev", "--out", out, "--nodes", "1", "--force"];
    let forced = run_warden(&args, None, Duration::from_secs(30));
    assert_eq!(forced.code, Some(0), "{}", forced.err);
    assert_ne!(std::fs::read(dir.path().join("ca.crt")).unwrap(), ca, "a new CA");
}
