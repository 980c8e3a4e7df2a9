//! # Notification
//!
//! Tells customers when their order is confirmed, rejected or cancelled,
//! through the [`NotificationProvider`](orderly_core::ports::NotificationProvider)
//! port (a webhook, or the log when none is configured). Every notification
//! is keyed by the id of the event that caused it, so a redelivered event
//! never notifies twice once a send has succeeded, and the notification log
//! shows each one as `sent`, `deferred` (will be retried) or `failed`
//! (dead-lettered after the last attempt).

pub mod http;
pub mod wiring;

pub use wiring::wire;
pub mod notifier;

pub use notifier::Notifier;

/// This function's consumer name.
pub const FUNCTION: &str = "notification";
