//! Identifiers. Parse, don't validate: an id that exists is a valid id.
//!
//! String ids come from devices, apps and configuration and end up in MQTT topics
//! (`vakt/v1/staff/{staff_id}/offers`), so they are restricted to a topic-safe
//! alphabet: 1 to 64 characters of ASCII letters, digits and `-_.:`.
//! They are `Arc<str>` inside, so the many copies the engine hands out in actions
//! cost a reference count, not an allocation.

use std::fmt;
use std::sync::Arc;

/// Why a string is not an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    pub what: &'static str,
    pub reason: &'static str,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.what, self.reason)
    }
}

impl std::error::Error for IdError {}

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

fn check_id(what: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError { what, reason: "empty" });
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError { what, reason: "longer than 64 characters" });
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')) {
        return Err(IdError { what, reason: "only ASCII letters, digits and - _ . : are allowed" });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_id($what, s)?;
                Ok(Self(Arc::from(s)))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

string_id!(
    /// An alarm's id, given by the device or gateway. The same id twice is one alarm.
    AlarmId, "alarm id");
string_id!(
    /// An alarm user's id.
    ResidentId, "resident id");
string_id!(
    /// A home-care staff member's id.
    StaffId, "staff id");
string_id!(
    /// A municipality's id, e.g. `sogndal`. Also the name of its home-care team.
    MunicipalityId, "municipality id");
string_id!(
    /// A response centre's id, e.g. `alarmsentralen`.
    CentreId, "centre id");
string_id!(
    /// An operator's id at a response centre.
    OperatorId, "operator id");
string_id!(
    /// A gateway's or alarm receiver's id, from its status topic
    /// (`vakt/v1/gateways/{municipality}/{gateway_id}`). Not an engine input: the live
    /// side watches whether gateways are online (`live::gateways`).
    GatewayId, "gateway id");

/// An incident's id: the engine numbers incidents itself, in order of creation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
pub struct IncidentId(pub u64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "I{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_topic_safe_strings_only() {
        assert!(StaffId::parse("s-1.nurse_2:a").is_ok());
        assert_eq!(StaffId::parse("").unwrap_err().reason, "empty");
        assert!(StaffId::parse("a/b").is_err(), "a slash would break MQTT topics");
        assert!(StaffId::parse("a+b").is_err());
        assert!(StaffId::parse("#").is_err());
        assert!(StaffId::parse(&"x".repeat(65)).is_err());
        assert!(StaffId::parse(&"x".repeat(64)).is_ok());
        assert_eq!(AlarmId::parse("ø").unwrap_err().to_string(), "invalid alarm id: only ASCII letters, digits and - _ . : are allowed");
    }

    #[test]
    fn ids_deserialize_through_parse() {
        let ok: ResidentId = serde_json_like("\"r1\"");
        assert_eq!(ok.as_str(), "r1");
    }

    fn serde_json_like(s: &str) -> ResidentId {
        // toml is our only serde format dependency; wrap the value in a table.
        #[derive(serde::Deserialize)]
        struct W {
            v: ResidentId,
        }
        let w: W = toml::from_str(&format!("v = {s}")).unwrap();
        assert!(toml::from_str::<W>("v = \"a b\"").is_err());
        w.v
    }
}
