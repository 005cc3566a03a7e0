//! The matching policy: integer weights (cost points) a region sets with `SetMatchPolicy`,
//! and the cost functions that turn a candidate into a score. Lower cost is better; every
//! computation saturates, so no input can overflow.

use crate::error::Rejection;
use crate::region::{Tier, Urgency};
use serde::{Deserialize, Serialize};

/// Largest weight a policy may set; keeps every product of weight and minutes far from
/// `u64::MAX` even before saturation.
pub const POLICY_WEIGHT_MAX: u64 = 1_000_000;

/// How candidates are ranked. Costs are in points; see `docs/matching.md`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MatchPolicy {
    /// Urgent (P1/P2): points per minute of time to care (travel + wait).
    pub urgent_cost_per_minute: u64,
    /// Urgent: points at a full day's load (scaled by the load share), to spread ties.
    pub urgent_load_cost: u64,
    /// Routine (P3/P4): points per minute of travel.
    pub routine_travel_cost_per_minute: u64,
    /// Routine: points per minute of wait.
    pub routine_wait_cost_per_minute: u64,
    /// Routine: points per tier step above primary care (prefer the lowest adequate tier).
    pub routine_tier_step_cost: u64,
    /// Routine: points when the hospital is not an alliance partner of the origin.
    pub routine_non_alliance_cost: u64,
    /// Routine: points at a full day's load (scaled by the load share): no herding.
    pub routine_load_cost: u64,
    /// Candidates each allocation request brings to the batch solve (its top-K).
    pub candidates_per_request: u16,
}

impl Default for MatchPolicy {
    fn default() -> MatchPolicy {
        MatchPolicy {
            urgent_cost_per_minute: 100,
            urgent_load_cost: 500,
            routine_travel_cost_per_minute: 20,
            routine_wait_cost_per_minute: 1,
            // More than 90 minutes of travel: a lower tier anywhere inside the reach wins.
            routine_tier_step_cost: 2_000,
            routine_non_alliance_cost: 600,
            routine_load_cost: 1_500,
            candidates_per_request: 16,
        }
    }
}

/// What a cost is computed from.
#[derive(Clone, Copy, Debug)]
pub struct CostInput {
    pub urgency: Urgency,
    pub travel_minutes: u32,
    pub wait_minutes: u32,
    pub tier: Tier,
    pub allied: bool,
    pub load_permille: u32,
}

impl MatchPolicy {
    /// Checks every weight against its bound.
    pub fn check(&self) -> Result<(), Rejection> {
        let weights = [
            ("urgent_cost_per_minute", self.urgent_cost_per_minute),
            ("urgent_load_cost", self.urgent_load_cost),
            (
                "routine_travel_cost_per_minute",
                self.routine_travel_cost_per_minute,
            ),
            (
                "routine_wait_cost_per_minute",
                self.routine_wait_cost_per_minute,
            ),
            ("routine_tier_step_cost", self.routine_tier_step_cost),
            ("routine_non_alliance_cost", self.routine_non_alliance_cost),
            ("routine_load_cost", self.routine_load_cost),
        ];
        for (name, w) in weights {
            if w > POLICY_WEIGHT_MAX {
                return Err(Rejection::invalid(
                    name,
                    format!("must be at most {POLICY_WEIGHT_MAX}"),
                ));
            }
        }
        let k = self.candidates_per_request;
        if k == 0 || k > super::CANDIDATES_PER_REQUEST_MAX {
            return Err(Rejection::invalid(
                "candidates_per_request",
                format!("must be 1 to {}", super::CANDIDATES_PER_REQUEST_MAX),
            ));
        }
        Ok(())
    }

    /// The cost before load: the part that does not need the doctor's day scanned. Load only
    /// adds, so ranking by this first lets the search stop early (`candidates`).
    pub fn base_cost(&self, c: &CostInput) -> u64 {
        let travel = u64::from(c.travel_minutes);
        let wait = u64::from(c.wait_minutes);
        if c.urgency.is_urgent() {
            return self.urgent_cost_per_minute.saturating_mul(travel + wait);
        }
        let tier = self
            .routine_tier_step_cost
            .saturating_mul(u64::from(c.tier.rank()));
        let alliance = if c.allied {
            0
        } else {
            self.routine_non_alliance_cost
        };
        self.routine_travel_cost_per_minute
            .saturating_mul(travel)
            .saturating_add(self.routine_wait_cost_per_minute.saturating_mul(wait))
            .saturating_add(tier)
            .saturating_add(alliance)
    }

    /// The cost of `minutes` more travel at `urgency`: what a trip to another region adds
    /// (`across`).
    pub fn travel_cost(&self, urgency: Urgency, minutes: u32) -> u64 {
        let per_minute = if urgency.is_urgent() {
            self.urgent_cost_per_minute
        } else {
            self.routine_travel_cost_per_minute
        };
        per_minute.saturating_mul(u64::from(minutes))
    }

    /// The load part of the cost.
    pub fn load_cost(&self, urgency: Urgency, load_permille: u32) -> u64 {
        let full = if urgency.is_urgent() {
            self.urgent_load_cost
        } else {
            self.routine_load_cost
        };
        full.saturating_mul(u64::from(load_permille.min(1_000))) / 1_000
    }

    /// The whole cost.
    pub fn cost(&self, c: &CostInput) -> u64 {
        self.base_cost(c)
            .saturating_add(self.load_cost(c.urgency, c.load_permille))
    }

    /// A one-line account of the cost, for the candidate's `explain`.
    pub fn explain(&self, c: &CostInput) -> String {
        let load = self.load_cost(c.urgency, c.load_permille);
        let pct = c.load_permille / 10;
        if c.urgency.is_urgent() {
            return format!(
                "{:?} urgent: time to care {} min (travel {} + wait {}); load {pct}% (+{load})",
                c.urgency,
                c.travel_minutes.saturating_add(c.wait_minutes),
                c.travel_minutes,
                c.wait_minutes
            );
        }
        format!(
            "{:?} routine: travel {} min, wait {} min, {:?} tier (+{}), {}; load {pct}% (+{load})",
            c.urgency,
            c.travel_minutes,
            c.wait_minutes,
            c.tier,
            self.routine_tier_step_cost
                .saturating_mul(u64::from(c.tier.rank())),
            if c.allied {
                "alliance partner"
            } else {
                "not allied"
            }
        )
    }
}
