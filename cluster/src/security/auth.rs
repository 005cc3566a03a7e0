//! Authentication and authorisation of the client listener: who calls, and may they.
//!
//! Owns [`Authenticator`] (the credentials of `[auth]`) and [`AuthLayer`], the tower layer
//! on the client server (never on the peer server). For every request the layer, before
//! any handler runs and so before any work:
//!
//! 1. classifies the path (`security::roles::classify`): `grpc.health.v1.Health` is
//!    public; a `ninety.v1` method needs the access its line in `roles::METHODS` says;
//!    anything else (reflection, an unknown path, which tonic then answers
//!    `UNIMPLEMENTED`) needs an authenticated caller;
//! 2. identifies the caller: an `authorization: Bearer <token>` header whose SHA-256 is
//!    listed in `[[auth.tokens]]` (a token that is given but not listed is refused, never
//!    passed over for the certificate); else the verified client certificate of the TLS
//!    connection, whose subject CN is listed in `[[auth.certs]]`; else, when `[auth]` lists
//!    nothing and `insecure = true`, "anonymous" with every role; else nobody:
//!    `UNAUTHENTICATED`;
//! 3. authorises: a caller without the method's role gets `PERMISSION_DENIED`.
//!
//! Bearer tokens fit the gRPC ecosystem (grpcurl `-H`, every gRPC client's metadata, a
//! secret manager's file) and are revocable by editing one line; client certificates fit
//! services that already hold a certificate from the cluster's CA. Tokens are stored as
//! SHA-256 only: a node's config never holds a usable secret. A token is 32 random bytes, so
//! an unsalted hash is not open to guessing.
//!
//! The granted caller travels to the handlers as a request extension ([`Caller`]); the
//! audit record of an audited call as a task-local (`security::audit`). Refusals are
//! audited too.

use crate::error::Error;
use crate::runtime::config::AuthConfig;
use crate::security::audit::{self, AuditLog, Entry};
use crate::security::roles::{self, PathClass, Role, Roles};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codegen::{http, Service};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

/// Name of the caller when `insecure = true` and `[auth]` lists nobody.
pub const ANONYMOUS: &str = "anonymous";

/// An authenticated caller, in the request extensions of every granted call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The credential's name (`[[auth.tokens]].name`, a certificate's CN, or "anonymous").
    pub name: Arc<str>,
    /// Its roles.
    pub roles: Roles,
}

/// The caller of a granted call, as the layer left it for the handler (None on a public
/// path, or on a server without the layer).
pub fn caller<T>(request: &tonic::Request<T>) -> Option<&Caller> {
    request.extensions().get::<Caller>()
}

/// The credentials a node accepts.
#[derive(Debug, Default)]
pub struct Authenticator {
    /// SHA-256 of a token → its caller.
    tokens: HashMap<[u8; 32], Caller>,
    /// Client certificate CN → its caller.
    certs: HashMap<String, Caller>,
    /// The caller of a request without credentials, when `insecure` and nothing is listed.
    anonymous: Option<Caller>,
}

fn listed_caller(name: &str, roles: &[String]) -> Caller {
    Caller {
        name: Arc::from(name),
        roles: roles.iter().filter_map(|r| Role::parse(r)).collect(),
    }
}

/// 64 lowercase hex digits as 32 bytes.
fn hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

impl Authenticator {
    /// The credentials of `[auth]` (checked again here: every error names the field).
    pub fn new(cfg: &AuthConfig, insecure: bool) -> Result<Authenticator, Error> {
        cfg.check()?;
        let mut tokens = HashMap::new();
        for (i, t) in cfg.tokens.iter().enumerate() {
            let hash = hex32(&t.sha256).ok_or_else(|| {
                Error::Config(format!("auth.tokens[{i}].sha256: must be 64 lowercase hex"))
            })?;
            tokens.insert(hash, listed_caller(&t.name, &t.roles));
        }
        let certs = cfg
            .certs
            .iter()
            .map(|c| (c.name.clone(), listed_caller(&c.name, &c.roles)))
            .collect();
        let anonymous = (insecure && cfg.is_empty()).then(|| Caller {
            name: Arc::from(ANONYMOUS),
            roles: Roles::all(),
        });
        Ok(Authenticator {
            tokens,
            certs,
            anonymous,
        })
    }

    /// Whether callers without credentials get every role (say so at start).
    pub fn is_anonymous(&self) -> bool {
        self.anonymous.is_some()
    }

    /// Who sends a request with `headers` over a connection whose verified client
    /// certificate (leaf first) is `cert`.
    pub fn identify(
        &self,
        headers: &http::HeaderMap,
        cert: Option<&[u8]>,
    ) -> Result<Caller, Status> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            return self.token_caller(value);
        }
        if let Some(der) = cert {
            let named = crate::security::identity::named(der);
            let cn = named.common_name.clone().ok().flatten().ok_or_else(|| {
                Status::unauthenticated("the client certificate has no subject common name")
            })?;
            return self.certs.get(&cn).cloned().ok_or_else(|| {
                Status::unauthenticated(format!(
                    "client certificate CN {} is not listed in [[auth.certs]]",
                    crate::server::convert::echo(&cn)
                ))
            });
        }
        self.anonymous.clone().ok_or_else(|| {
            Status::unauthenticated(
                "no credentials: send `authorization: Bearer <token>` metadata or a client \
                 certificate",
            )
        })
    }

    fn token_caller(&self, value: &http::HeaderValue) -> Result<Caller, Status> {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                Status::unauthenticated("authorization metadata must be `Bearer <token>`")
            })?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.tokens
            .get(&hash)
            .cloned()
            .ok_or_else(|| Status::unauthenticated("unknown bearer token"))
    }

    /// The caller of a request to `path`, or the refusal (`UNAUTHENTICATED`,
    /// `PERMISSION_DENIED`) with the caller when known. `Ok(None)`: a public path.
    pub fn decide(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        cert: Option<&[u8]>,
    ) -> Result<Option<Caller>, (Status, Option<Caller>)> {
        let class = roles::classify(path);
        if class == PathClass::Public {
            return Ok(None);
        }
        let caller = self.identify(headers, cert).map_err(|s| (s, None))?;
        match class {
            PathClass::Method(access) if !access.allows(caller.roles) => {
                let needs = access.needs();
                let status = Status::permission_denied(format!(
                    "caller {:?} (roles {:?}) may not call {}: it needs {needs}",
                    &*caller.name,
                    caller.roles.names(),
                    path.trim_start_matches('/'),
                ));
                Err((status, Some(caller)))
            }
            _ => Ok(Some(caller)),
        }
    }
}

/// The peer address and verified client certificate (leaf) of a request's connection.
fn connection(ext: &http::Extensions) -> (Option<SocketAddr>, Option<Vec<u8>>) {
    if let Some(tls) = ext.get::<TlsConnectInfo<TcpConnectInfo>>() {
        let cert = tls
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()));
        return (tls.get_ref().remote_addr(), cert);
    }
    (
        ext.get::<TcpConnectInfo>().and_then(|c| c.remote_addr()),
        None,
    )
}

/// The tower layer of [`Auth`] (for the client server's `Server::builder().layer`).
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
    audit: AuditLog,
}

impl AuthLayer {
    /// Checks calls against `auth` and audits them to `audit`.
    pub fn new(auth: Arc<Authenticator>, audit: AuditLog) -> AuthLayer {
        AuthLayer { auth, audit }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            auth: self.auth.clone(),
            audit: self.audit.clone(),
        }
    }
}

/// Refuses unauthenticated and unauthorised calls before they reach a handler, and audits
/// (module doc).
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    auth: Arc<Authenticator>,
    audit: AuditLog,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for Auth<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<http::Response<R>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        let (peer, cert) = connection(request.extensions());
        let caller = match self.auth.decide(&path, request.headers(), cert.as_deref()) {
            Ok(caller) => caller,
            Err((status, caller)) => {
                let who = caller.map(|c| (c.name, c.roles));
                Entry::new(&self.audit, who, &path, peer).set_outcome(status.code());
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        };
        let entry = caller.as_ref().filter(|_| roles::audited(&path)).map(|c| {
            Arc::new(Entry::new(
                &self.audit,
                Some((c.name.clone(), c.roles)),
                &path,
                peer,
            ))
        });
        if let Some(c) = caller {
            request.extensions_mut().insert(c);
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = audit::scope(entry.clone(), answer).await?;
            if let Some(e) = entry {
                let code = Status::from_header_map(response.headers())
                    .map_or(tonic::Code::Ok, |s| s.code());
                e.set_outcome(code);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::{CertEntry, TokenEntry};

    fn sha(token: &str) -> String {
        crate::security::certs::token_sha256(token)
    }

    fn config() -> AuthConfig {
        AuthConfig {
            tokens: vec![
                TokenEntry {
                    name: "ops".into(),
                    roles: vec!["operator".into()],
                    sha256: sha("secret-ops"),
                },
                TokenEntry {
                    name: "both".into(),
                    roles: vec!["platform".into(), "referral".into()],
                    sha256: sha("secret-both"),
                },
            ],
            certs: vec![CertEntry {
                name: "referral-svc".into(),
                roles: vec!["referral".into()],
            }],
        }
    }

    fn headers(auth: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(a) = auth {
            h.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    fn code(r: Result<Option<Caller>, (Status, Option<Caller>)>) -> tonic::Code {
        r.map_or_else(|(s, _)| s.code(), |_| tonic::Code::Ok)
    }

    #[test]
    fn tokens_are_matched_by_their_hash() {
        let a = Authenticator::new(&config(), false).unwrap();
        let c = a
            .identify(&headers(Some("Bearer secret-ops")), None)
            .unwrap();
        assert_eq!(&*c.name, "ops");
        assert!(c.roles.has(Role::Operator) && !c.roles.has(Role::Referral));
        let c = a
            .identify(&headers(Some("bearer  secret-both ")), None)
            .unwrap();
        assert!(c.roles.has(Role::Platform) && c.roles.has(Role::Referral));
        for bad in [
            "Bearer secret-op",
            "Bearer",
            "Basic secret-ops",
            "secret-ops",
            "Bearer ",
        ] {
            let s = a.identify(&headers(Some(bad)), None).unwrap_err();
            assert_eq!(s.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        // The hash text itself is not a token.
        let s = a
            .identify(
                &headers(Some(&format!("Bearer {}", sha("secret-ops")))),
                None,
            )
            .unwrap_err();
        assert_eq!(s.code(), tonic::Code::Unauthenticated);
        let s = a.identify(&headers(None), None).unwrap_err();
        assert!(s.message().contains("no credentials"), "{s:?}");
    }

    #[test]
    fn decisions_follow_the_table() {
        let a = Authenticator::new(&config(), false).unwrap();
        let ops = headers(Some("Bearer secret-ops"));
        let none = headers(None);
        let snapshot = "/ninety.v1.Admin/SnapshotNow";
        let hold = "/ninety.v1.BedHolds/HoldBed";
        assert_eq!(code(a.decide(snapshot, &ops, None)), tonic::Code::Ok);
        assert_eq!(
            code(a.decide(hold, &ops, None)),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            code(a.decide(hold, &none, None)),
            tonic::Code::Unauthenticated
        );
        let health = "/grpc.health.v1.Health/Check";
        assert_eq!(a.decide(health, &none, None).unwrap(), None);
        let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert_eq!(
            code(a.decide(reflection, &none, None)),
            tonic::Code::Unauthenticated
        );
        assert_eq!(code(a.decide(reflection, &ops, None)), tonic::Code::Ok);
        assert_eq!(
            code(a.decide("/ninety.v1.X/Y", &none, None)),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn anonymous_only_when_insecure_and_nothing_is_listed() {
        let none = headers(None);
        let hold = "/ninety.v1.BedHolds/HoldBed";
        let open = Authenticator::new(&AuthConfig::default(), true).unwrap();
        assert!(open.is_anonymous());
        let c = open.decide(hold, &none, None).unwrap().unwrap();
        assert_eq!(&*c.name, ANONYMOUS);
        let closed = Authenticator::new(&AuthConfig::default(), false).unwrap();
        assert_eq!(
            code(closed.decide(hold, &none, None)),
            tonic::Code::Unauthenticated
        );
        let listed = Authenticator::new(&config(), true).unwrap();
        assert!(!listed.is_anonymous());
        assert_eq!(
            code(listed.decide(hold, &none, None)),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn client_certificates_are_matched_by_common_name() {
        let a = Authenticator::new(&config(), false).unwrap();
        let cert = |cn: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let none = headers(None);
        let c = a.identify(&none, Some(&cert("referral-svc"))).unwrap();
        assert_eq!(&*c.name, "referral-svc");
        let s = a.identify(&none, Some(&cert("intruder"))).unwrap_err();
        assert_eq!(s.code(), tonic::Code::Unauthenticated);
        assert!(s.message().contains("intruder"), "{s:?}");
        // A token, when sent, decides: a listed certificate does not rescue a bad token.
        let bad = headers(Some("Bearer nope"));
        assert!(a.identify(&bad, Some(&cert("referral-svc"))).is_err());
    }
}
