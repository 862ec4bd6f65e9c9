//! Every refusal the HTTP API answers with: its stable code (docs/api.md, translated by
//! the pages), and its HTTP status. One enum, so that a code the engine or the driver
//! refuses with always has a status, chosen here, and a misspelt code does not compile.

use axum::http::StatusCode;

use crate::core::RejectReason;

/// The table: each refusal's variant, code and status. Two variants share a code where
/// the same refusal has a different status in different places (a wrong password: 401
/// at login, 403 for a password change; a body too large: 413 before any handler, 400
/// as the MQTT contract refuses a staff member's body).
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal, $status:ident;)*) => {
        /// A refusal's code (see the table below).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, for the tests that hold docs/api.md and the pages' translations to it.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as the API answers it (`{"error": CODE, ...}`) and the audit trail notes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    // The request itself is wrong.
    BadRequest => "bad_request", BAD_REQUEST;
    EmptyNote => "empty_note", BAD_REQUEST;
    NoteTooLong => "note_too_long", BAD_REQUEST;
    NoteUnreadable => "note_unreadable", BAD_REQUEST;
    /// The MQTT contract's refusals of a staff member's body (`wire::REJECT_CODES`).
    MalformedJson => "malformed_json", BAD_REQUEST;
    InvalidField => "invalid_field", BAD_REQUEST;
    PayloadTooLarge => "payload_too_large", BAD_REQUEST;
    NotUtf8 => "not_utf8", BAD_REQUEST;
    BadTopic => "bad_topic", BAD_REQUEST;
    UnknownKind => "unknown_kind", BAD_REQUEST;
    AbsurdTimestamp => "absurd_timestamp", BAD_REQUEST;
    Unreadable => "unreadable", BAD_REQUEST;
    /// Alarm devices' refusals (docs/devices.md): a frame or document vakt cannot read,
    /// a timestamp outside DC-09's window, an event vakt does not map.
    BadFrame => "bad_frame", BAD_REQUEST;
    StaleTimestamp => "stale_timestamp", BAD_REQUEST;
    Unsupported => "unsupported", UNPROCESSABLE_ENTITY;
    /// A device account or controller id not in the register, or a wrong key.
    UnknownDevice => "unknown_device", FORBIDDEN;
    WrongKey => "wrong_key", FORBIDDEN;
    /// An address past its bound on connections or messages.
    Flooding => "flooding", TOO_MANY_REQUESTS;
    // Who are you?
    LoginRequired => "login_required", UNAUTHORIZED;
    SessionExpired => "session_expired", UNAUTHORIZED;
    WrongCredentials => "wrong_credentials", UNAUTHORIZED;
    // Not yours to do.
    Forbidden => "forbidden", FORBIDDEN;
    Csrf => "csrf", FORBIDDEN;
    NotYourCentre => "not_your_centre", FORBIDDEN;
    NotOffered => "not_offered", FORBIDDEN;
    NotAssigned => "not_assigned", FORBIDDEN;
    NotAtThisCentre => "not_at_this_centre", FORBIDDEN;
    NotInScope => "not_in_scope", FORBIDDEN;
    /// A password change with the wrong current password.
    WrongCurrentPassword => "wrong_credentials", FORBIDDEN;
    // The path, the method, the body.
    UnknownIncident => "unknown_incident", NOT_FOUND;
    NotFound => "not_found", NOT_FOUND;
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED;
    /// A body over axum's limit, refused before any handler.
    BodyTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE;
    UnsupportedMediaType => "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE;
    // Not in this state.
    WrongState => "wrong_state", CONFLICT;
    AlreadyTaken => "already_taken", CONFLICT;
    OffDuty => "off_duty", CONFLICT;
    NothingToCancel => "nothing_to_cancel", CONFLICT;
    /// This same action made the engine fail before (docs/api.md).
    ActionSetAside => "action_set_aside", CONFLICT;
    // Well formed, but not possible.
    WeakPassword => "weak_password", UNPROCESSABLE_ENTITY;
    SamePassword => "same_password", UNPROCESSABLE_ENTITY;
    UnknownStaff => "unknown_staff", UNPROCESSABLE_ENTITY;
    UnknownResident => "unknown_resident", UNPROCESSABLE_ENTITY;
    UnknownCentre => "unknown_centre", UNPROCESSABLE_ENTITY;
    UnknownMunicipality => "unknown_municipality", UNPROCESSABLE_ENTITY;
    WrongMunicipality => "wrong_municipality", UNPROCESSABLE_ENTITY;
    /// A username that cannot be an operator's id.
    BadUser => "bad_user", UNPROCESSABLE_ENTITY;
    TooManyAttempts => "too_many_attempts", TOO_MANY_REQUESTS;
    Internal => "internal", INTERNAL_SERVER_ERROR;
    // Not now.
    EngineUnavailable => "engine_unavailable", SERVICE_UNAVAILABLE;
    NotReady => "not_ready", SERVICE_UNAVAILABLE;
    NotStoredYet => "not_stored_yet", SERVICE_UNAVAILABLE;
    StoreUnavailable => "store_unavailable", SERVICE_UNAVAILABLE;
}

impl From<&RejectReason> for ErrorCode {
    fn from(r: &RejectReason) -> ErrorCode {
        match r {
            RejectReason::UnknownResident => ErrorCode::UnknownResident,
            RejectReason::UnknownStaff => ErrorCode::UnknownStaff,
            RejectReason::UnknownCentre => ErrorCode::UnknownCentre,
            RejectReason::UnknownMunicipality => ErrorCode::UnknownMunicipality,
            RejectReason::WrongMunicipality { .. } => ErrorCode::WrongMunicipality,
            RejectReason::UnknownIncident => ErrorCode::UnknownIncident,
            RejectReason::AlreadyTaken => ErrorCode::AlreadyTaken,
            RejectReason::NotOffered => ErrorCode::NotOffered,
            RejectReason::NotAssigned => ErrorCode::NotAssigned,
            RejectReason::WrongState { .. } => ErrorCode::WrongState,
            RejectReason::NotAtThisCentre => ErrorCode::NotAtThisCentre,
            RejectReason::OffDuty => ErrorCode::OffDuty,
            RejectReason::NothingToCancel => ErrorCode::NothingToCancel,
            RejectReason::NotInScope => ErrorCode::NotInScope,
        }
    }
}

/// A code against its text, as the contracts and the tests spell it.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, code: &&str) -> bool {
        self.as_str() == *code
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's codes are the API's, and the wire's refusals of a staff member's
    /// body are answered 400 by the API (docs/api.md).
    #[test]
    fn every_refusal_has_a_code_and_a_status() {
        for code in ErrorCode::ALL {
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
        }
        for code in crate::live::wire::REJECT_CODES {
            assert_eq!(code.status(), StatusCode::BAD_REQUEST, "{code}");
        }
        let reason = RejectReason::WrongState { state: "accepted" };
        assert_eq!(ErrorCode::from(&reason).as_str(), reason.code());
    }
}
