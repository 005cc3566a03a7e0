//! The refusal precheck (`Engine::would_refuse`, `Engine::decided`): a refusal known
//! without applying is exactly what `apply` answers, and it changes nothing. A node answers
//! such commands as reads instead of log entries, so the two must never disagree.

use super::fixture::{Fx, HOUR, T0};
use super::harness::{Harness, Op};
use super::totality;
use ninety_engine::matching::{BedQuery, Origin, SlotQuery};
use ninety_engine::*;
use proptest::prelude::*;

/// Probes one command on the harness's state at `at`: whenever `decided` says something,
/// `apply` on a copy answers exactly that, and a refusal leaves the state hash as it was.
fn probe(h: &Harness, id: u128, command: &Command, at: LogTime) -> Result<(), TestCaseError> {
    let key = RequestKey::Client(RequestId(id));
    let decided = h.engine.decided(key, command, at);
    let refused = h.engine.would_refuse(command, at);
    if h.engine.dedup().get(key).is_none() {
        prop_assert_eq!(&decided, &refused.map(Err), "decided is the precheck");
    }
    let Some(decided) = decided else {
        return Ok(());
    };
    let mut copy = h.engine.clone();
    let before = copy.state_hash();
    let request = Request {
        id: RequestId(id),
        command: command.clone(),
    };
    let outcome = copy.apply(&request, at);
    prop_assert_eq!(&outcome, &decided, "{:?} at {}", command, at);
    prop_assert_eq!(
        copy.state_hash(),
        before,
        "an answer known in advance changed the state"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: totality::cases(), max_shrink_iters: 4_000, ..ProptestConfig::default() })]

    /// Random states (structured runs with unconstrained numbers), then random commands at
    /// times behind, at and ahead of the state: a decided answer is apply's answer.
    #[test]
    fn a_decided_answer_is_what_apply_answers(
        ops in totality::ops(),
        probes in prop::collection::vec((1u128..8, totality::command(), totality::time()), 1..24),
    ) {
        let mut h = Harness::new();
        for op in &ops {
            h.step(op).map_err(TestCaseError::fail)?;
        }
        for (id, command, at) in &probes {
            for at in [*at, h.engine.now(), h.at] {
                probe(&h, *id, command, at)?;
            }
        }
    }
}

/// The precheck is not trivially `None`: over the deterministic structured runs, every
/// covered command has refusals it knew before apply (the harness checks each against
/// apply's answer, and that no covered refusal was missed).
#[test]
fn structured_runs_precheck_every_covered_command() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = totality::ops();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..totality::cases() {
        let ops: Vec<Op> = strategy.new_tree(&mut runner).unwrap().current();
        let mut h = Harness::new();
        h.run(&ops).unwrap();
        for (name, n) in h.prechecked {
            *seen.entry(name).or_insert(0u64) += n;
        }
    }
    let covered = [
        "HoldBed",
        "ConfirmHold",
        "ReleaseHold",
        "HoldSlot",
        "HoldSlotFor",
        "BookSlot",
        "ReleaseSlot",
        "CancelSeat",
        "AllocateSlot",
        "AllocateBed",
        "AllocateBedForReferral",
    ];
    for name in covered {
        assert!(seen.get(name).copied().unwrap_or(0) > 0, "{name}: {seen:?}");
    }
    let uncovered: Vec<&String> = seen
        .keys()
        .filter(|n| !covered.contains(&n.as_str()))
        .collect();
    assert!(
        uncovered.is_empty(),
        "uncovered commands prechecked: {uncovered:?}"
    );
}

fn hold_ward(ward: u32, patient: u128) -> Command {
    Command::HoldBed {
        target: BedTarget::Ward(WardId(ward)),
        patient: PatientRef(patient),
        ttl_ms: HOUR,
    }
}

/// The contended refusals, one by one, each checked by `Fx::refuse` against the precheck.
#[test]
fn the_hot_refusals_are_known_before_apply() {
    let mut fx = Fx::new();
    // W1: two staffed beds; both held, the ward is full.
    let (first, _) = fx.hold_bed(BedTarget::Ward(WardId(1)), 1, HOUR);
    fx.hold_bed(BedTarget::Ward(WardId(1)), 2, HOUR);
    let full = fx.refuse(hold_ward(1, 3));
    assert_eq!(
        full,
        Rejection::NoCapacity("ward 1 has no admissible bed".into())
    );
    let taken = fx.refuse(Command::HoldBed {
        target: BedTarget::Bed(BedId(1)),
        patient: PatientRef(3),
        ttl_ms: HOUR,
    });
    assert_eq!(
        taken,
        Rejection::NoCapacity(format!("bed {} is held", BedId(1)))
    );
    assert_eq!(
        fx.refuse(hold_ward(9, 3)),
        Rejection::UnknownWard(WardId(9))
    );
    let bed = Command::HoldBed {
        target: BedTarget::Bed(BedId(99)),
        patient: PatientRef(3),
        ttl_ms: HOUR,
    };
    assert_eq!(fx.refuse(bed), Rejection::UnknownBed(BedId(99)));
    let hold = HoldId(999);
    assert_eq!(
        fx.refuse(Command::ConfirmHold { hold }),
        Rejection::UnknownHold(hold)
    );
    assert_eq!(
        fx.refuse(Command::ReleaseHold { hold }),
        Rejection::UnknownHold(hold)
    );
    fx.run(Command::ReleaseHold { hold: first }).unwrap();
    let resolved = fx.refuse(Command::ConfirmHold { hold: first });
    assert!(
        matches!(resolved, Rejection::AlreadyResolved { .. }),
        "{resolved:?}"
    );
    // A lapsed hold: expired, though no tick resolved it yet.
    let (lapsing, _) = fx.hold_bed(BedTarget::Ward(WardId(2)), 4, 10 * 60_000);
    fx.now = fx.now.plus_ms(HOUR);
    let expired = fx.refuse(Command::ConfirmHold { hold: lapsing });
    assert!(matches!(expired, Rejection::Expired { .. }), "{expired:?}");
}

/// Seats and allocations: a full slot, an unknown slot, no capacity anywhere.
#[test]
fn seat_and_allocation_refusals_are_known_before_apply() {
    let mut fx = Fx::new();
    let slot = fx.slot_of(3, Mode::InPerson);
    let open = |fx: &Fx| {
        let s = fx.engine.slots().slot(SlotId(slot)).expect("fixture slot");
        s.open_seats(Channel::Public)
    };
    let mut patient = 10;
    while open(&fx) > 0 {
        fx.hold_slot(slot, patient, Channel::Public);
        patient += 1;
    }
    let hold = |patient| Command::HoldSlot {
        slot: SlotId(slot),
        patient: PatientRef(patient),
        channel: Channel::Public,
        referral: None,
    };
    let full = fx.refuse(hold(3));
    assert_eq!(
        full,
        Rejection::NoCapacity(format!("slot {} is full", SlotId(slot)))
    );
    let unknown = Command::HoldSlotFor {
        slot: SlotId(9_999),
        patient: PatientRef(3),
        channel: Channel::Public,
        ttl_ms: HOUR,
        referral: None,
    };
    assert_eq!(fx.refuse(unknown), Rejection::UnknownSlot(SlotId(9_999)));
    let nothing = HoldId(999);
    assert_eq!(
        fx.refuse(Command::BookSlot { hold: nothing }),
        Rejection::UnknownHold(nothing)
    );
    assert_eq!(
        fx.refuse(Command::CancelSeat { hold: nothing }),
        Rejection::UnknownHold(nothing)
    );
    let beds = Command::AllocateBed {
        query: BedQuery {
            specialty: Some(Specialty::Oncology),
            ..bed_query()
        },
        ttl_ms: HOUR,
        patient: PatientRef(5),
    };
    assert!(matches!(fx.refuse(beds), Rejection::NoCapacity(_)));
    let slots = Command::AllocateSlot {
        query: SlotQuery {
            specialty: Specialty::Oncology,
            ..slot_query()
        },
        patient: PatientRef(5),
        referral: None,
    };
    assert!(matches!(fx.refuse(slots), Rejection::NoCapacity(_)));
}

fn bed_query() -> BedQuery {
    BedQuery {
        origin: Origin::Hospital(HospitalId(1)),
        needs: Default::default(),
        specialty: Some(Specialty::Cardiology),
        isolation: false,
        urgency: Urgency::P2,
        limit: 3,
        bounds: ninety_engine::matching::Bounds::NONE,
    }
}

fn slot_query() -> SlotQuery {
    SlotQuery {
        origin: Origin::Hospital(HospitalId(1)),
        specialty: Specialty::Cardiology,
        urgency: Urgency::P3,
        language: None,
        mode: Mode::InPerson,
        earliest: T0,
        latest: T0.plus_ms(48 * HOUR),
        channel: Channel::Public,
        limit: 3,
        bounds: ninety_engine::matching::Bounds::NONE,
    }
}

/// A refused request is not remembered: once the state changes, the same request id is
/// decided afresh (here, accepted), which is what makes answering refusals as reads safe.
#[test]
fn a_refusal_is_not_remembered_and_the_same_id_succeeds_later() {
    let mut fx = Fx::new();
    let (hold, _) = fx.hold_bed(BedTarget::Ward(WardId(2)), 1, HOUR);
    fx.hold_bed(BedTarget::Ward(WardId(2)), 2, HOUR);
    let retry = Request {
        id: RequestId(77),
        command: hold_ward(2, 3),
    };
    let key = RequestKey::Client(retry.id);
    assert!(matches!(
        fx.engine.decided(key, &retry.command, fx.now),
        Some(Err(_))
    ));
    assert!(fx.engine.apply(&retry, fx.now).is_err());
    assert!(
        fx.engine.dedup().get(retry.id).is_none(),
        "refusals are not remembered"
    );
    fx.run(Command::ReleaseHold { hold }).unwrap();
    assert_eq!(
        fx.engine.decided(key, &retry.command, fx.now),
        None,
        "left to the log"
    );
    let granted = fx.engine.apply(&retry, fx.now);
    assert!(matches!(granted, Ok(Reply::BedHeld { .. })), "{granted:?}");
    let replay = fx.engine.decided(key, &retry.command, fx.now);
    assert_eq!(
        replay,
        Some(granted),
        "now a remembered success: its replay"
    );
}
