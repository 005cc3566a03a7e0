//! TLS for a node, from its `[tls]` files: the server configs of its two listeners and
//! the client config it dials peers with (tonic over rustls with ring).
//!
//! - Peer listener: the node certificate, and a client certificate signed by the cluster CA
//!   is REQUIRED (mutual TLS); the peer service then reads the caller's node id from it
//!   (`security::identity`).
//! - Client listener: the node certificate; a client certificate is OPTIONAL, verified
//!   against the CA when given (the auth layer matches its CN).
//! - Dialling a peer: `https://`, the CA as the only trust root (the peer's address must be
//!   in its certificate's SANs) and the node certificate as this node's identity.
//!
//! The files are read and checked once, at start, before the data directory is touched:
//! a missing or unreadable file, a PEM that is not a certificate, a node certificate that
//! names another node, are startup errors naming the `tls.*` field.

use super::identity;
use crate::error::Error;
use crate::runtime::config::TlsFiles;
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// A TLS handshake on either listener must finish within this, so a caller that opens a
/// connection and stalls holds no accept slot for long.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest PEM file read from `[tls]` (a certificate chain is a few KiB).
pub const PEM_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// A node's TLS material, read from its `[tls]` files.
#[derive(Clone)]
pub struct NodeTls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("NodeTls").finish_non_exhaustive()
    }
}

fn read_pem(field: &str, path: &Path) -> Result<String, Error> {
    let bad = |why: String| Error::Startup(format!("{field} = {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > PEM_FILE_BYTES_MAX {
        return Err(bad(format!(
            "{} bytes, at most {PEM_FILE_BYTES_MAX} for a PEM file",
            meta.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))
}

impl NodeTls {
    /// Reads and checks node `id`'s `[tls]` files.
    pub fn load(files: &TlsFiles, id: u64) -> Result<NodeTls, Error> {
        let ca_pem = read_pem("tls.ca", &files.ca)?;
        let cert_pem = read_pem("tls.cert", &files.cert)?;
        let key_pem = read_pem("tls.key", &files.key)?;
        NodeTls::from_pem(ca_pem, cert_pem, key_pem, id).map_err(|(field, why)| {
            let path = match field {
                "tls.ca" => &files.ca,
                "tls.cert" => &files.cert,
                _ => &files.key,
            };
            Error::Startup(format!("{field} = {}: {why}", path.display()))
        })
    }

    /// Checks PEM texts for node `id`; an error names the field and why.
    pub fn from_pem(
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
        id: u64,
    ) -> Result<NodeTls, (&'static str, String)> {
        identity::der_from_pem(&ca_pem).map_err(|e| ("tls.ca", e.to_string()))?;
        let der = identity::der_from_pem(&cert_pem).map_err(|e| ("tls.cert", e.to_string()))?;
        match identity::node_id(&der) {
            Ok(Some(n)) if n == id => {}
            Ok(Some(n)) => {
                return Err((
                    "tls.cert",
                    format!("the certificate is node {n}'s, this node is id {id}"),
                ))
            }
            Ok(None) => {
                return Err((
                    "tls.cert",
                    format!(
                        "the certificate names no node (no SAN URI {}{id})",
                        identity::NODE_URI_PREFIX
                    ),
                ))
            }
            Err(e) => return Err(("tls.cert", e.to_string())),
        }
        if !key_pem.contains("-----BEGIN") || !key_pem.contains("PRIVATE KEY-----") {
            return Err(("tls.key", "not a PEM private key".into()));
        }
        Ok(NodeTls {
            ca_pem,
            cert_pem,
            key_pem,
        })
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }

    fn ca(&self) -> Certificate {
        Certificate::from_pem(&self.ca_pem)
    }

    /// The peer listener: mutual TLS, a CA-signed client certificate required.
    pub fn peer_server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(self.ca())
            .client_auth_optional(false)
            .timeout(TLS_HANDSHAKE_TIMEOUT)
    }

    /// The client listener: a client certificate is optional, checked against the CA.
    pub fn client_server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(self.ca())
            .client_auth_optional(true)
            .timeout(TLS_HANDSHAKE_TIMEOUT)
    }

    /// Dialling peers: trust only the cluster CA, present the node certificate.
    pub fn peer_client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca())
            .identity(self.identity())
            .timeout(TLS_HANDSHAKE_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::certs::Ca;

    fn refusal(ca: &str, cert: &str, key: &str, id: u64) -> (&'static str, String) {
        match NodeTls::from_pem(ca.into(), cert.into(), key.into(), id) {
            Ok(_) => panic!("accepted for node {id}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_node_starts_only_with_its_own_certificate() {
        let ca = Ca::new("t").unwrap();
        let hosts = vec!["127.0.0.1".to_string()];
        let n1 = ca.node_cert(1, &hosts).unwrap();
        let client = ca.client_cert("referral-svc").unwrap();
        let ok = NodeTls::from_pem(ca.pem.cert.clone(), n1.cert.clone(), n1.key.clone(), 1);
        assert!(ok.is_ok());
        let (field, why) = refusal(&ca.pem.cert, &n1.cert, &n1.key, 2);
        assert_eq!(field, "tls.cert");
        assert!(why.contains("node 1's, this node is id 2"), "{why}");
        let (field, why) = refusal(&ca.pem.cert, &client.cert, &client.key, 1);
        assert_eq!(field, "tls.cert");
        assert!(why.contains("names no node"), "{why}");
        assert_eq!(refusal("junk", &n1.cert, &n1.key, 1).0, "tls.ca");
        assert_eq!(refusal(&ca.pem.cert, &n1.key, &n1.key, 1).0, "tls.cert");
        assert_eq!(refusal(&ca.pem.cert, &n1.cert, &n1.cert, 1).0, "tls.key");
        // Server configs build from what was loaded.
        let tls = ok.unwrap();
        assert!(tonic::transport::Server::builder()
            .tls_config(tls.peer_server())
            .is_ok());
    }

    #[test]
    fn a_missing_file_is_named_by_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("n1.pem"),
            key: dir.path().join("n1.key"),
        };
        let e = NodeTls::load(&files, 1).unwrap_err().to_string();
        assert!(e.contains("tls.ca = ") && e.contains("ca.pem"), "{e}");
        let ca = Ca::new("t").unwrap();
        std::fs::write(&files.ca, &ca.pem.cert).unwrap();
        let e = NodeTls::load(&files, 1).unwrap_err().to_string();
        assert!(e.contains("tls.cert = "), "{e}");
    }
}
