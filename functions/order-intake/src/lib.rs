//! # Order intake
//!
//! Accepts orders and answers at once (202 `pending`): it never checks stock
//! synchronously, because a stock check at intake is stale the moment it is
//! answered and would couple intake to inventory's availability. Instead the
//! order and its `order.placed.v1` are committed together (outbox), and the
//! saga settles it: inventory replies `inventory.reserved.v1` or
//! `inventory.rejected.v1`, [`payments`] settles the payment of a reserved
//! order, and [`saga::SagaReplies`] moves the order to `confirmed` or
//! `rejected`. Admins then record offline payments, ship and deliver.
//!
//! Layout: [`service`] holds the use cases on ports only; [`payments`] the
//! payment gateway's part; [`saga`] is the queue entry point; [`http`] is the
//! HTTP entry point. Hosts (local runner, Lambda, Spin) only wire adapters
//! into these.

pub mod http;
pub mod wiring;

pub use wiring::{front_door, wire};
pub mod payments;
pub mod saga;
pub mod service;

pub use service::{Fulfilment, IdempotencyKey, IntakeError, OrderIntake, Placed};

/// The `source` of events this function emits, and its consumer name.
pub const FUNCTION: &str = "order-intake";
