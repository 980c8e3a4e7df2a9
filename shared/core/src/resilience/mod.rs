//! Resilience patterns as pure state machines.
//!
//! The rules (when a breaker opens, how a token bucket refills) are plain
//! functions of a state and a clock, so they are unit-tested exhaustively and
//! identical on every host. Where that state lives — SQLite locally, DynamoDB
//! on Lambda, so that every instance sees the same breaker and the same rate
//! limit — is a port (`ports::BreakerStore`, `ports::RateLimiter`).
//!
//! [`conflict`] is the retry loop of optimistic concurrency that every use
//! case with a conditional write runs.

pub mod breaker;
pub mod conflict;
pub mod rate_limit;
