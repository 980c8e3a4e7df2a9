//! The API's own Lambda: `GET /health`, `GET /api/v1/openapi.json` and the
//! HTTP API's `$default` route (problem+json 404/405 for what no function
//! serves). It holds every function's routes so that the document covers the
//! whole API and a known path with the wrong method is a 405; API Gateway
//! sends those routes' real traffic to their own functions, and this one's
//! IAM role only reads (health), so it cannot act for them.

use std::sync::Arc;

use orderly_lambda::AwsHealth;
use shared::adapters::dynamo::{DynamoAnalytics, DynamoInventory, DynamoNotifications, DynamoOrders};
use shared::api::ApiDoc;
use shared::events::EventFactory;
use shared::hosts::lambda::{Error, Function, run};
use shared::ports::{NotificationLog, ReadModelStore};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

fn main() -> Result<(), Error> {
    run(|aws| {
        let (dynamo, tables) = (aws.dynamo.clone(), aws.tables());
        let orders = Arc::new(DynamoOrders::new(dynamo.clone(), tables));
        let products = Arc::new(DynamoInventory::new(dynamo.clone(), tables));
        let intake = Arc::new(order_intake::OrderIntake::new(orders, products.clone(), aws.clock(), aws.ids()));
        let events = EventFactory::new(inventory::FUNCTION, aws.ids(), aws.clock());
        let catalog = Arc::new(inventory::Catalog::new(products, events, aws.clock()));
        let log: Arc<dyn NotificationLog> = Arc::new(DynamoNotifications::new(dynamo.clone(), tables));
        let views: Arc<dyn ReadModelStore> = Arc::new(DynamoAnalytics::new(dynamo, tables));
        let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
            .merge(order_intake::http::router(intake))
            .merge(inventory::http::router(catalog))
            .merge(notification::http::router(log))
            .merge(analytics::http::router(views))
            .merge(shared::hosts::health::router(Arc::new(AwsHealth::new(aws))));
        Function::new("api").http(api)
    })
}
