//! The order aggregate and its state machine.
//!
//! ```text
//!            ┌──────────► confirmed ──┐
//! pending ───┼──────────► rejected    ├──► cancelled
//!            └────────────────────────┘
//! ```
//! A transition returns a *new* order with `version + 1`; stores write it only
//! if the stored version is still the one it was read at (optimistic
//! concurrency), so a cancel racing a confirmation can never be lost.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Currency, CustomerId, Money, Quantity, Sku, ValidationErrors};

pub const MAX_ORDER_LINES: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// Accepts only the canonical hyphenated form, so one order has one URL.
    pub fn parse(raw: &str) -> Option<Self> {
        let id = Uuid::try_parse(raw).ok()?;
        (id.hyphenated().to_string() == raw).then_some(Self(id))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 4] = [Self::Pending, Self::Confirmed, Self::Rejected, Self::Cancelled];

    /// The whole state machine in one place.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Confirmed) | (Pending, Rejected) | (Pending, Cancelled) | (Confirmed, Cancelled)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from} cannot become {to}")]
pub struct TransitionError {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// A requested line before pricing: what the customer asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewOrderLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// A validated order request: 1..=50 lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewOrder {
    lines: Vec<NewOrderLine>,
}

impl NewOrder {
    pub fn new(lines: Vec<NewOrderLine>) -> Result<Self, ValidationErrors> {
        if lines.is_empty() || lines.len() > MAX_ORDER_LINES {
            return Err(ValidationErrors::single("items", format!("an order has from 1 to {MAX_ORDER_LINES} items")));
        }
        Ok(Self { lines })
    }

    pub fn lines(&self) -> &[NewOrderLine] {
        &self.lines
    }

    pub fn skus(&self) -> Vec<Sku> {
        let mut skus: Vec<Sku> = self.lines.iter().map(|l| l.sku.clone()).collect();
        skus.sort();
        skus.dedup();
        skus
    }

    /// Freezes today's prices into the lines. Every SKU must be known and all
    /// must share one currency: the first line's.
    pub fn price(&self, prices: &HashMap<Sku, Money>) -> Result<Vec<OrderLine>, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut currency: Option<Currency> = None;
        let mut priced = Vec::with_capacity(self.lines.len());
        for (i, line) in self.lines.iter().enumerate() {
            let Some(price) = prices.get(&line.sku) else {
                errors.push(format!("items[{i}].sku"), format!("unknown SKU {}", line.sku));
                continue;
            };
            let order_currency = *currency.get_or_insert(price.currency());
            if price.currency() != order_currency {
                errors.push(
                    format!("items[{i}].sku"),
                    format!(
                        "{} is priced in {}, but this order is in {order_currency}: one currency per order",
                        line.sku,
                        price.currency()
                    ),
                );
                continue;
            }
            priced.push(OrderLine { sku: line.sku.clone(), quantity: line.quantity, unit_price: *price });
        }
        errors.into_result().map(|()| priced)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total: Money,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every transition; the basis of optimistic concurrency and of
    /// "apply only if newer" in read models.
    pub version: u32,
}

impl Order {
    /// A new `pending` order from priced lines (see [`NewOrder::price`]).
    pub fn place(
        id: OrderId,
        customer_id: CustomerId,
        items: Vec<OrderLine>,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let first = items.first().ok_or_else(|| ValidationErrors::single("items", "an order has at least one item"))?;
        let mut total = Money::zero(first.unit_price.currency());
        for (i, line) in items.iter().enumerate() {
            total = line
                .unit_price
                .times(line.quantity.get())
                .and_then(|line_total| total.plus(&line_total))
                .map_err(|e| ValidationErrors::single(format!("items[{i}]"), e.to_string()))?;
        }
        Ok(Self {
            id,
            customer_id,
            status: OrderStatus::Pending,
            items,
            total,
            created_at: now,
            updated_at: now,
            version: 1,
        })
    }

    pub fn currency(&self) -> Currency {
        self.total.currency()
    }

    pub fn confirm(&self, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        self.become_(OrderStatus::Confirmed, now)
    }

    pub fn reject(&self, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        self.become_(OrderStatus::Rejected, now)
    }

    pub fn cancel(&self, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        self.become_(OrderStatus::Cancelled, now)
    }

    fn become_(&self, next: OrderStatus, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        if !self.status.can_become(next) {
            return Err(TransitionError { from: self.status, to: next });
        }
        Ok(Self {
            status: next,
            // Never let a skewed clock make updated_at go backwards.
            updated_at: now.max(self.updated_at),
            version: self.version + 1,
            ..self.clone()
        })
    }

    /// Units per SKU, with repeated SKUs summed.
    pub fn units_by_sku(&self) -> Vec<(Sku, u32)> {
        let mut units: Vec<(Sku, u32)> = Vec::new();
        for line in &self.items {
            match units.iter_mut().find(|(sku, _)| *sku == line.sku) {
                Some((_, n)) => *n += line.quantity.get(),
                None => units.push((line.sku.clone(), line.quantity.get())),
            }
        }
        units
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn money(minor: i64, cur: &str) -> Money {
        Money::from_minor(minor, Currency::parse(cur).unwrap()).unwrap()
    }

    fn order_in(status: OrderStatus) -> Order {
        let line = OrderLine { sku: sku("A"), quantity: Quantity::parse(2).unwrap(), unit_price: money(150, "EUR") };
        let order = Order::place(
            OrderId::from_uuid(Uuid::nil()),
            CustomerId::parse("alice").unwrap(),
            vec![line],
            DateTime::UNIX_EPOCH,
        )
        .unwrap();
        Order { status, ..order }
    }

    #[test]
    fn every_transition_follows_the_contract_table() {
        let table = [
            (Pending, Confirmed, true),
            (Pending, Rejected, true),
            (Pending, Cancelled, true),
            (Pending, Pending, false),
            (Confirmed, Cancelled, true),
            (Confirmed, Rejected, false),
            (Confirmed, Pending, false),
            (Confirmed, Confirmed, false),
            (Rejected, Confirmed, false),
            (Rejected, Cancelled, false),
            (Rejected, Pending, false),
            (Rejected, Rejected, false),
            (Cancelled, Confirmed, false),
            (Cancelled, Rejected, false),
            (Cancelled, Pending, false),
            (Cancelled, Cancelled, false),
        ];
        assert_eq!(table.len(), 16, "all pairs of the four states");
        for (from, to, allowed) in table {
            assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
            let order = order_in(from);
            let result = match to {
                Confirmed => order.confirm(DateTime::UNIX_EPOCH),
                Rejected => order.reject(DateTime::UNIX_EPOCH),
                Cancelled => order.cancel(DateTime::UNIX_EPOCH),
                Pending => continue,
            };
            match result {
                Ok(next) => {
                    assert!(allowed, "{from} -> {to} must be refused");
                    assert_eq!(next.status, to);
                    assert_eq!(next.version, order.version + 1);
                }
                Err(e) => {
                    assert!(!allowed, "{from} -> {to} must be allowed");
                    assert_eq!(e, TransitionError { from, to });
                }
            }
        }
    }

    #[test]
    fn a_new_order_is_pending_with_a_computed_total() {
        let order = order_in(Pending);
        assert_eq!(order.status, Pending);
        assert_eq!(order.total, money(300, "EUR"));
        assert_eq!(order.version, 1);
    }

    #[test]
    fn pricing_names_unknown_skus_and_mixed_currencies() {
        let new = NewOrder::new(vec![
            NewOrderLine { sku: sku("A"), quantity: Quantity::parse(1).unwrap() },
            NewOrderLine { sku: sku("B"), quantity: Quantity::parse(1).unwrap() },
            NewOrderLine { sku: sku("C"), quantity: Quantity::parse(1).unwrap() },
        ])
        .unwrap();
        let prices = HashMap::from([(sku("A"), money(100, "EUR")), (sku("B"), money(100, "USD"))]);
        let errors = new.price(&prices).unwrap_err();
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["items[1].sku", "items[2].sku"]);
    }

    #[test]
    fn an_order_has_one_to_fifty_lines() {
        assert!(NewOrder::new(vec![]).is_err());
        let line = NewOrderLine { sku: sku("A"), quantity: Quantity::parse(1).unwrap() };
        assert!(NewOrder::new(vec![line.clone(); 50]).is_ok());
        assert!(NewOrder::new(vec![line; 51]).is_err());
    }

    #[test]
    fn order_ids_have_one_canonical_form() {
        let id = "0190a5e4-7d3a-7c4e-9a3b-2f1e0d9c8b7a";
        assert!(OrderId::parse(id).is_some());
        assert!(OrderId::parse(&id.to_uppercase()).is_none());
        assert!(OrderId::parse(&id.replace('-', "")).is_none());
        assert!(OrderId::parse("not-an-id").is_none());
    }

    /// The JSON every store keeps an order as (SQLite `orders.body`, DynamoDB
    /// `doc`, both read models and idempotency answers), pinned by a committed
    /// file so that orders stored by earlier builds keep loading.
    /// `ORDERLY_BLESS_FIXTURES=1` rewrites it.
    #[test]
    fn the_stored_form_of_an_order_is_unchanged() {
        let at = |raw: &str| raw.parse::<DateTime<Utc>>().unwrap();
        let line = |s: &str, q: i64, minor: i64| OrderLine {
            sku: sku(s),
            quantity: Quantity::parse(q).unwrap(),
            unit_price: money(minor, "EUR"),
        };
        let order = Order::place(
            OrderId::parse("0190a5e4-7d3a-7c4e-9a3b-2f1e0d9c8b7a").unwrap(),
            CustomerId::parse("alice").unwrap(),
            vec![line("TEA-GREEN", 2, 1250), line("MUG", 1, 800)],
            at("2026-11-27T10:00:00.123Z"),
        )
        .unwrap()
        .confirm(at("2026-11-27T10:00:01.5Z"))
        .unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stored/order.json");
        let stored = serde_json::to_value(&order).unwrap();
        if std::env::var_os("ORDERLY_BLESS_FIXTURES").is_some() {
            std::fs::write(&path, serde_json::to_string_pretty(&stored).unwrap() + "\n").unwrap();
        }
        let raw = std::fs::read_to_string(&path).unwrap();
        assert_eq!(stored, serde_json::from_str::<serde_json::Value>(&raw).unwrap());
        assert_eq!(serde_json::from_str::<Order>(&raw).unwrap(), order);
    }

    #[test]
    fn repeated_skus_are_summed() {
        let mut order = order_in(Pending);
        order.items.push(order.items[0].clone());
        assert_eq!(order.units_by_sku(), vec![(sku("A"), 4)]);
    }
}
