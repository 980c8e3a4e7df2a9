//! Sample data for the contract suites.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use orderly_core::domain::{
    Currency, CustomerId, Money, Order, OrderId, OrderLine, Product, ProductDraft, ProductName, Quantity, Sku,
    StockLevel,
};
use orderly_core::events::{Envelope, Event, EventMeta, OrderChanged};
use orderly_core::ports::{IdempotencyClaim, ProcessedEvent};

pub fn sku(raw: &str) -> Sku {
    Sku::parse(raw).expect("fixture SKU")
}

pub fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::parse("EUR").expect("EUR")).expect("fixture amount")
}

pub fn customer(raw: &str) -> CustomerId {
    CustomerId::parse(raw).expect("fixture customer")
}

pub fn now() -> DateTime<Utc> {
    // Whole milliseconds: every store keeps at least that precision.
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

pub fn order_for(who: &str, lines: &[(&str, u32)]) -> Order {
    let items = lines
        .iter()
        .map(|(s, q)| OrderLine {
            sku: sku(s),
            quantity: Quantity::parse(i64::from(*q)).expect("qty"),
            unit_price: eur(250),
        })
        .collect();
    Order::place(OrderId::from_uuid(Uuid::now_v7()), customer(who), items, now()).expect("fixture order")
}

pub fn placed_event(order: &Order) -> Envelope {
    Event::OrderPlaced(OrderChanged::new(order)).into_envelope(EventMeta {
        id: Uuid::now_v7(),
        source: "contract",
        time: now(),
        traceparent: None,
    })
}

pub fn claim(who: &str, key: &str, hash: &str) -> IdempotencyClaim {
    IdempotencyClaim {
        customer_id: customer(who),
        key: key.to_owned(),
        request_hash: hash.to_owned(),
        expires_at: now() + Duration::hours(24),
    }
}

pub fn product(raw_sku: &str, stock: u32) -> Product {
    Product::create(
        sku(raw_sku),
        ProductDraft {
            name: ProductName::parse("Contract tea").expect("name"),
            price: eur(250),
            initial_stock: Some(StockLevel::parse(i64::from(stock)).expect("stock")),
        },
        now(),
    )
}

pub fn mark(consumer: &'static str) -> ProcessedEvent {
    ProcessedEvent { consumer, event_id: Uuid::now_v7() }
}
