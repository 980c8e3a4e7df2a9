//! order-intake on Spin: the orders API (HTTP trigger), the saga replies
//! (its SQS queue, spin-trigger-sqs) and the relay of its outbox
//! (spin-trigger-cron), on DynamoDB and SQS.
//!
//! Its HTTP component is also the API's front door on Spin, whose router
//! matches paths but not methods: `/api/v1/orders` is both `POST` (intake)
//! and `GET` (analytics' read model of the caller's orders), so this
//! component serves analytics' route too, reading its table. It also answers
//! what belongs to no single function — `/health`, `/api/v1/openapi.json` and
//! problem+json 404s for unknown paths (spin.toml routes `/...` here) — so it
//! holds every function's routes: the document covers the whole API. Spin
//! sends the catalog and notification paths to their own components.

use std::sync::Arc;

use shared::adapters::dynamo::{DynamoAnalytics, DynamoInventory, DynamoNotifications, DynamoOrders, TableKind};
use shared::api::ApiDoc;
use shared::events::EventFactory;
use shared::hosts::spin::{Component, Host};
use shared::ports::{NotificationLog, ReadModelStore};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::saga::SagaReplies;
use crate::{FUNCTION, OrderIntake};

pub fn component(host: &Host) -> Component {
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
    Component::new(FUNCTION)
        .http(api, TableKind::Orders)
        .consumer(Arc::new(SagaReplies::new(intake, orders.clone())))
        .outbox(orders)
}

shared::spin_entry_points!(component);
