//! Error details in the standard form: what a refused call carries in
//! `grpc-status-details-bin`, so stock gRPC decoders (grpcurl, `tonic-types`, grpc-go's
//! `status.FromError`, Google's client libraries) read them without ninety's types.
//!
//! The details are a `google.rpc.Status` (same code and message as the gRPC status) whose
//! `details` hold, as `google.protobuf.Any`:
//!
//! * `ninety.v1.Rejection` ([`REJECTION_TYPE_URL`]), the machine-readable refusal ninety's
//!   own clients read ([`rejection`]);
//! * `google.rpc.BadRequest` with one `FieldViolation` naming the field as the client sent
//!   it, on every `INVALID_ARGUMENT` that names a field;
//! * `google.rpc.ErrorInfo` (domain [`ERROR_DOMAIN`], reason the `RejectionCode` name
//!   without its prefix, or the node-level reason such as `NOT_LEADER` or `BUSY`);
//! * `google.rpc.RetryInfo` where waiting and retrying helps (a full queue, no leader).
//!
//! The `tonic-types` crate builds the standard messages; the `Rejection` is added beside
//! them, first, so a client that looks only for it finds it at once.

use crate::v1 as pb;
use prost::Message as _;
use std::collections::HashMap;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
pub use tonic_types::{ErrorDetails, StatusExt};

/// The `Any.type_url` of a `ninety.v1.Rejection` detail.
pub const REJECTION_TYPE_URL: &str = "type.googleapis.com/ninety.v1.Rejection";

/// The encoded descriptors of `google.rpc.Status` and the standard details, for server
/// reflection beside [`crate::FILE_DESCRIPTOR_SET`] (so grpcurl can print the details).
pub const STANDARD_DETAILS_DESCRIPTOR_SET: &[u8] = tonic_types::pb::FILE_DESCRIPTOR_SET;

/// The `ErrorInfo.domain` of every error ninety's API answers.
pub const ERROR_DOMAIN: &str = "ninety.v1";

/// `ErrorInfo.reason` of a `Rejection`: its code's name without `REJECTION_CODE_`
/// (`NO_CAPACITY`, `INVALID_ARGUMENT`), as `ErrorInfo` wants (UPPER_SNAKE_CASE).
pub fn rejection_reason(r: &pb::Rejection) -> String {
    let name = pb::RejectionCode::try_from(r.code)
        .unwrap_or(pb::RejectionCode::Unspecified)
        .as_str_name();
    name.strip_prefix("REJECTION_CODE_")
        .unwrap_or(name)
        .to_string()
}

/// The standard details of a refusal: `ErrorInfo` always, and for `INVALID_ARGUMENT` a
/// `BadRequest` naming `r.field` (the whole request, `""`, when no field is known).
pub fn rejection_details(code: Code, r: &pb::Rejection) -> ErrorDetails {
    let mut metadata = HashMap::new();
    if !r.field.is_empty() {
        metadata.insert("field".to_string(), r.field.clone());
    }
    if r.at_ms != 0 {
        metadata.insert("at_ms".to_string(), r.at_ms.to_string());
    }
    let mut details = ErrorDetails::with_error_info(rejection_reason(r), ERROR_DOMAIN, metadata);
    if code == Code::InvalidArgument {
        let field = match (r.field.as_str(), pb::RejectionCode::try_from(r.code)) {
            ("", Ok(pb::RejectionCode::RequestIdReused)) => "request_id",
            (field, _) => field,
        };
        details.add_bad_request_violation(field, r.message.clone());
    }
    details
}

/// A status with `code` and `message` whose details are a `google.rpc.Status` holding the
/// `Rejection` (when given) and the standard `details` (module doc); `metadata` is kept.
pub fn with_details(
    code: Code,
    message: impl Into<String>,
    rejection: Option<&pb::Rejection>,
    details: ErrorDetails,
    metadata: MetadataMap,
) -> Status {
    let message: String = message.into();
    let standard = Status::with_error_details(code, message.clone(), details);
    // tonic-types just encoded this google.rpc.Status itself: it decodes.
    let mut rpc = tonic_types::pb::Status::decode(standard.details()).unwrap_or_default();
    rpc.code = code as i32;
    rpc.message = message.clone();
    if let Some(r) = rejection {
        rpc.details.insert(
            0,
            prost_types::Any {
                type_url: REJECTION_TYPE_URL.to_string(),
                value: r.encode_to_vec(),
            },
        );
    }
    Status::with_details_and_metadata(code, message, rpc.encode_to_vec().into(), metadata)
}

/// The status of a refusal: `code`, the `Rejection`'s message, the `Rejection` and its
/// standard details ([`rejection_details`]).
pub fn rejection_status(code: Code, r: &pb::Rejection) -> Status {
    with_details(
        code,
        r.message.clone(),
        Some(r),
        rejection_details(code, r),
        MetadataMap::new(),
    )
}

/// The `Rejection` in a status's details, if any. Also reads the details of a node from
/// before the standard form (a bare `Rejection`), so a client works during a rolling
/// upgrade.
pub fn rejection(status: &Status) -> Option<pb::Rejection> {
    let bytes = status.details();
    if bytes.is_empty() {
        return None;
    }
    if let Ok(rpc) = tonic_types::pb::Status::decode(bytes) {
        let found = rpc
            .details
            .iter()
            .find(|any| any.type_url == REJECTION_TYPE_URL)
            .and_then(|any| pb::Rejection::decode(any.value.as_slice()).ok());
        if found.is_some() {
            return found;
        }
    }
    pb::Rejection::decode(bytes)
        .ok()
        .filter(|r| r.code != pb::RejectionCode::Unspecified as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(field: &str) -> pb::Rejection {
        pb::Rejection {
            code: pb::RejectionCode::InvalidArgument as i32,
            field: field.to_string(),
            message: format!("invalid {field}: must be positive"),
            at_ms: 0,
        }
    }

    #[test]
    fn stock_decoders_find_the_field_and_ours_the_rejection() {
        let s = rejection_status(Code::InvalidArgument, &invalid("items.3.ttl_ms"));
        // tonic-types alone, no ninety types: BadRequest names the field.
        let bad = s.get_details_bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "items.3.ttl_ms");
        let info = s.get_details_error_info().expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_ARGUMENT", ERROR_DOMAIN)
        );
        let rpc = tonic_types::pb::Status::decode(s.details()).unwrap();
        assert_eq!(rpc.code, Code::InvalidArgument as i32);
        assert_eq!(rpc.message, s.message());
        assert_eq!(rejection(&s), Some(invalid("items.3.ttl_ms")));
    }

    #[test]
    fn a_domain_refusal_has_no_bad_request() {
        let r = pb::Rejection {
            code: pb::RejectionCode::NoCapacity as i32,
            field: String::new(),
            message: "no capacity: ward 3 is full".to_string(),
            at_ms: 0,
        };
        let s = rejection_status(Code::FailedPrecondition, &r);
        assert!(s.get_details_bad_request().is_none());
        assert_eq!(s.get_details_error_info().unwrap().reason, "NO_CAPACITY");
        assert_eq!(rejection(&s), Some(r));
    }

    #[test]
    fn a_bare_rejection_of_an_older_node_is_still_read() {
        let r = invalid("patient_ref");
        let s = Status::with_details(
            Code::InvalidArgument,
            r.message.clone(),
            r.encode_to_vec().into(),
        );
        assert_eq!(rejection(&s), Some(r));
        assert_eq!(rejection(&Status::unavailable("no leader")), None);
    }
}
