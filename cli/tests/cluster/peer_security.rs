//! Peer authentication (issue 12, item 2) through real processes with TLS on: a peer
//! connection needs a certificate from the cluster CA, a member's certificate speaks only
//! for its own node id, and a CA-signed certificate of a node that is not a member gets
//! nothing stepped into Raft. Each refusal must be counted (`refused_peer_messages`), and
//! the cluster must be as before: same leader and term, equal state hashes, same beds.
//!
//! TLS handshake failures (another CA, no certificate) happen in rustls before the peer
//! service and are not counted; what the service refuses is.

use super::harness::{ward_ids, Opts, Procs};
use ninety_cluster::eraftpb::{Entry, Message, MessageType};
use ninety_cluster::security::certs::{Ca, Pem};
use ninety_engine::{Command, WardId};
use ninety_proto::peer::v1::{
    peer_client::PeerClient, ForwardRequest, NodeStatus, RaftBatch, SnapshotChunk, StatusRequest,
};
use ninety_proto::v1 as pb;
use protobuf::Message as _;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Code;

fn code<T>(r: Result<T, tonic::Status>) -> Code {
    r.map_or_else(|s| s.code(), |_| Code::Ok)
}

fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(t);
    m.set_from(from);
    m.set_to(to);
    m.set_term(term);
    m
}

fn batch(from_node: u64, to_node: u64, messages: &[Message]) -> RaftBatch {
    RaftBatch {
        from_node,
        to_node,
        messages: messages
            .iter()
            .map(|m| m.write_to_bytes().expect("encode"))
            .collect(),
        ..Default::default()
    }
}

/// A one-chunk snapshot stream: chunk from `from_node`, carrying a MsgSnapshot from
/// `from` to `to`, with garbage data. A forged one is refused on its first chunk, before
/// the data or its hash (here zeros) is looked at.
fn snapshot(from_node: u64, from: u64, to: u64, term: u64) -> Vec<SnapshotChunk> {
    let mut m = msg(MessageType::MsgSnapshot, from, to, term);
    m.mut_snapshot().mut_metadata().set_index(1_000_000);
    m.mut_snapshot().mut_metadata().set_term(term);
    let data = b"not a snapshot".to_vec();
    vec![SnapshotChunk {
        from_node,
        to_node: to,
        raft_message: m.write_to_bytes().expect("encode"),
        data_sha256: vec![0; 32],
        total_bytes: data.len() as u64,
        data,
        offset: 0,
        last: true,
        ..Default::default()
    }]
}

/// Node `id`'s status, asked with node 1's certificate.
async fn status(p: &Procs, id: u64) -> NodeStatus {
    p.peer(id)
        .status(StatusRequest {
            from_node: 0,
            region: String::new(),
        })
        .await
        .unwrap_or_else(|s| panic!("status of node {id}: {s}"))
        .into_inner()
}

/// Refused peer calls counted on `ids`, together.
async fn refused(p: &Procs, ids: &[u64]) -> u64 {
    let mut total = 0;
    for id in ids {
        total += status(p, *id).await.refused_peer_messages;
    }
    total
}

fn certs(p: &Procs) -> &super::harness::Tls {
    p.tls
        .as_ref()
        .expect("the harness runs with TLS by default")
}

fn hosts() -> Vec<String> {
    vec!["127.0.0.1".to_string()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_connection_without_a_ca_signed_certificate_is_refused() {
    crate::bounded(async {
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let before = refused(&p, &[1, 2, 3]).await;
        // Node 1's id, signed by another CA.
        let rogue = Ca::new("rogue")
            .expect("CA")
            .node_cert(1, &hosts())
            .expect("cert");
        let harness_client: &Pem = &certs(&p).client;
        for id in [1, 2, 3] {
            let hb = msg(MessageType::MsgHeartbeat, 1, id, 1);
            let mut other_ca = p.peer_as(id, Some(&rogue));
            let r = other_ca.send(batch(1, id, std::slice::from_ref(&hb))).await;
            assert_ne!(code(r), Code::Ok, "node {id}: another CA's certificate");
            let r = other_ca
                .status(StatusRequest {
                    from_node: 1,
                    region: String::new(),
                })
                .await;
            assert_ne!(code(r), Code::Ok, "node {id}: another CA's certificate");
            let mut no_cert = p.peer_as(id, None);
            let r = no_cert.send(batch(1, id, &[hb])).await;
            assert_ne!(code(r), Code::Ok, "node {id}: no client certificate");
            // Signed by the cluster CA, but a client's: it names no node.
            let mut client = p.peer_as(id, Some(harness_client));
            let r = client
                .status(StatusRequest {
                    from_node: 1,
                    region: String::new(),
                })
                .await;
            assert_eq!(
                code(r),
                Code::PermissionDenied,
                "node {id}: a client certificate"
            );
        }
        assert!(refused(&p, &[1, 2, 3]).await >= before + 3);
        // The client listener: TLS, a client certificate optional; plain text refused.
        let health = || tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        let mut no_cert =
            tonic_health::pb::health_client::HealthClient::new(p.channel_with(leader, None));
        assert_eq!(code(no_cert.check(health()).await), Code::Ok);
        let plain = super::harness::channel_to(&p.addr(leader));
        let mut plain = tonic_health::pb::health_client::HealthClient::new(plain);
        assert_ne!(
            code(plain.check(health()).await),
            Code::Ok,
            "plain text on TLS"
        );
        assert_eq!(p.leader_among(&[1, 2, 3]).await, Some(leader));
        p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_certificate_cannot_speak_for_another_node() {
    crate::bounded(async {
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        p.wait_ready(Duration::from_secs(20)).await;
        let target = 2;
        let term = status(&p, target).await.term;
        let before = status(&p, target).await.refused_peer_messages;
        // Every call below is made with node 1's certificate.
        let mut as1 = p.peer(target);
        let from3 = msg(MessageType::MsgHeartbeat, 3, target, term);
        let from1 = msg(MessageType::MsgHeartbeatResponse, 1, target, term);
        let denied = [
            code(
                as1.send(batch(3, target, std::slice::from_ref(&from1)))
                    .await,
            ),
            code(
                as1.send(batch(1, target, std::slice::from_ref(&from3)))
                    .await,
            ),
            code(as1.send(batch(1, target, &[from1, from3])).await),
            code(
                as1.status(StatusRequest {
                    from_node: 3,
                    region: String::new(),
                })
                .await,
            ),
            code(forward(&mut as1, 3, add_beds(1)).await),
            code(
                as1.install_snapshot(tokio_stream::iter(snapshot(3, 3, target, term)))
                    .await,
            ),
            // Honest chunks, a MsgSnapshot inside from node 3.
            code(
                as1.install_snapshot(tokio_stream::iter(snapshot(1, 3, target, term)))
                    .await,
            ),
        ];
        for (i, c) in denied.iter().enumerate() {
            assert_eq!(*c, Code::PermissionDenied, "forged call {i}");
        }
        // Node 1 speaking for itself is still heard (an empty batch changes nothing).
        assert_eq!(code(as1.send(batch(1, target, &[])).await), Code::Ok);
        let after = status(&p, target).await.refused_peer_messages;
        assert!(after >= before + 7, "refused {before} → {after}");
        let log = p.log(target);
        assert!(log.contains("refused a peer message"), "no WARN: {log}");
        p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
    })
    .await;
}

/// The engine command the attacker forwarded: `AddBeds` to ward `ward`, encoded as
/// the log carries it.
fn add_beds(ward: u32) -> Vec<u8> {
    let command = Command::AddBeds {
        ward: WardId(ward),
        count: 5,
    };
    ninety_cluster::engine_sm::encode_bootstrap(1_000_000, &command).expect("encode")
}

async fn forward(
    client: &mut PeerClient<Channel>,
    from_node: u64,
    payload: Vec<u8>,
) -> Result<tonic::Response<ninety_proto::peer::v1::ForwardReply>, tonic::Status> {
    client
        .forward(ForwardRequest {
            from_node,
            request_id: "forged-forward".into(),
            payload,
            timeout_ms: 2_000,
            ..Default::default()
        })
        .await
}

/// Total beds of hospital 1's wards, read on `id`.
async fn beds_of_hospital_1(p: &Procs, id: u64) -> u32 {
    let r = p
        .beds(id)
        .ward_availability(pb::WardAvailabilityRequest {
            hospital_id: 1,
            ward_ids: vec![],
            consistency: 0,
        })
        .await
        .expect("ward availability")
        .into_inner();
    r.wards.iter().map(|w| w.total_beds).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_messages_from_a_ca_signed_non_member_change_nothing() {
    crate::bounded(async {
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let ward = ward_ids(&p, leader).await[0];
        let beds = beds_of_hospital_1(&p, leader).await;
        let st = status(&p, leader).await;
        let (term, last) = (st.term, st.last_index);
        let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
        let (f1, f2) = (followers[0], followers[1]);
        let before = refused(&p, &[1, 2, 3]).await;
        let nine = certs(&p).ca.node_cert(9, &hosts()).expect("node 9's cert");
        let as9 = |id: u64| p.peer_as(id, Some(&nine));

        let forwarded = forward(&mut as9(leader), 9, add_beds(ward)).await;
        let mut append = msg(MessageType::MsgAppend, 9, f1, term);
        append.set_index(last);
        append.set_log_term(term);
        append.set_commit(last + 1);
        let mut entry = Entry::default();
        entry.set_index(last + 1);
        entry.set_term(term);
        entry.set_data(add_beds(ward).into());
        append.set_entries(vec![entry].into());
        let mut past_the_log = msg(MessageType::MsgHeartbeat, 9, f1, term);
        past_the_log.set_commit(last + 1_000);
        let timeout_now = msg(MessageType::MsgTimeoutNow, 9, f2, term);
        let higher_term = msg(MessageType::MsgHeartbeat, 9, leader, term + 5);
        let codes = [
            ("Forward AddBeds", code(forwarded)),
            (
                "MsgAppend",
                code(as9(f1).send(batch(9, f1, &[append])).await),
            ),
            (
                "heartbeat past the log",
                code(as9(f1).send(batch(9, f1, &[past_the_log])).await),
            ),
            (
                "MsgTimeoutNow",
                code(as9(f2).send(batch(9, f2, &[timeout_now])).await),
            ),
            (
                "term+5 heartbeat",
                code(as9(leader).send(batch(9, leader, &[higher_term])).await),
            ),
            (
                "InstallSnapshot",
                code(
                    as9(f1)
                        .install_snapshot(tokio_stream::iter(snapshot(9, 9, f1, term + 5)))
                        .await,
                ),
            ),
            (
                "Status",
                code(
                    as9(f2)
                        .status(StatusRequest {
                            from_node: 0,
                            region: String::new(),
                        })
                        .await,
                ),
            ),
        ];
        for (what, c) in codes {
            assert_eq!(c, Code::PermissionDenied, "{what} from node 9");
        }
        // Long enough for a forced election or a step-down to have shown.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(p.leader_among(&[1, 2, 3]).await, Some(leader));
        assert_eq!(status(&p, leader).await.term, term, "the term moved");
        p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
        assert_eq!(
            beds_of_hospital_1(&p, leader).await,
            beds,
            "beds were added"
        );
        let after = refused(&p, &[1, 2, 3]).await;
        assert!(after >= before + 7, "refused {before} → {after}");
    })
    .await;
}

/// Starts `ninety node` on `config` and expects it to refuse: its stderr.
fn refused_start(p: &Procs, name: &str, config: &str) -> String {
    let path = p.dir.path().join(name);
    std::fs::write(&path, config).expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ninety"))
        .args(["node", "--config"])
        .arg(&path)
        .output()
        .expect("run ninety node");
    assert!(!out.status.success(), "{name} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Safe defaults through the binary: plain text on a non-loopback address, and a `[tls]`
/// file that is not there, stop the node before it serves, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_tls_off_loopback_or_with_a_missing_cert_does_not_start() {
    crate::bounded(async {
        let p = Procs::start(&[1, 2], &[], Opts::default());
        let with_tls = p.config(1, true);
        let plain: String = with_tls
            .split("[tls]")
            .next()
            .expect("config")
            .replace("listen = \"127.0.0.1:", "listen = \"0.0.0.0:");
        let e = refused_start(&p, "plain.toml", &plain);
        assert!(
            e.contains("not a loopback address") && e.contains("insecure"),
            "{e}"
        );
        let missing = with_tls.replace("node-1.pem", "node-1-missing.pem");
        let e = refused_start(&p, "missing.toml", &missing);
        assert!(
            e.contains("tls.cert = ") && e.contains("node-1-missing.pem"),
            "{e}"
        );
        let other = with_tls.replace("node-1.", "node-2.");
        let e = refused_start(&p, "other.toml", &other);
        assert!(e.contains("node 2's, this node is id 1"), "{e}");
        assert!(
            !p.data_dir(1).exists(),
            "a refused start wrote its data directory"
        );
    })
    .await;
}
