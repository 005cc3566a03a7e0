//! Matching: ranking policy on a hand-built region (tier preference, urgency, language,
//! remote vs in-person, the reach cutoff, load spreading), allocation through apply, the
//! batch solver against greedy, determinism of batches and no double-giving under proptest.

use ninety_engine::matching::*;
use ninety_engine::region_file::*;
use ninety_engine::*;
use proptest::prelude::*;

const T0: LogTime = LogTime(1_800_000_000_000);
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

fn hospital(id: u32, tier: Tier, alliances: Vec<u32>) -> Hospital {
    Hospital {
        id: HospitalId(id),
        name: format!("H{id}"),
        city: "Guangzhou".into(),
        lat_micro_deg: 23_000_000 + id as i32 * 10_000,
        lon_micro_deg: 113_000_000,
        tier,
        languages: vec![Language::Mandarin],
        alliances: alliances.into_iter().map(AllianceId).collect(),
    }
}

fn doctor(id: u32, h: u32, s: Specialty, langs: Vec<Language>, remote: bool) -> Doctor {
    Doctor {
        id: DoctorId(id),
        hospital: HospitalId(h),
        specialties: vec![s],
        sub_specialties: vec![],
        title: Title::Attending,
        languages: langs,
        remote,
    }
}

fn ward(id: u32, h: u32, kind: WardKind, equipment: Vec<Equipment>) -> WardEntry {
    WardEntry {
        ward: Ward {
            id: WardId(id),
            hospital: HospitalId(h),
            name: format!("W{id}"),
            specialty: Specialty::Cardiology,
            kind,
            sex: SexPolicy::Mixed,
            equipment,
            staffed_beds: 2,
        },
        beds: 2,
    }
}

/// H1 primary point (origin, alliance 1); H2 secondary 30 min (alliance 1); H3 tertiary
/// 10 min; H4 tertiary 200 min (beyond the 90-minute reach).
/// Cardiology: D1 at H2, D2 at H3. Neurology: D3 at H4 only (remote too).
/// English: D4 cardiology at H3 speaks English. D5, D6: twin dermatologists at H2.
fn region() -> RegionFile {
    let zh = || vec![Language::Mandarin];
    let road = |a, b, m| Road {
        a: HospitalId(a),
        b: HospitalId(b),
        travel_minutes: m,
    };
    RegionFile {
        format_version: region_file::REGION_FORMAT_VERSION,
        name: "matching".into(),
        policy: Policy::default(),
        alliances: vec![Alliance {
            id: AllianceId(1),
            name: "A1".into(),
            kind: AllianceKind::MedicalAlliance,
        }],
        hospitals: vec![
            hospital(1, Tier::Primary, vec![1]),
            hospital(2, Tier::Secondary, vec![1]),
            hospital(3, Tier::Tertiary, vec![]),
            hospital(4, Tier::Tertiary, vec![]),
        ],
        wards: vec![
            ward(1, 2, WardKind::General, vec![Equipment::Monitor]),
            ward(2, 3, WardKind::Icu, vec![Equipment::Ventilator]),
            ward(3, 3, WardKind::Isolation, vec![Equipment::NegativePressure]),
        ],
        doctors: vec![
            doctor(1, 2, Specialty::Cardiology, zh(), false),
            doctor(2, 3, Specialty::Cardiology, zh(), false),
            doctor(3, 4, Specialty::Neurology, zh(), true),
            doctor(4, 3, Specialty::Cardiology, vec![Language::English], false),
            doctor(5, 2, Specialty::Dermatology, zh(), false),
            doctor(6, 2, Specialty::Dermatology, zh(), false),
        ],
        roads: vec![road(1, 2, 30), road(1, 3, 10), road(1, 4, 200)],
        referral_paths: vec![],
    }
}

fn spec(start: LogTime, mode: Mode) -> SlotSpec {
    SlotSpec {
        start,
        duration_minutes: 15,
        mode,
        capacity: 1,
        overbook: 0,
        referral_quota: 0,
    }
}

/// Each doctor: an in-person slot at T0+2h and T0+4h; D3 also remote at T0+3h.
fn engine() -> Engine {
    let mut schedules = Vec::new();
    for d in 1..=6u32 {
        let mut s = vec![
            spec(T0.plus_ms(2 * HOUR), Mode::InPerson),
            spec(T0.plus_ms(4 * HOUR), Mode::InPerson),
        ];
        if d == 3 {
            s.push(spec(T0.plus_ms(3 * HOUR), Mode::Remote));
        }
        schedules.push((DoctorId(d), s));
    }
    load(&region(), &schedules, T0).unwrap()
}

fn query(specialty: Specialty, urgency: Urgency) -> SlotQuery {
    SlotQuery {
        origin: Origin::Hospital(HospitalId(1)),
        specialty,
        urgency,
        language: None,
        mode: Mode::InPerson,
        earliest: T0,
        latest: T0.plus_ms(24 * HOUR),
        channel: Channel::Public,
        limit: 10,
        bounds: ninety_engine::matching::Bounds::NONE,
    }
}

fn ranked(e: &mut Engine, q: &SlotQuery) -> Ranked<Candidate> {
    let reader = e.view_reader();
    let view = reader.load();
    match_specialist(&*view, q).unwrap()
}

#[test]
fn routine_prefers_the_lowest_adequate_tier_and_alliance() {
    let mut e = engine();
    let r = ranked(&mut e, &query(Specialty::Cardiology, Urgency::P4));
    // D1 at the secondary allied H2 (30 min) beats the tertiary H3 (10 min).
    assert_eq!(r.candidates[0].doctor, DoctorId(1));
    assert_eq!(r.candidates[0].tier, Tier::Secondary);
    assert!(r.candidates[0].allied);
    assert!(
        r.candidates[0].explain.contains("routine"),
        "{}",
        r.candidates[0].explain
    );
    assert!(r.note.is_none());
}

#[test]
fn urgent_ranks_by_time_to_care() {
    let mut e = engine();
    let r = ranked(&mut e, &query(Specialty::Cardiology, Urgency::P1));
    // Same slot times: the 10-minute tertiary H3 wins over the 30-minute H2.
    assert_eq!(r.candidates[0].hospital, HospitalId(3));
    assert_eq!(r.candidates[0].travel_minutes, 10);
    assert_eq!(r.candidates[0].wait_minutes, 120);
    assert!(r.candidates[0].explain.contains("time to care 130"));
}

#[test]
fn language_is_a_hard_filter() {
    let mut e = engine();
    let mut q = query(Specialty::Cardiology, Urgency::P3);
    q.language = Some(Language::English);
    let r = ranked(&mut e, &q);
    assert_eq!(r.candidates.len(), 1);
    assert_eq!(r.candidates[0].doctor, DoctorId(4));
}

#[test]
fn remote_ignores_travel_and_reach() {
    let mut e = engine();
    let mut q = query(Specialty::Neurology, Urgency::P3);
    q.mode = Mode::Remote;
    let r = ranked(&mut e, &q);
    assert_eq!(r.candidates.len(), 1);
    let c = &r.candidates[0];
    assert_eq!(
        (c.doctor, c.travel_minutes, c.beyond_reach),
        (DoctorId(3), 0, false)
    );
    assert_eq!(c.start, T0.plus_ms(3 * HOUR));
}

#[test]
fn in_person_leaves_the_reach_only_when_nothing_is_inside() {
    let mut e = engine();
    let r = ranked(&mut e, &query(Specialty::Neurology, Urgency::P3));
    assert_eq!(r.candidates[0].doctor, DoctorId(3));
    assert!(r.candidates[0].beyond_reach);
    assert_eq!(r.candidates[0].travel_minutes, 200);
    assert!(r.note.as_deref().unwrap().contains("beyond reach"));
    // Cardiology exists inside the reach: nothing beyond it is offered.
    let r = ranked(&mut e, &query(Specialty::Cardiology, Urgency::P3));
    assert!(r.candidates.iter().all(|c| !c.beyond_reach));
}

fn allocate(e: &mut Engine, id: u128, q: SlotQuery) -> Outcome {
    let command = Command::AllocateSlot {
        query: q,
        patient: PatientRef(id),
        referral: None,
    };
    e.apply(
        &Request {
            id: RequestId(id),
            command,
        },
        T0,
    )
}

#[test]
fn allocation_holds_spreads_load_and_is_idempotent() {
    let mut e = engine();
    let q = query(Specialty::Dermatology, Urgency::P4);
    let first = allocate(&mut e, 1, q.clone()).unwrap();
    let Reply::SlotAllocated {
        doctor: d1, hold, ..
    } = first.clone()
    else {
        panic!("{first:?}")
    };
    assert_eq!(e.slots().seat(hold).unwrap().state, SeatState::Held);
    // The retry returns the first reply and holds nothing more.
    assert_eq!(allocate(&mut e, 1, q.clone()).unwrap(), first);
    // The twin with no load now wins: no herding onto one doctor.
    let Reply::SlotAllocated { doctor: d2, .. } = allocate(&mut e, 2, q.clone()).unwrap() else {
        panic!()
    };
    assert_ne!(d1, d2);
    for id in 3..=4 {
        allocate(&mut e, id, q.clone()).unwrap();
    }
    match allocate(&mut e, 5, q) {
        Err(Rejection::NoCapacity(msg)) => assert!(msg.contains("Dermatology")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bed_allocation_meets_needs() {
    let mut e = engine();
    let bed = |id: u128, needs: BedNeeds, isolation: bool| Request {
        id: RequestId(id),
        command: Command::AllocateBed {
            query: BedQuery {
                origin: Origin::Hospital(HospitalId(1)),
                needs,
                specialty: None,
                isolation,
                urgency: Urgency::P2,
                limit: 1,
                bounds: ninety_engine::matching::Bounds::NONE,
            },
            ttl_ms: HOUR,
            patient: PatientRef(id),
        },
    };
    let vent = BedNeeds {
        equipment: vec![Equipment::Ventilator],
        ..BedNeeds::default()
    };
    let Ok(Reply::BedAllocated {
        ward,
        hospital,
        travel_minutes,
        ..
    }) = e.apply(&bed(1, vent.clone(), false), T0)
    else {
        panic!()
    };
    assert_eq!(
        (ward, hospital, travel_minutes),
        (WardId(2), HospitalId(3), 10)
    );
    let Ok(Reply::BedAllocated { ward, .. }) = e.apply(&bed(2, BedNeeds::default(), true), T0)
    else {
        panic!()
    };
    assert_eq!(ward, WardId(3));
    e.apply(&bed(3, vent.clone(), false), T0).unwrap();
    assert!(matches!(
        e.apply(&bed(4, vent, false), T0),
        Err(Rejection::NoCapacity(_))
    ));
}

#[test]
fn the_batch_solve_beats_greedy_on_a_contended_slot() {
    // Two urgent requests for the 2-hour slots; the second speaks English only, so only D4
    // can take it. Whatever greedy does, the batch places both.
    let mut urgent = query(Specialty::Cardiology, Urgency::P1);
    urgent.latest = T0.plus_ms(2 * HOUR);
    let mut english = urgent.clone();
    english.language = Some(Language::English);
    let reqs = vec![
        Request {
            id: RequestId(1),
            command: Command::AllocateSlot {
                query: urgent.clone(),
                patient: PatientRef(1),
                referral: None,
            },
        },
        Request {
            id: RequestId(2),
            command: Command::AllocateSlot {
                query: english,
                patient: PatientRef(2),
                referral: None,
            },
        },
    ];
    // Greedy, one at a time: R1 takes H3's earliest (D2 or D4, tie broken by slot id).
    let mut greedy = engine();
    let g: Vec<Outcome> = reqs.iter().map(|r| greedy.apply(r, T0)).collect();
    let mut batched = engine();
    let b = batched.apply_batch(&reqs, T0);
    assert!(b.iter().all(|o| o.is_ok()), "{b:?}");
    let placed = |v: &[Outcome]| v.iter().filter(|o| o.is_ok()).count();
    assert!(placed(&b) >= placed(&g));
}

fn burst(n: u128, seed: u64) -> Vec<Request> {
    let mut rng = generate::SplitMix64::new(seed);
    let specs = [
        Specialty::Cardiology,
        Specialty::Dermatology,
        Specialty::Neurology,
    ];
    (0..n)
        .map(|i| {
            let id = RequestId(1_000 + i);
            let patient = PatientRef(i);
            let command = if rng.chance(25) {
                Command::AllocateBed {
                    query: BedQuery {
                        origin: Origin::Hospital(HospitalId(1 + rng.below(3) as u32)),
                        needs: BedNeeds::default(),
                        specialty: None,
                        isolation: false,
                        urgency: if rng.chance(50) {
                            Urgency::P1
                        } else {
                            Urgency::P4
                        },
                        limit: 1,
                        bounds: ninety_engine::matching::Bounds::NONE,
                    },
                    ttl_ms: HOUR,
                    patient,
                }
            } else {
                let mut q = query(specs[rng.below(3) as usize], Urgency::P3);
                q.origin = Origin::Hospital(HospitalId(1 + rng.below(4) as u32));
                q.urgency = if rng.chance(30) {
                    Urgency::P2
                } else {
                    Urgency::P4
                };
                Command::AllocateSlot {
                    query: q,
                    patient,
                    referral: None,
                }
            };
            Request { id, command }
        })
        .collect()
}

#[test]
fn batches_are_deterministic() {
    let reqs = burst(40, 9);
    let (mut a, mut b) = (engine(), engine());
    let _reader = b.view_reader();
    let ra = a.apply_batch(&reqs, T0);
    let rb = b.apply_batch(&reqs, T0);
    assert_eq!(ra, rb);
    assert_eq!(a.state_hash(), b.state_hash());
    // A restored replica plans the same way.
    let mut c = Engine::restore(&engine().snapshot().unwrap()).unwrap();
    assert_eq!(c.apply_batch(&reqs, T0), ra);
    assert_eq!(c.state_hash(), a.state_hash());
}

#[test]
fn the_view_follows_batches() {
    let mut e = engine();
    let reader = e.view_reader();
    let before = reader.load();
    assert_eq!(before.doctor(DoctorId(5)).unwrap().free.len(), 2);
    let reqs = burst(1, 3);
    let q = query(Specialty::Dermatology, Urgency::P4);
    let mut reqs = reqs;
    reqs[0].command = Command::AllocateSlot {
        query: q,
        patient: PatientRef(1),
        referral: None,
    };
    e.apply_batch(&reqs, T0);
    let after = reader.load();
    let free: usize = [5, 6]
        .iter()
        .map(|d| after.doctor(DoctorId(*d)).unwrap().free.len())
        .sum();
    assert_eq!(free, 3);
    assert_eq!(after.hospital_load(HospitalId(2)).unwrap().taken, 1);
    // The old view is unchanged: readers keep a consistent picture.
    assert_eq!(before.doctor(DoctorId(5)).unwrap().free.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn allocation_never_gives_a_seat_or_bed_twice(
        seed in any::<u64>(), n in 1u128..60, cut in 1usize..8
    ) {
        let reqs = burst(n, seed);
        let mut e = engine();
        let mut outs = Vec::new();
        // Batches of varying size, with a retry of the whole first batch.
        for chunk in reqs.chunks(cut) {
            outs.extend(e.apply_batch(chunk, T0));
        }
        let retry = e.apply_batch(&reqs[..cut.min(reqs.len())], T0);
        prop_assert_eq!(&retry[..], &outs[..retry.len()]);
        let mut beds = std::collections::BTreeSet::new();
        for o in outs.iter().flatten() {
            if let Reply::BedAllocated { bed, .. } = o {
                prop_assert!(beds.insert(*bed), "bed {} given twice", bed);
            }
        }
        for s in e.slots().slots() {
            prop_assert!(s.taken() <= s.spec.capacity + s.spec.overbook);
        }
        for w in e.beds().wards() {
            let c = e.beds().counts(w.id).unwrap();
            prop_assert!(c.held + c.occupied <= c.staffed);
        }
    }
}

/// The bounded, index-ordered search returns the same scores as ranking every candidate, on
/// the generated GBA region with a day of schedules, some seats taken and the clock moved
/// into the day (so the first-open index holds stale, but still lower, bounds).
#[test]
fn the_bounded_search_matches_exhaustive_ranking() {
    use ninety_engine::generate::{self, Preset, SplitMix64};
    use ninety_engine::matching::policy::CostInput;
    let file = generate::region(Preset::Gba, generate::DEFAULT_SEED);
    let day = generate::DEFAULT_DAY_START;
    let schedules = generate::schedules(&file, day, 1);
    let mut e = load(&file, &schedules, day.minus_ms(HOUR)).unwrap();
    let reader = e.view_reader();
    let hospitals: Vec<HospitalId> = e.hospitals().map(|h| h.id).collect();
    let mut rng = SplitMix64::new(5);
    let random_query = |rng: &mut SplitMix64, limit: u16| SlotQuery {
        origin: Origin::Hospital(hospitals[rng.below(hospitals.len() as u64) as usize]),
        specialty: Specialty::ALL[rng.below(Specialty::ALL.len() as u64) as usize],
        urgency: [Urgency::P1, Urgency::P2, Urgency::P3, Urgency::P4][rng.below(4) as usize],
        language: None,
        mode: if rng.chance(50) {
            Mode::Remote
        } else {
            Mode::InPerson
        },
        earliest: day,
        latest: day.plus_ms(24 * HOUR),
        channel: if rng.chance(50) {
            Channel::Public
        } else {
            Channel::Referral
        },
        limit,
        bounds: ninety_engine::matching::Bounds::NONE,
    };
    let mut id = 1u128 << 90;
    for (round, at) in [day.minus_ms(HOUR), day.plus_ms(3 * HOUR)]
        .into_iter()
        .enumerate()
    {
        let reqs: Vec<Request> = (0..400)
            .map(|_| {
                id += 1;
                let mut query = random_query(&mut rng, 1);
                query.earliest = at;
                Request {
                    id: RequestId(id),
                    command: Command::AllocateSlot {
                        query,
                        patient: PatientRef(id),
                        referral: None,
                    },
                }
            })
            .collect();
        e.apply_batch(&reqs, at);
        let view = reader.load();
        let (ix, policy) = (view.index(), view.policy());
        for _ in 0..300 {
            let limit = 1 + rng.below(20) as u16;
            let q = random_query(&mut rng, limit);
            let got = match_specialist(&*view, &q).unwrap();
            if got.note.is_some() {
                continue;
            }
            let Origin::Hospital(origin) = q.origin else {
                unreachable!()
            };
            let from = q.earliest.max(view.now.plus_ms(1));
            let mut all = Vec::new();
            let groups: Vec<(HospitalId, u32)> = match q.mode {
                Mode::Remote => ix.hospitals.keys().map(|&h| (h, 0)).collect(),
                Mode::InPerson => ix.reach[&origin].clone(),
            };
            for (h, travel) in groups {
                for &d in ix.doctors_at(h, q.specialty, q.mode) {
                    let avail = view.doctor(d).unwrap();
                    let first = avail.free.iter().find(|s| {
                        let open = match q.channel {
                            Channel::Public => s.open_public,
                            Channel::Referral => s.open_referral,
                        };
                        s.mode == q.mode && open > 0 && s.start >= from && s.start <= q.latest
                    });
                    let Some(s) = first else { continue };
                    let input = CostInput {
                        urgency: q.urgency,
                        travel_minutes: travel,
                        wait_minutes: view.now.minutes_until(s.start) as u32,
                        tier: ix.hospitals[&h].tier,
                        allied: ix.allied(origin, h),
                        load_permille: view.day_load_permille(d, s.start.0 / 86_400_000),
                    };
                    all.push(policy.cost(&input));
                }
            }
            all.sort_unstable();
            all.truncate(usize::from(q.limit));
            let scores: Vec<u64> = got.candidates.iter().map(|c| c.score).collect();
            assert_eq!(scores, all, "round {round}: {q:?}");
        }
    }
}

/// H1 (origin) with roads to H2..=H13, all beyond the 90-minute reach: H2..=H5 (the
/// nearest, 91-94 min) have no neurology and no ICU ward; H6..=H13 (101-108 min) and H14
/// (120 min) each have a neurologist and an ICU ward. Only the neurologist and the ward of
/// `open` (a hospital id) have a free slot or a staffed bed.
fn far_engine(open: u32) -> Engine {
    let road = |b: u32, m| Road {
        a: HospitalId(1),
        b: HospitalId(b),
        travel_minutes: m,
    };
    let mut roads: Vec<Road> = (2..=5).map(|h| road(h, 89 + h)).collect();
    roads.extend((6..=13).map(|h| road(h, 95 + h)));
    roads.push(road(14, 120));
    let relevant = 6..=14u32;
    let file = RegionFile {
        format_version: region_file::REGION_FORMAT_VERSION,
        name: "far".into(),
        policy: Policy::default(),
        alliances: vec![],
        hospitals: (1..=14)
            .map(|h| hospital(h, Tier::Tertiary, vec![]))
            .collect(),
        wards: relevant
            .clone()
            .map(|h| {
                let mut w = ward(h, h, WardKind::Icu, vec![Equipment::Ventilator]);
                w.ward.staffed_beds = u32::from(h == open);
                w
            })
            .collect(),
        doctors: relevant
            .clone()
            .map(|h| doctor(h, h, Specialty::Neurology, vec![Language::Mandarin], false))
            .collect(),
        roads,
        referral_paths: vec![],
    };
    let schedules = vec![(
        DoctorId(open),
        vec![spec(T0.plus_ms(2 * HOUR), Mode::InPerson)],
    )];
    load(&file, &schedules, T0).unwrap()
}

fn far_bed_query() -> BedQuery {
    BedQuery {
        origin: Origin::Hospital(HospitalId(1)),
        needs: BedNeeds {
            kind: Some(WardKind::Icu),
            sex: None,
            equipment: vec![Equipment::Ventilator],
        },
        specialty: None,
        isolation: false,
        urgency: Urgency::P1,
        limit: 1,
        bounds: ninety_engine::matching::Bounds::NONE,
    }
}

fn allocate_far(e: &mut Engine, id: u128, command: Command) -> Outcome {
    e.apply(
        &Request {
            id: RequestId(id),
            command,
        },
        T0,
    )
}

#[test]
fn beyond_the_reach_allocation_looks_at_a_bounded_number_of_hospitals_that_could_serve() {
    use ninety_engine::limits::BEYOND_REACH_HOSPITALS_MAX;
    assert_eq!(
        BEYOND_REACH_HOSPITALS_MAX, 8,
        "the region below is built for 8"
    );
    let slot = |patient| Command::AllocateSlot {
        query: query(Specialty::Neurology, Urgency::P3),
        patient: PatientRef(patient),
        referral: None,
    };
    let bed = |patient| Command::AllocateBed {
        query: far_bed_query(),
        ttl_ms: HOUR,
        patient: PatientRef(patient),
    };
    // H13 is the 8th hospital beyond the reach that could serve (H2..=H5 cannot and do not
    // count): found, at 108 minutes.
    let mut e = far_engine(13);
    let r = allocate_far(&mut e, 1, slot(1));
    let Ok(Reply::SlotAllocated {
        hospital,
        beyond_reach,
        travel_minutes,
        ..
    }) = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(
        (hospital, beyond_reach, travel_minutes),
        (HospitalId(13), true, 108)
    );
    let r = allocate_far(&mut e, 2, bed(2));
    assert!(
        matches!(
            r,
            Ok(Reply::BedAllocated {
                ward: WardId(13),
                beyond_reach: true,
                ..
            })
        ),
        "{r:?}"
    );
    // H14 is the 9th: the search stops before it, and the refusal changes nothing.
    let mut e = far_engine(14);
    let before = e.state_hash();
    let r = allocate_far(&mut e, 1, slot(1));
    assert!(matches!(r, Err(Rejection::NoCapacity(_))), "{r:?}");
    let r = allocate_far(&mut e, 2, bed(2));
    assert!(matches!(r, Err(Rejection::NoCapacity(_))), "{r:?}");
    assert_eq!(e.state_hash(), before);
    // The read path is bounded alike.
    let r = ranked(&mut e, &query(Specialty::Neurology, Urgency::P3));
    assert!(r.candidates.is_empty(), "{r:?}");
    let reader = e.view_reader();
    let beds = match_beds(&*reader.load(), &far_bed_query()).unwrap();
    assert!(beds.candidates.is_empty(), "{beds:?}");
}

#[test]
fn a_referral_channel_allocation_needs_a_triaged_referral_of_the_patient() {
    let mut e = engine();
    let mut q = query(Specialty::Cardiology, Urgency::P3);
    q.channel = Channel::Referral;
    let alloc = |patient: u128, referral| Command::AllocateSlot {
        query: q.clone(),
        patient: PatientRef(patient),
        referral,
    };
    let before = e.state_hash();
    let r = allocate_far(&mut e, 1, alloc(7, None));
    assert!(
        matches!(&r, Err(Rejection::Invalid { field, .. }) if field == "referral_id"),
        "{r:?}"
    );
    let r = allocate_far(&mut e, 2, alloc(7, Some(ReferralId(99))));
    assert!(
        matches!(&r, Err(Rejection::Invalid { field, .. }) if field == "referral_id"),
        "{r:?}"
    );
    assert_eq!(e.state_hash(), before);
    let run = |e: &mut Engine, id: u128, command| {
        e.apply(
            &Request {
                id: RequestId(id),
                command,
            },
            T0,
        )
    };
    let Ok(Reply::ReferralCreated { referral, .. }) = run(
        &mut e,
        3,
        Command::RequestReferral {
            from: HospitalId(1),
            to: None,
            patient: PatientRef(7),
        },
    ) else {
        panic!()
    };
    // Requested, not triaged yet: refused.
    let before = e.state_hash();
    let r = allocate_far(&mut e, 4, alloc(7, Some(referral)));
    assert!(
        matches!(r, Err(Rejection::InvalidTransition { .. })),
        "{r:?}"
    );
    assert_eq!(e.state_hash(), before);
    let triage = Command::TriageReferral {
        referral,
        specialty: Specialty::Cardiology,
        urgency: Urgency::P3,
    };
    run(&mut e, 5, triage).unwrap();
    // Another patient may not use it.
    let r = allocate_far(&mut e, 6, alloc(8, Some(referral)));
    assert!(
        matches!(&r, Err(Rejection::Invalid { field, .. }) if field == "referral_id"),
        "{r:?}"
    );
    // In a batch, the solver plans only the request with a usable referral.
    let batch = [
        Request {
            id: RequestId(7),
            command: alloc(9, None),
        },
        Request {
            id: RequestId(8),
            command: alloc(7, Some(referral)),
        },
    ];
    let out = e.apply_batch(&batch, T0);
    assert!(matches!(&out[0], Err(Rejection::Invalid { field, .. }) if field == "referral_id"));
    assert!(
        matches!(out[1], Ok(Reply::SlotAllocated { .. })),
        "{:?}",
        out[1]
    );
}

mod across {
    //! Cross-region bed matching (`matching::across`) over two generated regions.
    use super::*;
    use ninety_engine::generate::{self, Preset};
    use ninety_engine::layout;
    use ninety_engine::matching::across::{match_beds_across, Crossing, Elsewhere, Entry, Scope};
    use ninety_engine::read::matching::{beds_across, OtherBeds};

    fn engine_of(preset: Preset, wards: bool) -> Engine {
        let mut file = generate::region(preset, 7);
        if !wards {
            file.wards.clear();
        }
        load(&file, &[], T0).expect("generated region loads")
    }

    /// The region-level way into `preset` from `home`.
    fn gateway(home: Preset, preset: Preset) -> Vec<Entry> {
        let (lat, lon) = generate::gateway(preset);
        vec![Entry {
            at: Origin::Point {
                lat_micro_deg: (lat * 1e6) as i32,
                lon_micro_deg: (lon * 1e6) as i32,
            },
            travel_minutes: layout::travel_minutes(home, preset),
            by: Crossing::Gateway,
        }]
    }

    fn query(home: &Engine, max_travel_minutes: Option<u32>) -> BedQuery {
        BedQuery {
            origin: Origin::Hospital(home.hospitals().next().expect("a hospital").id),
            needs: BedNeeds::default(),
            specialty: None,
            isolation: false,
            urgency: Urgency::P3,
            limit: 50,
            bounds: Bounds {
                max_travel_minutes,
                min_tier: None,
            },
        }
    }

    fn hainan() -> Preset {
        "hainan".parse().unwrap()
    }

    #[test]
    fn a_bed_search_looks_beyond_home_only_when_asked_and_adds_the_trip() {
        let mut gba = engine_of(Preset::Gba, true);
        let mut hainan_engine = engine_of(hainan(), true);
        let (home, there) = (gba.view_reader(), hainan_engine.view_reader());
        let (home, there) = (home.load(), there.load());
        let trip = layout::travel_minutes(Preset::Gba, hainan());
        let others = [Elsewhere {
            region: "hainan",
            source: &*there,
            entries: gateway(Preset::Gba, hainan()),
        }];
        let q = query(&gba, None);
        let only_home = match_beds_across("gba", &*home, &others, &q, Scope::Home).unwrap();
        assert!(only_home.candidates.iter().all(|c| c.region == "gba"));
        let when_none =
            match_beds_across("gba", &*home, &others, &q, Scope::WhenNoneAtHome).unwrap();
        assert_eq!(
            when_none, only_home,
            "home has beds: nothing else is searched"
        );
        let all = match_beds_across("gba", &*home, &others, &q, Scope::Everywhere).unwrap();
        let scores: Vec<u64> = all.candidates.iter().map(|c| c.candidate.score).collect();
        assert!(scores.windows(2).all(|w| w[0] <= w[1]), "cheapest first");
        for c in all.candidates.iter().filter(|c| c.region == "hainan") {
            assert!(c.candidate.travel_minutes >= trip, "{c:?}");
            assert!(!c.candidate.allied && c.candidate.beyond_reach);
        }
    }

    #[test]
    fn a_region_without_a_bed_finds_one_next_door_within_the_travel_bound() {
        let mut empty = engine_of(hainan(), false);
        let mut gba = engine_of(Preset::Gba, true);
        let (home, there) = (empty.view_reader(), gba.view_reader());
        let (home, there) = (home.load(), there.load());
        let trip = layout::travel_minutes(hainan(), Preset::Gba);
        let others = [Elsewhere {
            region: "gba",
            source: &*there,
            entries: gateway(hainan(), Preset::Gba),
        }];
        let found = match_beds_across(
            "hainan",
            &*home,
            &others,
            &query(&empty, None),
            Scope::WhenNoneAtHome,
        )
        .unwrap();
        assert!(!found.candidates.is_empty(), "{found:?}");
        assert!(found.candidates.iter().all(|c| c.region == "gba"));
        assert!(found
            .note
            .as_deref()
            .unwrap_or("")
            .contains("searched 1 other region"));
        // A bound shorter than the trip leaves the other region out.
        let bounded = query(&empty, Some(trip - 1));
        let none =
            match_beds_across("hainan", &*home, &others, &bounded, Scope::WhenNoneAtHome).unwrap();
        assert!(none.candidates.is_empty(), "{none:?}");
        // Within it, every candidate's whole trip keeps to the bound.
        let loose = query(&empty, Some(trip + 60));
        let some =
            match_beds_across("hainan", &*home, &others, &loose, Scope::WhenNoneAtHome).unwrap();
        assert!(some
            .candidates
            .iter()
            .all(|c| c.candidate.travel_minutes <= trip + 60));
    }

    /// Another region for `beds_across`, `trip` minutes away by the region-level edge.
    fn other<'a>(
        id: &'a str,
        preset: Preset,
        view: &'a AvailabilityView,
        trip: u32,
    ) -> OtherBeds<'a> {
        OtherBeds {
            id,
            preset,
            view,
            travel_minutes: trip,
        }
    }

    /// The candidates of `found` in `region` (at least one).
    fn candidates_in<'a>(
        region: &str,
        found: &'a Ranked<ninety_engine::matching::across::RegionalBed>,
    ) -> Vec<&'a ninety_engine::matching::across::RegionalBed> {
        let there: Vec<_> = found
            .candidates
            .iter()
            .filter(|c| c.region == region)
            .collect();
        assert!(!there.is_empty(), "nothing in {region}: {found:?}");
        there
    }

    /// Beijing's hospital nearest Tianjin's gateway: the one a border edge helps most.
    fn nearest_to(home: &Engine, preset: Preset) -> HospitalId {
        let (lat, lon) = generate::gateway(preset);
        let at = |h: &Hospital| {
            layout::distance_km(
                (lat, lon),
                (
                    f64::from(h.lat_micro_deg) / 1e6,
                    f64::from(h.lon_micro_deg) / 1e6,
                ),
            )
        };
        home.hospitals()
            .min_by(|a, b| at(a).total_cmp(&at(b)))
            .expect("a hospital")
            .id
    }

    #[test]
    fn a_hospital_near_a_border_drives_across_it() {
        let (beijing, tianjin): (Preset, Preset) =
            ("beijing".parse().unwrap(), "tianjin".parse().unwrap());
        let mut home_engine = engine_of(beijing, false);
        let mut next_door = engine_of(tianjin, true);
        let (home, there) = (home_engine.view_reader(), next_door.view_reader());
        let (home, there) = (home.load(), there.load());
        let trip = layout::travel_minutes(beijing, tianjin);
        let mut q = query(&home_engine, None);
        q.origin = Origin::Hospital(nearest_to(&home_engine, tianjin));
        let found = beds_across(
            "beijing",
            &home,
            &[other("tianjin", tianjin, &there, trip)],
            &q,
        )
        .unwrap();
        let across = candidates_in("tianjin", &found);
        let by_border = across
            .iter()
            .filter(|c| c.candidate.explain.contains("across the border"))
            .min_by_key(|c| c.candidate.travel_minutes)
            .expect("some Tianjin ward is cheaper straight across the border");
        assert!(
            by_border.candidate.travel_minutes < trip,
            "the drive beats the gateway trip ({trip} min): {by_border:?}"
        );
        // Every ward kept its cheaper entry: none is listed twice.
        let mut wards: Vec<WardId> = across.iter().map(|c| c.candidate.ward).collect();
        wards.sort_unstable();
        wards.dedup();
        assert_eq!(wards.len(), across.len());
    }

    #[test]
    fn regions_far_apart_are_entered_at_their_gateway_only() {
        let mut gba = engine_of(Preset::Gba, false);
        let mut yunnan = engine_of(Preset::Yunnan, true);
        let (home, there) = (gba.view_reader(), yunnan.view_reader());
        let (home, there) = (home.load(), there.load());
        let trip = layout::travel_minutes(Preset::Gba, Preset::Yunnan);
        let others = [other("yunnan", Preset::Yunnan, &there, trip)];
        let found = beds_across("gba", &home, &others, &query(&gba, None)).unwrap();
        let across = candidates_in("yunnan", &found);
        for c in across {
            assert!(c.candidate.travel_minutes >= trip, "{c:?}");
            assert!(!c.candidate.explain.contains("border"), "{c:?}");
        }
    }
}
