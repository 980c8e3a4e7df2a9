//! order-intake on DynamoDB + SQS, as Lambda and Spin run it: the orders
//! API, the saga replies (its queue) and the relay of its outbox.
//!
//! Its HTTP routes are also the API's front door: on Spin, whose router
//! matches paths but not methods, `/api/v1/orders` is both `POST` (intake)
//! and `GET` (analytics' read model of the caller's orders), so it serves
//! analytics' route too, reading its table; on Lambda it is the HTTP API's
//! `$default` route. Either way it answers what belongs to no single
//! function — `/health`, `/api/v1/openapi.json` and problem+json 404/405s
//! for unknown routes — so it holds every function's routes: the document
//! covers the whole API, and a known path with a wrong method is a 405. The
//! catalog, notification and summary routes reach their own functions.

use std::sync::Arc;

use shared::adapters::dynamo::{DynamoAnalytics, DynamoInventory, DynamoNotifications, DynamoOrders, TableKind};
use shared::api::ApiDoc;
use shared::events::EventFactory;
use shared::hosts::aws::{Function, Host};
use shared::ports::{NotificationLog, ReadModelStore};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::saga::SagaReplies;
use crate::{FUNCTION, OrderIntake};

pub fn wire(host: &Host) -> Function {
    let (dynamo, tables) = (host.dynamo.clone(), host.tables());
    let orders = Arc::new(DynamoOrders::new(dynamo.clone(), tables));
    let products = Arc::new(DynamoInventory::new(dynamo.clone(), tables));
    let intake = Arc::new(OrderIntake::new(orders.clone(), products.clone(), host.clock(), host.ids()));
    let events = EventFactory::new(inventory::FUNCTION, host.ids(), host.clock());
    let catalog = Arc::new(inventory::Catalog::new(products, events, host.clock()));
    let log: Arc<dyn NotificationLog> = Arc::new(DynamoNotifications::new(dynamo.clone(), tables));
    let views: Arc<dyn ReadModelStore> = Arc::new(DynamoAnalytics::new(dynamo, tables));
    let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::http::router(intake.clone()))
        .merge(inventory::http::router(catalog))
        .merge(notification::http::router(log))
        .merge(analytics::http::router(views))
        .merge(shared::hosts::health::router(host.health()));
    Function::new(FUNCTION)
        .http(api, TableKind::Orders)
        .consumer(Arc::new(SagaReplies::new(intake, orders.clone())))
        .outbox(orders)
}

#[cfg(feature = "spin")]
shared::spin_entry_points!(wire);
