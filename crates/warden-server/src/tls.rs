//! The `[tls]` files, read and checked once at start, turned into tonic's TLS settings.
//!
//! tonic takes PEM bytes and fails late with rustls' terse errors; reading and parsing the
//! files here first makes a missing or wrong file a startup error that names it. One
//! crypto provider (ring) is installed for the whole process before any TLS is set up:
//! with two providers compiled in rustls would panic (STACK.md fact 4).

use std::collections::BTreeSet;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::Config;
use crate::error::ServerError;

/// Installs ring as the process's rustls crypto provider (a second call, or a provider
/// installed by the embedding program, is left alone).
pub fn install_crypto_provider() {
    // An Err only says that a provider is installed already.
    rustls::crypto::ring::default_provider().install_default().ok();
}

/// This member's TLS settings, from `[tls]`.
pub(crate) struct TlsSettings {
    /// For the client port (None: plain).
    pub(crate) clients: Option<ServerTlsConfig>,
    /// For the peer port (None: plain).
    pub(crate) peers: Option<ServerTlsConfig>,
    /// For this member's connections to its peers (None: plain).
    pub(crate) peer_client: Option<ClientTlsConfig>,
    /// The identities peers' certificates may name (the members'); None: not checked.
    pub(crate) member_identities: Option<BTreeSet<String>>,
}

impl TlsSettings {
    /// Reads and checks the files `config.tls` names.
    pub(crate) fn load(config: &Config) -> Result<TlsSettings, ServerError> {
        let tls = &config.tls;
        let (Some(cert), Some(key)) = (&tls.cert, &tls.key) else {
            return Ok(TlsSettings {
                clients: None,
                peers: None,
                peer_client: None,
                member_identities: None,
            });
        };
        let cert_pem = read_certificates("tls.cert", cert)?;
        let key_pem = read("tls.key", key)?;
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            problem(
                "tls.key",
                key,
                &format!("holds no PEM private key ({e}); give the key of tls.cert"),
            )
        })?;
        let identity = Identity::from_pem(&cert_pem, &key_pem);
        let mut clients = ServerTlsConfig::new().identity(identity.clone());
        if let Some(ca) = &tls.client_ca {
            clients = clients
                .client_ca_root(Certificate::from_pem(read_certificates("tls.client_ca", ca)?));
        }
        let (peers, peer_client, member_identities) = match &tls.peer_ca {
            None => (None, None, None),
            Some(ca) => {
                let ca = Certificate::from_pem(read_certificates("tls.peer_ca", ca)?);
                let peers =
                    ServerTlsConfig::new().identity(identity.clone()).client_ca_root(ca.clone());
                let client = ClientTlsConfig::new().ca_certificate(ca).identity(identity);
                let ids = config.initial_members.iter().map(|m| m.expected_identity()).collect();
                (Some(peers), Some(client), Some(ids))
            }
        };
        Ok(TlsSettings { clients: Some(clients), peers, peer_client, member_identities })
    }
}

fn problem(key: &str, path: &Path, what: &str) -> ServerError {
    ServerError::Config(format!("{key} {}: {what}", path.display()))
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|e| problem(key, path, &format!("cannot be read: {e}")))
}

/// The file's bytes, once it is known to hold at least one PEM certificate.
fn read_certificates(key: &str, path: &Path) -> Result<Vec<u8>, ServerError> {
    let pem = read(key, path)?;
    let mut certificates = CertificateDer::pem_slice_iter(&pem).peekable();
    match certificates.peek() {
        Some(Ok(_)) => Ok(pem),
        Some(Err(e)) => Err(problem(key, path, &format!("is not valid PEM: {e}"))),
        None => Err(problem(key, path, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")),
    }
}
