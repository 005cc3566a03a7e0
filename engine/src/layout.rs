//! Deployments of several 90-minute regions (issue 17; docs/design/regions.md): which
//! regions a deployment has and from which presets, and how their replicas are placed over
//! the nodes. Pure data: a node's runtime turns a layout into its region groups.
//!
//! - **`china`**: the national deployment. The three 90-minute regions the brief describes
//!   keep their own presets — `gba` (the Greater Bay Area: 9 Guangdong cities, Hong Kong
//!   and Macau), `yunnan` (Kunming and the remote prefectures it takes referrals from) and
//!   `asean` (Nanning and its partner hospitals in eight ASEAN capitals, standing for
//!   Guangxi) — and every other province-level division is a region of its own
//!   ([`Preset::Province`]): 31 regions in all. Guangdong outside the bay area is not
//!   modelled.
//! - **`south`**: four regions (gba, yunnan, asean, hainan), small enough for a local demo
//!   and for multi-process tests.

use crate::generate::{province_key, Preset, PROVINCES};

/// One region of a layout: its id (what the `ninety-region` header names) and the preset
/// it is generated from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionPlan {
    pub id: String,
    pub preset: Preset,
}

/// Provinces whose 90-minute region is a preset of its own in `china`.
const COVERED_BY_PRESETS: [&str; 3] = ["Guangdong", "Guangxi", "Yunnan"];

/// The layouts by name: `china` or `south`.
pub fn layout(name: &str) -> Option<Vec<RegionPlan>> {
    match name {
        "china" => Some(china()),
        "south" => Some(south()),
        _ => None,
    }
}

fn plan(preset: Preset) -> RegionPlan {
    RegionPlan {
        id: preset.name(),
        preset,
    }
}

/// The national layout (module doc).
pub fn china() -> Vec<RegionPlan> {
    let mut out = vec![plan(Preset::Gba), plan(Preset::Yunnan), plan(Preset::Asean)];
    for (i, name) in PROVINCES.iter().enumerate() {
        if !COVERED_BY_PRESETS.contains(name) {
            out.push(RegionPlan {
                id: province_key(name),
                preset: Preset::Province(i as u8),
            });
        }
    }
    out
}

/// The small southern layout (module doc).
pub fn south() -> Vec<RegionPlan> {
    let hainan = PROVINCES.iter().position(|p| *p == "Hainan").unwrap_or(0);
    vec![
        plan(Preset::Gba),
        plan(Preset::Yunnan),
        plan(Preset::Asean),
        plan(Preset::Province(hainan as u8)),
    ]
}

/// Voters of each of `regions` regions over `nodes`, `replicas` each (at most one per
/// node; fewer nodes than replicas gives every node): region `r` starts at node `r mod n`,
/// so replicas, and the first voter that a region's bootstrap favours as leader, are spread
/// evenly.
pub fn place(regions: usize, nodes: &[u64], replicas: usize) -> Vec<Vec<u64>> {
    let n = nodes.len();
    let k = replicas.min(n);
    (0..regions)
        .map(|r| (0..k).map(|j| nodes[(r + j) % n]).collect())
        .collect()
}

/// Roads serve trips up to this far (km, great circle); farther ones go by high-speed rail.
pub const ROAD_TRIP_KM_MAX: f64 = 300.0;
/// Mean road speed between cities, km/h (expressway, with the drive to and from it).
pub const ROAD_KMH: f64 = 70.0;
/// Mean high-speed rail speed over the great-circle distance, km/h (lines are not straight).
pub const RAIL_KMH: f64 = 200.0;
/// Minutes a rail trip adds: to the station, boarding, from the station to the hospital.
pub const RAIL_TRANSFER_MINUTES: f64 = 90.0;
/// Earth's mean radius, km.
const EARTH_RADIUS_KM: f64 = 6_371.0;

/// Great-circle distance between two points given in degrees, km.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Minutes from one region's gateway city to another's (`generate::gateway`): by road up
/// to `ROAD_TRIP_KM_MAX`, else by high-speed rail with `RAIL_TRANSFER_MINUTES`. The
/// region-level edge of the national travel graph; within a region the engine's own road
/// table applies. Symmetric; 0 for a region to itself.
pub fn travel_minutes(a: Preset, b: Preset) -> u32 {
    if a == b {
        return 0;
    }
    let km = distance_km(crate::generate::gateway(a), crate::generate::gateway(b));
    let minutes = road_minutes(km).unwrap_or(RAIL_TRANSFER_MINUTES + km / RAIL_KMH * 60.0);
    whole_minutes(minutes)
}

/// Minutes by road over `km` of great-circle distance; `None` past `ROAD_TRIP_KM_MAX`.
fn road_minutes(km: f64) -> Option<f64> {
    (km <= ROAD_TRIP_KM_MAX).then_some(km / ROAD_KMH * 60.0)
}

fn whole_minutes(minutes: f64) -> u32 {
    minutes.round().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// A hospital-level edge of the national travel graph: from `from` (degrees) straight by
/// road to the nearest of another region's `hospitals` (id, degrees), when that is a road
/// trip (`ROAD_TRIP_KM_MAX`). Such edges exist only near borders: a county hospital a
/// hundred kilometres from the next province's hospitals drives there, where the
/// region-level edge would send it to its own gateway city and on by rail. Cross-region
/// matching enters a region by whichever edge gives the cheaper trip to each ward
/// (`matching::across`). Ties: the lower id.
pub fn border_edge<H: Ord + Copy>(
    from: (f64, f64),
    hospitals: impl IntoIterator<Item = (H, (f64, f64))>,
) -> Option<(H, u32)> {
    let (km, nearest) = hospitals
        .into_iter()
        .map(|(id, at)| (distance_km(from, at), id))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))?;
    Some((nearest, whole_minutes(road_minutes(km)?)))
}

/// The regions of `plans` other than `home`, nearest first, with the minutes to reach
/// each: the order cross-region matching searches them in.
pub fn neighbours<'a>(home: &RegionPlan, plans: &'a [RegionPlan]) -> Vec<(&'a RegionPlan, u32)> {
    let mut out: Vec<(&RegionPlan, u32)> = plans
        .iter()
        .filter(|p| p.id != home.id)
        .map(|p| (p, travel_minutes(home.preset, p.preset)))
        .collect();
    out.sort_by(|a, b| (a.1, &a.0.id).cmp(&(b.1, &b.0.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::planned;

    #[test]
    fn border_edges_join_hospitals_a_road_trip_apart_only() {
        let beijing = (39.90, 116.40);
        let near = [(2u32, (39.13, 117.20)), (1, (39.20, 117.10))];
        let (to, minutes) = border_edge(beijing, near).expect("Tianjin is a drive away");
        assert_eq!(to, 1, "the nearest hospital across the border");
        let km = distance_km(beijing, (39.20, 117.10));
        assert_eq!(minutes, (km / ROAD_KMH * 60.0).round() as u32);
        let kunming = (25.04, 102.72);
        assert_eq!(border_edge(kunming, near), None, "2,000 km is no road trip");
        assert_eq!(border_edge(beijing, Vec::<(u32, (f64, f64))>::new()), None);
    }

    #[test]
    fn china_has_every_province_once_and_the_national_figures() {
        let regions = china();
        assert_eq!(regions.len(), 31);
        let mut ids: Vec<&str> = regions.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 31, "ids are unique");
        for r in &regions {
            assert_eq!(
                r.id.parse::<Preset>(),
                Ok(r.preset),
                "{} names its preset",
                r.id
            );
        }
        let (mut hospitals, mut points, mut doctors) = (0, 0, 0);
        for r in &regions {
            let (h, p, d) = planned(r.preset);
            hospitals += h - p;
            points += p;
            doctors += d;
        }
        // The brief: 2,400 hospitals, 12,000 grassroots points, 290,000 specialists; the
        // bay area, Yunnan and ASEAN presets replace three provinces' generated share.
        assert!(
            (2_000..=2_600).contains(&hospitals),
            "{hospitals} hospitals"
        );
        assert!(
            (10_000..=12_000).contains(&points),
            "{points} grassroots points"
        );
        assert!((250_000..=330_000).contains(&doctors), "{doctors} doctors");
    }

    #[test]
    fn placement_spreads_replicas_and_first_voters() {
        let nodes = [1, 2, 3];
        let placed = place(31, &nodes, 3);
        assert!(placed.iter().all(|v| v.len() == 3));
        let mut first = [0; 3];
        for v in &placed {
            let mut sorted = v.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, nodes, "each region on every node, once");
            first[(v[0] - 1) as usize] += 1;
        }
        assert!(first.iter().all(|&f| (10..=11).contains(&f)), "{first:?}");
        let five = place(4, &[1, 2, 3, 4, 5], 3);
        assert_eq!(
            five,
            [vec![1, 2, 3], vec![2, 3, 4], vec![3, 4, 5], vec![4, 5, 1]]
        );
        assert_eq!(place(2, &[7], 3), [vec![7], vec![7]]);
    }

    #[test]
    fn layouts_by_name() {
        assert_eq!(layout("china").map(|l| l.len()), Some(31));
        let south: Vec<String> = layout("south")
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(south, ["gba", "yunnan", "asean", "hainan"]);
        assert_eq!(layout("mars"), None);
    }

    #[test]
    fn region_travel_is_symmetric_and_nearest_first() {
        let south = south();
        let gba = &south[0];
        let near = neighbours(gba, &south);
        let ids: Vec<&str> = near.iter().map(|(p, _)| p.id.as_str()).collect();
        // Haikou is ~470 km from Guangzhou, Nanning ~500 km, Kunming ~1,070 km.
        assert_eq!(ids, ["hainan", "asean", "yunnan"], "{near:?}");
        for (p, m) in &near {
            assert_eq!(*m, travel_minutes(p.preset, gba.preset));
            assert!((150..=600).contains(m), "{}: {m} min", p.id);
        }
        assert_eq!(travel_minutes(Preset::Gba, Preset::Gba), 0);
        let km = distance_km((23.129, 113.264), (25.039, 102.718));
        assert!(
            (1_050.0..1_100.0).contains(&km),
            "{km} km Guangzhou–Kunming"
        );
    }
}
