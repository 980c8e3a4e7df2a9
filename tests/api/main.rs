//! Black-box tests of the HTTP API against a real runner (SQLite + local
//! queues) on a random port with a temporary data directory.

mod auth;
#[path = "../support/aws_stack.rs"]
mod aws_stack;
mod caching;
mod catalog;
mod edge;
mod helpers;
mod idempotency;
mod keys;
mod messaging;
mod notifications;
mod orders;
mod payments;
mod popular;
mod resilience;
mod security;
#[path = "../support/mod.rs"]
mod support;
mod tls;
