//! The region in containers: builds the image from the `ninety` binary these tests run
//! (`docker/build-image.sh`: `FROM scratch`, the binary and the libraries `ldd` lists),
//! writes a 3-node region with `ninety cluster init --compose` (TLS and tokens, the
//! default), starts it with Docker Compose, holds and confirms a bed through the API,
//! checks that a caller without a token is refused, kills the leader's container, checks
//! that the other two keep serving and report healthy (the image's `ninety health`), and
//! tears everything down (containers, volumes, network, image) on every exit path: a drop
//! guard. Names carry the process id and time, so parallel runs do not collide.
//!
//! Skipped, saying so on stderr, where no Docker engine or no Compose is available.

use crate::harness::{free_port, SERIAL};
use ninety_client::{pb, Client, Config};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The whole scenario, image build included, must finish within this.
const CONTAINERS_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the region may take to elect a leader and load its region.
const READY_WITHIN: Duration = Duration::from_secs(60);

fn run(cmd: &[String]) -> Output {
    Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn ok(cmd: &[String]) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// The Compose command here (`docker-compose`, or Compose v2's `docker compose`), if a
/// Docker engine answers.
fn compose_command() -> Result<Vec<String>, String> {
    let works = |c: &[&str]| {
        Command::new(c[0])
            .args(&c[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works(&["docker", "info"]) {
        return Err("no Docker engine answers `docker info`".into());
    }
    if works(&["docker-compose", "version"]) {
        return Ok(strings(&["docker-compose"]));
    }
    if works(&["docker", "compose", "version"]) {
        return Ok(strings(&["docker", "compose"]));
    }
    Err("neither `docker-compose` nor `docker compose` runs".into())
}

/// A running compose project and its image, removed on drop.
struct Region {
    compose: Vec<String>,
    project: String,
    file: PathBuf,
    image: String,
    _dir: tempfile::TempDir,
}

impl Region {
    /// `compose -p PROJECT -f FILE args...`.
    fn cmd(&self, args: &[&str]) -> Vec<String> {
        let mut c = self.compose.clone();
        c.extend(["-p".into(), self.project.clone(), "-f".into()]);
        c.push(self.file.display().to_string());
        c.extend(strings(args));
        c
    }

    /// Node `id`'s container health, as Docker reports it.
    fn health(&self, id: u64) -> String {
        let container = ok(&self.cmd(&["ps", "-q", &format!("node{id}")]));
        let out = run(&strings(&[
            "docker",
            "inspect",
            "-f",
            "{{.State.Health.Status}}",
            container.trim(),
        ]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = run(&self.cmd(&["logs", "--tail", "40"]));
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let _ = run(&self.cmd(&["down", "-v", "--remove-orphans", "-t", "2"]));
        let _ = run(&strings(&["docker", "rmi", "-f", &self.image]));
    }
}

/// A host port `base` with `base + 1` and `base + 2` free too.
fn three_ports() -> u16 {
    loop {
        let base = free_port();
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if base < u16::MAX - 2 && free(base + 1) && free(base + 2) {
            return base;
        }
    }
}

/// Builds the image and writes the region's configs and compose.yaml; nothing runs yet.
fn prepare(compose: Vec<String>, base: u16) -> Region {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let unique = format!("{}-{stamp}", std::process::id());
    let dir = tempfile::tempdir().expect("temp dir");
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker");
    let region = Region {
        compose,
        project: format!("ninetytest{}", unique.replace('-', "")),
        file: dir.path().join("compose.yaml"),
        image: format!("ninety-test:{unique}"),
        _dir: dir,
    };
    ok(&[
        "sh".into(),
        docker.join("build-image.sh").display().to_string(),
        env!("CARGO_BIN_EXE_ninety").into(),
        region.image.clone(),
    ]);
    let mut init = strings(&[
        env!("CARGO_BIN_EXE_ninety"),
        "cluster",
        "init",
        "--compose",
        "--region",
        "test",
        "--json",
        "--image",
        &region.image,
        "--base-port",
        &base.to_string(),
        "--dir",
    ]);
    init.push(region._dir.path().display().to_string());
    ok(&init);
    add_referral_token(region._dir.path());
    region
}

/// Makes a token with the `referral` role (holds beds) the documented way, `ninety cluster
/// token`, and adds its stanza to every node config before the region starts.
fn add_referral_token(dir: &Path) {
    let out = dir.join("referral.token");
    let made = ok(&strings(&[
        env!("CARGO_BIN_EXE_ninety"),
        "cluster",
        "token",
        "--json",
        "--name",
        "referral-service",
        "--role",
        "referral",
        "--out",
        &out.display().to_string(),
    ]));
    let answer: serde_json::Value = serde_json::from_str(&made).expect("token JSON");
    let stanza = answer["stanza"].as_str().expect("stanza");
    for id in 1..=3 {
        let config = dir.join(format!("node{id}.toml"));
        let text = std::fs::read_to_string(&config).expect("node config");
        std::fs::write(&config, format!("{text}\n{stanza}")).expect("node config");
    }
}

/// A client of the published ports with the region's CA and the token in `token_file`.
fn client_of(dir: &Path, addrs: &[String], token_file: &str) -> Client {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .to_string()
    };
    let config = Config {
        tls: Some(ninety_client::ClientTls {
            ca_pem: read("tls/ca.pem"),
            identity: None,
            domain: None,
        }),
        token: Some(read(token_file)),
        ..Config::default()
    };
    Client::new(addrs, config).expect("client")
}

/// The region refuses a caller without the token: TLS alone is not an identity.
async fn refuses_the_anonymous(dir: &Path, addrs: &[String]) {
    let ca = std::fs::read_to_string(dir.join("tls/ca.pem")).expect("ca.pem");
    let config = Config {
        tls: Some(ninety_client::ClientTls {
            ca_pem: ca,
            identity: None,
            domain: None,
        }),
        max_attempts: 1,
        ..Config::default()
    };
    let anonymous = Client::new(addrs, config).expect("client");
    let answer = anonymous
        .ward_availability(pb::WardAvailabilityRequest {
            hospital_id: 1,
            ..Default::default()
        })
        .await;
    assert!(
        matches!(&answer, Err(s) if s.code() == tonic::Code::Unauthenticated),
        "a call without a token: {answer:?}"
    );
}

/// Holds a bed and confirms it, retrying (same request ids) until `within` has passed.
async fn hold_and_confirm(client: &Client, tag: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match try_hold_and_confirm(client, tag).await {
            Ok(hold) => return hold,
            Err(s) => last = format!("{}: {}", s.code(), s.message()),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("no hold confirmed within {within:?}: {last}");
}

async fn try_hold_and_confirm(client: &Client, tag: u64) -> Result<u64, tonic::Status> {
    let wards = client
        .ward_availability(pb::WardAvailabilityRequest {
            hospital_id: 1,
            ..Default::default()
        })
        .await?;
    let ward = wards.wards.first().map(|w| w.ward_id).unwrap_or_default();
    let hold = client
        .hold_bed(pb::HoldBedRequest {
            request_id: format!("c0a7a1e5{tag:024x}"),
            ward_id: ward,
            patient_ref: format!("{:032x}", 0xc0a7_0000 + tag),
            ttl_ms: 600_000,
            ..Default::default()
        })
        .await?
        .hold
        .ok_or_else(|| tonic::Status::internal("no hold in the answer"))?;
    client
        .confirm_hold(pb::ConfirmHoldRequest {
            request_id: format!("c0a7c0f1{tag:024x}"),
            hold_id: hold.hold_id,
        })
        .await?;
    Ok(hold.hold_id)
}

/// The node that says it leads, asked on the published ports.
async fn leader(client: &Client) -> u64 {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(s) = client
            .cluster_status(pb::ClusterStatusRequest::default())
            .await
        {
            if s.leader_id != 0 {
                return s.leader_id;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_in_containers_serves_through_the_loss_of_its_leader() {
    let compose = match compose_command() {
        Ok(c) => c,
        Err(why) => {
            eprintln!(
                "SKIPPED a_region_in_containers_serves_through_the_loss_of_its_leader: {why}"
            );
            return;
        }
    };
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    tokio::time::timeout(CONTAINERS_TIMEOUT, async {
        let base = three_ports();
        let region = tokio::task::spawn_blocking(move || prepare(compose, base))
            .await
            .expect("prepare");
        ok(&region.cmd(&["up", "-d"]));
        let addrs: Vec<String> = (0..3).map(|k| format!("127.0.0.1:{}", base + k)).collect();
        let dir = region._dir.path().to_path_buf();
        let client = client_of(&dir, &addrs, "referral.token");
        hold_and_confirm(&client, 1, READY_WITHIN).await;
        refuses_the_anonymous(&dir, &addrs).await;
        let victim = leader(&client_of(&dir, &addrs, "operator.token")).await;
        ok(&region.cmd(&["kill", &format!("node{victim}")]));
        let others: Vec<String> = (1..=3u64)
            .filter(|id| *id != victim)
            .map(|id| addrs[(id - 1) as usize].clone())
            .collect();
        let survivors = client_of(&dir, &others, "referral.token");
        hold_and_confirm(&survivors, 2, Duration::from_secs(30)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        for id in (1..=3u64).filter(|id| *id != victim) {
            while region.health(id) != "healthy" {
                assert!(Instant::now() < deadline, "node{id} not healthy");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        drop(region);
    })
    .await
    .expect("the container scenario timed out");
    eprintln!(
        "containers scenario took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
