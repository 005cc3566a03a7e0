//! Certificates and tokens for a cluster, made with rcgen: the cluster's CA, one certificate
//! per node, client certificates, and bearer tokens.
//!
//! Who is who (what `identity` reads back):
//! - a **node** certificate names its node id twice: the SAN URI `urn:ninety:node:<id>`
//!   (authoritative) and the subject CN `ninety-node-<id>` (for people). Its other SANs are
//!   the hosts it is dialled by (`localhost`, 127.0.0.1, ::1 and the hosts of its two
//!   addresses): a node serves both listeners and dials its peers with this one certificate.
//! - a **client** certificate's subject CN is the client's name (`referral-svc`), which the
//!   node config maps to roles; it carries no node URI, so it can never speak for a node.
//!
//! Keys are ECDSA P-256 (rcgen's default, supported by every gRPC stack); serial numbers are
//! random, so a re-issued certificate never collides with the one it replaces.

use crate::error::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// How long a CA certificate is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// How long a node or client certificate is valid: rotate before (docs/operations.md).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 60 * 60);
/// A certificate is valid from this long before it was made (clocks of peers disagree).
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60 * 60);
/// Random bytes in a bearer token (hex-encoded: twice as many characters).
pub const TOKEN_BYTES: usize = 32;
/// Most hosts named in one node certificate.
pub const CERT_HOSTS_MAX: usize = 32;
/// Longest client name (a certificate CN; RFC 5280 caps a CN at 64 characters).
pub const CLIENT_NAME_CHARS_MAX: usize = 64;

/// The SAN URI naming node `id` in its certificate.
pub fn node_uri(id: u64) -> String {
    format!("urn:ninety:node:{id}")
}

/// The subject CN of node `id`'s certificate.
pub fn node_common_name(id: u64) -> String {
    format!("ninety-node-{id}")
}

/// A certificate and its private key, both PEM (the key PKCS#8).
#[derive(Clone, Debug)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A certificate authority that can issue node and client certificates.
pub struct Ca {
    /// The CA's own certificate and key: `ca.pem` is given to every node and client,
    /// `ca.key` stays with the operator.
    pub pem: Pem,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert", &self.pem.cert).finish()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what}: {e}"))
}

fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| failed("random serial number", e))?;
    bytes[0] &= 0x7f; // a positive DER integer
    Ok(SerialNumber::from_slice(&bytes))
}

/// Params valid from now (less the skew allowance) for `validity`, with a random serial.
fn params_valid_for(validity: Duration) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::default();
    let now = time::OffsetDateTime::from(SystemTime::now());
    p.not_before = now - CLOCK_SKEW_ALLOWANCE;
    p.not_after = now + validity;
    p.serial_number = Some(random_serial()?);
    Ok(p)
}

impl Ca {
    /// A new CA for the cluster named `cluster_name` (goes into its subject).
    pub fn new(cluster_name: &str) -> Result<Ca, Error> {
        let mut p = params_valid_for(CA_VALIDITY)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "ninety");
        dn.push(DnType::CommonName, format!("ninety CA {cluster_name}"));
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
        let cert = p
            .self_signed(&key)
            .map_err(|e| failed("CA certificate", e))?;
        let pem = Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        Ok(Ca {
            pem,
            issuer: Issuer::new(p, key),
        })
    }

    /// A CA loaded from its PEM certificate and key (to issue more certificates later).
    pub fn from_pem(cert: &str, key: &str) -> Result<Ca, Error> {
        let signing = KeyPair::from_pem(key).map_err(|e| failed("CA key", e))?;
        let issuer =
            Issuer::from_ca_cert_pem(cert, signing).map_err(|e| failed("CA certificate", e))?;
        Ok(Ca {
            pem: Pem {
                cert: cert.to_string(),
                key: key.to_string(),
            },
            issuer,
        })
    }

    /// Node `id`'s certificate, for both listeners and for dialling peers. `hosts` are the
    /// names and IP addresses it is reached by (`localhost`, 127.0.0.1 and ::1 are added).
    pub fn node_cert(&self, id: u64, hosts: &[String]) -> Result<Pem, Error> {
        if id == 0 {
            return Err(failed("node id", "0 is not a node id"));
        }
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        for h in hosts {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            if !names.iter().any(|n| n == h) {
                names.push(h.to_string());
            }
        }
        if names.len() > CERT_HOSTS_MAX {
            return Err(failed("hosts", format!("more than {CERT_HOSTS_MAX}")));
        }
        let mut p = params_valid_for(LEAF_VALIDITY)?;
        for n in &names {
            let san = match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    n.clone()
                        .try_into()
                        .map_err(|e| failed(&format!("host {n:?}"), e))?,
                ),
            };
            p.subject_alt_names.push(san);
        }
        let uri = node_uri(id).try_into().map_err(|e| failed("node URI", e))?;
        p.subject_alt_names.push(SanType::URI(uri));
        p.distinguished_name
            .push(DnType::CommonName, node_common_name(id));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(p, &format!("node {id} certificate"))
    }

    /// A client certificate whose subject CN is `name` (mapped to roles by `[[auth.certs]]`).
    pub fn client_cert(&self, name: &str) -> Result<Pem, Error> {
        let ok = !name.is_empty()
            && name.chars().count() <= CLIENT_NAME_CHARS_MAX
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
        if !ok {
            return Err(failed(
                "client name",
                format!("{name:?}: 1 to {CLIENT_NAME_CHARS_MAX} of A-Z a-z 0-9 - _ . @"),
            ));
        }
        let mut p = params_valid_for(LEAF_VALIDITY)?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(p, &format!("client certificate {name}"))
    }

    fn issue(&self, mut p: CertificateParams, what: &str) -> Result<Pem, Error> {
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(|e| failed(what, e))?;
        let cert = p
            .signed_by(&key, &self.issuer)
            .map_err(|e| failed(what, e))?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// A new bearer token: [`TOKEN_BYTES`] random bytes as lowercase hex.
pub fn new_token() -> Result<String, Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| failed("random token", e))?;
    Ok(hex(&bytes))
}

/// The SHA-256 of a token's UTF-8 text, as the node config stores it (64 lowercase hex).
pub fn token_sha256(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn parse(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.contents
    }

    #[test]
    fn a_node_certificate_names_its_id_and_hosts_and_is_signed_by_the_ca() {
        let ca = Ca::new("test").unwrap();
        let node = ca
            .node_cert(3, &["10.0.0.3".into(), "n3.example".into()])
            .unwrap();
        let der = parse(&node.cert);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "ninety-node-3");
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|g| g.to_string())
            .collect();
        let all = names.join(" ");
        // x509-parser shows IP addresses in hex: 10.0.0.3 and 127.0.0.1.
        for want in [
            "urn:ninety:node:3",
            "0a:00:00:03",
            "n3.example",
            "localhost",
            "7f:00:00:01",
        ] {
            assert!(all.contains(want), "{want} not in {all}");
        }
        let ca_der = parse(&ca.pem.cert);
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert!(ca_cert.is_ca());
    }

    #[test]
    fn a_ca_loaded_from_pem_issues_certificates_the_original_ca_verifies() {
        let ca = Ca::new("test").unwrap();
        let again = Ca::from_pem(&ca.pem.cert, &ca.pem.key).unwrap();
        let client = again.client_cert("referral-svc").unwrap();
        let der = parse(&client.cert);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let ca_der = parse(&ca.pem.cert);
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "referral-svc");
        assert!(cert.subject_alternative_name().unwrap().is_none());
    }

    #[test]
    fn bad_names_and_ids_are_refused() {
        let ca = Ca::new("test").unwrap();
        assert!(ca.node_cert(0, &[]).is_err());
        assert!(ca.client_cert("").is_err());
        assert!(ca.client_cert("a b").is_err());
        assert!(ca.client_cert(&"x".repeat(65)).is_err());
        assert!(Ca::from_pem("junk", "junk").is_err());
    }

    #[test]
    fn tokens_are_random_hex_and_hash_to_64_hex() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        let h = token_sha256(&a);
        assert_eq!(h.len(), 64);
        assert!(h
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
