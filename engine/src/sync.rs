//! The publication primitive of the availability view: a single-writer, many-reader
//! atomically swappable `Arc<T>` (`Publisher` / `Reader`), and the mapping of its atomic
//! types to `loom` under `cfg(loom)` so the model tests in `tests/loom.rs` check the very
//! protocol the engine runs (as tokio's `src/loom/mod.rs` does).
//!
//! Protocol. The current value lives in `current` as a pointer from `Arc::into_raw`, which
//! owns one strong reference. A reader announces itself in `readers` *before* it loads the
//! pointer, takes its own strong reference, then leaves. The writer swaps in the new pointer
//! and parks the old `Arc` in a private retired list; it drops the retired values only when
//! it sees `readers == 0` *after* its swap. Neither side ever waits for the other: readers
//! never block the apply path, and the writer never blocks on readers (it only defers frees).
//!
//! Memory orderings. Both sides meet on `readers` through read-modify-write operations
//! only (the writer reads it with `fetch_add(0)`), and RMWs on one atomic are totally
//! ordered and always read the latest value, so no `SeqCst` store→load reasoning is needed
//! (loom models `SeqCst` as `AcqRel`; this protocol is correct under `AcqRel`):
//! - the reader's announcement (`fetch_add(1, AcqRel)`) comes before the writer's check in
//!   that order: the writer reads `readers > 0` and keeps the old value alive;
//! - the writer's check (`fetch_add(0, AcqRel)`) comes first: the reader's announcement
//!   reads from it (or a later RMW, continuing its release sequence), so the writer's
//!   `swap` happens before the reader's pointer load, which therefore sees the new pointer
//!   (or a newer one), never a retired one.
//!
//! The pointer `swap` is `AcqRel` and the reader's load `Acquire`, so a reader sees the
//! value's contents. The reader's `fetch_sub(1, Release)` is read by the writer's acquiring
//! check when it sees zero, so the reader's strong-count increment happens before the
//! writer drops its reference. `Arc` itself orders the final free against other holders.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(loom)]
use loom::thread::yield_now;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub use std::sync::Arc;
#[cfg(not(loom))]
use std::thread::yield_now;

struct Shared<T> {
    /// `Arc::into_raw` of the current value; owns one strong reference.
    current: AtomicPtr<T>,
    /// Readers between announcing themselves and owning their own strong reference.
    readers: AtomicUsize,
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let p = self.current.load(Ordering::Acquire);
        // SAFETY: `current` always holds a pointer from `Arc::into_raw` owning one strong
        // reference, and no reader can exist once the last handle to `Shared` is gone.
        drop(unsafe { Arc::from_raw(p as *const T) });
    }
}

// SAFETY: `Shared<T>` hands out `Arc<T>` clones across threads; that is sound exactly when
// `Arc<T>` is `Send + Sync`, i.e. when `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

/// The writing side: exactly one, owned by the engine.
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
    /// Values swapped out while a reader may still be taking a reference to them.
    retired: Vec<Arc<T>>,
}

/// A reading side: cheap to clone, `Send + Sync`, never blocks.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Reader {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Publisher<T> {
    /// A publisher holding `initial`.
    pub fn new(initial: Arc<T>) -> Publisher<T> {
        let shared = Shared {
            current: AtomicPtr::new(Arc::into_raw(initial) as *mut T),
            readers: AtomicUsize::new(0),
        };
        Publisher {
            shared: Arc::new(shared),
            retired: Vec::new(),
        }
    }

    /// A new reader of this publisher.
    pub fn reader(&self) -> Reader<T> {
        Reader {
            shared: self.shared.clone(),
        }
    }

    /// Makes `next` the value every later `Reader::load` returns.
    pub fn publish(&mut self, next: Arc<T>) {
        let next = Arc::into_raw(next) as *mut T;
        let old = self.shared.current.swap(next, Ordering::AcqRel);
        // SAFETY: `old` came from `Arc::into_raw` and owned one strong reference, which the
        // swap transferred to us.
        self.retired.push(unsafe { Arc::from_raw(old as *const T) });
        if self.shared.readers.fetch_add(0, Ordering::AcqRel) == 0 {
            // No reader is between its announcement and its own reference, and any later
            // reader sees `next` (see the module doc): the retired values may go.
            self.retired.clear();
        }
    }

    /// How many swapped-out values wait for a quiet moment to be dropped.
    pub fn retired(&self) -> usize {
        self.retired.len()
    }
}

impl<T> Drop for Publisher<T> {
    fn drop(&mut self) {
        // A reader may have loaded a retired pointer and not yet taken its reference; wait
        // for the (few-instruction) critical sections to end before the retired values go.
        // Only the writer's teardown ever waits, never a publication.
        while !self.retired.is_empty() && self.shared.readers.fetch_add(0, Ordering::AcqRel) != 0 {
            yield_now();
        }
    }
}

impl<T> Reader<T> {
    /// The latest published value. Lock-free: a few atomic operations, no waiting.
    pub fn load(&self) -> Arc<T> {
        self.shared.readers.fetch_add(1, Ordering::AcqRel);
        let p = self.shared.current.load(Ordering::Acquire) as *const T;
        // SAFETY: `p` came from `Arc::into_raw`; the writer does not drop the reference
        // `current` owned while we are announced in `readers` (module doc), so the value is
        // alive and we may add a strong reference of our own.
        let value = unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        };
        self.shared.readers.fetch_sub(1, Ordering::Release);
        value
    }
}
