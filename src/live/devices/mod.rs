//! Real alarm devices: the device register, the SIA DC-09 and SCAIP receivers, and
//! what they hand the engine task.
//!
//! A receiver reads a device's message, looks its account up in the register, and
//! hands the engine task a [`DeviceInput`]; the device's acknowledgement (DC-09 `ACK`,
//! SCAIP `snu` 0) goes out only when the engine task answers [`Answer::Stored`], after
//! the step's commit, as an MQTT alarm's PUBACK does. A receiver that hears nothing
//! within [`DevicesConfig::answer_timeout`] (the store is down) sends no `ACK` (DC-09)
//! or `snu` 5, not treated (SCAIP): the device sends again, and the alarm id (from the
//! device's account, sequence or reference) makes the repeat one alarm.
//!
//! The files: `register.rs` (the register and its CSV), `dc09.rs` and `scaip.rs` (the
//! protocols, pure), `sip.rs` (the little SIP SCAIP needs), `receive.rs` (the listeners,
//! their bounds and answers), `supervision.rs` (devices that fall silent).

pub mod dc09;
mod receive;
pub mod register;
pub mod scaip;
pub mod sip;
pub mod supervision;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

pub use receive::{Receivers, spawn_receivers};
pub use register::{Device, Protocol, Register};

use crate::core::{AlarmKind, Position, Priority, Timestamp};
use crate::live::errors::ErrorCode;

/// How the receivers work (`[dc09]`, `[scaip]`, `[devices]` in the configuration).
#[derive(Debug, Clone)]
pub struct DevicesConfig {
    /// `[dc09] listen`: TCP and UDP; `None`: off.
    pub dc09_listen: Option<SocketAddr>,
    /// `[scaip] listen`: SIP over UDP and TCP; `None`: off.
    pub scaip_listen: Option<SocketAddr>,
    /// `[scaip] tls_listen`: SIP over TLS; `None`: off.
    pub scaip_tls: Option<ScaipTls>,
    /// DC-09's timestamp window: how old, and how far ahead, a frame's time may be.
    pub max_age: Duration,
    pub max_ahead: Duration,
    /// How long a receiver waits for the engine task to store a message before it
    /// answers that it is not treated (SCAIP) or leaves it unanswered (DC-09).
    pub answer_timeout: Duration,
    /// Connections one address may hold open at once, per protocol.
    pub max_connections_per_address: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Messages one address may send per second (a burst of ten times that is allowed).
    pub max_messages_per_second: u32,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            dc09_listen: None,
            scaip_listen: None,
            scaip_tls: None,
            max_age: Duration::from_secs(40),
            max_ahead: Duration::from_secs(20),
            answer_timeout: Duration::from_secs(5),
            max_connections_per_address: 16,
            idle_timeout: Duration::from_secs(300),
            max_messages_per_second: 50,
        }
    }
}

impl DevicesConfig {
    /// From the configuration (`[dc09]`, `[scaip]`, `[devices]`: docs/config.md).
    pub fn from_settings(settings: &crate::settings::Settings) -> Result<DevicesConfig, crate::core::ConfigError> {
        let addresses = settings.device_addresses()?;
        let d = &settings.devices;
        Ok(DevicesConfig {
            dc09_listen: addresses.dc09,
            scaip_listen: addresses.scaip,
            scaip_tls: addresses.scaip_tls.map(|(listen, certificate, key)| ScaipTls { listen, certificate: certificate.into(), private_key: key.into() }),
            max_age: Duration::from_secs(settings.dc09.max_age_secs),
            max_ahead: Duration::from_secs(settings.dc09.max_ahead_secs),
            answer_timeout: Duration::from_secs(d.answer_timeout_secs),
            max_connections_per_address: d.max_connections_per_address,
            idle_timeout: Duration::from_secs(d.idle_timeout_secs.max(1)),
            max_messages_per_second: d.max_messages_per_second,
        })
    }
}

/// SIP over TLS: where, and the server's certificate chain and key (PEM files).
#[derive(Debug, Clone)]
pub struct ScaipTls {
    pub listen: SocketAddr,
    pub certificate: std::path::PathBuf,
    pub private_key: std::path::PathBuf,
}

impl ScaipTls {
    /// The paths, relative to `dir` (the configuration file's) where they are relative.
    pub fn relative_to(mut self, dir: Option<&std::path::Path>) -> ScaipTls {
        if let Some(dir) = dir {
            self.certificate = dir.join(&self.certificate);
            self.private_key = dir.join(&self.private_key);
        }
        self
    }
}

/// What a device reported, as the engine takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reported {
    /// An alarm. `key`: what makes it this alarm and not another from the same device
    /// (DC-09: sequence and event; SCAIP: the reference), so that a resend is one alarm.
    Alarm { key: String, kind: AlarmKind, priority: Option<Priority>, text: String, position: Option<Position>, sent_at: Option<Timestamp> },
    /// The resident cancels ("a mistake").
    Cancel,
    /// A sign of life only: a heartbeat, link test, periodic test, restore.
    Heard(&'static str),
}

/// The engine task's answer to a report, after the step's commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Stored (or stored before: a resend).
    Stored,
    /// Stored as refused, for this reason (an unknown resident, say): the device is
    /// told, where its protocol can say so, and does not send it again.
    Refused { code: ErrorCode, detail: String },
}

/// What a receiver hands the engine task.
#[derive(Debug)]
pub enum DeviceInput {
    /// A registered device's message, to be answered after the commit.
    Report { device: Arc<Device>, reported: Reported, answer: oneshot::Sender<Answer> },
    /// A message refused before it reached the engine (an unknown account, a bad CRC,
    /// a wrong key, ...): counted, listed on the dashboards, in the audit trail.
    Refused { protocol: Protocol, peer: SocketAddr, device: Option<Arc<Device>>, code: ErrorCode, detail: String },
}

/// The pseudo-topic a device's message is known by in logs, rejects and the audit
/// trail: `devices/{protocol}/{device_id}`, or the sender's address when no device
/// in the register is known.
pub fn topic(protocol: Protocol, device: Option<&Device>, peer: SocketAddr) -> String {
    match device {
        Some(d) => d.topic(),
        None => format!("{PREFIX}{}/{peer}", protocol.as_str()),
    }
}

impl Device {
    /// Its pseudo-topic (see [`topic`]).
    pub fn topic(&self) -> String {
        format!("{PREFIX}{}/{}", self.protocol.as_str(), self.id)
    }
}

/// The alarm id of a device's alarm: protocol, device and the message's own key (at
/// most 64 characters: a device id has at most 40, a key at most 17).
pub fn alarm_id(device: &Device, key: &str) -> String {
    format!("{}:{}:{key}", device.protocol.as_str(), device.id)
}

/// The alarm id of a silence: the device and when it was last heard (one per silence).
pub fn silence_alarm_id(device: &str, last_heard: Timestamp) -> String {
    format!("silent:{device}:{}", last_heard.as_millis())
}

/// The pseudo-topics' common start.
pub const PREFIX: &str = "devices/";
