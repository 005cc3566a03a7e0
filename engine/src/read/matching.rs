//! Matching reads on a published view: ranked specialists (both modes merged by score when
//! the mode is open, alliances shared with the origin; the query's language, travel and
//! tier bounds are applied by candidate generation in `crate::matching`), ranked wards at
//! home and across regions (which regions, in what order, from where: `beds_across`), and
//! the reach of a hospital (hospitals within N road minutes).
//!
//! Every matching rule a read applies lives here or in `crate::matching`: the server only
//! converts the wire to a `MatchAsk`.

use crate::error::Rejection;
use crate::ids::*;
use crate::limits::REACH_HOSPITALS_MAX;
use crate::matching::across::{
    match_beds_across, Crossing, Elsewhere, Entry, RegionalBed, Scope, ACROSS_REGIONS_MAX,
};
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

/// Another region a bed search may read beyond home: its id, built-in layout and published
/// view, and the minutes from home to its entry (from [`regions_to_search`]).
pub struct OtherBeds<'a> {
    pub id: &'a str,
    pub preset: crate::generate::Preset,
    pub view: &'a AvailabilityView,
    pub travel_minutes: u32,
}

/// Bed candidates in the home region only (`id`, its view).
pub fn beds_at_home(
    id: &str,
    view: &AvailabilityView,
    query: &crate::matching::BedQuery,
) -> Result<crate::matching::Ranked<RegionalBed>, Rejection> {
    match_beds_across(id, view, &[], query, Scope::Home)
}

/// Whether a search with `scope` that found `at_home` reads the other regions.
pub fn looks_beyond(scope: Scope, at_home: &crate::matching::Ranked<RegionalBed>) -> bool {
    match scope {
        Scope::Home => false,
        Scope::WhenNoneAtHome => at_home.candidates.is_empty(),
        Scope::Everywhere => true,
    }
}

/// The other regions (their layouts, `others`) a bed search from `home` reads: nearest
/// first, at most `ACROSS_REGIONS_MAX`, as (index into `others`, minutes from home).
pub fn regions_to_search(
    home: crate::generate::Preset,
    others: &[crate::generate::Preset],
) -> Vec<(usize, u32)> {
    let mut near: Vec<(usize, u32)> = others
        .iter()
        .enumerate()
        .map(|(i, p)| (i, crate::layout::travel_minutes(home, *p)))
        .collect();
    near.sort_by_key(|&(i, minutes)| (minutes, i));
    near.truncate(ACROSS_REGIONS_MAX);
    near
}

/// Bed candidates at home and in `others`, ranked together. Each other region is entered at
/// its gateway city with the region-level trip added and, when the origin lies a road trip
/// from one of its hospitals, also straight across the border (`layout::border_edge`); each
/// ward keeps the cheaper (`matching::across`).
pub fn beds_across(
    id: &str,
    view: &AvailabilityView,
    others: &[OtherBeds<'_>],
    query: &crate::matching::BedQuery,
) -> Result<crate::matching::Ranked<RegionalBed>, Rejection> {
    let from = origin_degrees(view, query.origin);
    let elsewhere: Vec<Elsewhere<'_, AvailabilityView>> = others
        .iter()
        .map(|o| {
            let mut entries = vec![Entry {
                at: gateway_entry(o.preset),
                travel_minutes: o.travel_minutes,
                by: Crossing::Gateway,
            }];
            let border = from.and_then(|from| {
                let hospitals = o.view.region.hospitals.iter();
                crate::layout::border_edge(from, hospitals.map(|(&h, info)| (h, degrees(info))))
            });
            if let Some((hospital, travel_minutes)) = border {
                entries.push(Entry {
                    at: Origin::Hospital(hospital),
                    travel_minutes,
                    by: Crossing::Border,
                });
            }
            Elsewhere {
                region: o.id,
                source: o.view,
                entries,
            }
        })
        .collect();
    match_beds_across(id, view, &elsewhere, query, Scope::Everywhere)
}

/// Where a patient from another region enters `preset` by the region-level edge: its
/// gateway city.
fn gateway_entry(preset: crate::generate::Preset) -> Origin {
    let (lat, lon) = crate::generate::gateway(preset);
    Origin::Point {
        lat_micro_deg: (lat * 1e6).round() as i32,
        lon_micro_deg: (lon * 1e6).round() as i32,
    }
}

/// Where a search starts, in degrees: its hospital's place or its map point; `None` for a
/// hospital the view does not know (the home search refuses it).
fn origin_degrees(view: &AvailabilityView, origin: Origin) -> Option<(f64, f64)> {
    match origin {
        Origin::Hospital(h) => view.region.hospitals.get(&h).map(degrees),
        Origin::Point {
            lat_micro_deg,
            lon_micro_deg,
        } => Some(micro_degrees(lat_micro_deg, lon_micro_deg)),
    }
}

fn degrees(h: &crate::matching::index::HospitalInfo) -> (f64, f64) {
    micro_degrees(h.lat_micro_deg, h.lon_micro_deg)
}

fn micro_degrees(lat: i32, lon: i32) -> (f64, f64) {
    (f64::from(lat) / 1e6, f64::from(lon) / 1e6)
}
