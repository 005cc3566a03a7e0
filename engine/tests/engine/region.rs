//! Admin commands, region files, idempotency, snapshots and the generator.

use super::fixture::*;
use ninety_engine::generate::{self, Preset};
use ninety_engine::*;

#[test]
fn a_retry_returns_the_first_answer_and_a_reused_id_is_refused() {
    let mut fx = Fx::new();
    let cmd = Command::HoldBed {
        target: BedTarget::Ward(WardId(2)),
        patient: PatientRef(1),
        ttl_ms: HOUR,
    };
    let req = Request {
        id: RequestId(500),
        command: cmd,
    };
    let first = fx.engine.apply(&req, T0).unwrap();
    let hash = fx.engine.state_hash();
    // Later, after the state moved on, the retry still gets the first answer.
    fx.hold_bed(BedTarget::Ward(WardId(2)), 2, HOUR);
    let hash2 = fx.engine.state_hash();
    assert_ne!(hash, hash2);
    assert_eq!(fx.engine.apply(&req, T0.plus_ms(MINUTE)), Ok(first));
    assert_eq!(fx.engine.state_hash(), hash2, "a retry changes nothing");
    let other = Request {
        id: RequestId(500),
        command: Command::Tick,
    };
    assert_eq!(
        fx.engine.apply(&other, T0),
        Err(Rejection::RequestIdReused(RequestId(500)))
    );
}

#[test]
fn the_dedup_window_is_pruned_by_log_time() {
    let mut fx = Fx::new();
    fx.hold_bed(BedTarget::Ward(WardId(2)), 1, HOUR);
    let n = fx.engine.dedup().len();
    fx.tick(fx.engine.policy().dedup_window_ms + 1);
    assert!(fx.engine.dedup().len() < n, "old request ids are forgotten");
}

#[test]
fn snapshot_restore_gives_an_equal_engine_and_corruption_is_refused() {
    let mut fx = Fx::new();
    fx.hold_bed(BedTarget::Ward(WardId(1)), 1, HOUR);
    let bytes = fx.engine.snapshot().unwrap();
    let restored = Engine::restore(&bytes).unwrap();
    assert_eq!(restored.state_hash(), fx.engine.state_hash());
    assert_eq!(restored, fx.engine);
    let mut torn = bytes.clone();
    torn.truncate(bytes.len() / 2);
    assert_eq!(Engine::restore(&torn).unwrap_err(), SnapshotError::Corrupt);
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    assert_eq!(
        Engine::restore(&flipped).unwrap_err(),
        SnapshotError::Corrupt
    );
    assert_eq!(
        Engine::restore(b"hello").unwrap_err(),
        SnapshotError::BadMagic
    );
}

#[test]
fn importing_twice_or_a_bad_file_is_refused_naming_the_field() {
    let mut fx = Fx::new();
    let err = fx.refuse(Command::ImportRegion(Box::new(region_file())));
    assert_eq!(err, Rejection::RegionAlreadyLoaded);
    let mut bad = region_file();
    bad.wards[1].ward.hospital = HospitalId(99);
    let mut empty = Engine::new();
    let err = empty
        .apply(
            &Request {
                id: RequestId(1),
                command: Command::ImportRegion(Box::new(bad)),
            },
            T0,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "wards[1].hospital"),
        "{err:?}"
    );
    assert_eq!(empty, Engine::new(), "nothing was partly imported");
}

#[test]
fn region_files_round_trip_through_json_and_errors_name_the_place() {
    let file = region_file();
    let text = file.to_json();
    assert_eq!(RegionFile::from_json(&text).unwrap(), file);
    let err = RegionFile::from_json("{\"format_version\": 1, \"name\": 3}").unwrap_err();
    assert!(
        matches!(&err, Rejection::Invalid { field, reason } if field == "region" && reason.contains("line 1")),
        "{err:?}"
    );
}

#[test]
fn admin_commands_edit_the_region_and_rebuild_the_reach() {
    let mut fx = Fx::new();
    assert_eq!(
        fx.engine
            .graph()
            .travel_within_reach(HospitalId(4), HospitalId(3)),
        None
    );
    fx.run(Command::SetTravel {
        a: HospitalId(4),
        b: HospitalId(3),
        travel_minutes: Some(80),
    })
    .unwrap();
    assert_eq!(
        fx.engine
            .graph()
            .travel_within_reach(HospitalId(4), HospitalId(3)),
        Some(80)
    );
    let r = fx
        .run(Command::AddBeds {
            ward: WardId(2),
            count: 3,
        })
        .unwrap();
    assert_eq!(
        r,
        Reply::BedsAdded {
            first: BedId(6),
            count: 3
        }
    );
    let mut w = fx.engine.beds().ward(WardId(2)).unwrap().clone();
    w.staffed_beds = 5;
    fx.run(Command::UpsertWard(w)).unwrap();
    assert_eq!(fx.engine.beds().counts(WardId(2)).unwrap().admissible, 5);
    let err = fx.refuse(Command::SetTravel {
        a: HospitalId(4),
        b: HospitalId(4),
        travel_minutes: Some(5),
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "road.b"),
        "{err:?}"
    );
}

#[test]
fn the_gba_preset_matches_the_brief_and_is_seeded() {
    let a = generate::region(Preset::Gba, generate::DEFAULT_SEED);
    assert_eq!(a.hospitals.len(), 79);
    let cities: std::collections::BTreeSet<&str> =
        a.hospitals.iter().map(|h| h.city.as_str()).collect();
    assert_eq!(cities.len(), 11);
    assert!(
        (9_000..=11_000).contains(&a.doctors.len()),
        "{} doctors",
        a.doctors.len()
    );
    let beds: u32 = a.wards.iter().map(|w| w.beds).sum();
    assert!((20_000..=60_000).contains(&beds), "{beds} beds");
    let medical = a
        .alliances
        .iter()
        .filter(|x| x.kind == AllianceKind::MedicalAlliance)
        .count();
    assert_eq!(medical, 32);
    assert!(
        a.alliances.len() - medical >= 20,
        "dozens of specialty alliances"
    );
    a.validate().unwrap();
    assert_eq!(a, generate::region(Preset::Gba, generate::DEFAULT_SEED));
    assert_ne!(a, generate::region(Preset::Gba, 1));
    let slots: usize = generate::schedules(&a, generate::DEFAULT_DAY_START, 1)
        .iter()
        .map(|(_, s)| s.len())
        .sum();
    assert!((270_000..=330_000).contains(&slots), "{slots} slots");
    // Most hospitals reach a tertiary hospital within 90 minutes.
    let engine = load(&a, &[], LogTime(0)).unwrap();
    let tertiary = |h: HospitalId| engine.hospital(h).is_some_and(|x| x.tier == Tier::Tertiary);
    let covered = engine
        .hospitals()
        .filter(|h| engine.graph().reach(h.id).iter().any(|(o, _)| tertiary(*o)))
        .count();
    assert!(
        covered * 10 >= 79 * 9,
        "{covered} of 79 reach a tertiary hospital"
    );
}

#[test]
fn the_national_preset_has_the_national_figures() {
    let n = generate::region(Preset::National, generate::DEFAULT_SEED);
    let hospitals = n
        .hospitals
        .iter()
        .filter(|h| !h.name.starts_with("Point"))
        .count();
    assert_eq!(hospitals, 2_400);
    assert_eq!(n.hospitals.len() - hospitals, 12_000);
    assert!(
        (260_000..=320_000).contains(&n.doctors.len()),
        "{} doctors",
        n.doctors.len()
    );
    n.validate().unwrap();
}

#[test]
fn a_province_preset_is_its_share_of_the_national_one_and_loads() {
    let hainan: Preset = "hainan".parse().expect("a province preset");
    assert_eq!(hainan.name(), "hainan");
    assert_eq!(
        "inner-mongolia".parse::<Preset>().map(Preset::name),
        Ok("inner-mongolia".to_string())
    );
    assert!("atlantis".parse::<Preset>().is_err());
    assert_eq!(Preset::bootable("national"), None);
    assert_eq!(Preset::bootable("hainan"), Some(hainan));
    let file = generate::region(hainan, generate::DEFAULT_SEED);
    file.validate().unwrap();
    let (hospitals, points, doctors) = generate::planned(hainan);
    assert_eq!(file.hospitals.len() as u32, hospitals);
    let generated_points = file
        .hospitals
        .iter()
        .filter(|h| h.name.starts_with("Point"))
        .count();
    assert_eq!(generated_points as u32, points);
    assert!(
        file.doctors.len() as u32 * 10 >= doctors * 9
            && file.doctors.len() as u32 * 10 <= doctors * 11,
        "{} doctors, {doctors} planned",
        file.doctors.len()
    );
    assert!(file.hospitals.iter().all(|h| h.city == "Haikou"));
    let day = generate::DEFAULT_DAY_START;
    let schedules = generate::schedules(&file, day, 1);
    let engine = load(&file, &schedules, day.minus_ms(time::MS_PER_DAY)).expect("it loads");
    assert!(engine.hospitals().count() > 300);
}
