//! The `/metrics` endpoint: a minimal HTTP/1.1 server on `metrics_listen`, enough for
//! Prometheus (and curl): one `GET /metrics` per connection, answered and closed.
//!
//! Hand-written rather than a second web framework: the node's only other HTTP is tonic's
//! HTTP/2, and a scrape endpoint needs no routing, keep-alive or bodies. Bounded like the
//! rest of the node: a request head is at most [`REQUEST_HEAD_BYTES_MAX`], must arrive
//! within [`REQUEST_HEAD_TIMEOUT_MS`], and at most [`CONNECTIONS_MAX`] connections are
//! served at once (more wait in the kernel's backlog). Scrapes run one at a time: each
//! reads the gauges then encodes, and reads nothing the node task holds.

use super::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head read, bytes (request line and headers).
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Time a client has to send its request head, ms.
pub const REQUEST_HEAD_TIMEOUT_MS: u64 = 5_000;
/// Connections served at once.
pub const CONNECTIONS_MAX: usize = 16;
/// The OpenMetrics text format `prometheus-client` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `metrics` on `listener` until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let scrapes = Arc::new(tokio::sync::Mutex::new(()));
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, _) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (metrics, scrapes) = (metrics.clone(), scrapes.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = answer(stream, &metrics, &scrapes).await;
        });
    }
}

/// Reads one request head and answers it.
async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    scrapes: &tokio::sync::Mutex<()>,
) -> std::io::Result<()> {
    let timeout = Duration::from_millis(REQUEST_HEAD_TIMEOUT_MS);
    let head = match tokio::time::timeout(timeout, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Err(e)) => return Err(e),
        // Too slow, too long or cut: answered 400 where a reply can still be sent.
        _ => {
            return respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                "bad request\n",
            )
            .await
        }
    };
    let mut parts = head.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => {
            let text = {
                let _one = scrapes.lock().await;
                metrics.scrape()
            };
            respond(&mut stream, "200 OK", CONTENT_TYPE, &text).await
        }
        (Some("GET"), _) => {
            respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n").await
        }
        _ => {
            let body = "only GET /metrics\n";
            respond(&mut stream, "405 Method Not Allowed", "text/plain", body).await
        }
    }
}

/// The request line, once the whole head (up to its blank line) is read; `None` when the
/// head is longer than [`REQUEST_HEAD_BYTES_MAX`] or the connection ends first.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            return Ok(head.lines().next().map(str::to_string));
        }
        if buf.len() > REQUEST_HEAD_BYTES_MAX {
            return Ok(None);
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
