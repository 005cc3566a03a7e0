//! Cross-region matching: a bed search that may look beyond the home region.
//!
//! Each region ranks its own wards on its own published view, as today; this module only
//! merges. Another region is searched from its **entry** (its gateway city, attached to its
//! nearest hospital like any map point, `Origin::Point`), and every candidate there costs the
//! region-level trip on top (`layout::travel_minutes`: road up to a few hundred km, else
//! high-speed rail), priced by the home region's policy at the query's urgency. Travel
//! bounds hold for the whole trip: a region farther than `max_travel_minutes` is not
//! searched, and one inside it is searched with what is left.
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
    /// Where a patient arriving from elsewhere enters it.
    pub entry: Origin,
    /// Minutes from the home region to its entry.
    pub travel_minutes: u32,
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

/// The candidates of one other region with the trip there added; `None` when the region
/// lies beyond the query's travel bound.
fn search_elsewhere<S: Source>(
    home: &S,
    e: &Elsewhere<'_, S>,
    q: &BedQuery,
) -> Option<Result<Vec<RegionalBed>, Rejection>> {
    let mut sub = q.clone();
    sub.origin = e.entry;
    if let Some(max) = q.bounds.max_travel_minutes {
        sub.bounds.max_travel_minutes = Some(max.checked_sub(e.travel_minutes)?);
    }
    let extra = home.policy().travel_cost(q.urgency, e.travel_minutes);
    let ranked = match match_beds(e.source, &sub) {
        Ok(r) => r,
        Err(why) => return Some(Err(why)),
    };
    let found = ranked
        .candidates
        .into_iter()
        .map(|mut c| {
            c.travel_minutes = c.travel_minutes.saturating_add(e.travel_minutes);
            c.score = c.score.saturating_add(extra);
            c.allied = false;
            c.beyond_reach = true;
            c.explain = format!(
                "{}; +{} min to region {} (+{extra})",
                c.explain, e.travel_minutes, e.region
            );
            RegionalBed {
                region: e.region.to_string(),
                candidate: c,
            }
        })
        .collect();
    Some(Ok(found))
}
