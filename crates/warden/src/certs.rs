//! `warden certs dev`: a throwaway PKI for trying mutual TLS on one machine.
//!
//! Setting up mTLS usually starts with an afternoon of openssl or cfssl; this writes a CA,
//! a certificate per dev member and one per named client in a second, so the TLS settings
//! of `[tls]` can be tried at once. The member certificates name `localhost` and 127.0.0.1
//! (a peer's or a client's TLS name check passes on loopback) and carry the identity
//! members expect of each other, `spiffe://warden/member/N`; they serve as server and
//! client certificates both, since a member is both to its peers. A client certificate
//! names its client by CN only, so its identity (see `warden_server::identity`) is exactly
//! the name given. `--san` adds names or addresses to every member certificate, for
//! members that reach each other by other addresses (containers on their own network,
//! say): a peer's TLS name check is against the host of its peer address. Nothing here is
//! for production: the CA key lies next to the
//! certificates and nothing expires for a very long time.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tracing::info;

/// The identity a dev member's certificate carries (and members expect by default).
pub(crate) fn member_identity(id: u64) -> String {
    format!("spiffe://warden/member/{id}")
}

/// One certificate and its key, to be written as `NAME.crt` and `NAME.key`.
struct Issued {
    name: String,
    cert_pem: String,
    key_pem: String,
}

/// What to do with files of the PKI that exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Write nothing if any exists.
    Refuse,
    /// Write everything anew.
    Replace,
    /// Write nothing if all exist; as `Refuse` if only some do.
    Keep,
}

/// Writes the dev PKI into `out`: `ca`, `node1`..`nodeN` (each also naming every one of
/// `sans`) and one pair per client; `existing` says what to do with files already there.
/// Nothing is written if one would be refused.
pub(crate) fn dev(
    out: &Path,
    nodes: u16,
    clients: &[String],
    sans: &[String],
    existing: Existing,
) -> Result<()> {
    if nodes == 0 && clients.is_empty() {
        bail!("nothing to issue: give --nodes 1 or more, or a --client NAME");
    }
    check_client_names(nodes, clients)?;
    let sans = sans.iter().map(|s| san(s)).collect::<Result<Vec<_>>>()?;
    let mut names = vec!["ca".to_owned()];
    names.extend((1..=nodes).map(|i| format!("node{i}")));
    names.extend(clients.iter().cloned());
    let paths: Vec<PathBuf> = names
        .iter()
        .flat_map(|n| [out.join(format!("{n}.crt")), out.join(format!("{n}.key"))])
        .collect();
    if existing == Existing::Keep && paths.iter().all(|p| p.exists()) {
        info!(out = %out.display(), "dev certificates kept: every file is there already");
        return Ok(());
    }
    if existing != Existing::Replace
        && let Some(found) = paths.iter().find(|p| p.exists())
    {
        bail!(
            "{} already exists; use another --out folder, or --force to replace the files",
            found.display()
        );
    }

    let issued = issue(nodes, clients, &sans).context("cannot generate the certificates")?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for one in &issued {
        write(&out.join(format!("{}.crt", one.name)), &one.cert_pem, 0o644)?;
        write(&out.join(format!("{}.key", one.name)), &one.key_pem, 0o600)?;
    }
    info!(out = %out.display(), nodes, clients = clients.len(), "dev certificates written");
    Ok(())
}

/// Client names become file names and must not collide with the CA's or a member's.
fn check_client_names(nodes: u16, clients: &[String]) -> Result<()> {
    for (i, name) in clients.iter().enumerate() {
        let fine = !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !fine {
            bail!(
                "--client {name:?}: a client name is letters, digits, '.', '_' and '-' (it names the files NAME.crt and NAME.key)"
            );
        }
        let taken = name == "ca"
            || name
                .strip_prefix("node")
                .and_then(|n| n.parse::<u16>().ok())
                .is_some_and(|n| (1..=nodes).contains(&n));
        if taken {
            bail!(
                "--client {name:?} would overwrite the CA's or a member's files; choose another name"
            );
        }
        if clients[..i].contains(name) {
            bail!("--client {name:?} is given twice");
        }
    }
    Ok(())
}

/// A `--san` value as a subject alternative name: an IP address if it reads as one, else a
/// DNS name.
fn san(text: &str) -> Result<SanType> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let fine = !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !fine {
        bail!("--san {text:?}: give an IP address or a DNS name (letters, digits, '-' and dots)");
    }
    Ok(SanType::DnsName(text.try_into().with_context(|| format!("--san {text:?}"))?))
}

fn issue(nodes: u16, clients: &[String], sans: &[SanType]) -> Result<Vec<Issued>, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = named("warden dev CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
    let mut issued =
        vec![Issued { name: "ca".into(), cert_pem: ca.pem(), key_pem: ca.key().serialize_pem() }];
    for i in 1..=nodes {
        issued.push(leaf(format!("node{i}"), member(i, sans)?, &ca)?);
    }
    for name in clients {
        let mut params = CertificateParams::default();
        params.distinguished_name = named(name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        issued.push(leaf(name.clone(), params, &ca)?);
    }
    Ok(issued)
}

/// The certificate of member `i`: its identity, loopback, and `sans`.
fn member(i: u16, sans: &[SanType]) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = named(&format!("warden member {i}"));
    params.subject_alt_names = vec![
        SanType::URI(member_identity(u64::from(i)).try_into()?),
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress([127, 0, 0, 1].into()),
    ];
    params.subject_alt_names.extend(sans.iter().cloned());
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

fn named(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    name
}

fn leaf(
    name: String,
    mut params: CertificateParams,
    ca: &Issuer<'_, KeyPair>,
) -> Result<Issued, rcgen::Error> {
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok(Issued { name, cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Writes `text` to `path` with `mode` (also when replacing a file, whose mode would
/// otherwise be kept).
fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn client_names_are_file_names_of_their_own() {
        assert!(check_client_names(3, &names(&["alice", "bob.ops", "node4"])).is_ok());
        for bad in ["", ".hidden", "a/b", "ca", "node2"] {
            assert!(check_client_names(3, &names(&[bad])).is_err(), "{bad:?}");
        }
        assert!(check_client_names(3, &names(&["alice", "alice"])).is_err());
    }

    #[test]
    fn existing_files_are_refused_kept_whole_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let ca = || std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
        dev(dir.path(), 1, &[], &[], Existing::Refuse).unwrap();
        let first = ca();
        assert!(dev(dir.path(), 1, &[], &[], Existing::Refuse).is_err());
        dev(dir.path(), 1, &[], &[], Existing::Keep).unwrap();
        assert_eq!(ca(), first, "kept");
        std::fs::remove_file(dir.path().join("node1.key")).unwrap();
        assert!(dev(dir.path(), 1, &[], &[], Existing::Keep).is_err(), "only some are there");
        dev(dir.path(), 1, &[], &[], Existing::Replace).unwrap();
        assert_ne!(ca(), first, "replaced");
        assert!(dir.path().join("node1.key").exists());
    }

    #[test]
    fn extra_names_are_addresses_or_dns_names_and_go_on_every_member() {
        assert!(matches!(san("172.28.0.11"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san("::1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san("member1.example"), Ok(SanType::DnsName(_))));
        for bad in ["", "a b", "-x", "a..b", "host:7400"] {
            assert!(san(bad).is_err(), "{bad:?}");
        }
        let extra = vec![san("172.28.0.11").unwrap(), san("member1").unwrap()];
        for i in 1..=3 {
            let names = member(i, &extra).unwrap().subject_alt_names;
            assert_eq!(names.len(), 5, "{names:?}");
            assert!(extra.iter().all(|e| names.contains(e)), "{names:?}");
            let identity = SanType::URI(member_identity(u64::from(i)).try_into().unwrap());
            assert!(names.contains(&identity), "{names:?}");
        }
        assert_eq!(issue(2, &[], &extra).unwrap().len(), 3, "the CA and two members");
    }
}
