//! Roles and the one table that classifies every client RPC.
//!
//! Owns [`Role`], [`Roles`] (a caller's set of roles) and [`METHODS`]: one line per
//! `ninety.v1` method saying whether it is a read (any role may call it) or a write that
//! needs one role. A unit test walks `ninety_proto::FILE_DESCRIPTOR_SET` and fails when a
//! `ninety.v1` method is missing here, so a new RPC cannot ship unclassified.
//!
//! Least privilege: `reader` reads; `platform` also schedules (Scheduling, MatchSpecialist,
//! AllocateSlot); `referral` also holds beds and moves referrals (BedHolds, Referrals,
//! AllocateBed); `hospital` keeps its own capacity true (the bed, ward and doctor calls of
//! Capacity) and keeps its doctors' schedules (PublishSchedule, AmendSlot, WithdrawSlots,
//! SetWeeklyTemplate, also open to
//! `platform`); `operator` also administers (Admin, and the region-wide Capacity calls:
//! hospitals, travel, referral paths, the policy, lifting a no-show block). Every role may
//! read.

/// One role a credential may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every read method, nothing else.
    Reader,
    /// Scheduling and the slot side of matching.
    Platform,
    /// Bed holds, referrals and bed allocation.
    Referral,
    /// The Admin service and the region-wide Capacity calls.
    Operator,
    /// A hospital's own capacity (Capacity's bed, ward and doctor calls) and schedules.
    Hospital,
}

impl Role {
    /// Every role, in the order of the docs.
    pub const ALL: [Role; 5] = [
        Role::Reader,
        Role::Platform,
        Role::Referral,
        Role::Operator,
        Role::Hospital,
    ];

    /// The role's name in `node.toml` and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Platform => "platform",
            Role::Referral => "referral",
            Role::Operator => "operator",
            Role::Hospital => "hospital",
        }
    }

    /// The role called `name`, if any.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of roles (a credential may hold several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    /// Every role (the `insecure` anonymous caller).
    pub fn all() -> Roles {
        Roles::from_iter(Role::ALL)
    }

    /// Whether `role` is in the set.
    pub fn has(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles' names, in [`Role::ALL`] order.
    pub fn names(self) -> Vec<&'static str> {
        Role::ALL
            .into_iter()
            .filter(|r| self.has(*r))
            .map(Role::name)
            .collect()
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(roles: I) -> Roles {
        Roles(roles.into_iter().fold(0, |bits, r| bits | r.bit()))
    }
}

/// What a method needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A read: any role.
    Read,
    /// A state-changing or administrative call: this role.
    Write(Role),
    /// A state-changing call open to any of these roles.
    WriteAny(&'static [Role]),
}

impl Access {
    /// Whether a caller holding `roles` may call a method needing `self`.
    pub fn allows(self, roles: Roles) -> bool {
        match self {
            Access::Read => !roles.is_empty(),
            Access::Write(role) => roles.has(role),
            Access::WriteAny(any) => any.iter().any(|r| roles.has(*r)),
        }
    }

    /// What a caller needs, for a refusal ("operator", "hospital or platform").
    pub fn needs(self) -> String {
        match self {
            Access::Read => "any role".to_string(),
            Access::Write(role) => role.name().to_string(),
            Access::WriteAny(any) => any
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }
}

use Access::{Read, Write, WriteAny};
use Role::{Hospital, Operator, Platform, Referral};

/// Every `ninety.v1` method (`Service/Method`, package omitted) and what it needs.
pub const METHODS: &[(&str, Access)] = &[
    ("BedHolds/HoldBed", Write(Referral)),
    ("BedHolds/ConfirmHold", Write(Referral)),
    ("BedHolds/ReleaseHold", Write(Referral)),
    ("BedHolds/GetHold", Read),
    ("BedHolds/WardAvailability", Read),
    ("BedHolds/ListWards", Read),
    ("BedHolds/HoldBeds", Write(Referral)),
    ("BedHolds/ResolveHolds", Write(Referral)),
    ("BedHolds/Stream", Write(Referral)),
    (
        "Scheduling/PublishSchedule",
        WriteAny(&[Hospital, Platform]),
    ),
    ("Scheduling/FindSlots", Read),
    ("Scheduling/HoldSlot", Write(Platform)),
    ("Scheduling/BookSlot", Write(Platform)),
    ("Scheduling/CancelBooking", Write(Platform)),
    ("Scheduling/JoinWaitlist", Write(Platform)),
    ("Scheduling/LeaveWaitlist", Write(Platform)),
    ("Scheduling/HoldJointConsult", Write(Platform)),
    ("Scheduling/BookJointConsult", Write(Platform)),
    ("Scheduling/ReleaseJointConsult", Write(Platform)),
    ("Scheduling/MarkNoShow", Write(Platform)),
    ("Scheduling/GetBooking", Read),
    ("Scheduling/ListPatientBookings", Read),
    ("Scheduling/GetJointConsult", Read),
    ("Scheduling/ListWaitlist", Read),
    ("Scheduling/CancelJointConsult", Write(Platform)),
    ("Scheduling/AmendSlot", WriteAny(&[Hospital, Platform])),
    ("Scheduling/WithdrawSlots", WriteAny(&[Hospital, Platform])),
    (
        "Scheduling/SetWeeklyTemplate",
        WriteAny(&[Hospital, Platform]),
    ),
    ("Matching/MatchSpecialist", Read),
    ("Matching/MatchBeds", Read),
    ("Matching/AllocateBed", Write(Referral)),
    ("Matching/AllocateSlot", Write(Platform)),
    ("Referrals/RequestReferral", Write(Referral)),
    ("Referrals/TriageReferral", Write(Referral)),
    ("Referrals/MatchReferral", Write(Referral)),
    ("Referrals/HoldRemoteBed", Write(Referral)),
    ("Referrals/ReportNoCapacity", Write(Referral)),
    ("Referrals/AcceptReferral", Write(Referral)),
    ("Referrals/StartTransit", Write(Referral)),
    ("Referrals/AdmitReferral", Write(Referral)),
    ("Referrals/CompleteReferral", Write(Referral)),
    ("Referrals/RejectReferral", Write(Referral)),
    ("Referrals/CancelReferral", Write(Referral)),
    ("Referrals/GetReferral", Read),
    ("Referrals/Worklist", Read),
    ("Referrals/Reach", Read),
    ("Admin/ImportRegion", Write(Operator)),
    ("Admin/ClusterStatus", Read),
    ("Admin/AddMember", Write(Operator)),
    ("Admin/PromoteMember", Write(Operator)),
    ("Admin/RemoveMember", Write(Operator)),
    ("Admin/TransferLeader", Write(Operator)),
    ("Admin/SnapshotNow", Write(Operator)),
    // A read, but of the whole state at once: operators only.
    ("Admin/Backup", Write(Operator)),
    ("Watch/Watch", Read),
    ("Capacity/Discharge", Write(Hospital)),
    ("Capacity/MarkBedClean", Write(Hospital)),
    ("Capacity/BlockBed", Write(Hospital)),
    ("Capacity/UnblockBed", Write(Hospital)),
    ("Capacity/AddBeds", Write(Hospital)),
    ("Capacity/SetStaffedBeds", Write(Hospital)),
    ("Capacity/UpsertWard", Write(Hospital)),
    ("Capacity/UpsertDoctor", Write(Hospital)),
    ("Capacity/UpsertHospital", Write(Operator)),
    ("Capacity/SetTravel", Write(Operator)),
    ("Capacity/SetReferralPath", Write(Operator)),
    ("Capacity/SetPolicy", Write(Operator)),
    ("Capacity/UnblockPatient", Write(Operator)),
];

/// The package of the client API, as it prefixes a gRPC path.
pub const PACKAGE: &str = "ninety.v1.";

/// How the client listener treats a request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathClass {
    /// `grpc.health.v1.Health`: public (it reveals only SERVING).
    Public,
    /// A classified `ninety.v1` method.
    Method(Access),
    /// Reflection, or a path no service serves: any authenticated caller (tonic then
    /// answers `UNIMPLEMENTED` for an unknown one).
    Authenticated,
}

/// Classifies a gRPC path (`/ninety.v1.BedHolds/HoldBed`).
pub fn classify(path: &str) -> PathClass {
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.starts_with("grpc.health.v1.Health/") {
        return PathClass::Public;
    }
    match path
        .strip_prefix(PACKAGE)
        .and_then(|m| METHODS.iter().find(|(name, _)| *name == m))
    {
        Some((_, access)) => PathClass::Method(*access),
        None => PathClass::Authenticated,
    }
}

/// Whether a call to `path` is written to the audit log when granted: every method that
/// is not a read, and every Admin call (ClusterStatus included).
pub fn audited(path: &str) -> bool {
    let path = path.strip_prefix('/').unwrap_or(path);
    match classify(path) {
        PathClass::Method(Access::Write(_) | Access::WriteAny(_)) => true,
        PathClass::Method(Access::Read) => path.starts_with("ninety.v1.Admin/"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    // Just enough of `google.protobuf.FileDescriptorSet` to list the services' methods.
    #[derive(Clone, PartialEq, Message)]
    struct FileSet {
        #[prost(message, repeated, tag = "1")]
        file: Vec<File>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct File {
        #[prost(string, optional, tag = "2")]
        package: Option<String>,
        #[prost(message, repeated, tag = "6")]
        service: Vec<Service>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Service {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        method: Vec<Method>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Method {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
    }

    /// Every `ninety.v1` method of the descriptor set, as `Service/Method`.
    fn described_methods() -> Vec<String> {
        let set = FileSet::decode(ninety_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let mut out = Vec::new();
        for file in set.file.iter().filter(|f| f.package() == "ninety.v1") {
            for s in &file.service {
                for m in &s.method {
                    out.push(format!("{}/{}", s.name(), m.name()));
                }
            }
        }
        out
    }

    #[test]
    fn every_client_method_is_classified_once() {
        let described = described_methods();
        assert!(described.len() >= 40, "{described:?}");
        for m in &described {
            let n = METHODS.iter().filter(|(name, _)| name == m).count();
            assert_eq!(
                n, 1,
                "ninety.v1.{m} must have exactly one line in roles::METHODS"
            );
        }
        for (name, _) in METHODS {
            assert!(
                described.iter().any(|m| m == name),
                "roles::METHODS lists {name}, which the protos do not define"
            );
        }
    }

    #[test]
    fn each_role_reaches_exactly_its_methods() {
        let only = |r: Role| Roles::from_iter([r]);
        let cases = [
            ("/ninety.v1.BedHolds/HoldBed", Role::Referral),
            ("/ninety.v1.Matching/AllocateBed", Role::Referral),
            ("/ninety.v1.Matching/AllocateSlot", Role::Platform),
            ("/ninety.v1.Scheduling/BookSlot", Role::Platform),
            ("/ninety.v1.Admin/SnapshotNow", Role::Operator),
            ("/ninety.v1.Capacity/Discharge", Role::Hospital),
            ("/ninety.v1.Capacity/SetStaffedBeds", Role::Hospital),
            ("/ninety.v1.Capacity/SetPolicy", Role::Operator),
        ];
        for (path, needed) in cases {
            let PathClass::Method(access) = classify(path) else {
                panic!("{path} unclassified")
            };
            for r in Role::ALL {
                assert_eq!(access.allows(only(r)), r == needed, "{path} as {r:?}");
            }
            assert!(audited(path), "{path}");
        }
        for read in [
            "/ninety.v1.Admin/ClusterStatus",
            "/ninety.v1.Referrals/Worklist",
        ] {
            assert_eq!(classify(read), PathClass::Method(Access::Read));
            assert!(Role::ALL.iter().all(|r| Access::Read.allows(only(*r))));
        }
        assert!(!Access::Read.allows(Roles::default()));
        assert!(audited("/ninety.v1.Admin/ClusterStatus"));
        assert!(!audited("/ninety.v1.Referrals/Worklist"));
        assert_eq!(classify("/grpc.health.v1.Health/Check"), PathClass::Public);
        let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert_eq!(classify(reflection), PathClass::Authenticated);
        assert_eq!(classify("/ninety.v1.Nope/X"), PathClass::Authenticated);
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(Roles::all().names().len(), 5);
        assert_eq!(Role::parse("hospital"), Some(Role::Hospital));
        let publish = classify("/ninety.v1.Scheduling/PublishSchedule");
        for r in Role::ALL {
            let may = matches!(r, Role::Hospital | Role::Platform);
            assert_eq!(publish, PathClass::Method(WriteAny(&[Hospital, Platform])));
            if let PathClass::Method(access) = publish {
                assert_eq!(access.allows(only(r)), may, "PublishSchedule as {r:?}");
                assert_eq!(access.needs(), "hospital or platform");
            }
        }
    }
}
