//! The outbound half of the MQTT contract v1 (docs/mqtt.md): what the engine publishes.
//!
//! - `vakt/v1/staff/{staff_id}/offers`: offers, revokes, and the answer to every reply
//!   (`confirmed` or `refused` with a reason).
//! - `vakt/v1/incidents/{municipality}`: every incident state change.
//! - `vakt/v1/rejects`: every message refused, with the topic it came on and the reason.
//!
//! Pure functions from actions (plus what the driver remembers about the incident) to
//! JSON, so the shapes are tested without a broker.

use serde::Serialize;

use crate::core::{
    Action, AlarmId, AlarmKind, AlertKind, Backup, IncidentId, MunicipalityId, Position, Priority, RejectReason, ResidentId, Responder, ResponseModel,
    RevokeReason, StaffId, StaffReply, Timestamp,
};

pub const REJECTS_TOPIC: &str = "vakt/v1/rejects";
/// Alarms come on this prefix and their municipality (`vakt/v1/alarms/{municipality}`).
pub const ALARMS_PREFIX: &str = "vakt/v1/alarms/";

pub fn offers_topic(staff: &StaffId) -> String {
    format!("vakt/v1/staff/{staff}/offers")
}

pub fn incidents_topic(municipality: &MunicipalityId) -> String {
    format!("vakt/v1/incidents/{municipality}")
}

/// What the driver remembers about an open incident, to fill offers and events (kept
/// in checkpoints beside the engine's snapshot).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IncidentContext {
    pub municipality: MunicipalityId,
    pub model: ResponseModel,
    pub alarm: AlarmId,
    pub resident: ResidentId,
    pub kind: AlarmKind,
    pub priority: Priority,
    pub raised_at: Timestamp,
    pub text: Option<String>,
    /// Where help is needed: the alarm's position, or the resident's home.
    pub position: Position,
    pub address: String,
    pub notes: String,
}

/// The event kind of an action, as stored and published (`"type"`).
pub fn event_kind(action: &Action) -> &'static str {
    match action {
        Action::Raised { .. } => "raised",
        Action::Attached { .. } => "attached",
        Action::DuplicateIgnored { .. } => "duplicate_ignored",
        Action::Queued { .. } => "queued",
        Action::Dequeued { .. } => "dequeued",
        Action::Offered { .. } => "offered",
        Action::Revoked { .. } => "revoked",
        Action::Broadcast { .. } => "broadcast",
        Action::ForwardedToBackup { .. } => "forwarded_to_backup",
        Action::Alert { .. } => "alert",
        Action::AssignedByOperator { .. } => "assigned_by_operator",
        Action::EscalatedByOperator { .. } => "escalated_by_operator",
        Action::NoteAdded { .. } => "note_added",
        Action::SetAside { .. } => "set_aside",
        Action::Answered { .. } => "answered",
        Action::ResolvedByCentre { .. } => "resolved_by_centre",
        Action::ForwardedToHomeCare { .. } => "forwarded_to_home_care",
        Action::Accepted { .. } => "accepted",
        Action::EnRoute { .. } => "en_route",
        Action::OnSite { .. } => "on_site",
        Action::Closed { .. } => "closed",
        Action::Rejected { .. } => "rejected",
    }
}

/// Is a stored event of this kind published on the incidents topic? All are but a
/// refusal's (`incident_event` gives none for `Rejected`), which is stored for the record.
pub fn is_published(kind: &str) -> bool {
    kind != "rejected"
}

pub fn revoke_reason(r: RevokeReason) -> &'static str {
    match r {
        RevokeReason::Declined => "declined",
        RevokeReason::Expired => "expired",
        RevokeReason::TakenByOther => "taken_by_other",
        RevokeReason::AnsweredByOperator => "answered_by_operator",
        RevokeReason::Cancelled => "cancelled",
        RevokeReason::StaffOffDuty => "staff_off_duty",
    }
}

pub fn reply_name(r: &StaffReply) -> &'static str {
    match r {
        StaffReply::Accept => "accept",
        StaffReply::Decline => "decline",
        StaffReply::EnRoute => "en_route",
        StaffReply::OnSite => "on_site",
        StaffReply::Close { .. } => "close",
    }
}

fn secs(d: std::time::Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

/// A value that goes out as its `Display` text (timestamps in RFC 3339, priorities,
/// actors), written straight into the JSON without a `String` of its own.
struct AsText<T>(T);

impl<T: std::fmt::Display> Serialize for AsText<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// The JSON text of a message. Each message is a struct whose fields go out in the
/// order docs/mqtt.md shows them, written straight into its text: no
/// `serde_json::Value`, a map with a `String` for every key, built, printed and dropped
/// for every message on the engine's thread.
fn text(message: &impl Serialize) -> String {
    let mut buf = Vec::with_capacity(384);
    serde_json::to_writer(&mut buf, message).expect("JSON written into memory cannot fail");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

fn alert_name(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Unanswered => "unanswered",
        AlertKind::NotAccepted => "notaccepted",
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum AnsweredBy<'a> {
    Staff { staff_id: &'a str },
    Operator { centre_id: &'a str, operator_id: &'a str },
}

/// An incident event: the head every event has, then its type's own fields.
#[derive(Serialize)]
struct IncidentEvent<'a> {
    v: u8,
    seq: i64,
    incident_id: u64,
    municipality: &'a str,
    at: AsText<Timestamp>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    fields: EventFields<'a>,
}

/// Each event type's own fields (docs/mqtt.md, `vakt/v1/incidents/{municipality}`).
#[derive(Serialize)]
#[serde(untagged)]
enum EventFields<'a> {
    Raised {
        alarm_id: &'a str,
        resident_id: &'a str,
        model: &'a str,
        kind: &'a str,
        priority: AsText<Priority>,
        raised_at: AsText<Timestamp>,
        position: Position,
    },
    Attached {
        alarm_id: &'a str,
        priority_raised_to: Option<AsText<Priority>>,
    },
    AtCentre {
        centre_id: &'a str,
    },
    Offered {
        staff_id: &'a str,
        eta_secs: f64,
        expires_at: Option<AsText<Timestamp>>,
        broadcast: bool,
    },
    Revoked {
        staff_id: &'a str,
        reason: &'static str,
    },
    BackupCentre {
        backup_centre: &'a str,
    },
    BackupTeam {
        backup_team: &'a str,
    },
    Alert {
        alert: &'static str,
        waiting_secs: f64,
    },
    Assigned {
        operator_id: &'a str,
        staff_id: &'a str,
    },
    ByOperator {
        operator_id: &'a str,
    },
    Note {
        by: AsText<&'a crate::core::Actor>,
        note: &'a str,
    },
    SetAside {
        reason: &'a str,
    },
    Answered {
        by: AnsweredBy<'a>,
        answer_secs: f64,
    },
    Accepted {
        staff_id: &'a str,
        since_dispatch_secs: f64,
    },
    ByStaff {
        staff_id: &'a str,
    },
    OnSite {
        staff_id: &'a str,
        since_raised_secs: f64,
    },
    Closed {
        outcome: &'a str,
        note: Option<&'a str>,
    },
    None {},
}

impl<'a> EventFields<'a> {
    /// `None` for an action that is not about an incident's state (a duplicate, a refusal).
    fn of(action: &'a Action, ctx: &'a IncidentContext) -> Option<EventFields<'a>> {
        Some(match action {
            Action::Raised { alarm, resident, model, kind, priority, .. } => EventFields::Raised {
                alarm_id: alarm.as_str(),
                resident_id: resident.as_str(),
                model: model.as_str(),
                kind: kind.as_str(),
                priority: AsText(*priority),
                raised_at: AsText(ctx.raised_at),
                position: ctx.position,
            },
            Action::Attached { alarm, priority_raised_to, .. } => {
                EventFields::Attached { alarm_id: alarm.as_str(), priority_raised_to: priority_raised_to.map(AsText) }
            }
            Action::Queued { centre, .. } | Action::Dequeued { centre, .. } => EventFields::AtCentre { centre_id: centre.as_str() },
            Action::Offered { staff, eta, expires_at, .. } => {
                EventFields::Offered { staff_id: staff.as_str(), eta_secs: secs(*eta), expires_at: expires_at.map(AsText), broadcast: expires_at.is_none() }
            }
            Action::Revoked { staff, reason, .. } => EventFields::Revoked { staff_id: staff.as_str(), reason: revoke_reason(*reason) },
            Action::Broadcast { .. } => EventFields::None {},
            Action::ForwardedToBackup { backup: Backup::Centre(c), .. } => EventFields::BackupCentre { backup_centre: c.as_str() },
            Action::ForwardedToBackup { backup: Backup::Team(t), .. } => EventFields::BackupTeam { backup_team: t.as_str() },
            Action::Alert { kind, waiting, .. } => EventFields::Alert { alert: alert_name(*kind), waiting_secs: secs(*waiting) },
            Action::AssignedByOperator { operator, staff, .. } => EventFields::Assigned { operator_id: operator.as_str(), staff_id: staff.as_str() },
            Action::EscalatedByOperator { operator, .. } | Action::ResolvedByCentre { operator, .. } | Action::ForwardedToHomeCare { operator, .. } => {
                EventFields::ByOperator { operator_id: operator.as_str() }
            }
            Action::NoteAdded { by, note, .. } => EventFields::Note { by: AsText(by), note },
            Action::SetAside { reason, .. } => EventFields::SetAside { reason },
            Action::Answered { by, answer_time, .. } => {
                let by = match by {
                    Responder::Staff(s) => AnsweredBy::Staff { staff_id: s.as_str() },
                    Responder::Operator { centre, operator } => AnsweredBy::Operator { centre_id: centre.as_str(), operator_id: operator.as_str() },
                };
                EventFields::Answered { by, answer_secs: secs(*answer_time) }
            }
            Action::Accepted { staff, since_dispatch, .. } => EventFields::Accepted { staff_id: staff.as_str(), since_dispatch_secs: secs(*since_dispatch) },
            Action::EnRoute { staff, .. } => EventFields::ByStaff { staff_id: staff.as_str() },
            Action::OnSite { staff, since_raised, .. } => EventFields::OnSite { staff_id: staff.as_str(), since_raised_secs: secs(*since_raised) },
            Action::Closed { outcome, note, .. } => EventFields::Closed { outcome: outcome.as_str(), note: note.as_deref() },
            Action::Rejected { .. } | Action::DuplicateIgnored { .. } => return None,
        })
    }
}

/// The incident event: `{"v":1,"seq","incident_id","municipality","at","type",...}`.
/// `None` for actions that are not about an incident's state (duplicates, rejects).
pub fn incident_event(seq: i64, action: &Action, ctx: &IncidentContext) -> Option<String> {
    let incident = action.incident()?;
    let fields = EventFields::of(action, ctx)?;
    let event = IncidentEvent {
        v: 1,
        seq,
        incident_id: incident.0,
        municipality: ctx.municipality.as_str(),
        at: AsText(action.at()),
        kind: event_kind(action),
        fields,
    };
    Some(text(&event))
}

/// The stored record of an action about an incident that is not published (a refusal).
#[derive(Serialize)]
struct UnpublishedEvent<'a> {
    v: u8,
    seq: i64,
    incident_id: u64,
    at: AsText<Timestamp>,
    #[serde(rename = "type")]
    kind: &'static str,
    detail: AsText<&'a Action>,
}

/// `{"v":1,"seq","incident_id","at","type","detail"}`.
pub fn unpublished_event(seq: i64, action: &Action, incident: IncidentId) -> String {
    text(&UnpublishedEvent { v: 1, seq, incident_id: incident.0, at: AsText(action.at()), kind: event_kind(action), detail: AsText(action) })
}

#[derive(Serialize)]
struct OfferedAlarm<'a> {
    alarm_id: &'a str,
    kind: &'a str,
    priority: AsText<Priority>,
    raised_at: AsText<Timestamp>,
    text: Option<&'a str>,
}

#[derive(Serialize)]
struct OfferedResident<'a> {
    resident_id: &'a str,
    address: &'a str,
    position: Position,
    notes: &'a str,
}

/// The offer a staff member's app shows: everything needed to decide and to go.
#[derive(Serialize)]
struct Offer<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    incident_id: u64,
    offered_at: AsText<Timestamp>,
    expires_at: Option<AsText<Timestamp>>,
    broadcast: bool,
    eta_secs: f64,
    alarm: OfferedAlarm<'a>,
    resident: OfferedResident<'a>,
}

pub fn offer_message(action: &Action, ctx: &IncidentContext) -> Option<String> {
    let Action::Offered { at, incident, eta, expires_at, .. } = action else { return None };
    Some(text(&Offer {
        kind: "offer",
        incident_id: incident.0,
        offered_at: AsText(*at),
        expires_at: expires_at.map(AsText),
        broadcast: expires_at.is_none(),
        eta_secs: secs(*eta),
        alarm: OfferedAlarm {
            alarm_id: ctx.alarm.as_str(),
            kind: ctx.kind.as_str(),
            priority: AsText(ctx.priority),
            raised_at: AsText(ctx.raised_at),
            text: ctx.text.as_deref(),
        },
        resident: OfferedResident { resident_id: ctx.resident.as_str(), address: &ctx.address, position: ctx.position, notes: &ctx.notes },
    }))
}

#[derive(Serialize)]
struct Revoke {
    #[serde(rename = "type")]
    kind: &'static str,
    incident_id: u64,
    reason: &'static str,
    at: AsText<Timestamp>,
}

pub fn revoke_message(incident: IncidentId, reason: RevokeReason, at: Timestamp) -> String {
    text(&Revoke { kind: "revoke", incident_id: incident.0, reason: revoke_reason(reason), at: AsText(at) })
}

/// The answer to a staff member's reply: `confirmed`, or `refused` with its reason.
#[derive(Serialize)]
struct ReplyAnswer<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    incident_id: u64,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<AsText<&'a RejectReason>>,
    at: AsText<Timestamp>,
}

pub fn confirmed_message(incident: IncidentId, reply: &StaffReply, at: Timestamp) -> String {
    text(&ReplyAnswer { kind: "confirmed", incident_id: incident.0, action: reply_name(reply), reason: None, detail: None, at: AsText(at) })
}

pub fn refused_message(incident: IncidentId, reply: &StaffReply, reason: &RejectReason, at: Timestamp) -> String {
    text(&ReplyAnswer {
        kind: "refused",
        incident_id: incident.0,
        action: reply_name(reply),
        reason: Some(reason.code()),
        detail: Some(AsText(reason)),
        at: AsText(at),
    })
}

/// A refused message, for `vakt/v1/rejects`.
#[derive(Serialize)]
struct Reject<'a> {
    topic: &'a str,
    reason: &'a str,
    detail: &'a str,
    at: AsText<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alarm_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resident_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    municipality: Option<&'a str>,
}

/// A refused alarm carries its alarm and resident ids where they could be read: it may
/// still be a person who needs help.
pub fn reject_message(topic: &str, code: &str, detail: &str, at: Timestamp, ids: &RefusedIds) -> String {
    text(&Reject {
        topic,
        reason: code,
        detail,
        at: AsText(at),
        alarm_id: ids.alarm.as_ref().map(|a| a.as_str()),
        resident_id: ids.resident.as_ref().map(|r| r.as_str()),
        municipality: ids.municipality.as_ref().map(|m| m.as_str()),
    })
}

/// The municipality under which the dashboards list a refused message (`reject`, as
/// published on [`REJECTS_TOPIC`]), or `None` when they leave it out. Listed are:
/// - an alarm: one on `vakt/v1/alarms/{municipality}`, or a home's base unit's
///   `connection_lost` alarm, refused on its status topic
///   `vakt/v1/gateways/{municipality}/{unit}` with the alarm's id: a person whose alarm
///   no one was offered;
/// - an alarm device's refused message (`devices/{protocol}/...`): under its
///   resident's municipality, or `""` when the device is not known;
/// - a message too large on any topic: a device or app sending what vakt cannot read,
///   whose owner must be found. A staff member's is listed under their municipality
///   (the reject's `municipality`), an unknown sender's under `""`, which is nobody's
///   municipality and so everybody's concern.
///
/// A staff member's other refused messages (a late reply, say) are answered on their
/// own offers topic and are not listed; nor is a gateway's refused status.
pub fn listed_municipality(reject: &serde_json::Value) -> Option<&str> {
    listed_under(reject["topic"].as_str()?, reject["reason"].as_str().unwrap_or_default(), reject.get("alarm_id").is_some(), reject["municipality"].as_str())
}

/// [`listed_municipality`] from a reject's parts, before it is written: its topic, its
/// reason, whether it has an alarm id, and its municipality.
pub fn listed_under<'a>(topic: &'a str, reason: &str, alarm: bool, municipality: Option<&'a str>) -> Option<&'a str> {
    if municipality.is_some() {
        return municipality;
    }
    if let Some(m) = topic.strip_prefix(ALARMS_PREFIX) {
        return Some(m);
    }
    if topic.starts_with(super::devices::PREFIX) {
        // A device whose municipality cannot be read (an unknown account): everybody's concern.
        return Some("");
    }
    let too_large = reason == "payload_too_large";
    let gateway = topic.strip_prefix(super::gateways::PREFIX).and_then(|unit| unit.split_once('/')).map(|(m, _)| m);
    match gateway {
        Some(m) if too_large || alarm => Some(m),
        _ => too_large.then_some(""),
    }
}

/// A refused alarm on the dashboards' list is known by its reject's `at` and `topic`
/// (an operator acknowledges it by them).
pub fn refused_key(reject: &serde_json::Value) -> (&str, &str) {
    (reject["at"].as_str().unwrap_or_default(), reject["topic"].as_str().unwrap_or_default())
}

/// What could be read of a refused alarm's ids (none for other messages), and whose
/// municipality a refused staff message is, where the dashboards list it (see
/// [`listed_municipality`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefusedIds {
    pub alarm: Option<AlarmId>,
    pub resident: Option<ResidentId>,
    pub municipality: Option<MunicipalityId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::time::Duration;

    fn parsed(text: String) -> Value {
        serde_json::from_str(&text).expect("valid JSON")
    }

    #[test]
    fn rejects_are_published_as_json_with_the_ids_of_a_refused_alarm() {
        let at = Timestamp::parse_rfc3339("2024-03-01T08:00:00Z").unwrap();
        let msg = parsed(reject_message("vakt/v1/alarms/sogndal", "unknown_kind", "\"earthquake\" is not an alarm kind", at, &RefusedIds::default()));
        assert_eq!(
            msg,
            json!({ "topic": "vakt/v1/alarms/sogndal", "reason": "unknown_kind", "detail": "\"earthquake\" is not an alarm kind", "at": "2024-03-01T08:00:00.000Z" })
        );
        let ids = RefusedIds { alarm: Some(AlarmId::parse("gw3-17").unwrap()), resident: Some(ResidentId::parse("r-7").unwrap()), municipality: None };
        let msg = parsed(reject_message("vakt/v1/alarms/sogndal", "unknown_resident", "no resident r-7", at, &ids));
        assert_eq!((msg["alarm_id"].as_str(), msg["resident_id"].as_str()), (Some("gw3-17"), Some("r-7")));
    }

    #[test]
    fn the_dashboards_list_refused_alarms_and_messages_too_large() {
        let listed = |topic: &str, reason: &str, more: Value| {
            let mut reject = json!({ "topic": topic, "reason": reason, "detail": "", "at": "2024-03-01T08:00:00.000Z" });
            reject.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
            listed_municipality(&reject).map(str::to_owned)
        };
        let alarm = json!({ "alarm_id": "a-1" });
        assert_eq!(listed("vakt/v1/alarms/sogndal", "unknown_kind", json!({})).as_deref(), Some("sogndal"));
        assert_eq!(listed("vakt/v1/alarms/sogndal", "unknown_resident", alarm.clone()).as_deref(), Some("sogndal"));
        assert_eq!(
            listed("vakt/v1/gateways/luster/bu-r7", "unknown_resident", alarm.clone()).as_deref(),
            Some("luster"),
            "a base unit's connection_lost alarm"
        );
        assert_eq!(listed("vakt/v1/gateways/luster/bu-r7", "invalid_field", json!({})), None, "a gateway's status, not an alarm");
        assert_eq!(listed("vakt/v1/gateways/luster", "bad_topic", alarm.clone()), None);
        assert_eq!(listed("vakt/v1/staff/s1/replies", "invalid_field", alarm), None, "a staff member's reply is answered on their own topic");
        // Too large: whoever sent it must be found.
        assert_eq!(listed("vakt/v1/gateways/luster/gw-1", "payload_too_large", json!({})).as_deref(), Some("luster"));
        assert_eq!(
            listed("vakt/v1/staff/s1/status", "payload_too_large", json!({ "municipality": "luster" })).as_deref(),
            Some("luster"),
            "a known staff member's"
        );
        assert_eq!(listed("vakt/v1/staff/nobody/status", "payload_too_large", json!({})).as_deref(), Some(""), "nobody's is everybody's concern");
        assert_eq!(listed("vakt/v1/other", "payload_too_large", json!({})).as_deref(), Some(""));
    }

    fn ctx() -> IncidentContext {
        IncidentContext {
            municipality: MunicipalityId::parse("demo").unwrap(),
            model: ResponseModel::MobileGuardRoom,
            alarm: AlarmId::parse("a-1").unwrap(),
            resident: ResidentId::parse("r-1").unwrap(),
            kind: AlarmKind::Fall,
            priority: Priority::Critical,
            raised_at: Timestamp::parse_rfc3339("2024-03-01T08:00:00Z").unwrap(),
            text: Some("Falt på badet".into()),
            position: Position::new(61.2, 7.1).unwrap(),
            address: "Kyrkjevegen 3".into(),
            notes: "Nøkkelboks 1234".into(),
        }
    }

    #[test]
    fn offers_carry_what_staff_need_to_go() {
        let at = Timestamp::parse_rfc3339("2024-03-01T08:00:01Z").unwrap();
        let a = Action::Offered {
            at,
            incident: IncidentId(7),
            staff: StaffId::parse("s1").unwrap(),
            eta: Duration::from_secs(90),
            expires_at: Some(at + Duration::from_secs(15)),
        };
        let m = parsed(offer_message(&a, &ctx()).unwrap());
        assert_eq!(m["incident_id"], 7);
        assert_eq!(m["eta_secs"], 90.0);
        assert_eq!(m["expires_at"], "2024-03-01T08:00:16.000Z");
        assert_eq!(m["resident"]["address"], "Kyrkjevegen 3");
        assert_eq!(m["resident"]["notes"], "Nøkkelboks 1234");
        assert_eq!(m["alarm"]["kind"], "fall");
        let e = parsed(incident_event(3, &a, &ctx()).unwrap());
        assert_eq!((e["type"].as_str(), e["seq"].as_i64(), e["staff_id"].as_str()), (Some("offered"), Some(3), Some("s1")));
        assert!(incident_event(4, &Action::DuplicateIgnored { at, alarm: AlarmId::parse("a").unwrap() }, &ctx()).is_none());
        let refused = Action::Rejected { at, by: None, incident: Some(IncidentId(7)), reason: RejectReason::NotOffered };
        assert_eq!(incident_event(5, &refused, &ctx()).is_some(), is_published(event_kind(&refused)));
        assert_eq!(incident_event(3, &a, &ctx()).is_some(), is_published(event_kind(&a)));
    }

    #[test]
    fn messages_are_written_with_their_fields_in_the_documented_order() {
        // The texts themselves, as docs/mqtt.md shows them (a reader of the broker's
        // traffic sees the head of every event first), and with JSON escaping intact.
        let at = Timestamp::parse_rfc3339("2024-03-01T08:00:01Z").unwrap();
        let a = Action::Offered { at, incident: IncidentId(7), staff: StaffId::parse("s1").unwrap(), eta: Duration::from_millis(90_500), expires_at: None };
        let mut c = ctx();
        c.notes = "Nøkkel \"blå\" boks".into();
        assert_eq!(
            offer_message(&a, &c).unwrap(),
            r#"{"type":"offer","incident_id":7,"offered_at":"2024-03-01T08:00:01.000Z","expires_at":null,"broadcast":true,"eta_secs":90.5,"alarm":{"alarm_id":"a-1","kind":"fall","priority":"critical","raised_at":"2024-03-01T08:00:00.000Z","text":"Falt på badet"},"resident":{"resident_id":"r-1","address":"Kyrkjevegen 3","position":{"lat":61.2,"lon":7.1},"notes":"Nøkkel \"blå\" boks"}}"#
        );
        assert_eq!(
            incident_event(3, &a, &c).unwrap(),
            r#"{"v":1,"seq":3,"incident_id":7,"municipality":"demo","at":"2024-03-01T08:00:01.000Z","type":"offered","staff_id":"s1","eta_secs":90.5,"expires_at":null,"broadcast":true}"#
        );
        let answered = Action::Answered {
            at,
            incident: IncidentId(7),
            by: Responder::Operator { centre: crate::core::CentreId::parse("c1").unwrap(), operator: crate::core::OperatorId::parse("op2").unwrap() },
            answer_time: Duration::from_secs(12),
        };
        assert_eq!(
            incident_event(4, &answered, &c).unwrap(),
            r#"{"v":1,"seq":4,"incident_id":7,"municipality":"demo","at":"2024-03-01T08:00:01.000Z","type":"answered","by":{"centre_id":"c1","operator_id":"op2"},"answer_secs":12.0}"#
        );
        let refused = Action::Rejected { at, by: None, incident: Some(IncidentId(7)), reason: RejectReason::NotOffered };
        let stored: Value = serde_json::from_str(&unpublished_event(5, &refused, IncidentId(7))).unwrap();
        assert_eq!(
            (stored["type"].as_str(), stored["seq"].as_i64(), stored["detail"].as_str()),
            (Some("rejected"), Some(5), Some(refused.to_string().as_str()))
        );
    }
    /// Every message the engine publishes, one of each kind, as text: the contract as
    /// docs/mqtt.md shows it, pinned field by field and in order.
    #[test]
    fn every_message_keeps_its_text() {
        use crate::core::{Actor, AlertKind, CentreId, OperatorId, Outcome};
        let at = Timestamp::parse_rfc3339("2024-03-01T08:00:01Z").unwrap();
        let inc = IncidentId(7);
        let (s1, op) = (StaffId::parse("s1").unwrap(), OperatorId::parse("op2").unwrap());
        let c = ctx();
        let actions = [
            Action::Raised {
                at,
                incident: inc,
                alarm: AlarmId::parse("a-1").unwrap(),
                resident: ResidentId::parse("r-1").unwrap(),
                municipality: MunicipalityId::parse("demo").unwrap(),
                model: ResponseModel::MobileGuardRoom,
                kind: AlarmKind::Fall,
                priority: Priority::Critical,
            },
            Action::Attached { at, incident: inc, alarm: AlarmId::parse("a-2").unwrap(), priority_raised_to: Some(Priority::High) },
            Action::Attached { at, incident: inc, alarm: AlarmId::parse("a-3").unwrap(), priority_raised_to: None },
            Action::Queued { at, incident: inc, centre: CentreId::parse("c1").unwrap() },
            Action::Dequeued { at, incident: inc, centre: CentreId::parse("c1").unwrap() },
            Action::Offered { at, incident: inc, staff: s1.clone(), eta: Duration::from_millis(90_500), expires_at: Some(at + Duration::from_secs(15)) },
            Action::Revoked { at, incident: inc, staff: s1.clone(), reason: RevokeReason::TakenByOther },
            Action::Broadcast { at, incident: inc },
            Action::ForwardedToBackup { at, incident: inc, backup: Backup::Centre(CentreId::parse("c2").unwrap()) },
            Action::ForwardedToBackup { at, incident: inc, backup: Backup::Team(MunicipalityId::parse("nabo").unwrap()) },
            Action::Alert { at, incident: inc, kind: AlertKind::NotAccepted, waiting: Duration::from_secs(61) },
            Action::AssignedByOperator { at, incident: inc, operator: op.clone(), staff: s1.clone() },
            Action::EscalatedByOperator { at, incident: inc, operator: op.clone() },
            Action::NoteAdded { at, incident: inc, by: Actor::Operator(op.clone()), note: "Dotter \"Kari\" kjem".into() },
            Action::NoteAdded { at, incident: inc, by: Actor::System, note: "Base unit back".into() },
            Action::SetAside { at, incident: inc, reason: "a fault".into() },
            Action::Answered { at, incident: inc, by: Responder::Staff(s1.clone()), answer_time: Duration::from_millis(12_250) },
            Action::ResolvedByCentre { at, incident: inc, operator: op.clone() },
            Action::ForwardedToHomeCare { at, incident: inc, operator: op.clone() },
            Action::Accepted { at, incident: inc, staff: s1.clone(), since_dispatch: Duration::from_secs(4) },
            Action::EnRoute { at, incident: inc, staff: s1.clone() },
            Action::OnSite { at, incident: inc, staff: s1.clone(), since_raised: Duration::from_secs(600) },
            Action::Closed { at, incident: inc, outcome: Outcome::Helped, note: Some("Hjelpt opp".into()) },
            Action::Closed { at, incident: inc, outcome: Outcome::FalseAlarm, note: None },
        ];
        let mut texts: Vec<String> = actions.iter().enumerate().map(|(i, a)| incident_event(i as i64, a, &c).unwrap()).collect();
        let refused = Action::Rejected { at, by: None, incident: Some(inc), reason: RejectReason::NotOffered };
        texts.push(unpublished_event(99, &refused, inc));
        texts.push(revoke_message(inc, RevokeReason::Expired, at));
        texts.push(confirmed_message(inc, &StaffReply::Accept, at));
        texts.push(refused_message(inc, &StaffReply::Close { outcome: Outcome::Helped, note: None }, &RejectReason::NotAssigned, at));
        let ids = RefusedIds {
            alarm: Some(AlarmId::parse("a-9").unwrap()),
            resident: Some(ResidentId::parse("r-9").unwrap()),
            municipality: Some(MunicipalityId::parse("demo").unwrap()),
        };
        texts.push(reject_message("vakt/v1/staff/s1/status", "payload_too_large", "1100000 bytes; the limit is 16384", at, &ids));
        texts.push(reject_message("vakt/v1/alarms/x", "unknown_municipality", "none", at, &RefusedIds::default()));
        expect_test::expect_file!["../../tests/snapshots/outbound_messages.txt"].assert_eq(&(texts.join("\n") + "\n"));
    }
}
