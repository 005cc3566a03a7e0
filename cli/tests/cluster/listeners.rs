//! Two listeners (issue 12, item 1): clients (`ninety.v1`, health, reflection) on `listen`,
//! peers (`ninety.peer.v1`) on `peer_listen`, neither served on the other's port; writes
//! forwarded from a follower reach the leader's peer listener, and leader hints name the
//! leader's client address. A config from before the split is refused, naming the field
//! and the migration, before anything is created.

use crate::harness::*;
use ninety_proto::peer::v1::{peer_client::PeerClient, ForwardRequest, StatusRequest};
use ninety_proto::v1 as pb;
use ninety_proto::v1::{admin_client::AdminClient, bed_holds_client::BedHoldsClient};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// The call's status code (`Ok` for an answer).
fn code<T>(r: Result<T, tonic::Status>) -> Code {
    r.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// On node `id`: the peer service answers on the peer port only, the client services and
/// health on the client port only.
async fn each_service_on_its_own_port(p: &Procs, id: u64) {
    let status = || StatusRequest {
        from_node: 0,
        region: String::new(),
    };
    assert_eq!(code(p.peer(id).status(status()).await), Code::Ok);
    let mut on_client_port = PeerClient::new(p.channel(id));
    assert_eq!(
        code(on_client_port.status(status()).await),
        Code::Unimplemented,
        "Peer.Status on node {id}'s client port"
    );
    let forward = ForwardRequest {
        from_node: 0,
        request_id: "listeners-forward".into(),
        payload: vec![0; 8],
        timeout_ms: 1_000,
        ..Default::default()
    };
    assert_eq!(
        code(on_client_port.forward(forward).await),
        Code::Unimplemented,
        "Peer.Forward on node {id}'s client port"
    );
    let mut admin_on_peer_port = AdminClient::new(p.peer_channel(id));
    assert_eq!(
        code(
            admin_on_peer_port
                .cluster_status(pb::ClusterStatusRequest::default())
                .await
        ),
        Code::Unimplemented,
        "Admin on node {id}'s peer port"
    );
    let availability = pb::WardAvailabilityRequest {
        hospital_id: 1,
        ward_ids: vec![],
        consistency: 0,
    };
    assert_eq!(
        code(
            BedHoldsClient::new(p.peer_channel(id))
                .ward_availability(availability)
                .await
        ),
        Code::Unimplemented,
        "BedHolds on node {id}'s peer port"
    );
    let health = || HealthCheckRequest {
        service: String::new(),
    };
    assert_eq!(
        code(HealthClient::new(p.channel(id)).check(health()).await),
        Code::Ok
    );
    assert_eq!(
        code(HealthClient::new(p.peer_channel(id)).check(health()).await),
        Code::Unimplemented,
        "health on node {id}'s peer port"
    );
    let listed = reflection_list(p.channel(id)).await.expect("reflection");
    assert!(listed.contains("ninety.v1.BedHolds"), "{listed}");
    assert!(!listed.contains("ninety.peer.v1"), "{listed}");
    let on_peer_port = reflection_list(p.peer_channel(id)).await;
    assert_eq!(on_peer_port.err(), Some(Code::Unimplemented));
}

/// The services reflection lists (grpcurl's `list`), as debug text.
async fn reflection_list(channel: tonic::transport::Channel) -> Result<String, Code> {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, ServerReflectionRequest,
    };
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![ask]))
        .await
        .map_err(|s| s.code())?
        .into_inner();
    match answers.message().await {
        Ok(Some(m)) => Ok(format!("{:?}", m.message_response)),
        Ok(None) => Err(Code::Ok),
        Err(s) => Err(s.code()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_peers_are_served_on_separate_listeners() {
    crate::bounded(async {
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        for id in [1, 2, 3] {
            each_service_on_its_own_port(&p, id).await;
        }
        // Members report both addresses.
        let st = p.status(leader).await.expect("status");
        for m in &st.members {
            assert_eq!(m.address, p.peer_addr(m.node_id), "{m:?}");
            assert_eq!(m.client_address, p.addr(m.node_id), "{m:?}");
        }
        let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
        // A follower forwards a write to the leader's peer listener.
        let held = p
            .beds(follower)
            .hold_bed(pb::HoldBedRequest {
                request_id: "listeners-forwarded-hold".into(),
                ward_id: ward_ids(&p, leader).await[0],
                patient_ref: format!("{:032x}", 0x11_5733_u64),
                ttl_ms: 600_000,
                ..Default::default()
            })
            .await
            .expect("a write on a follower is forwarded to the leader")
            .into_inner();
        assert!(held.hold.is_some());
        // A follower's leader hint is the leader's client address.
        let refused = p
            .admin(follower)
            .promote_member(pb::PromoteMemberRequest {
                request_id: "listeners-hint".into(),
                node_id: leader,
            })
            .await
            .expect_err("membership changes go to the leader");
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        let hint = refused
            .metadata()
            .get("x-ninety-leader-addr")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(hint, Some(p.addr(leader)), "{refused:?}");
        p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
    })
    .await;
}

/// Runs `ninety node --config path` until it exits (at most 20 s): its exit code and stderr.
fn run_node(path: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ninety"))
        .args(["node", "--config"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ninety");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    (status.and_then(|s| s.code()), stderr)
}

#[test]
fn a_config_from_before_the_two_listeners_is_refused_with_the_migration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let base = format!(
        "id = 1\nlisten = \"127.0.0.1:7001\"\ndata_dir = \"{}\"\nregion = \"test\"\ninit = true\n",
        data.display()
    );
    let old_peers = "[peers]\n\"1\" = \"127.0.0.1:7001\"\n\"2\" = \"127.0.0.1:7002\"\n";
    let new_peers = "[peers]\n\"1\" = { peer = \"127.0.0.1:7101\", client = \"127.0.0.1:7001\" }\n\
                     \"2\" = { peer = \"127.0.0.1:7102\", client = \"127.0.0.1:7002\" }\n";
    let cases = [
        // The old form exactly: one address per node, no peer_listen.
        (format!("{base}{old_peers}"), "peer_listen: missing"),
        (
            format!("{base}peer_listen = \"127.0.0.1:7101\"\n{old_peers}"),
            "peers.1: one address is the old form",
        ),
        // Peers on the client port: never served there.
        (
            format!("{base}peer_listen = \"127.0.0.1:7001\"\n{new_peers}"),
            "peer_listen: 127.0.0.1:7001 is the client address",
        ),
    ];
    for (text, want) in cases {
        let path = dir.path().join("node.toml");
        std::fs::write(&path, &text).expect("config");
        let (code, stderr) = run_node(&path);
        assert_eq!(code, Some(2), "{want}: {stderr}");
        assert!(stderr.contains(want), "no {want:?} in {stderr}");
        if want.starts_with("peer_listen: missing") || want.starts_with("peers.1") {
            assert!(stderr.contains("docs/operations.md"), "{stderr}");
        }
        assert!(!data.exists(), "{want}: created {}", data.display());
    }
}
