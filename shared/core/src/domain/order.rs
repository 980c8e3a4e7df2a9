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
//!
//! An [`Order`] is therefore always one that [`Order::place`] and the
//! transitions produced: its fields are private, and the only other way in,
//! [`Order::rehydrate`] (for stores and events bringing an order back), checks
//! that the status is reachable at the version, that the total is the sum of
//! the lines, and so on. Code past a store or a queue never re-checks.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Currency, CustomerId, Money, MoneyError, Quantity, Sku, ValidationErrors};

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

    /// Whether an order placed at version 1 (`pending`) can be in this status
    /// at `version`, each transition adding one. The machine has no cycles,
    /// so the set of statuses reachable in `n` steps is empty after at most
    /// `ALL.len()` steps, whatever `version` a corrupt record claims.
    pub fn is_reachable_at(self, version: u32) -> bool {
        let mut reachable = vec![Self::Pending];
        for _ in 1..version {
            if reachable.is_empty() {
                return false;
            }
            reachable = Self::ALL.into_iter().filter(|next| reachable.iter().any(|s| s.can_become(*next))).collect();
        }
        version >= 1 && reachable.contains(&self)
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

/// An order: created by [`Order::place`], changed only by its transitions,
/// read through getters. Its fields are private so that no code outside this
/// module can build an order in a state the machine above cannot reach (a
/// `confirmed` order at version 1, a total that is not its lines' sum).
/// Stores and events bring orders back through [`Order::rehydrate`], which
/// checks exactly that.
///
/// ```compile_fail,E0451
/// # use orderly_core::domain::Order;
/// fn skip_the_state_machine(order: &Order) -> Order {
///     Order { version: 7, ..order.clone() }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    id: OrderId,
    customer_id: CustomerId,
    status: OrderStatus,
    items: Vec<OrderLine>,
    total: Money,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Bumped by every transition; the basis of optimistic concurrency and of
    /// "apply only if newer" in read models.
    version: u32,
}

/// Every field of an order, unchecked: what a store keeps and what
/// [`Order::rehydrate`] turns back into an order.
///
/// Its serde form *is* the stored document of every adapter (SQLite
/// `orders.body`, DynamoDB `doc`, the analytics order views and the answers
/// of idempotency claims), so renaming a field here is a storage migration
/// (`tests/fixtures/stored/order.json` pins it). Events do not use it: they
/// have their own wire types in `events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total: Money,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u32,
}

/// A stored or received order that no sequence of transitions could have
/// produced: corrupt data, or a producer that does not follow the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOrder {
    #[error("order {id} has no items")]
    NoItems { id: OrderId },
    #[error("order {id}: items[{line}]: {error}")]
    Line { id: OrderId, line: usize, error: MoneyError },
    #[error("order {id}: the total is {stored}, but its items add up to {computed}")]
    Total { id: OrderId, stored: Money, computed: Money },
    #[error("order {id} cannot be {status} at version {version}")]
    Version { id: OrderId, status: OrderStatus, version: u32 },
    #[error("order {id} was updated at {updated_at}, before it was created at {created_at}")]
    UpdatedBeforeCreated { id: OrderId, created_at: DateTime<Utc>, updated_at: DateTime<Utc> },
}

/// Why a list of lines has no total.
enum TotalError {
    NoItems,
    Line(usize, MoneyError),
}

/// The sum of the lines, all in the first line's currency.
fn total_of(items: &[OrderLine]) -> Result<Money, TotalError> {
    let first = items.first().ok_or(TotalError::NoItems)?;
    items.iter().enumerate().try_fold(Money::zero(first.unit_price.currency()), |total, (i, line)| {
        line.unit_price
            .times(line.quantity.get())
            .and_then(|line_total| total.plus(&line_total))
            .map_err(|e| TotalError::Line(i, e))
    })
}

impl Order {
    /// A new `pending` order at version 1, from priced lines (see
    /// [`NewOrder::price`]).
    pub fn place(
        id: OrderId,
        customer_id: CustomerId,
        items: Vec<OrderLine>,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let total = total_of(&items).map_err(|e| match e {
            TotalError::NoItems => ValidationErrors::single("items", "an order has at least one item"),
            TotalError::Line(i, e) => ValidationErrors::single(format!("items[{i}]"), e.to_string()),
        })?;
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

    /// An order as a store or an event kept it, if it is one that
    /// [`Order::place`] and the transitions could have produced: its lines
    /// share a currency and add up to its total, its status is reachable in
    /// exactly `version - 1` transitions, and it was not updated before it
    /// was created. Anything else is an error, never a panic.
    pub fn rehydrate(record: OrderRecord) -> Result<Self, InvalidOrder> {
        let OrderRecord { id, customer_id, status, items, total, created_at, updated_at, version } = record;
        let computed = total_of(&items).map_err(|e| match e {
            TotalError::NoItems => InvalidOrder::NoItems { id },
            TotalError::Line(line, error) => InvalidOrder::Line { id, line, error },
        })?;
        if computed != total {
            return Err(InvalidOrder::Total { id, stored: total, computed });
        }
        if !status.is_reachable_at(version) {
            return Err(InvalidOrder::Version { id, status, version });
        }
        if updated_at < created_at {
            return Err(InvalidOrder::UpdatedBeforeCreated { id, created_at, updated_at });
        }
        Ok(Self { id, customer_id, status, items, total, created_at, updated_at, version })
    }

    /// Every field, for a store to keep (see [`OrderRecord`]).
    pub fn to_record(&self) -> OrderRecord {
        OrderRecord {
            id: self.id,
            customer_id: self.customer_id.clone(),
            status: self.status,
            items: self.items.clone(),
            total: self.total,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        }
    }

    pub fn id(&self) -> OrderId {
        self.id
    }

    pub fn customer_id(&self) -> &CustomerId {
        &self.customer_id
    }

    pub fn status(&self) -> OrderStatus {
        self.status
    }

    /// The lines as placed, prices frozen at intake.
    pub fn items(&self) -> &[OrderLine] {
        &self.items
    }

    pub fn total(&self) -> Money {
        self.total
    }

    pub fn currency(&self) -> Currency {
        self.total.currency()
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    /// 1 when placed, one more after every transition.
    pub fn version(&self) -> u32 {
        self.version
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

    fn at(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }

    fn line(s: &str, quantity: i64, price: Money) -> OrderLine {
        OrderLine { sku: sku(s), quantity: Quantity::parse(quantity).unwrap(), unit_price: price }
    }

    fn placed() -> Order {
        let id = OrderId::from_uuid(Uuid::nil());
        Order::place(
            id,
            CustomerId::parse("alice").unwrap(),
            vec![line("A", 2, money(150, "EUR"))],
            DateTime::UNIX_EPOCH,
        )
        .unwrap()
    }

    /// An order in `status`, reached the shortest way.
    fn order_in(status: OrderStatus) -> Order {
        let now = DateTime::UNIX_EPOCH;
        match status {
            Pending => placed(),
            Confirmed => placed().confirm(now).unwrap(),
            Rejected => placed().reject(now).unwrap(),
            Cancelled => placed().cancel(now).unwrap(),
        }
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
                    assert_eq!(next.status(), to);
                    assert_eq!(next.version(), order.version() + 1);
                }
                Err(e) => {
                    assert!(!allowed, "{from} -> {to} must be allowed");
                    assert_eq!(e, TransitionError { from, to });
                }
            }
        }
    }

    #[test]
    fn a_new_order_is_pending_at_version_1_with_a_computed_total() {
        let order = placed();
        assert_eq!(order.status(), Pending);
        assert_eq!(order.total(), money(300, "EUR"));
        assert_eq!(order.version(), 1);
    }

    #[test]
    fn a_transition_never_moves_updated_at_backwards() {
        let later = placed().confirm(at("2026-01-01T00:00:00Z")).unwrap();
        let skewed = later.cancel(at("2025-01-01T00:00:00Z")).unwrap();
        assert_eq!(skewed.updated_at(), later.updated_at());
        assert_eq!(skewed.created_at(), DateTime::UNIX_EPOCH);
    }

    #[test]
    fn statuses_are_reachable_only_at_the_versions_their_paths_take() {
        let reachable: Vec<(OrderStatus, u32)> = OrderStatus::ALL
            .into_iter()
            .flat_map(|status| (0..=6).map(move |version| (status, version)))
            .filter(|(status, version)| status.is_reachable_at(*version))
            .collect();
        assert_eq!(reachable, [(Pending, 1), (Confirmed, 2), (Rejected, 2), (Cancelled, 2), (Cancelled, 3)]);
        assert!(!Cancelled.is_reachable_at(u32::MAX), "a corrupt version is refused, and quickly");
    }

    #[test]
    fn every_reachable_order_survives_its_record() {
        let cancelled_after_confirmation = order_in(Confirmed).cancel(at("2026-01-01T00:00:00Z")).unwrap();
        for order in OrderStatus::ALL.map(order_in).into_iter().chain([cancelled_after_confirmation]) {
            assert_eq!(Order::rehydrate(order.to_record()), Ok(order));
        }
    }

    #[test]
    fn rehydration_refuses_what_no_transition_produces() {
        let id = placed().id();
        let good = order_in(Confirmed).to_record();
        let cases = [
            (OrderRecord { version: 1, ..good.clone() }, InvalidOrder::Version { id, status: Confirmed, version: 1 }),
            (
                OrderRecord { status: Pending, ..good.clone() },
                InvalidOrder::Version { id, status: Pending, version: 2 },
            ),
            (
                OrderRecord { version: 0, status: Pending, ..good.clone() },
                InvalidOrder::Version { id, status: Pending, version: 0 },
            ),
            (
                OrderRecord { total: money(299, "EUR"), ..good.clone() },
                InvalidOrder::Total { id, stored: money(299, "EUR"), computed: money(300, "EUR") },
            ),
            (OrderRecord { items: vec![], ..good.clone() }, InvalidOrder::NoItems { id }),
            (
                OrderRecord { items: vec![good.items[0].clone(), line("B", 1, money(100, "USD"))], ..good.clone() },
                InvalidOrder::Line {
                    id,
                    line: 1,
                    error: MoneyError::CurrencyMismatch(
                        Currency::parse("EUR").unwrap(),
                        Currency::parse("USD").unwrap(),
                    ),
                },
            ),
            (
                OrderRecord { updated_at: at("1969-12-31T23:59:59Z"), ..good.clone() },
                InvalidOrder::UpdatedBeforeCreated {
                    id,
                    created_at: DateTime::UNIX_EPOCH,
                    updated_at: at("1969-12-31T23:59:59Z"),
                },
            ),
        ];
        for (record, error) in cases {
            assert_eq!(Order::rehydrate(record), Err(error));
        }
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

    #[test]
    fn repeated_skus_are_summed() {
        let a = line("A", 2, money(150, "EUR"));
        let order = Order::place(
            OrderId::from_uuid(Uuid::nil()),
            CustomerId::parse("alice").unwrap(),
            vec![a.clone(), line("B", 1, money(150, "EUR")), a],
            DateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(order.units_by_sku(), vec![(sku("A"), 4), (sku("B"), 1)]);
    }

    /// The JSON every store keeps an order as (SQLite `orders.body`, DynamoDB
    /// `doc`, both read models and idempotency answers), pinned by a committed
    /// file so that orders stored by earlier builds keep loading.
    /// `ORDERLY_BLESS_FIXTURES=1` rewrites it.
    #[test]
    fn the_stored_form_of_an_order_is_unchanged() {
        let order = Order::place(
            OrderId::parse("0190a5e4-7d3a-7c4e-9a3b-2f1e0d9c8b7a").unwrap(),
            CustomerId::parse("alice").unwrap(),
            vec![line("TEA-GREEN", 2, money(1250, "EUR")), line("MUG", 1, money(800, "EUR"))],
            at("2026-11-27T10:00:00.123Z"),
        )
        .unwrap()
        .confirm(at("2026-11-27T10:00:01.5Z"))
        .unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stored/order.json");
        let stored = serde_json::to_value(order.to_record()).unwrap();
        if std::env::var_os("ORDERLY_BLESS_FIXTURES").is_some() {
            std::fs::write(&path, serde_json::to_string_pretty(&stored).unwrap() + "\n").unwrap();
        }
        let raw = std::fs::read_to_string(&path).unwrap();
        assert_eq!(stored, serde_json::from_str::<serde_json::Value>(&raw).unwrap());
        assert_eq!(Order::rehydrate(serde_json::from_str(&raw).unwrap()), Ok(order));
    }
}
