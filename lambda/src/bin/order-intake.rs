//! order-intake on Lambda: the orders API (HTTP API), the saga replies (its
//! SQS queue) and the relay of its outbox (its table's stream).

use std::sync::Arc;

use order_intake::{OrderIntake, saga::SagaReplies};
use shared::adapters::dynamo::{DynamoInventory, DynamoOrders};
use shared::hosts::lambda::{Error, Function, run};

fn main() -> Result<(), Error> {
    run(|aws| {
        let orders = Arc::new(DynamoOrders::new(aws.dynamo.clone(), aws.tables()));
        // Read-only: the price list is inventory's products.
        let prices = Arc::new(DynamoInventory::new(aws.dynamo.clone(), aws.tables()));
        let intake = Arc::new(OrderIntake::new(orders.clone(), prices, aws.clock(), aws.ids()));
        Function::new(order_intake::FUNCTION)
            .http(order_intake::http::router(intake.clone()))
            .consumer(Arc::new(SagaReplies::new(intake, orders.clone())))
            .outbox(orders)
    })
}
