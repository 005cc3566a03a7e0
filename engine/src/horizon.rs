//! Rolling schedules: a doctor's weekly template, expanded one UTC day at a time into
//! published slots, so the region always has `horizon_days` of slots ahead.
//!
//! Driven by log time only: `SetWeeklyTemplate` publishes the days already inside the
//! horizon, and each `Tick` rolls the templates whose next day has entered it (bounded per
//! tick by `limits::HORIZON_DOCTOR_DAYS_PER_TICK_MAX`). A day is expanded once: slots the
//! doctor amended or withdrew afterwards stay as they are, and a template slot that would
//! overlap a published slot (or start in the past) is skipped, so templates and
//! `PublishSchedule` coexist.

use crate::error::Rejection;
use crate::limits::{HORIZON_DAYS_MAX, SLOT_DURATION_MINUTES_MAX, TEMPLATE_SLOTS_MAX};
use crate::region::Mode;
use crate::slots::{SeatLimits, SlotSpec};
use crate::time::{LogTime, MS_PER_DAY, MS_PER_MINUTE};
use serde::{Deserialize, Serialize};

/// Minutes in a day: a template slot starts and ends within its UTC day.
pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// Every weekday in `TemplateSlot::weekdays`.
pub const ALL_WEEKDAYS: u8 = 0x7F;

/// One recurring slot of a weekly template.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct TemplateSlot {
    /// The weekdays it recurs on: bit 0 Monday .. bit 6 Sunday (UTC days).
    pub weekdays: u8,
    /// Its start, in minutes after 00:00 UTC (08:00 in the GBA, UTC+8, is 0).
    pub minute_of_day: u16,
    pub duration_minutes: u16,
    pub mode: Mode,
    pub capacity: u16,
    /// Extra seats beyond capacity, for the referral channel only.
    pub overbook: u16,
    /// Seats of capacity reserved for the referral channel.
    pub referral_quota: u16,
}

/// A doctor's week, kept rolling `horizon_days` ahead of log time.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub struct WeeklyTemplate {
    /// Empty: the doctor's schedule stops rolling (published slots stay).
    pub slots: Vec<TemplateSlot>,
    /// Days published ahead, today included.
    pub horizon_days: u16,
}

/// A template and the first UTC day it has not expanded yet.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Rolling {
    pub template: WeeklyTemplate,
    /// Days since the epoch.
    pub next_day: u64,
}

impl Rolling {
    /// The UTC day on which `next_day` enters the horizon.
    pub fn due_day(&self) -> u64 {
        self.next_day
            .saturating_sub(u64::from(self.template.horizon_days))
            .saturating_add(1)
    }
}

/// The UTC day (days since the epoch) of `t`.
pub fn day_of(t: LogTime) -> u64 {
    t.0 / MS_PER_DAY
}

/// The weekday of a UTC day: 0 Monday .. 6 Sunday (1970-01-01 was a Thursday).
pub fn weekday(day: u64) -> u8 {
    ((day + 3) % 7) as u8
}

impl WeeklyTemplate {
    /// Checks the template: limits, fields (named `slots[i].<field>`), and no two
    /// slots sharing a weekday overlap; an empty one (stop rolling) has no horizon to check.
    /// `remote_ok`: the doctor takes remote consultations.
    pub fn check(&self, remote_ok: bool) -> Result<(), Rejection> {
        if self.slots.len() > TEMPLATE_SLOTS_MAX {
            return Err(Rejection::invalid(
                "slots",
                format!("must hold at most {TEMPLATE_SLOTS_MAX} slots"),
            ));
        }
        if self.slots.is_empty() {
            // Stops the rolling: there is no horizon to keep.
            return Ok(());
        }
        if self.horizon_days == 0 || self.horizon_days > HORIZON_DAYS_MAX {
            return Err(Rejection::invalid(
                "horizon_days",
                format!("must be 1 to {HORIZON_DAYS_MAX}"),
            ));
        }
        for (i, s) in self.slots.iter().enumerate() {
            check_slot(i, s, remote_ok)?;
        }
        for wd in 0..7u8 {
            let mut day: Vec<(u16, u16, usize)> = (self.slots.iter().enumerate())
                .filter(|(_, s)| s.weekdays & (1 << wd) != 0)
                .map(|(i, s)| (s.minute_of_day, s.minute_of_day + s.duration_minutes, i))
                .collect();
            day.sort();
            for pair in day.windows(2) {
                if pair[1].0 < pair[0].1 {
                    return Err(Rejection::invalid(
                        format!("slots[{}].minute_of_day", pair[1].2),
                        format!("overlaps slots[{}]", pair[0].2),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The slots of UTC day `day`, by start.
    pub fn specs_for(&self, day: u64) -> Vec<SlotSpec> {
        let base = LogTime(day.saturating_mul(MS_PER_DAY));
        let bit = 1u8 << weekday(day);
        let mut out: Vec<SlotSpec> = (self.slots.iter())
            .filter(|s| s.weekdays & bit != 0)
            .map(|s| SlotSpec {
                start: base.plus_ms(u64::from(s.minute_of_day) * MS_PER_MINUTE),
                duration_minutes: s.duration_minutes,
                mode: s.mode,
                capacity: s.capacity,
                overbook: s.overbook,
                referral_quota: s.referral_quota,
            })
            .collect();
        out.sort_by_key(|s| s.start);
        out
    }
}

fn check_slot(i: usize, s: &TemplateSlot, remote_ok: bool) -> Result<(), Rejection> {
    let f = |name: &str| format!("slots[{i}].{name}");
    if s.weekdays == 0 || s.weekdays > ALL_WEEKDAYS {
        return Err(Rejection::invalid(
            f("weekdays"),
            "must set 1 to 7 of bits 0 (Monday) .. 6 (Sunday)",
        ));
    }
    if s.duration_minutes == 0 || s.duration_minutes > SLOT_DURATION_MINUTES_MAX {
        return Err(Rejection::invalid(
            f("duration_minutes"),
            format!("must be 1 to {SLOT_DURATION_MINUTES_MAX}"),
        ));
    }
    if s.minute_of_day >= MINUTES_PER_DAY || s.minute_of_day + s.duration_minutes > MINUTES_PER_DAY
    {
        return Err(Rejection::invalid(
            f("minute_of_day"),
            "the slot must start and end within its UTC day (0 to 1440 minutes)",
        ));
    }
    if s.mode == Mode::Remote && !remote_ok {
        return Err(Rejection::invalid(
            f("mode"),
            "the doctor does not take remote consultations",
        ));
    }
    let seats = SeatLimits {
        capacity: s.capacity,
        overbook: s.overbook,
        referral_quota: s.referral_quota,
    };
    seats.check(&format!("slots[{i}]."))
}
