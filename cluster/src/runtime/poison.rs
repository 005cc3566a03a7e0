//! The durable record of a poisoned entry: `<data_dir>/APPLY_PANIC.toml`.
//!
//! When the state machine panics applying a committed entry, the node core stops
//! (`node::ApplyPanic`) and the runtime writes this file before the process exits. A node
//! whose data directory holds it refuses to start, with the same message and the operator
//! procedure, before it opens its store or binds its port: a supervisor restarting it in a
//! loop gets the same clear refusal each time instead of a replay that panics again.
//!
//! There is no "skip this entry": every replica must apply the same log to the same state,
//! and a replica that skipped an entry another one applied (an older binary, or one whose
//! panic came later in the entry) would silently diverge. The way out is a binary that does
//! not panic on the entry, on every node; then the operator removes this file on each node
//! (docs/operations.md, "A panic in apply").

use crate::error::Error;
use crate::node::ApplyPanic;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The marker's file name inside the data directory.
pub const MARKER_FILE: &str = "APPLY_PANIC.toml";
/// Largest marker file read back (it holds a bounded message and at most 16 commands).
const MARKER_BYTES_MAX: u64 = 64 * 1024;

/// Where node data directory `data_dir` keeps the marker.
pub fn marker_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MARKER_FILE)
}

/// What the operator must do, for the refusal and the fatal log line.
pub fn procedure(marker: &Path) -> String {
    format!(
        "every replica that applies this entry panics the same way, so do not wipe the data \
         directory and do not restart in a loop; install a ninety binary that fixes the panic \
         on every node, then delete {MARKER_FILE} from each node's data directory (here {}) \
         and start them (docs/operations.md, \"A panic in apply\")",
        marker.display()
    )
}

/// Records `panic` durably in `data_dir` (written to a temporary file, fsynced, renamed,
/// and the directory fsynced), so the next start refuses.
pub fn record(data_dir: &Path, panic: &ApplyPanic) -> Result<(), Error> {
    let path = marker_path(data_dir);
    let tmp = data_dir.join(format!("{MARKER_FILE}.tmp"));
    let body = toml::to_string(panic)
        .map_err(|e| Error::Storage(format!("{}: encoding: {e}", path.display())))?;
    let text = format!(
        "# Written by `ninety node` when the state machine panicked on a committed entry.\n\
         # The node refuses to start while this file exists. What to do: {}.\n{body}",
        procedure(&path)
    );
    let io = |p: &Path, e: std::io::Error| Error::Storage(format!("{}: {e}", p.display()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(text.as_bytes()).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(data_dir, e))
}

/// Refuses to start when `data_dir` holds a marker: the error repeats the recorded panic
/// (or says the marker is unreadable) and the procedure. Reads only.
pub fn check(data_dir: &Path) -> Result<(), Error> {
    let path = marker_path(data_dir);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(());
    };
    let recorded = if meta.len() > MARKER_BYTES_MAX {
        Err(format!("{} bytes, more than a marker holds", meta.len()))
    } else {
        std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<ApplyPanic>(&t).map_err(|e| e.to_string()))
    };
    let what = match recorded {
        Ok(p) => p.to_string(),
        Err(e) => format!("an earlier run recorded a panic in apply (unreadable record: {e})"),
    };
    Err(Error::Startup(format!(
        "{} records a panic in apply: {what}. What to do: {}",
        path.display(),
        procedure(&path)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_panic_refuses_the_next_start_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check(dir.path()).is_ok());
        let panic = ApplyPanic {
            index: 57,
            term: 3,
            during: "applying".into(),
            command_count: 2,
            commands: vec!["request 0bad HoldBed".into(), "request 0bae Tick".into()],
            message: "index out of bounds \"quoted\"\nsecond line".into(),
        };
        record(dir.path(), &panic).unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        for want in [
            "log entry 57",
            "term 3",
            "request 0bad HoldBed",
            "second line",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(
            e.contains(MARKER_FILE) && e.contains("docs/operations.md"),
            "{e}"
        );
        std::fs::write(marker_path(dir.path()), "garbage = [").unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(e.contains("unreadable record"), "{e}");
        std::fs::remove_file(marker_path(dir.path())).unwrap();
        assert!(check(dir.path()).is_ok());
    }
}
