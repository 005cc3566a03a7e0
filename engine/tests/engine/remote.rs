//! Cross-region referrals (`remote`): the origin's saga state, driven against a second
//! engine standing for the destination region, with answers lost and steps repeated as a
//! crashed leader would.

use super::fixture::*;
use ninety_engine::remote::{RemoteOutcome, RemoteStage, RemoteStep};
use ninety_engine::*;
use proptest::prelude::*;

const ORIGIN: &str = "origin";
const DEST: &str = "dest";
const HOUR: u64 = 3_600_000;
/// The destination's general ward (fixture ward 1, three beds, two staffed).
const WARD: WardId = WardId(1);

/// The origin (`o`) and the destination (`d`), each a fixture region.
struct Two {
    o: Fx,
    d: Fx,
}

impl Two {
    fn new() -> Two {
        Two {
            o: Fx::new(),
            d: Fx::new(),
        }
    }

    /// A triaged referral in the origin asking for a bed in the destination.
    fn remote_referral(&mut self, patient: u128, ttl_ms: u64) -> ReferralId {
        let referral = self.o.triaged_referral(patient);
        let asked = self.o.run(Command::HoldRemoteBed {
            referral,
            region: DEST.into(),
            ward: WARD,
            ttl_ms,
        });
        assert!(
            matches!(
                asked,
                Ok(Reply::RemoteBedRecorded {
                    stage: RemoteStage::Holding,
                    ..
                })
            ),
            "{asked:?}"
        );
        referral
    }

    /// Sends one step to the destination as the driver does (its derived request id).
    fn send(&mut self, step: &RemoteStep) -> Outcome {
        self.d.engine.apply(&step.request(ORIGIN), self.d.now)
    }

    /// One round of the driver: every owed step sent, and its answer recorded unless
    /// `lose` (the leader crashed between the two).
    fn drive(&mut self, lose: bool) -> usize {
        let work = self.o.engine.remote_work(64);
        for step in &work {
            let answer = self.send(step);
            if !lose {
                let outcome = step.outcome(&answer);
                self.o
                    .run(Command::RecordRemote {
                        referral: step.referral,
                        attempt: step.attempt,
                        outcome,
                    })
                    .expect("an answer is always recorded");
            }
        }
        work.len()
    }

    /// Drives until no step is owed (bounded).
    fn settle(&mut self) {
        for _ in 0..8 {
            if self.drive(false) == 0 {
                return;
            }
        }
        panic!(
            "the driver still owes steps: {:?}",
            self.o.engine.remote_work(64)
        );
    }

    fn stage(&self, referral: ReferralId) -> RemoteStage {
        self.o
            .engine
            .remote()
            .get(referral)
            .expect("remote bed")
            .stage
    }

    fn state(&self, referral: ReferralId) -> ReferralState {
        self.o
            .engine
            .referrals()
            .get(referral)
            .expect("referral")
            .state
    }

    fn dest_hold(&self, referral: ReferralId) -> &BedHold {
        let hold = self.o.engine.remote().get(referral).and_then(|b| b.hold);
        self.d
            .engine
            .beds()
            .hold(hold.expect("hold known"))
            .expect("hold in dest")
    }
}

#[test]
fn a_cross_region_bed_is_held_then_confirmed_on_both_sides() {
    let mut t = Two::new();
    let r = t.remote_referral(7, HOUR);
    assert_eq!(t.state(r), ReferralState::Triaged);
    t.settle();
    assert_eq!(t.stage(r), RemoteStage::Held);
    assert_eq!(t.state(r), ReferralState::Matched);
    assert_eq!(t.dest_hold(r).state, HoldState::Pending);
    assert_eq!(t.dest_hold(r).patient, PatientRef(7));

    let accepted = t.o.run(Command::AcceptReferral { referral: r });
    assert!(matches!(
        accepted,
        Ok(Reply::ReferralUpdated {
            state: ReferralState::Matched,
            ..
        })
    ));
    assert_eq!(t.stage(r), RemoteStage::Confirming);
    // While the confirmation is under way the referral cannot be cancelled.
    let refused = t.o.refuse(Command::CancelReferral {
        referral: r,
        reason: "x".into(),
    });
    assert_eq!(
        refused.kind(),
        RejectionKind::FailedPrecondition,
        "{refused}"
    );
    assert!(refused.to_string().contains("region dest"), "{refused}");

    t.settle();
    assert_eq!(t.stage(r), RemoteStage::Confirmed);
    assert_eq!(t.state(r), ReferralState::Accepted);
    assert!(matches!(t.dest_hold(r).state, HoldState::Confirmed { .. }));
    assert!(t.o.engine.remote_work(64).is_empty());
}

#[test]
fn a_cancel_before_any_answer_releases_the_hold_the_destination_made() {
    let mut t = Two::new();
    let r = t.remote_referral(7, HOUR);
    // The hold is made in the destination, but the answer never reaches the origin.
    t.drive(true);
    assert_eq!(t.stage(r), RemoteStage::Holding);
    t.o.run(Command::CancelReferral {
        referral: r,
        reason: "patient stays".into(),
    })
    .expect("cancel");
    assert_eq!(t.stage(r), RemoteStage::Releasing);
    t.settle();
    assert_eq!(t.stage(r), RemoteStage::Released);
    // The repeated hold step was answered from the destination's dedup table: one hold,
    // released.
    let holds: Vec<_> = t.d.engine.beds().holds_of(PatientRef(7)).collect();
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert!(matches!(holds[0].state, HoldState::Released { .. }));
}

/// Simulator seed 8954 (two regions): a referral waiting for a bed in another region was
/// matched to local holds meanwhile; when a local hold lapsed the referral went back to
/// the worklist with its remote bed confirmed, and a second attempt left that bed occupied
/// in the destination for no one. A referral waiting on another region takes no local
/// holds: the destination's answer matches it.
#[test]
fn a_referral_waiting_on_another_region_is_not_matched_to_local_holds() {
    let mut t = Two::new();
    let r = t.remote_referral(11, HOUR);
    let local =
        t.o.run(Command::HoldBed {
            target: BedTarget::Ward(WARD),
            patient: PatientRef(11),
            ttl_ms: HOUR,
        })
        .expect("a local hold");
    let Reply::BedHeld { hold, .. } = local else {
        panic!("{local:?}");
    };
    let refused = t.o.run(Command::MatchReferral {
        referral: r,
        slot_hold: None,
        bed_hold: Some(hold),
    });
    match refused {
        Err(Rejection::InvalidTransition { state, .. }) => {
            assert!(state.contains("holding a bed in region dest"), "{state}")
        }
        other => panic!("matched while holding elsewhere: {other:?}"),
    }
    t.settle();
    assert_eq!(t.stage(r), RemoteStage::Held);
    assert_eq!(t.state(r), ReferralState::Matched);
}

#[test]
fn a_refusal_in_the_destination_puts_the_referral_back_on_the_worklist() {
    let mut t = Two::new();
    let referral = t.o.triaged_referral(7);
    t.o.run(Command::HoldRemoteBed {
        referral,
        region: DEST.into(),
        ward: WardId(99),
        ttl_ms: HOUR,
    })
    .expect("asked");
    t.settle();
    assert_eq!(t.stage(referral), RemoteStage::Released);
    assert_eq!(t.state(referral), ReferralState::Triaged);
    let reason = &t.o.engine.referrals().get(referral).unwrap().reason;
    assert!(
        matches!(reason, ReferralReason::NoCapacity(why) if why.contains("region dest") && why.contains("unknown ward 99")),
        "{reason:?}"
    );
    // A second attempt starts with new derived ids.
    let again = t.o.run(Command::HoldRemoteBed {
        referral,
        region: DEST.into(),
        ward: WARD,
        ttl_ms: HOUR,
    });
    assert!(
        matches!(again, Ok(Reply::RemoteBedRecorded { attempt: 2, .. })),
        "{again:?}"
    );
    t.settle();
    assert_eq!(t.stage(referral), RemoteStage::Held);
}

#[test]
fn a_hold_that_lapsed_in_the_destination_is_not_confirmed() {
    let mut t = Two::new();
    let r = t.remote_referral(7, 60_000);
    t.settle();
    t.d.tick(120_000);
    t.o.run(Command::AcceptReferral { referral: r })
        .expect("accept");
    t.settle();
    assert_eq!(t.stage(r), RemoteStage::Released);
    assert_eq!(t.state(r), ReferralState::Triaged);
    let reason = &t.o.engine.referrals().get(r).unwrap().reason;
    assert!(
        matches!(reason, ReferralReason::Remote { region, .. } if region == DEST),
        "{reason:?}"
    );
}

#[test]
fn a_deadline_waits_for_a_confirmation_under_way_and_expires_otherwise() {
    let mut t = Two::new();
    let confirming = t.remote_referral(7, 30 * 24 * HOUR / 30);
    let held = t.remote_referral(8, 30 * 24 * HOUR / 30);
    t.settle();
    t.o.run(Command::AcceptReferral {
        referral: confirming,
    })
    .expect("accept");
    // Past every referral deadline (the policy's referral TTL is at most days).
    t.o.tick(40 * 24 * HOUR);
    assert_eq!(t.state(confirming), ReferralState::Matched);
    assert_eq!(t.stage(confirming), RemoteStage::Confirming);
    assert_eq!(t.state(held), ReferralState::Expired);
    assert_eq!(t.stage(held), RemoteStage::Releasing);
    t.settle();
    assert_eq!(t.stage(held), RemoteStage::Released);
    assert!(matches!(
        t.dest_hold(held).state,
        HoldState::Released { .. }
    ));
}

#[test]
fn bad_remote_asks_are_refused_naming_the_field() {
    let mut t = Two::new();
    let referral = t.o.triaged_referral(7);
    let ask = |region: &str, ttl_ms| Command::HoldRemoteBed {
        referral,
        region: region.into(),
        ward: WARD,
        ttl_ms,
    };
    for (command, field) in [
        (ask("", HOUR), "region"),
        (ask("Yunnan", HOUR), "region"),
        (ask(&"x".repeat(33), HOUR), "region"),
        (ask(DEST, 0), "ttl_ms"),
        (ask(DEST, u64::MAX), "ttl_ms"),
    ] {
        let err = t.o.refuse(command);
        assert!(
            matches!(&err, Rejection::Invalid { field: f, .. } if f == field),
            "{err:?}"
        );
    }
    t.o.run(ask(DEST, HOUR)).expect("asked");
    let twice = t.o.refuse(ask(DEST, HOUR));
    assert_eq!(twice.kind(), RejectionKind::FailedPrecondition, "{twice}");
    let unknown = t.o.refuse(Command::RecordRemote {
        referral: ReferralId(999),
        attempt: 1,
        outcome: RemoteOutcome::Released,
    });
    assert_eq!(unknown, Rejection::UnknownReferral(ReferralId(999)));
}

#[test]
fn derived_step_ids_differ_by_origin_referral_attempt_and_step() {
    use ninety_engine::remote::step_request_id as id;
    let base = id("gba", ReferralId(1), 1, "hold");
    assert_eq!(base, id("gba", ReferralId(1), 1, "hold"));
    for other in [
        id("yunnan", ReferralId(1), 1, "hold"),
        id("gba", ReferralId(2), 1, "hold"),
        id("gba", ReferralId(1), 2, "hold"),
        id("gba", ReferralId(1), 1, "confirm"),
        RequestId::from_text("gba/1/1/hold").unwrap(),
    ] {
        assert_ne!(base, other);
    }
}

#[test]
fn a_format_3_snapshot_is_read_with_no_remote_beds() {
    let fx = Fx::new();
    let v4 = fx.engine.snapshot().unwrap();
    // A format-3 snapshot is the same state without the trailing empty book (three empty
    // collections, a byte each).
    let header = ninety_engine::snapshot::MAGIC.len() + 2;
    let body = &v4[header..v4.len() - 32];
    let mut v3 = ninety_engine::snapshot::MAGIC.to_vec();
    v3.extend_from_slice(&3u16.to_le_bytes());
    v3.extend_from_slice(&body[..body.len() - 3]);
    let sum = {
        use sha2::Digest;
        sha2::Sha256::digest(&v3)
    };
    v3.extend_from_slice(&sum);
    let restored = Engine::restore(&v3).expect("format 3 is read");
    assert_eq!(restored.state_hash(), fx.engine.state_hash());
    assert!(restored.remote().is_empty());
}

#[test]
fn remote_beds_survive_a_snapshot() {
    let mut t = Two::new();
    let r = t.remote_referral(7, HOUR);
    t.settle();
    let restored = Engine::restore(&t.o.engine.snapshot().unwrap()).unwrap();
    assert_eq!(restored.state_hash(), t.o.engine.state_hash());
    assert_eq!(restored.remote().get(r), t.o.engine.remote().get(r));
}

/// What happens next in a random run of the saga.
#[derive(Clone, Debug)]
enum Op {
    Ask { patient: u8, ttl_min: u8 },
    Drive { lose: bool },
    Accept { patient: u8 },
    Cancel { patient: u8 },
    NoCapacity { patient: u8 },
    TickOrigin { min: u8 },
    TickDest { min: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, 1u8..90).prop_map(|(patient, ttl_min)| Op::Ask { patient, ttl_min }),
        any::<bool>().prop_map(|lose| Op::Drive { lose }),
        (0u8..4).prop_map(|patient| Op::Accept { patient }),
        (0u8..4).prop_map(|patient| Op::Cancel { patient }),
        (0u8..4).prop_map(|patient| Op::NoCapacity { patient }),
        (0u8..120).prop_map(|min| Op::TickOrigin { min }),
        (0u8..120).prop_map(|min| Op::TickDest { min }),
    ]
}

impl Two {
    fn newest_referral(&self, patient: u8) -> Option<ReferralId> {
        let p = PatientRef(1_000 + u128::from(patient));
        self.o
            .engine
            .referrals()
            .all()
            .filter(|r| r.patient == p)
            .map(|r| r.id)
            .last()
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Ask { patient, ttl_min } => {
                let referral = self.o.triaged_referral(1_000 + u128::from(patient));
                let _ = self.o.run(Command::HoldRemoteBed {
                    referral,
                    region: DEST.into(),
                    ward: WARD,
                    ttl_ms: u64::from(ttl_min) * 60_000,
                });
            }
            Op::Drive { lose } => {
                self.drive(lose);
            }
            Op::Accept { patient } => {
                if let Some(referral) = self.newest_referral(patient) {
                    let _ = self.o.run(Command::AcceptReferral { referral });
                }
            }
            Op::Cancel { patient } => {
                if let Some(referral) = self.newest_referral(patient) {
                    let _ = self.o.run(Command::CancelReferral {
                        referral,
                        reason: "c".into(),
                    });
                }
            }
            Op::NoCapacity { patient } => {
                if let Some(referral) = self.newest_referral(patient) {
                    let _ = self.o.run(Command::ReportNoCapacity {
                        referral,
                        reason: "n".into(),
                    });
                }
            }
            Op::TickOrigin { min } => {
                self.o.tick(u64::from(min) * 60_000);
            }
            Op::TickDest { min } => {
                self.d.tick(u64::from(min) * 60_000);
            }
        }
    }

    /// After the run: every saga ended, and both sides agree.
    fn check_settled(&mut self) {
        self.settle();
        for (id, b) in self.o.engine.remote().all() {
            assert!(
                b.stage.is_final() || b.stage == RemoteStage::Held,
                "{id}: {b:?}"
            );
            let dest = b.hold.and_then(|h| self.d.engine.beds().hold(h));
            match b.stage {
                RemoteStage::Confirmed => {
                    assert!(matches!(
                        dest.map(|h| h.state),
                        Some(HoldState::Confirmed { .. })
                    ));
                    // Accepted, or moved on since (the destination owns the bed now).
                    let state = self.state(id);
                    assert!(state >= ReferralState::Accepted, "{id}: {state:?}");
                }
                RemoteStage::Held => {
                    assert_eq!(self.state(id), ReferralState::Matched);
                }
                _ => {
                    if let Some(h) = dest {
                        assert!(
                            !matches!(h.state, HoldState::Confirmed { .. }),
                            "{id}: {h:?}"
                        );
                    }
                }
            }
        }
        // No bed in the destination is held but by a referral holding it: the destination's
        // dedup table answered every repeated step, so no hold was made twice.
        let named: Vec<HoldId> = self
            .o
            .engine
            .remote()
            .all()
            .filter(|(_, b)| b.stage == RemoteStage::Held)
            .filter_map(|(_, b)| b.hold)
            .collect();
        for h in self.d.engine.beds().pending_holds() {
            assert!(named.contains(&h.id), "hold {} held by no referral", h.id);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Answers lost at any step (a crashed leader), cancels, acceptances, refusals and time
    /// in either region in any order: every cross-region bed ends confirmed on both sides
    /// or released on both, and the destination holds nothing no referral holds.
    #[test]
    fn cross_region_sagas_end_the_same_on_both_sides(ops in proptest::collection::vec(op(), 1..40)) {
        let mut t = Two::new();
        for op in &ops {
            t.step(op);
        }
        t.check_settled();
    }
}
