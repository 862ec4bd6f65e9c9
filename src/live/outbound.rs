//! The outbound half of the MQTT contract v1 (docs/mqtt.md): what the engine publishes.
//!
//! - `vakt/v1/staff/{staff_id}/offers`: offers, revokes, and the answer to every reply
//!   (`confirmed` or `refused` with a reason).
//! - `vakt/v1/incidents/{municipality}`: every incident state change.
//! - `vakt/v1/rejects`: every message refused, with the topic it came on and the reason.
//!
//! Pure functions from actions (plus what the driver remembers about the incident) to
//! JSON, so the shapes are tested without a broker.

use serde_json::{Value, json};

use crate::core::{
    Action, AlarmId, AlarmKind, Backup, IncidentId, MunicipalityId, Position, Priority, RejectReason, ResidentId, Responder, ResponseModel, RevokeReason,
    StaffId, StaffReply, Timestamp,
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

/// The incident event: `{"v":1,"seq","incident_id","municipality","at","type",...}`.
/// `None` for actions that are not about an incident's state (duplicates, rejects).
pub fn incident_event(seq: i64, action: &Action, ctx: &IncidentContext) -> Option<Value> {
    let incident = action.incident()?;
    let mut v = json!({
        "v": 1,
        "seq": seq,
        "incident_id": incident.0,
        "municipality": ctx.municipality.as_str(),
        "at": action.at().to_string(),
        "type": event_kind(action),
    });
    let extra = match action {
        Action::Raised { alarm, resident, model, kind, priority, .. } => json!({
            "alarm_id": alarm.as_str(), "resident_id": resident.as_str(), "model": model.as_str(), "kind": kind.as_str(), "priority": priority.to_string(),
            "raised_at": ctx.raised_at.to_string(), "position": ctx.position,
        }),
        Action::Attached { alarm, priority_raised_to, .. } => json!({ "alarm_id": alarm.as_str(), "priority_raised_to": priority_raised_to.map(|p| p.to_string()) }),
        Action::Queued { centre, .. } | Action::Dequeued { centre, .. } => json!({ "centre_id": centre.as_str() }),
        Action::Offered { staff, eta, expires_at, .. } => {
            json!({ "staff_id": staff.as_str(), "eta_secs": secs(*eta), "expires_at": expires_at.map(|t| t.to_string()), "broadcast": expires_at.is_none() })
        }
        Action::Revoked { staff, reason, .. } => json!({ "staff_id": staff.as_str(), "reason": revoke_reason(*reason) }),
        Action::Broadcast { .. } => json!({}),
        Action::ForwardedToBackup { backup, .. } => match backup {
            Backup::Centre(c) => json!({ "backup_centre": c.as_str() }),
            Backup::Team(t) => json!({ "backup_team": t.as_str() }),
        },
        Action::Alert { kind, waiting, .. } => json!({ "alert": format!("{kind:?}").to_lowercase(), "waiting_secs": secs(*waiting) }),
        Action::AssignedByOperator { operator, staff, .. } => json!({ "operator_id": operator.as_str(), "staff_id": staff.as_str() }),
        Action::EscalatedByOperator { operator, .. } => json!({ "operator_id": operator.as_str() }),
        Action::NoteAdded { by, note, .. } => json!({ "by": by.to_string(), "note": note }),
        Action::SetAside { reason, .. } => json!({ "reason": reason }),
        Action::Answered { by, answer_time, .. } => {
            let who = match by {
                Responder::Staff(s) => json!({ "staff_id": s.as_str() }),
                Responder::Operator { centre, operator } => json!({ "centre_id": centre.as_str(), "operator_id": operator.as_str() }),
            };
            json!({ "by": who, "answer_secs": secs(*answer_time) })
        }
        Action::ResolvedByCentre { operator, .. } | Action::ForwardedToHomeCare { operator, .. } => json!({ "operator_id": operator.as_str() }),
        Action::Accepted { staff, since_dispatch, .. } => json!({ "staff_id": staff.as_str(), "since_dispatch_secs": secs(*since_dispatch) }),
        Action::EnRoute { staff, .. } => json!({ "staff_id": staff.as_str() }),
        Action::OnSite { staff, since_raised, .. } => json!({ "staff_id": staff.as_str(), "since_raised_secs": secs(*since_raised) }),
        Action::Closed { outcome, note, .. } => json!({ "outcome": outcome.as_str(), "note": note }),
        Action::Rejected { .. } | Action::DuplicateIgnored { .. } => return None,
    };
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    Some(v)
}

/// The offer a staff member's app shows: everything needed to decide and to go.
pub fn offer_message(action: &Action, ctx: &IncidentContext) -> Option<Value> {
    let Action::Offered { at, incident, eta, expires_at, .. } = action else { return None };
    Some(json!({
        "type": "offer",
        "incident_id": incident.0,
        "offered_at": at.to_string(),
        "expires_at": expires_at.map(|t| t.to_string()),
        "broadcast": expires_at.is_none(),
        "eta_secs": secs(*eta),
        "alarm": {
            "alarm_id": ctx.alarm.as_str(),
            "kind": ctx.kind.as_str(),
            "priority": ctx.priority.to_string(),
            "raised_at": ctx.raised_at.to_string(),
            "text": ctx.text,
        },
        "resident": {
            "resident_id": ctx.resident.as_str(),
            "address": ctx.address,
            "position": ctx.position,
            "notes": ctx.notes,
        },
    }))
}

pub fn revoke_message(incident: IncidentId, reason: RevokeReason, at: Timestamp) -> Value {
    json!({ "type": "revoke", "incident_id": incident.0, "reason": revoke_reason(reason), "at": at.to_string() })
}

pub fn confirmed_message(incident: IncidentId, reply: &StaffReply, at: Timestamp) -> Value {
    json!({ "type": "confirmed", "incident_id": incident.0, "action": reply_name(reply), "at": at.to_string() })
}

pub fn refused_message(incident: IncidentId, reply: &StaffReply, reason: &RejectReason, at: Timestamp) -> Value {
    json!({ "type": "refused", "incident_id": incident.0, "action": reply_name(reply), "reason": reason.code(), "detail": reason.to_string(), "at": at.to_string() })
}

/// A refused message, for `vakt/v1/rejects`. A refused alarm carries its alarm and
/// resident ids where they could be read: it may still be a person who needs help.
pub fn reject_message(topic: &str, code: &str, detail: &str, at: Timestamp, ids: &RefusedIds) -> Value {
    let mut m = json!({ "topic": topic, "reason": code, "detail": detail, "at": at.to_string() });
    if let Some(a) = &ids.alarm {
        m["alarm_id"] = json!(a.as_str());
    }
    if let Some(r) = &ids.resident {
        m["resident_id"] = json!(r.as_str());
    }
    m
}

/// What could be read of a refused alarm's ids (none for other messages).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefusedIds {
    pub alarm: Option<AlarmId>,
    pub resident: Option<ResidentId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rejects_are_published_as_json_with_the_ids_of_a_refused_alarm() {
        let at = Timestamp::parse_rfc3339("2024-03-01T08:00:00Z").unwrap();
        let msg = reject_message("vakt/v1/alarms/sogndal", "unknown_kind", "\"earthquake\" is not an alarm kind", at, &RefusedIds::default());
        assert_eq!(msg, json!({ "topic": "vakt/v1/alarms/sogndal", "reason": "unknown_kind", "detail": "\"earthquake\" is not an alarm kind", "at": "2024-03-01T08:00:00.000Z" }));
        let ids = RefusedIds { alarm: Some(AlarmId::parse("gw3-17").unwrap()), resident: Some(ResidentId::parse("r-7").unwrap()) };
        let msg = reject_message("vakt/v1/alarms/sogndal", "unknown_resident", "no resident r-7", at, &ids);
        assert_eq!((msg["alarm_id"].as_str(), msg["resident_id"].as_str()), (Some("gw3-17"), Some("r-7")));
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
        let a = Action::Offered { at, incident: IncidentId(7), staff: StaffId::parse("s1").unwrap(), eta: Duration::from_secs(90), expires_at: Some(at + Duration::from_secs(15)) };
        let m = offer_message(&a, &ctx()).unwrap();
        assert_eq!(m["incident_id"], 7);
        assert_eq!(m["eta_secs"], 90.0);
        assert_eq!(m["expires_at"], "2024-03-01T08:00:16.000Z");
        assert_eq!(m["resident"]["address"], "Kyrkjevegen 3");
        assert_eq!(m["resident"]["notes"], "Nøkkelboks 1234");
        assert_eq!(m["alarm"]["kind"], "fall");
        let e = incident_event(3, &a, &ctx()).unwrap();
        assert_eq!((e["type"].as_str(), e["seq"].as_i64(), e["staff_id"].as_str()), (Some("offered"), Some(3), Some("s1")));
        assert!(incident_event(4, &Action::DuplicateIgnored { at, alarm: AlarmId::parse("a").unwrap() }, &ctx()).is_none());
        let refused = Action::Rejected { at, by: None, incident: Some(IncidentId(7)), reason: RejectReason::NotOffered };
        assert_eq!(incident_event(5, &refused, &ctx()).is_some(), is_published(event_kind(&refused)));
        assert_eq!(incident_event(3, &a, &ctx()).is_some(), is_published(event_kind(&a)));
    }
}
