use async_trait::async_trait;
use chrono::NaiveDate;
use uuid::Uuid;

use super::{ProcessedEvent, StoreError};
use crate::domain::{Currency, CustomerId, Order, OrderId, OrderStatus, Sku};

/// One number of the analytics summary. Counters only ever move by deltas
/// committed with the event that caused them, so they add up exactly even
/// when events arrive twice or out of order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    OrdersByStatus(OrderStatus),
    /// Minor units of orders that are confirmed now.
    Revenue(Currency),
    /// Units in orders that are confirmed now.
    UnitsBySku(Sku),
    /// Orders placed on a (UTC) day.
    DailyOrders(NaiveDate),
    /// Minor units confirmed, by the day the order was placed.
    DailyRevenue(NaiveDate, Currency),
    /// Every event seen, by type: known or not.
    Events(String),
}

impl Counter {
    /// A flat string key, for stores that keep counters as rows or items.
    pub fn key(&self) -> String {
        match self {
            Self::OrdersByStatus(s) => format!("status|{s}"),
            Self::Revenue(c) => format!("revenue|{c}"),
            Self::UnitsBySku(sku) => format!("units|{sku}"),
            Self::DailyOrders(d) => format!("day_orders|{d}"),
            Self::DailyRevenue(d, c) => format!("day_revenue|{d}|{c}"),
            Self::Events(t) => format!("events|{t}"),
        }
    }

    pub fn parse_key(key: &str) -> Option<Self> {
        let mut parts = key.split('|');
        let kind = parts.next()?;
        let a = parts.next()?;
        let b = parts.next();
        let counter = match (kind, b) {
            ("status", None) => Self::OrdersByStatus(OrderStatus::parse(a)?),
            ("revenue", None) => Self::Revenue(Currency::parse(a).ok()?),
            ("units", None) => Self::UnitsBySku(Sku::parse(a).ok()?),
            ("day_orders", None) => Self::DailyOrders(a.parse().ok()?),
            ("day_revenue", Some(c)) => Self::DailyRevenue(a.parse().ok()?, Currency::parse(c).ok()?),
            ("events", None) => Self::Events(a.to_owned()),
            _ => return None,
        };
        parts.next().is_none().then_some(counter)
    }
}

/// The most items one [`ReadModelStore::apply`] may write: one per event
/// (its view, or its mark when it changes no view), one per distinct
/// counter. It is DynamoDB's limit for one `TransactWriteItems`.
pub const MAX_APPLY_ITEMS: usize = 100;

/// An order's view with the events applied to it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderView {
    pub order: Order,
    /// The ids of the events that wrote this view (each moved it to a newer
    /// version). The view is their processed mark: a redelivery of one is
    /// known by its id here, so they need no mark of their own.
    pub events: Vec<Uuid>,
}

/// One event's part of a [`ReadModelStore::apply`].
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    /// The order's new view, when the event moves it forward.
    pub view: Option<&'a Order>,
    /// The version the stored view was read at (`None`: no view yet).
    pub expected_version: Option<u32>,
    /// With a view: the events to keep on it, the stored ones and this one.
    /// They are this event's processed mark; none is written apart.
    pub view_events: &'a [Uuid],
    /// The mark written when the event changes no view.
    pub processed: &'a ProcessedEvent,
}

/// The read side (CQRS): per-order views and counters, owned by analytics.
#[async_trait]
pub trait ReadModelStore: Send + Sync {
    async fn order_view(&self, id: OrderId) -> Result<Option<OrderView>, StoreError>;

    /// Applies one or more events at once, all or nothing: writes each
    /// event's view (when it changes one, with its `view_events`) if the
    /// stored view is still at its `expected_version`, else records the
    /// event's processed mark, and adds `deltas` (the events' counter deltas,
    /// summed) to the counters.
    ///
    /// `AlreadyProcessed` when a mark exists, `Conflict` when a view moved:
    /// then nothing was written. With one event that says what happened to
    /// it; with several the caller cannot tell which, so it applies them one
    /// at a time (see the analytics projector). The events have distinct ids
    /// and touch distinct views, and all of it is at most
    /// [`MAX_APPLY_ITEMS`] items.
    async fn apply(&self, events: &[Applied<'_>], deltas: &[(Counter, i64)]) -> Result<(), StoreError>;

    async fn counters(&self) -> Result<Vec<(Counter, i64)>, StoreError>;

    /// A customer's orders, newest first, strictly older than `before`.
    async fn customer_orders(
        &self,
        customer: &CustomerId,
        before: Option<OrderId>,
        limit: usize,
    ) -> Result<Vec<Order>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_keys_round_trip() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let eur = Currency::parse("EUR").unwrap();
        for counter in [
            Counter::OrdersByStatus(OrderStatus::Confirmed),
            Counter::Revenue(eur),
            Counter::UnitsBySku(Sku::parse("TEA-1").unwrap()),
            Counter::DailyOrders(day),
            Counter::DailyRevenue(day, eur),
            Counter::Events("order.shipped.v9".into()),
        ] {
            assert_eq!(Counter::parse_key(&counter.key()), Some(counter.clone()), "{}", counter.key());
        }
        assert_eq!(Counter::parse_key("status|lost"), None);
        assert_eq!(Counter::parse_key("units|A|B"), None);
    }
}
