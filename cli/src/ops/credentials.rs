//! How the CLI authenticates to a cluster: the TLS and token flags every command that talks
//! to nodes takes (`--cacert`, `--cert`, `--key`, `--token-file`, and their environment
//! variables), read into the client's [`ClientTls`] and bearer token.
//!
//! Owns only the reading and checking of those files; the client crate sends them, the
//! node config decides what they are worth. The token itself is never a flag (it would be
//! visible in `ps`): a file, or the environment variable `NINETY_TOKEN`.

use clap::Args;
use ninety_client::ClientTls;
use std::path::{Path, PathBuf};

use super::Failure;

/// The environment variable naming the cluster CA file (`--cacert`).
pub const CACERT_ENV: &str = "NINETY_CACERT";
/// The environment variable naming the client certificate file (`--cert`).
pub const CERT_ENV: &str = "NINETY_CERT";
/// The environment variable naming the client key file (`--key`).
pub const KEY_ENV: &str = "NINETY_KEY";
/// The environment variable holding the token itself.
pub const TOKEN_ENV: &str = "NINETY_TOKEN";
/// The environment variable naming the token file (`--token-file`).
pub const TOKEN_FILE_ENV: &str = "NINETY_TOKEN_FILE";
/// Largest credential file read (a certificate chain, a key or a token), bytes.
pub const CREDENTIAL_FILE_BYTES_MAX: u64 = 1 << 20;

/// TLS and token options shared by every command that calls a cluster.
#[derive(Args, Clone, Debug, Default)]
pub struct Credentials {
    /// The cluster CA certificate (PEM): call the nodes over TLS and verify them with it.
    /// Default: $NINETY_CACERT.
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// A client certificate (PEM) signed by the cluster CA, for callers listed in a
    /// node's [[auth.certs]]; needs --key. Default: $NINETY_CERT.
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM, PKCS#8) of --cert. Default: $NINETY_KEY.
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// A file holding a bearer token (sent as `authorization: Bearer ...`).
    /// Default: $NINETY_TOKEN_FILE, else the token in $NINETY_TOKEN.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// What the credentials flags resolve to (no `Debug`: it holds the token).
#[derive(Clone, Default)]
pub struct Resolved {
    pub tls: Option<ClientTls>,
    pub token: Option<String>,
}

/// The flag's value, else the environment variable's (empty counts as unset).
fn flag_or_env(flag: &Option<PathBuf>, env: &str) -> Option<PathBuf> {
    flag.clone().or_else(|| {
        std::env::var_os(env)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// A credential file's text, or a usage error naming the flag and the path.
fn read(flag: &str, path: &Path) -> Result<String, Failure> {
    let bad = |why: String| Failure::Usage(format!("{flag} {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > CREDENTIAL_FILE_BYTES_MAX {
        return Err(bad(format!(
            "{} bytes, more than {CREDENTIAL_FILE_BYTES_MAX}",
            meta.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))
}

/// Whether `host:port` names this machine (127.0.0.0/8, ::1 or `localhost`).
pub fn is_loopback(addr: &str) -> bool {
    let bare = addr
        .trim()
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    match bare.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().is_loopback(),
        Err(_) => bare.rsplit_once(':').is_some_and(|(h, _)| h == "localhost"),
    }
}

/// A PEM file's text if it holds a `marker` block (`CERTIFICATE`, `PRIVATE KEY`).
fn read_pem(flag: &str, path: &Path, marker: &str) -> Result<String, Failure> {
    let text = read(flag, path)?;
    if !text.contains(&format!("{marker}-----")) {
        return Err(Failure::Usage(format!(
            "{flag} {}: not a PEM {} (no BEGIN {marker} line)",
            path.display(),
            marker.to_lowercase()
        )));
    }
    Ok(text)
}

impl Credentials {
    /// Reads the files the flags (or their environment variables) name.
    pub fn resolve(&self) -> Result<Resolved, Failure> {
        let cacert = flag_or_env(&self.cacert, CACERT_ENV);
        let cert = flag_or_env(&self.cert, CERT_ENV);
        let key = flag_or_env(&self.key, KEY_ENV);
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(Failure::Usage(format!(
                    "--cert needs --key (or ${KEY_ENV}): the certificate's private key"
                )))
            }
            (None, Some(_)) => {
                return Err(Failure::Usage(format!(
                    "--key needs --cert (or ${CERT_ENV}): the certificate of that key"
                )))
            }
            (Some(c), Some(k)) => Some((
                read_pem("--cert", &c, "CERTIFICATE")?,
                read_pem("--key", &k, "PRIVATE KEY")?,
            )),
        };
        let tls = match cacert {
            Some(ca) => Some(ClientTls {
                ca_pem: read_pem("--cacert", &ca, "CERTIFICATE")?,
                identity,
                domain: None,
            }),
            None if identity.is_some() => {
                return Err(Failure::Usage(format!(
                    "--cert needs --cacert (or ${CACERT_ENV}): a client certificate is only \
                     sent over TLS, which needs the cluster CA"
                )))
            }
            None => None,
        };
        Ok(Resolved {
            tls,
            token: self.token()?,
        })
    }

    /// The token: from --token-file / $NINETY_TOKEN_FILE, else $NINETY_TOKEN.
    fn token(&self) -> Result<Option<String>, Failure> {
        if let Some(path) = flag_or_env(&self.token_file, TOKEN_FILE_ENV) {
            let text = read("--token-file", &path)?;
            let token = text.trim();
            if token.is_empty() {
                return Err(Failure::Usage(format!(
                    "--token-file {}: the file is empty",
                    path.display()
                )));
            }
            return Ok(Some(token.to_string()));
        }
        Ok(std::env::var(TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback("127.0.0.1:7001"));
        assert!(is_loopback("[::1]:7001"));
        assert!(is_loopback("localhost:7001"));
        assert!(is_loopback("http://127.0.0.2:1"));
        assert!(!is_loopback("10.0.0.1:7001"));
        assert!(!is_loopback("db1.example:7001"));
    }
}
