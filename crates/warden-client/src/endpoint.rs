//! What a member's address may look like: `host:port`, as the members give theirs.
//!
//! Other clients (etcd's, gRPC's) take `http://host:port` or `https://host:port`; that is
//! the same member, so the scheme is dropped, but it must agree with the client: `https://`
//! without TLS files is refused at once rather than dialled in plaintext, and `http://`
//! with them rather than dialled over TLS. Anything that is not a `host:port` is refused
//! too, with what to write instead: a bad endpoint found at the first call, after retries,
//! says less.

use tonic::transport::Endpoint;

use crate::error::ClientError;

/// An endpoint as the `host:port` the client dials. `http://host:port` (what other
/// clients take) is the same member for a plain client, `https://host:port` for a TLS
/// one (`tls`); the other scheme is refused.
pub(crate) fn endpoint(given: &str, tls: bool) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidEndpoint {
        endpoint: given.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = given.trim();
    let address = match trimmed.split_once("://") {
        None => trimmed,
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") && !tls => rest,
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") && tls => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(invalid(
                "https needs TLS files: give the CA that signed the members' certificates (warden --cacert, Client::with_tls), or a plaintext address as host:port",
            ));
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => {
            return Err(invalid(
                "http:// with TLS files: write host:port or https://host:port (this client speaks TLS to every member)",
            ));
        }
        Some(_) => return Err(invalid("unknown scheme; write host:port (or http://host:port)")),
    };
    let address = address.strip_suffix('/').unwrap_or(address);
    if address.contains('/') {
        return Err(invalid("a path after host:port; write host:port only"));
    }
    if address
        .rsplit_once(':')
        .and_then(|(host, port)| {
            (!host.is_empty()).then_some(())?;
            port.parse::<u16>().ok()
        })
        .is_none()
    {
        return Err(invalid("not host:port (e.g. 127.0.0.1:7400)"));
    }
    Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| invalid(&format!("not a valid address: {e}")))?;
    Ok(address.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_port_with_or_without_http() {
        for (given, expected) in [
            ("127.0.0.1:7400", "127.0.0.1:7400"),
            ("http://127.0.0.1:7400", "127.0.0.1:7400"),
            ("HTTP://node1:7400/", "node1:7400"),
            (" [::1]:7400 ", "[::1]:7400"),
        ] {
            assert_eq!(endpoint(given, false).ok().as_deref(), Some(expected), "{given}");
        }
        for (given, expected) in
            [("127.0.0.1:7400", "127.0.0.1:7400"), ("HTTPS://node1:7400/", "node1:7400")]
        {
            assert_eq!(endpoint(given, true).ok().as_deref(), Some(expected), "{given}");
        }
        match endpoint("http://127.0.0.1:7400", true) {
            Err(ClientError::InvalidEndpoint { reason, .. }) => {
                assert!(reason.contains("with TLS files"), "{reason}")
            }
            other => panic!("http with TLS: {other:?}"),
        }
        for (given, reason) in [
            ("https://127.0.0.1:7400", "https needs TLS files"),
            ("grpc://127.0.0.1:7400", "unknown scheme"),
            ("http://127.0.0.1:7400/v1", "a path"),
            ("127.0.0.1", "not host:port"),
            ("http://:7400", "not host:port"),
            ("127.0.0.1:http", "not host:port"),
        ] {
            match endpoint(given, false) {
                Err(ClientError::InvalidEndpoint { reason: r, .. }) => {
                    assert!(r.contains(reason), "{given}: {r}")
                }
                other => panic!("{given}: {other:?}"),
            }
        }
    }
}
