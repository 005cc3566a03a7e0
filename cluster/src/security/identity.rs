//! Who a certificate names: the node id of a node certificate (SAN URI
//! `urn:ninety:node:<id>`, authoritative) and the subject CN of any certificate (what a
//! client certificate is matched by in `[[auth.certs]]`).
//!
//! Only reads certificates (x509-parser); whether one is trusted is decided before, by
//! rustls against the cluster CA during the handshake. A certificate handed here by tonic
//! has already been verified.

use thiserror::Error;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The SAN URI prefix naming a node: `urn:ninety:node:<id>`.
pub const NODE_URI_PREFIX: &str = "urn:ninety:node:";

/// A certificate that cannot be read as an identity.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// Not a DER X.509 certificate, or a malformed extension.
    #[error("not a readable X.509 certificate: {0}")]
    Unreadable(String),
    /// A `urn:ninety:node:` URI without a valid node id, or naming two nodes.
    #[error("bad node identity: {0}")]
    BadNodeUri(String),
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, IdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| IdentityError::Unreadable(e.to_string()))?;
    Ok(cert)
}

/// The node id a DER certificate names in its SAN URIs; `None` for a certificate that
/// names no node (a client certificate).
pub fn node_id(der: &[u8]) -> Result<Option<u64>, IdentityError> {
    let cert = parse(der)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Unreadable(format!("subjectAltName: {e}")))?;
    let Some(san) = san else { return Ok(None) };
    let mut found: Option<u64> = None;
    for name in &san.value.general_names {
        let GeneralName::URI(uri) = name else {
            continue;
        };
        let Some(id) = uri.strip_prefix(NODE_URI_PREFIX) else {
            continue;
        };
        let id: u64 = match id.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(IdentityError::BadNodeUri(format!(
                    "{uri:?} names no node id"
                )))
            }
        };
        if found.is_some_and(|f| f != id) {
            return Err(IdentityError::BadNodeUri(format!(
                "names two nodes ({} and {id})",
                found.unwrap_or_default()
            )));
        }
        found = Some(id);
    }
    Ok(found)
}

/// The subject common name (CN) of a DER certificate, if it has a readable one.
pub fn common_name(der: &[u8]) -> Result<Option<String>, IdentityError> {
    let cert = parse(der)?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    Ok(cn)
}

/// The DER certificate inside the first `CERTIFICATE` block of a PEM text.
pub fn der_from_pem(pem: &str) -> Result<Vec<u8>, IdentityError> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| IdentityError::Unreadable(format!("PEM: {e}")))?;
    if p.label != "CERTIFICATE" {
        return Err(IdentityError::Unreadable(format!(
            "PEM block {:?}, expected CERTIFICATE",
            p.label
        )));
    }
    parse(&p.contents)?;
    Ok(p.contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: &[&str], cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        for s in sans {
            params.subject_alt_names.push(rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from(*s).unwrap(),
            ));
        }
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn node_ids_and_names_come_out_of_certificates() {
        let node = cert(&["urn:ninety:node:7"], "ninety-node-7");
        assert_eq!(node_id(&node), Ok(Some(7)));
        assert_eq!(common_name(&node), Ok(Some("ninety-node-7".into())));
        let client = cert(&["https://example.org"], "referral-svc");
        assert_eq!(node_id(&client), Ok(None));
        assert_eq!(common_name(&client), Ok(Some("referral-svc".into())));
        let two = cert(&["urn:ninety:node:1", "urn:ninety:node:2"], "x");
        assert!(matches!(node_id(&two), Err(IdentityError::BadNodeUri(_))));
        let zero = cert(&["urn:ninety:node:0"], "x");
        assert!(matches!(node_id(&zero), Err(IdentityError::BadNodeUri(_))));
        let junk = cert(&["urn:ninety:node:abc"], "x");
        assert!(matches!(node_id(&junk), Err(IdentityError::BadNodeUri(_))));
        assert!(matches!(
            node_id(b"junk"),
            Err(IdentityError::Unreadable(_))
        ));
    }

    #[test]
    fn pem_is_read_only_as_a_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        assert!(der_from_pem(&key.serialize_pem()).is_err());
        assert!(der_from_pem("not pem").is_err());
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        assert!(der_from_pem(&pem).is_ok());
    }
}
