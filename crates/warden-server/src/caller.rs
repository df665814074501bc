//! Who is calling: the one layer in front of every client-port service.
//!
//! Every request on the client port passes through [`CallerLayer`] before any service sees
//! it. The layer reads the certificate the client presented (mutual TLS), computes its
//! identity with [`crate::identity::identity`] and puts a [`Caller`] into the request's
//! extensions; handlers read it back with [`Caller::of`] (a session records its opener,
//! `WhoAmI` answers it) instead of looking at certificates themselves. This is where
//! authorization (ACLs, the next step) will plug in: one decision per request, here, not
//! checks scattered over the handlers.
//!
//! Without TLS, or with TLS but no `tls.client_ca`, no certificate is asked for and the
//! caller is anonymous (an empty identity). With `tls.client_ca` a certificate is required
//! by the TLS handshake; one whose identity cannot be read is refused UNAUTHENTICATED,
//! saying why, rather than served as anonymous.

use tonic::service::Interceptor;
use tonic::{Request, Status};
use tracing::warn;
use warden_proto::ErrorKind;

use crate::identity::identity;

/// The caller of a client-port request, as the [`CallerLayer`] found it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Caller {
    /// The identity its client certificate names; empty without one (anonymous).
    pub(crate) identity: String,
}

impl Caller {
    /// The caller the layer put into `request`. Its absence is a wiring bug (a service
    /// added to the client port without the layer), refused rather than served anonymously.
    pub(crate) fn of<T>(request: &Request<T>) -> Result<&Caller, Status> {
        request.extensions().get::<Caller>().ok_or_else(|| {
            crate::status::server(
                tonic::Code::Internal,
                ErrorKind::Internal,
                "this member did not identify the caller (the client port's caller layer is missing); report this as a bug",
            )
        })
    }
}

/// The interceptor in front of the client port's services: it identifies the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallerLayer {
    /// A client certificate is required (`tls.client_ca` is set).
    required: bool,
}

impl CallerLayer {
    /// The layer for a client port that requires client certificates or not.
    pub(crate) fn new(required: bool) -> CallerLayer {
        CallerLayer { required }
    }

    /// The caller of `request`, or why it is refused.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let certs = request.peer_certs();
        let Some(cert) = certs.as_deref().and_then(|c| c.first()) else {
            if self.required {
                return Err(crate::status::server(
                    tonic::Code::Unauthenticated,
                    ErrorKind::Unauthenticated,
                    "this member requires a client certificate signed by its tls.client_ca, and none was presented; pass --cert and --key (or TlsFiles.cert and .key)",
                ));
            }
            return Ok(Caller::default());
        };
        match identity(cert) {
            Ok(identity) => Ok(Caller { identity }),
            Err(e) => {
                warn!(error = %e, "request refused: the client certificate names no identity");
                // A refusal of the member's, with its kind: the client reports it at once
                // instead of taking it for a broken connection.
                Err(crate::status::server(
                    tonic::Code::Unauthenticated,
                    ErrorKind::Unauthenticated,
                    format!("the client certificate is refused: {e}"),
                ))
            }
        }
    }
}

impl Interceptor for CallerLayer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.caller(&request)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}
