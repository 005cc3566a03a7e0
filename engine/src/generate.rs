//! Seeded generators of realistic regions: the GBA 90-minute health circle, the national
//! scale, Yunnan's county-to-province referral network and the China–ASEAN cross-border
//! platform, from the figures in the domain brief.
//!
//! Generation is not `apply`: it may use a PRNG, but its own (SplitMix64) and only integer
//! arithmetic plus IEEE-exact float operations (no `sin`/`cos` from the platform's libm), so
//! the same seed gives the same region on every machine and Rust release.

use crate::graph::ReferralKind;
use crate::horizon::{TemplateSlot, WeeklyTemplate};
use crate::ids::*;
use crate::region::*;
use crate::region_file::*;
use crate::slots::SlotSpec;
use crate::time::{LogTime, MS_PER_DAY, MS_PER_MINUTE};

/// A region preset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Preset {
    /// Greater Bay Area: 11 cities, 79 hospitals, ~10,000 doctors, tens of thousands of beds.
    Gba,
    /// China: 2,400 hospitals in 31 provinces, ~290,000 doctors, 12,000 grassroots points.
    National,
    /// Yunnan: Kunming's provincial hospitals and ten remote prefectures and counties up to
    /// ~700 km away (Fugong in Nujiang among them), far outside any 90-minute circle; only
    /// Kunming has tertiary hospitals.
    Yunnan,
    /// China–ASEAN: Nanning's hospitals and partner hospitals in eight ASEAN capitals, each
    /// speaking its country's language.
    Asean,
    /// One province-level division of the `national` preset as a region of its own
    /// (an index into [`PROVINCES`]): its capital's 77–78 hospitals and its share of the
    /// grassroots points, with the national preset's tiers, wards and doctors.
    Province(u8),
}

/// The 31 province-level divisions of mainland China, in the order of the national
/// preset's capitals; their lower-case names (spaces as `-`) name them as presets.
pub const PROVINCES: [&str; 31] = [
    "Beijing",
    "Tianjin",
    "Hebei",
    "Shanxi",
    "Inner Mongolia",
    "Liaoning",
    "Jilin",
    "Heilongjiang",
    "Shanghai",
    "Jiangsu",
    "Zhejiang",
    "Anhui",
    "Fujian",
    "Jiangxi",
    "Shandong",
    "Henan",
    "Hubei",
    "Hunan",
    "Guangdong",
    "Guangxi",
    "Hainan",
    "Chongqing",
    "Sichuan",
    "Guizhou",
    "Yunnan",
    "Tibet",
    "Shaanxi",
    "Gansu",
    "Qinghai",
    "Ningxia",
    "Xinjiang",
];

/// A province's preset name: lower case, spaces as `-` ("inner-mongolia").
pub fn province_key(name: &str) -> String {
    name.to_lowercase().replace(' ', "-")
}

impl Preset {
    /// The presets a node may bootstrap a region from (every one but `national`, whose
    /// schedules are too large for one bootstrap), by name.
    pub fn bootable(name: &str) -> Option<Preset> {
        name.parse().ok().filter(|p| *p != Preset::National)
    }

    /// The preset's name, as [`FromStr`](std::str::FromStr) reads it.
    pub fn name(self) -> String {
        match self {
            Preset::Gba => "gba".into(),
            Preset::National => "national".into(),
            Preset::Yunnan => "yunnan".into(),
            Preset::Asean => "asean".into(),
            Preset::Province(i) => PROVINCES
                .get(usize::from(i))
                .map_or_else(|| format!("province-{i}"), |n| province_key(n)),
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Preset, String> {
        match s {
            "gba" => Ok(Preset::Gba),
            "national" => Ok(Preset::National),
            "yunnan" => Ok(Preset::Yunnan),
            "asean" => Ok(Preset::Asean),
            other => PROVINCES
                .iter()
                .position(|p| province_key(p) == other)
                .map(|i| Preset::Province(i as u8))
                .ok_or_else(|| {
                    format!(
                        "unknown preset {other:?}: expected gba, national, yunnan, asean or a \
                         province (beijing, inner-mongolia, ...)"
                    )
                }),
        }
    }
}

/// The default seed of the built-in regions.
pub const DEFAULT_SEED: u64 = 90;

/// SplitMix64: tiny, fast, and fixed forever (unlike `rand`'s algorithms across versions).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A roughly normal offset in micro-degrees with the given spread.
    fn offset(&mut self, spread_micro_deg: i64) -> i32 {
        let sum: i64 = (0..3)
            .map(|_| self.below(2_000_001) as i64 - 1_000_000)
            .sum();
        (sum * spread_micro_deg / 1_000_000 / 2) as i32
    }
}

struct City {
    name: &'static str,
    lat: f64,
    lon: f64,
    hospitals: u32,
}

const GBA_CITIES: [City; 11] = [
    City {
        name: "Guangzhou",
        lat: 23.129,
        lon: 113.264,
        hospitals: 16,
    },
    City {
        name: "Shenzhen",
        lat: 22.543,
        lon: 114.058,
        hospitals: 12,
    },
    City {
        name: "Hong Kong",
        lat: 22.319,
        lon: 114.169,
        hospitals: 9,
    },
    City {
        name: "Foshan",
        lat: 23.022,
        lon: 113.121,
        hospitals: 7,
    },
    City {
        name: "Dongguan",
        lat: 23.021,
        lon: 113.752,
        hospitals: 7,
    },
    City {
        name: "Macau",
        lat: 22.199,
        lon: 113.544,
        hospitals: 3,
    },
    City {
        name: "Zhuhai",
        lat: 22.271,
        lon: 113.577,
        hospitals: 5,
    },
    City {
        name: "Zhongshan",
        lat: 22.518,
        lon: 113.393,
        hospitals: 5,
    },
    City {
        name: "Jiangmen",
        lat: 22.579,
        lon: 113.082,
        hospitals: 5,
    },
    City {
        name: "Huizhou",
        lat: 23.112,
        lon: 114.415,
        hospitals: 5,
    },
    City {
        name: "Zhaoqing",
        lat: 23.047,
        lon: 112.465,
        hospitals: 5,
    },
];

/// Yunnan: the provincial capital first, then prefecture seats and remote counties.
const YUNNAN_PLACES: [(&str, f64, f64, u32); 11] = [
    ("Kunming", 25.039, 102.718, 14),
    ("Fugong", 26.90, 98.87, 3),
    ("Lushui", 25.85, 98.85, 3),
    ("Dali", 25.61, 100.27, 4),
    ("Lijiang", 26.87, 100.23, 3),
    ("Baoshan", 25.11, 99.16, 3),
    ("Pu'er", 22.78, 100.97, 3),
    ("Jinghong", 22.01, 100.80, 3),
    ("Zhaotong", 27.34, 103.72, 3),
    ("Wenshan", 23.37, 104.25, 3),
    ("Qujing", 25.49, 103.80, 3),
];

/// China–ASEAN: Nanning's platform hospitals and partner hospitals in ASEAN capitals.
const ASEAN_PLACES: [(&str, f64, f64, u32); 9] = [
    ("Nanning", 22.817, 108.367, 14),
    ("Hanoi", 21.029, 105.854, 4),
    ("Vientiane", 17.975, 102.633, 3),
    ("Bangkok", 13.756, 100.502, 4),
    ("Phnom Penh", 11.556, 104.928, 3),
    ("Yangon", 16.840, 96.173, 3),
    ("Kuala Lumpur", 3.139, 101.687, 3),
    ("Jakarta", -6.200, 106.817, 3),
    ("Manila", 14.600, 120.984, 3),
];

const PROVINCE_CAPITALS: [(&str, f64, f64); 31] = [
    ("Beijing", 39.90, 116.40),
    ("Tianjin", 39.13, 117.20),
    ("Shijiazhuang", 38.04, 114.51),
    ("Taiyuan", 37.87, 112.55),
    ("Hohhot", 40.84, 111.75),
    ("Shenyang", 41.80, 123.43),
    ("Changchun", 43.82, 125.32),
    ("Harbin", 45.80, 126.53),
    ("Shanghai", 31.23, 121.47),
    ("Nanjing", 32.06, 118.80),
    ("Hangzhou", 30.27, 120.16),
    ("Hefei", 31.82, 117.23),
    ("Fuzhou", 26.07, 119.30),
    ("Nanchang", 28.68, 115.86),
    ("Jinan", 36.65, 117.12),
    ("Zhengzhou", 34.75, 113.62),
    ("Wuhan", 30.59, 114.31),
    ("Changsha", 28.23, 112.94),
    ("Guangzhou", 23.13, 113.26),
    ("Nanning", 22.82, 108.37),
    ("Haikou", 20.04, 110.32),
    ("Chongqing", 29.56, 106.55),
    ("Chengdu", 30.57, 104.07),
    ("Guiyang", 26.65, 106.63),
    ("Kunming", 25.04, 102.72),
    ("Lhasa", 29.65, 91.13),
    ("Xi'an", 34.34, 108.94),
    ("Lanzhou", 36.06, 103.83),
    ("Xining", 36.62, 101.78),
    ("Yinchuan", 38.49, 106.23),
    ("Urumqi", 43.83, 87.62),
];

/// Shape of a generated region.
#[derive(Clone, Debug)]
struct Shape {
    name: &'static str,
    cities: Vec<(String, f64, f64, u32)>,
    /// Spread of hospitals around a city centre, in micro-degrees.
    spread_micro_deg: i64,
    doctors_by_tier: [u32; 3],
    wards_by_tier: [u32; 3],
    beds_per_ward: u32,
    grassroots_points: u32,
    /// Nearest neighbours each hospital gets a road to.
    roads_per_hospital: usize,
    /// Only the first this many cities have tertiary hospitals (elsewhere the top tier is
    /// secondary); `usize::MAX` for every city.
    tertiary_cities: usize,
}

fn shape(preset: Preset) -> Shape {
    match preset {
        Preset::Gba => Shape {
            name: "gba",
            cities: GBA_CITIES
                .iter()
                .map(|c| (c.name.to_string(), c.lat, c.lon, c.hospitals))
                .collect(),
            spread_micro_deg: 120_000,
            doctors_by_tier: [30, 100, 270],
            wards_by_tier: [2, 15, 40],
            beds_per_ward: 35,
            grassroots_points: 0,
            roads_per_hospital: 6,
            tertiary_cities: usize::MAX,
        },
        Preset::National => Shape {
            name: "national",
            cities: PROVINCE_CAPITALS
                .iter()
                .enumerate()
                .map(|(i, (n, lat, lon))| (n.to_string(), *lat, *lon, 77 + u32::from(i < 13)))
                .collect(),
            spread_micro_deg: 1_000_000,
            doctors_by_tier: [30, 100, 250],
            wards_by_tier: [2, 12, 30],
            beds_per_ward: 30,
            grassroots_points: 12_000,
            roads_per_hospital: 6,
            tertiary_cities: usize::MAX,
        },
        Preset::Province(i) => province_shape(usize::from(i)),
        Preset::Yunnan => Shape {
            name: "yunnan",
            cities: places(&YUNNAN_PLACES),
            spread_micro_deg: 150_000,
            doctors_by_tier: [20, 80, 250],
            wards_by_tier: [2, 12, 30],
            beds_per_ward: 30,
            grassroots_points: 0,
            roads_per_hospital: 6,
            tertiary_cities: 1,
        },
        Preset::Asean => Shape {
            name: "asean",
            cities: places(&ASEAN_PLACES),
            spread_micro_deg: 100_000,
            doctors_by_tier: [30, 100, 250],
            wards_by_tier: [2, 12, 30],
            beds_per_ward: 30,
            grassroots_points: 0,
            roads_per_hospital: 6,
            tertiary_cities: usize::MAX,
        },
    }
}

/// Grassroots points of the national preset, shared among the provinces.
const NATIONAL_GRASSROOTS_POINTS: u32 = 12_000;

/// One province of the national preset as a shape of its own (`Preset::Province`): the
/// national shape's figures for its capital, and an equal share of the grassroots points
/// (the first provinces take the remainder, so the 31 add up to the national 12,000).
fn province_shape(i: usize) -> Shape {
    let i = i.min(PROVINCES.len() - 1);
    let national = shape(Preset::National);
    let n = PROVINCES.len() as u32;
    let points =
        NATIONAL_GRASSROOTS_POINTS / n + u32::from((i as u32) < NATIONAL_GRASSROOTS_POINTS % n);
    Shape {
        name: PROVINCES[i],
        cities: vec![national.cities[i].clone()],
        grassroots_points: points,
        ..national
    }
}

/// What a preset plans, before the seed's draws: hospitals (grassroots points included),
/// grassroots points, and doctors (each hospital's tier's figure; the draw varies each by
/// at most ±10 %).
pub fn planned(preset: Preset) -> (u32, u32, u32) {
    let shape = shape(preset);
    let mut hospitals = 0;
    let mut doctors = 0;
    for (c, (_, _, _, count)) in shape.cities.iter().enumerate() {
        for i in 0..*count {
            let tier = if i * 4 < *count && c < shape.tertiary_cities {
                2
            } else if i * 5 < *count * 3 {
                1
            } else {
                0
            };
            doctors += shape.doctors_by_tier[tier];
        }
        hospitals += count;
    }
    (
        hospitals + shape.grassroots_points,
        shape.grassroots_points,
        doctors,
    )
}

fn places(list: &[(&str, f64, f64, u32)]) -> Vec<(String, f64, f64, u32)> {
    list.iter()
        .map(|(n, lat, lon, count)| (n.to_string(), *lat, *lon, *count))
        .collect()
}

/// Generates a region from a preset and a seed.
pub fn region(preset: Preset, seed: u64) -> RegionFile {
    let shape = shape(preset);
    let mut rng = SplitMix64::new(seed ^ 0x6e69_6e65_7479);
    let mut file = RegionFile {
        format_version: REGION_FORMAT_VERSION,
        name: shape.name.to_string(),
        policy: Policy::default(),
        alliances: Vec::new(),
        hospitals: Vec::new(),
        wards: Vec::new(),
        doctors: Vec::new(),
        roads: Vec::new(),
        referral_paths: Vec::new(),
    };
    place_hospitals(&shape, &mut rng, &mut file);
    form_alliances(&mut rng, &mut file);
    for i in 0..file.hospitals.len() {
        let h = file.hospitals[i].clone();
        if h.name.starts_with("Point") {
            continue;
        }
        add_wards(&shape, &h, &mut rng, &mut file);
        add_doctors(&shape, &h, &mut rng, &mut file);
    }
    add_roads(&shape, &mut file);
    add_referral_paths(&mut file);
    file
}

fn place_hospitals(shape: &Shape, rng: &mut SplitMix64, file: &mut RegionFile) {
    let mut next = 1u32;
    for (c, (city, lat, lon, count)) in shape.cities.iter().enumerate() {
        let tertiary_city = c < shape.tertiary_cities;
        for i in 0..*count {
            // A quarter tertiary, a third secondary, the rest primary, per city (where the
            // shape allows no tertiary hospital, the top of the city is secondary).
            let tier = if i * 4 < *count && tertiary_city {
                Tier::Tertiary
            } else if i * 5 < *count * 3 {
                Tier::Secondary
            } else {
                Tier::Primary
            };
            let spread = shape.spread_micro_deg / if tier == Tier::Tertiary { 3 } else { 1 };
            file.hospitals.push(Hospital {
                id: HospitalId(next),
                name: format!("{city} {} hospital {}", tier_word(tier), i + 1),
                city: city.clone(),
                lat_micro_deg: (lat * 1e6) as i32 + rng.offset(spread),
                lon_micro_deg: (lon * 1e6) as i32 + rng.offset(spread),
                tier,
                languages: languages_for(city, tier, rng),
                alliances: Vec::new(),
            });
            next += 1;
        }
    }
    let cities = shape.cities.len() as u64;
    for p in 0..shape.grassroots_points {
        let (city, lat, lon, _) = &shape.cities[rng.below(cities) as usize];
        file.hospitals.push(Hospital {
            id: HospitalId(next),
            name: format!("Point {}", p + 1),
            city: city.clone(),
            lat_micro_deg: (lat * 1e6) as i32 + rng.offset(shape.spread_micro_deg * 2),
            lon_micro_deg: (lon * 1e6) as i32 + rng.offset(shape.spread_micro_deg * 2),
            tier: Tier::Primary,
            languages: vec![Language::Mandarin],
            alliances: Vec::new(),
        });
        next += 1;
    }
}

fn tier_word(t: Tier) -> &'static str {
    match t {
        Tier::Tertiary => "tertiary",
        Tier::Secondary => "district",
        Tier::Primary => "community",
    }
}

fn languages_for(city: &str, tier: Tier, rng: &mut SplitMix64) -> Vec<Language> {
    let mut l = vec![Language::Mandarin];
    let cantonese = GBA_CITIES.iter().any(|c| c.name == city);
    if cantonese {
        l.push(Language::Cantonese);
    }
    if city == "Hong Kong" || tier == Tier::Tertiary {
        l.push(Language::English);
    }
    if city == "Macau" {
        l.push(Language::Portuguese);
    }
    // The ASEAN partners' own languages (no random draw: the older presets have none of
    // these cities, so their output is unchanged).
    let partner: &[Language] = match city {
        "Hanoi" => &[Language::Vietnamese],
        "Vientiane" => &[Language::Lao],
        "Bangkok" => &[Language::Thai],
        "Phnom Penh" => &[Language::Khmer],
        "Yangon" => &[Language::Burmese],
        "Kuala Lumpur" => &[Language::Malay, Language::English],
        "Jakarta" => &[Language::Indonesian],
        "Manila" => &[Language::English],
        _ => &[],
    };
    for lang in partner {
        if !l.contains(lang) {
            l.push(*lang);
        }
    }
    if city == "Nanning" || city == "Kunming" {
        // The China–ASEAN platforms serve neighbours' languages.
        let asean = [
            Language::Vietnamese,
            Language::Thai,
            Language::Lao,
            Language::Burmese,
        ];
        l.push(asean[rng.below(asean.len() as u64) as usize]);
    }
    l
}

/// Each tertiary hospital leads a medical alliance with the lower-tier hospitals of its city;
/// and specialty alliances join tertiary hospitals across cities.
fn form_alliances(rng: &mut SplitMix64, file: &mut RegionFile) {
    let tertiary: Vec<(HospitalId, String)> = file
        .hospitals
        .iter()
        .filter(|h| h.tier == Tier::Tertiary)
        .map(|h| (h.id, h.city.clone()))
        .collect();
    // The GBA has 32 medical alliances (医联体): every tertiary hospital leads one, and the
    // biggest district hospitals lead the rest.
    let wanted = (tertiary.len() * 32).div_ceil(25);
    let mut leaders = tertiary.clone();
    leaders.extend(
        file.hospitals
            .iter()
            .filter(|h| h.tier == Tier::Secondary)
            .take(wanted.saturating_sub(tertiary.len()))
            .map(|h| (h.id, h.city.clone())),
    );
    let mut next = 1u32;
    for (leader, city) in &leaders {
        let id = AllianceId(next);
        next += 1;
        file.alliances.push(Alliance {
            id,
            name: format!("{city} medical alliance {}", id.0),
            kind: AllianceKind::MedicalAlliance,
        });
        let same_city_leaders = leaders.iter().filter(|(_, c)| c == city).count().max(1) as u64;
        for h in file.hospitals.iter_mut() {
            let joins = h.id == *leader
                || (h.city == *city
                    && h.tier != Tier::Tertiary
                    && !h.name.starts_with("Point")
                    && rng.below(same_city_leaders) == 0);
            if joins && h.alliances.len() < 4 {
                h.alliances.push(id);
            }
        }
    }
    // "Dozens" of specialty alliances join tertiary hospitals across cities.
    let specialty_alliances = 24u32.min(tertiary.len() as u32);
    for s in 0..specialty_alliances {
        let id = AllianceId(next);
        next += 1;
        let specialty = Specialty::ALL[(s as usize * 3 + 2) % Specialty::ALL.len()];
        file.alliances.push(Alliance {
            id,
            name: format!("{specialty:?} specialty alliance"),
            kind: AllianceKind::Specialty,
        });
        for h in file
            .hospitals
            .iter_mut()
            .filter(|h| h.tier == Tier::Tertiary)
        {
            if rng.chance(30) && h.alliances.len() < 4 {
                h.alliances.push(id);
            }
        }
    }
}

fn add_wards(shape: &Shape, h: &Hospital, rng: &mut SplitMix64, file: &mut RegionFile) {
    let count = shape.wards_by_tier[h.tier.rank() as usize];
    for i in 0..count {
        let id = WardId(file.wards.len() as u32 + 1);
        let specialty = if h.tier == Tier::Primary {
            [Specialty::GeneralPractice, Specialty::Rehabilitation][i as usize % 2]
        } else {
            Specialty::ALL[(i as usize + h.id.0 as usize) % Specialty::ALL.len()]
        };
        let (kind, equipment) = ward_kind(specialty, i, h.tier);
        let sex = match rng.below(10) {
            0 => SexPolicy::Male,
            1 => SexPolicy::Female,
            _ => SexPolicy::Mixed,
        };
        let beds = shape.beds_per_ward / 2 + rng.below(u64::from(shape.beds_per_ward)) as u32;
        let staffed = beds - rng.below(u64::from(beds / 8 + 1)) as u32;
        file.wards.push(WardEntry {
            ward: Ward {
                id,
                hospital: h.id,
                name: format!("{specialty:?} {}", i + 1),
                specialty,
                kind,
                sex,
                equipment,
                staffed_beds: staffed,
            },
            beds,
        });
    }
}

fn ward_kind(s: Specialty, i: u32, tier: Tier) -> (WardKind, Vec<Equipment>) {
    use Equipment::*;
    if tier != Tier::Primary && i % 9 == 4 {
        return (WardKind::Icu, vec![Monitor, Oxygen, Ventilator]);
    }
    match s {
        Specialty::Neonatology => (WardKind::Nicu, vec![Monitor, Incubator, Oxygen]),
        Specialty::InfectiousDisease => (WardKind::Isolation, vec![NegativePressure, Oxygen]),
        Specialty::Obstetrics => (WardKind::Maternity, vec![Monitor]),
        Specialty::Pediatrics => (WardKind::Pediatric, vec![Oxygen]),
        Specialty::Nephrology => (WardKind::General, vec![Dialysis, Monitor]),
        Specialty::GeneralSurgery | Specialty::Orthopedics | Specialty::Neurosurgery => {
            (WardKind::Surgical, vec![Monitor, Oxygen])
        }
        Specialty::Rehabilitation => (WardKind::Rehabilitation, vec![]),
        _ => (WardKind::General, vec![Oxygen]),
    }
}

fn add_doctors(shape: &Shape, h: &Hospital, rng: &mut SplitMix64, file: &mut RegionFile) {
    let base = shape.doctors_by_tier[h.tier.rank() as usize];
    let count = base - base / 10 + rng.below(u64::from(base / 5 + 1)) as u32;
    for i in 0..count {
        let id = DoctorId(file.doctors.len() as u32 + 1);
        let main = if h.tier == Tier::Primary && i % 4 != 3 {
            Specialty::GeneralPractice
        } else {
            Specialty::ALL[rng.below(Specialty::ALL.len() as u64) as usize]
        };
        let mut specialties = vec![main];
        if rng.chance(20) {
            let second = Specialty::ALL[rng.below(Specialty::ALL.len() as u64) as usize];
            if second != main {
                specialties.push(second);
            }
        }
        let title = match (h.tier, rng.below(10)) {
            (Tier::Tertiary, 0..=2) => Title::Chief,
            (Tier::Tertiary, 3..=5) | (Tier::Secondary, 0..=1) => Title::AssociateChief,
            (_, 6..=7) => Title::Resident,
            _ => Title::Attending,
        };
        let mut languages: Vec<Language> = h
            .languages
            .iter()
            .copied()
            .filter(|_| rng.chance(85))
            .collect();
        if languages.is_empty() {
            languages.push(Language::Mandarin);
        }
        file.doctors.push(Doctor {
            id,
            hospital: h.id,
            specialties,
            sub_specialties: Vec::new(),
            title,
            languages,
            remote: rng.chance(60),
        });
    }
}

/// Cosine by its Taylor series: only IEEE-exact operations, so every machine agrees.
fn cos_deterministic(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..12 {
        let k = f64::from(k);
        term *= -x2 / ((2.0 * k - 1.0) * (2.0 * k));
        sum += term;
    }
    sum
}

/// Road travel minutes: straight-line distance times a road factor at 50 km/h, plus 10
/// minutes to get going and to park.
fn travel_minutes(a: &Hospital, b: &Hospital) -> u32 {
    let lat = f64::from(a.lat_micro_deg + b.lat_micro_deg) / 2e6;
    let dlat_km = f64::from(a.lat_micro_deg - b.lat_micro_deg) / 1e6 * 111.2;
    let dlon_km = f64::from(a.lon_micro_deg - b.lon_micro_deg) / 1e6
        * 111.2
        * cos_deterministic(lat.to_radians());
    let km = (dlat_km * dlat_km + dlon_km * dlon_km).sqrt();
    let road_factor = 1.35;
    (10.0 + km * road_factor / 50.0 * 60.0).round() as u32
}

fn add_roads(shape: &Shape, file: &mut RegionFile) {
    let hs = &file.hospitals;
    let mut roads = std::collections::BTreeMap::new();
    // Bucket hospitals on a coarse grid so nearest neighbours are found without an O(n²)
    // scan at the national scale.
    let cell = |h: &Hospital| {
        (
            h.lat_micro_deg.div_euclid(500_000),
            h.lon_micro_deg.div_euclid(500_000),
        )
    };
    let mut grid: std::collections::BTreeMap<(i32, i32), Vec<usize>> = Default::default();
    for (i, h) in hs.iter().enumerate() {
        grid.entry(cell(h)).or_default().push(i);
    }
    for (i, h) in hs.iter().enumerate() {
        let (cy, cx) = cell(h);
        let mut near: Vec<(u32, usize)> = Vec::new();
        for radius in 1..=6 {
            near.clear();
            for y in cy - radius..=cy + radius {
                for x in cx - radius..=cx + radius {
                    for &j in grid.get(&(y, x)).into_iter().flatten() {
                        if j != i {
                            near.push((travel_minutes(h, &hs[j]), j));
                        }
                    }
                }
            }
            if near.len() >= shape.roads_per_hospital * 2 {
                break;
            }
        }
        near.sort();
        for &(m, j) in near.iter().take(shape.roads_per_hospital) {
            let (a, b) = if hs[i].id < hs[j].id {
                (hs[i].id, hs[j].id)
            } else {
                (hs[j].id, hs[i].id)
            };
            roads.insert((a, b), m.min(crate::limits::TRAVEL_MINUTES_MAX));
        }
    }
    file.roads = roads
        .into_iter()
        .map(|((a, b), travel_minutes)| Road {
            a,
            b,
            travel_minutes,
        })
        .collect();
}

/// Referral paths: up-tier and down-tier between hospitals within reach, and between
/// alliance partners at any distance; same-level among tertiary hospitals within reach.
fn add_referral_paths(file: &mut RegionFile) {
    let mut graph = crate::graph::ReferralGraph::default();
    for r in &file.roads {
        graph.set_road(r.a, r.b, Some(r.travel_minutes));
    }
    for h in &file.hospitals {
        graph.set_memberships(h.id, &h.alliances);
    }
    graph.rebuild(
        file.hospitals.iter().map(|h| h.id),
        file.policy.reach_minutes,
    );
    let tier: std::collections::BTreeMap<HospitalId, Tier> =
        file.hospitals.iter().map(|h| (h.id, h.tier)).collect();
    let mut paths = std::collections::BTreeMap::new();
    for h in &file.hospitals {
        for &(other, _) in graph.reach(h.id) {
            if let Some(kind) = kind_between(tier[&h.id], tier.get(&other).copied(), h.id != other)
            {
                paths.insert((h.id, other), kind);
            }
        }
    }
    // Alliance partners may refer at any distance: pairs within each alliance.
    let mut by_alliance: std::collections::BTreeMap<AllianceId, Vec<HospitalId>> =
        Default::default();
    for h in &file.hospitals {
        for a in &h.alliances {
            by_alliance.entry(*a).or_default().push(h.id);
        }
    }
    for members in by_alliance.values() {
        for a in members {
            for b in members {
                if let Some(kind) = kind_between(tier[a], tier.get(b).copied(), a != b) {
                    paths.insert((*a, *b), kind);
                }
            }
        }
    }
    file.referral_paths = paths
        .into_iter()
        .map(|((from, to), kind)| ReferralPath { from, to, kind })
        .collect();
}

fn kind_between(a: Tier, b: Option<Tier>, distinct: bool) -> Option<ReferralKind> {
    let b = b?;
    if !distinct {
        return None;
    }
    match a.rank().cmp(&b.rank()) {
        std::cmp::Ordering::Less => Some(ReferralKind::UpTier),
        std::cmp::Ordering::Greater => Some(ReferralKind::DownTier),
        std::cmp::Ordering::Equal if a != Tier::Primary => Some(ReferralKind::SameLevel),
        std::cmp::Ordering::Equal => None,
    }
}

/// One day's schedules for every doctor: 16 fifteen-minute slots from 08:00 and 14 from
/// 14:00 (China time, UTC+8) on the day starting at `day_start` (a UTC midnight). Remote
/// doctors give every third slot online; tertiary hospitals reserve a quarter of their
/// slots for referrals from alliance partners; chiefs allow one overbooking per slot.
pub fn schedules(
    file: &RegionFile,
    day_start: LogTime,
    days: u32,
) -> Vec<(DoctorId, Vec<SlotSpec>)> {
    let tier: std::collections::BTreeMap<HospitalId, Tier> =
        file.hospitals.iter().map(|h| (h.id, h.tier)).collect();
    let mut out = Vec::with_capacity(file.doctors.len());
    for d in &file.doctors {
        let tertiary = tier.get(&d.hospital) == Some(&Tier::Tertiary);
        let mut specs = Vec::with_capacity(30 * days as usize);
        for day in 0..days {
            let base = day_start.plus_ms(u64::from(day) * MS_PER_DAY);
            for n in 0..30u64 {
                // 08:00 and 14:00 at UTC+8 are 00:00 and 06:00 UTC.
                let minute = if n < 16 {
                    n * 15
                } else {
                    6 * 60 + (n - 16) * 15
                };
                specs.push(SlotSpec {
                    start: base.plus_ms(minute * MS_PER_MINUTE),
                    duration_minutes: 15,
                    mode: if d.remote && n % 3 == 2 {
                        Mode::Remote
                    } else {
                        Mode::InPerson
                    },
                    capacity: 1,
                    overbook: u16::from(d.title == Title::Chief),
                    referral_quota: u16::from(tertiary && n % 4 == 0),
                });
            }
        }
        out.push((d.id, specs));
    }
    out
}

/// Days the built-in regions keep published ahead (`templates`).
pub const HORIZON_DAYS_DEFAULT: u16 = 14;

/// Each doctor's weekly clinic rota, rolled `horizon_days` ahead: one half-day session a
/// week, Monday to Saturday, chosen by the doctor's id (a morning of 16 fifteen-minute slots
/// from 08:00 or an afternoon of 14 from 14:00, China time, UTC+8), with the seats of
/// `schedules`. A specialist's outpatient clinic runs one or two half-days a week; a full
/// day for every doctor every day would be ~300,000 slots a day in the GBA, ~4 million
/// over 14 days.
pub fn templates(file: &RegionFile, horizon_days: u16) -> Vec<(DoctorId, WeeklyTemplate)> {
    let tier: std::collections::BTreeMap<HospitalId, Tier> =
        file.hospitals.iter().map(|h| (h.id, h.tier)).collect();
    let mut out = Vec::with_capacity(file.doctors.len());
    for d in &file.doctors {
        let tertiary = tier.get(&d.hospital) == Some(&Tier::Tertiary);
        let weekday = 1u8 << (d.id.0 % 6);
        let afternoon = (d.id.0 / 6) % 2 == 1;
        let session = if afternoon { 16..30u16 } else { 0..16u16 };
        let slots = session
            .map(|n| TemplateSlot {
                weekdays: weekday,
                // 08:00 and 14:00 at UTC+8 are 00:00 and 06:00 UTC.
                minute_of_day: if n < 16 {
                    n * 15
                } else {
                    6 * 60 + (n - 16) * 15
                },
                duration_minutes: 15,
                mode: if d.remote && n % 3 == 2 {
                    Mode::Remote
                } else {
                    Mode::InPerson
                },
                capacity: 1,
                overbook: u16::from(d.title == Title::Chief),
                referral_quota: u16::from(tertiary && n % 4 == 0),
            })
            .collect();
        let template = WeeklyTemplate {
            slots,
            horizon_days,
        };
        out.push((d.id, template));
    }
    out
}

/// 2026-11-24 00:00 UTC: the default day of the built-in schedules.
pub const DEFAULT_DAY_START: LogTime = LogTime(1_795_478_400_000);

/// Where a preset's region is entered from elsewhere (its main city), in degrees: the
/// point cross-region matching and the region-level travel graph measure from
/// (`layout::travel_minutes`, `matching::across`).
pub fn gateway(preset: Preset) -> (f64, f64) {
    match preset {
        Preset::Gba => (GBA_CITIES[0].lat, GBA_CITIES[0].lon),
        Preset::Yunnan => (YUNNAN_PLACES[0].1, YUNNAN_PLACES[0].2),
        Preset::Asean => (ASEAN_PLACES[0].1, ASEAN_PLACES[0].2),
        Preset::National => (PROVINCE_CAPITALS[0].1, PROVINCE_CAPITALS[0].2),
        Preset::Province(i) => {
            let (_, lat, lon) = PROVINCE_CAPITALS[usize::from(i).min(PROVINCE_CAPITALS.len() - 1)];
            (lat, lon)
        }
    }
}
