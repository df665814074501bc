//! Who a TLS peer is, from its certificate (DESIGN §7).
//!
//! With mutual TLS the certificate the peer presented is the only thing the server knows
//! about it, so the identity that members check (and that ACLs will grant) is read from it:
//! the first SAN URI (a SPIFFE id such as `spiffe://warden/member/1`), else the first SAN
//! DNS name, else the subject's common name. The order follows SPIFFE and etcd: a URI names
//! a workload, a DNS name a host, and the CN is the legacy fallback. A certificate with none
//! of them has no identity and is refused rather than given an empty one.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why no identity could be read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The bytes are not a DER X.509 certificate.
    #[error("the certificate cannot be parsed as DER X.509: {0}")]
    Unparsable(String),
    /// The certificate names nobody.
    #[error(
        "the certificate has no SAN URI, no SAN DNS name and no subject CN, so it names no identity; issue it with one (e.g. a SAN URI spiffe://warden/member/1, or CN=alice)"
    )]
    Missing,
}

/// The identity a DER certificate names: its first SAN URI, else its first SAN DNS name,
/// else its subject CN.
pub fn identity(der: &[u8]) -> Result<String, IdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| IdentityError::Unparsable(e.to_string()))?;
    let names = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Unparsable(format!("subjectAltName: {e}")))?
        .map(|ext| ext.value.general_names.clone())
        .unwrap_or_default();
    let uri = names.iter().find_map(|n| match n {
        GeneralName::URI(uri) if !uri.is_empty() => Some(*uri),
        _ => None,
    });
    let dns = names.iter().find_map(|n| match n {
        GeneralName::DNSName(dns) if !dns.is_empty() => Some(*dns),
        _ => None,
    });
    let cn =
        cert.subject().iter_common_name().find_map(|cn| cn.as_str().ok().filter(|s| !s.is_empty()));
    uri.or(dns).or(cn).map(str::to_owned).ok_or(IdentityError::Missing)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    use super::*;

    /// A self-signed certificate with these SANs and CN.
    fn cert(sans: Vec<SanType>, cn: Option<&str>) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    fn dns(s: &str) -> SanType {
        SanType::DnsName(s.try_into().unwrap())
    }

    #[test]
    fn uri_wins_over_dns_over_cn() {
        let all = cert(vec![dns("host.example"), uri("spiffe://warden/member/1")], Some("cn"));
        assert_eq!(identity(&all).unwrap(), "spiffe://warden/member/1");
        let two_uris = cert(vec![uri("spiffe://a"), uri("spiffe://b")], None);
        assert_eq!(identity(&two_uris).unwrap(), "spiffe://a");
        let dns_cn = cert(vec![dns("host.example"), dns("other.example")], Some("cn"));
        assert_eq!(identity(&dns_cn).unwrap(), "host.example");
        let ip_cn = cert(vec![SanType::IpAddress([127, 0, 0, 1].into())], Some("alice"));
        assert_eq!(identity(&ip_cn).unwrap(), "alice");
    }

    #[test]
    fn a_certificate_naming_nobody_is_refused() {
        let none = cert(vec![SanType::IpAddress([127, 0, 0, 1].into())], None);
        let error = identity(&none).unwrap_err();
        assert_eq!(error, IdentityError::Missing);
        assert!(error.to_string().contains("no SAN URI, no SAN DNS name and no subject CN"));
        assert!(matches!(identity(b"not a certificate"), Err(IdentityError::Unparsable(_))));
    }
}
