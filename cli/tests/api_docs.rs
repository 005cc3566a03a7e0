//! Runs every `grpcurl` example of `docs/api.md`, in order, against a fresh 3-node cluster
//! on the built-in GBA region, the way grpcurl would: the method is resolved by name in the
//! descriptors the server serves through reflection, the `-d` JSON is read with the proto3
//! JSON mapping, and the answer must be OK unless the line before says `# expect: CODE`.
//! A server-streaming method (`Watch`) is read for the example's `-max-time` seconds: its
//! answer is OK when the stream did not fail before then (grpcurl itself then reports the
//! cut as `DeadlineExceeded`).
//!
//! So the documented examples cannot rot: a renamed field, a wrong id or a changed error
//! code fails this test. (grpcurl itself is a Go tool that cannot be installed on the build
//! machine; this runner follows its rules for `-cacert FILE -H HEADER -d '<json>' ADDR service/method`.)

#[path = "cluster/harness.rs"]
#[allow(dead_code)]
mod harness;

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// One example: the call and what it should answer.
#[derive(Debug)]
struct Example {
    line: usize,
    method: String,
    json: String,
    expect: tonic::Code,
    /// `-cacert` given: TLS. `-plaintext`: none.
    tls: bool,
    /// `-cert` and `-key` given: present a client certificate.
    client_cert: bool,
    /// The shell variable named by `-H "authorization: Bearer $NAME"`.
    token_var: Option<String>,
    /// `-max-time SECONDS`: how long a stream is read.
    max_time: Option<Duration>,
}

/// The value of flag `flag` in a grpcurl command line (quotes removed).
fn flag_value(cmd: &str, flag: &str) -> Option<String> {
    let at = cmd.find(&format!(" {flag} "))? + flag.len() + 2;
    let rest = cmd[at..].trim_start();
    let (quote, body) = match rest.chars().next()? {
        q @ ('"' | '\'') => (Some(q), &rest[1..]),
        _ => (None, rest),
    };
    let end = match quote {
        Some(q) => body.find(q)?,
        None => body.find(' ').unwrap_or(body.len()),
    };
    Some(body[..end].to_string())
}

/// The token variable of `-H "authorization: Bearer $NAME"`.
fn token_var(cmd: &str, line: usize) -> Option<String> {
    let header = flag_value(cmd, "-H")?;
    let var = header
        .strip_prefix("authorization: Bearer $")
        .unwrap_or_else(|| panic!("docs/api.md:{line}: -H must be `authorization: Bearer $NAME`"));
    Some(var.to_string())
}

fn code_named(name: &str) -> tonic::Code {
    use tonic::Code::*;
    match name {
        "OK" => Ok,
        "INVALID_ARGUMENT" => InvalidArgument,
        "NOT_FOUND" => NotFound,
        "FAILED_PRECONDITION" => FailedPrecondition,
        "UNAVAILABLE" => Unavailable,
        "RESOURCE_EXHAUSTED" => ResourceExhausted,
        "UNAUTHENTICATED" => Unauthenticated,
        "PERMISSION_DENIED" => PermissionDenied,
        "DEADLINE_EXCEEDED" => DeadlineExceeded,
        "UNIMPLEMENTED" => Unimplemented,
        "OUT_OF_RANGE" => OutOfRange,
        other => panic!("docs/api.md: unknown code {other}"),
    }
}

/// The `grpcurl` commands of a markdown file (continuation lines joined).
fn examples(markdown: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut expect = tonic::Code::Ok;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(code) = line.strip_prefix("# expect: ") {
            expect = code_named(code.trim());
        }
        if line.starts_with("grpcurl ") {
            let start = i + 1;
            let mut cmd = String::new();
            while lines[i].trim_end().ends_with('\\') {
                cmd += lines[i].trim_end().trim_end_matches('\\');
                cmd.push(' ');
                i += 1;
            }
            cmd += lines[i].trim();
            let json = cmd
                .split_once("-d '")
                .and_then(|(_, rest)| rest.split_once('\''))
                .map_or_else(|| "{}".to_string(), |(j, _)| j.to_string());
            let method = cmd.split_whitespace().last().expect("a method").to_string();
            let tls = flag_value(&cmd, "-cacert").is_some();
            assert!(
                tls != cmd.contains(" -plaintext "),
                "docs/api.md:{start}: an example uses either -cacert or -plaintext"
            );
            let client_cert = flag_value(&cmd, "-cert").is_some();
            assert_eq!(
                client_cert,
                flag_value(&cmd, "-key").is_some(),
                "docs/api.md:{start}: -cert goes with -key"
            );
            let token_var = token_var(&cmd, start);
            let max_time = flag_value(&cmd, "-max-time").map(|t| {
                let seconds: f64 = t
                    .parse()
                    .unwrap_or_else(|_| panic!("docs/api.md:{start}: -max-time {t}"));
                Duration::from_secs_f64(seconds)
            });
            if !method.contains('/') {
                // `grpcurl ... list` / `describe`: reflection, checked separately.
                i += 1;
                continue;
            }
            out.push(Example {
                line: start,
                method,
                json,
                expect,
                tls,
                client_cert,
                token_var,
                max_time,
            });
            expect = tonic::Code::Ok;
        }
        i += 1;
    }
    out
}

/// A tonic codec for messages known only by their descriptor.
#[derive(Clone)]
struct DynCodec(MessageDescriptor);
struct DynEncoder;
struct DynDecoder(MessageDescriptor);

impl Codec for DynCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynEncoder;
    type Decoder = DynDecoder;
    fn encoder(&mut self) -> DynEncoder {
        DynEncoder
    }
    fn decoder(&mut self) -> DynDecoder {
        DynDecoder(self.0.clone())
    }
}

impl Encoder for DynEncoder {
    type Item = DynamicMessage;
    type Error = Status;
    fn encode(&mut self, item: DynamicMessage, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Decoder for DynDecoder {
    type Item = DynamicMessage;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

fn pool() -> DescriptorPool {
    let mut pool = DescriptorPool::decode(ninety_proto::FILE_DESCRIPTOR_SET).expect("ours");
    pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .expect("health");
    pool
}

async fn call(
    pool: &DescriptorPool,
    channel: tonic::transport::Channel,
    ex: &Example,
    token: Option<&str>,
) -> Result<DynamicMessage, Status> {
    let (service, method) = ex
        .method
        .split_once('/')
        .unwrap_or_else(|| panic!("docs/api.md:{}: no service/method", ex.line));
    let service = pool
        .get_service_by_name(service)
        .unwrap_or_else(|| panic!("docs/api.md:{}: no service {service}", ex.line));
    let method = service
        .methods()
        .find(|m| m.name() == method)
        .unwrap_or_else(|| panic!("docs/api.md:{}: no method {}", ex.line, ex.method));
    let mut de = serde_json::Deserializer::from_str(&ex.json);
    let request = DynamicMessage::deserialize(method.input(), &mut de)
        .unwrap_or_else(|e| panic!("docs/api.md:{}: bad JSON for {}: {e}", ex.line, ex.method));
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = format!("/{}/{}", service.full_name(), method.name());
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    let mut req = tonic::Request::new(request);
    if let Some(t) = token {
        let value = format!("Bearer {t}").parse().expect("a metadata value");
        req.metadata_mut().insert("authorization", value);
    }
    if method.is_server_streaming() {
        let max_time = ex
            .max_time
            .unwrap_or_else(|| panic!("docs/api.md:{}: a stream example needs -max-time", ex.line));
        let stream = grpc
            .server_streaming(req, path, DynCodec(method.output()))
            .await?;
        return read_stream(stream.into_inner(), max_time, method.output()).await;
    }
    req.set_timeout(Duration::from_secs(10));
    grpc.unary(req, path, DynCodec(method.output()))
        .await
        .map(tonic::Response::into_inner)
}

/// Reads a server stream for `max_time`, as `grpcurl -max-time` does: the last message
/// (or an empty one), or the status the stream failed with before then.
async fn read_stream(
    mut stream: tonic::Streaming<DynamicMessage>,
    max_time: Duration,
    output: MessageDescriptor,
) -> Result<DynamicMessage, Status> {
    let until = tokio::time::Instant::now() + max_time;
    let mut last = DynamicMessage::new(output);
    loop {
        match tokio::time::timeout_at(until, stream.message()).await {
            Err(_) | Ok(Ok(None)) => return Ok(last),
            Ok(Ok(Some(m))) => {
                eprintln!(
                    "  streamed {}",
                    serde_json::to_string(&m).unwrap_or_default()
                );
                last = m;
            }
            Ok(Err(s)) => return Err(s),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_example_works() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"))
        .expect("docs/api.md");
    let examples = examples(&doc);
    assert!(examples.len() >= 20, "docs/api.md has too few examples");
    let pool = pool();

    let _serial = harness::SERIAL.lock().await;
    // The page's five shell variables, each a token of the role it is named after.
    let tokens: Vec<(String, String)> = ["OPERATOR", "PLATFORM", "REFERRAL", "READER", "HOSPITAL"]
        .iter()
        .map(|v| {
            (
                v.to_string(),
                ninety_cluster::security::certs::new_token().expect("token"),
            )
        })
        .collect();
    let extra_toml = tokens
        .iter()
        .map(|(var, token)| {
            format!(
                "[[auth.tokens]]\nname = \"{var}\"\nroles = [\"{}\"]\nsha256 = \"{}\"\n",
                var.to_lowercase(),
                ninety_cluster::security::certs::token_sha256(token)
            )
        })
        .collect();
    let procs = harness::Procs::start(
        &[1, 2, 3],
        &[1, 2, 3],
        harness::Opts {
            region: Some("gba"),
            extra_toml,
            ..Default::default()
        },
    );
    let leader = procs.wait_ready(Duration::from_secs(120)).await;
    // TLS without a client certificate (the page's -cacert), or with the harness's (-cert).
    let anonymous = procs.channel_with(leader, None);
    let with_cert = procs.channel(leader);
    let channel = with_cert.clone();

    // Reflection lists every service, as grpcurl's `list` would show.
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            channel.clone(),
        );
    let ask = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![ask]))
        .await
        .expect("reflection")
        .into_inner();
    let listed = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    let listed = format!("{:?}", listed.message_response);
    for service in [
        "ninety.v1.BedHolds",
        "ninety.v1.Scheduling",
        "ninety.v1.Matching",
        "ninety.v1.Referrals",
        "ninety.v1.Admin",
        "ninety.v1.Watch",
        "ninety.v1.Capacity",
    ] {
        assert!(
            listed.contains(service),
            "reflection lacks {service}: {listed}"
        );
    }

    let mut failures = Vec::new();
    for ex in &examples {
        assert!(
            ex.tls,
            "docs/api.md:{}: examples call with -cacert",
            ex.line
        );
        let token = ex.token_var.as_ref().map(|var| {
            let (_, t) = tokens
                .iter()
                .find(|(v, _)| v == var)
                .unwrap_or_else(|| panic!("docs/api.md:{}: unknown ${var}", ex.line));
            t.as_str()
        });
        let channel = if ex.client_cert {
            &with_cert
        } else {
            &anonymous
        };
        let got = call(&pool, channel.clone(), ex, token).await;
        let code = got.as_ref().map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        match &got {
            Ok(m) => eprintln!(
                "docs/api.md:{} {} -> {}",
                ex.line,
                ex.method,
                serde_json::to_string(m).unwrap_or_default()
            ),
            Err(s) => eprintln!(
                "docs/api.md:{} {} -> {:?} {}",
                ex.line,
                ex.method,
                s.code(),
                s.message()
            ),
        }
        if code != ex.expect {
            failures.push(format!(
                "docs/api.md:{} {}: expected {:?}, got {:?} ({})",
                ex.line,
                ex.method,
                ex.expect,
                code,
                got.err()
                    .map(|s| s.message().to_string())
                    .unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

#[test]
fn credentials_are_read_off_the_command_line() {
    let md = "grpcurl -cacert local/tls/ca.pem -H \"authorization: Bearer $PLATFORM\" \\\n  -d '{\"x\": 1}' localhost:7001 ninety.v1.Scheduling/FindSlots\n\
              grpcurl -cacert ca.pem -cert c.pem -key c.key localhost:7001 ninety.v1.Admin/ClusterStatus\n\
              grpcurl -plaintext localhost:7001 grpc.health.v1.Health/Check\n";
    let ex = examples(md);
    assert_eq!(ex.len(), 3);
    assert!(ex[0].tls && !ex[0].client_cert);
    assert_eq!(ex[0].token_var.as_deref(), Some("PLATFORM"));
    assert_eq!(ex[0].json, "{\"x\": 1}");
    assert!(ex[1].tls && ex[1].client_cert && ex[1].token_var.is_none());
    assert!(!ex[2].tls && !ex[2].client_cert);
}

#[test]
fn examples_are_parsed_with_their_expected_codes() {
    let md = "```sh\n# expect: NOT_FOUND\ngrpcurl -plaintext -d '{\"hold_id\": 9}' \\\n  localhost:7001 ninety.v1.BedHolds/GetHold\ngrpcurl -plaintext localhost:7001 grpc.health.v1.Health/Check\n```\n";
    let ex = examples(md);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].method, "ninety.v1.BedHolds/GetHold");
    assert_eq!(ex[0].json, "{\"hold_id\": 9}");
    assert_eq!(ex[0].expect, tonic::Code::NotFound);
    assert_eq!(ex[1].json, "{}");
    assert_eq!(ex[1].expect, tonic::Code::Ok);
}
