//! `ninety health`: whether a node's client listener answers the standard gRPC health
//! check (`grpc.health.v1.Health/Check`, open to every caller: no credentials needed but
//! the CA with TLS). Exit 0 when it reports SERVING, 1 otherwise: a container health
//! check (`docker/`, compose.yaml) or a load balancer's probe.

use super::{emit, Failure, Global};
use ninety_client::Client;
use serde_json::json;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// `ninety health`: asks every node of --nodes; fails if any is not serving.
pub async fn run(g: &Global) -> Result<(), Failure> {
    let config = g.config()?;
    let mut rows = Vec::new();
    let mut failed = None;
    for addr in g.addrs() {
        let status = match Client::new(&[addr.as_str()], config.clone()) {
            Ok(c) => check(&c).await,
            Err(e) => Err(tonic::Status::invalid_argument(e.to_string())),
        };
        let text = match &status {
            Ok(s) => s.as_str_name().to_string(),
            Err(s) => format!("{}: {}", super::code_name(s.code()), s.message()),
        };
        if !matches!(status, Ok(ServingStatus::Serving)) && failed.is_none() {
            failed = Some(format!("{addr}: {text}"));
        }
        rows.push((addr, text));
    }
    let human: String = rows.iter().map(|(a, t)| format!("{a}: {t}\n")).collect();
    let list: Vec<_> = rows
        .iter()
        .map(|(a, t)| json!({ "address": a, "status": t }))
        .collect();
    emit(g, json!({ "nodes": list }), human);
    match failed {
        Some(why) => Err(Failure::Other(anyhow::anyhow!("not serving: {why}"))),
        None => Ok(()),
    }
}

/// One node's overall health (the empty service name).
async fn check(c: &Client) -> Result<ServingStatus, tonic::Status> {
    let timeout = c.config().total_timeout;
    let mut health = HealthClient::new(c.channel());
    let ask = health.check(HealthCheckRequest {
        service: String::new(),
    });
    let answer = tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("no answer in time"))??;
    Ok(ServingStatus::try_from(answer.into_inner().status).unwrap_or(ServingStatus::Unknown))
}
