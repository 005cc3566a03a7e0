//! Credentials of a cluster, made offline: what `ninety cluster init` generates by default
//! (the cluster CA, one certificate per node, the operator token and a hospital token),
//! `ninety cluster cert`
//! (a certificate from an existing CA: a new node, a rotation, a client service) and
//! `ninety cluster token` (a new bearer token and the `[[auth.tokens]]` stanza naming it).
//!
//! Owns the files and their modes (keys and tokens 0600) and the config text that names
//! them; the certificates themselves come from `ninety_cluster::security::certs` (rcgen).
//! Nothing here contacts a node.

use super::table;
use super::{emit, Failure, Global};
use anyhow::Context;
use clap::Args;
use ninety_cluster::security::certs::{self, Ca, Pem};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The roles a node config grants (see the node config's `[[auth.tokens]]`).
pub const ROLES: [&str; 5] = ["reader", "platform", "referral", "operator", "hospital"];
/// The CA certificate's file name in the TLS directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file name in the TLS directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// The operator token's file name in the init directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";
/// The name (and role) of the credential `cluster init` makes.
pub const OPERATOR: &str = "operator";
/// The hospital token's file name in the init directory.
pub const HOSPITAL_TOKEN_FILE: &str = "hospital.token";
/// The name (and role) of the hospital-system credential `cluster init` makes, so a fresh
/// cluster's hospitals can keep their capacity true (the Capacity service).
pub const HOSPITAL: &str = "hospital";
/// Longest credential name (a token's `name`; a client certificate's CN has the same cap).
pub const NAME_CHARS_MAX: usize = certs::CLIENT_NAME_CHARS_MAX;

/// `ninety cluster cert`: a certificate from an existing CA.
#[derive(Args, Debug)]
pub struct CertArgs {
    /// The directory holding the CA (`ca.pem`, `ca.key`), e.g. the `tls/` of `cluster init`.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: PathBuf,
    /// A node certificate for this node id (names it as `urn:ninety:node:ID`).
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "client",
        required_unless_present = "client"
    )]
    pub node: Option<u64>,
    /// The hosts (IP or DNS name) the node is reached at: the hosts of its `listen` and
    /// `peer_listen` (localhost, 127.0.0.1 and ::1 are always included).
    #[arg(long = "host", value_name = "HOST", requires = "node")]
    pub hosts: Vec<String>,
    /// A client certificate whose subject CN is NAME (a node config's `[[auth.certs]]`).
    #[arg(long, value_name = "NAME")]
    pub client: Option<String>,
    /// Roles for the printed `[[auth.certs]]` stanza (--client; default reader).
    #[arg(long = "role", value_name = "ROLE", requires = "client")]
    pub roles: Vec<String>,
    /// Directory to write NAME.pem / NAME.key (default: --ca-dir).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing certificate or key (a rotation).
    #[arg(long)]
    pub force: bool,
}

/// `ninety cluster token`: a new bearer token.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The token's name in the node configs and the audit log (e.g. ops-alice).
    #[arg(long)]
    pub name: String,
    /// A role the token holds (repeat for several): reader, platform, referral, operator,
    /// hospital.
    #[arg(long = "role", value_name = "ROLE", required = true)]
    pub roles: Vec<String>,
    /// Where to write the token (mode 0600). Default: NAME.token in the current directory.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing token file.
    #[arg(long)]
    pub force: bool,
}

/// What `cluster init` generated for one node, to name in its config.
pub struct NodeTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What `cluster init` generated for the cluster.
pub struct InitMaterial {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Per founding node, in the order given.
    pub nodes: Vec<NodeTls>,
    pub token_file: PathBuf,
    pub token_sha256: String,
    /// The hospital token (role `hospital`) and its hash.
    pub hospital_token_file: PathBuf,
    pub hospital_token_sha256: String,
}

/// A TOML basic string: `s` quoted, with `\` and `"` and control characters escaped.
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes a file only its owner may read (0600 on Unix), also when it already existed.
pub fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        // An existing file keeps its mode on open: tighten it before writing the secret.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", path.display()))?;
        }
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn write_public(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Refuses to replace `paths` unless `force`, naming the first that exists and `flag`.
fn refuse_overwrite(paths: &[&Path], force: bool, what: &str) -> Result<(), Failure> {
    if force {
        return Ok(());
    }
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(Failure::Usage(format!(
            "{} exists: {what} (use --force to replace it)",
            p.display()
        ))),
        None => Ok(()),
    }
}

/// A role list checked against [`ROLES`] (the error names `--role`).
fn check_roles(roles: &[String]) -> Result<(), Failure> {
    if let Some(r) = roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        return Err(Failure::Usage(format!(
            "--role {r:?}: not a role (one of {})",
            ROLES.join(", ")
        )));
    }
    Ok(())
}

/// A credential name: 1 to [`NAME_CHARS_MAX`] of `A-Z a-z 0-9 - _ . @` (as a certificate CN).
fn check_name(flag: &str, name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.chars().count() <= NAME_CHARS_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Failure::Usage(format!(
            "{flag} {name:?}: 1 to {NAME_CHARS_MAX} of A-Z a-z 0-9 - _ . @"
        )))
    }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The `[[auth.tokens]]` stanza naming a token by its hash.
pub fn token_stanza(name: &str, roles: &[String], sha256: &str) -> String {
    format!(
        "[[auth.tokens]]\nname = {}\nroles = {}\nsha256 = {}\n",
        toml_str(name),
        toml_list(roles),
        toml_str(sha256)
    )
}

/// The `[tls]` table of a node config.
pub fn tls_stanza(ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "[tls]\nca = {}\ncert = {}\nkey = {}\n",
        toml_str(&ca.display().to_string()),
        toml_str(&cert.display().to_string()),
        toml_str(&key.display().to_string())
    )
}

/// The host part of `host:port` (`[::1]:7001` → `::1`).
fn host_of(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    }
}

/// The files `cluster init` will write into `tls_dir` and `dir` (checked before any write).
pub fn init_paths(dir: &Path, tls_dir: &Path, ids: &[u64]) -> Vec<PathBuf> {
    let mut paths = vec![
        tls_dir.join(CA_CERT_FILE),
        tls_dir.join(CA_KEY_FILE),
        dir.join(OPERATOR_TOKEN_FILE),
        dir.join(HOSPITAL_TOKEN_FILE),
    ];
    for id in ids {
        paths.push(tls_dir.join(format!("node-{id}.pem")));
        paths.push(tls_dir.join(format!("node-{id}.key")));
    }
    paths
}

/// Refuses to replace an existing CA (or any credential file) unless `force`: a new CA
/// would lock every node and client of a running cluster out.
pub fn refuse_existing_ca(
    dir: &Path,
    tls_dir: &Path,
    ids: &[u64],
    force: bool,
) -> Result<(), Failure> {
    let paths = init_paths(dir, tls_dir, ids);
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    refuse_overwrite(
        &refs,
        force,
        "a cluster's credentials are already there; a new CA would lock its nodes and clients out",
    )
}

/// Generates the cluster's CA, each founding node's certificate (its SANs: the hosts of its
/// addresses: client and peer, and in containers also the published loopback address),
/// the operator token and the hospital token; writes them (keys and tokens 0600).
pub fn init_material(
    cluster_name: &str,
    dir: &Path,
    tls_dir: &Path,
    nodes: &[(u64, Vec<String>)],
) -> Result<InitMaterial, Failure> {
    let cert_failed = |e: ninety_cluster::error::Error| Failure::Other(anyhow::anyhow!("{e}"));
    std::fs::create_dir_all(tls_dir).with_context(|| format!("creating {}", tls_dir.display()))?;
    let ca = Ca::new(cluster_name).map_err(cert_failed)?;
    let ca_cert = tls_dir.join(CA_CERT_FILE);
    let ca_key = tls_dir.join(CA_KEY_FILE);
    write_private(&ca_key, &ca.pem.key)?;
    write_public(&ca_cert, &ca.pem.cert)?;
    let mut out = Vec::new();
    for (id, addrs) in nodes {
        let mut hosts: Vec<String> = Vec::new();
        for h in addrs.iter().map(|a| host_of(a)) {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        let pem = ca.node_cert(*id, &hosts).map_err(cert_failed)?;
        out.push(write_pair(tls_dir, &format!("node-{id}"), &pem)?);
    }
    let (token_file, token_sha256) = new_token_file(&dir.join(OPERATOR_TOKEN_FILE))?;
    let (hospital_token_file, hospital_token_sha256) =
        new_token_file(&dir.join(HOSPITAL_TOKEN_FILE))?;
    Ok(InitMaterial {
        ca_cert,
        ca_key,
        nodes: out,
        token_file,
        token_sha256,
        hospital_token_file,
        hospital_token_sha256,
    })
}

/// Writes a new token to `path` (0600); the path and the token's SHA-256.
fn new_token_file(path: &Path) -> Result<(PathBuf, String), Failure> {
    let token = certs::new_token().map_err(|e| Failure::Other(anyhow::anyhow!("{e}")))?;
    write_private(path, &format!("{token}\n"))?;
    Ok((path.to_path_buf(), certs::token_sha256(&token)))
}

/// Writes `stem.pem` and `stem.key` (0600) into `dir`.
fn write_pair(dir: &Path, stem: &str, pem: &Pem) -> Result<NodeTls, Failure> {
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    write_private(&key, &pem.key)?;
    write_public(&cert, &pem.cert)?;
    Ok(NodeTls { cert, key })
}

/// Loads the CA of `ca_dir` (its `ca.pem` and `ca.key`), naming `--ca-dir` on failure.
fn load_ca(ca_dir: &Path) -> Result<Ca, Failure> {
    let read = |name: &str| {
        let p = ca_dir.join(name);
        std::fs::read_to_string(&p)
            .map_err(|e| Failure::Usage(format!("--ca-dir: {}: {e}", p.display())))
    };
    let (cert, key) = (read(CA_CERT_FILE)?, read(CA_KEY_FILE)?);
    Ca::from_pem(&cert, &key)
        .map_err(|e| Failure::Usage(format!("--ca-dir {}: {e}", ca_dir.display())))
}

/// `ninety cluster cert`.
pub fn cert(g: &Global, a: CertArgs) -> Result<(), Failure> {
    check_roles(&a.roles)?;
    if let Some(name) = &a.client {
        check_name("--client", name)?;
    }
    if a.node == Some(0) {
        return Err(Failure::Usage("--node 0: node ids start at 1".into()));
    }
    let ca = load_ca(&a.ca_dir)?;
    // Absolute: the printed [tls] stanza goes into a config read from anywhere.
    let ca_dir = std::path::absolute(&a.ca_dir).context("current directory")?;
    let out = match &a.out {
        Some(o) => std::path::absolute(o).context("current directory")?,
        None => ca_dir.clone(),
    };
    let (stem, pem) = match (&a.node, &a.client) {
        (Some(id), _) => (format!("node-{id}"), ca.node_cert(*id, &a.hosts)),
        (None, Some(name)) => (name.clone(), ca.client_cert(name)),
        (None, None) => return Err(Failure::Usage("give --node ID or --client NAME".into())),
    };
    let (cert_path, key_path) = (
        out.join(format!("{stem}.pem")),
        out.join(format!("{stem}.key")),
    );
    refuse_overwrite(
        &[&cert_path, &key_path],
        a.force,
        "a certificate was issued before",
    )?;
    let pem = pem.map_err(|e| Failure::Usage(e.to_string()))?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let files = write_pair(&out, &stem, &pem)?;
    let ca_cert = ca_dir.join(CA_CERT_FILE);
    let stanza = match &a.client {
        Some(name) => {
            let roles = if a.roles.is_empty() {
                vec!["reader".to_string()]
            } else {
                a.roles.clone()
            };
            format!(
                "[[auth.certs]]\nname = {}\nroles = {}\n",
                toml_str(name),
                toml_list(&roles)
            )
        }
        None => tls_stanza(&ca_cert, &files.cert, &files.key),
    };
    let human = format!(
        "{}\n{}\n{stanza}",
        table::record(&[
            ("certificate", files.cert.display().to_string()),
            ("key (0600)", files.key.display().to_string()),
            ("ca", ca_cert.display().to_string()),
        ]),
        match &a.client {
            Some(_) =>
                "add to every node config (the roles are yours to choose), then restart the nodes:",
            None => "the node config's [tls] (restart the node to use a rotated certificate):",
        },
    );
    emit(
        g,
        json!({ "cert": files.cert, "key": files.key, "ca": ca_cert, "stanza": stanza }),
        human,
    );
    Ok(())
}

/// `ninety cluster token`.
pub fn token(g: &Global, a: TokenArgs) -> Result<(), Failure> {
    check_name("--name", &a.name)?;
    check_roles(&a.roles)?;
    let path = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.token", a.name)));
    refuse_overwrite(&[&path], a.force, "a token file")?;
    let token = certs::new_token().map_err(|e| Failure::Other(anyhow::anyhow!("{e}")))?;
    write_private(&path, &format!("{token}\n"))?;
    let sha = certs::token_sha256(&token);
    let stanza = token_stanza(&a.name, &a.roles, &sha);
    let human = format!(
        "token written to {} (0600): hand it to its holder, keep it out of configs and logs\n\
         add to every node config, then restart the nodes:\n\n{stanza}\n\
         call with: ninety cluster status --token-file {} --cacert ... (or NINETY_TOKEN_FILE)\n",
        path.display(),
        path.display()
    );
    emit(
        g,
        json!({ "token_file": path, "name": a.name, "roles": a.roles, "sha256": sha, "stanza": stanza }),
        human,
    );
    Ok(())
}

/// What a node config's security settings are, for `cluster init --config`: lines for the
/// table, a JSON object, and warnings (a file missing, a key others may read).
pub fn describe_config(
    text: &str,
) -> (Vec<(&'static str, String)>, serde_json::Value, Vec<String>) {
    let doc: toml::Table = toml::from_str(text).unwrap_or_default();
    let insecure = doc
        .get("insecure")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    let mut tls_json = serde_json::Value::Null;
    if let Some(tls) = doc.get("tls").and_then(toml::Value::as_table) {
        let mut files = serde_json::Map::new();
        for field in ["ca", "cert", "key"] {
            let path = tls
                .get(field)
                .and_then(toml::Value::as_str)
                .unwrap_or_default();
            lines.push((field, path.to_string()));
            files.insert(field.into(), json!(path));
            let p = Path::new(path);
            if !p.is_file() {
                warnings.push(format!("tls.{field}: no file {path}"));
            } else if field == "key" && others_may_read(p) {
                warnings.push(format!("tls.key: {path} is readable by others (chmod 600)"));
            }
        }
        tls_json = serde_json::Value::Object(files);
    }
    let names = |kind: &str| -> Vec<String> {
        let auth = doc.get("auth").and_then(toml::Value::as_table);
        let list = auth
            .and_then(|a| a.get(kind))
            .and_then(toml::Value::as_array);
        list.map_or(Vec::new(), |l| {
            l.iter()
                .filter_map(|e| {
                    e.get("name")
                        .and_then(toml::Value::as_str)
                        .map(str::to_string)
                })
                .collect()
        })
    };
    let (tokens, certs) = (names("tokens"), names("certs"));
    let security = match (tls_json.is_null(), insecure) {
        (_, true) => "insecure: no credentials needed, every caller has every role",
        (false, false) => "TLS on both listeners; callers need a listed token or certificate",
        (true, false) => "no TLS (loopback only); callers need a listed token",
    };
    lines.insert(0, ("security", security.to_string()));
    lines.push((
        "tokens",
        if tokens.is_empty() {
            "-".into()
        } else {
            tokens.join(", ")
        },
    ));
    lines.push((
        "client certs",
        if certs.is_empty() {
            "-".into()
        } else {
            certs.join(", ")
        },
    ));
    if !insecure && tokens.is_empty() && certs.is_empty() {
        warnings.push("no [[auth.tokens]] or [[auth.certs]]: every call but health is refused (UNAUTHENTICATED)".into());
    }
    let out =
        json!({ "insecure": insecure, "tls": tls_json, "tokens": tokens, "client_certs": certs });
    (lines, out, warnings)
}

/// Whether a file's mode lets its group or others read it (Unix; elsewhere: no).
fn others_may_read(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(toml_str("x\ny"), "\"x\\u000Ay\"");
        let parsed: toml::Value =
            toml::from_str(&format!("k = {}", toml_str("C:\\a \"b\"\t"))).expect("valid TOML");
        assert_eq!(parsed["k"].as_str(), Some("C:\\a \"b\"\t"));
    }

    #[test]
    fn hosts_come_out_of_addresses() {
        assert_eq!(host_of("127.0.0.1:7001"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7001"), "::1");
        assert_eq!(host_of("db1.example:7001"), "db1.example");
    }
}
