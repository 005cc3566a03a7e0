//! Crash points for tests of the real binary: a node started with `fault_injection = true`
//! dies at a named point in its code when the file `CRASH_AT` in its data directory names
//! that point. The file is removed first (the point fires once), then the process aborts
//! (`std::process::abort`: no destructors, no flush, nothing sent — a kill -9 at a chosen
//! line). Without `fault_injection` no file is ever read.
//!
//! The points (each a moment the protocol must survive, `docs/protocol.md`):
//! - `remote-answered-hold`, `remote-answered-confirm`, `remote-answered-release`: the
//!   cross-region driver got the destination's answer to that step and has not yet
//!   recorded it in the origin ([`crate::runtime::remote_driver`]).

use std::path::PathBuf;

/// The switch file's name in the data directory.
pub const CRASH_FILE: &str = "CRASH_AT";

/// Where a node looks for its armed crash point (`None`: fault injection is off).
#[derive(Clone, Debug, Default)]
pub struct CrashPoints {
    file: Option<PathBuf>,
}

impl CrashPoints {
    /// Points armed by `file` (`None` disables them).
    pub fn new(file: Option<PathBuf>) -> CrashPoints {
        CrashPoints { file }
    }

    /// No point ever fires.
    pub fn off() -> CrashPoints {
        CrashPoints { file: None }
    }

    /// Aborts the process if the switch file names `point` (removing the file first).
    pub fn hit(&self, point: &str) {
        if self.armed(point) {
            tracing::error!(point, "crash point reached: aborting (fault injection)");
            std::process::abort();
        }
    }

    /// Whether the switch file names `point`; disarms it if so.
    fn armed(&self, point: &str) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let named = std::fs::read_to_string(file).is_ok_and(|t| t.trim() == point);
        named && std::fs::remove_file(file).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_is_armed_by_its_name_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join(CRASH_FILE);
        let points = CrashPoints::new(Some(file.clone()));
        assert!(!points.armed("remote-answered-hold"), "no file");
        std::fs::write(&file, "remote-answered-confirm\n").expect("arm");
        assert!(!points.armed("remote-answered-hold"), "another point");
        assert!(points.armed("remote-answered-confirm"));
        assert!(!file.exists(), "fired once");
        assert!(!points.armed("remote-answered-confirm"));
        std::fs::write(&file, "remote-answered-hold").expect("arm");
        assert!(!CrashPoints::off().armed("remote-answered-hold"), "off");
    }
}
