//! The audit log: one JSON line per state-changing call, per Admin call (ClusterStatus
//! included) and per refused call (`UNAUTHENTICATED`, `PERMISSION_DENIED`).
//!
//! Owns the line format, the request-id notes the handlers make, and the one background
//! task that writes the file. A line holds the time (UTC, RFC 3339 with milliseconds), the
//! caller's name and roles, the rpc (`ninety.v1.Service/Method`), the request ids as the
//! client sent them (at most [`REQUEST_IDS_PER_LINE_MAX`], with their count), the outcome
//! (the gRPC code name) and the peer address. Never a request body: no patient refs, no
//! other field.
//!
//! **How a call becomes a line.** The auth layer (`security::auth`) makes an [`Entry`] for
//! every audited call and scopes it (a tokio task-local) around the handler;
//! `server::parse_request_id`, the one function every request id passes through, notes the
//! id in it ([`note_request_id`]). `BedHolds.Stream` carries the entry into its own task
//! ([`current`], [`scope`]) so each op's id is noted. The layer records the outcome from the
//! response headers (tonic sends a failed unary call's status there; no status means OK; a
//! stream's outcome is that of opening it). The line is sent when the last holder of the
//! entry drops it: at the end of a unary call, at the end of a stream; a call the client
//! abandons is written with outcome `CANCELLED`.
//!
//! **Never blocking the calls.** Lines go through a bounded channel
//! ([`AUDIT_QUEUE_LINES_MAX`]) to one writer task; a full channel drops the line and counts
//! it, and the writer records the count of dropped lines in the file (`{"dropped": n}`), so
//! a gap is visible. The writer flushes whenever the channel is empty and at shutdown.
//!
//! A call is recorded by the node the client called (a write it forwards to the leader is
//! not recorded again there). The file is opened once, for appending, readable by its owner
//! only (0600 on Unix); rotate it with copy-and-truncate (logrotate's `copytruncate`).

use crate::error::Error;
use crate::security::roles::Roles;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Lines waiting for the writer before new ones are dropped (and counted).
pub const AUDIT_QUEUE_LINES_MAX: usize = 4096;
/// Request ids written on one line (a batch or stream notes its count beyond this).
pub const REQUEST_IDS_PER_LINE_MAX: usize = 16;
/// Longest request id written, characters (a valid one is at most 128 bytes).
pub const REQUEST_ID_CHARS_MAX: usize = 128;
/// How long shutdown waits for the writer to drain the channel and flush.
pub const AUDIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The sending side of the audit log; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: tokio::sync::mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
}

/// The writer task; [`Writer::finish`] waits for it at shutdown.
pub struct Writer {
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl AuditLog {
    /// Opens (appends to, creating) the file at `path` and starts the writer task.
    pub fn open(path: &Path) -> Result<(AuditLog, Writer), Error> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .map_err(|e| Error::Startup(format!("audit_log = {}: {e}", path.display())))?;
        let (tx, rx) = tokio::sync::mpsc::channel(AUDIT_QUEUE_LINES_MAX);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let shown = path.to_path_buf();
        let task = tokio::task::spawn_blocking(move || write_lines(rx, file, &counter, &shown));
        let writer = Writer {
            task,
            path: path.to_path_buf(),
        };
        Ok((AuditLog { tx, dropped }, writer))
    }

    /// Queues one line; never waits. A full channel drops it and counts the drop.
    fn send(&self, line: String) {
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped so far because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Writer {
    /// Waits (at most [`AUDIT_FLUSH_TIMEOUT`]) until every sender is gone and the writer
    /// has written and flushed what it was sent.
    pub async fn finish(self) {
        if tokio::time::timeout(AUDIT_FLUSH_TIMEOUT, self.task)
            .await
            .is_err()
        {
            tracing::warn!(path = %self.path.display(), "audit log writer still busy at shutdown");
        }
    }
}

/// The writer task: drains the channel, flushes when it is empty, records drops.
fn write_lines(
    mut rx: tokio::sync::mpsc::Receiver<String>,
    file: std::fs::File,
    dropped: &AtomicU64,
    path: &Path,
) {
    let mut out = std::io::BufWriter::new(file);
    let mut reported = 0;
    let mut failed = false;
    while let Some(first) = rx.blocking_recv() {
        let mut result = writeln!(out, "{first}");
        while let Ok(line) = rx.try_recv() {
            result = result.and_then(|()| writeln!(out, "{line}"));
        }
        let now_dropped = dropped.load(Ordering::Relaxed);
        if now_dropped > reported {
            let line = serde_json::json!({ "time": rfc3339_ms(SystemTime::now()), "dropped": now_dropped });
            result = result.and_then(|()| writeln!(out, "{line}"));
            reported = now_dropped;
        }
        result = result.and_then(|()| out.flush());
        // One error message per failing streak, not one per line.
        match result {
            Err(e) if !failed => {
                tracing::error!(path = %path.display(), error = %e, "audit log write failed");
                failed = true;
            }
            Err(_) => {}
            Ok(()) => failed = false,
        }
    }
    let _ = out.flush();
}

/// The record of one audited call, written when the last holder drops it.
#[derive(Debug)]
pub struct Entry {
    log: AuditLog,
    time: SystemTime,
    caller: Option<(Arc<str>, Roles)>,
    rpc: String,
    peer: Option<SocketAddr>,
    notes: Mutex<Notes>,
}

#[derive(Debug)]
struct Notes {
    request_ids: Vec<String>,
    count: u64,
    outcome: &'static str,
}

impl Entry {
    /// A record for a call to `rpc` (path without the leading `/`) by `caller` (None:
    /// not authenticated) from `peer`; its outcome is `CANCELLED` until set.
    pub fn new(
        log: &AuditLog,
        caller: Option<(Arc<str>, Roles)>,
        rpc: &str,
        peer: Option<SocketAddr>,
    ) -> Entry {
        Entry {
            log: log.clone(),
            time: SystemTime::now(),
            caller,
            rpc: rpc.trim_start_matches('/').to_string(),
            peer,
            notes: Mutex::new(Notes {
                request_ids: Vec::new(),
                count: 0,
                outcome: code_name(tonic::Code::Cancelled),
            }),
        }
    }

    /// Records the call's outcome.
    pub fn set_outcome(&self, code: tonic::Code) {
        if let Ok(mut n) = self.notes.lock() {
            n.outcome = code_name(code);
        }
    }

    fn note(&self, request_id: &str) {
        if let Ok(mut n) = self.notes.lock() {
            n.count += 1;
            if n.request_ids.len() < REQUEST_IDS_PER_LINE_MAX {
                let id: String = request_id.chars().take(REQUEST_ID_CHARS_MAX).collect();
                n.request_ids.push(id);
            }
        }
    }

    /// The JSON line.
    pub fn line(&self) -> String {
        let (ids, count, outcome) = match self.notes.lock() {
            Ok(n) => (n.request_ids.clone(), n.count, n.outcome),
            Err(_) => (Vec::new(), 0, "UNKNOWN"),
        };
        let (caller, roles) = match &self.caller {
            Some((name, roles)) => (serde_json::json!(&**name), roles.names()),
            None => (serde_json::Value::Null, Vec::new()),
        };
        serde_json::json!({
            "time": rfc3339_ms(self.time),
            "caller": caller,
            "roles": roles,
            "rpc": self.rpc,
            "request_ids": ids,
            "request_id_count": count,
            "outcome": outcome,
            "peer": self.peer.map(|p| p.to_string()),
        })
        .to_string()
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.log.send(self.line());
    }
}

tokio::task_local! {
    static CALL: Arc<Entry>;
}

/// Notes a request id, as the client sent it, in the audited call this task serves (no-op
/// outside one, e.g. for reads).
pub fn note_request_id(text: &str) {
    let _ = CALL.try_with(|e| e.note(text));
}

/// The audited call this task serves, to carry into a task it spawns.
pub fn current() -> Option<Arc<Entry>> {
    CALL.try_with(Arc::clone).ok()
}

/// Runs `f` with `entry` as the audited call (as is, when None).
pub async fn scope<F: std::future::Future>(entry: Option<Arc<Entry>>, f: F) -> F::Output {
    match entry {
        Some(e) => CALL.scope(e, f).await,
        None => f.await,
    }
}

/// A gRPC code's canonical name (`PERMISSION_DENIED`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `t` as UTC RFC 3339 with milliseconds (`2026-11-30T14:05:09.123Z`).
pub fn rfc3339_ms(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let (days, ms_of_day) = ((ms / 86_400_000) as i64, (ms % 86_400_000) as u64);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::roles::Role;

    #[test]
    fn times_are_utc_rfc3339_with_milliseconds() {
        let at = |ms: u64| rfc3339_ms(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_796_051_109_123), "2026-11-30T15:05:09.123Z");
    }

    #[tokio::test]
    async fn a_full_queue_drops_lines_and_the_file_says_how_many() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let file = std::fs::File::create(&path).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let dropped = Arc::new(AtomicU64::new(0));
        let log = AuditLog {
            tx,
            dropped: dropped.clone(),
        };
        for i in 0..5 {
            drop(Entry::new(
                &log,
                None,
                &format!("/ninety.v1.Admin/Call{i}"),
                None,
            ));
        }
        assert_eq!(log.dropped(), 3);
        drop(log);
        let shown = path.clone();
        tokio::task::spawn_blocking(move || write_lines(rx, file, &dropped, &shown))
            .await
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["rpc"], "ninety.v1.Admin/Call0");
        assert_eq!(lines[1]["rpc"], "ninety.v1.Admin/Call1");
        assert_eq!(lines[2]["dropped"], 3);
    }

    #[tokio::test]
    async fn a_line_names_the_caller_ids_and_outcome_and_is_flushed_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (log, writer) = AuditLog::open(&path).unwrap();
        let caller = Some((Arc::<str>::from("ops"), Roles::from_iter([Role::Operator])));
        let peer = Some("127.0.0.1:5000".parse().unwrap());
        let entry = Arc::new(Entry::new(
            &log,
            caller,
            "/ninety.v1.Admin/SnapshotNow",
            peer,
        ));
        scope(Some(entry.clone()), async {
            for i in 0..20 {
                note_request_id(&format!("id-{i}"));
            }
        })
        .await;
        note_request_id("outside any call");
        entry.set_outcome(tonic::Code::Ok);
        drop(entry);
        drop(Entry::new(&log, None, "/ninety.v1.Admin/AddMember", None));
        drop(log);
        writer.finish().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let first = &lines[0];
        assert_eq!(first["caller"], "ops");
        assert_eq!(first["roles"], serde_json::json!(["operator"]));
        assert_eq!(first["rpc"], "ninety.v1.Admin/SnapshotNow");
        assert_eq!(first["outcome"], "OK");
        assert_eq!(first["request_id_count"], 20);
        assert_eq!(
            first["request_ids"].as_array().unwrap().len(),
            REQUEST_IDS_PER_LINE_MAX
        );
        assert_eq!(first["peer"], "127.0.0.1:5000");
        assert_eq!(lines[1]["caller"], serde_json::Value::Null);
        assert_eq!(lines[1]["outcome"], "CANCELLED");
    }
}
