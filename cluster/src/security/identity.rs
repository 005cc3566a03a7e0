//! Who a certificate names: the node id of a node certificate (SAN URI
//! `urn:ninety:node:<id>`, authoritative) and the subject CN of any certificate (what a
//! client certificate is matched by in `[[auth.certs]]`).
//!
//! Only reads certificates (x509-parser); whether one is trusted is decided before, by
//! rustls against the cluster CA during the handshake. A certificate handed here by tonic
//! has already been verified.
//!
//! Every peer call and every client call over TLS asks who its connection's certificate
//! names. Parsing the X.509 each time showed in a follower's profile (issue 13), so what a
//! certificate names is remembered by its DER bytes ([`named`]): the answer is a pure
//! function of those bytes, a cluster has few distinct certificates, and the memo is
//! bounded (`NAMED_MEMO_MAX`, cleared when full).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
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

/// Distinct certificates remembered by [`named`] before the memo starts over: far more than
/// a cluster's nodes and listed client certificates.
pub const NAMED_MEMO_MAX: usize = 1024;

/// What one certificate names, read once ([`named`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// [`node_id`]'s answer.
    pub node: Result<Option<u64>, IdentityError>,
    /// [`common_name`]'s answer.
    pub common_name: Result<Option<String>, IdentityError>,
}

static NAMED: LazyLock<Mutex<HashMap<Vec<u8>, Arc<Named>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// What the DER certificate `der` names: parsed on its first sight, remembered after.
pub fn named(der: &[u8]) -> Arc<Named> {
    if let Some(known) = NAMED.lock().ok().and_then(|m| m.get(der).cloned()) {
        return known;
    }
    let read = Arc::new(Named {
        node: node_id(der),
        common_name: common_name(der),
    });
    if let Ok(mut memo) = NAMED.lock() {
        if memo.len() >= NAMED_MEMO_MAX {
            memo.clear();
        }
        memo.insert(der.to_vec(), read.clone());
    }
    read
}

/// The node id a DER certificate names in its SAN URIs; `None` for a certificate that
/// names no node (a client certificate). Parses every time; calls per request go
/// through [`named`].
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

/// The subject common name (CN) of a DER certificate, if it has a readable one. Parses
/// every time; calls per request go through [`named`].
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
    fn the_memo_answers_as_a_fresh_parse_would() {
        let node = cert(&["urn:ninety:node:7"], "ninety-node-7");
        let client = cert(&[], "referral-svc");
        for _ in 0..2 {
            assert_eq!(named(&node).node, Ok(Some(7)));
            assert_eq!(named(&node).common_name, Ok(Some("ninety-node-7".into())));
            assert_eq!(named(&client).node, Ok(None));
            assert_eq!(named(&client).common_name, Ok(Some("referral-svc".into())));
            assert!(matches!(
                named(b"junk").node,
                Err(IdentityError::Unreadable(_))
            ));
        }
        // Past the bound the memo starts over and still answers.
        for i in 0..=NAMED_MEMO_MAX {
            named(format!("junk {i}").as_bytes());
        }
        assert!(NAMED.lock().unwrap().len() <= NAMED_MEMO_MAX);
        assert_eq!(named(&node).node, Ok(Some(7)));
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
