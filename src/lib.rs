//! # The local runner
//!
//! All four Orderly functions in one process, on the embedded default:
//! SQLite (one durable file) for every store and for the queues. It is a
//! *host*, like the Lambda and Spin ones: it reads the settings, builds the
//! embedded backend, lets each function's crate wire itself from it (the
//! same `wire` Lambda and Spin call), serves the routes and runs the
//! consumers. No business rule lives here.
//!
//! ```text
//!  HTTP ──► order-intake ──┐ (order + order.placed.v1, one transaction)
//!                          ▼
//!                       queues: inventory · notification · analytics · order-intake
//!                                  │            │              │            │
//!                           reserve/reject   notify       read models   confirm/reject
//! ```
//!
//! The queues live in the same SQLite file as the state, so an event is
//! enqueued in the transaction of the change it reports
//! (`SqliteStore::publishing_at_commit`): the outbox and its relay, which
//! the Lambda and Spin hosts need, have nothing to carry here; the relay
//! still runs, for rows an older runner left in the outbox.

pub mod app;
pub mod bench;
pub mod bench_edge;
pub mod capacity;
pub mod config;
pub mod dashboard;
pub mod dlq;
pub mod flash_sale;
pub mod gateway;
pub mod health_check;
pub mod load;
pub mod observability;
pub mod secret;
pub mod tls;
pub mod workers;

pub use app::{App, Runner};
pub use config::{SettingsArgs, for_data_dir};
