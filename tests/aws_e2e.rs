//! The AWS host end to end, on a deployed stack (scripts/aws-e2e.sh sets
//! `ORDERLY_TEST_BASE_URL` and `ORDERLY_TEST_AWS_ENDPOINT`): what the API
//! tests cannot show through HTTP alone. Each test reaches into the stack's
//! table or queues the way a crash or a bad producer would, then watches the
//! outcome through the API. Without a stack every test is skipped, saying so.

#[path = "support/aws_stack.rs"]
mod aws_stack;
#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "support/mod.rs"]
mod support;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::Utc;
use helpers::{TestApp, eventually, remote::Stack, remote_stack, spawn_app, token};
use orderly_adapters::dynamo::{DynamoConfig, DynamoOrders, OutboxMode};
use orderly_core::domain::{Currency, CustomerId, Money, Order, OrderId, OrderLine, Quantity, Sku};
use orderly_core::events::routing::Consumer;
use orderly_core::events::{Envelope, Event, EventMeta, InventoryReserved, OrderChanged, ReservedLine};
use orderly_core::ports::{OrderStore, Outbox};
use uuid::Uuid;

struct Deployed {
    app: TestApp,
    stack: Stack,
    config: aws_config::SdkConfig,
}

async fn deployed() -> Option<Deployed> {
    let Some(stack) = remote_stack() else {
        eprintln!("skipped: no deployed stack (scripts/aws-e2e.sh runs these)");
        return None;
    };
    let config = stack.sdk_config().await;
    let app = spawn_app().await;
    Some(Deployed { app, stack, config })
}

impl Deployed {
    /// The stack's orders table, writing events as `outbox` says.
    fn orders(&self, outbox: OutboxMode) -> DynamoOrders {
        let tables = DynamoConfig { outbox, ..DynamoConfig::with_prefix(&format!("orderly-{}", self.stack.stage())) };
        DynamoOrders::new(aws_sdk_dynamodb::Client::new(&self.config), &tables)
    }

    /// The URL of `consumer`'s queue, or of its DLQ: FIFO unless the
    /// consumer needs no order (template.yaml).
    async fn queue_url(&self, consumer: Consumer, dead_letters: bool) -> String {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        let queue = if dead_letters { consumer.dead_letter_queue() } else { consumer.queue() };
        let fifo = if consumer.needs_order() { ".fifo" } else { "" };
        let name = format!("orderly-{}-{queue}{fifo}", self.stack.stage());
        sqs.get_queue_url().queue_name(name).send().await.expect("queue URL").queue_url.expect("URL")
    }

    /// Sends `body` to a consumer queue as a producer would (own dedup id
    /// on a FIFO queue).
    async fn send_raw(&self, consumer: Consumer, group: &str, body: &str) {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        let mut send = sqs.send_message().queue_url(self.queue_url(consumer, false).await).message_body(body);
        if consumer.needs_order() {
            send = send.message_group_id(group).message_deduplication_id(Uuid::now_v7().to_string());
        }
        send.send().await.expect("send");
    }
}

fn placed(customer: &str, sku: &str, quantity: i64) -> (Order, Envelope) {
    let line = OrderLine {
        sku: Sku::parse(sku).unwrap(),
        quantity: Quantity::parse(quantity).unwrap(),
        unit_price: Money::from_minor(250, Currency::parse("EUR").unwrap()).unwrap(),
    };
    let order =
        Order::place(OrderId::from_uuid(Uuid::now_v7()), CustomerId::parse(customer).unwrap(), vec![line], Utc::now())
            .unwrap();
    let event = Event::OrderPlaced(OrderChanged::new(&order)).into_envelope(EventMeta {
        id: Uuid::now_v7(),
        source: "order-intake",
        time: Utc::now(),
        traceparent: None,
    });
    (order, event)
}

/// The crash window: the order and its outbox item are committed and the
/// function dies before publishing anything. Here nothing publishes at all —
/// the write goes straight into the table — and the stream relay still
/// delivers `order.placed.v1`, so the saga confirms the order.
#[tokio::test]
async fn an_order_committed_without_any_publish_is_still_confirmed() {
    let Some(e2e) = deployed().await else { return };
    e2e.app.put_product("TEA", "2.50", 10).await;
    let (order, event) = placed("alice", "TEA", 4);
    let orders = e2e.orders(OutboxMode::Items);
    orders.place(&order, None, std::slice::from_ref(&event), Utc::now()).await.unwrap();

    let alice = token("alice", false);
    e2e.app.settled(&alice, &order.id().to_string(), "confirmed").await;
    assert_eq!(e2e.app.product("TEA").await["available"], 6);
    eventually("the relay to remove the published outbox item", || async {
        orders.pending(None, 10).await.unwrap().is_empty().then_some(())
    })
    .await;
}

/// The same with the stack's own `outbox = stream`: the event rides on the
/// order item, the stream hands the item's image to the relay, and no
/// outbox item is ever written.
#[tokio::test]
async fn an_order_committed_with_its_event_on_the_order_item_is_confirmed_without_any_publish() {
    let Some(e2e) = deployed().await else { return };
    e2e.app.put_product("MATE", "2.50", 10).await;
    let (order, event) = placed("alice", "MATE", 3);
    let orders = e2e.orders(OutboxMode::Stream);
    orders.place(&order, None, std::slice::from_ref(&event), Utc::now()).await.unwrap();
    assert!(orders.pending(None, 10).await.unwrap().is_empty(), "no outbox item");

    let alice = token("alice", false);
    e2e.app.settled(&alice, &order.id().to_string(), "confirmed").await;
    assert_eq!(e2e.app.product("MATE").await["available"], 7);
}

/// One bad record never fails or blocks its batch: a poison message in the
/// inventory queue is retried, then dead-lettered with its error, while an
/// order behind it is confirmed.
#[tokio::test]
async fn a_poison_message_is_dead_lettered_with_its_error_without_blocking_orders() {
    let Some(e2e) = deployed().await else { return };
    e2e.app.put_product("TEA", "1.00", 10).await;
    e2e.send_raw(Consumer::Inventory, "poison", "{this is not an event").await;
    let alice = token("alice", false);
    let id = e2e.app.accepted_order(&alice, &[("TEA", 1)]).await;
    e2e.app.settled(&alice, &id, "confirmed").await;

    // Moving it is a send to the DLQ, then a delete from the queue.
    eventually("the poison message to be dead-lettered", || async {
        let health = e2e.app.health().await;
        let inventory = &health["queues"]["inventory"];
        (inventory["dead_letters"] == 1 && inventory["depth"] == 0).then_some(())
    })
    .await;
    let sqs = aws_sdk_sqs::Client::new(&e2e.config);
    let dlq = e2e.queue_url(Consumer::Inventory, true).await;
    // A short-polling receive may come back empty while the message is
    // there (SQS samples a subset of its servers): ask again.
    let dead = eventually("the dead letter to be received", || async {
        let messages = sqs
            .receive_message()
            .queue_url(&dlq)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .visibility_timeout(0)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(dead.len(), 1);
    let attributes = dead[0].message_attributes.clone().unwrap_or_default();
    let error = attributes["orderly-last-error"].string_value.clone().unwrap_or_default();
    assert!(error.contains("not an event envelope"), "{error}");
    assert_eq!(attributes["orderly-receive-count"].string_value.as_deref(), Some("3"));
}

/// Redelivery (a producer or SQS sending the same event again, past FIFO
/// deduplication) changes nothing: consumers keep processed marks.
#[tokio::test]
async fn redelivered_events_change_nothing_on_aws() {
    let Some(e2e) = deployed().await else { return };
    e2e.app.put_product("TEA", "2.50", 10).await;
    let (order, event) = placed("alice", "TEA", 4);
    e2e.orders(OutboxMode::Stream).place(&order, None, std::slice::from_ref(&event), Utc::now()).await.unwrap();
    let alice = token("alice", false);
    e2e.app.settled(&alice, &order.id().to_string(), "confirmed").await;
    // The confirmation reaches analytics through the stream relay, which no
    // queue depth shows: wait for the read model itself before redelivering.
    eventually("analytics to count the confirmed order", || async {
        (e2e.app.summary().await["units_by_sku"]["TEA"] == 4).then_some(())
    })
    .await;
    e2e.app.drained().await;

    for _ in 0..2 {
        for consumer in [Consumer::Inventory, Consumer::Analytics] {
            e2e.send_raw(consumer, &event.subject, &event.to_json()).await;
        }
    }
    e2e.app.drained().await;
    assert_eq!(e2e.app.product("TEA").await["available"], 6, "stock was taken once");
    let summary = e2e.app.summary().await;
    assert_eq!(summary["orders_total"], 1);
    assert_eq!(summary["events_by_type"]["order.placed.v1"], 1);
    assert_eq!(summary["units_by_sku"]["TEA"], 4);
}

/// Contract §10 through the deployed stack, whose stock is spread over four
/// items per product (scripts/aws-e2e.sh deploys `StockShards=4`): the
/// flash-sale profile of `orderly load` at a size the emulator takes.
#[tokio::test]
async fn a_flash_sale_through_the_stack_confirms_exactly_the_stock_on_sharded_items() {
    let Some(e2e) = deployed().await else { return };
    let args = orderly::load::LoadArgs {
        profile: orderly::load::Profile::FlashSale,
        buyers: 60,
        url: e2e.app.address.clone(),
        secret: Some(helpers::secret()),
        tokens_file: None,
        duration: std::time::Duration::from_secs(120),
        concurrency: 8,
        customers: 0,
        skus: 1,
        initial_stock: 12,
        rate: None,
        settle_timeout: std::time::Duration::from_secs(180),
        // The stack pays through scripts/aws-e2e.sh's test gateway: its books are checked too.
        gateway_url: std::env::var("ORDERLY_TEST_GATEWAY_URL").ok().filter(|url| !url.is_empty()),
        // scripts/aws-e2e.sh prints the figures from it.
        json: std::env::var_os("ORDERLY_TEST_FLASH_SALE_REPORT").map(std::path::PathBuf::from),
        quiet: true,
        stop: None,
    };
    let report = orderly::load::run(args).await.unwrap();
    orderly::load::print(&report);
    let sale = report.flash_sale.as_ref().expect("a flash-sale report");
    assert_eq!(sale.accepted, 60, "{:?}", report.errors_by_status);
    assert_eq!(
        (sale.confirmed, sale.rejected, sale.pending, sale.available_after),
        (12, 48, 0, 0),
        "{:?}",
        sale.problems
    );
    assert!(report.consistency.ok, "{:?} {:?}", sale.problems, report.consistency.analytics_mismatches);
}

/// On AWS the analytics mapping hands the projector up to
/// `AnalyticsBatchSize` (100) messages of its standard queue per invocation;
/// the emulator's mapping never more than 10. So the deployed function is
/// invoked here the way that mapping would on AWS: one SQS event of every
/// event of 40 orders (placed, reserved, confirmed), each order's reversed,
/// every fourth twice — more than one transaction's 100 items. Every event
/// counts once, as if each had come alone and in order.
#[tokio::test]
async fn a_batch_past_fifos_ten_through_the_deployed_projector_counts_each_event_once() {
    let Some(e2e) = deployed().await else { return };
    let endpoint = e2e.stack.endpoint();
    let http = reqwest::Client::new();
    let functions: serde_json::Value =
        http.get(format!("{endpoint}/2015-03-31/functions/")).send().await.unwrap().json().await.unwrap();
    let prefix = format!("orderly-{}-AnalyticsFunction", e2e.stack.stage());
    let function = functions["Functions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["FunctionName"].as_str())
        .find(|name| name.starts_with(&prefix))
        .expect("the deployed analytics function")
        .to_owned();

    let meta = |source| EventMeta { id: Uuid::now_v7(), source, time: Utc::now(), traceparent: None };
    let mut sagas = Vec::new();
    for n in 0..40_i64 {
        let (sku, quantity) = (["TEA", "COFFEE", "MATE"][n as usize % 3], 1 + n % 2);
        let (order, placed) = placed("alice", sku, quantity);
        let reserved = Event::InventoryReserved(InventoryReserved {
            order_id: order.id(),
            lines: vec![ReservedLine { sku: Sku::parse(sku).unwrap(), quantity: quantity as u32 }],
        })
        .into_envelope(meta("inventory"));
        let confirmed = order.confirm_offline("Pay by bank transfer".into(), Utc::now()).unwrap();
        let confirmed = Event::OrderConfirmed(OrderChanged::new(&confirmed)).into_envelope(meta("order-intake"));
        sagas.push(vec![confirmed, reserved, placed]);
    }
    let arn = format!("arn:aws:sqs:us-east-1:000000000000:orderly-{}-analytics", e2e.stack.stage());
    let mut records = Vec::new();
    for step in 0..3 {
        for saga in &sagas {
            let copies = if records.len() % 4 == 0 { 2 } else { 1 };
            for _ in 0..copies {
                records.push(serde_json::json!({
                    "messageId": Uuid::now_v7().to_string(),
                    "receiptHandle": Uuid::now_v7().to_string(),
                    "body": saga[step].to_json(),
                    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": Utc::now().timestamp_millis().to_string()},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": "us-east-1",
                }));
            }
        }
    }
    assert!(records.len() > 150, "{} records", records.len());
    let answer: serde_json::Value = http
        .post(format!("{endpoint}/2015-03-31/functions/{function}/invocations"))
        .json(&serde_json::json!({ "Records": records }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{answer}");

    let summary = e2e.app.summary().await;
    assert_eq!(summary["orders_total"], 40, "{summary}");
    assert_eq!(summary["orders_by_status"]["confirmed"], 40, "{summary}");
    for kind in ["order.placed.v1", "inventory.reserved.v1", "order.confirmed.v1"] {
        assert_eq!(summary["events_by_type"][kind], 40, "{kind}: {summary}");
    }
    // Units: TEA n=0,3,..: quantities alternate 1, 2 by n.
    let units = |sku: usize| (0..40_i64).filter(|n| *n as usize % 3 == sku).map(|n| 1 + n % 2).sum::<i64>();
    for (at, sku) in ["TEA", "COFFEE", "MATE"].iter().enumerate() {
        assert_eq!(summary["units_by_sku"][sku], units(at), "{sku}: {summary}");
    }
}
