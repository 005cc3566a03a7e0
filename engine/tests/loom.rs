//! Loom models of the view's publication primitive (`ninety_engine::sync`): every
//! interleaving of readers loading while the writer publishes and retires values, and of the
//! writer's teardown. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p ninety-engine --release --test loom`.
#![cfg(loom)]

use loom::thread;
use ninety_engine::sync::{Arc, Publisher};

#[test]
fn a_reader_sees_a_live_value_and_never_goes_back() {
    loom::model(|| {
        let mut publisher = Publisher::new(Arc::new(0u64));
        let reader = publisher.reader();
        let t = thread::spawn(move || {
            let a = *reader.load();
            let b = *reader.load();
            assert!(a <= b && b <= 2, "{a} then {b}");
        });
        publisher.publish(Arc::new(1));
        publisher.publish(Arc::new(2));
        t.join().unwrap();
    });
}

#[test]
fn two_readers_and_retirement() {
    loom::model(|| {
        let mut publisher = Publisher::new(Arc::new(10u64));
        let (r1, r2) = (publisher.reader(), publisher.reader());
        let t1 = thread::spawn(move || {
            let v = r1.load();
            assert!(*v == 10 || *v == 11);
            v
        });
        let t2 = thread::spawn(move || *r2.load());
        publisher.publish(Arc::new(11));
        let held = t1.join().unwrap();
        let seen = t2.join().unwrap();
        assert!(seen == 10 || seen == 11);
        // A value a reader still holds stays alive after the writer retired and freed its own
        // reference.
        publisher.publish(Arc::new(12));
        assert!(*held == 10 || *held == 11);
    });
}

#[test]
fn the_writer_may_go_away_while_a_reader_loads() {
    loom::model(|| {
        let mut publisher = Publisher::new(Arc::new(1u64));
        let reader = publisher.reader();
        let t = thread::spawn(move || *reader.load());
        publisher.publish(Arc::new(2));
        drop(publisher);
        let v = t.join().unwrap();
        assert!(v == 1 || v == 2);
    });
}
