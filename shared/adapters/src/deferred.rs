//! An SDK client built on its first use.
//!
//! Building an AWS SDK client is not free: its configuration, runtime
//! plugins and their validation cost ~0.25 ms inside a Spin component. A
//! native host builds its clients once per process and keeps them. A
//! component builds them for every request, because Spin 4 and
//! `wasmtime serve` give each request a fresh instance. Most requests never
//! touch some of them: none of the HTTP routes sends to SQS (only `/health`
//! reads queue depths). [`Deferred`] keeps the recipe and builds the client
//! the first time an adapter calls through it. After that, every call gets
//! that same client.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

/// A client, or how to build it on first use. Derefs to the client.
pub struct Deferred<C> {
    build: Box<dyn Fn() -> C + Send + Sync>,
    client: OnceLock<C>,
}

impl<C> Deferred<C> {
    /// Built by `build` on first use.
    pub fn new(build: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Self { build: Box::new(build), client: OnceLock::new() }
    }

    /// Whether the client exists yet.
    pub fn is_built(&self) -> bool {
        self.client.get().is_some()
    }
}

/// A client that is already built (a native host's, shared by the process).
impl<C: Clone + Send + Sync + 'static> From<C> for Deferred<C> {
    fn from(client: C) -> Self {
        let built = OnceLock::from(client.clone());
        Self { build: Box::new(move || client.clone()), client: built }
    }
}

impl<C> Deref for Deferred<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.client.get_or_init(&self.build)
    }
}

impl<C: fmt::Debug> fmt::Debug for Deferred<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.client.get() {
            Some(client) => client.fmt(f),
            None => f.write_str("Deferred(not built yet)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_deferred_client_is_built_on_first_use_and_only_once() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let client = Deferred::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            String::from("client")
        });
        assert!(!client.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 0, "nothing is built before the first use");
        assert_eq!(client.len(), 6);
        assert_eq!(*client, "client");
        assert!(client.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_client_given_built_is_used_as_it_is() {
        let client = Deferred::from(String::from("built"));
        assert!(client.is_built());
        assert_eq!(*client, "built");
    }
}
