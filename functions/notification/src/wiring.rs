//! notification, wired from any backend: the log API and the notifier (its
//! queue), which sends through the provider's shared circuit breaker. The
//! one composition every host runs.

use std::sync::Arc;

use orderly_core::composition::{self, Backend, Function};
use orderly_core::events::routing::Consumer;

use crate::{FUNCTION, Notifier};

pub fn wire(backend: &Arc<dyn Backend>) -> Function {
    let log = backend.notifications();
    let notifier = Notifier::new(log.clone(), composition::notification_provider(backend.as_ref()), backend.clock());
    Function::new(FUNCTION, Consumer::Notification).routes(crate::http::router(log)).consumer(Arc::new(notifier))
}

#[cfg(feature = "spin")]
orderly_hosts::spin_entry_points!(wire);
