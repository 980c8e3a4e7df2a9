//! The order aggregate and its state machine.
//!
//! ```text
//!            ┌──► confirmed ──► shipped ──► delivered
//! pending ───┼──► rejected       │
//!            └───────────────────┴──► cancelled   (pending or confirmed only)
//! ```
//! Every order carries its [`Payment`]: the saga confirms an order only with
//! its payment settled (authorized by card, or offline instructions issued),
//! shipping captures a card hold, and a cancel voids it. Status and payment
//! change together, through the transitions below, never apart.
//!
//! A transition returns a *new* order with `version + 1`; stores write it only
//! if the stored version is still the one it was read at (optimistic
//! concurrency), so a cancel racing a confirmation can never be lost.
//!
//! An [`Order`] is therefore always one that [`Order::place`] and the
//! transitions produced: its fields are private, and the only other way in,
//! [`Order::rehydrate`] (for stores and events bringing an order back), checks
//! that the status is reachable at the version, that the payment fits the
//! status, that the total is the sum of the lines, and so on. Code past a
//! store or a queue never re-checks.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    AuthorizationId, Currency, CustomerId, Money, MoneyError, Payment, PaymentMethod, PaymentStatus, Quantity, Sku,
    ValidationErrors,
};

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
    Shipped,
    Delivered,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] =
        [Self::Pending, Self::Confirmed, Self::Rejected, Self::Cancelled, Self::Shipped, Self::Delivered];

    /// The whole state machine in one place.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Confirmed)
                | (Pending, Rejected)
                | (Pending, Cancelled)
                | (Confirmed, Cancelled)
                | (Confirmed, Shipped)
                | (Shipped, Delivered)
        )
    }

    /// Whether an order in this status can later be in `later`, by one
    /// transition or several. A consumer told of `later` already knows that
    /// an event announcing this status is out of date: events of one order
    /// can arrive out of order (a redrive, a relay's retry).
    pub fn leads_to(self, later: OrderStatus) -> bool {
        let mut reached = vec![self];
        let mut i = 0;
        while let Some(&status) = reached.get(i) {
            for next in Self::ALL.into_iter().filter(|next| status.can_become(*next)) {
                if next == later {
                    return true;
                }
                if !reached.contains(&next) {
                    reached.push(next);
                }
            }
            i += 1;
        }
        false
    }

    /// Whether the order's sale stands: what revenue and popularity count.
    pub fn is_sold(self) -> bool {
        matches!(self, Self::Confirmed | Self::Shipped | Self::Delivered)
    }

    /// Whether an order placed at version 1 (`pending`) can be in this status
    /// at `version`, each change adding one. Besides the status transitions,
    /// one change may touch the payment alone (an offline payment recorded
    /// on a confirmed order, a late authorization voided on a cancelled one),
    /// and only one: both need a payment that no later step brings back.
    /// A confirmed order may also start and abandon captures of its hold any
    /// number of times (a shipment's attempts, see [`Order::start_capture`]),
    /// so from `confirmed` on, a status is reachable at every version past
    /// its shortest path. The layers of reachable states either run out or
    /// stop changing after a few steps, whatever `version` a corrupt record
    /// claims.
    pub fn is_reachable_at(self, version: u32) -> bool {
        // (status, whether the one payment-only change was spent)
        let mut layer = vec![(Self::Pending, false)];
        for _ in 1..version {
            let mut next = Vec::new();
            for &(status, spent) in &layer {
                next.extend(Self::ALL.into_iter().filter(|t| status.can_become(*t)).map(|t| (t, spent)));
                if !spent && matches!(status, Self::Confirmed | Self::Cancelled) {
                    next.push((status, true));
                }
                if status == Self::Confirmed {
                    next.push((status, spent));
                }
            }
            next.sort();
            next.dedup();
            if next.is_empty() {
                return false;
            }
            if next == layer {
                break;
            }
            layer = next;
        }
        version >= 1 && layer.iter().any(|(status, _)| *status == self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
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

/// Why a payment step does not apply to an order as it is now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentStepError {
    #[error(transparent)]
    Status(#[from] TransitionError),
    #[error("the order's payment is {status}: {step} needs it {needs}")]
    Payment { status: PaymentStatus, step: &'static str, needs: &'static str },
}

/// Why an order cannot be cancelled now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    #[error("the order can no longer be cancelled: it is {}", .0.from)]
    Status(#[from] TransitionError),
    /// A shipment asked the gateway to capture the payment and its outcome
    /// is not recorded: the money may be taken already, and a void would
    /// come too late. Finishing the shipment (or its failing) decides.
    #[error("the order is being shipped: its payment is being captured")]
    Capturing,
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
    payment: Payment,
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
    /// Absent in orders stored before payments existed: see [`Payment::before_payments`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<Payment>,
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
    #[error("order {id} is {status}, but its payment is {payment}")]
    Payment { id: OrderId, status: OrderStatus, payment: PaymentStatus },
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
    /// [`NewOrder::price`]), to be paid offline unless [`Order::paid_by`]
    /// says otherwise.
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
            payment: Payment::pending(PaymentMethod::Offline),
        })
    }

    /// The same new order, to be paid by `method` (card when the shop has a
    /// payment gateway). Only a new order's method is chosen: later, only
    /// the transitions change the payment.
    pub fn paid_by(self, method: PaymentMethod) -> Self {
        if self.version == 1 && self.status == OrderStatus::Pending {
            Self { payment: Payment::pending(method), ..self }
        } else {
            self
        }
    }

    /// An order as a store or an event kept it, if it is one that
    /// [`Order::place`] and the transitions could have produced: its lines
    /// share a currency and add up to its total, its status is reachable in
    /// exactly `version - 1` transitions, and it was not updated before it
    /// was created. Anything else is an error, never a panic.
    pub fn rehydrate(record: OrderRecord) -> Result<Self, InvalidOrder> {
        let OrderRecord { id, customer_id, status, items, total, created_at, updated_at, version, payment } = record;
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
        let payment = payment.unwrap_or_else(|| Payment::before_payments(status));
        if !payment.fits(status) {
            return Err(InvalidOrder::Payment { id, status, payment: payment.status });
        }
        if updated_at < created_at {
            return Err(InvalidOrder::UpdatedBeforeCreated { id, created_at, updated_at });
        }
        Ok(Self { id, customer_id, status, items, total, created_at, updated_at, version, payment })
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
            payment: Some(self.payment.clone()),
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

    pub fn payment(&self) -> &Payment {
        &self.payment
    }

    /// Inventory reserved every line and the gateway holds the total.
    pub fn confirm_authorized(
        &self,
        authorization: AuthorizationId,
        now: DateTime<Utc>,
    ) -> Result<Self, TransitionError> {
        let payment = Payment {
            method: PaymentMethod::Card,
            status: PaymentStatus::Authorized,
            instructions: None,
            authorization: Some(authorization),
            capturing: false,
        };
        self.become_(OrderStatus::Confirmed, payment, now)
    }

    /// Inventory reserved every line; the customer pays offline, following
    /// `instructions` (no gateway, or a gateway that could not answer).
    pub fn confirm_offline(&self, instructions: String, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        let payment = Payment {
            method: PaymentMethod::Offline,
            status: PaymentStatus::AwaitingOffline,
            instructions: Some(instructions),
            authorization: None,
            capturing: false,
        };
        self.become_(OrderStatus::Confirmed, payment, now)
    }

    /// Inventory could not reserve every line.
    pub fn reject(&self, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        self.become_(OrderStatus::Rejected, self.payment.clone(), now)
    }

    /// The gateway refused the card: the order is rejected.
    pub fn decline(&self, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        let payment = Payment {
            method: PaymentMethod::Card,
            status: PaymentStatus::Declined,
            instructions: None,
            authorization: None,
            capturing: false,
        };
        self.become_(OrderStatus::Rejected, payment, now)
    }

    /// Cancels a pending or confirmed order. A card hold becomes `voided`:
    /// the caller owes the gateway the void of [`Payment::authorization`].
    /// Not while a shipment is capturing the hold ([`CancelError::Capturing`]).
    pub fn cancel(&self, now: DateTime<Utc>) -> Result<Self, CancelError> {
        if self.payment.capturing {
            return Err(CancelError::Capturing);
        }
        let mut payment = self.payment.clone();
        if payment.status == PaymentStatus::Authorized {
            payment.status = PaymentStatus::Voided;
        }
        Ok(self.become_(OrderStatus::Cancelled, payment, now)?)
    }

    /// An authorization that arrived for an order cancelled meanwhile: the
    /// hold is recorded as voided, and the caller owes the gateway the void
    /// (by `authorization`, or by reference when its answer was lost).
    pub fn void_late_authorization(
        &self,
        authorization: Option<AuthorizationId>,
        now: DateTime<Utc>,
    ) -> Result<Self, PaymentStepError> {
        self.payment_step("voiding a late authorization", "pending on a cancelled order", now, |order| {
            let voided = Payment {
                method: PaymentMethod::Card,
                status: PaymentStatus::Voided,
                instructions: None,
                authorization,
                capturing: false,
            };
            (order.status == OrderStatus::Cancelled && order.payment.status == PaymentStatus::Pending).then_some(voided)
        })
    }

    /// An admin recorded the offline payment of a confirmed order.
    pub fn record_offline_payment(&self, now: DateTime<Utc>) -> Result<Self, PaymentStepError> {
        self.payment_step("recording a payment", "awaiting_offline on a confirmed order", now, |order| {
            (order.status == OrderStatus::Confirmed && order.payment.status == PaymentStatus::AwaitingOffline)
                .then(|| Payment { status: PaymentStatus::Paid, ..order.payment.clone() })
        })
    }

    /// A shipment is about to ask the gateway to capture the card hold. It
    /// is recorded (and saved) *before* the call: from then on the money may
    /// be taken, so a cancel is refused until [`Order::ship`] records the
    /// capture or [`Order::abandon_capture`] records that none happened.
    /// Without it, a cancel saved while the capture is in flight would owe a
    /// void that the gateway refuses, leaving a cancelled order charged.
    /// Starting again while capturing is allowed: the capture is idempotent.
    pub fn start_capture(&self, now: DateTime<Utc>) -> Result<Self, PaymentStepError> {
        self.payment_step("capturing", "authorized on a confirmed order", now, |order| {
            (order.status == OrderStatus::Confirmed && order.payment.status == PaymentStatus::Authorized)
                .then(|| Payment { capturing: true, ..order.payment.clone() })
        })
    }

    /// The gateway said it did not capture (it refused, or did nothing): the
    /// hold stands as it was, and the order may be cancelled again.
    pub fn abandon_capture(&self, now: DateTime<Utc>) -> Result<Self, PaymentStepError> {
        self.payment_step("abandoning a capture", "capturing", now, |order| {
            order.payment.capturing.then(|| Payment { capturing: false, ..order.payment.clone() })
        })
    }

    /// Ships a confirmed order whose payment is settled: a card hold is
    /// captured (the caller has captured it at the gateway, after
    /// [`Order::start_capture`]), an offline payment must have been recorded.
    pub fn ship(&self, now: DateTime<Utc>) -> Result<Self, PaymentStepError> {
        let payment = match self.payment.status {
            PaymentStatus::Authorized => {
                Payment { status: PaymentStatus::Captured, capturing: false, ..self.payment.clone() }
            }
            PaymentStatus::Paid => self.payment.clone(),
            status if self.status == OrderStatus::Confirmed => {
                return Err(PaymentStepError::Payment { status, step: "shipping", needs: "authorized or paid" });
            }
            _ => self.payment.clone(),
        };
        Ok(self.become_(OrderStatus::Shipped, payment, now)?)
    }

    pub fn deliver(&self, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        self.become_(OrderStatus::Delivered, self.payment.clone(), now)
    }

    fn become_(&self, next: OrderStatus, payment: Payment, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        if !self.status.can_become(next) {
            return Err(TransitionError { from: self.status, to: next });
        }
        Ok(Self { status: next, payment, ..self.changed(now) })
    }

    /// A change of the payment alone; `step` returns the new payment if it
    /// applies to the order as it is.
    fn payment_step(
        &self,
        step: &'static str,
        needs: &'static str,
        now: DateTime<Utc>,
        next: impl FnOnce(&Self) -> Option<Payment>,
    ) -> Result<Self, PaymentStepError> {
        let payment = next(self).ok_or(PaymentStepError::Payment { status: self.payment.status, step, needs })?;
        Ok(Self { payment, ..self.changed(now) })
    }

    /// The same order, one version on.
    fn changed(&self, now: DateTime<Utc>) -> Self {
        Self {
            // Never let a skewed clock make updated_at go backwards.
            updated_at: now.max(self.updated_at),
            version: self.version + 1,
            ..self.clone()
        }
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
            Confirmed => confirmed(),
            Rejected => placed().reject(now).unwrap(),
            Cancelled => placed().cancel(now).unwrap(),
            Shipped => confirmed().record_offline_payment(now).unwrap().ship(now).unwrap(),
            Delivered => order_in(Shipped).deliver(now).unwrap(),
        }
    }

    fn confirmed() -> Order {
        placed().confirm_offline("Pay by transfer".into(), DateTime::UNIX_EPOCH).unwrap()
    }

    fn authorization() -> AuthorizationId {
        AuthorizationId::parse("auth-1").unwrap()
    }

    fn card_confirmed() -> Order {
        placed().paid_by(PaymentMethod::Card).confirm_authorized(authorization(), DateTime::UNIX_EPOCH).unwrap()
    }

    #[test]
    fn every_transition_follows_the_contract_table() {
        let table = [
            (Pending, Shipped, false),
            (Confirmed, Shipped, true),
            (Shipped, Delivered, true),
            (Shipped, Cancelled, false),
            (Delivered, Cancelled, false),
            (Delivered, Shipped, false),
            (Cancelled, Shipped, false),
            (Rejected, Delivered, false),
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
        assert_eq!(table.len(), 24, "the first four states' pairs, and every way into or out of the last two");
        for (from, to, allowed) in table {
            assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
            let order = order_in(from);
            let now = DateTime::UNIX_EPOCH;
            let result = match to {
                Confirmed => order.confirm_offline("Pay by transfer".into(), now),
                Rejected => order.reject(now),
                Cancelled => order.cancel(now).map_err(|e| match e {
                    CancelError::Status(e) => e,
                    other => panic!("{other}"),
                }),
                Shipped if from == Confirmed => order.record_offline_payment(now).unwrap().ship(now).map_err(|e| {
                    let PaymentStepError::Status(e) = e else { panic!("{e}") };
                    e
                }),
                Shipped => order.ship(now).map_err(|e| match e {
                    PaymentStepError::Status(e) => e,
                    other => panic!("{other}"),
                }),
                Delivered => order.deliver(now),
                Pending => continue,
            };
            match result {
                Ok(next) => {
                    assert!(allowed, "{from} -> {to} must be refused");
                    assert_eq!(next.status(), to);
                    assert!(next.version() > order.version());
                }
                Err(e) => {
                    assert!(!allowed, "{from} -> {to} must be allowed");
                    assert_eq!(e, TransitionError { from, to });
                }
            }
        }
    }

    #[test]
    fn a_status_leads_only_to_the_statuses_its_transitions_reach() {
        let reach =
            |from: OrderStatus| OrderStatus::ALL.into_iter().filter(|to| from.leads_to(*to)).collect::<Vec<_>>();
        assert_eq!(reach(Pending), [Confirmed, Rejected, Cancelled, Shipped, Delivered]);
        assert_eq!(reach(Confirmed), [Cancelled, Shipped, Delivered]);
        assert_eq!(reach(Shipped), [Delivered]);
        for terminal in [Rejected, Cancelled, Delivered] {
            assert_eq!(reach(terminal), [], "{terminal}");
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
        let later = placed().confirm_offline("Pay".into(), at("2026-01-01T00:00:00Z")).unwrap();
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
        assert_eq!(
            reachable,
            [
                (Pending, 1),
                (Confirmed, 2),
                (Confirmed, 3),
                (Confirmed, 4),
                (Confirmed, 5),
                (Confirmed, 6),
                (Rejected, 2),
                (Cancelled, 2),
                (Cancelled, 3),
                (Cancelled, 4),
                (Cancelled, 5),
                (Cancelled, 6),
                (Shipped, 3),
                (Shipped, 4),
                (Shipped, 5),
                (Shipped, 6),
                (Delivered, 4),
                (Delivered, 5),
                (Delivered, 6),
            ]
        );
        // Checked in a few steps whatever the version claims.
        assert!(!Rejected.is_reachable_at(u32::MAX));
        assert!(Delivered.is_reachable_at(u32::MAX), "attempts to capture have no limit");
    }

    #[test]
    fn a_card_order_cannot_be_cancelled_while_its_capture_is_in_flight() {
        let now = DateTime::UNIX_EPOCH;
        let capturing = card_confirmed().start_capture(now).unwrap();
        assert!(capturing.payment().capturing);
        assert_eq!(capturing.payment().status, PaymentStatus::Authorized);
        assert_eq!(capturing.cancel(now), Err(CancelError::Capturing));

        let shipped = capturing.ship(now).unwrap();
        assert_eq!((shipped.status(), shipped.payment().status), (Shipped, PaymentStatus::Captured));
        assert!(!shipped.payment().capturing);

        let abandoned = capturing.abandon_capture(now).unwrap();
        assert_eq!(abandoned.cancel(now).unwrap().payment().status, PaymentStatus::Voided);
        assert!(abandoned.abandon_capture(now).is_err(), "nothing to abandon");
        // Only a held card payment on a confirmed order is captured.
        assert!(order_in(Confirmed).start_capture(now).is_err());
        assert!(order_in(Shipped).start_capture(now).is_err());
    }

    #[test]
    fn every_reachable_order_survives_its_record() {
        let cancelled_after_confirmation = order_in(Confirmed).cancel(at("2026-01-01T00:00:00Z")).unwrap();
        let card_shipped = card_confirmed().ship(DateTime::UNIX_EPOCH).unwrap();
        let late_void = placed()
            .cancel(DateTime::UNIX_EPOCH)
            .unwrap()
            .void_late_authorization(Some(authorization()), DateTime::UNIX_EPOCH)
            .unwrap();
        let declined = placed().decline(DateTime::UNIX_EPOCH).unwrap();
        let capturing = card_confirmed().start_capture(DateTime::UNIX_EPOCH).unwrap();
        let abandoned_twice = (0..2).fold(card_confirmed(), |order, _| {
            order.start_capture(DateTime::UNIX_EPOCH).unwrap().abandon_capture(DateTime::UNIX_EPOCH).unwrap()
        });
        let shipped_on_a_third_try = abandoned_twice
            .start_capture(DateTime::UNIX_EPOCH)
            .unwrap()
            .ship(DateTime::UNIX_EPOCH)
            .unwrap()
            .deliver(DateTime::UNIX_EPOCH)
            .unwrap();
        let extra = [
            cancelled_after_confirmation,
            card_shipped,
            late_void,
            declined,
            capturing,
            abandoned_twice,
            shipped_on_a_third_try,
        ];
        for order in OrderStatus::ALL.map(order_in).into_iter().chain(extra) {
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
    fn a_card_order_is_confirmed_authorized_captured_at_shipment_and_voided_by_a_cancel() {
        let now = DateTime::UNIX_EPOCH;
        let confirmed = card_confirmed();
        assert_eq!(confirmed.payment().status, PaymentStatus::Authorized);
        assert_eq!(confirmed.payment().authorization, Some(authorization()));
        assert_eq!(confirmed.ship(now).unwrap().payment().status, PaymentStatus::Captured);
        let cancelled = confirmed.cancel(now).unwrap();
        assert_eq!(cancelled.payment().status, PaymentStatus::Voided);
        assert_eq!(cancelled.payment().authorization, Some(authorization()), "the void needs the hold's id");
    }

    #[test]
    fn an_offline_order_ships_only_once_its_payment_is_recorded() {
        let now = DateTime::UNIX_EPOCH;
        let confirmed = confirmed();
        assert_eq!(confirmed.payment().method, PaymentMethod::Offline);
        assert_eq!(confirmed.payment().status, PaymentStatus::AwaitingOffline);
        assert!(matches!(
            confirmed.ship(now),
            Err(PaymentStepError::Payment { status: PaymentStatus::AwaitingOffline, .. })
        ));
        let paid = confirmed.record_offline_payment(now).unwrap();
        assert_eq!((paid.status(), paid.payment().status), (Confirmed, PaymentStatus::Paid));
        assert!(paid.record_offline_payment(now).is_err(), "recorded once");
        assert_eq!(paid.ship(now).unwrap().payment().status, PaymentStatus::Paid);
        assert!(card_confirmed().record_offline_payment(now).is_err(), "a card order is not paid offline");
    }

    #[test]
    fn a_declined_card_rejects_the_order_and_a_shipped_order_cannot_be_cancelled() {
        let now = DateTime::UNIX_EPOCH;
        let declined = placed().paid_by(PaymentMethod::Card).decline(now).unwrap();
        assert_eq!((declined.status(), declined.payment().status), (Rejected, PaymentStatus::Declined));
        let shipped = card_confirmed().ship(now).unwrap();
        assert_eq!(shipped.cancel(now), Err(CancelError::Status(TransitionError { from: Shipped, to: Cancelled })));
    }

    #[test]
    fn a_late_authorization_on_a_cancelled_order_is_recorded_voided_once() {
        let now = DateTime::UNIX_EPOCH;
        let cancelled = placed().paid_by(PaymentMethod::Card).cancel(now).unwrap();
        let voided = cancelled.void_late_authorization(Some(authorization()), now).unwrap();
        assert_eq!((voided.status(), voided.payment().status), (Cancelled, PaymentStatus::Voided));
        assert!(voided.void_late_authorization(Some(authorization()), now).is_err());
        assert!(placed().void_late_authorization(Some(authorization()), now).is_err(), "only on a cancelled order");
    }

    #[test]
    fn rehydration_refuses_a_payment_that_does_not_fit_the_status() {
        let mut record = card_confirmed().to_record();
        record.payment.as_mut().unwrap().status = PaymentStatus::Declined;
        assert!(matches!(Order::rehydrate(record), Err(InvalidOrder::Payment { .. })));
        let mut record = order_in(Shipped).to_record();
        record.payment.as_mut().unwrap().capturing = true;
        assert!(
            matches!(Order::rehydrate(record), Err(InvalidOrder::Payment { .. })),
            "only a held payment is captured"
        );
    }

    #[test]
    fn orders_stored_before_payments_load_as_offline_orders() {
        for (order, payment) in [(placed(), PaymentStatus::Pending), (confirmed(), PaymentStatus::AwaitingOffline)] {
            let mut stored = serde_json::to_value(order.to_record()).unwrap();
            stored.as_object_mut().unwrap().remove("payment");
            let order = Order::rehydrate(serde_json::from_value(stored).unwrap()).unwrap();
            assert_eq!(order.payment().method, PaymentMethod::Offline);
            assert_eq!(order.payment().status, payment);
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
        .confirm_offline(
            "Pay 33.00 EUR quoting 0190a5e4-7d3a-7c4e-9a3b-2f1e0d9c8b7a".into(),
            at("2026-11-27T10:00:01.5Z"),
        )
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

    /// Orders stored by the build before payments keep loading, as offline orders.
    #[test]
    fn an_order_stored_before_payments_still_loads() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stored/order-before-payments.json");
        let record: OrderRecord = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let order = Order::rehydrate(record).unwrap();
        assert_eq!((order.status(), order.payment().status), (Confirmed, PaymentStatus::AwaitingOffline));
    }
}
