//! `ninety.v1.Matching`: ranked specialists (a read) and the allocations (one replicated
//! command each: choose and hold).
//!
//! `MatchSpecialist` and `MatchBeds` are answered from the engine's published availability
//! view, lock-free,
//! on the gRPC task (linearizable by default: a ReadIndex round first, then the view once it
//! reflects the read index; `LOCAL` reads this node's latest view; `applied_index` is the
//! index the view reflects). Every matching rule (modes merged by score for
//! `MODE_UNSPECIFIED`, alliances, the language, `max_travel_minutes` and `min_tier` bounds,
//! the bed needs) is the engine's (`ninety_engine::matching`, `ninety_engine::read::matching`):
//! this module only maps the wire to a `MatchAsk` or a command, naming bad fields.
//!
//! `MatchBeds` may look beyond the home region (`scope`): it reads the published views of
//! the other regions this node hosts that `read::matching::regions_to_search` names (nearest
//! first, each as the call's consistency says) and lets `read::matching::beds_across` rank
//! them together with the trip between regions added. A region this node does not host is
//! not searched (the note says which were).
//!
//! Allocations run inside apply on the authoritative state with the same query types, so
//! their bounds, language and needs mean what they mean for a search. An `AllocateBed`
//! through `CHANNEL_REFERRAL` (or naming a `referral_id`) is the engine's
//! `AllocateBedForReferral`, which checks the referral. `sub_specialty` is refused when
//! set (the engine has no sub-specialty filter). `AllocateSlot.ttl_ms` must be 0: slot
//! holds from allocation last the region's `slot_hold_ttl_ms`.

use super::convert::{self, Field};
use super::{bad, local, Cluster, Deadline, READ_TIMEOUT, WRITE_TIMEOUT};
use ninety_engine::generate::Preset;
use ninety_engine::matching::across::{RegionalBed, Scope};
use ninety_engine::matching::{
    BedQuery, Origin, SlotQuery, EQUIPMENT_PER_REQUEST_MAX, MATCH_LIMIT_MAX,
};
use ninety_engine::read::matching::{
    beds_across, beds_at_home, looks_beyond, regions_to_search, specialists, MatchAsk, MatchInfo,
    OtherBeds,
};
use ninety_engine::{
    AvailabilityView, BedNeeds, Channel, Command, HospitalId, LogTime, Mode, ReferralId, Rejection,
    Reply, Request, Sex,
};
use ninety_proto::v1 as pb;
use ninety_proto::v1::matching_server::Matching;
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

/// `MatchSpecialist` answers this many candidates when the request says 0.
pub const MATCH_LIMIT_DEFAULT: usize = 10;

/// The Matching service of one region group.
pub struct MatchingService {
    pub cluster: Arc<Cluster>,
    /// This region, and the other regions of the node a bed search may look at.
    pub regions: Regions,
}

/// What a region's bed searches know of regions: its own id and built-in layout (`None`
/// for a region loaded from a file: the trip to others is unknown), and the node's other
/// regions.
#[derive(Clone, Default)]
pub struct Regions {
    pub home: String,
    pub preset: Option<Preset>,
    pub others: Vec<OtherRegion>,
}

/// Another region this node hosts (a built-in layout: its entry and the trip there are
/// known), searched from its published view.
#[derive(Clone)]
pub struct OtherRegion {
    pub id: String,
    pub preset: Preset,
    pub cluster: Arc<Cluster>,
}

/// `[start, end)` on the wire; the engine's window is `[earliest, latest]`. Unset, it is
/// `(0, 0)`, which the engine reads as the next seven days from when the search runs
/// (`SlotQuery::window_at`).
fn engine_window(at: &Field, w: Option<&pb::TimeRange>) -> Result<(LogTime, LogTime), Rejection> {
    Ok(match at.opt_window("window", w)? {
        Some((start, end)) => (start, LogTime(end.0 - 1)),
        None => (LogTime(0), LogTime(0)),
    })
}

fn refuse_sub_specialty(at: &Field, s: &str) -> Result<(), Rejection> {
    at.unsupported(
        "sub_specialty",
        &s.to_string(),
        "no sub-specialty filter yet; leave empty",
    )
}

/// A search's `limit`: 0 for [`MATCH_LIMIT_DEFAULT`], at most `MATCH_LIMIT_MAX`.
fn match_limit(at: &Field, limit: u32) -> Result<usize, Rejection> {
    at.limit(
        "limit",
        limit,
        MATCH_LIMIT_DEFAULT,
        usize::from(MATCH_LIMIT_MAX),
    )
}

fn match_ask(r: &pb::MatchSpecialistRequest) -> Result<MatchAsk, Rejection> {
    let at = Field::top();
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    refuse_sub_specialty(&at, &r.sub_specialty)?;
    let mode = at.opt_mode("mode", r.mode)?;
    let (earliest, latest) = engine_window(&at, r.window.as_ref())?;
    let limit = match_limit(&at, r.limit)?;
    let query = SlotQuery {
        origin: Origin::Hospital(from),
        specialty: at.specialty("specialty", &r.specialty)?,
        urgency: at.urgency("urgency", r.urgency)?,
        language: at.opt_named("language", &r.language)?,
        mode: mode.unwrap_or(Mode::InPerson),
        earliest,
        latest,
        channel: at.channel_or("channel", r.channel, Some(Channel::Public))?,
        limit: limit as u16,
        bounds: at.bounds(r.max_travel_minutes, r.min_tier)?,
    };
    Ok(MatchAsk {
        query,
        any_mode: mode.is_none(),
        limit,
    })
}

fn candidate_pb(rank: usize, m: &MatchInfo) -> pb::Candidate {
    let c = &m.candidate;
    pb::Candidate {
        rank: rank as u32,
        doctor_id: c.doctor.0,
        slot_id: c.slot.0,
        hospital_id: c.hospital.0,
        ward_id: 0,
        travel_minutes: c.travel_minutes,
        wait_minutes: c.wait_minutes,
        tier: convert::tier_pb(m.tier) as i32,
        alliance_id: m.alliance.map_or(0, |a| a.0),
        score: c.score as f64,
        explanation: c.explain.clone(),
        start_ms: c.start.0,
        mode: convert::mode_pb(m.mode) as i32,
    }
}

/// The fields of a bed search that `AllocateBed` and `MatchBeds` both carry, as the client
/// sent them (`bed_ask!` takes them from either request).
struct BedAsk<'a> {
    ward_kind: &'a str,
    sex: &'a str,
    equipment: &'a [String],
    specialty: &'a str,
    isolation: bool,
    urgency: i32,
    max_travel_minutes: u32,
    min_tier: i32,
}

/// The [`BedAsk`] of a request message with the bed search's fields.
macro_rules! bed_ask {
    ($r:expr) => {
        BedAsk {
            ward_kind: &$r.ward_kind,
            sex: &$r.sex,
            equipment: &$r.equipment,
            specialty: &$r.specialty,
            isolation: $r.isolation,
            urgency: $r.urgency,
            max_travel_minutes: $r.max_travel_minutes,
            min_tier: $r.min_tier,
        }
    };
}

impl BedAsk<'_> {
    /// The engine's query from hospital `from` for `limit` candidates; errors name the
    /// field as the client sent it.
    fn query(self, at: &Field, from: HospitalId, limit: u16) -> Result<BedQuery, Rejection> {
        Ok(BedQuery {
            origin: Origin::Hospital(from),
            needs: bed_needs(at, self.ward_kind, self.sex, self.equipment)?,
            specialty: at.opt_specialty("specialty", self.specialty)?,
            isolation: self.isolation,
            urgency: at.urgency("urgency", self.urgency)?,
            limit,
            bounds: at.bounds(self.max_travel_minutes, self.min_tier)?,
        })
    }
}

/// What a bed must offer: ward kind, sex and equipment, by their region-file names (the
/// fields `ward_kind`, `sex` and `equipment` of the request).
fn bed_needs(
    at: &Field,
    ward_kind: &str,
    sex: &str,
    equipment: &[String],
) -> Result<BedNeeds, Rejection> {
    let sex = at.opt_named::<Sex>("sex", sex)?;
    Ok(BedNeeds {
        kind: at.opt_named("ward_kind", ward_kind)?,
        sex,
        equipment: at.all_named("equipment", equipment, EQUIPMENT_PER_REQUEST_MAX)?,
    })
}

fn allocate_bed_request(r: &pb::AllocateBedRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    let channel = at.channel_or("channel", r.channel, Some(Channel::Public))?;
    let ttl_ms = at
        .ttl_or_policy("ttl_ms", r.ttl_ms)?
        .ok_or_else(|| at.invalid("ttl_ms", "must be set: bed holds have no policy default"))?;
    let query = bed_ask!(r).query(&at, from, 1)?;
    let referral = at.opt_id(r.referral_id).map(ReferralId);
    let command = match (channel, referral) {
        (Channel::Referral, None) => {
            return Err(at.invalid(
                "referral_id",
                "required for CHANNEL_REFERRAL: name the referral the bed serves",
            ))
        }
        (_, Some(referral)) => Command::AllocateBedForReferral {
            query,
            ttl_ms,
            patient,
            referral,
        },
        (Channel::Public, None) => Command::AllocateBed {
            query,
            ttl_ms,
            patient,
        },
    };
    Ok(Request { id, command })
}

/// A `MatchBeds` request as the engine's query and scope.
fn match_beds_query(r: &pb::MatchBedsRequest) -> Result<(BedQuery, Scope), Rejection> {
    let at = Field::top();
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    let limit = match_limit(&at, r.limit)?;
    let scope = match pb::SearchScope::try_from(r.scope) {
        Ok(pb::SearchScope::Unspecified | pb::SearchScope::Home) => Scope::Home,
        Ok(pb::SearchScope::WhenNoneAtHome) => Scope::WhenNoneAtHome,
        Ok(pb::SearchScope::Everywhere) => Scope::Everywhere,
        Err(_) => return Err(at.invalid("scope", format!("unknown scope {}", r.scope))),
    };
    let query = bed_ask!(r).query(&at, from, limit as u16)?;
    Ok((query, scope))
}

fn bed_candidate_pb(rank: usize, b: &RegionalBed) -> pb::BedCandidate {
    let c = &b.candidate;
    pb::BedCandidate {
        rank: rank as u32,
        region: b.region.clone(),
        hospital_id: c.hospital.0,
        ward_id: c.ward.0,
        travel_minutes: c.travel_minutes,
        tier: convert::tier_pb(c.tier) as i32,
        admissible_beds: c.admissible,
        load_permille: c.load_permille,
        score: c.score as f64,
        explanation: c.explain.clone(),
    }
}

impl MatchingService {
    /// The other regions' published views a search from `home` reads (nearest first,
    /// `read::matching::regions_to_search`), read as `local` says; a region that cannot
    /// be read is named in `notes`.
    async fn other_views(
        &self,
        home: Preset,
        local: bool,
        deadline: Deadline,
        notes: &mut Vec<String>,
    ) -> Vec<(
        &OtherRegion,
        u32,
        ninety_engine::sync::Arc<AvailabilityView>,
    )> {
        let others = &self.regions.others;
        let presets: Vec<Preset> = others.iter().map(|o| o.preset).collect();
        let near = regions_to_search(home, &presets);
        let reads = near
            .iter()
            .map(|&(i, _)| others[i].cluster.view_read(local, deadline));
        let views = futures_util::future::join_all(reads).await;
        let mut out = Vec::with_capacity(near.len());
        for ((i, minutes), view) in near.into_iter().zip(views) {
            match view {
                Ok(v) => out.push((&others[i], minutes, v)),
                Err(s) => notes.push(format!("region {} not read: {}", others[i].id, s.message())),
            }
        }
        out
    }
}

fn allocate_slot_request(r: &pb::AllocateSlotRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    refuse_sub_specialty(&at, &r.sub_specialty)?;
    at.unsupported(
        "ttl_ms",
        &r.ttl_ms,
        "allocated slot holds last the region's slot_hold_ttl_ms; send 0",
    )?;
    let (earliest, latest) = engine_window(&at, r.window.as_ref())?;
    let channel = at.channel_or("channel", r.channel, Some(Channel::Public))?;
    let query = SlotQuery {
        origin: Origin::Hospital(from),
        specialty: at.specialty("specialty", &r.specialty)?,
        urgency: at.urgency("urgency", r.urgency)?,
        language: at.opt_named("language", &r.language)?,
        mode: at.mode("mode", r.mode)?,
        earliest,
        latest,
        channel,
        limit: 1,
        bounds: at.bounds(r.max_travel_minutes, r.min_tier)?,
    };
    Ok(Request {
        id,
        command: Command::AllocateSlot {
            query,
            patient,
            // The engine checks the referral (exists, same patient, triaged).
            referral: at.opt_id(r.referral_id).map(ReferralId),
        },
    })
}

#[tonic::async_trait]
impl Matching for MatchingService {
    async fn match_specialist(
        &self,
        request: GrpcRequest<pb::MatchSpecialistRequest>,
    ) -> Result<Response<pb::MatchSpecialistResponse>, Status> {
        let deadline = Deadline::of(&request, READ_TIMEOUT);
        let r = request.into_inner();
        let ask = match_ask(&r).map_err(bad)?;
        // On the published view, on this task: the node task only takes part in the
        // ReadIndex round of a linearizable read.
        let view = self
            .cluster
            .view_read(local(r.consistency)?, deadline)
            .await?;
        let index = view.log_index;
        let found = specialists(&view, &ask);
        drop(view);
        let candidates = found
            .map_err(bad)?
            .iter()
            .enumerate()
            .map(|(i, m)| candidate_pb(i + 1, m))
            .collect();
        Ok(Response::new(pb::MatchSpecialistResponse {
            candidates,
            applied_index: index,
        }))
    }

    async fn match_beds(
        &self,
        request: GrpcRequest<pb::MatchBedsRequest>,
    ) -> Result<Response<pb::MatchBedsResponse>, Status> {
        let deadline = Deadline::of(&request, READ_TIMEOUT);
        let r = request.into_inner();
        let (query, scope) = match_beds_query(&r).map_err(bad)?;
        let local = local(r.consistency)?;
        let view = self.cluster.view_read(local, deadline).await?;
        let applied_index = view.log_index;
        let home = self.regions.home.as_str();
        let at_home = beds_at_home(home, &view, &query).map_err(bad)?;
        let look = looks_beyond(scope, &at_home);
        let mut notes: Vec<String> = Vec::new();
        let ranked = match (look, self.regions.preset) {
            (false, _) => at_home,
            (true, None) => {
                notes.push(format!(
                    "region {home} is not a built-in region: the trip to other regions is \
                     unknown, so only {home} was searched"
                ));
                at_home
            }
            (true, Some(preset)) => {
                let read = self.other_views(preset, local, deadline, &mut notes).await;
                let others: Vec<OtherBeds<'_>> = read
                    .iter()
                    .map(|(o, minutes, v)| OtherBeds {
                        id: o.id.as_str(),
                        preset: o.preset,
                        view: v,
                        travel_minutes: *minutes,
                    })
                    .collect();
                beds_across(home, &view, &others, &query).map_err(bad)?
            }
        };
        notes.extend(ranked.note);
        Ok(Response::new(pb::MatchBedsResponse {
            candidates: ranked
                .candidates
                .iter()
                .enumerate()
                .map(|(i, b)| bed_candidate_pb(i + 1, b))
                .collect(),
            note: notes.join("; "),
            applied_index,
        }))
    }

    async fn allocate_bed(
        &self,
        request: GrpcRequest<pb::AllocateBedRequest>,
    ) -> Result<Response<pb::AllocateBedResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = allocate_bed_request(request.get_ref()).map_err(bad)?;
        let (w, reply) = self.cluster.write_ok(&request, deadline).await?;
        let Reply::BedAllocated {
            ward,
            hospital,
            travel_minutes,
            score,
            ..
        } = reply
        else {
            return Err(Status::internal("unexpected reply to AllocateBed"));
        };
        let hold = w
            .applied
            .hold
            .as_ref()
            .map(|(h, hosp)| super::beds::to_pb(h, *hosp));
        let chosen = pb::Candidate {
            rank: 1,
            hospital_id: hospital.0,
            ward_id: ward.0,
            travel_minutes,
            score: score as f64,
            explanation: format!("best admissible ward for the query (cost {score})"),
            ..Default::default()
        };
        Ok(Response::new(pb::AllocateBedResponse {
            hold,
            chosen: Some(chosen),
            commit: Some(w.commit()),
        }))
    }

    async fn allocate_slot(
        &self,
        request: GrpcRequest<pb::AllocateSlotRequest>,
    ) -> Result<Response<pb::AllocateSlotResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = allocate_slot_request(request.get_ref()).map_err(bad)?;
        let (w, reply) = self.cluster.write_ok(&request, deadline).await?;
        let Reply::SlotAllocated {
            slot,
            doctor,
            hospital,
            start,
            travel_minutes,
            wait_minutes,
            score,
            ..
        } = reply
        else {
            return Err(Status::internal("unexpected reply to AllocateSlot"));
        };
        let booking = super::scheduling::written_seat(&w)?;
        let chosen = pb::Candidate {
            rank: 1,
            doctor_id: doctor.0,
            slot_id: slot.0,
            hospital_id: hospital.0,
            travel_minutes,
            wait_minutes,
            score: score as f64,
            explanation: format!("best open slot for the query (cost {score})"),
            start_ms: start.0,
            mode: booking.mode,
            ..Default::default()
        };
        Ok(Response::new(pb::AllocateSlotResponse {
            booking: Some(booking),
            chosen: Some(chosen),
            commit: Some(w.commit()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Rejection) -> String {
        match r {
            Rejection::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn match_request_is_checked_and_mapped() {
        let mut r = pb::MatchSpecialistRequest {
            from_hospital_id: 1,
            specialty: "cardiology".into(),
            urgency: pb::Urgency::P3 as i32,
            window: Some(pb::TimeRange {
                start_ms: 100,
                end_ms: 200,
            }),
            ..Default::default()
        };
        let ask = match_ask(&r).unwrap();
        assert!(ask.any_mode);
        assert_eq!(ask.limit, MATCH_LIMIT_DEFAULT);
        assert_eq!(ask.query.latest, LogTime(199));
        r.min_tier = pb::Tier::Tertiary as i32;
        assert_eq!(
            match_ask(&r).unwrap().query.bounds.min_tier,
            Some(ninety_engine::Tier::Tertiary)
        );
        r.language = "en".into();
        assert_eq!(
            match_ask(&r).unwrap().query.language,
            Some(ninety_engine::Language::English)
        );
        r.language = "english".into();
        assert_eq!(field_of(match_ask(&r).err().unwrap()), "language");
        r.language.clear();
        r.limit = 51;
        assert_eq!(field_of(match_ask(&r).err().unwrap()), "limit");
        r.limit = 0;
        r.sub_specialty = "interventional".into();
        assert_eq!(field_of(match_ask(&r).err().unwrap()), "sub_specialty");
        r.sub_specialty.clear();
        r.urgency = 0;
        assert_eq!(field_of(match_ask(&r).err().unwrap()), "urgency");
    }

    #[test]
    fn allocations_map_bounds_needs_and_the_referral_channel() {
        let mut b = pb::AllocateBedRequest {
            request_id: "b".into(),
            patient_ref: "3".repeat(32),
            from_hospital_id: 1,
            specialty: "cardiology".into(),
            urgency: pb::Urgency::P1 as i32,
            ttl_ms: 60_000,
            max_travel_minutes: 30,
            min_tier: pb::Tier::Secondary as i32,
            sex: "female".into(),
            isolation: true,
            equipment: vec!["monitor".into(), "oxygen".into()],
            ward_kind: "icu".into(),
            ..Default::default()
        };
        let Command::AllocateBed { query, .. } = allocate_bed_request(&b).unwrap().command else {
            panic!("a public allocation is AllocateBed");
        };
        assert_eq!(query.bounds.max_travel_minutes, Some(30));
        assert_eq!(query.bounds.min_tier, Some(ninety_engine::Tier::Secondary));
        assert_eq!(query.needs.sex, Some(Sex::Female));
        assert_eq!(query.needs.kind, Some(ninety_engine::WardKind::Icu));
        assert_eq!(query.needs.equipment.len(), 2);
        assert!(query.isolation);
        b.channel = pb::Channel::Referral as i32;
        assert_eq!(
            field_of(allocate_bed_request(&b).unwrap_err()),
            "referral_id"
        );
        b.referral_id = 7;
        assert!(matches!(
            allocate_bed_request(&b).unwrap().command,
            Command::AllocateBedForReferral {
                referral: ReferralId(7),
                ..
            }
        ));
        b.sex = "unknown".into();
        assert_eq!(field_of(allocate_bed_request(&b).unwrap_err()), "sex");
        b.sex.clear();
        b.equipment.push("laser".into());
        assert_eq!(
            field_of(allocate_bed_request(&b).unwrap_err()),
            "equipment.2"
        );
        b.equipment = vec!["monitor".into(); 9];
        assert_eq!(field_of(allocate_bed_request(&b).unwrap_err()), "equipment");
        b.equipment.clear();
        b.ward_kind = "spa".into();
        assert_eq!(field_of(allocate_bed_request(&b).unwrap_err()), "ward_kind");
        b.ward_kind.clear();
        b.min_tier = 9;
        assert_eq!(field_of(allocate_bed_request(&b).unwrap_err()), "min_tier");
        b.min_tier = 0;
        b.ttl_ms = 0;
        assert_eq!(field_of(allocate_bed_request(&b).unwrap_err()), "ttl_ms");
        let mut s = pb::AllocateSlotRequest {
            request_id: "s".into(),
            patient_ref: "3".repeat(32),
            from_hospital_id: 1,
            specialty: "cardiology".into(),
            urgency: pb::Urgency::P4 as i32,
            mode: pb::Mode::InPerson as i32,
            window: Some(pb::TimeRange {
                start_ms: 1,
                end_ms: 10,
            }),
            language: "yue".into(),
            max_travel_minutes: 45,
            ..Default::default()
        };
        let Command::AllocateSlot { query, .. } = allocate_slot_request(&s).unwrap().command else {
            panic!("AllocateSlot");
        };
        assert_eq!(query.language, Some(ninety_engine::Language::Cantonese));
        assert_eq!(query.bounds.max_travel_minutes, Some(45));
        s.language = "klingon".into();
        assert_eq!(field_of(allocate_slot_request(&s).unwrap_err()), "language");
        s.language.clear();
        s.ttl_ms = 1_000;
        assert_eq!(field_of(allocate_slot_request(&s).unwrap_err()), "ttl_ms");
    }
}
