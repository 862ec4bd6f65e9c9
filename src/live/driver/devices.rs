//! Alarm devices' messages (from the DC-09 and SCAIP receivers), the register they are
//! read by, and supervised devices that fall silent.

use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::Driver;
use crate::core::{Alarm, AlarmId, AlarmKind, Input, Timestamp};
use crate::live::devices::supervision::{Contact, Heard, Supervision};
use crate::live::devices::{self, Answer, Device, DeviceInput, Register, Reported};
use crate::live::errors::ErrorCode;
use crate::live::outbound::RefusedIds;

/// The register as the receivers read it, and the devices' supervision.
pub(super) struct DeviceState {
    pub(super) register: Arc<Register>,
    pub(super) register_tx: tokio::sync::watch::Sender<Arc<Register>>,
    pub(super) supervision: Supervision,
}

impl Default for DeviceState {
    fn default() -> Self {
        DeviceState { register: Arc::default(), register_tx: tokio::sync::watch::channel(Arc::default()).0, supervision: Supervision::default() }
    }
}

/// A device as the dashboards list it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceView {
    pub device_id: String,
    pub protocol: &'static str,
    pub account: String,
    pub resident_id: String,
    pub municipality: Option<String>,
    pub heartbeat_secs: Option<u64>,
    /// Never heard since it was registered (or since supervision began): `None`.
    pub last_heard: Option<String>,
    /// Silent since then (its `heartbeat_missed` alarm raised).
    pub silent_since: Option<String>,
}

impl Driver {
    /// The register, as the receivers read it: it follows every import.
    pub fn register(&self) -> tokio::sync::watch::Receiver<Arc<Register>> {
        self.devices.register_tx.subscribe()
    }

    /// A new register (an import): the receivers' copy and every deadline follow.
    pub(super) fn apply_register(&mut self, devices: Vec<Device>) -> usize {
        let register = Register::new(devices);
        let changed = register.len();
        self.devices.supervision.reschedule(&register);
        self.devices.register = Arc::new(register);
        self.devices.register_tx.send_replace(self.devices.register.clone());
        self.metrics.devices_registered.set(changed as i64);
        self.metrics.devices_silent.set(self.devices.supervision.silent_count() as i64);
        changed
    }

    /// The stored contacts, at start (see `devices::supervision`).
    pub(super) fn start_supervision(&mut self, contacts: std::collections::HashMap<String, Contact>, started: Timestamp) {
        self.devices.supervision = Supervision::new(contacts, &self.devices.register, self.config.supervision_grace, started);
    }

    /// One device input: a refusal is listed (no answer); a report is applied, and the
    /// answer is the caller's to send after the step's commit. `None` too when the
    /// engine has failed: the answer's sender is dropped, and the device hears nothing.
    pub fn on_device(&mut self, input: DeviceInput) -> Option<(oneshot::Sender<Answer>, Answer)> {
        let now = self.now();
        self.fire_due(now);
        if self.failed {
            return None;
        }
        match input {
            DeviceInput::Refused { protocol, peer, device, code, detail } => {
                // Counted by the receiver, which lists only some (`receive::LIST_EVERY`).
                let topic = devices::topic(protocol, device.as_deref(), peer);
                let municipality = device.as_ref().and_then(|d| self.engine.resident(&d.resident)).map(|r| r.municipality.clone());
                let ids = RefusedIds { alarm: None, resident: device.map(|d| d.resident.clone()), municipality };
                warn!(topic, reason = code.as_str(), %detail, "device message refused");
                self.reject(now, &topic, code.as_str(), &detail, &ids);
                None
            }
            DeviceInput::Report { device, reported, answer } => {
                let outcome = self.device_report(now, &device, reported);
                let label = match &outcome {
                    Answer::Stored => "stored",
                    Answer::Refused { code, .. } => code.as_str(),
                };
                self.metrics.device_messages.with_label_values(&[device.protocol.as_str(), label]).inc();
                Some((answer, outcome))
            }
        }
    }

    fn device_report(&mut self, now: Timestamp, device: &Device, reported: Reported) -> Answer {
        let topic = device.topic();
        self.device_heard(now, device, &topic);
        match reported {
            Reported::Heard(_) => Answer::Stored,
            Reported::Cancel => {
                if self.engine.open_incident_of(&device.resident).is_some() {
                    self.take_input(now, &topic, &[], Input::Cancel { resident: device.resident.clone() });
                }
                Answer::Stored
            }
            Reported::Alarm { key, kind, priority, text, position, sent_at } => {
                // Device ids and message keys are id-safe and short (the register and the
                // receivers see to it); should one not be, the device is told, not vakt stopped.
                let Ok(id) = AlarmId::parse(&devices::alarm_id(device, &key)) else {
                    return Answer::Refused { code: ErrorCode::Unsupported, detail: format!("no alarm id can be made of device {} and {key:?}", device.id) };
                };
                // Only an alarm needs its resident's municipality (not each heartbeat).
                let Some(municipality) = self.engine.resident(&device.resident).map(|r| r.municipality.clone()) else {
                    let detail = format!("device {} belongs to resident {}, who is not in the directory", device.id, device.resident);
                    // Listed for everyone: nobody's municipality can be read.
                    let ids = RefusedIds { alarm: Some(id), resident: Some(device.resident.clone()), municipality: None };
                    self.reject(now, &topic, ErrorCode::UnknownResident.as_str(), &detail, &ids);
                    return Answer::Refused { code: ErrorCode::UnknownResident, detail };
                };
                let text = crate::core::AlarmText::parse(&text).ok();
                let alarm = Alarm { id, resident: device.resident.clone(), municipality, kind, priority, raised_at: sent_at.unwrap_or(now), position, text };
                self.take_alarm(now, &topic, alarm)
            }
        }
    }

    /// An alarm from a device or from supervision, taken as any alarm is: stored, or
    /// refused by the engine (with the reason the device is told).
    fn take_alarm(&mut self, now: Timestamp, topic: &str, alarm: Alarm) -> Answer {
        self.capture = Some(Vec::new());
        self.take_input(now, topic, &[], Input::Alarm(alarm));
        let actions = self.capture.take().unwrap_or_default();
        match super::refusal(&actions) {
            Some(reason) => Answer::Refused { code: ErrorCode::from(reason), detail: reason.to_string() },
            None => Answer::Stored,
        }
    }

    /// A device was heard: its contact is stored with the step; one that had fallen
    /// silent is back (noted on its silence's incident, if still open, and in the audit trail).
    fn device_heard(&mut self, now: Timestamp, device: &Device, topic: &str) {
        let (store, change) = self.devices.supervision.heard(&device.id, device.heartbeat, now);
        if let Some(contact) = store {
            self.batch.device_contact.insert(device.id.clone(), contact.into());
        }
        if let Heard::Back { silent_since } = change {
            info!(device = %device.id, "a silent device is heard again");
            self.audit_by_vakt(now, "device_back", None, format!("device {} heard again (silent since {silent_since})", device.id), "ok");
            let alarm = devices::silence_alarm_id(&device.id, silent_since);
            let open = self.contexts.iter().find(|(_, c)| c.alarm.as_str() == alarm && c.resident == device.resident).map(|(id, _)| *id);
            if let Some(incident) = open {
                let note = format!("Device {} is heard again: its alarms can come through", device.id);
                self.take_input(now, topic, &[], Input::SystemNote { incident, note });
            }
            self.metrics.devices_silent.set(self.devices.supervision.silent_count() as i64);
        }
    }

    /// Supervised devices whose deadline passed: each silence's `heartbeat_missed`
    /// alarm for the device's resident, and the silence stored.
    pub(super) fn raise_silences(&mut self, now: Timestamp) {
        let silent = self.devices.supervision.take_due(now);
        if silent.is_empty() {
            return;
        }
        for (id, contact) in silent {
            self.batch.device_contact.insert(id.clone(), contact.into());
            let Some(device) = self.devices.register.get(&id).cloned() else { continue };
            let Some(municipality) = self.engine.resident(&device.resident).map(|r| r.municipality.clone()) else {
                warn!(device = %id, resident = %device.resident, "a supervised device is silent, and its resident is not in the directory: no alarm");
                continue;
            };
            warn!(device = %id, last_heard = %contact.last_heard, "a supervised device is silent: its resident's heartbeat_missed alarm goes to the engine");
            let alarm = Alarm {
                id: AlarmId::parse(&devices::silence_alarm_id(&id, contact.last_heard)).expect("device ids are id-safe and short"),
                resident: device.resident.clone(),
                municipality,
                kind: AlarmKind::HeartbeatMissed,
                priority: None,
                raised_at: now,
                position: None,
                text: crate::core::AlarmText::parse(&format!(
                    "Device {id} ({}) not heard since {}: expected every {} s",
                    device.protocol,
                    contact.last_heard,
                    device.heartbeat.map_or(0, |h| h.as_secs())
                ))
                .ok(),
            };
            self.take_alarm(now, &device.topic(), alarm);
            if self.failed {
                return;
            }
        }
        self.metrics.devices_silent.set(self.devices.supervision.silent_count() as i64);
    }

    pub(super) fn next_silence(&self) -> Option<Timestamp> {
        self.devices.supervision.next_due()
    }

    /// Every registered device with its last contact, for the dashboards.
    pub fn device_views(&self) -> Vec<DeviceView> {
        let mut out: Vec<DeviceView> = self
            .devices
            .register
            .iter()
            .map(|d| {
                let contact = self.devices.supervision.contact(&d.id);
                DeviceView {
                    device_id: d.id.clone(),
                    protocol: d.protocol.as_str(),
                    account: d.account.clone(),
                    resident_id: d.resident.to_string(),
                    municipality: self.engine.resident(&d.resident).map(|r| r.municipality.to_string()),
                    heartbeat_secs: d.heartbeat.map(|h| h.as_secs()),
                    last_heard: contact.map(|c| c.last_heard.to_string()),
                    silent_since: contact.and_then(|c| c.silent_since).map(|t| t.to_string()),
                }
            })
            .collect();
        out.sort_by(|a, b| (a.silent_since.is_none(), &a.device_id).cmp(&(b.silent_since.is_none(), &b.device_id)));
        out
    }
}
