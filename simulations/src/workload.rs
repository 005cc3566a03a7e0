//! The client workload: closed-loop clients that hold, confirm and release beds, discharge
//! and clean them, hold, book, release and cancel slot seats, and hold, book and release
//! joint consultations. Each client remembers what it holds (from acknowledged replies) so
//! its next operation usually acts on something real; stale references are fine, the
//! engine refuses them and the refusal is part of the checked history.

use crate::region::RegionInfo;
use crate::rng::Rng;
use ninety_engine::{
    BedId, BedTarget, Channel, Command, ConsultId, HoldId, PatientRef, Reply, Request, RequestId,
};

/// What one client currently owns, as far as its acknowledged replies tell.
#[derive(Debug, Default, Clone)]
pub struct Owned {
    pub bed_holds: Vec<HoldId>,
    pub occupied: Vec<BedId>,
    pub to_clean: Vec<BedId>,
    pub slot_holds: Vec<HoldId>,
    pub bookings: Vec<HoldId>,
    pub consults: Vec<ConsultId>,
    pub booked_consults: Vec<ConsultId>,
}

fn take<T: Copy>(rng: &mut Rng, v: &[T]) -> Option<T> {
    rng.pick(v).copied()
}

fn remove<T: PartialEq>(v: &mut Vec<T>, x: &T) {
    v.retain(|y| y != x);
}

/// Draws the next command for a client.
pub fn next_command(rng: &mut Rng, region: &RegionInfo, owned: &Owned, patient: u128) -> Command {
    let patient = PatientRef(patient);
    let roll = rng.below(100);
    let pick_slot = |rng: &mut Rng| -> Option<ninety_engine::SlotId> {
        let d = rng.pick(&region.slots)?;
        rng.pick(d).copied()
    };
    let cmd = match roll {
        0..=19 => region
            .wards
            .get(rng.below(region.wards.len() as u64) as usize)
            .map(|w| Command::HoldBed {
                target: BedTarget::Ward(*w),
                patient,
                ttl_ms: rng.range(500, 20_000),
            }),
        20..=27 => take(rng, &owned.bed_holds).map(|hold| Command::ConfirmHold { hold }),
        28..=33 => take(rng, &owned.bed_holds).map(|hold| Command::ReleaseHold { hold }),
        34..=38 => take(rng, &owned.occupied).map(|bed| Command::Discharge { bed }),
        39..=43 => take(rng, &owned.to_clean).map(|bed| Command::MarkBedClean { bed }),
        44..=59 => pick_slot(rng).map(|slot| Command::HoldSlot {
            slot,
            patient,
            channel: if rng.chance(300) {
                Channel::Referral
            } else {
                Channel::Public
            },
        }),
        60..=67 => take(rng, &owned.slot_holds).map(|hold| Command::BookSlot { hold }),
        68..=72 => take(rng, &owned.slot_holds).map(|hold| Command::ReleaseSlot { hold }),
        73..=77 => take(rng, &owned.bookings).map(|booking| Command::CancelBooking { booking }),
        78..=85 => {
            let k = take(rng, &region.remote_k);
            let n = region.slots.len() as u64;
            let a = rng.below(n) as usize;
            let b = (a + 1 + rng.below(n.saturating_sub(1).max(1)) as usize) % n.max(1) as usize;
            k.and_then(|k| {
                let sa = *region.slots.get(a)?.get(k)?;
                let sb = *region.slots.get(b)?.get(k)?;
                Some(Command::HoldJointConsult {
                    slots: vec![sa, sb],
                    patient,
                })
            })
        }
        86..=91 => take(rng, &owned.consults).map(|consult| Command::BookJointConsult { consult }),
        92..=95 => {
            take(rng, &owned.consults).map(|consult| Command::ReleaseJointConsult { consult })
        }
        _ => {
            // A bed hold on a specific bed (contends with ward holds on the same beds).
            take(rng, &region.beds).map(|bed| Command::HoldBed {
                target: BedTarget::Bed(bed),
                patient,
                ttl_ms: rng.range(500, 20_000),
            })
        }
    };
    cmd.unwrap_or_else(|| Command::HoldBed {
        target: BedTarget::Ward(
            region
                .wards
                .first()
                .copied()
                .unwrap_or(ninety_engine::WardId(1)),
        ),
        patient,
        ttl_ms: 5_000,
    })
}

/// Updates what a client owns from the acknowledged outcome of `request`.
pub fn learn(owned: &mut Owned, request: &Request, outcome: &ninety_engine::Outcome) {
    match (&request.command, outcome) {
        (_, Ok(Reply::BedHeld { hold, .. })) => owned.bed_holds.push(*hold),
        (Command::ConfirmHold { hold }, Ok(Reply::HoldConfirmed { bed, .. })) => {
            remove(&mut owned.bed_holds, hold);
            owned.occupied.push(*bed);
        }
        (Command::ConfirmHold { hold } | Command::ReleaseHold { hold }, _) => {
            remove(&mut owned.bed_holds, hold)
        }
        (Command::Discharge { bed }, Ok(_)) => {
            remove(&mut owned.occupied, bed);
            owned.to_clean.push(*bed);
        }
        (Command::Discharge { bed }, Err(_)) => remove(&mut owned.occupied, bed),
        (Command::MarkBedClean { bed }, _) => remove(&mut owned.to_clean, bed),
        (_, Ok(Reply::SlotHeld { hold, .. })) => owned.slot_holds.push(*hold),
        (Command::BookSlot { hold }, Ok(Reply::SlotBooked { booking, .. })) => {
            remove(&mut owned.slot_holds, hold);
            owned.bookings.push(*booking);
        }
        (Command::BookSlot { hold } | Command::ReleaseSlot { hold }, _) => {
            remove(&mut owned.slot_holds, hold)
        }
        (Command::CancelBooking { booking }, _) => remove(&mut owned.bookings, booking),
        (_, Ok(Reply::ConsultHeld { consult, .. })) => owned.consults.push(*consult),
        (Command::BookJointConsult { consult }, Ok(_)) => {
            remove(&mut owned.consults, consult);
            owned.booked_consults.push(*consult);
        }
        (Command::BookJointConsult { consult } | Command::ReleaseJointConsult { consult }, _) => {
            remove(&mut owned.consults, consult)
        }
        _ => {}
    }
}

/// A client request id: client number in the high bits, sequence in the low bits (below
/// the adapter's reserved tick range and the engine's bootstrap range).
pub fn request_id(client: u64, seq: u64) -> RequestId {
    RequestId((u128::from(client + 1) << 64) | u128::from(seq))
}
