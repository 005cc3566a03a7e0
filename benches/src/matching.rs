//! The matching workloads: a recorded referral burst on the GBA region (origins drawn by a
//! seeded PRNG, mostly primary-care points) and the quality measures of an allocation run
//! (travel, reach, urgent time to care, tier split, total cost).

use ninety_engine::generate::{self, SplitMix64};
use ninety_engine::limits::HOLD_TTL_MS_MAX;
use ninety_engine::matching::*;
use ninety_engine::*;

/// Share of burst requests that are remote follow-ups at home, per cent (the 50% tier).
pub const REMOTE_PERCENT: u64 = 50;
/// Share of in-person requests that start at a primary-care hospital, per cent.
pub const FROM_PRIMARY_PERCENT: u64 = 80;
/// Share of requests triaged urgent (P1/P2), per cent.
pub const URGENT_PERCENT: u64 = 20;

/// The log time of a burst: the evening before the generated day of schedules.
pub fn burst_time() -> LogTime {
    generate::DEFAULT_DAY_START.minus_ms(6 * time::MS_PER_MINUTE * 60)
}

/// `n` allocation requests with ids from `first_id`; the same seed gives the same burst.
pub fn burst(engine: &Engine, n: usize, seed: u64, first_id: u128) -> Vec<Request> {
    let mut rng = SplitMix64::new(seed);
    let primary: Vec<HospitalId> = engine
        .hospitals()
        .filter(|h| h.tier == Tier::Primary)
        .map(|h| h.id)
        .collect();
    let all: Vec<HospitalId> = engine.hospitals().map(|h| h.id).collect();
    let start = generate::DEFAULT_DAY_START;
    (0..n)
        .map(|i| {
            let from_primary = rng.chance(FROM_PRIMARY_PERCENT) && !primary.is_empty();
            let pool = if from_primary { &primary } else { &all };
            let origin = pool[rng.below(pool.len() as u64) as usize];
            let remote = rng.chance(REMOTE_PERCENT);
            // Primary care asks general practice most; specialists otherwise.
            let specialty = if rng.chance(45) {
                Specialty::GeneralPractice
            } else {
                Specialty::ALL[rng.below(Specialty::ALL.len() as u64) as usize]
            };
            let urgency = match rng.below(100) {
                x if x < URGENT_PERCENT / 4 => Urgency::P1,
                x if x < URGENT_PERCENT => Urgency::P2,
                x if x < 60 => Urgency::P3,
                _ => Urgency::P4,
            };
            let query = SlotQuery {
                origin: Origin::Hospital(origin),
                specialty,
                urgency,
                language: None,
                mode: if remote { Mode::Remote } else { Mode::InPerson },
                earliest: start,
                latest: start.plus_ms(time::MS_PER_DAY),
                channel: Channel::Referral,
                limit: 1,
                bounds: ninety_engine::matching::Bounds::NONE,
            };
            Request {
                id: RequestId(first_id + i as u128),
                command: Command::AllocateSlot {
                    query,
                    patient: PatientRef(first_id + i as u128),
                    referral: None,
                },
            }
        })
        .collect()
}

/// First request id of the referrals `refer` opens (far from every burst's ids).
pub const REFERRAL_REQUEST_BASE: u128 = 1 << 120;

/// Opens and triages one referral per referral-channel request of a burst (from the request's
/// origin hospital) and names it in the request: a referral seat needs a triaged referral of
/// the same patient. Run on the engine the burst will be applied to, before it.
pub fn refer(engine: &mut Engine, burst: &mut [Request]) {
    let at = engine.now();
    for (i, r) in burst.iter_mut().enumerate() {
        let Command::AllocateSlot {
            query,
            patient,
            referral,
        } = &mut r.command
        else {
            continue;
        };
        let Origin::Hospital(from) = query.origin else {
            continue;
        };
        if query.channel != Channel::Referral {
            continue;
        }
        let id = |k: u128| RequestId(REFERRAL_REQUEST_BASE + 2 * i as u128 + k);
        let open = Command::RequestReferral {
            from,
            to: None,
            patient: *patient,
        };
        let Ok(Reply::ReferralCreated {
            referral: created, ..
        }) = engine.apply(
            &Request {
                id: id(0),
                command: open,
            },
            at,
        )
        else {
            continue;
        };
        let triage = Command::TriageReferral {
            referral: created,
            specialty: query.specialty,
            urgency: query.urgency,
        };
        if engine
            .apply(
                &Request {
                    id: id(1),
                    command: triage,
                },
                at,
            )
            .is_ok()
        {
            *referral = Some(created);
        }
    }
}

/// What an allocation run achieved.
#[derive(Clone, Debug, Default)]
pub struct Quality {
    pub requests: u64,
    pub placed: u64,
    pub travel_minutes: u64,
    pub inside_reach: u64,
    pub urgent: u64,
    pub urgent_time_to_care_minutes: u64,
    /// Placed remote (home), at primary, at secondary or tertiary hospitals.
    pub tiers: [u64; 3],
    /// Sum of the chosen candidates' scores (the solver's objective).
    pub total_score: u64,
    /// Sum of the chosen candidates' costs before load (`base_cost`): comparable with
    /// `offline_optimum`.
    pub base_total: u64,
}

impl Quality {
    /// Measures the outcomes of a burst applied to `engine`.
    pub fn measure(engine: &Engine, burst: &[Request], outcomes: &[Outcome]) -> Quality {
        let mut q = Quality {
            requests: burst.len() as u64,
            ..Quality::default()
        };
        let ix = RegionIndex::build(engine);
        for (r, o) in burst.iter().zip(outcomes) {
            let (Command::AllocateSlot { query, .. }, Ok(reply)) = (&r.command, o) else {
                continue;
            };
            q.base_total += base_cost(&ix, engine.match_policy(), query, reply);
            let Reply::SlotAllocated {
                hospital,
                travel_minutes,
                wait_minutes,
                beyond_reach,
                score,
                ..
            } = reply
            else {
                continue;
            };
            q.placed += 1;
            q.travel_minutes += u64::from(*travel_minutes);
            q.inside_reach += u64::from(!beyond_reach);
            q.total_score += score;
            if query.urgency.is_urgent() {
                q.urgent += 1;
                q.urgent_time_to_care_minutes += u64::from(travel_minutes + wait_minutes);
            }
            let tier = engine.hospital(*hospital).map(|h| h.tier);
            let i = match (query.mode, tier) {
                (Mode::Remote, _) => 0,
                (_, Some(Tier::Primary)) => 1,
                _ => 2,
            };
            q.tiers[i] += 1;
        }
        q
    }

    /// One table row.
    pub fn row(&self, name: &str) -> String {
        let pct = |x: u64, of: u64| 100.0 * x as f64 / of.max(1) as f64;
        format!(
            "| {name} | {}/{} | {} | {:.1}% | {:.1} | {:.0}/{:.0}/{:.0} | {} | {} |",
            self.placed,
            self.requests,
            self.travel_minutes,
            pct(self.inside_reach, self.requests),
            self.urgent_time_to_care_minutes as f64 / self.urgent.max(1) as f64,
            pct(self.tiers[0], self.placed),
            pct(self.tiers[1], self.placed),
            pct(self.tiers[2], self.placed),
            self.total_score,
            self.base_total,
        )
    }
}

/// The specialty of the contended burst.
pub const CONTENDED_SPECIALTY: Specialty = Specialty::Cardiology;

/// The city with the most hospitals (ties: the first name).
fn busiest_city(engine: &Engine) -> String {
    let mut count: std::collections::BTreeMap<&str, usize> = Default::default();
    for h in engine.hospitals() {
        *count.entry(h.city.as_str()).or_default() += 1;
    }
    let best = count
        .iter()
        .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)));
    best.map(|(name, _)| name.to_string()).unwrap_or_default()
}

/// A contended burst: `n` in-person referrals for one specialty (`CONTENDED_SPECIALTY`)
/// from the hospitals of the busiest city, for the same day (the slot-release rush): more
/// patients than the city's seats, so someone must travel and the order of choice matters.
pub fn contended_burst(engine: &Engine, n: usize, seed: u64, first_id: u128) -> Vec<Request> {
    let mut rng = SplitMix64::new(seed);
    let city = busiest_city(engine);
    let origins: Vec<HospitalId> = engine
        .hospitals()
        .filter(|h| h.city == city)
        .map(|h| h.id)
        .collect();
    let start = generate::DEFAULT_DAY_START;
    (0..n)
        .map(|i| {
            let origin = origins[rng.below(origins.len() as u64) as usize];
            let urgency = match rng.below(100) {
                x if x < URGENT_PERCENT / 4 => Urgency::P1,
                x if x < URGENT_PERCENT => Urgency::P2,
                x if x < 60 => Urgency::P3,
                _ => Urgency::P4,
            };
            let query = SlotQuery {
                origin: Origin::Hospital(origin),
                specialty: CONTENDED_SPECIALTY,
                urgency,
                language: None,
                mode: Mode::InPerson,
                earliest: start,
                latest: start.plus_ms(time::MS_PER_DAY),
                channel: Channel::Referral,
                limit: 1,
                bounds: ninety_engine::matching::Bounds::NONE,
            };
            Request {
                id: RequestId(first_id + i as u128),
                command: Command::AllocateSlot {
                    query,
                    patient: PatientRef(first_id + i as u128),
                    referral: None,
                },
            }
        })
        .collect()
}

/// The cost before load of a placed allocation, recomputed from its reply: the objective
/// every strategy and the offline optimum are compared on (load is left out because it
/// depends on the order of placement).
pub fn base_cost(ix: &RegionIndex, policy: &MatchPolicy, query: &SlotQuery, reply: &Reply) -> u64 {
    let Reply::SlotAllocated {
        hospital,
        travel_minutes,
        wait_minutes,
        ..
    } = reply
    else {
        return 0;
    };
    let Origin::Hospital(origin) = query.origin else {
        return 0;
    };
    policy.base_cost(&policy::CostInput {
        urgency: query.urgency,
        travel_minutes: *travel_minutes,
        wait_minutes: *wait_minutes,
        tier: ix
            .hospitals
            .get(hospital)
            .map_or(Tier::Tertiary, |h| h.tier),
        allied: ix.allied(origin, *hospital),
        load_permille: 0,
    })
}

/// The true optimum of a burst of slot requests with hospital origins at log time `now`:
/// the most placements, then the least total cost before load, over every open seat of the
/// region (in reach or not, shortest road minutes), by min-cost flow. Requests with the same
/// (origin, specialty, mode, channel, urgency class, window) are one supply node; seats with
/// the same (hospital, start) one column, since they cost the same. Returns (placed, cost).
pub fn offline_optimum(engine: &Engine, burst: &[Request], now: LogTime) -> (u64, u64) {
    use std::collections::BTreeMap;
    let ix = RegionIndex::build(engine);
    let policy = engine.match_policy();
    let mut groups: Vec<(SlotQuery, u64)> = Vec::new();
    for r in burst {
        if let Command::AllocateSlot { query, .. } = &r.command {
            let mut key = query.clone();
            key.urgency = if query.urgency.is_urgent() {
                Urgency::P1
            } else {
                Urgency::P3
            };
            match groups.iter_mut().find(|(q, _)| *q == key) {
                Some((_, n)) => *n += 1,
                None => groups.push((key, 1)),
            }
        }
    }
    // Columns: (hospital, start, specialty, mode, channel) -> open seats.
    let mut columns: BTreeMap<(HospitalId, LogTime, Specialty, Mode, Channel), u64> =
        BTreeMap::new();
    let wanted: std::collections::BTreeSet<(Specialty, Mode, Channel)> = groups
        .iter()
        .map(|(q, _)| (q.specialty, q.mode, q.channel))
        .collect();
    for s in engine.slots().slots() {
        let Some(doc) = engine.doctor(s.doctor) else {
            continue;
        };
        for &(sp, mode, channel) in &wanted {
            if s.spec.mode == mode && doc.specialties.contains(&sp) && s.spec.start > now {
                let open = u64::from(s.open_seats(channel));
                if open > 0 {
                    let key = (doc.hospital, s.spec.start, sp, mode, channel);
                    *columns.entry(key).or_default() += open;
                }
            }
        }
    }
    let cols: Vec<_> = columns.into_iter().collect();
    let g = groups.len();
    let (source, sink) = (0, g + cols.len() + 1);
    let mut f = Flow::new(sink + 1);
    for (i, (q, n)) in groups.iter().enumerate() {
        f.edge(source, 1 + i, *n, 0);
        let Origin::Hospital(origin) = q.origin else {
            continue;
        };
        let travel = ix.travel_from(origin);
        for (j, ((h, start, sp, mode, channel), _)) in cols.iter().enumerate() {
            let fits = *sp == q.specialty && *mode == q.mode && *channel == q.channel;
            if !fits || *start < q.earliest || *start > q.latest {
                continue;
            }
            let minutes = if q.mode == Mode::Remote {
                Some(0)
            } else {
                travel.get(h).copied()
            };
            let Some(minutes) = minutes else { continue };
            let cost = policy.base_cost(&policy::CostInput {
                urgency: q.urgency,
                travel_minutes: minutes,
                wait_minutes: now.minutes_until(*start) as u32,
                tier: ix.hospitals.get(h).map_or(Tier::Tertiary, |x| x.tier),
                allied: ix.allied(origin, *h),
                load_permille: 0,
            });
            f.edge(1 + i, 1 + g + j, u64::MAX / 4, cost as i64);
        }
    }
    for (j, (_, seats)) in cols.iter().enumerate() {
        f.edge(1 + g + j, sink, *seats, 0);
    }
    let (flow, cost) = f.run(source, sink);
    (flow, cost as u64)
}

/// Min-cost max-flow by successive shortest paths (Dijkstra with potentials; all costs
/// start non-negative).
struct Flow {
    to: Vec<usize>,
    cap: Vec<u64>,
    cost: Vec<i64>,
    adj: Vec<Vec<usize>>,
}

impl Flow {
    fn new(n: usize) -> Flow {
        Flow {
            to: Vec::new(),
            cap: Vec::new(),
            cost: Vec::new(),
            adj: vec![Vec::new(); n],
        }
    }

    fn edge(&mut self, a: usize, b: usize, cap: u64, cost: i64) {
        for (x, y, c, w) in [(a, b, cap, cost), (b, a, 0, -cost)] {
            self.adj[x].push(self.to.len());
            self.to.push(y);
            self.cap.push(c);
            self.cost.push(w);
        }
    }

    fn run(&mut self, s: usize, t: usize) -> (u64, i64) {
        use std::cmp::Reverse;
        let n = self.adj.len();
        let mut pi = vec![0i64; n];
        let (mut flow, mut total) = (0u64, 0i64);
        loop {
            let mut dist = vec![i64::MAX; n];
            let mut prev = vec![usize::MAX; n];
            let mut heap = std::collections::BinaryHeap::new();
            dist[s] = 0;
            heap.push(Reverse((0i64, s)));
            while let Some(Reverse((d, v))) = heap.pop() {
                if d > dist[v] {
                    continue;
                }
                for &e in &self.adj[v] {
                    let w = self.to[e];
                    if self.cap[e] == 0 {
                        continue;
                    }
                    let nd = d + self.cost[e] + pi[v] - pi[w];
                    if nd < dist[w] {
                        dist[w] = nd;
                        prev[w] = e;
                        heap.push(Reverse((nd, w)));
                    }
                }
            }
            if dist[t] == i64::MAX {
                return (flow, total);
            }
            for v in 0..n {
                if dist[v] < i64::MAX {
                    pi[v] += dist[v];
                }
            }
            let mut push = u64::MAX;
            let mut v = t;
            while v != s {
                let e = prev[v];
                push = push.min(self.cap[e]);
                v = self.to[e ^ 1];
            }
            let mut v = t;
            while v != s {
                let e = prev[v];
                self.cap[e] -= push;
                self.cap[e ^ 1] += push;
                total += self.cost[e] * push as i64;
                v = self.to[e ^ 1];
            }
            flow += push;
        }
    }
}

/// One allocation of the refusal-cost benchmark, granted or refused on the GBA region with
/// its day of schedules at `burst_time`.
pub struct AllocationCase {
    pub name: &'static str,
    pub command: Command,
    pub granted: bool,
}

/// The refusal-cost cases: for slots and for beds, a request that is granted near its origin
/// and one that nothing in the region can serve (a slot window after the scheduled day; a
/// bed needing an incubator and dialysis in one ward), from the same primary-care origin, so
/// a refusal walks the reach and then the step beyond it.
pub fn allocation_cases(engine: &Engine) -> Vec<AllocationCase> {
    let origin = engine
        .hospitals()
        .find(|h| h.tier == Tier::Primary)
        .map_or(HospitalId(1), |h| h.id);
    let day = generate::DEFAULT_DAY_START;
    let slot = |from: LogTime| Command::AllocateSlot {
        query: SlotQuery {
            origin: Origin::Hospital(origin),
            specialty: Specialty::GeneralPractice,
            urgency: Urgency::P3,
            language: None,
            mode: Mode::InPerson,
            earliest: from,
            latest: from.plus_ms(time::MS_PER_DAY),
            channel: Channel::Public,
            limit: 1,
            bounds: ninety_engine::matching::Bounds::NONE,
        },
        patient: PatientRef(7),
        referral: None,
    };
    let bed = |equipment: Vec<Equipment>| Command::AllocateBed {
        query: BedQuery {
            origin: Origin::Hospital(origin),
            needs: BedNeeds {
                kind: None,
                sex: None,
                equipment,
            },
            specialty: None,
            isolation: false,
            urgency: Urgency::P2,
            limit: 1,
            bounds: ninety_engine::matching::Bounds::NONE,
        },
        ttl_ms: 60 * time::MS_PER_MINUTE,
        patient: PatientRef(8),
    };
    let exhausted_slot = Command::AllocateSlot {
        query: SlotQuery {
            origin: Origin::Hospital(origin),
            specialty: EXHAUSTED_SPECIALTY,
            urgency: Urgency::P3,
            language: None,
            mode: Mode::InPerson,
            earliest: day,
            latest: day.plus_ms(time::MS_PER_DAY),
            channel: Channel::Public,
            limit: 1,
            bounds: ninety_engine::matching::Bounds::NONE,
        },
        patient: PatientRef(7),
        referral: None,
    };
    let exhausted_bed = Command::AllocateBed {
        query: BedQuery {
            origin: Origin::Hospital(origin),
            needs: BedNeeds {
                kind: Some(EXHAUSTED_WARD_KIND),
                sex: None,
                equipment: vec![],
            },
            specialty: None,
            isolation: false,
            urgency: Urgency::P1,
            limit: 1,
            bounds: ninety_engine::matching::Bounds::NONE,
        },
        ttl_ms: 60 * time::MS_PER_MINUTE,
        patient: PatientRef(8),
    };
    vec![
        AllocationCase {
            name: "slot refused, seats exhausted",
            command: exhausted_slot,
            granted: false,
        },
        AllocationCase {
            name: "bed refused, beds exhausted",
            command: exhausted_bed,
            granted: false,
        },
        AllocationCase {
            name: "slot granted",
            command: slot(day),
            granted: true,
        },
        AllocationCase {
            name: "slot refused",
            command: slot(day.plus_ms(time::MS_PER_DAY)),
            granted: false,
        },
        AllocationCase {
            name: "bed granted",
            command: bed(vec![]),
            granted: true,
        },
        AllocationCase {
            name: "bed refused",
            command: bed(vec![Equipment::Incubator, Equipment::Dialysis]),
            granted: false,
        },
    ]
}

/// The specialty whose in-person public seats `exhaust` takes (the full-region case).
pub const EXHAUSTED_SPECIALTY: Specialty = Specialty::Cardiology;
/// The ward kind whose admissible beds `exhaust` takes.
pub const EXHAUSTED_WARD_KIND: WardKind = WardKind::Icu;

/// Holds every open public seat of `EXHAUSTED_SPECIALTY`'s in-person slots and every
/// admissible bed of `EXHAUSTED_WARD_KIND` wards, at `at`, with request ids from
/// `first_id`: the state of the refusals under load (seats exhausted region-wide).
pub fn exhaust(engine: &mut Engine, at: LogTime, first_id: u128) {
    let doctors: std::collections::BTreeSet<DoctorId> = engine
        .doctors()
        .filter(|d| d.specialties.contains(&EXHAUSTED_SPECIALTY))
        .map(|d| d.id)
        .collect();
    let mut commands = Vec::new();
    for s in engine.slots().slots() {
        if doctors.contains(&s.doctor) && s.spec.mode == Mode::InPerson && s.spec.start > at {
            for _ in 0..s.open_seats(Channel::Public) {
                commands.push((s.id, None));
            }
        }
    }
    for w in engine.beds().wards() {
        if w.kind == EXHAUSTED_WARD_KIND {
            for _ in 0..engine.beds().admissible(w.id) {
                commands.push((SlotId(0), Some(w.id)));
            }
        }
    }
    for (i, (slot, ward)) in commands.into_iter().enumerate() {
        let id = first_id + i as u128;
        let command = match ward {
            None => Command::HoldSlotFor {
                slot,
                patient: PatientRef(id),
                channel: Channel::Public,
                ttl_ms: HOLD_TTL_MS_MAX,
                referral: None,
            },
            Some(w) => Command::HoldBed {
                target: BedTarget::Ward(w),
                patient: PatientRef(id),
                ttl_ms: HOLD_TTL_MS_MAX,
            },
        };
        let r = engine.apply(
            &Request {
                id: RequestId(id),
                command,
            },
            at,
        );
        assert!(r.is_ok(), "{r:?}");
    }
}

/// The command that gives back what a granted allocation took (so the next one finds the
/// same state), or `None` for a refusal.
pub fn undo(outcome: &Outcome) -> Option<Command> {
    match outcome {
        Ok(Reply::SlotAllocated { hold, .. }) => Some(Command::CancelSeat { hold: *hold }),
        Ok(Reply::BedAllocated { hold, .. }) => Some(Command::ReleaseHold { hold: *hold }),
        _ => None,
    }
}
