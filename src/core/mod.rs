//! The pure core: every rule of alarm routing, escalation and answering, for all four
//! response models, as a deterministic state machine.
//!
//! Invariant (checked by `tests/it/core_is_pure.rs`): nothing in this module does I/O,
//! reads a clock or draws ambient randomness. Time and inputs are arguments, effects
//! are returned as [`Action`]s.

pub mod action;
pub mod alarm;
mod centre_queue;
pub mod config;
pub mod engine;
pub mod geo;
pub mod histogram;
pub mod ids;
pub mod incident;
pub mod input;
pub mod kpi;
mod ladder;
pub mod people;
mod routing;
pub mod snapshot;
pub mod text;
pub mod time;
pub mod view;

pub use action::{Action, Actor, AlertKind, RejectReason, Responder, RevokeReason};
pub use alarm::{Alarm, AlarmKind, AlarmText, Priority};
pub use config::{
    Backup, CentreConfig, CentreKind, ConfigError, DrivingTime, EngineConfig, EngineConfigParts, KindRule, LadderConfig, MunicipalityConfig, ResponseModel,
};
pub use engine::Engine;
pub use geo::{Position, TravelModel};
pub use ids::{AlarmId, CentreId, GatewayId, IncidentId, MunicipalityId, OperatorId, ResidentId, StaffId};
pub use incident::Stage;
pub use input::{Input, Outcome, StaffReply};
pub use kpi::{KpiCollector, Kpis};
pub use people::{Resident, Role, Roles, Staff};
pub use snapshot::{SeenEntry, Snapshot, StaffSnapshot};
pub use time::Timestamp;
pub use view::{IncidentView, StaffView};
