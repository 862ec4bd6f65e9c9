//! vakt: a welfare-technology alarm response engine.
//!
//! - [`core`]: the pure engine (routing, escalation, answering, KPIs) for all four
//!   response models. No I/O, no clock.
//! - [`settings`]: configuration files (TOML) → a validated [`core::EngineConfig`].
//! - [`demo`]: a scripted evening through the core, for `vakt demo`.
//!
//! See ARCHITECTURE.md for the map and the invariants.

pub mod core;
pub mod demo;
pub mod live;
pub mod settings;
pub mod sim;
