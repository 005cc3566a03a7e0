//! The change feed (`ninety.v1.Watch`) through the real binary, the scenario of issue 14:
//! a hold placed and its expiry seen on the feed; a bed admitted, discharged (to clean: it
//! cannot be held), cleaned and held again, blocked and unblocked, each step on the feed; a
//! waitlist offer seen on the feed and booked; a watch resumed on another node after its
//! node was killed with no event missed or duplicated; and a compacted start index refused
//! with the oldest kept index named.

use crate::harness::*;
use ninety_client::Client;
use ninety_engine::generate;
use ninety_proto::v1 as pb;
use ninety_proto::v1::watch_client::WatchClient;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

/// How long a test waits for one expected event.
const EVENT_WAIT: Duration = Duration::from_secs(15);

fn patient(n: u64) -> String {
    format!("{:032x}", 0x3a7c_0000_u64 + n)
}

fn id(tag: &str) -> String {
    format!("{tag}-{}", ninety_client::new_request_id())
}

fn client(p: &Procs, ids: &[u64]) -> Client {
    p.client_of(ids, Duration::from_secs(15))
}

/// A channel to node `id` with no request timeout (the harness's would end a stream).
fn stream_channel(p: &Procs, id: u64) -> Channel {
    let tls = p.tls.as_ref().expect("the harness runs with TLS");
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca.pem.cert))
        .identity(Identity::from_pem(&tls.client.cert, &tls.client.key));
    tonic::transport::Endpoint::from_shared(format!("https://{}", p.addr(id)))
        .expect("endpoint")
        .tls_config(config)
        .expect("tls config")
        .connect_timeout(Duration::from_millis(300))
        .connect_lazy()
}

/// Opens a watch on node `id`, retrying while the node is starting.
async fn watch(
    p: &Procs,
    id: u64,
    request: pb::WatchRequest,
) -> Result<tonic::Streaming<pb::WatchEvent>, tonic::Status> {
    let deadline = Instant::now() + EVENT_WAIT;
    loop {
        let r = WatchClient::new(stream_channel(p, id))
            .watch(request.clone())
            .await;
        match r {
            Err(s) if s.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other.map(tonic::Response::into_inner),
        }
    }
}

/// Reads events into `seen` until one satisfies `until`; returns it.
async fn read_until(
    stream: &mut tonic::Streaming<pb::WatchEvent>,
    seen: &mut Vec<pb::WatchEvent>,
    what: &str,
    until: impl Fn(&pb::WatchEvent) -> bool,
) -> pb::WatchEvent {
    let deadline = Instant::now() + EVENT_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, stream.message()).await;
        let event = match next {
            Ok(Ok(Some(e))) => e,
            other => panic!("waiting for {what}: {other:?}; seen {seen:#?}"),
        };
        seen.push(event.clone());
        if until(&event) {
            return event;
        }
    }
}

fn is(kind: pb::EventKind, state: &str) -> impl Fn(&pb::WatchEvent) -> bool + '_ {
    move |e| e.kind == kind as i32 && e.state == state
}

/// (index, position) of each event: the feed's order, strictly increasing.
fn cursors(events: &[pb::WatchEvent]) -> Vec<(u64, u32)> {
    events.iter().map(|e| (e.log_index, e.position)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bed_and_a_seat_go_round_on_the_feed_and_a_watch_resumes_elsewhere() {
    crate::bounded(async {
        let region = generate::region(generate::Preset::Gba, generate::DEFAULT_SEED);
        let opts = Opts {
            region: Some("gba"),
            ..Opts::default()
        };
        let mut p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let leader = p.wait_ready(Duration::from_secs(60)).await;
        let watched = [1, 2, 3].into_iter().find(|n| *n != leader).unwrap_or(1);
        let other = [1, 2, 3]
            .into_iter()
            .find(|n| *n != leader && *n != watched)
            .unwrap_or(leader);
        let c = client(&p, &[leader, other]);
        let mut w = watch(&p, watched, pb::WatchRequest::default())
            .await
            .expect("watch from now");
        let mut seen = Vec::new();

        // A bed hold placed, then expired by a log-time tick.
        let ward = ward_ids(&p, leader).await[0];
        let held = c
            .hold_bed(pb::HoldBedRequest {
                request_id: id("hb"),
                ward_id: ward,
                patient_ref: patient(1),
                ttl_ms: 1_000,
                ..Default::default()
            })
            .await
            .expect("hold bed");
        let hold = held.hold.expect("hold").hold_id;
        let placed = read_until(&mut w, &mut seen, "the hold placed", |e| {
            e.hold_id == hold && e.state == "placed"
        })
        .await;
        assert_eq!(placed.kind, pb::EventKind::BedHold as i32);
        assert_eq!(placed.ward_id, ward);
        assert_eq!(placed.patient_ref, patient(1));
        assert_eq!(placed.log_index, held.commit.expect("commit").log_index);
        let expired = read_until(&mut w, &mut seen, "the hold's expiry", |e| {
            e.hold_id == hold && e.state == "expired"
        })
        .await;
        assert!(expired.log_index > placed.log_index, "{expired:?}");

        // A bed's round: admitted, discharged, cleaned, held again; blocked, unblocked.
        bed_round(&c, &mut w, &mut seen, ward).await;

        // A seat freed while a patient waits: the offer is on the feed.
        let doctor = region.doctors.iter().find(|d| d.remote).expect("a doctor");
        let minute = 60_000;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let start_ms = (now_ms / minute + 5 * 24 * 60) * minute;
        let slot = c
            .publish_schedule(pb::PublishScheduleRequest {
                request_id: id("pub"),
                doctor_id: doctor.id.0,
                slots: vec![pb::SlotSpec {
                    start_ms,
                    duration_minutes: 30,
                    mode: pb::Mode::Remote as i32,
                    capacity: 1,
                    referral_reserved: 0,
                    cancel_before_minutes: 0,
                    overbook: 0,
                }],
            })
            .await
            .expect("publish")
            .slots[0]
            .slot_id;
        let first = c
            .hold_slot(pb::HoldSlotRequest {
                request_id: id("hs"),
                slot_id: slot,
                patient_ref: patient(2),
                ttl_ms: 0,
                channel: pb::Channel::Public as i32,
                referral_id: 0,
            })
            .await
            .expect("hold slot")
            .booking
            .expect("booking")
            .hold_id;
        c.join_waitlist(pb::JoinWaitlistRequest {
            request_id: id("jw"),
            doctor_id: doctor.id.0,
            patient_ref: patient(3),
            channel: pb::Channel::Public as i32,
            ..Default::default()
        })
        .await
        .expect("join waitlist");
        c.cancel_booking(pb::CancelBookingRequest {
            request_id: id("cb"),
            hold_id: first,
            reason: "rescheduled".into(),
        })
        .await
        .expect("release the seat");
        let offer = read_until(&mut w, &mut seen, "the waitlist offer", |e| {
            e.kind == pb::EventKind::WaitlistOffer as i32
        })
        .await;
        assert_eq!(
            (offer.slot_id, offer.doctor_id, offer.patient_ref.as_str()),
            (slot, doctor.id.0, patient(3).as_str())
        );
        assert_eq!(offer.hospital_id, doctor.hospital.0);
        assert!(offer.expires_ms > offer.log_time_ms, "{offer:?}");
        let released = seen
            .iter()
            .find(|e| e.hold_id == first && e.state == "released")
            .expect("the released seat before its offer");
        assert_eq!(released.log_index, offer.log_index, "one command did both");
        // The patient platform learnt of the offer from the feed: it books the offered hold.
        let booked = c
            .book_slot(pb::BookSlotRequest {
                request_id: id("book-offer"),
                hold_id: offer.hold_id,
            })
            .await
            .expect("book the offered seat")
            .booking
            .expect("booking");
        assert_eq!(
            (booked.hold_id, booked.slot_id, booked.state),
            (offer.hold_id, slot, pb::BookingState::Booked as i32)
        );
        let seat = read_until(&mut w, &mut seen, "the offer booked", |e| {
            e.hold_id == offer.hold_id && e.state == "booked"
        })
        .await;
        assert_eq!(seat.kind, pb::EventKind::Seat as i32);
        assert_eq!(seat.patient_ref, patient(3));

        // The watched node dies; the watcher resumes on another node after its last event.
        let last = seen.last().cloned().expect("events seen");
        p.kill(watched);
        let mut more = Vec::new();
        for n in 0..3 {
            let h = c
                .hold_bed(pb::HoldBedRequest {
                    request_id: id("hb-after"),
                    ward_id: ward,
                    patient_ref: patient(10 + n),
                    ttl_ms: 600_000,
                    ..Default::default()
                })
                .await
                .expect("hold after the kill");
            more.push(h.hold.expect("hold").hold_id);
        }
        let resume = pb::WatchRequest {
            start_index: last.log_index,
            start_position: last.position + 1,
            ..Default::default()
        };
        let mut resumed = watch(&p, other, resume).await.expect("resume");
        let final_hold = *more.last().expect("holds");
        read_until(&mut resumed, &mut seen, "the holds after the kill", |e| {
            e.hold_id == final_hold && e.state == "placed"
        })
        .await;

        // The same range read in one go on the surviving node is exactly what the watcher
        // saw across the two nodes: nothing missed, nothing twice.
        let first_seen = &seen[0];
        let mut reference = Vec::new();
        let mut whole = watch(
            &p,
            other,
            pb::WatchRequest {
                start_index: first_seen.log_index,
                start_position: first_seen.position,
                ..Default::default()
            },
        )
        .await
        .expect("watch the whole range");
        read_until(&mut whole, &mut reference, "the same range", |e| {
            e.hold_id == final_hold && e.state == "placed"
        })
        .await;
        assert_eq!(
            seen, reference,
            "the resumed feed differs from the whole one"
        );
        let order = cursors(&seen);
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "out of order: {order:?}"
        );
        for h in &more {
            assert_eq!(
                seen.iter().filter(|e| e.hold_id == *h).count(),
                1,
                "hold {h} placed once"
            );
        }
    })
    .await;
}

/// Admit, discharge, clean and hold again a bed of `ward`, then block and unblock it: the
/// API answers each step and the feed carries each change, in order.
async fn bed_round(
    c: &Client,
    w: &mut tonic::Streaming<pb::WatchEvent>,
    seen: &mut Vec<pb::WatchEvent>,
    ward: u32,
) {
    let hold_bed = |bed_id: u32, tag: &str| pb::HoldBedRequest {
        request_id: id(tag),
        ward_id: ward,
        bed_id,
        patient_ref: patient(4),
        ttl_ms: 600_000,
        ..Default::default()
    };
    let held = c
        .hold_bed(hold_bed(0, "hb-round"))
        .await
        .expect("hold")
        .hold
        .expect("hold");
    let bed = held.bed_id;
    c.confirm_hold(pb::ConfirmHoldRequest {
        request_id: id("admit"),
        hold_id: held.hold_id,
    })
    .await
    .expect("admit");
    read_until(w, seen, "the admission", |e| {
        e.hold_id == held.hold_id && e.state == "confirmed"
    })
    .await;
    let discharged = c
        .discharge(pb::DischargeRequest {
            request_id: id("discharge"),
            bed_id: bed,
        })
        .await
        .expect("discharge");
    assert_eq!(discharged.state(), pb::BedState::ToClean);
    let e = read_until(w, seen, "the discharge", is(pb::EventKind::Bed, "to_clean")).await;
    assert_eq!((e.bed_id, e.ward_id), (bed, ward), "{e:?}");
    let refused = c
        .hold_bed(hold_bed(bed, "hb-dirty"))
        .await
        .expect_err("a bed to clean is not held");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    c.mark_bed_clean(pb::MarkBedCleanRequest {
        request_id: id("clean"),
        bed_id: bed,
    })
    .await
    .expect("clean");
    let e = read_until(w, seen, "the cleaning", is(pb::EventKind::Bed, "free")).await;
    assert_eq!(e.bed_id, bed, "{e:?}");
    let again = c
        .hold_bed(hold_bed(bed, "hb-again"))
        .await
        .expect("held again")
        .hold
        .expect("hold");
    assert_eq!(again.bed_id, bed);
    read_until(w, seen, "the bed held again", |e| {
        e.hold_id == again.hold_id && e.state == "placed"
    })
    .await;
    c.release_hold(pb::ReleaseHoldRequest {
        request_id: id("release"),
        hold_id: again.hold_id,
        reason: String::new(),
    })
    .await
    .expect("release");
    c.block_bed(pb::BlockBedRequest {
        request_id: id("block"),
        bed_id: bed,
        reason: pb::BlockReason::Maintenance as i32,
    })
    .await
    .expect("block");
    let e = read_until(w, seen, "the block", is(pb::EventKind::Bed, "blocked")).await;
    assert_eq!((e.bed_id, e.reason.as_str()), (bed, "maintenance"), "{e:?}");
    c.unblock_bed(pb::UnblockBedRequest {
        request_id: id("unblock"),
        bed_id: bed,
    })
    .await
    .expect("unblock");
    let e = read_until(w, seen, "the unblock", is(pb::EventKind::Bed, "free")).await;
    assert_eq!(e.bed_id, bed, "{e:?}");
    let bed_states: Vec<&str> = seen
        .iter()
        .filter(|e| e.kind == pb::EventKind::Bed as i32)
        .map(|e| e.state.as_str())
        .collect();
    assert_eq!(bed_states, ["to_clean", "free", "blocked", "free"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_start_index_is_refused_naming_the_oldest_kept_index() {
    crate::bounded(async {
        let opts = Opts {
            snapshot_interval_entries: Some(5),
            log_retain_entries: Some(2),
            ..Opts::default()
        };
        let mut p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let leader = p.wait_ready(Duration::from_secs(30)).await;
        let restarted = [1, 2, 3].into_iter().find(|n| *n != leader).unwrap_or(1);
        // Log-time ticks fill the log; wait for the node's snapshot to pass a few entries.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let st = p
                .peer(restarted)
                .status(ninety_proto::peer::v1::StatusRequest {
                    from_node: 0,
                    region: String::new(),
                })
                .await
                .expect("status")
                .into_inner();
            if st.snapshot_index > 10 {
                break;
            }
            assert!(Instant::now() < deadline, "no snapshot: {st:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Restarted, the node holds the events of what it applied after its snapshot only.
        p.kill(restarted);
        p.spawn(restarted, true);
        // Caught up (through the log or a snapshot from the leader) before watching, so no
        // snapshot install cuts the watch below.
        p.converge(&[1, 2, 3], Duration::from_secs(30)).await;
        let refused = watch(
            &p,
            restarted,
            pb::WatchRequest {
                start_index: 1,
                ..Default::default()
            },
        )
        .await
        .expect_err("index 1 is compacted");
        assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
        let oldest: u64 = refused
            .metadata()
            .get("x-ninety-oldest-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("the oldest kept index in the metadata");
        assert!(oldest > 10, "oldest kept index {oldest}");
        let message = refused.message();
        assert!(
            message.contains("start_index 1") && message.contains(&oldest.to_string()),
            "{message}"
        );
        // From the oldest kept index on, the node serves the feed (a log-time tick's
        // entries carry no events; a hold's do).
        let mut w = watch(
            &p,
            restarted,
            pb::WatchRequest {
                start_index: oldest,
                ..Default::default()
            },
        )
        .await
        .expect("the oldest kept index is served");
        let ward = ward_ids(&p, leader).await[0];
        let c = client(&p, &[leader]);
        let held = c
            .hold_bed(pb::HoldBedRequest {
                request_id: id("hb"),
                ward_id: ward,
                patient_ref: patient(1),
                ttl_ms: 600_000,
                ..Default::default()
            })
            .await
            .expect("hold bed");
        let hold = held.hold.expect("hold").hold_id;
        let mut seen = Vec::new();
        let e = read_until(
            &mut w,
            &mut seen,
            "the hold",
            is(pb::EventKind::BedHold, "placed"),
        )
        .await;
        assert_eq!(e.hold_id, hold);
    })
    .await;
}
