//! `ninety-client`: the Rust client of a ninety cluster.
//!
//! Owns how a program talks to a cluster: which node to call, what to do when that node is
//! not the leader or not reachable, and when a call may be sent again. The CLI, the benches
//! and the simulators all go through it.
//!
//! Must not contain domain rules or build requests: callers build the `ninety.v1` messages
//! (re-exported as [`pb`]) and choose their request ids. It must never invent a new request
//! id for a retry: a retry is the *same* message, so the cluster's dedup returns the first
//! answer instead of applying the action twice.
//!
//! Retry policy (per call, bounded by [`Config::max_attempts`] and [`Config::total_timeout`]):
//!
//! | answer | what the client does |
//! |---|---|
//! | `UNAVAILABLE` with `x-ninety-leader-addr` | sends the same request to that node next |
//! | `UNAVAILABLE` without a hint, transport error, `CANCELLED` | tries the next node, backing off after a full round |
//! | `DEADLINE_EXCEEDED` for one attempt | tries again (same request id) while the total timeout lasts |
//! | `RESOURCE_EXHAUSTED` | backs off (exponential, capped) and tries again |
//! | anything else (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `NOT_FOUND`, ...) | returns it at once |
//!
//! The node that answered last is remembered, so steady-state calls go straight to the leader
//! (followers would forward, at the cost of one more hop).
//!
//! Security: with [`Config::tls`] every node is called over `https://`, verified against the
//! cluster's CA (and, optionally, presenting a client certificate); with [`Config::token`]
//! every attempt carries `authorization: Bearer <token>`. Without them the client speaks
//! plain HTTP/2 without credentials (a node started with `insecure = true`).

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

pub use ninety_proto::v1 as pb;

use pb::admin_client::AdminClient;
use pb::bed_holds_client::BedHoldsClient;
use pb::capacity_client::CapacityClient;
use pb::matching_client::MatchingClient;
use pb::referrals_client::ReferralsClient;
use pb::scheduling_client::SchedulingClient;
use pb::watch_client::WatchClient;

/// Metadata key carrying the leader's client address on `UNAVAILABLE`.
pub const LEADER_ADDR_KEY: &str = "x-ninety-leader-addr";
/// Metadata key carrying the leader's node id on `UNAVAILABLE`.
pub const LEADER_ID_KEY: &str = "x-ninety-leader-id";
/// Most nodes a client may be given.
pub const NODES_MAX: usize = 64;
/// The metadata key naming a call's region (a node hosting several regions routes by it).
pub const REGION_KEY: &str = "ninety-region";
/// Longest region id, characters (the nodes' `runtime::regions::REGION_ID_CHARS_MAX`).
pub const REGION_CHARS_MAX: usize = 32;
/// The metadata key carrying the bearer token.
pub const AUTHORIZATION_KEY: &str = "authorization";
/// Longest bearer token accepted, in bytes (a generated one is 64).
pub const TOKEN_BYTES_MAX: usize = 4_096;

/// TLS towards the nodes: the CA that signed their certificates and, optionally, the
/// client's own certificate (for a node config's `[[auth.certs]]`).
#[derive(Clone)]
pub struct ClientTls {
    /// The cluster CA's certificate (PEM).
    pub ca_pem: String,
    /// The client's certificate and private key (PEM each), if it authenticates with one.
    pub identity: Option<(String, String)>,
    /// The name to verify in the nodes' certificates instead of the host of each address
    /// (e.g. `localhost` when calling a node by an address its certificate does not name).
    pub domain: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key stays out of logs.
        f.debug_struct("ClientTls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field(
                "identity",
                &self.identity.as_ref().map(|_| "<cert and key>"),
            )
            .field("domain", &self.domain)
            .finish()
    }
}

/// How the client retries and authenticates. The defaults suit an interactive client of a
/// healthy cluster without TLS.
#[derive(Clone)]
pub struct Config {
    /// Longest one attempt may take (sent to the server as `grpc-timeout`).
    pub attempt_timeout: Duration,
    /// Longest a call may take over all its attempts.
    pub total_timeout: Duration,
    /// Most attempts per call.
    pub max_attempts: u32,
    /// First back-off after a full round of nodes failed, or after `RESOURCE_EXHAUSTED`.
    pub backoff_initial: Duration,
    /// Largest back-off.
    pub backoff_max: Duration,
    /// Timeout for opening a connection to one node.
    pub connect_timeout: Duration,
    /// TLS towards the nodes (`https://`); `None`: plain HTTP/2.
    pub tls: Option<ClientTls>,
    /// Bearer token sent as `authorization: Bearer <token>` on every attempt.
    pub token: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: only whether there is one.
        f.debug_struct("Config")
            .field("attempt_timeout", &self.attempt_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            attempt_timeout: Duration::from_secs(6),
            total_timeout: Duration::from_secs(20),
            max_attempts: 16,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(1_000),
            connect_timeout: Duration::from_secs(2),
            tls: None,
            token: None,
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no node addresses given")]
    NoNodes,
    #[error("more than {NODES_MAX} node addresses")]
    TooManyNodes,
    #[error("bad node address {addr:?}: {reason}")]
    BadAddress { addr: String, reason: String },
    /// The TLS settings could not be used (a PEM that is not a certificate or key).
    #[error("tls: {field}: {reason}")]
    BadTls { field: &'static str, reason: String },
    /// The token cannot be sent in a header.
    #[error("token: {0}")]
    BadToken(String),
    /// The region is not a region id.
    #[error("region: {0}")]
    BadRegion(String),
}

/// Counters of what the client had to do, for reports and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls made through [`Client::call`] (and the typed methods).
    pub calls: u64,
    /// Attempts beyond the first, over all calls.
    pub retries: u64,
    /// Times a leader hint moved the client to another node.
    pub leader_redirects: u64,
}

struct Node {
    addr: String,
    channel: Channel,
}

struct Inner {
    config: Config,
    /// The TLS settings every endpoint uses (from `config.tls`).
    tls: Option<ClientTlsConfig>,
    /// `Bearer <token>`, attached to every attempt.
    authorization: Option<MetadataValue<Ascii>>,
    nodes: Mutex<Vec<Node>>,
    /// Index into `nodes` of the node to try first.
    preferred: AtomicUsize,
    calls: AtomicU64,
    retries: AtomicU64,
    redirects: AtomicU64,
}

/// A handle to a cluster; cheap to clone, share it between tasks.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The `ninety-region` header of every call ([`Client::with_region`]); `None`: the
    /// node's default region.
    region: Option<MetadataValue<Ascii>>,
}

/// `host:port`, `http://host:port` or `https://host:port` → the URI to dial: `https://`
/// when the client has TLS, else `http://`.
fn normalize(addr: &str, tls: bool) -> String {
    let addr = addr.trim();
    let bare = addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("https://"))
        .unwrap_or(addr);
    if tls {
        format!("https://{bare}")
    } else {
        format!("http://{bare}")
    }
}

/// A given address whose scheme contradicts the client's TLS setting is refused, so that
/// `https://` never silently falls back to plain text (and `http://` is not upgraded
/// behind the caller's back).
fn check_scheme(addr: &str, tls: bool) -> Result<(), ConfigError> {
    let reason = if tls && addr.starts_with("http://") {
        "http:// given, but TLS is configured (use host:port or https://)"
    } else if !tls && addr.starts_with("https://") {
        "https:// needs TLS: give the cluster CA (--cacert / NINETY_CACERT)"
    } else {
        return Ok(());
    };
    Err(ConfigError::BadAddress {
        addr: addr.to_string(),
        reason: reason.to_string(),
    })
}

/// The tonic TLS settings of `tls`, checked once when the client is built.
fn tls_config(tls: &ClientTls) -> Result<ClientTlsConfig, ConfigError> {
    if !tls.ca_pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError::BadTls {
            field: "ca",
            reason: "not a PEM certificate (no BEGIN CERTIFICATE line)".into(),
        });
    }
    let mut config =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(tls.ca_pem.as_bytes()));
    if let Some((cert, key)) = &tls.identity {
        if !cert.contains("-----BEGIN CERTIFICATE-----") {
            return Err(ConfigError::BadTls {
                field: "cert",
                reason: "not a PEM certificate (no BEGIN CERTIFICATE line)".into(),
            });
        }
        if !key.contains("PRIVATE KEY-----") {
            return Err(ConfigError::BadTls {
                field: "key",
                reason: "not a PEM private key (no BEGIN ... PRIVATE KEY line)".into(),
            });
        }
        config = config.identity(Identity::from_pem(cert.as_bytes(), key.as_bytes()));
    }
    if let Some(domain) = &tls.domain {
        config = config.domain_name(domain.clone());
    }
    // rustls parses the PEMs when the settings meet an endpoint: do it now, once, so a bad
    // file is a configuration error and not a failure of every call.
    let probe = Endpoint::from_static("https://localhost");
    let ca_only =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(tls.ca_pem.as_bytes()));
    probe
        .clone()
        .tls_config(ca_only)
        .map_err(|e| ConfigError::BadTls {
            field: "ca",
            reason: error_chain(&e),
        })?;
    probe
        .tls_config(config.clone())
        .map_err(|e| ConfigError::BadTls {
            field: "cert/key",
            reason: error_chain(&e),
        })?;
    Ok(config)
}

/// An error and its sources, `: `-separated (tonic's own message is only "transport error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Bearer <token>` as a header value, or why the token cannot be one.
fn bearer(token: &str) -> Result<MetadataValue<Ascii>, ConfigError> {
    if token.is_empty() {
        return Err(ConfigError::BadToken("empty".into()));
    }
    if token.len() > TOKEN_BYTES_MAX {
        return Err(ConfigError::BadToken(format!(
            "{} bytes, more than {TOKEN_BYTES_MAX}",
            token.len()
        )));
    }
    if let Some(c) = token.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(ConfigError::BadToken(format!(
            "character {c:?} is not allowed in a header (printable ASCII without spaces)"
        )));
    }
    format!("Bearer {token}")
        .parse()
        .map_err(|e| ConfigError::BadToken(format!("not a header value: {e}")))
}

fn endpoint(
    addr: &str,
    config: &Config,
    tls: Option<&ClientTlsConfig>,
) -> Result<Endpoint, ConfigError> {
    let bad = |reason: String| ConfigError::BadAddress {
        addr: addr.to_string(),
        reason,
    };
    let e = Endpoint::from_shared(normalize(addr, tls.is_some()))
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_adaptive_window(true);
    match tls {
        Some(t) => e
            .tls_config(t.clone())
            .map_err(|e| bad(format!("tls: {e}"))),
        None => Ok(e),
    }
}

/// A fresh request id: a random UUID as 32 lowercase hex digits. Make one per intended
/// action and keep it for every retry of that action.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The machine-readable refusal attached to a status by the server, if any: the
/// `ninety.v1.Rejection` inside the standard `google.rpc.Status` details (a bare `Rejection`
/// from a node of an older version is read too). The standard details beside it
/// (`BadRequest`, `ErrorInfo`, `RetryInfo`) are read with the [`ErrorDetailsExt`]
/// methods (`tonic_types::StatusExt`, re-exported here).
pub fn rejection(status: &Status) -> Option<pb::Rejection> {
    ninety_proto::status::rejection(status)
}

/// `tonic-types`' reader of the standard error details (`get_details_bad_request`,
/// `get_details_error_info`, `get_details_retry_info`, ...), for use on a `tonic::Status`.
pub use ninety_proto::status::StatusExt as ErrorDetailsExt;

/// Whether a call that failed with this status may be sent again unchanged.
pub fn is_retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::ResourceExhausted
    )
}

impl Client {
    /// A client of the nodes at `addrs` (`host:port`). Connections open lazily, so this
    /// succeeds while nodes are down.
    pub fn new<S: AsRef<str>>(addrs: &[S], config: Config) -> Result<Client, ConfigError> {
        if addrs.is_empty() {
            return Err(ConfigError::NoNodes);
        }
        if addrs.len() > NODES_MAX {
            return Err(ConfigError::TooManyNodes);
        }
        let tls = config.tls.as_ref().map(tls_config).transpose()?;
        let authorization = config.token.as_deref().map(bearer).transpose()?;
        let mut nodes = Vec::with_capacity(addrs.len());
        for a in addrs {
            let addr = a.as_ref().trim().to_string();
            check_scheme(&addr, tls.is_some())?;
            let channel = endpoint(&addr, &config, tls.as_ref())?.connect_lazy();
            nodes.push(Node { addr, channel });
        }
        Ok(Client {
            region: None,
            inner: Arc::new(Inner {
                config,
                tls,
                authorization,
                nodes: Mutex::new(nodes),
                preferred: AtomicUsize::new(0),
                calls: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                redirects: AtomicU64::new(0),
            }),
        })
    }

    /// [`Client::new`] with the default [`Config`].
    pub fn connect<S: AsRef<str>>(addrs: &[S]) -> Result<Client, ConfigError> {
        Client::new(addrs, Config::default())
    }

    /// The client's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The addresses the client knows (given ones first, then ones learnt from hints).
    pub fn addrs(&self) -> Vec<String> {
        self.lock_nodes().iter().map(|n| n.addr.clone()).collect()
    }

    /// The address the next call goes to first (the last node that answered).
    pub fn preferred_addr(&self) -> String {
        let nodes = self.lock_nodes();
        let i = self.inner.preferred.load(Ordering::Relaxed) % nodes.len();
        nodes[i].addr.clone()
    }

    /// The channel to the preferred node, for calls the client does not wrap (streams).
    pub fn channel(&self) -> Channel {
        let nodes = self.lock_nodes();
        let i = self.inner.preferred.load(Ordering::Relaxed) % nodes.len();
        nodes[i].channel.clone()
    }

    /// What the client has done so far.
    pub fn stats(&self) -> Stats {
        Stats {
            calls: self.inner.calls.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
            leader_redirects: self.inner.redirects.load(Ordering::Relaxed),
        }
    }

    /// Attaches the client's credentials (the bearer token) and its region (the
    /// `ninety-region` header) to a request the client does not send itself (streams over
    /// [`Client::channel`]).
    pub fn authorize<T>(&self, request: &mut tonic::Request<T>) {
        if let Some(value) = &self.inner.authorization {
            request
                .metadata_mut()
                .insert(AUTHORIZATION_KEY, value.clone());
        }
        if let Some(region) = &self.region {
            request.metadata_mut().insert(REGION_KEY, region.clone());
        }
    }

    /// The same client (sharing its connections, credentials and counters) with every call
    /// naming `region` in the `ninety-region` header: a node hosting several regions routes
    /// the call to that region's group. Without it, calls go to each node's default
    /// region. Refused when `region` is not a region id (1 to [`REGION_CHARS_MAX`]
    /// lowercase letters, digits, `-` or `_`).
    pub fn with_region(&self, region: &str) -> Result<Client, ConfigError> {
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if region.is_empty() || region.len() > REGION_CHARS_MAX || !region.chars().all(ok) {
            return Err(ConfigError::BadRegion(format!(
                "{region:?}: expected 1 to {REGION_CHARS_MAX} lowercase letters, digits, `-` \
                 or `_`"
            )));
        }
        let value = region
            .parse()
            .map_err(|_| ConfigError::BadRegion(format!("{region:?}")))?;
        Ok(Client {
            inner: self.inner.clone(),
            region: Some(value),
        })
    }

    /// A client of the nodes at `addrs` with `config`, naming this client's region (see
    /// [`Client::with_region`]): for tools that talk to one node at a time.
    pub fn sibling<S: AsRef<str>>(
        &self,
        addrs: &[S],
        config: Config,
    ) -> Result<Client, ConfigError> {
        let c = Client::new(addrs, config)?;
        Ok(Client {
            region: self.region.clone(),
            ..c
        })
    }

    /// The region every call names, if one was set ([`Client::with_region`]).
    pub fn region(&self) -> Option<&str> {
        self.region.as_ref().and_then(|v| v.to_str().ok())
    }

    fn lock_nodes(&self) -> std::sync::MutexGuard<'_, Vec<Node>> {
        // A poisoned lock only means another task panicked while holding it; the vector
        // is still consistent (every mutation is a single push).
        self.inner.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn node(&self, i: usize) -> (usize, Channel) {
        let nodes = self.lock_nodes();
        let i = i % nodes.len();
        (i, nodes[i].channel.clone())
    }

    /// The index of the node at `addr`, adding it if it is new (and the book has room).
    fn node_for_hint(&self, addr: &str) -> Option<usize> {
        let tls = self.inner.tls.as_ref();
        let want = normalize(addr, tls.is_some());
        let mut nodes = self.lock_nodes();
        if let Some(i) = nodes
            .iter()
            .position(|n| normalize(&n.addr, tls.is_some()) == want)
        {
            return Some(i);
        }
        if nodes.len() >= NODES_MAX {
            return None;
        }
        let channel = endpoint(addr, &self.inner.config, tls).ok()?.connect_lazy();
        nodes.push(Node {
            addr: addr.to_string(),
            channel,
        });
        Some(nodes.len() - 1)
    }

    fn backoff(&self, round: u32) -> Duration {
        let c = &self.inner.config;
        let factor = 1u32 << round.min(10);
        c.backoff_initial.saturating_mul(factor).min(c.backoff_max)
    }

    /// Sends `request` with `send` until it succeeds or fails in a way a retry cannot fix
    /// (see the module doc). Every attempt sends the same message, request id included.
    pub async fn call<Req, Resp, F, Fut>(&self, request: Req, send: F) -> Result<Resp, Status>
    where
        Req: Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let c = &self.inner.config;
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let mut index = self.inner.preferred.load(Ordering::Relaxed);
        let mut tried_since_success = 0usize;
        let mut round = 0u32;
        let mut last: Option<Status> = None;
        for attempt in 0..c.max_attempts.max(1) {
            let left = c.total_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            if attempt > 0 {
                self.inner.retries.fetch_add(1, Ordering::Relaxed);
            }
            let budget = c.attempt_timeout.min(left);
            let (i, channel) = self.node(index);
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(budget);
            self.authorize(&mut req);
            let answer = match tokio::time::timeout(budget, send(channel, req)).await {
                Ok(a) => a,
                Err(_) => Err(Status::deadline_exceeded("attempt timed out at the client")),
            };
            let status = match answer {
                Ok(resp) => {
                    self.inner.preferred.store(i, Ordering::Relaxed);
                    return Ok(resp.into_inner());
                }
                Err(s) => s,
            };
            if !is_retryable(status.code()) {
                // The node answered: it is a good node to try first next time.
                self.inner.preferred.store(i, Ordering::Relaxed);
                return Err(status);
            }
            let hint = status
                .metadata()
                .get(LEADER_ADDR_KEY)
                .and_then(|v| v.to_str().ok())
                .and_then(|a| self.node_for_hint(a))
                .filter(|h| *h != i);
            match (status.code(), hint) {
                (Code::ResourceExhausted, _) => {
                    round += 1;
                    tokio::time::sleep(self.backoff(round).min(left)).await;
                    index = i;
                }
                (_, Some(h)) => {
                    self.inner.redirects.fetch_add(1, Ordering::Relaxed);
                    index = h;
                }
                _ => {
                    index = i + 1;
                    tried_since_success += 1;
                    if tried_since_success >= self.lock_nodes().len() {
                        tried_since_success = 0;
                        round += 1;
                        let left = c.total_timeout.saturating_sub(started.elapsed());
                        tokio::time::sleep(self.backoff(round).min(left)).await;
                    }
                }
            }
            tracing::debug!(code = ?status.code(), attempt, "retrying: {}", status.message());
            last = Some(status);
        }
        Err(last.unwrap_or_else(|| Status::deadline_exceeded("total timeout reached")))
    }
}

impl Client {
    /// `Watch.Watch`: opens the change feed on the first node that answers, starting with
    /// the preferred one, and returns the stream of events. Opening is tried once per node
    /// (no deadline is set: it would bound the whole stream). The stream is not resumed for
    /// the caller: when it ends with an error, call again with `start_index` = the last
    /// event's `log_index` and `start_position` = its `position` + 1, on any node.
    pub async fn watch(
        &self,
        request: pb::WatchRequest,
    ) -> Result<tonic::Streaming<pb::WatchEvent>, Status> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let first = self.inner.preferred.load(Ordering::Relaxed);
        let mut last = None;
        // The lock is taken and dropped here: a guard in the `for` expression would be held
        // across the awaits below.
        let nodes = self.lock_nodes().len();
        for k in 0..nodes {
            let (i, channel) = self.node(first + k);
            let mut req = tonic::Request::new(request.clone());
            self.authorize(&mut req);
            match WatchClient::new(channel).watch(req).await {
                Ok(stream) => {
                    self.inner.preferred.store(i, Ordering::Relaxed);
                    return Ok(stream.into_inner());
                }
                Err(s) if s.code() == Code::Unavailable => last = Some(s),
                Err(s) => return Err(s),
            }
        }
        Err(last.unwrap_or_else(|| Status::unavailable("no node to watch on")))
    }
}

macro_rules! rpcs {
    ($($service:ident :: $method:ident($req:ty) -> $resp:ty;)*) => {
        impl Client {
            $(
                #[doc = concat!("`", stringify!($service), ".", stringify!($method),
                    "` with the client's retry policy.")]
                pub async fn $method(&self, request: $req) -> Result<$resp, Status> {
                    self.call(request, |channel, req| async move {
                        $service::new(channel)
                            .max_decoding_message_size(64 << 20)
                            .$method(req)
                            .await
                    })
                    .await
                }
            )*
        }
    };
}

rpcs! {
    BedHoldsClient::hold_bed(pb::HoldBedRequest) -> pb::BedHoldResponse;
    BedHoldsClient::confirm_hold(pb::ConfirmHoldRequest) -> pb::BedHoldResponse;
    BedHoldsClient::release_hold(pb::ReleaseHoldRequest) -> pb::BedHoldResponse;
    BedHoldsClient::get_hold(pb::GetHoldRequest) -> pb::GetHoldResponse;
    BedHoldsClient::ward_availability(pb::WardAvailabilityRequest) -> pb::WardAvailabilityResponse;
    BedHoldsClient::hold_beds(pb::HoldBedsRequest) -> pb::BedHoldResults;
    BedHoldsClient::resolve_holds(pb::ResolveHoldsRequest) -> pb::BedHoldResults;

    SchedulingClient::publish_schedule(pb::PublishScheduleRequest) -> pb::PublishScheduleResponse;
    SchedulingClient::find_slots(pb::FindSlotsRequest) -> pb::FindSlotsResponse;
    SchedulingClient::hold_slot(pb::HoldSlotRequest) -> pb::SlotBookingResponse;
    SchedulingClient::book_slot(pb::BookSlotRequest) -> pb::SlotBookingResponse;
    SchedulingClient::cancel_booking(pb::CancelBookingRequest) -> pb::SlotBookingResponse;
    SchedulingClient::join_waitlist(pb::JoinWaitlistRequest) -> pb::JoinWaitlistResponse;
    SchedulingClient::leave_waitlist(pb::LeaveWaitlistRequest) -> pb::LeaveWaitlistResponse;
    SchedulingClient::hold_joint_consult(pb::HoldJointConsultRequest) -> pb::JointConsultResponse;
    SchedulingClient::book_joint_consult(pb::BookJointConsultRequest) -> pb::JointConsultResponse;
    SchedulingClient::release_joint_consult(pb::ReleaseJointConsultRequest) -> pb::JointConsultResponse;
    SchedulingClient::mark_no_show(pb::MarkNoShowRequest) -> pb::MarkNoShowResponse;
    SchedulingClient::get_booking(pb::GetBookingRequest) -> pb::GetBookingResponse;
    SchedulingClient::list_patient_bookings(pb::ListPatientBookingsRequest) -> pb::ListPatientBookingsResponse;
    SchedulingClient::get_joint_consult(pb::GetJointConsultRequest) -> pb::GetJointConsultResponse;
    SchedulingClient::list_waitlist(pb::ListWaitlistRequest) -> pb::ListWaitlistResponse;
    SchedulingClient::cancel_joint_consult(pb::CancelJointConsultRequest) -> pb::JointConsultResponse;
    SchedulingClient::amend_slot(pb::AmendSlotRequest) -> pb::AmendSlotResponse;
    SchedulingClient::withdraw_slots(pb::WithdrawSlotsRequest) -> pb::WithdrawSlotsResponse;
    SchedulingClient::set_weekly_template(pb::SetWeeklyTemplateRequest) -> pb::SetWeeklyTemplateResponse;

    MatchingClient::match_specialist(pb::MatchSpecialistRequest) -> pb::MatchSpecialistResponse;
    MatchingClient::allocate_bed(pb::AllocateBedRequest) -> pb::AllocateBedResponse;
    MatchingClient::allocate_slot(pb::AllocateSlotRequest) -> pb::AllocateSlotResponse;
    MatchingClient::match_beds(pb::MatchBedsRequest) -> pb::MatchBedsResponse;

    ReferralsClient::request_referral(pb::RequestReferralRequest) -> pb::ReferralResponse;
    ReferralsClient::triage_referral(pb::TriageReferralRequest) -> pb::ReferralResponse;
    ReferralsClient::match_referral(pb::MatchReferralRequest) -> pb::ReferralResponse;
    ReferralsClient::hold_remote_bed(pb::HoldRemoteBedRequest) -> pb::ReferralResponse;
    ReferralsClient::report_no_capacity(pb::ReportNoCapacityRequest) -> pb::ReferralResponse;
    ReferralsClient::accept_referral(pb::AcceptReferralRequest) -> pb::ReferralResponse;
    ReferralsClient::start_transit(pb::StartTransitRequest) -> pb::ReferralResponse;
    ReferralsClient::admit_referral(pb::AdmitReferralRequest) -> pb::ReferralResponse;
    ReferralsClient::complete_referral(pb::CompleteReferralRequest) -> pb::ReferralResponse;
    ReferralsClient::reject_referral(pb::RejectReferralRequest) -> pb::ReferralResponse;
    ReferralsClient::cancel_referral(pb::CancelReferralRequest) -> pb::ReferralResponse;
    ReferralsClient::get_referral(pb::GetReferralRequest) -> pb::GetReferralResponse;
    ReferralsClient::worklist(pb::WorklistRequest) -> pb::WorklistResponse;
    ReferralsClient::reach(pb::ReachRequest) -> pb::ReachResponse;

    AdminClient::import_region(pb::ImportRegionRequest) -> pb::ImportRegionResponse;
    AdminClient::cluster_status(pb::ClusterStatusRequest) -> pb::ClusterStatusResponse;
    AdminClient::add_member(pb::AddMemberRequest) -> pb::MembershipResponse;
    AdminClient::promote_member(pb::PromoteMemberRequest) -> pb::MembershipResponse;
    AdminClient::remove_member(pb::RemoveMemberRequest) -> pb::MembershipResponse;
    AdminClient::transfer_leader(pb::TransferLeaderRequest) -> pb::TransferLeaderResponse;
    AdminClient::snapshot_now(pb::SnapshotNowRequest) -> pb::SnapshotNowResponse;

    CapacityClient::discharge(pb::DischargeRequest) -> pb::BedChangeResponse;
    CapacityClient::mark_bed_clean(pb::MarkBedCleanRequest) -> pb::BedChangeResponse;
    CapacityClient::block_bed(pb::BlockBedRequest) -> pb::BedChangeResponse;
    CapacityClient::unblock_bed(pb::UnblockBedRequest) -> pb::BedChangeResponse;
    CapacityClient::add_beds(pb::AddBedsRequest) -> pb::AddBedsResponse;
    CapacityClient::set_staffed_beds(pb::SetStaffedBedsRequest) -> pb::SetStaffedBedsResponse;
    CapacityClient::upsert_ward(pb::UpsertWardRequest) -> pb::UpsertWardResponse;
    CapacityClient::upsert_doctor(pb::UpsertDoctorRequest) -> pb::UpsertDoctorResponse;
    CapacityClient::upsert_hospital(pb::UpsertHospitalRequest) -> pb::UpsertHospitalResponse;
    CapacityClient::set_travel(pb::SetTravelRequest) -> pb::SetTravelResponse;
    CapacityClient::set_referral_path(pb::SetReferralPathRequest) -> pb::SetReferralPathResponse;
    CapacityClient::set_policy(pb::SetPolicyRequest) -> pb::SetPolicyResponse;
    CapacityClient::unblock_patient(pb::UnblockPatientRequest) -> pb::UnblockPatientResponse;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-256 certificate for `localhost` and its PKCS#8 key (test data only).
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBizCCATGgAwIBAgIUSgxSm484B64PHrPoxfxhONBvUPAwCgYIKoZIzj0EAwIw\n\
DzENMAsGA1UEAwwEdGVzdDAgFw0yNjExMzAxNDE3MDlaGA8yMTI2MTEwNjE0MTcw\n\
OVowDzENMAsGA1UEAwwEdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHy2\n\
qSJZD1IvNckS6V6HC2bSJiiyg9NRqN5NCZE8w5H/kh+7DgfThqhyZ+MIVbMEk9vh\n\
Gm8x5NcITfaUKwKeL/WjaTBnMB0GA1UdDgQWBBTZHaegTlzJABb5IYypiNkj8st4\n\
LDAfBgNVHSMEGDAWgBTZHaegTlzJABb5IYypiNkj8st4LDAPBgNVHRMBAf8EBTAD\n\
AQH/MBQGA1UdEQQNMAuCCWxvY2FsaG9zdDAKBggqhkjOPQQDAgNIADBFAiEA1WBF\n\
tRHljfAsZTqlcofp5I82UAwj2tRpo/Z+J6caX/MCIH6xy1e4GaXGZ4DmRXIY0zLZ\n\
S7yKhuGQRGTqnurbwjwk\n\
-----END CERTIFICATE-----\n";
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgT1kR1hiC7+uG4Vl6\n\
RyevUbFiOQzjNz+eFZP0wHfkt6mhRANCAAR8tqkiWQ9SLzXJEulehwtm0iYosoPT\n\
UajeTQmRPMOR/5Ifuw4H04aocmfjCFWzBJPb4RpvMeTXCE32lCsCni/1\n\
-----END PRIVATE KEY-----\n";

    #[test]
    fn addresses_are_checked() {
        assert!(matches!(
            Client::connect::<&str>(&[]),
            Err(ConfigError::NoNodes)
        ));
        assert!(matches!(
            Client::connect(&["not a uri at all\u{0}"]),
            Err(ConfigError::BadAddress { .. })
        ));
    }

    #[tokio::test]
    async fn tokens_must_fit_a_header() {
        let with = |token: &str| Config {
            token: Some(token.to_string()),
            ..Config::default()
        };
        for bad in ["", "two words", "tab\there", "caf\u{e9}"] {
            let err = Client::new(&["127.0.0.1:1"], with(bad)).err();
            assert!(
                matches!(err, Some(ConfigError::BadToken(_))),
                "{bad:?}: {err:?}"
            );
        }
        let long = "a".repeat(TOKEN_BYTES_MAX + 1);
        assert!(matches!(
            Client::new(&["127.0.0.1:1"], with(&long)),
            Err(ConfigError::BadToken(_))
        ));
        assert!(Client::new(&["127.0.0.1:1"], with(&"ab12".repeat(16))).is_ok());
    }

    #[tokio::test]
    async fn tls_settings_are_checked_and_name_the_field() {
        let tls = |ca: &str, identity: Option<(&str, &str)>| Config {
            tls: Some(ClientTls {
                ca_pem: ca.to_string(),
                identity: identity.map(|(c, k)| (c.to_string(), k.to_string())),
                domain: None,
            }),
            ..Config::default()
        };
        let (cert, key) = (TEST_CERT, TEST_KEY);
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let field = |c: Config| match Client::new(&["127.0.0.1:1"], c) {
            Err(ConfigError::BadTls { field, .. }) => field,
            other => panic!("expected BadTls, got {:?}", other.err()),
        };
        assert_eq!(field(tls("garbage", None)), "ca");
        // A body rustls cannot use is caught when the client is built, not on every call.
        assert_eq!(field(tls(cert, Some((broken, key)))), "cert/key");
        assert_eq!(field(tls(cert, Some((key, key)))), "cert");
        assert_eq!(field(tls(cert, Some((cert, cert)))), "key");
        // The scheme follows the TLS setting; a contradicting one is refused.
        assert!(matches!(
            Client::new(&["http://127.0.0.1:1"], tls(cert, None)),
            Err(ConfigError::BadAddress { .. })
        ));
        assert!(matches!(
            Client::connect(&["https://127.0.0.1:1"]),
            Err(ConfigError::BadAddress { .. })
        ));
        let c = Client::new(&["127.0.0.1:1"], tls(cert, Some((cert, key)))).expect("client");
        assert_eq!(c.addrs(), vec!["127.0.0.1:1".to_string()]);
        assert!(!format!("{:?}", c.config()).contains("PRIVATE KEY"));
    }

    #[tokio::test]
    async fn every_attempt_carries_the_token() {
        let client = Client::new(
            &["127.0.0.1:1"],
            Config {
                token: Some("s3cret".into()),
                backoff_initial: Duration::from_millis(1),
                ..Config::default()
            },
        )
        .expect("client");
        assert!(!format!("{:?}", client.config()).contains("s3cret"));
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        client
            .call((), |_c, req| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().unwrap();
                    let auth = req.metadata().get(AUTHORIZATION_KEY);
                    seen.push(auth.and_then(|v| v.to_str().ok()).unwrap_or("").into());
                    if seen.len() < 2 {
                        Err(Status::unavailable("no leader"))
                    } else {
                        Ok(tonic::Response::new(()))
                    }
                }
            })
            .await
            .expect("second attempt succeeds");
        assert_eq!(*seen.lock().unwrap(), vec!["Bearer s3cret"; 2]);
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_distinct() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn retries_the_same_request_and_follows_the_leader_hint() {
        let client = Client::new(
            &["127.0.0.1:1", "127.0.0.1:2"],
            Config {
                backoff_initial: Duration::from_millis(1),
                ..Config::default()
            },
        )
        .expect("client");
        let seen = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let answer = client
            .call("req-1".to_string(), |_channel, req| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().unwrap();
                    // Which node: recovered from the order of attempts below.
                    seen.push((String::new(), req.get_ref().clone()));
                    match seen.len() {
                        1 => {
                            let mut s = Status::unavailable("not the leader");
                            s.metadata_mut()
                                .insert(LEADER_ADDR_KEY, "127.0.0.1:3".parse().unwrap());
                            Err(s)
                        }
                        2 => Err(Status::resource_exhausted("queue full")),
                        _ => Ok(tonic::Response::new(42u32)),
                    }
                }
            })
            .await
            .expect("third attempt succeeds");
        assert_eq!(answer, 42);
        let seen = seen.lock().unwrap();
        assert!(
            seen.iter().all(|(_, id)| id == "req-1"),
            "same request each time"
        );
        assert_eq!(
            client.preferred_addr(),
            "127.0.0.1:3",
            "the hint was followed"
        );
        assert_eq!(client.addrs().len(), 3, "the hinted node was learnt");
        let stats = client.stats();
        assert_eq!(
            (stats.calls, stats.retries, stats.leader_redirects),
            (1, 2, 1)
        );
    }

    #[tokio::test]
    async fn domain_refusals_are_not_retried() {
        let client = Client::connect(&["127.0.0.1:1"]).expect("client");
        let attempts = Arc::new(AtomicU64::new(0));
        let err = client
            .call((), |_c, _r| {
                let attempts = attempts.clone();
                async move {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    Err::<tonic::Response<()>, _>(Status::failed_precondition("expired"))
                }
            })
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(attempts.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn gives_up_within_the_total_timeout() {
        let client = Client::new(
            &["127.0.0.1:1"],
            Config {
                total_timeout: Duration::from_millis(200),
                backoff_initial: Duration::from_millis(10),
                ..Config::default()
            },
        )
        .expect("client");
        let started = std::time::Instant::now();
        let err = client
            .call((), |_c, _r| async {
                Err::<tonic::Response<()>, _>(Status::unavailable("no leader"))
            })
            .await
            .expect_err("never succeeds");
        assert_eq!(err.code(), Code::Unavailable);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
