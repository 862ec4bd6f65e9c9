//! One integration-test binary (rust-analyzer's advice: one link step, not many).

mod api;
mod browser;
mod cli;
mod core_is_pure;
mod harness;
mod live;
mod properties;
mod simulate;
mod snapshot;
mod traces;
