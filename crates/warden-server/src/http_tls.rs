//! TLS on the HTTP port, when `[tls] cert` and `key` are set: the port carries the REST
//! API, which reads and writes locks and sessions, so it is secured like the client port.
//! With `tls.client_ca` a client certificate is required (the handshake refuses a client
//! without one), and the caller of every request on the connection is the identity it
//! names ([`crate::identity::identity`], as the client port's caller layer reads it).
//! Without a client certificate the caller is anonymous, which ACLs treat as such.
//!
//! The same certificate, key and CA files as the client port's, read with rustls (the
//! ring provider the whole process uses) through tokio-rustls.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::Code;
use tracing::warn;
use warden_proto::ErrorKind;

use crate::caller::Caller;
use crate::config::Config;
use crate::error::ServerError;
use crate::rest::ApiError;

/// The HTTP port's TLS acceptor.
pub(crate) struct HttpTls {
    acceptor: TlsAcceptor,
}

/// Who the requests of one connection come from: a caller, or why none is let in.
pub(crate) type ConnectionCaller = Result<Caller, ApiError>;

fn problem(key: &str, what: impl std::fmt::Display) -> ServerError {
    ServerError::Config(format!("tls: the HTTP port cannot use {key}: {what}"))
}

impl HttpTls {
    /// The acceptor for `config.tls`, None when the port stays plain (no cert and key).
    pub(crate) fn load(config: &Config) -> Result<Option<Arc<HttpTls>>, ServerError> {
        let tls = &config.tls;
        let (Some(cert), Some(key)) = (&tls.cert, &tls.key) else { return Ok(None) };
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| problem("tls.cert", e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| problem("tls.key", e))?;
        let builder = rustls::ServerConfig::builder();
        let builder = match &tls.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(ca)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| problem("tls.client_ca", e))?;
                for ca in cas {
                    roots.add(ca).map_err(|e| problem("tls.client_ca", e))?;
                }
                let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .map_err(|e| problem("tls.client_ca", e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server =
            builder.with_single_cert(certs, key).map_err(|e| problem("tls.cert and tls.key", e))?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(HttpTls { acceptor: TlsAcceptor::from(Arc::new(server)) })))
    }

    /// The TLS handshake of `stream`, and the caller its certificate names.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<(TlsStream<TcpStream>, ConnectionCaller)> {
        let stream = self.acceptor.accept(stream).await?;
        let caller = match stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            None => Ok(Caller::default()),
            Some(cert) => match crate::identity::identity(cert) {
                Ok(identity) => Ok(Caller { identity }),
                Err(e) => {
                    warn!(error = %e, "HTTP requests refused: the client certificate names no identity");
                    Err(ApiError::new(
                        Code::Unauthenticated,
                        ErrorKind::Unauthenticated,
                        format!("the client certificate is refused: {e}"),
                    ))
                }
            },
        };
        Ok((stream, caller))
    }
}
