//! # orderly-shared
//!
//! The one business core that every Orderly host (local runner, AWS Lambda,
//! Spin) runs. It is split by what changes for which reason:
//!
//! - [`domain`]: the rules of a shop — SKUs, money, the order state machine,
//!   all-or-nothing stock reservation — in plain Rust with no I/O at all.
//! - [`events`]: the versioned event types that cross queues, and the
//!   CloudEvents-like envelope they travel in.
//! - [`ports`]: the traits the core talks to (stores, queues, clock, ids,
//!   notification provider). Hosts choose adapters; the core never knows which.
//! - [`messaging`]: host-agnostic plumbing for at-least-once delivery — the
//!   outbox relay and batch processing with partial failure.
//! - [`http`]: the HTTP edge every host shares (problem+json, JWT, request ids,
//!   API versioning), so a rule like "missing `exp` is a 401" is written once.
//! - [`adapters`]: implementations of the ports, behind cargo features so that
//!   the default build has no database or SDK and compiles for `wasm32-wasip2`.

pub mod adapters;
pub mod api;
pub mod composition;
#[cfg(feature = "contract")]
pub mod contract;
pub mod domain;
pub mod events;
pub mod hosts;
pub mod http;
pub mod messaging;
pub mod ports;
pub mod resilience;
pub mod settings;
pub mod trace;
