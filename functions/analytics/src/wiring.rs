//! analytics, wired from any backend: the read API and the projector of
//! every event (its queue). The one composition every host runs.

use std::sync::Arc;

use orderly_core::composition::{Backend, Function};
use orderly_core::events::routing::Consumer;

use crate::popular::Popular;
use crate::{FUNCTION, Projector};

pub fn wire(backend: &Arc<dyn Backend>) -> Function {
    let views = backend.read_models();
    let settings = &backend.settings().popular;
    let popular = Popular::new(views.clone(), backend.prices(), backend.timer(), settings.timeout, &settings.fallback);
    Function::new(FUNCTION, Consumer::Analytics)
        .routes(crate::http::router(views.clone(), Arc::new(popular)))
        .consumer(Arc::new(Projector::new(views)))
}

#[cfg(feature = "spin")]
orderly_hosts::spin_entry_points!(wire);
