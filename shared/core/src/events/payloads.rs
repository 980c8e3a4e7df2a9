//! The data of each event: the integration events' own flat types.
//!
//! These structs *are* the wire format, the way `api.rs` is for HTTP: every
//! field names itself on the wire (`#[serde(rename)]`), so renaming a Rust
//! field, or a field inside a domain type, cannot change what other programs
//! read from the queues. Domain values are mapped in (`From<&Order>`) by the
//! producer and, where a consumer needs the domain's behaviour, mapped back
//! (`TryFrom<&OrderSnapshot> for Order`) through the same checks a store's
//! data goes through: bad data is an [`InvalidPayload`], not a panic.
//!
//! Scalars travel as the domain's parse-checked value types (`OrderId`,
//! `Sku`, `Quantity`, `Currency`, `OrderStatus`...), whose string or number
//! forms are themselves part of the contract and are checked while decoding;
//! anything with fields (an order, a line, an amount, a product) is a struct
//! here. `tests/fixtures/events/` pins the result.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{
    AuthorizationId, Currency, CustomerId, InvalidOrder, Money, MoneyError, Order, OrderId, OrderLine, OrderRecord,
    OrderStatus, Payment, PaymentMethod, PaymentStatus, Product, ProductName, Quantity, Shortfall, Sku,
};

/// What every event's data says about itself.
pub trait Payload {
    /// The entity the event is about (an order id or a SKU): events with one
    /// subject are delivered in order.
    fn subject(&self) -> String;
}

/// Event data that decoded but describes no possible domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPayload {
    #[error("{field}: {error}")]
    Amount { field: String, error: MoneyError },
    #[error(transparent)]
    Order(#[from] InvalidOrder),
}

/// `{"amount_minor": 1250, "currency": "EUR"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    #[serde(rename = "amount_minor")]
    pub amount_minor: i64,
    #[serde(rename = "currency")]
    pub currency: Currency,
}

impl From<Money> for Amount {
    fn from(money: Money) -> Self {
        Self { amount_minor: money.amount_minor(), currency: money.currency() }
    }
}

/// One line of an [`OrderSnapshot`]: the unit price frozen at intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineSnapshot {
    #[serde(rename = "sku")]
    pub sku: Sku,
    #[serde(rename = "quantity")]
    pub quantity: Quantity,
    #[serde(rename = "unit_price")]
    pub unit_price: Amount,
}

/// An order as it is after the change an event reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    #[serde(rename = "id")]
    pub id: OrderId,
    #[serde(rename = "customer_id")]
    pub customer_id: CustomerId,
    #[serde(rename = "status")]
    pub status: OrderStatus,
    #[serde(rename = "items")]
    pub items: Vec<OrderLineSnapshot>,
    #[serde(rename = "total")]
    pub total: Amount,
    #[serde(rename = "created_at")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "updated_at")]
    pub updated_at: DateTime<Utc>,
    /// Increases with every transition: consumers keep the newest.
    #[serde(rename = "version")]
    pub version: u32,
    /// Absent in events sent before payments existed.
    #[serde(rename = "payment", default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentSnapshot>,
}

/// An order's payment as events carry it: never the gateway's ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSnapshot {
    #[serde(rename = "method")]
    pub method: PaymentMethod,
    #[serde(rename = "status")]
    pub status: PaymentStatus,
    #[serde(rename = "instructions", default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

impl From<&Order> for OrderSnapshot {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id(),
            customer_id: order.customer_id().clone(),
            status: order.status(),
            items: order
                .items()
                .iter()
                .map(|line| OrderLineSnapshot {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                    unit_price: line.unit_price.into(),
                })
                .collect(),
            total: order.total().into(),
            created_at: order.created_at(),
            updated_at: order.updated_at(),
            version: order.version(),
            payment: Some(PaymentSnapshot {
                method: order.payment().method,
                status: order.payment().status,
                instructions: order.payment().instructions.clone(),
            }),
        }
    }
}

/// For consumers that need the order's behaviour (its units per SKU, its
/// money): the snapshot must be an order the domain could have produced.
impl TryFrom<&OrderSnapshot> for Order {
    type Error = InvalidPayload;

    fn try_from(snapshot: &OrderSnapshot) -> Result<Self, Self::Error> {
        let amount = |field: String, parsed: Result<Money, MoneyError>| {
            parsed.map_err(|error| InvalidPayload::Amount { field, error })
        };
        let items = snapshot
            .items
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let price = Money::from_minor(line.unit_price.amount_minor, line.unit_price.currency);
                Ok(OrderLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                    unit_price: amount(format!("order.items[{i}].unit_price"), price)?,
                })
            })
            .collect::<Result<Vec<_>, InvalidPayload>>()?;
        let total = Money::sum_from_minor(snapshot.total.amount_minor, snapshot.total.currency);
        let record = OrderRecord {
            id: snapshot.id,
            customer_id: snapshot.customer_id.clone(),
            status: snapshot.status,
            items,
            total: amount("order.total".into(), total)?,
            created_at: snapshot.created_at,
            updated_at: snapshot.updated_at,
            version: snapshot.version,
            payment: snapshot.payment.as_ref().map(|p| Payment {
                method: p.method,
                status: p.status,
                instructions: p.instructions.clone(),
                authorization: None,
                capturing: false,
            }),
        };
        Ok(Order::rehydrate(record)?)
    }
}

/// `order.*` data: the whole order as it is after the change, so any consumer
/// can build its view from whichever event reaches it first and keep the
/// newest by `order.version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderChanged {
    #[serde(rename = "order")]
    pub order: OrderSnapshot,
    /// Why an order was rejected, in words a customer can read.
    #[serde(rename = "reason", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl OrderChanged {
    pub fn new(order: &Order) -> Self {
        Self { order: order.into(), reason: None }
    }

    pub fn rejected(order: &Order, reason: String) -> Self {
        Self { order: order.into(), reason: Some(reason) }
    }
}

impl Payload for OrderChanged {
    fn subject(&self) -> String {
        self.order.id.to_string()
    }
}

/// `payment.void_owed.v1` data: a hold to release at the gateway, by its id
/// when we know it, else by the order (the authorization's answer was lost).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentVoidOwed {
    #[serde(rename = "order_id")]
    pub order_id: OrderId,
    #[serde(rename = "authorization", default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationId>,
}

impl Payload for PaymentVoidOwed {
    fn subject(&self) -> String {
        self.order_id.to_string()
    }
}

/// Units of one SKU held (or given back) for an order, repeated SKUs summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedLine {
    #[serde(rename = "sku")]
    pub sku: Sku,
    #[serde(rename = "quantity")]
    pub quantity: u32,
}

impl ReservedLine {
    /// From per-SKU units (see `Order::units_by_sku`).
    pub fn lines(units: &[(Sku, u32)]) -> Vec<Self> {
        units.iter().map(|(sku, quantity)| Self { sku: sku.clone(), quantity: *quantity }).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReserved {
    #[serde(rename = "order_id")]
    pub order_id: OrderId,
    #[serde(rename = "lines")]
    pub lines: Vec<ReservedLine>,
}

impl Payload for InventoryReserved {
    fn subject(&self) -> String {
        self.order_id.to_string()
    }
}

/// A line that did not fit: what was asked for and what there was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortfallLine {
    #[serde(rename = "sku")]
    pub sku: Sku,
    #[serde(rename = "requested")]
    pub requested: u32,
    #[serde(rename = "available")]
    pub available: i64,
}

impl From<&Shortfall> for ShortfallLine {
    fn from(shortfall: &Shortfall) -> Self {
        Self { sku: shortfall.sku.clone(), requested: shortfall.requested, available: shortfall.available }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRejected {
    #[serde(rename = "order_id")]
    pub order_id: OrderId,
    #[serde(rename = "shortfalls")]
    pub shortfalls: Vec<ShortfallLine>,
}

impl Payload for InventoryRejected {
    fn subject(&self) -> String {
        self.order_id.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReleased {
    #[serde(rename = "order_id")]
    pub order_id: OrderId,
    #[serde(rename = "lines")]
    pub lines: Vec<ReservedLine>,
}

impl Payload for InventoryReleased {
    fn subject(&self) -> String {
        self.order_id.to_string()
    }
}

/// A product as it is after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSnapshot {
    #[serde(rename = "sku")]
    pub sku: Sku,
    #[serde(rename = "name")]
    pub name: ProductName,
    #[serde(rename = "price")]
    pub price: Amount,
    /// Units on hand and not reserved by any order.
    #[serde(rename = "available")]
    pub available: i64,
    /// Units held by reserved orders.
    #[serde(rename = "reserved")]
    pub reserved: i64,
    #[serde(rename = "updated_at")]
    pub updated_at: DateTime<Utc>,
    #[serde(rename = "version")]
    pub version: u64,
}

impl From<&Product> for ProductSnapshot {
    fn from(product: &Product) -> Self {
        Self {
            sku: product.sku.clone(),
            name: product.name.clone(),
            price: product.price.into(),
            available: product.available,
            reserved: product.reserved,
            updated_at: product.updated_at,
            version: product.version,
        }
    }
}

/// `product.changed.v1` data. Consumers drop the SKU from their caches; none
/// needs a domain `Product` back, so there is no mapping back. Its stock
/// figures are those the change was computed from: a reservation that
/// committed between that read and the write is not in them, so a consumer
/// that needs the stock reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductChanged {
    #[serde(rename = "product")]
    pub product: ProductSnapshot,
}

impl ProductChanged {
    pub fn new(product: &Product) -> Self {
        Self { product: product.into() }
    }
}

impl Payload for ProductChanged {
    fn subject(&self) -> String {
        self.product.sku.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::parse("EUR").unwrap()).unwrap()
    }

    fn order() -> Order {
        let line = |sku: &str, quantity: i64| OrderLine {
            sku: Sku::parse(sku).unwrap(),
            quantity: Quantity::parse(quantity).unwrap(),
            unit_price: eur(1250),
        };
        Order::place(
            OrderId::from_uuid(uuid::Uuid::nil()),
            CustomerId::parse("alice").unwrap(),
            vec![line("A", 2), line("B", 1)],
            DateTime::UNIX_EPOCH,
        )
        .unwrap()
    }

    #[test]
    fn an_order_maps_to_its_snapshot_and_back_unchanged() {
        let confirmed = order().confirm_offline("Pay by bank transfer".into(), DateTime::UNIX_EPOCH).unwrap();
        assert_eq!(Order::try_from(&OrderSnapshot::from(&confirmed)), Ok(confirmed));
    }

    #[test]
    fn a_total_above_the_price_cap_maps_back() {
        let pricey = OrderLine {
            sku: Sku::parse("GOLD").unwrap(),
            quantity: Quantity::parse(1000).unwrap(),
            unit_price: eur(Money::MAX_MINOR),
        };
        let order = Order::place(
            OrderId::from_uuid(uuid::Uuid::nil()),
            CustomerId::parse("alice").unwrap(),
            vec![pricey],
            DateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(Order::try_from(&OrderSnapshot::from(&order)), Ok(order));
    }

    #[test]
    fn a_snapshot_no_order_could_have_is_an_error_naming_the_problem() {
        let placed = order();
        let mut bumped = OrderSnapshot::from(&placed);
        bumped.version = 2;
        assert_eq!(
            Order::try_from(&bumped),
            Err(InvalidPayload::Order(InvalidOrder::Version {
                id: placed.id(),
                status: OrderStatus::Pending,
                version: 2
            }))
        );

        let mut negative = OrderSnapshot::from(&placed);
        negative.items[1].unit_price.amount_minor = -1;
        let error = Order::try_from(&negative).unwrap_err();
        assert_eq!(error.to_string(), format!("order.items[1].unit_price: {}", MoneyError::InvalidAmount));

        let mut padded = OrderSnapshot::from(&placed);
        padded.total.amount_minor += 1;
        assert!(matches!(Order::try_from(&padded), Err(InvalidPayload::Order(InvalidOrder::Total { .. }))));
    }
}
