//! Alarms: what a device or gateway reports.

use std::fmt;

use super::geo::Position;
use super::ids::{AlarmId, MunicipalityId, ResidentId};
use super::time::Timestamp;

/// What raised the alarm. Technical kinds report the equipment, not the person,
/// and are alarms in their own right: a device that has gone silent protects nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// The personal trigger: a wrist or neck button (SCAIP dty 0003).
    Safety,
    /// Fall detector (0005).
    Fall,
    /// Man-down: no movement after a fall or lying still (0030).
    ManDown,
    /// Door sensor (0014).
    Door,
    /// Wandering or left a geofence (0015, trackers 0051).
    Wandering,
    /// Bed sensor: out of bed and not back (0012).
    Bed,
    /// Smoke detector (0023).
    Smoke,
    /// Medicine dispenser: dose not taken (0011).
    Medication,
    /// A call for assistance that is not an emergency.
    Assistance,
    /// Technical: battery low (SCAIP stc 0016, Contact ID 302).
    BatteryLow,
    /// Technical: power failure (stc 0085).
    PowerFailure,
    /// Technical: heartbeat or periodic self-check missed (Contact ID 602 not seen).
    HeartbeatMissed,
    /// Technical: the device lost its connection.
    ConnectionLost,
}

impl AlarmKind {
    pub const ALL: [AlarmKind; 13] = [
        AlarmKind::Safety,
        AlarmKind::Fall,
        AlarmKind::ManDown,
        AlarmKind::Door,
        AlarmKind::Wandering,
        AlarmKind::Bed,
        AlarmKind::Smoke,
        AlarmKind::Medication,
        AlarmKind::Assistance,
        AlarmKind::BatteryLow,
        AlarmKind::PowerFailure,
        AlarmKind::HeartbeatMissed,
        AlarmKind::ConnectionLost,
    ];

    pub fn is_technical(self) -> bool {
        matches!(self, AlarmKind::BatteryLow | AlarmKind::PowerFailure | AlarmKind::HeartbeatMissed | AlarmKind::ConnectionLost)
    }

    /// The priority an alarm of this kind gets unless the device or configuration says otherwise.
    pub fn default_priority(self) -> Priority {
        match self {
            AlarmKind::Fall | AlarmKind::ManDown | AlarmKind::Smoke => Priority::Critical,
            AlarmKind::Safety | AlarmKind::Wandering | AlarmKind::Door | AlarmKind::Bed => Priority::High,
            AlarmKind::Medication | AlarmKind::Assistance | AlarmKind::PowerFailure | AlarmKind::HeartbeatMissed | AlarmKind::ConnectionLost => {
                Priority::Normal
            }
            AlarmKind::BatteryLow => Priority::Low,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Safety => "safety",
            AlarmKind::Fall => "fall",
            AlarmKind::ManDown => "man_down",
            AlarmKind::Door => "door",
            AlarmKind::Wandering => "wandering",
            AlarmKind::Bed => "bed",
            AlarmKind::Smoke => "smoke",
            AlarmKind::Medication => "medication",
            AlarmKind::Assistance => "assistance",
            AlarmKind::BatteryLow => "battery_low",
            AlarmKind::PowerFailure => "power_failure",
            AlarmKind::HeartbeatMissed => "heartbeat_missed",
            AlarmKind::ConnectionLost => "connection_lost",
        }
    }

    pub fn parse(s: &str) -> Option<AlarmKind> {
        AlarmKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Urgency. Ordered: `Critical > High > Normal > Low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Critical,
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        })
    }
}

/// Free text from the device or gateway, at most [`AlarmText::MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AlarmText(String);

impl AlarmText {
    pub const MAX_CHARS: usize = 1000;
    /// The text, or why people could not read it as sent (too long; a control
    /// character but newline, or an invisible one, named: [`super::text::refused`]).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.chars().count() > Self::MAX_CHARS {
            return Err(format!("alarm text longer than {} characters", Self::MAX_CHARS));
        }
        if let Some(why) = super::text::refused(s, true) {
            return Err(format!("alarm text {why}"));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AlarmText {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        AlarmText::parse(&s)
    }
}

impl From<AlarmText> for String {
    fn from(t: AlarmText) -> String {
        t.0
    }
}

/// One alarm as reported. Every field is already valid (see the types).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alarm {
    pub id: AlarmId,
    pub resident: ResidentId,
    /// The municipality the alarm was sent for (the topic it came on).
    pub municipality: MunicipalityId,
    pub kind: AlarmKind,
    /// `None`: the kind's configured default.
    pub priority: Option<Priority>,
    /// When the device says it raised the alarm. The answer clock starts when the
    /// alarm reaches vakt (the `now` of `handle_input`), not here: device clocks drift.
    pub raised_at: Timestamp,
    /// Where the alarm was raised (GPS trackers); `None`: at the resident's home.
    pub position: Option<Position>,
    pub text: Option<AlarmText>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_names_and_have_priorities() {
        for k in AlarmKind::ALL {
            assert_eq!(AlarmKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(AlarmKind::parse("earthquake"), None);
        assert!(AlarmKind::Fall.default_priority() > AlarmKind::Safety.default_priority());
        assert!(AlarmKind::BatteryLow.is_technical() && !AlarmKind::Smoke.is_technical());
    }

    #[test]
    fn text_is_bounded() {
        assert!(AlarmText::parse("Falt på badet").is_ok());
        assert!(AlarmText::parse(&"x".repeat(1001)).is_err());
        assert!(AlarmText::parse("a\u{0}b").is_err());
        assert!(AlarmText::parse("Nøkkelboks \u{202E}4321").unwrap_err().contains("U+202E"), "names the character, as docs/mqtt.md says");
    }
}
