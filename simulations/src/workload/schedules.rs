//! The rolling-schedule commands of the workload: what a hospital's scheduling system sends
//! beside the patients' holds. A doctor's seat numbers amended (`AmendSlot`), slots
//! withdrawn with the seats held or booked on them (`WithdrawSlots`), a weekly template set
//! or stopped (`SetWeeklyTemplate`), and slots published with overbooking
//! (`PublishSchedule`), some at the time of a region slot (refused for the overlap unless
//! that slot was withdrawn).
//!
//! The client acts mostly on slots it published itself (`Owned::published`), which its
//! seat holds then use too, and now and then on the region's, which carry most of the seat
//! traffic: withdrawing one of those removes it for the rest of the run, so withdrawals
//! name a region slot only one time in four.

use super::{take, Owned};
use crate::region::{RegionInfo, SLOTS_PER_DOCTOR};
use crate::rng::Rng;
use ninety_engine::time::MS_PER_MINUTE;
use ninety_engine::{
    Command, DoctorId, LogTime, Mode, SeatLimits, SlotId, SlotSpec, TemplateSlot, WeeklyTemplate,
};

/// Doctors of the region (ids 1..=DOCTORS).
const DOCTORS: u64 = 4;
/// Largest capacity the workload gives a slot (small, so seats keep contending).
const CAPACITY_MAX: u64 = 3;
/// Largest overbooking the workload declares.
const OVERBOOK_MAX: u64 = 2;
/// Days a template keeps published ahead, at most (the horizon stays small).
const HORIZON_DAYS_MAX: u64 = 3;
/// Quarter hours after the region's slots (tomorrow from 02:00) where publications go.
const FREE_QUARTERS: u64 = 24;
/// Every weekday in `TemplateSlot::weekdays` (bit 0 Monday .. bit 6 Sunday).
const ALL_WEEKDAYS: u8 = 0x7F;

/// Draws one schedule command.
pub fn command(rng: &mut Rng, region: &RegionInfo, owned: &Owned) -> Command {
    match rng.below(8) {
        0 | 1 => amend(rng, region, owned),
        2 | 3 => withdraw(rng, region, owned),
        4 | 5 => template(rng, region),
        _ => publish(rng, region),
    }
}

/// A slot to act on: one this client published, else (and one time in `region_in` anyway)
/// one of the region's.
fn some_slot(rng: &mut Rng, region: &RegionInfo, owned: &Owned, region_in: u64) -> SlotId {
    let own = take(rng, &owned.published).filter(|_| !rng.chance(1000 / region_in));
    own.or_else(|| {
        let d = rng.pick(&region.slots)?;
        rng.pick(d).copied()
    })
    .unwrap_or(SlotId(1))
}

/// Seat numbers: capacity 1 to [`CAPACITY_MAX`], overbooking up to [`OVERBOOK_MAX`], a
/// referral quota up to the capacity (one time in ten over it: refused).
fn seats(rng: &mut Rng) -> SeatLimits {
    let capacity = rng.range(1, CAPACITY_MAX) as u16;
    let quota_max = if rng.chance(100) {
        capacity + 1
    } else {
        capacity
    };
    SeatLimits {
        capacity,
        overbook: rng.range(0, OVERBOOK_MAX) as u16,
        referral_quota: rng.range(0, u64::from(quota_max)) as u16,
    }
}

/// `AmendSlot`: new seat numbers for a slot (refused when they no longer cover its taken
/// seats, or the slot was withdrawn).
fn amend(rng: &mut Rng, region: &RegionInfo, owned: &Owned) -> Command {
    let slot = some_slot(rng, region, owned, 2);
    Command::AmendSlot {
        slot,
        seats: seats(rng),
    }
}

/// `WithdrawSlots`: one or two slots, cancelling their seats four times in five (else
/// refused when a seat is taken).
fn withdraw(rng: &mut Rng, region: &RegionInfo, owned: &Owned) -> Command {
    let mut slots = vec![some_slot(rng, region, owned, 4)];
    if rng.chance(250) {
        let other = some_slot(rng, region, owned, 4);
        if !slots.contains(&other) || rng.chance(200) {
            // Now and then the same slot twice: refused.
            slots.push(other);
        }
    }
    Command::WithdrawSlots {
        slots,
        cancel_bookings: !rng.chance(200),
    }
}

/// `SetWeeklyTemplate`: one or two recurring slots on some weekdays, 1 to
/// [`HORIZON_DAYS_MAX`] days ahead, from today or tomorrow; one time in eight an empty
/// template (the doctor's schedule stops rolling).
fn template(rng: &mut Rng, region: &RegionInfo) -> Command {
    let doctor = DoctorId(rng.range(1, DOCTORS) as u32);
    let tomorrow = region.slot_window.0;
    let from = if rng.chance(300) {
        tomorrow
    } else {
        LogTime(0)
    };
    if rng.chance(125) {
        return Command::SetWeeklyTemplate {
            doctor,
            template: WeeklyTemplate::default(),
            from,
        };
    }
    let n = rng.range(1, 2);
    let slots = (0..n)
        .map(|i| {
            let limits = seats(rng);
            TemplateSlot {
                weekdays: if rng.chance(500) {
                    ALL_WEEKDAYS
                } else {
                    rng.range(1, u64::from(ALL_WEEKDAYS)) as u8
                },
                // Quarter hours, the second in the day's second half: the two never overlap
                // (a template refused is one whose quota exceeds its capacity). Today's first
                // minutes are past, tomorrow's first two hours the region's: skipped.
                minute_of_day: (rng.below(40) * 15 + i * 600) as u16,
                duration_minutes: if rng.chance(800) { 15 } else { 30 },
                mode: if rng.chance(500) {
                    Mode::Remote
                } else {
                    Mode::InPerson
                },
                capacity: limits.capacity,
                overbook: limits.overbook,
                referral_quota: limits.referral_quota,
            }
        })
        .collect();
    Command::SetWeeklyTemplate {
        doctor,
        template: WeeklyTemplate {
            slots,
            horizon_days: rng.range(1, HORIZON_DAYS_MAX) as u16,
        },
        from,
    }
}

/// `PublishSchedule`: one to three 15-minute slots with overbooking, tomorrow after the
/// region's slots (refused when they overlap an earlier publication), or one time in four
/// at a region slot's time (refused unless that slot was withdrawn).
fn publish(rng: &mut Rng, region: &RegionInfo) -> Command {
    let doctor = DoctorId(rng.range(1, DOCTORS) as u32);
    let tomorrow = region.slot_window.0;
    let n = rng.range(1, 3);
    let first_quarter = if rng.chance(250) {
        rng.below(SLOTS_PER_DOCTOR)
    } else {
        SLOTS_PER_DOCTOR + rng.below(FREE_QUARTERS)
    };
    let slots = (0..n)
        .map(|i| {
            let limits = seats(rng);
            SlotSpec {
                start: tomorrow.plus_ms((first_quarter + i) * 15 * MS_PER_MINUTE),
                duration_minutes: 15,
                mode: if rng.chance(500) {
                    Mode::Remote
                } else {
                    Mode::InPerson
                },
                capacity: limits.capacity,
                overbook: limits.overbook.max(1),
                referral_quota: limits.referral_quota.min(limits.capacity),
            }
        })
        .collect();
    Command::PublishSchedule { doctor, slots }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn region() -> RegionInfo {
        let start = LogTime(1_800_000_000_000);
        crate::region::info(start, LogTime(start.0 - 3_600_000)).expect("region")
    }

    /// Every schedule command is drawn, publications declare overbooking, and withdrawals
    /// name the client's own slots more often than the region's.
    #[test]
    fn every_schedule_command_is_drawn() {
        let region = region();
        let owned = Owned {
            published: vec![SlotId(1_000)],
            ..Owned::default()
        };
        let mut rng = Rng::new(3);
        let mut names = BTreeSet::new();
        let (mut own, mut theirs) = (0, 0);
        for _ in 0..2_000 {
            let c = command(&mut rng, &region, &owned);
            names.insert(super::super::lifecycle_name(&c).unwrap_or("other"));
            match c {
                Command::PublishSchedule { slots, .. } => {
                    assert!(slots.iter().all(|s| s.overbook > 0), "{slots:?}")
                }
                Command::WithdrawSlots { slots, .. } if slots[0] == SlotId(1_000) => own += 1,
                Command::WithdrawSlots { .. } => theirs += 1,
                _ => {}
            }
        }
        let all = [
            "AmendSlot",
            "PublishSchedule",
            "SetWeeklyTemplate",
            "WithdrawSlots",
        ];
        assert_eq!(names, all.into_iter().collect());
        assert!(own > 2 * theirs, "own {own}, region's {theirs}");
    }
}
