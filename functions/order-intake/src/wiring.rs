//! order-intake, wired from any backend: the orders API, the saga replies
//! (its queue) and its outbox. The one composition every host runs.
//!
//! [`front_door`] is the whole API: the routes of all four functions, `GET
//! /health`, `GET /api/v1/openapi.json` and problem+json 404/405s for
//! everything else. The runner serves it as its API. On Lambda it is
//! order-intake's HTTP API `$default` route; on Spin, whose router matches
//! paths but not methods, `/api/v1/orders` is both `POST` (intake) and `GET`
//! (analytics' read model of the caller's orders), so order-intake's
//! component answers it whole. Either way the document covers the whole
//! API, and a known path with a wrong method is a 405. The catalog,
//! notification and summary routes still reach their own functions there.

use std::sync::Arc;

use orderly_core::api::ApiDoc;
use orderly_core::composition::{self, Backend, Function};
use orderly_core::events::routing::Consumer;
use orderly_core::http::ApiRoutes;
use utoipa::OpenApi;

use crate::payments::Payments;
use crate::saga::SagaReplies;
use crate::{FUNCTION, OrderIntake};

pub fn wire(backend: &Arc<dyn Backend>) -> Function {
    let payments =
        Payments::new(composition::payment_gateway(backend.as_ref()), backend.settings().payment.instructions.clone());
    let intake =
        Arc::new(OrderIntake::new(backend.orders(), backend.prices(), backend.clock(), backend.ids(), payments));
    Function::new(FUNCTION, Consumer::OrderIntake)
        .routes(crate::http::router(intake.clone()))
        .consumer(Arc::new(SagaReplies::new(intake, backend.processed(Consumer::OrderIntake))))
        .outbox(backend.order_outbox())
}

/// order-intake serving the whole API (see the module doc).
pub fn front_door(backend: &Arc<dyn Backend>) -> Function {
    let intake = wire(backend);
    let api = [inventory::wire(backend), notification::wire(backend), analytics::wire(backend)]
        .iter()
        .filter_map(Function::api)
        .fold(
            ApiRoutes::new(axum::Router::new(), ApiDoc::openapi).merge(intake.api().unwrap_or_default()),
            ApiRoutes::merge,
        )
        .merge(orderly_core::health::router(composition::health(backend.clone())));
    intake.routes(api)
}

// Every trigger of order-intake's components runs the front door: the same
// consumer and outbox as `wire`, with the whole API's routes.
#[cfg(feature = "spin")]
orderly_hosts::spin_entry_points!(front_door);
