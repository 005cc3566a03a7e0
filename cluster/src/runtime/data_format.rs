//! The data directory's format stamp: a `FORMAT` file that says which encoding of the Raft
//! log and snapshots the directory holds, so a node never misreads data of another format.
//!
//! Format 2 (this build) keys requests by `ninety_engine::RequestKey` (client ids keep all
//! 128 bits, textual ids are hashed with SHA-256) and fingerprints commands with SHA-256.
//! Format 1 directories have no `FORMAT` file; their log entries would decode as something
//! else, not fail, so the node refuses to start on them and names the procedure
//! (`docs/operations.md`, "Upgrading from format 1").

use crate::error::Error;
use std::io::Write;
use std::path::Path;

/// The format this build reads and writes.
pub const DATA_FORMAT_VERSION: u32 = 2;
/// The stamp's file name inside the data directory.
pub const FORMAT_FILE: &str = "FORMAT";
/// The sled directory inside the data directory (its presence means the node has data).
pub const RAFT_DIR: &str = "raft";
/// The stamp's first word.
const STAMP_PREFIX: &str = "ninety-data-format";
/// The longest stamp file read, in bytes (a stamp is one short line).
const STAMP_BYTES_MAX: u64 = 256;

/// Checks that `data_dir` holds data of [`DATA_FORMAT_VERSION`], stamping a directory
/// without data first. Refuses (with the versions and the operator procedure) a directory
/// of another format, including format 1 (data without a stamp).
pub fn check_or_stamp(data_dir: &Path) -> Result<(), Error> {
    let stamp = data_dir.join(FORMAT_FILE);
    match read_stamp(&stamp)? {
        Some(v) if v == DATA_FORMAT_VERSION => Ok(()),
        Some(v) => Err(refusal(data_dir, &v.to_string())),
        None if data_dir.join(RAFT_DIR).exists() => Err(refusal(data_dir, "1 (no FORMAT file)")),
        None => write_stamp(data_dir, &stamp),
    }
}

/// The stamp's version, `None` when there is no stamp.
fn read_stamp(stamp: &Path) -> Result<Option<u32>, Error> {
    let text = match std::fs::File::open(stamp) {
        Ok(f) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::Read::take(f, STAMP_BYTES_MAX), &mut text)
                .map_err(|e| Error::Storage(format!("{}: {e}", stamp.display())))?;
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Storage(format!("{}: {e}", stamp.display()))),
    };
    let version = text
        .trim()
        .strip_prefix(STAMP_PREFIX)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| {
            Error::Config(format!(
                "{}: not a data format stamp (expected `{STAMP_PREFIX} <n>`, found {:?})",
                stamp.display(),
                text.chars().take(64).collect::<String>()
            ))
        })?;
    Ok(Some(version))
}

/// Writes the stamp durably (file, then directory) before any data exists.
fn write_stamp(data_dir: &Path, stamp: &Path) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Storage(format!("{}: {e}", stamp.display()));
    let mut f = std::fs::File::create(stamp).map_err(io)?;
    writeln!(f, "{STAMP_PREFIX} {DATA_FORMAT_VERSION}").map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

fn refusal(data_dir: &Path, found: &str) -> Error {
    Error::Config(format!(
        "data directory {} holds data format {found}; this build reads data format \
         {DATA_FORMAT_VERSION} only (request ids and command fingerprints changed) and will \
         not misread it. There is no in-place upgrade: keep running the old build on it, or \
         start a new cluster of this build on empty data directories and import the region \
         (a single node of a format-{DATA_FORMAT_VERSION} cluster: empty its data directory \
         and add it back with remove-member, add-member). See docs/operations.md, \
         \"Upgrading from format 1\"",
        data_dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_a_new_directory_and_refuses_other_formats() {
        let dir = std::env::temp_dir().join(format!("ninety-format-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        check_or_stamp(&dir).unwrap();
        check_or_stamp(&dir).unwrap();
        std::fs::write(dir.join(FORMAT_FILE), "ninety-data-format 1\n").unwrap();
        let e = check_or_stamp(&dir).unwrap_err().to_string();
        assert!(
            e.contains("format 1;") && e.contains("Upgrading from format 1"),
            "{e}"
        );
        std::fs::remove_file(dir.join(FORMAT_FILE)).unwrap();
        std::fs::create_dir_all(dir.join(RAFT_DIR)).unwrap();
        let e = check_or_stamp(&dir).unwrap_err().to_string();
        assert!(e.contains("format 1 (no FORMAT file)"), "{e}");
        std::fs::write(dir.join(FORMAT_FILE), "garbage").unwrap();
        assert!(check_or_stamp(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
