//! The snapshot writer: a thread that turns the node's [`SnapshotJob`]s into snapshot
//! files, so the node task never encodes or fsyncs a snapshot (`node::snapshots`). The
//! node task only takes the job's image (timed and logged here as `image_ms`); the writer
//! encodes it, writes the file with `SnapshotFiles::write` (temporary file, fsync, rename,
//! fsync of the directory) and reports back; the node task steps `Input::SnapshotWritten`
//! and the node records the snapshot in the store and compacts the log. One job at a time
//! (the node hands out no other until the report). A write error stops the writer and the
//! node task with it (fatal, like a failed fsync of the persistence worker).

use crate::eraftpb::Snapshot;
use crate::error::Error;
use crate::node::SnapshotJob;
use crate::storage::SnapshotFiles;
use std::sync::mpsc;
use std::time::Instant;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// A snapshot written durably.
#[derive(Debug)]
pub struct Written {
    /// Its metadata (no data: the store records the file by its metadata alone).
    pub snapshot: Snapshot,
    /// Size of its data, bytes.
    pub bytes: u64,
    /// The state hash of the image, for a job asked for by `SnapshotNow` (else `None`).
    pub state_hash: Option<[u8; 32]>,
}

/// What the writer reports for each job: written, or the error that stopped it.
pub type Report = Result<Written, String>;

/// The running writer, as the node task sees it (its reports come on the receiver
/// [`Writer::start`] returns, in job order).
pub struct Writer {
    jobs: mpsc::Sender<(SnapshotJob, u128)>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer on `files` (the store's snapshot directory).
    pub fn start(files: SnapshotFiles) -> Result<(Writer, UnboundedReceiver<Report>), Error> {
        let (jobs, queue) = mpsc::channel();
        let (report_tx, reports) = unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || run(&files, &queue, &report_tx))
            .map_err(|e| Error::Storage(format!("cannot start the snapshot writer: {e}")))?;
        Ok((Writer { jobs, thread }, reports))
    }

    /// Hands `job` to the writer; `image_us` bounds how long the node task spent making it
    /// (the poll that took the image; logged with the writer's own times). A stopped
    /// writer already reported why.
    pub fn write(&self, job: SnapshotJob, image_us: u128) {
        let _ = self.jobs.send((job, image_us));
    }

    /// Stops the writer after the job in hand (its file may be written and never
    /// recorded: the store deletes such a file when it opens) and waits for its thread.
    pub fn stop(self) {
        drop(self.jobs);
        if self.thread.join().is_err() {
            tracing::error!("the snapshot writer panicked");
        }
    }
}

fn run(
    files: &SnapshotFiles,
    queue: &mpsc::Receiver<(SnapshotJob, u128)>,
    reports: &UnboundedSender<Report>,
) {
    while let Ok((job, image_us)) = queue.recv() {
        let report = write(files, &job, image_us).map_err(|e| e.to_string());
        let failed = report.is_err();
        // The node task may be gone (stopping): the file is cleaned at the next open.
        let _ = reports.send(report);
        if failed {
            return;
        }
    }
}

/// Encodes `job`, writes its file durably, and logs where the time went.
fn write(files: &SnapshotFiles, job: &SnapshotJob, image_us: u128) -> Result<Written, Error> {
    let started = Instant::now();
    let mut snapshot = job.encode();
    let encode_ms = started.elapsed().as_millis();
    let wrote = Instant::now();
    files.write(&snapshot)?;
    let write_ms = wrote.elapsed().as_millis();
    let state_hash = job.requested.then(|| job.state_hash());
    let bytes = snapshot.get_data().len() as u64;
    tracing::info!(
        index = job.index,
        term = job.term,
        bytes,
        poll_ms = format_args!("{:.1}", image_us as f64 / 1000.0),
        encode_ms,
        write_ms,
        "snapshot written off the node task (the node task's share: the image, within the \
         poll that took it, poll_ms)"
    );
    snapshot.data = Default::default();
    Ok(Written {
        snapshot,
        bytes,
        state_hash,
    })
}
