//! Pure read-model arithmetic.

use std::collections::BTreeMap;

use orderly_core::domain::{Money, Order, OrderStatus};
use orderly_core::ports::Counter;
use serde::Serialize;
use utoipa::ToSchema;

/// What one order adds to the counters, given its status.
pub fn contributions(order: &Order) -> Vec<(Counter, i64)> {
    let day = order.created_at().date_naive();
    let mut counters = vec![(Counter::OrdersByStatus(order.status()), 1), (Counter::DailyOrders(day), 1)];
    // A sale that stands: confirmed, shipped or delivered now.
    if order.status().is_sold() {
        let total = order.total().amount_minor();
        counters.push((Counter::Revenue(order.currency()), total));
        counters.push((Counter::DailyRevenue(day, order.currency()), total));
        for (sku, units) in order.units_by_sku() {
            counters.push((Counter::UnitsBySku(sku), i64::from(units)));
        }
    }
    counters
}

/// The counter deltas that move the read model from `current` to `incoming`,
/// or `None` when `incoming` is not newer (a duplicate or a late event).
pub fn project(current: Option<&Order>, incoming: &Order) -> Option<Vec<(Counter, i64)>> {
    if current.is_some_and(|c| c.version() >= incoming.version()) {
        return None;
    }
    let mut deltas: BTreeMap<Counter, i64> = BTreeMap::new();
    for (counter, value) in current.map(contributions).unwrap_or_default() {
        *deltas.entry(counter).or_default() -= value;
    }
    for (counter, value) in contributions(incoming) {
        *deltas.entry(counter).or_default() += value;
    }
    Some(deltas.into_iter().filter(|(_, delta)| *delta != 0).collect())
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct DailyFigures {
    #[schema(example = "2026-11-27")]
    pub date: String,
    /// Orders placed that day.
    pub orders: i64,
    /// Revenue of that day's orders that are confirmed, shipped or delivered now, per currency.
    pub revenue: BTreeMap<String, String>,
}

/// `GET /api/v1/analytics/summary`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Summary {
    pub orders_by_status: BTreeMap<String, i64>,
    pub orders_total: i64,
    /// Totals of orders that are confirmed, shipped or delivered now (cancellations subtract), per currency.
    pub revenue: BTreeMap<String, String>,
    /// Units in orders that are confirmed, shipped or delivered now.
    pub units_by_sku: BTreeMap<String, i64>,
    pub daily: Vec<DailyFigures>,
    /// Every event seen, by type.
    pub events_by_type: BTreeMap<String, i64>,
}

impl Summary {
    pub fn from_counters(counters: &[(Counter, i64)]) -> Self {
        let mut summary = Summary {
            orders_by_status: OrderStatus::ALL.iter().map(|s| (s.to_string(), 0)).collect(),
            ..Default::default()
        };
        let mut daily: BTreeMap<chrono::NaiveDate, DailyFigures> = BTreeMap::new();
        let money = |minor: i64| Money::format_minor(minor);
        for (counter, value) in counters {
            let value = *value;
            match counter {
                Counter::OrdersByStatus(status) => {
                    summary.orders_by_status.insert(status.to_string(), value);
                    summary.orders_total += value;
                }
                Counter::Revenue(currency) if value != 0 => {
                    summary.revenue.insert(currency.to_string(), money(value));
                }
                Counter::UnitsBySku(sku) if value != 0 => {
                    summary.units_by_sku.insert(sku.to_string(), value);
                }
                Counter::DailyOrders(day) => {
                    let entry = daily
                        .entry(*day)
                        .or_insert_with(|| DailyFigures { date: day.to_string(), ..Default::default() });
                    entry.orders = value;
                }
                Counter::DailyRevenue(day, currency) if value != 0 => {
                    let entry = daily
                        .entry(*day)
                        .or_insert_with(|| DailyFigures { date: day.to_string(), ..Default::default() });
                    entry.revenue.insert(currency.to_string(), money(value));
                }
                Counter::Events(kind) => {
                    summary.events_by_type.insert(kind.clone(), value);
                }
                _ => {}
            }
        }
        summary.daily = daily.into_values().collect();
        summary
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use orderly_core::domain::{Currency, CustomerId, OrderId, OrderLine, Quantity, Sku};

    use super::*;

    /// The order along placed (v1) -> confirmed (v2) -> cancelled (v3).
    fn order(status: OrderStatus) -> Order {
        let line = OrderLine {
            sku: Sku::parse("TEA").unwrap(),
            quantity: Quantity::parse(3).unwrap(),
            unit_price: Money::from_minor(250, Currency::parse("EUR").unwrap()).unwrap(),
        };
        let at: DateTime<Utc> = "2026-11-27T10:00:00Z".parse().unwrap();
        let placed =
            Order::place(OrderId::from_uuid(uuid::Uuid::nil()), CustomerId::parse("c").unwrap(), vec![line], at)
                .unwrap();
        match status {
            OrderStatus::Pending => placed,
            OrderStatus::Confirmed => placed.confirm_offline("Pay by bank transfer".into(), at).unwrap(),
            OrderStatus::Cancelled => {
                placed.confirm_offline("Pay by bank transfer".into(), at).unwrap().cancel(at).unwrap()
            }
            OrderStatus::Rejected => placed.reject(at).unwrap(),
            OrderStatus::Shipped => order(OrderStatus::Confirmed).record_offline_payment(at).unwrap().ship(at).unwrap(),
            OrderStatus::Delivered => order(OrderStatus::Shipped).deliver(at).unwrap(),
        }
    }

    fn apply(counters: &mut BTreeMap<Counter, i64>, deltas: Vec<(Counter, i64)>) {
        for (c, d) in deltas {
            *counters.entry(c).or_default() += d;
        }
    }

    #[test]
    fn a_confirmation_moves_the_order_and_adds_revenue() {
        let deltas = project(Some(&order(OrderStatus::Pending)), &order(OrderStatus::Confirmed)).unwrap();
        assert!(deltas.contains(&(Counter::OrdersByStatus(OrderStatus::Pending), -1)));
        assert!(deltas.contains(&(Counter::OrdersByStatus(OrderStatus::Confirmed), 1)));
        assert!(deltas.contains(&(Counter::Revenue(Currency::parse("EUR").unwrap()), 750)));
        assert!(deltas.contains(&(Counter::UnitsBySku(Sku::parse("TEA").unwrap()), 3)));
        assert!(!deltas.iter().any(|(c, _)| matches!(c, Counter::DailyOrders(_))), "the day does not change");
    }

    #[test]
    fn shipped_and_delivered_orders_keep_their_revenue_and_units() {
        let euros = Counter::Revenue(Currency::parse("EUR").unwrap());
        let deltas = project(Some(&order(OrderStatus::Confirmed)), &order(OrderStatus::Shipped)).unwrap();
        assert!(deltas.contains(&(Counter::OrdersByStatus(OrderStatus::Shipped), 1)));
        assert!(!deltas.iter().any(|(c, _)| *c == euros), "still sold: revenue unchanged");
        let mut counters = BTreeMap::new();
        apply(&mut counters, project(None, &order(OrderStatus::Delivered)).unwrap());
        assert_eq!(counters.get(&euros), Some(&750));
        assert_eq!(counters.get(&Counter::UnitsBySku(Sku::parse("TEA").unwrap())), Some(&3));
    }

    #[test]
    fn stale_and_duplicate_events_change_nothing() {
        let confirmed = order(OrderStatus::Confirmed);
        assert_eq!(project(Some(&confirmed), &order(OrderStatus::Pending)), None);
        assert_eq!(project(Some(&confirmed), &confirmed), None);
    }

    #[test]
    fn any_delivery_order_ends_in_the_same_totals() {
        let (placed, confirmed, cancelled) =
            (order(OrderStatus::Pending), order(OrderStatus::Confirmed), order(OrderStatus::Cancelled));
        let mut in_order = BTreeMap::new();
        let mut view: Option<Order> = None;
        for o in [&placed, &confirmed, &cancelled] {
            if let Some(d) = project(view.as_ref(), o) {
                apply(&mut in_order, d);
                view = Some(o.clone());
            }
        }
        let mut shuffled = BTreeMap::new();
        let mut view: Option<Order> = None;
        for o in [&cancelled, &placed, &confirmed, &cancelled] {
            if let Some(d) = project(view.as_ref(), o) {
                apply(&mut shuffled, d);
                view = Some(o.clone());
            }
        }
        in_order.retain(|_, v| *v != 0);
        shuffled.retain(|_, v| *v != 0);
        assert_eq!(in_order, shuffled);
        assert_eq!(in_order.get(&Counter::OrdersByStatus(OrderStatus::Cancelled)), Some(&1));
        assert_eq!(in_order.get(&Counter::Revenue(Currency::parse("EUR").unwrap())), None);
    }

    #[test]
    fn the_summary_lists_every_status_and_formats_money() {
        let counters = vec![
            (Counter::OrdersByStatus(OrderStatus::Confirmed), 2),
            (Counter::Revenue(Currency::parse("EUR").unwrap()), 1250),
        ];
        let summary = Summary::from_counters(&counters);
        assert_eq!(summary.orders_by_status["pending"], 0);
        assert_eq!(summary.orders_by_status["confirmed"], 2);
        assert_eq!(summary.orders_total, 2);
        assert_eq!(summary.revenue["EUR"], "12.50");
    }
}
