//! The node's change feed: the engine's events for the entries this node applied, kept in
//! a bounded ring and published to watchers (the `Watch` service, `server::watch`).
//!
//! The apply adapter (`engine_sm`) calls [`Feed::record`] after each command with the
//! events it emitted, tagged with the entry's index and a position within the entry; the
//! node task's work per event is O(1): one push into the ring (dropping its oldest event
//! when full) and one send on a `tokio::sync::broadcast` channel, which never waits for a
//! watcher. A watcher that falls more than [`WATCH_LAG_EVENTS_MAX`] events behind is cut
//! with [`FeedError::Lagged`] naming where to resume, rather than slowing the node.
//!
//! **Retention.** The ring holds the last `watch_events_retained` events (node TOML,
//! default [`WATCH_EVENTS_RETAINED`]); [`Feed::oldest_index`] is the first index whose
//! events are all still kept. Events are not in snapshots: a node that started from a
//! snapshot at index S, or installed one, serves events from S + 1 on. A start before
//! the oldest kept index is refused ([`FeedError::Compacted`]); a snapshot installed while
//! watchers run cuts them ([`FeedError::Gap`]): they resume on a node that kept the events.

use crate::metrics::feed_counts::FeedCounts;
use ninety_engine::Event;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;

/// Events a node keeps for resuming watchers (default of `watch_events_retained`).
pub const WATCH_EVENTS_RETAINED: usize = 65_536;
/// Events a watcher may fall behind the node before it is cut (the broadcast channel's
/// capacity).
pub const WATCH_LAG_EVENTS_MAX: usize = 4_096;

/// Where an event sits in the log: its entry and its position among that entry's events.
/// Ordered as the feed is: by index, then position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    pub index: u64,
    pub position: u32,
}

impl Cursor {
    /// The cursor just after this one (where a watcher that saw it resumes).
    pub fn next(self) -> Cursor {
        Cursor {
            index: self.index,
            position: self.position.saturating_add(1),
        }
    }
}

/// One event of the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEvent {
    pub at: Cursor,
    /// The entry's log time (the engine's, after the command), Unix ms.
    pub log_time_ms: u64,
    pub event: Event,
}

/// Why a watch cannot start or continue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedError {
    /// The start is before the oldest index this node keeps.
    Compacted { start: u64, oldest: u64 },
    /// The node has not applied anything yet: it cannot tell what it keeps.
    Starting,
    /// The watcher fell too far behind; resume from `resume`.
    Lagged { resume: Cursor },
    /// The node installed a snapshot and skipped entries; resume from `resume` elsewhere.
    Gap { resume: Cursor },
    /// The node is stopping.
    Closed { resume: Cursor },
}

/// What the broadcast channel carries.
#[derive(Clone, Debug)]
enum Item {
    Event(Arc<FeedEvent>),
    /// The node installed a snapshot: events of the skipped entries will never come.
    Gap,
}

/// The ring of kept events.
#[derive(Debug)]
struct Ring {
    events: VecDeque<Arc<FeedEvent>>,
    capacity: usize,
    /// The first index whose events are all kept; `None` until the node applied an entry
    /// (or reported its applied index) after starting or installing a snapshot.
    oldest: Option<u64>,
}

/// The feed, shared by the apply adapter (writer) and the watch service (readers).
#[derive(Clone, Debug)]
pub struct Feed {
    ring: Arc<Mutex<Ring>>,
    tx: broadcast::Sender<Item>,
    /// The metrics' event counts, once a metrics endpoint asked for them
    /// ([`Feed::count_with`]): atomic adds where each event is recorded.
    counts: Arc<OnceLock<FeedCounts>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new(WATCH_EVENTS_RETAINED)
    }
}

impl Feed {
    /// A feed keeping the last `retained` events (at least one).
    pub fn new(retained: usize) -> Feed {
        let capacity = retained.max(1);
        let (tx, _) = broadcast::channel(WATCH_LAG_EVENTS_MAX);
        let ring = Ring {
            events: VecDeque::with_capacity(capacity.min(WATCH_LAG_EVENTS_MAX)),
            capacity,
            oldest: None,
        };
        Feed {
            ring: Arc::new(Mutex::new(ring)),
            tx,
            counts: Arc::default(),
        }
    }

    /// Counts every event recorded from now on into `counts` (the metrics endpoint's;
    /// the first call wins). An atomic add per event where it is recorded, so the
    /// counts cost no watcher: no channel receive and no task wake-up per event.
    pub fn count_with(&self, counts: FeedCounts) {
        let _ = self.counts.set(counts);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent (every step is one
        // push or pop), so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the events one command of entry `index` emitted (none too: the first entry
    /// applied after a start or a snapshot is where the kept events begin), from position
    /// `first`; returns the position after them. O(1) per event.
    pub fn record(&self, index: u64, log_time_ms: u64, first: u32, events: &[Event]) -> u32 {
        let mut position = first;
        if let Some(counts) = self.counts.get() {
            events.iter().for_each(|e| counts.count(e));
        }
        let mut ring = self.lock();
        if ring.oldest.is_none() {
            ring.oldest = Some(index);
        }
        for event in events {
            let item = Arc::new(FeedEvent {
                at: Cursor { index, position },
                log_time_ms,
                event: event.clone(),
            });
            if ring.events.len() == ring.capacity {
                if let Some(gone) = ring.events.pop_front() {
                    // Some events of `gone`'s entry are gone: it is no longer whole.
                    ring.oldest = Some(gone.at.index + 1);
                }
            }
            ring.events.push_back(item.clone());
            // Sent under the lock, so a new watcher sees each event exactly once: in its
            // backlog or on its receiver. No receiver is not an error.
            let _ = self.tx.send(Item::Event(item));
            position = position.saturating_add(1);
        }
        position
    }

    /// The node has applied everything up to `index`: when it had not yet said where its
    /// events start (after a start or a snapshot), they start after `index`.
    pub fn applied(&self, index: u64) {
        let mut ring = self.lock();
        if ring.oldest.is_none() {
            ring.oldest = Some(index + 1);
        }
    }

    /// The node replaced its state with a snapshot: the kept events no longer lead up to
    /// the state, and running watchers are cut.
    pub fn restored(&self) {
        let mut ring = self.lock();
        ring.events.clear();
        ring.oldest = None;
        let _ = self.tx.send(Item::Gap);
    }

    /// The first index whose events this node still keeps.
    pub fn oldest_index(&self) -> Option<u64> {
        self.lock().oldest
    }

    /// Starts a watch at `start` (`index` 0: from now on).
    pub fn subscribe(&self, start: Cursor) -> Result<Subscription, FeedError> {
        let ring = self.lock();
        let oldest = ring.oldest.ok_or(FeedError::Starting)?;
        if start.index != 0 && start.index < oldest {
            return Err(FeedError::Compacted {
                start: start.index,
                oldest,
            });
        }
        let (backlog, next) = if start.index == 0 {
            // From now on: after the last event recorded (every later one is sent after
            // this subscription, under the same lock).
            let after = ring.events.back().map_or(
                Cursor {
                    index: oldest,
                    position: 0,
                },
                |e| e.at.next(),
            );
            (VecDeque::new(), after)
        } else {
            let from = ring.events.partition_point(|e| e.at < start);
            (ring.events.range(from..).cloned().collect(), start)
        };
        Ok(Subscription {
            backlog,
            rx: self.tx.subscribe(),
            next,
        })
    }
}

/// One watcher's view of the feed: the kept events from its start, then live ones.
#[derive(Debug)]
pub struct Subscription {
    backlog: VecDeque<Arc<FeedEvent>>,
    rx: broadcast::Receiver<Item>,
    /// The first cursor not yet delivered (events before it are skipped).
    next: Cursor,
}

impl Subscription {
    /// The next event, in log order, each exactly once.
    pub async fn next(&mut self) -> Result<Arc<FeedEvent>, FeedError> {
        loop {
            let event = match self.backlog.pop_front() {
                Some(e) => e,
                None => match self.rx.recv().await {
                    Ok(Item::Event(e)) => e,
                    Ok(Item::Gap) => return Err(FeedError::Gap { resume: self.next }),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Err(FeedError::Lagged { resume: self.next })
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(FeedError::Closed { resume: self.next })
                    }
                },
            };
            // A start in the future skips what comes before it.
            if event.at < self.next {
                continue;
            }
            self.next = event.at.next();
            return Ok(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ninety_engine::{BedId, BedState, HospitalId, WardId};

    fn bed(n: u32) -> Event {
        Event::BedChanged {
            bed: BedId(n),
            ward: WardId(1),
            hospital: HospitalId(1),
            state: BedState::Free,
        }
    }

    fn at(index: u64, position: u32) -> Cursor {
        Cursor { index, position }
    }

    /// Entries 2..=5 with two events each.
    fn filled(retained: usize) -> Feed {
        let feed = Feed::new(retained);
        feed.applied(1);
        for index in 2..=5 {
            let next = feed.record(index, 0, 0, &[bed(1), bed(2)]);
            assert_eq!(next, 2);
        }
        feed
    }

    async fn take(sub: &mut Subscription, n: usize) -> Vec<Cursor> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(sub.next().await.expect("an event").at);
        }
        out
    }

    #[tokio::test]
    async fn a_start_replays_the_kept_events_then_live_ones_each_once() {
        let feed = filled(100);
        assert_eq!(feed.oldest_index(), Some(2));
        let mut sub = feed.subscribe(at(4, 1)).expect("kept");
        feed.record(6, 0, 0, &[bed(3)]);
        let seen = take(&mut sub, 4).await;
        assert_eq!(seen, [at(4, 1), at(5, 0), at(5, 1), at(6, 0)]);
    }

    #[tokio::test]
    async fn from_now_starts_after_the_last_recorded_event() {
        let feed = filled(100);
        let mut sub = feed.subscribe(Cursor::default()).expect("from now");
        feed.record(6, 0, 0, &[bed(3)]);
        assert_eq!(take(&mut sub, 1).await, [at(6, 0)]);
    }

    #[tokio::test]
    async fn a_start_in_the_future_skips_what_comes_before_it() {
        let feed = filled(100);
        let mut sub = feed.subscribe(at(7, 0)).expect("future");
        feed.record(6, 0, 0, &[bed(3)]);
        feed.record(7, 0, 0, &[bed(4)]);
        assert_eq!(take(&mut sub, 1).await, [at(7, 0)]);
    }

    #[test]
    fn evicting_part_of_an_entry_makes_the_next_index_the_oldest() {
        // 8 events recorded, 3 kept: 4.1, 5.0, 5.1; entry 4 is no longer whole.
        let feed = filled(3);
        assert_eq!(feed.oldest_index(), Some(5));
        assert_eq!(
            feed.subscribe(at(4, 1)).err(),
            Some(FeedError::Compacted {
                start: 4,
                oldest: 5
            })
        );
        assert!(feed.subscribe(at(5, 0)).is_ok());
    }

    #[test]
    fn a_node_that_applied_nothing_yet_cannot_say_what_it_keeps() {
        let feed = Feed::new(10);
        assert_eq!(feed.subscribe(at(3, 0)).err(), Some(FeedError::Starting));
        feed.applied(7);
        assert_eq!(
            feed.subscribe(at(3, 0)).err(),
            Some(FeedError::Compacted {
                start: 3,
                oldest: 8
            })
        );
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_cut_with_where_to_resume() {
        let feed = filled(100);
        let mut sub = feed.subscribe(Cursor::default()).expect("from now");
        for i in 0..=WATCH_LAG_EVENTS_MAX as u64 {
            feed.record(10 + i, 0, 0, &[bed(1)]);
        }
        assert_eq!(
            sub.next().await.err(),
            // Resuming after the last event recorded before it subscribed misses nothing.
            Some(FeedError::Lagged { resume: at(5, 2) })
        );
    }

    #[tokio::test]
    async fn a_snapshot_install_cuts_watchers_and_forgets_the_ring() {
        let feed = filled(100);
        let mut sub = feed.subscribe(at(5, 0)).expect("kept");
        assert_eq!(take(&mut sub, 2).await, [at(5, 0), at(5, 1)]);
        feed.restored();
        assert_eq!(
            sub.next().await.err(),
            Some(FeedError::Gap { resume: at(5, 2) })
        );
        assert_eq!(feed.oldest_index(), None);
        feed.applied(40);
        assert_eq!(feed.oldest_index(), Some(41));
    }
}
