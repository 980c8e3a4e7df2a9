//! Events: what one function tells the others, through queues only.
//!
//! Each type carries its version in its name (`order.placed.v1`). A breaking
//! change is a new type (`order.placed.v2`) published beside the old one until
//! every consumer has moved, so producers and consumers deploy independently.
//! Consumers ignore fields they do not know (serde's default) and acknowledge
//! types they do not know, so adding either never wedges a queue.
//!
//! The data of each type is its own flat wire type ([`payloads`]), never a
//! domain struct, so the domain can change without changing the queues;
//! `tests/fixtures/events/` pins one example of each type.
//!
//! Every event type is one row of the table below (`event_types!`): its Rust
//! name, its type string and its data type. The macro writes what would
//! otherwise be parallel `match`es to keep in step — [`EventType`] and its
//! strings, [`Event`] with its type, subject and data, and decoding — so a
//! new event is one row plus its data type (with a [`Payload::subject`]) in
//! `payloads.rs`, after which the compiler points at every consumer's `match`.

pub mod payloads;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::OrderStatus;

pub use payloads::{
    Amount, InvalidPayload, InventoryRejected, InventoryReleased, InventoryReserved, OrderChanged, OrderLineSnapshot,
    OrderSnapshot, Payload, PaymentSnapshot, PaymentVoidOwed, ProductChanged, ProductSnapshot, ReservedLine,
    ShortfallLine,
};

/// The CloudEvents-like envelope every event travels in. `id` is unique per
/// event and is what consumers deduplicate on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub time: DateTime<Utc>,
    /// The entity the event is about (an order id or a SKU); events with one
    /// subject are delivered in order.
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not an event envelope: {0}")]
    Envelope(serde_json::Error),
    #[error("{event_type} has invalid data: {source}")]
    Data { event_type: String, source: serde_json::Error },
}

impl Envelope {
    pub fn from_json(raw: &str) -> Result<Self, EventError> {
        serde_json::from_str(raw).map_err(EventError::Envelope)
    }

    pub fn to_json(&self) -> String {
        // An Envelope is plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `Ok(None)` for a type this build does not know: acknowledge, don't fail.
    pub fn decode(&self) -> Result<Option<Event>, EventError> {
        let Some(kind) = EventType::parse(&self.event_type) else {
            return Ok(None);
        };
        Event::from_data(kind, self.data.clone())
            .map(Some)
            .map_err(|source| EventError::Data { event_type: self.event_type.clone(), source })
    }
}

/// The table of event types: `Name = "type.string.vN" => DataType`, each with
/// a doc comment saying who publishes it and when. It defines [`EventType`]
/// (the names alone) and [`Event`] (the names with their data), and every
/// `match` over them that would otherwise be written and kept in step by
/// hand: a type's string, an event's type, its subject (from its data's
/// [`Payload`] impl), its data as JSON, and decoding data of a given type.
macro_rules! event_types {
    ($($(#[doc = $doc:literal])* $name:ident = $type_string:literal => $data:ty,)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($(#[doc = $doc])* $name,)+
        }

        impl EventType {
            pub const ALL: [EventType; [$($type_string),+].len()] = [$(Self::$name),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$name => $type_string,)+
                }
            }
        }

        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $($(#[doc = $doc])* $name($data),)+
        }

        impl Event {
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Self::$name(_) => EventType::$name,)+
                }
            }

            /// The entity the event is about; see [`Payload::subject`].
            pub fn subject(&self) -> String {
                match self {
                    $(Self::$name(data) => Payload::subject(data),)+
                }
            }

            fn data(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $(Self::$name(data) => serde_json::to_value(data),)+
                }
            }

            fn from_data(kind: EventType, data: serde_json::Value) -> Result<Self, serde_json::Error> {
                Ok(match kind {
                    $(EventType::$name => Self::$name(serde_json::from_value(data)?),)+
                })
            }
        }
    };
}

event_types! {
    /// Order intake accepted an order (`pending`): inventory reserves it.
    OrderPlaced = "order.placed.v1" => OrderChanged,
    /// Inventory reserved every line, so order intake confirmed the order.
    OrderConfirmed = "order.confirmed.v1" => OrderChanged,
    /// Inventory could not reserve the order, or the gateway declined its
    /// payment (inventory then releases what it held); `reason` says why.
    OrderRejected = "order.rejected.v1" => OrderChanged,
    /// The customer or an admin cancelled the order: inventory releases it.
    OrderCancelled = "order.cancelled.v1" => OrderChanged,
    /// An admin recorded the offline payment of a confirmed order.
    OrderPaid = "order.paid.v1" => OrderChanged,
    /// An admin shipped the order (a card hold was captured first).
    OrderShipped = "order.shipped.v1" => OrderChanged,
    /// The order reached the customer.
    OrderDelivered = "order.delivered.v1" => OrderChanged,
    /// A hold at the payment gateway must be released: a cancel voided it,
    /// or an authorization's answer was lost. Order intake voids it,
    /// retrying until the gateway answers.
    PaymentVoidOwed = "payment.void_owed.v1" => PaymentVoidOwed,
    /// Inventory holds every line of the order.
    InventoryReserved = "inventory.reserved.v1" => InventoryReserved,
    /// Some line did not fit; inventory holds nothing for the order.
    InventoryRejected = "inventory.rejected.v1" => InventoryRejected,
    /// Inventory gave back the stock of a cancelled order.
    InventoryReleased = "inventory.released.v1" => InventoryReleased,
    /// A product was created, edited or restocked: caches drop it.
    ProductChanged = "product.changed.v1" => ProductChanged,
}

impl EventType {
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// The order status an event of this type announces; `None` for events
    /// that do not move an order's status.
    pub fn announced_status(self) -> Option<OrderStatus> {
        match self {
            Self::OrderPlaced => Some(OrderStatus::Pending),
            Self::OrderConfirmed => Some(OrderStatus::Confirmed),
            Self::OrderRejected => Some(OrderStatus::Rejected),
            Self::OrderCancelled => Some(OrderStatus::Cancelled),
            Self::OrderShipped => Some(OrderStatus::Shipped),
            Self::OrderDelivered => Some(OrderStatus::Delivered),
            Self::OrderPaid
            | Self::PaymentVoidOwed
            | Self::InventoryReserved
            | Self::InventoryRejected
            | Self::InventoryReleased
            | Self::ProductChanged => None,
        }
    }
}

impl Event {
    pub fn into_envelope(self, meta: EventMeta) -> Envelope {
        Envelope {
            id: meta.id,
            event_type: self.event_type().as_str().to_owned(),
            source: meta.source.to_owned(),
            time: meta.time,
            subject: self.subject(),
            traceparent: meta.traceparent,
            // Plain data with string keys: serialising cannot fail.
            data: self.data().unwrap_or_default(),
        }
    }
}

/// Stamps events with a fresh id, the time and the emitting function.
#[derive(Clone)]
pub struct EventFactory {
    source: &'static str,
    ids: std::sync::Arc<dyn crate::ports::IdGenerator>,
    clock: std::sync::Arc<dyn crate::ports::Clock>,
}

impl EventFactory {
    pub fn new(
        source: &'static str,
        ids: std::sync::Arc<dyn crate::ports::IdGenerator>,
        clock: std::sync::Arc<dyn crate::ports::Clock>,
    ) -> Self {
        Self { source, ids, clock }
    }

    pub fn envelope(&self, event: Event, traceparent: Option<String>) -> Envelope {
        event.into_envelope(EventMeta {
            id: self.ids.new_id(),
            source: self.source,
            time: self.clock.now(),
            traceparent,
        })
    }
}

/// Who emitted an event, when, and in which trace.
#[derive(Debug, Clone)]
pub struct EventMeta {
    pub id: Uuid,
    pub source: &'static str,
    pub time: DateTime<Utc>,
    pub traceparent: Option<String>,
}

pub mod routing {
    //! Fan-out: which consumer queue receives which event types. The relay
    //! publishes each event once per subscriber; the table lives here so that
    //! every host fans out the same way.

    use super::EventType;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Consumer {
        OrderIntake,
        Inventory,
        Notification,
        Analytics,
    }

    impl Consumer {
        pub const ALL: [Consumer; 4] = [Self::OrderIntake, Self::Inventory, Self::Notification, Self::Analytics];

        pub fn queue(self) -> &'static str {
            match self {
                Self::OrderIntake => "order-intake",
                Self::Inventory => "inventory",
                Self::Notification => "notification",
                Self::Analytics => "analytics",
            }
        }

        pub fn dead_letter_queue(self) -> &'static str {
            match self {
                Self::OrderIntake => "order-intake-dlq",
                Self::Inventory => "inventory-dlq",
                Self::Notification => "notification-dlq",
                Self::Analytics => "analytics-dlq",
            }
        }

        /// Whether this consumer needs one subject's events one at a time
        /// and in order (a FIFO queue, grouped by subject). Analytics does
        /// not: its projection commutes (views are version-conditioned and
        /// keep the ids of the events that wrote them, counters are sums), so
        /// on AWS it takes a standard queue, cheaper and delivered in larger
        /// batches (docs/aws.md, "Cost per million orders").
        pub fn needs_order(self) -> bool {
            self != Self::Analytics
        }

        pub fn from_queue(name: &str) -> Option<Self> {
            Self::ALL.into_iter().find(|c| c.queue() == name)
        }

        /// Analytics takes every event, known or not: it is the audit trail.
        pub fn subscribes_to(self, event_type: &str) -> bool {
            use EventType::*;
            let Some(kind) = EventType::parse(event_type) else {
                return self == Self::Analytics;
            };
            match self {
                // Saga replies, and the holds it owes the payment gateway.
                Self::OrderIntake => matches!(kind, InventoryReserved | InventoryRejected | PaymentVoidOwed),
                // Orders drive reservations (a rejection after a reservation,
                // a declined payment, releases it); product changes made by
                // another instance invalidate the catalog cache. Its own stock
                // moves it invalidates as it makes them (`inventory::consumer`).
                Self::Inventory => matches!(kind, OrderPlaced | OrderCancelled | OrderRejected | ProductChanged),
                Self::Notification => {
                    matches!(kind, OrderConfirmed | OrderRejected | OrderCancelled | OrderShipped)
                }
                Self::Analytics => true,
            }
        }
    }

    pub fn subscribers(event_type: &str) -> impl Iterator<Item = Consumer> + '_ {
        Consumer::ALL.into_iter().filter(move |c| c.subscribes_to(event_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, CustomerId, Money, Order, OrderId, OrderLine, Quantity, Sku};

    fn order() -> Order {
        let line = OrderLine {
            sku: Sku::parse("A").unwrap(),
            quantity: Quantity::parse(2).unwrap(),
            unit_price: Money::from_minor(1250, Currency::parse("EUR").unwrap()).unwrap(),
        };
        Order::place(OrderId::from_uuid(Uuid::now_v7()), CustomerId::parse("alice").unwrap(), vec![line], Utc::now())
            .unwrap()
    }

    fn meta() -> EventMeta {
        EventMeta { id: Uuid::now_v7(), source: "test", time: Utc::now(), traceparent: None }
    }

    #[test]
    fn an_event_survives_the_round_trip_through_json() {
        let event = Event::OrderPlaced(OrderChanged::new(&order()));
        let envelope = event.clone().into_envelope(meta());
        let parsed = Envelope::from_json(&envelope.to_json()).unwrap();
        assert_eq!(parsed, envelope);
        assert_eq!(parsed.event_type, "order.placed.v1");
        assert_eq!(parsed.decode().unwrap(), Some(event));
    }

    #[test]
    fn unknown_fields_are_ignored_at_every_level() {
        let envelope = Event::OrderPlaced(OrderChanged::new(&order())).into_envelope(meta());
        let mut raw: serde_json::Value = serde_json::from_str(&envelope.to_json()).unwrap();
        raw["specversion"] = "1.0".into();
        raw["data"]["added_later"] = 42.into();
        raw["data"]["order"]["loyalty_points"] = 7.into();
        let parsed = Envelope::from_json(&raw.to_string()).unwrap();
        assert!(matches!(parsed.decode(), Ok(Some(Event::OrderPlaced(_)))));
    }

    #[test]
    fn unknown_types_decode_to_none_not_an_error() {
        let mut envelope = Event::OrderPlaced(OrderChanged::new(&order())).into_envelope(meta());
        envelope.event_type = "order.returned.v1".into();
        assert!(matches!(envelope.decode(), Ok(None)));
    }

    #[test]
    fn a_known_type_with_broken_data_is_an_error() {
        let mut envelope = Event::OrderPlaced(OrderChanged::new(&order())).into_envelope(meta());
        envelope.data = serde_json::json!({"order": {"id": 7}});
        assert!(matches!(envelope.decode(), Err(EventError::Data { .. })));
        assert!(matches!(Envelope::from_json("{not json"), Err(EventError::Envelope(_))));
    }

    /// What each event type puts on the queues, pinned by a committed file
    /// per type (`tests/fixtures/events/<type>.json`), so that a refactor of
    /// the domain cannot change the wire without failing here. Run with
    /// `ORDERLY_BLESS_FIXTURES=1` to rewrite the files after a deliberate
    /// change of contract (which is a new `.vN` type, see the module doc).
    mod wire_fixtures {
        use std::path::PathBuf;

        use chrono::{DateTime, Utc};
        use uuid::Uuid;

        use super::super::*;
        use crate::domain::{
            AuthorizationId, Currency, CustomerId, Money, Order, OrderId, OrderLine, Product, ProductName, Quantity,
            Shortfall, Sku,
        };

        fn at(raw: &str) -> DateTime<Utc> {
            raw.parse().expect("fixture time")
        }

        fn eur(minor: i64) -> Money {
            Money::from_minor(minor, Currency::parse("EUR").expect("EUR")).expect("fixture amount")
        }

        fn sku(raw: &str) -> Sku {
            Sku::parse(raw).expect("fixture SKU")
        }

        fn order_id() -> OrderId {
            OrderId::parse("0190a5e4-7d3a-7c4e-9a3b-2f1e0d9c8b7a").expect("fixture order id")
        }

        fn placed() -> Order {
            let line = |s: &str, q: i64, price: i64| OrderLine {
                sku: sku(s),
                quantity: Quantity::parse(q).expect("fixture quantity"),
                unit_price: eur(price),
            };
            Order::place(
                order_id(),
                CustomerId::parse("alice").expect("fixture customer"),
                vec![line("TEA-GREEN", 2, 1250), line("MUG", 1, 800)],
                at("2026-11-27T10:00:00.123Z"),
            )
            .expect("fixture order")
        }

        fn reserved_lines() -> Vec<ReservedLine> {
            vec![ReservedLine { sku: sku("TEA-GREEN"), quantity: 2 }, ReservedLine { sku: sku("MUG"), quantity: 1 }]
        }

        /// One event of every type, from fixed domain values.
        fn every_event() -> Vec<Event> {
            let confirmed = placed()
                .confirm_offline(
                    "Pay 33.00 EUR by bank transfer, quoting order 0190a5e4-7d3a-7c4e-9a3b-2f1e0d9c8b7a.".into(),
                    at("2026-11-27T10:00:01.5Z"),
                )
                .expect("confirm");
            let paid = confirmed.record_offline_payment(at("2026-11-27T11:00:00Z")).expect("paid");
            let shipped = paid.ship(at("2026-11-28T09:00:00Z")).expect("ship");
            vec![
                Event::OrderPlaced(OrderChanged::new(&placed())),
                Event::OrderConfirmed(OrderChanged::new(&confirmed)),
                Event::OrderRejected(OrderChanged::rejected(
                    &placed().reject(at("2026-11-27T10:00:02Z")).expect("reject"),
                    "not enough stock (TEA-GREEN: requested 2, available 1)".into(),
                )),
                Event::OrderCancelled(OrderChanged::new(
                    &confirmed.cancel(at("2026-11-27T10:05:00Z")).expect("cancel"),
                )),
                Event::OrderPaid(OrderChanged::new(&paid)),
                Event::OrderShipped(OrderChanged::new(&shipped)),
                Event::OrderDelivered(OrderChanged::new(
                    &shipped.deliver(at("2026-11-29T15:00:00Z")).expect("deliver"),
                )),
                Event::PaymentVoidOwed(PaymentVoidOwed {
                    order_id: order_id(),
                    authorization: Some(AuthorizationId::parse("auth_7c4e9a3b").expect("fixture authorization")),
                }),
                Event::InventoryReserved(InventoryReserved { order_id: order_id(), lines: reserved_lines() }),
                Event::InventoryRejected(InventoryRejected {
                    order_id: order_id(),
                    shortfalls: vec![(&Shortfall { sku: sku("TEA-GREEN"), requested: 2, available: 1 }).into()],
                }),
                Event::InventoryReleased(InventoryReleased { order_id: order_id(), lines: reserved_lines() }),
                Event::ProductChanged(ProductChanged::new(&Product {
                    sku: sku("TEA-GREEN"),
                    name: ProductName::parse("Green tea").expect("fixture name"),
                    price: eur(1250),
                    available: 40,
                    reserved: 2,
                    updated_at: at("2026-11-27T09:30:00.250Z"),
                    version: 3,
                })),
            ]
        }

        fn envelope(event: Event) -> Envelope {
            let source = if event.event_type().as_str().starts_with("inventory.")
                || event.event_type().as_str().starts_with("product.")
            {
                "inventory"
            } else {
                "order-intake"
            };
            event.into_envelope(EventMeta {
                id: Uuid::parse_str("0190a5e4-8000-7000-8000-000000000001").expect("fixture event id"),
                source,
                time: at("2026-11-27T10:00:03.456789Z"),
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            })
        }

        fn fixture_path(event_type: EventType) -> PathBuf {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/events")
                .join(format!("{}.json", event_type.as_str()))
        }

        #[test]
        fn every_event_type_has_a_fixture() {
            let covered: Vec<EventType> = every_event().iter().map(Event::event_type).collect();
            assert_eq!(covered, EventType::ALL, "one fixture event per type, in the order of EventType::ALL");
        }

        #[test]
        fn every_event_matches_its_committed_json_and_decodes_from_it() {
            let bless = std::env::var_os("ORDERLY_BLESS_FIXTURES").is_some();
            for event in every_event() {
                let path = fixture_path(event.event_type());
                let built = envelope(event.clone());
                let json: serde_json::Value = serde_json::from_str(&built.to_json()).expect("envelope JSON");
                if bless {
                    let pretty = serde_json::to_string_pretty(&json).expect("pretty JSON") + "\n";
                    std::fs::write(&path, pretty).expect("write fixture");
                }
                let raw = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e} (ORDERLY_BLESS_FIXTURES=1 writes it)", path.display()));
                let committed: serde_json::Value = serde_json::from_str(&raw).expect("fixture is JSON");
                assert_eq!(json, committed, "{} changed on the wire", path.display());
                let decoded = Envelope::from_json(&raw).expect("fixture is an envelope");
                assert_eq!(decoded, built, "{}", path.display());
                assert_eq!(decoded.decode().expect("fixture decodes"), Some(event), "{}", path.display());
            }
        }
    }

    #[test]
    fn every_type_string_is_distinct_and_parses_back_to_its_type() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn fan_out_follows_the_contract_table() {
        use routing::{Consumer::*, subscribers};
        let of = |t: &str| subscribers(t).collect::<Vec<_>>();
        assert_eq!(of("order.placed.v1"), [Inventory, Analytics]);
        assert_eq!(of("order.cancelled.v1"), [Inventory, Notification, Analytics]);
        assert_eq!(of("order.confirmed.v1"), [Notification, Analytics]);
        assert_eq!(of("order.rejected.v1"), [Inventory, Notification, Analytics]);
        assert_eq!(of("order.shipped.v1"), [Notification, Analytics]);
        assert_eq!(of("order.paid.v1"), [Analytics]);
        assert_eq!(of("payment.void_owed.v1"), [OrderIntake, Analytics]);
        assert_eq!(of("inventory.reserved.v1"), [OrderIntake, Analytics]);
        assert_eq!(of("inventory.released.v1"), [Analytics]);
        assert_eq!(of("product.changed.v1"), [Inventory, Analytics]);
        assert_eq!(of("something.new.v9"), [Analytics]);
    }
}
