//! A small region: a community centre (H1), a district hospital (H2) and a tertiary
//! hospital (H3) 30 and 70 minutes away, and a far county hospital (H4) 300 minutes away.

use ninety_engine::region_file::*;
use ninety_engine::*;

pub const T0: LogTime = LogTime(1_800_000_000_000);
pub const MINUTE: u64 = 60_000;
pub const HOUR: u64 = 60 * MINUTE;

pub fn hospital(id: u32, tier: Tier, alliances: Vec<u32>) -> Hospital {
    Hospital {
        id: HospitalId(id),
        name: format!("H{id}"),
        city: "Guangzhou".into(),
        lat_micro_deg: 23_000_000,
        lon_micro_deg: 113_000_000,
        tier,
        languages: vec![Language::Mandarin, Language::Cantonese],
        alliances: alliances.into_iter().map(AllianceId).collect(),
    }
}

pub fn ward(id: u32, hospital: u32, kind: WardKind, staffed: u32) -> Ward {
    Ward {
        id: WardId(id),
        hospital: HospitalId(hospital),
        name: format!("W{id}"),
        specialty: Specialty::Cardiology,
        kind,
        sex: SexPolicy::Mixed,
        equipment: vec![Equipment::Monitor],
        staffed_beds: staffed,
    }
}

pub fn doctor(id: u32, hospital: u32, remote: bool) -> Doctor {
    Doctor {
        id: DoctorId(id),
        hospital: HospitalId(hospital),
        specialties: vec![Specialty::Cardiology],
        sub_specialties: vec![],
        title: Title::Attending,
        languages: vec![Language::Mandarin],
        remote,
    }
}

/// W1 (H3): 3 beds, 2 staffed. W2 (H2): 2 beds. Doctors D1 (H3, remote), D2 (H2, remote),
/// D3 (H1, in person only).
pub fn region_file() -> RegionFile {
    let road = |a, b, m| Road {
        a: HospitalId(a),
        b: HospitalId(b),
        travel_minutes: m,
    };
    let path = |from, to, kind| ReferralPath {
        from: HospitalId(from),
        to: HospitalId(to),
        kind,
    };
    RegionFile {
        format_version: region_file::REGION_FORMAT_VERSION,
        name: "fixture".into(),
        policy: Policy::default(),
        alliances: vec![Alliance {
            id: AllianceId(1),
            name: "A1".into(),
            kind: AllianceKind::MedicalAlliance,
        }],
        hospitals: vec![
            hospital(1, Tier::Primary, vec![1]),
            hospital(2, Tier::Secondary, vec![]),
            hospital(3, Tier::Tertiary, vec![1]),
            hospital(4, Tier::Secondary, vec![]),
        ],
        wards: vec![
            WardEntry {
                ward: ward(1, 3, WardKind::General, 2),
                beds: 3,
            },
            WardEntry {
                ward: ward(2, 2, WardKind::Icu, 2),
                beds: 2,
            },
        ],
        doctors: vec![doctor(1, 3, true), doctor(2, 2, true), doctor(3, 1, false)],
        roads: vec![road(1, 2, 30), road(2, 3, 40), road(3, 4, 300)],
        referral_paths: vec![
            path(1, 3, ReferralKind::UpTier),
            path(1, 2, ReferralKind::UpTier),
            path(3, 1, ReferralKind::DownTier),
            path(4, 3, ReferralKind::UpTier),
        ],
    }
}

/// One remote slot and one in-person slot per doctor, one hour and two hours after T0.
/// Capacity 2, one referral seat, one overbooking seat.
pub fn schedules() -> Vec<(DoctorId, Vec<SlotSpec>)> {
    (1..=3)
        .map(|d| {
            let remote = d != 3;
            let mut specs = vec![SlotSpec {
                start: T0.plus_ms(2 * HOUR),
                duration_minutes: 30,
                mode: Mode::InPerson,
                capacity: 2,
                overbook: 1,
                referral_quota: 1,
            }];
            if remote {
                specs.push(SlotSpec {
                    start: T0.plus_ms(4 * HOUR),
                    duration_minutes: 30,
                    mode: Mode::Remote,
                    capacity: 2,
                    overbook: 0,
                    referral_quota: 0,
                });
            }
            (DoctorId(d), specs)
        })
        .collect()
}

/// A loaded fixture engine with a request-id counter.
pub struct Fx {
    pub engine: Engine,
    pub next_request: u128,
    pub now: LogTime,
}

impl Fx {
    pub fn new() -> Fx {
        Fx {
            engine: load(&region_file(), &schedules(), T0).expect("fixture loads"),
            next_request: 1,
            now: T0,
        }
    }

    /// Applies a command with a fresh request id at the current time.
    pub fn run(&mut self, command: Command) -> Outcome {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.engine.apply(&Request { id, command }, self.now)
    }

    /// Advances time by `ms` and ticks.
    pub fn tick(&mut self, ms: u64) -> Reply {
        self.now = self.now.plus_ms(ms);
        self.run(Command::Tick).expect("tick never fails")
    }

    /// Runs a command that must fail, and checks that it changed nothing and that the
    /// refusal precheck knew it (for the commands it covers).
    pub fn refuse(&mut self, command: Command) -> Rejection {
        let before = self.engine.state_hash();
        let key = RequestKey::Client(RequestId(self.next_request));
        let decided = self.engine.decided(key, &command, self.now);
        let covered = prechecked(&command);
        let err = self.run(command).expect_err("command must be refused");
        assert_eq!(
            before,
            self.engine.state_hash(),
            "a refused command changed the state"
        );
        if covered {
            assert_eq!(decided, Some(Err(err.clone())), "the precheck disagrees");
        }
        err
    }

    pub fn hold_bed(&mut self, target: BedTarget, patient: u128, ttl_ms: u64) -> (HoldId, BedId) {
        match self.run(Command::HoldBed {
            target,
            patient: PatientRef(patient),
            ttl_ms,
        }) {
            Ok(Reply::BedHeld { hold, bed, .. }) => (hold, bed),
            other => panic!("hold failed: {other:?}"),
        }
    }

    /// Holds a seat; a referral-channel seat is taken for the patient's triaged referral
    /// (`triaged_referral`).
    pub fn hold_slot(&mut self, slot: u64, patient: u128, channel: Channel) -> HoldId {
        let referral = (channel == Channel::Referral).then(|| self.triaged_referral(patient));
        match self.run(Command::HoldSlot {
            slot: SlotId(slot),
            patient: PatientRef(patient),
            channel,
            referral,
        }) {
            Ok(Reply::SlotHeld { hold, .. }) => hold,
            other => panic!("slot hold failed: {other:?}"),
        }
    }

    /// A triaged referral of the patient: the newest one, or a new one from H1 (up-tier).
    pub fn triaged_referral(&mut self, patient: u128) -> ReferralId {
        let existing = self
            .engine
            .referrals()
            .all()
            .filter(|r| r.patient == PatientRef(patient) && r.state == ReferralState::Triaged)
            .map(|r| r.id)
            .last();
        if let Some(id) = existing {
            return id;
        }
        let Ok(Reply::ReferralCreated { referral, .. }) = self.run(Command::RequestReferral {
            from: HospitalId(1),
            to: None,
            patient: PatientRef(patient),
        }) else {
            panic!("referral request failed")
        };
        self.run(Command::TriageReferral {
            referral,
            specialty: Specialty::Cardiology,
            urgency: Urgency::P2,
        })
        .expect("triage");
        referral
    }

    /// The first slot of a doctor whose mode is `mode`.
    pub fn slot_of(&self, doctor: u32, mode: Mode) -> u64 {
        self.engine
            .slots()
            .slots()
            .find(|s| s.doctor == DoctorId(doctor) && s.spec.mode == mode)
            .map(|s| s.id.0)
            .expect("fixture slot")
    }
}

/// The commands whose refusals `Engine::would_refuse` must know (`apply::precheck`).
pub fn prechecked(command: &Command) -> bool {
    use Command::*;
    matches!(
        command,
        HoldBed { .. }
            | ConfirmHold { .. }
            | ReleaseHold { .. }
            | HoldSlot { .. }
            | HoldSlotFor { .. }
            | BookSlot { .. }
            | ReleaseSlot { .. }
            | CancelSeat { .. }
            | AllocateSlot { .. }
            | AllocateBed { .. }
            | AllocateBedForReferral { .. }
    )
}
