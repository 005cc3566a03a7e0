//! Cross-region matching: a bed search that may look beyond the home region.
//!
//! Each region ranks its own wards on its own published view, as today; this module only
//! merges. Another region is searched from each of its **entries**, and every candidate
//! there costs the trip to that entry on top, priced by the home region's policy at the
//! query's urgency:
//!
//! - its gateway city (attached to its nearest hospital like any map point,
//!   `Origin::Point`), reached by the region-level edge (`layout::travel_minutes`: road up
//!   to a few hundred km, else high-speed rail);
//! - near a border, the hospital across it nearest the origin, reached straight by road
//!   (`layout::border_edge`).
//!
//! A ward reached from both keeps the cheaper trip. Travel bounds hold for the whole trip:
//! an entry farther than `max_travel_minutes` is not used, and one inside it is searched
//! with what is left.
//!
//! A candidate elsewhere is never `allied` (alliances are per region). The answer names each
//! candidate's region; holding one is a cross-region referral (`remote`,
//! `Command::HoldRemoteBed`). Pure: the caller (the cluster's read path) gathers the views
//! of the regions it hosts or reads.

use super::candidates::{match_beds, Source};
use super::{BedCandidate, BedQuery, Origin, Ranked};
use crate::error::Rejection;
use serde::{Deserialize, Serialize};

/// Most other regions one search looks at (nearest first): the bound on its work.
pub const ACROSS_REGIONS_MAX: usize = 8;

/// Where a bed search may look.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The home region only (what every search did before regions).
    #[default]
    Home,
    /// Other regions only when nothing fits at home.
    WhenNoneAtHome,
    /// Home and other regions, ranked together.
    Everywhere,
}

/// Another region a search may look at.
pub struct Elsewhere<'a, S> {
    /// The region's id.
    pub region: &'a str,
    /// Its availability (its published view).
    pub source: &'a S,
    /// Where a patient from the search's origin may enter it (at least one).
    pub entries: Vec<Entry>,
}

/// One way into another region.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry {
    /// Where the search in that region starts.
    pub at: Origin,
    /// Minutes from the search's origin to `at`.
    pub travel_minutes: u32,
    pub by: Crossing,
}

/// Which edge of the national travel graph an [`Entry`] is reached by.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Crossing {
    /// Region to region, gateway city to gateway city.
    Gateway,
    /// Straight by road from the origin to a hospital across the border.
    Border,
}

/// A ward candidate and the region it is in.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RegionalBed {
    pub region: String,
    pub candidate: BedCandidate,
}

/// Ranks wards for `q` at home and, as `scope` says, in `others` (nearest first, at most
/// `ACROSS_REGIONS_MAX`): the best `q.limit` of all, cheapest first. Refused only as the
/// home search is (a bad limit or origin); a region whose search fails is skipped and named
/// in the note.
pub fn match_beds_across<S: Source>(
    home_region: &str,
    home: &S,
    others: &[Elsewhere<'_, S>],
    q: &BedQuery,
    scope: Scope,
) -> Result<Ranked<RegionalBed>, Rejection> {
    let at_home = match_beds(home, q)?;
    let mut notes: Vec<String> = at_home.note.into_iter().collect();
    let mut all: Vec<RegionalBed> = at_home
        .candidates
        .into_iter()
        .map(|candidate| RegionalBed {
            region: home_region.to_string(),
            candidate,
        })
        .collect();
    let look = match scope {
        Scope::Home => false,
        Scope::WhenNoneAtHome => all.is_empty(),
        Scope::Everywhere => true,
    };
    if look {
        let mut searched = 0usize;
        for e in others.iter().take(ACROSS_REGIONS_MAX) {
            match search_elsewhere(home, e, q) {
                Some(Ok(found)) => {
                    searched += 1;
                    all.extend(found);
                }
                Some(Err(why)) => notes.push(format!("region {} not searched: {why}", e.region)),
                None => {}
            }
        }
        notes.push(format!("searched {searched} other region(s)"));
    }
    all.sort_by(|a, b| {
        (a.candidate.score, &a.region, a.candidate.ward).cmp(&(
            b.candidate.score,
            &b.region,
            b.candidate.ward,
        ))
    });
    all.truncate(usize::from(q.limit));
    Ok(Ranked {
        candidates: all,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// The candidates of one other region with the trip there added, each ward by its
/// cheaper entry; `None` when every entry lies beyond the query's travel bound.
fn search_elsewhere<S: Source>(
    home: &S,
    e: &Elsewhere<'_, S>,
    q: &BedQuery,
) -> Option<Result<Vec<RegionalBed>, Rejection>> {
    let mut best: std::collections::BTreeMap<crate::ids::WardId, BedCandidate> =
        std::collections::BTreeMap::new();
    let mut reachable = false;
    for entry in &e.entries {
        let mut sub = q.clone();
        sub.origin = entry.at;
        if let Some(max) = q.bounds.max_travel_minutes {
            let Some(left) = max.checked_sub(entry.travel_minutes) else {
                continue;
            };
            sub.bounds.max_travel_minutes = Some(left);
        }
        reachable = true;
        let ranked = match match_beds(e.source, &sub) {
            Ok(r) => r,
            Err(why) => return Some(Err(why)),
        };
        for c in ranked.candidates {
            let c = via(home, e.region, entry, q, c);
            let keep = best
                .get(&c.ward)
                .is_none_or(|b| (c.score, c.travel_minutes) < (b.score, b.travel_minutes));
            if keep {
                best.insert(c.ward, c);
            }
        }
    }
    if !reachable {
        return None;
    }
    let found = best
        .into_values()
        .map(|candidate| RegionalBed {
            region: e.region.to_string(),
            candidate,
        })
        .collect();
    Some(Ok(found))
}

/// A candidate found from `entry` with the trip to the entry added.
fn via<S: Source>(
    home: &S,
    region: &str,
    entry: &Entry,
    q: &BedQuery,
    mut c: BedCandidate,
) -> BedCandidate {
    let minutes = entry.travel_minutes;
    let extra = home.policy().travel_cost(q.urgency, minutes);
    c.travel_minutes = c.travel_minutes.saturating_add(minutes);
    c.score = c.score.saturating_add(extra);
    c.allied = false;
    c.beyond_reach = true;
    let how = match entry.by {
        Crossing::Gateway => "to",
        Crossing::Border => "by road across the border to",
    };
    c.explain = format!(
        "{}; +{minutes} min {how} region {region} (+{extra})",
        c.explain
    );
    c
}
