//! The live shell around the core (issue 3). So far: the MQTT wire contract's inbound
//! messages and rejects (`wire`). The driver, broker, store, outbox, metrics and
//! recovery are not built yet.

pub mod wire;
