//! Mutual TLS for test clusters, on request: `WARDEN_TEST_TLS=1` runs the fault suite (and
//! the tests that honour the switch) with TLS on both ports of every member, so the faults
//! and the lock tests also exercise the TLS paths (handshakes after kills, pauses and cut
//! links; client certificates required; peers authenticated as members). The switch is
//! honoured by the fault suite ([`crate::suite`]), warden-server's `locks` tests and
//! warden's `lock_holders`, `lock_deletes`, `cli_lock` and `elections` tests; `.ci/run`
//! runs those with it.
//!
//! The certificates are made at test time into the test's folder by the binary under test
//! (`warden certs dev`), so the suite needs no PKI code of its own. Member certificates
//! carry the IP SAN 127.0.0.1: the fault suite's proxies are plain TCP on 127.0.0.1, so a
//! member dialling a peer through its proxy checks the peer's certificate against the
//! proxy's address, which is the same IP.

use std::path::{Path, PathBuf};
use std::process::Command;

use warden_client::TlsFiles;

/// The environment variable that turns TLS on.
pub const TLS_SWITCH: &str = "WARDEN_TEST_TLS";

/// Whether `WARDEN_TEST_TLS=1` is set.
pub fn requested() -> bool {
    std::env::var(TLS_SWITCH).is_ok_and(|v| v == "1")
}

/// A throwaway PKI in a folder: `ca.crt`, `nodeN.crt/key` per member and one client's
/// `NAME.crt/key`, as `warden certs dev` writes them.
#[derive(Debug, Clone)]
pub struct DevPki {
    dir: PathBuf,
    client: String,
}

impl DevPki {
    /// Runs `binary certs dev` to issue certificates for members 1..=`nodes` and the client
    /// `client` into `dir`. An error says what failed and what the command printed.
    pub fn issue(binary: &Path, dir: &Path, nodes: usize, client: &str) -> std::io::Result<DevPki> {
        let out = Command::new(binary)
            .args(["certs", "dev", "--nodes", &nodes.to_string(), "--client", client, "--out"])
            .arg(dir)
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "`{} certs dev --out {}` failed ({}): {}",
                binary.display(),
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(DevPki { dir: dir.to_owned(), client: client.to_owned() })
    }

    /// The file `name` of this PKI.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Member `id`'s `[tls]` table: its certificate served on both ports and presented to
    /// peers, the CA required of clients and of peers.
    pub fn member_table(&self, id: usize) -> String {
        let file = |name: String| self.path(&name).display().to_string();
        format!(
            "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{ca}\"\npeer_ca = \"{ca}\"\n",
            file(format!("node{id}.crt")),
            file(format!("node{id}.key")),
            ca = file("ca.crt".to_owned()),
        )
    }

    /// The client's files: the CA and its own certificate and key.
    pub fn client_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.path("ca.crt"),
            cert: Some(self.path(&format!("{}.crt", self.client))),
            key: Some(self.path(&format!("{}.key", self.client))),
        }
    }
}
