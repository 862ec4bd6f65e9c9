//! What comes in from outside: MQTT messages (parsed by the wire contract, applied, or
//! refused with a reason) and directory rows; and the refused alarms the dashboards list.

use tracing::warn;

use super::{Culprit, Driver, Failure, Mode, refusal, staff_audit};
use crate::core::{Action, IncidentId, Input, RejectReason, StaffId, Timestamp};
use crate::live::accounts::Role;
use crate::live::directory::DirectoryChanges;
use crate::live::errors::ErrorCode;
use crate::live::gateways;
use crate::live::mqtt::Inbound;
use crate::live::outbound::{self, ALARMS_PREFIX, RefusedIds};
use crate::live::panic_text;
use crate::live::store::{AuditRow, SYSTEM_ROLE};
use crate::live::wire::{self, WireReject, parse_topic};

/// How many refused alarms the dashboards can look back on.
pub const REFUSED_KEPT: usize = 200;

/// A refused alarm's line in the audit trail: by the system, not a user.
pub const REFUSED_BY: &str = "(vakt)";

pub const REFUSED_ACTION: &str = "refused_alarm";

/// An alarm vakt refused: the municipality of the topic it came on, and the message
/// published on `vakt/v1/rejects` for it.
#[derive(Debug, Clone)]
pub struct RefusedAlarm {
    pub municipality: String,
    pub message: serde_json::Value,
}

impl Driver {
    /// Applies directory entries (imports, seeds) that differ from the engine's view.
    /// Returns how many changed. A row that made the engine panic before is left out
    /// until it changes; one that makes it panic now is the driver's `Failure` (see
    /// [`Driver::set_aside_failure`]).
    pub fn apply_directory(&mut self, changes: DirectoryChanges) -> usize {
        let registered = changes.devices.map_or(0, |d| self.apply_register(d));
        let residents = changes
            .residents
            .into_iter()
            .filter(|r| self.engine.resident(&r.id) != Some(r))
            .map(|r| (format!("resident {}", r.id), r.id.to_string(), Input::UpsertResident(r)));
        let staff = changes
            .staff
            .into_iter()
            .filter(|s| self.engine.staff_member(&s.id) != Some(s))
            .map(|s| (format!("staff {}", s.id), s.id.to_string(), Input::UpsertStaff(s)));
        let rows: Vec<_> = residents.chain(staff).collect();
        let mut changed = 0;
        for (who, id, input) in rows {
            if self.failed {
                break;
            }
            let record = serde_json::to_string(&input).expect("inputs serialize");
            if self.set_aside.directory_rows.contains(&record) {
                if self.set_aside.directory_rows_met.insert(who.clone()) {
                    warn!(%who, "a directory row that made the engine panic is left out until it changes (import it again, corrected)");
                }
                continue;
            }
            self.set_aside.directory_rows_met.remove(&who);
            let fault = self.faults.directory.contains(&id);
            let now = self.now();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                assert!(!fault, "fault injected by VAKT_FAULT_PANIC_ON_DIRECTORY");
                self.apply_recorded(now, input, record.clone(), None)
            }));
            if let Err(panic) = ran {
                self.fail(Failure { why: panic_text(&*panic), culprit: Culprit::Directory { who, record } });
                break;
            }
            changed += 1;
        }
        self.metrics.directory_rows_set_aside.set(self.set_aside.directory_rows_met.len() as i64);
        changed + registered
    }

    /// One inbound MQTT message: parsed by the wire contract, applied, or refused. Should
    /// it (or a timer due before it) make the engine panic, the driver holds a
    /// `Failure` (see [`Driver::failure`]) and takes no more input.
    pub fn on_message(&mut self, message: &Inbound) {
        let now = self.now();
        self.fire_due(now);
        if self.failed {
            return;
        }
        let publish = &message.publish;
        let topic = publish.topic.as_str();
        if let Some(size) = message.oversize {
            // Its bytes are gone (the client task dropped them): refused for its size alone.
            let detail = format!("{size} bytes; the limit is {}", self.config.limits.max_payload_bytes);
            return self.refuse(now, topic, &[], WireReject { code: ErrorCode::PayloadTooLarge, detail });
        }
        if let Some(rest) = topic.strip_prefix(gateways::PREFIX) {
            return self.on_gateway(now, topic, rest, &publish.payload);
        }
        match parse_topic(topic, &publish.payload, now, &self.config.limits) {
            Ok(input) => self.take_input(now, topic, &publish.payload, input),
            Err(reject) => self.refuse(now, topic, &publish.payload, reject),
        }
    }

    /// Applies what an inbound message (`payload`, on `topic`) said: counted when it is
    /// an alarm, audited when it is a staff member's. A panic is the driver's `Failure`,
    /// with the message as its cause.
    pub(super) fn take_input(&mut self, now: Timestamp, topic: &str, payload: &[u8], input: Input) {
        let mut fault = false;
        let mut alarm_ids = None;
        if let Input::Alarm(a) = &input {
            let ids = RefusedIds { alarm: Some(a.id.clone()), resident: Some(a.resident.clone()), municipality: None };
            if !self.set_aside.alarms.is_empty() && self.set_aside.alarms.contains(&(a.id.to_string(), a.resident.to_string())) {
                warn!(topic, alarm_id = %a.id, resident_id = %a.resident, "an alarm that made the engine fail before is refused, not taken again");
                let detail =
                    "this alarm made the engine fail before (a fault in vakt), so it is refused rather than taken again; handle it by hand, and report it";
                return self.reject(now, topic, "unreadable", detail, &ids);
            }
            alarm_ids = Some(ids);
            // A label takes configured values only: the topic is anyone's to make up, and
            // every new value would be a new series for ever (`metrics::UNKNOWN`).
            let label =
                if self.engine.config().municipality_index(&a.municipality).is_some() { a.municipality.as_str() } else { crate::live::metrics::UNKNOWN };
            self.metrics.alarms_received.with_label_values(&[label]).inc();
            if let Some(ahead) = wire::clock_ahead(a, now, &self.config.limits) {
                warn!(alarm_id = %a.id, municipality = %a.municipality, raised_at = %a.raised_at, ahead_s = ahead.as_secs(), "the alarm's device clock is fast; the alarm is taken at its arrival");
                self.metrics.alarms_clock_ahead.with_label_values(&[label]).inc();
            }
            fault = self.faults.alarm.iter().any(|f| f == a.id.as_str());
        }
        let audited = match &input {
            Input::StaffReply { staff, .. } | Input::StaffOnDuty { staff, .. } | Input::StaffOffDuty { staff } => {
                Some((staff.to_string(), staff_audit(&input)))
            }
            _ => None,
        };
        if audited.is_some() {
            self.capture = Some(Vec::new());
        }
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert!(!fault, "fault injected by VAKT_FAULT_PANIC_ON_ALARM");
            self.apply(Mode::Live, now, input, Some(topic))
        }));
        if let (Some((staff, audit)), Ok(())) = (audited, &applied) {
            let actions = self.capture.take().unwrap_or_default();
            self.audit_staff_message(now, staff, audit, &actions);
        }
        if let Err(panic) = applied {
            let ids = alarm_ids.unwrap_or_else(|| self.refused_ids(topic, payload));
            self.fail(Failure { why: panic_text(&*panic), culprit: Culprit::Message { topic: topic.to_owned(), ids } });
        }
    }

    /// A message the wire refused: logged, and refused on the rejects topic with the ids
    /// that can be read from it.
    pub(super) fn refuse(&mut self, now: Timestamp, topic: &str, payload: &[u8], reject: WireReject) {
        warn!(topic, reason = reject.code.as_str(), detail = %reject.detail, "message rejected");
        let mut ids = self.refused_ids(topic, payload);
        if reject.code == ErrorCode::PayloadTooLarge {
            // A staff member's app sending what vakt cannot read: listed for their municipality.
            let staff = match topic.split('/').collect::<Vec<_>>().as_slice() {
                ["vakt", "v1", "staff", id, _] => StaffId::parse(id).ok(),
                _ => None,
            };
            ids.municipality = staff.and_then(|id| self.engine.staff_member(&id)).map(|s| s.municipality.clone());
        }
        self.reject(now, topic, reject.code.as_str(), &reject.detail, &ids);
    }

    /// A staff member's reply or duty change over MQTT: an audit line, as from the web
    /// app (by the staff id, the broker's login). Positions are not audited from MQTT: an
    /// app may send one every few seconds.
    pub(super) fn audit_staff_message(&mut self, now: Timestamp, staff: String, audited: (&'static str, Option<IncidentId>, String), actions: &[Action]) {
        let (name, incident, detail) = audited;
        let outcome = refusal(actions).map_or("ok", RejectReason::code);
        let row = AuditRow {
            at_ms: now.as_millis(),
            username: staff,
            role: Role::Staff.as_str(),
            action: name.to_owned(),
            incident: incident.map(|i| i.0 as i64),
            detail,
            outcome: outcome.to_owned(),
        };
        self.batch.audit.push(row);
    }

    /// The ids a refused message's reject carries: an alarm's, where they can be read.
    pub(super) fn refused_ids(&self, topic: &str, payload: &[u8]) -> RefusedIds {
        if !topic.starts_with(ALARMS_PREFIX) {
            return RefusedIds::default();
        }
        let (alarm, resident) = wire::readable_alarm_ids(payload, &self.config.limits);
        RefusedIds { alarm, resident, municipality: None }
    }

    pub(super) fn reject(&mut self, now: Timestamp, topic: &str, code: &'static str, detail: &str, ids: &RefusedIds) {
        self.metrics.rejected.with_label_values(&[code]).inc();
        let msg = outbound::reject_message(topic, code, detail, now, ids);
        let municipality = ids.municipality.as_ref().map(|m| m.as_str());
        if let Some(m) = outbound::listed_under(topic, code, ids.alarm.is_some(), municipality).map(str::to_owned) {
            // In the audit trail too, with the batch: the dashboards' list survives a
            // restart (which a message that made the engine fail brings about itself).
            self.audit_by_vakt(now, REFUSED_ACTION, None, msg.clone(), code);
            let kept = serde_json::from_str(&msg).expect("a reject is JSON");
            self.remember_refused(&m, kept);
        }
        self.push_out(outbound::REJECTS_TOPIC.to_owned(), msg, now);
    }

    /// An audit line of vakt's own (by `(vakt)`, role `system`), stored with the batch.
    pub(super) fn audit_by_vakt(&mut self, now: Timestamp, action: &str, incident: Option<IncidentId>, detail: String, outcome: &str) {
        let row = AuditRow {
            at_ms: now.as_millis(),
            username: REFUSED_BY.to_owned(),
            role: SYSTEM_ROLE,
            action: action.to_owned(),
            incident: incident.map(|i| i.0 as i64),
            detail,
            outcome: outcome.to_owned(),
        };
        self.batch.audit.push(row);
    }

    pub(super) fn remember_refused(&mut self, municipality: &str, message: serde_json::Value) {
        if self.refused_alarms.len() == REFUSED_KEPT {
            self.refused_alarms.pop_front();
        }
        self.refused_alarms.push_back(RefusedAlarm { municipality: municipality.to_owned(), message });
    }

    /// The latest refused alarms, newest first (see [`REFUSED_KEPT`]; read back from the
    /// audit trail at start).
    pub fn refused_alarms(&self) -> impl Iterator<Item = &RefusedAlarm> {
        self.refused_alarms.iter().rev()
    }
}
