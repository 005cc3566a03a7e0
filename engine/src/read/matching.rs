//! Matching reads on a published view: ranked specialists (both modes merged by score when
//! the mode is open, alliances shared with the origin; the query's language, travel and
//! tier bounds are applied by candidate generation in `crate::matching`), and the reach of
//! a hospital (hospitals within N road minutes).
//!
//! Every matching rule a read applies lives here or in `crate::matching`: the server only
//! converts the wire to a `MatchAsk`.

use crate::error::Rejection;
use crate::ids::*;
use crate::limits::REACH_HOSPITALS_MAX;
use crate::matching::{match_specialist, Candidate, Origin, SlotQuery, MATCH_LIMIT_MAX};
use crate::region::{Mode, Tier};
use crate::view::AvailabilityView;
use serde::{Deserialize, Serialize};

/// One ranked specialist candidate with what the API reports alongside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchInfo {
    pub candidate: Candidate,
    pub mode: Mode,
    pub tier: Tier,
    /// An alliance shared with the origin hospital.
    pub alliance: Option<AllianceId>,
}

/// A specialist search as the API asks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchAsk {
    /// The search, with its language and bounds; its `limit` is ignored (see `limit`).
    pub query: SlotQuery,
    /// Search both modes and merge by score (the query's mode is then ignored).
    pub any_mode: bool,
    /// Candidates to answer, at most `MATCH_LIMIT_MAX`.
    pub limit: usize,
}

impl MatchAsk {
    /// The search as the query states it, with its own limit.
    pub fn of(query: &SlotQuery, any_mode: bool) -> MatchAsk {
        MatchAsk {
            query: query.clone(),
            any_mode,
            limit: usize::from(query.limit),
        }
    }
}

/// One hospital within reach, with its road minutes from the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    pub hospital: HospitalId,
    pub travel_minutes: u32,
    pub tier: Tier,
}

/// Ranked specialists on a published view (no access to the authoritative state, so it
/// runs on any task), best first.
pub fn specialists(view: &AvailabilityView, ask: &MatchAsk) -> Result<Vec<MatchInfo>, Rejection> {
    let modes: &[Mode] = if ask.any_mode {
        &[Mode::InPerson, Mode::Remote]
    } else {
        std::slice::from_ref(&ask.query.mode)
    };
    let limit = ask.limit.min(usize::from(MATCH_LIMIT_MAX));
    let hospitals = &view.region.hospitals;
    let origin_alliances: &[AllianceId] = match ask.query.origin {
        Origin::Hospital(h) => hospitals.get(&h).map_or(&[], |h| h.alliances.as_slice()),
        Origin::Point { .. } => &[],
    };
    let mut out = Vec::new();
    for mode in modes {
        let q = SlotQuery {
            mode: *mode,
            limit: limit as u16,
            ..ask.query.clone()
        };
        for c in match_specialist(view, &q)?.candidates {
            let alliance = hospitals.get(&c.hospital).and_then(|h| {
                h.alliances
                    .iter()
                    .find(|a| origin_alliances.contains(a))
                    .copied()
            });
            out.push(MatchInfo {
                mode: *mode,
                tier: c.tier,
                alliance,
                candidate: c,
            });
        }
    }
    out.sort_by_key(|m| (m.candidate.score, m.candidate.start, m.candidate.slot));
    out.truncate(limit);
    Ok(out)
}

/// Hospitals within `minutes` road minutes of `from`, nearest first (ties: lower id),
/// `from` itself first; `None` when `from` is unknown. At most `REACH_HOSPITALS_MAX`.
pub fn reach(view: &AvailabilityView, from: HospitalId, minutes: u32) -> Option<Vec<Reach>> {
    let index = &view.region;
    index.hospitals.get(&from)?;
    let found = index
        .nearest_from(from)
        .take_while(|(_, m)| *m <= minutes)
        .filter_map(|(hospital, travel_minutes)| {
            Some(Reach {
                hospital,
                travel_minutes,
                tier: index.hospitals.get(&hospital)?.tier,
            })
        })
        .take(REACH_HOSPITALS_MAX)
        .collect();
    Some(found)
}
