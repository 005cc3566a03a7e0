//! The regions of a several-region cluster benchmark (`cluster_bench --regions N`, issue
//! 17): which regions the nodes serve, the `[[regions]]` tables of their configs, and each
//! region's staffed wards (what its clients hold beds in).

use ninety_engine::generate::{self, Preset};
use ninety_engine::layout::{self, RegionPlan};

/// The most regions a benchmark serves: the `china` layout's.
pub const BENCH_REGIONS_MAX: usize = 31;

/// The first `n` regions: the `south` layout's four (gba, yunnan, asean, hainan), then the
/// `china` layout's other regions in its order; `None` past [`BENCH_REGIONS_MAX`].
pub fn plans(n: usize) -> Option<Vec<RegionPlan>> {
    if n > BENCH_REGIONS_MAX {
        return None;
    }
    let mut out = layout::south();
    for r in layout::china() {
        if !out.iter().any(|o| o.id == r.id) {
            out.push(r);
        }
    }
    out.truncate(n);
    (out.len() == n).then_some(out)
}

/// The `[[regions]]` tables of a node config for `plans` on `nodes`, three replicas each,
/// leaders spread over the nodes (`layout::place`: region `r`'s first voter is node
/// `r mod nodes`, the one its bootstrap favours).
pub fn regions_toml(plans: &[RegionPlan], nodes: &[u64]) -> String {
    let voters = layout::place(plans.len(), nodes, 3);
    plans
        .iter()
        .zip(voters)
        .map(|(p, v)| {
            let v: Vec<String> = v.iter().map(u64::to_string).collect();
            format!(
                "[[regions]]\nid = \"{}\"\nspec = \"{}\"\nvoters = [{}]\n",
                p.id,
                p.preset.name(),
                v.join(", ")
            )
        })
        .collect()
}

/// A region's staffed wards' ids and the (hospital, ward) of its last ward (loaded last).
pub fn staffed_wards(preset: Preset) -> (Vec<u32>, (u32, u32)) {
    let region = generate::region(preset, generate::DEFAULT_SEED);
    let wards: Vec<u32> = region
        .wards
        .iter()
        .filter(|w| w.ward.staffed_beds > 0)
        .map(|w| w.ward.id.0)
        .collect();
    let last = region
        .wards
        .last()
        .map(|w| (w.ward.hospital.0, w.ward.id.0))
        .unwrap_or((1, 1));
    (wards, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_start_with_the_south_layout_and_never_repeat() {
        let ids = |n| -> Vec<String> { plans(n).unwrap().into_iter().map(|p| p.id).collect() };
        assert_eq!(ids(2), ["gba", "yunnan"]);
        assert_eq!(ids(4), ["gba", "yunnan", "asean", "hainan"]);
        let mut eight = ids(8);
        eight.sort_unstable();
        eight.dedup();
        assert_eq!(eight.len(), 8);
        assert!(plans(BENCH_REGIONS_MAX).is_some());
        assert!(plans(BENCH_REGIONS_MAX + 1).is_none());
    }

    #[test]
    fn regions_toml_spreads_the_first_voters() {
        let text = regions_toml(&plans(4).unwrap(), &[1, 2, 3]);
        assert!(text.contains("id = \"gba\"\nspec = \"gba\"\nvoters = [1, 2, 3]"));
        assert!(text.contains("id = \"yunnan\"\nspec = \"yunnan\"\nvoters = [2, 3, 1]"));
        assert!(text.contains("id = \"hainan\"\nspec = \"hainan\"\nvoters = [1, 2, 3]"));
    }
}
