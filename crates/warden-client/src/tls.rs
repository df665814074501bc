//! TLS to the members: the CA that signed their certificates and, when the cluster asks
//! for one, this client's own certificate and key, read from PEM files.
//!
//! The files are read and tried once, when the client is made, so a wrong path or a key
//! that does not fit is reported at once with the file's name instead of as a failed
//! handshake on every member after retries. The name checked in a member's certificate is
//! the host of the address dialled (a DNS name or an IP), as for any HTTPS client.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::error::ClientError;

/// The PEM files of a TLS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed the members' certificates.
    pub ca: PathBuf,
    /// This client's certificate (chain), for a cluster that asks clients for one.
    pub cert: Option<PathBuf>,
    /// Its private key (with `cert`).
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads the files into tonic's TLS settings, naming the file that is wrong.
    pub(crate) fn load(&self) -> Result<ClientTlsConfig, ClientError> {
        let ca = Certificate::from_pem(read(&self.ca)?);
        let mut tls = ClientTlsConfig::new().ca_certificate(ca);
        match (&self.cert, &self.key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(ClientError::Tls {
                    file: self.cert.clone().or_else(|| self.key.clone()).unwrap_or_default(),
                    reason: "a client certificate and its key go together: give both or neither"
                        .into(),
                });
            }
        }
        // tonic parses the PEM when an endpoint takes the settings: try it once here.
        Endpoint::from_static("https://localhost").tls_config(tls.clone()).map_err(|e| {
            ClientError::Tls {
                file: self.ca.clone(),
                reason: format!(
                    "these TLS files (CA {}, certificate {}, key {}) are not usable together: {}",
                    self.ca.display(),
                    shown(self.cert.as_deref()),
                    shown(self.key.as_deref()),
                    crate::connection::causes(&e)
                ),
            }
        })?;
        Ok(tls)
    }
}

fn shown(path: Option<&Path>) -> String {
    path.map_or_else(|| "none".to_owned(), |p| p.display().to_string())
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    let pem = std::fs::read(path).map_err(|e| ClientError::Tls {
        file: path.to_owned(),
        reason: format!("cannot be read: {e}"),
    })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN ") {
        return Err(ClientError::Tls {
            file: path.to_owned(),
            reason: "is not a PEM file (no -----BEGIN line)".into(),
        });
    }
    Ok(pem)
}
