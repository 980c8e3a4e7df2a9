//! All-or-nothing stock reservation.
//!
//! The decision is pure: given the order's lines and a snapshot of available
//! stock, either every line fits (reserve them all) or the order is rejected
//! with nothing held. The store then commits a `Reserve` decision only under
//! the condition `available >= quantity` for every line, in one atomic write;
//! if a concurrent order took the stock in between, the write fails and the
//! decision is taken again on fresh numbers. That is why racing orders can
//! never oversell, on SQLite or DynamoDB alike.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{OrderId, Sku};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortfall {
    pub sku: Sku,
    pub requested: u32,
    pub available: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationDecision {
    /// Hold these units (per SKU, repeated SKUs summed).
    Reserve(Vec<(Sku, u32)>),
    /// Hold nothing; these lines did not fit.
    Reject(Vec<Shortfall>),
}

impl ReservationDecision {
    /// `units` is per SKU (see `Order::units_by_sku`); `available` is the
    /// snapshot; a SKU missing from it has nothing available.
    pub fn decide(units: &[(Sku, u32)], available: &HashMap<Sku, i64>) -> Self {
        let shortfalls: Vec<Shortfall> = units
            .iter()
            .filter_map(|(sku, requested)| {
                let have = available.get(sku).copied().unwrap_or(0);
                (have < i64::from(*requested)).then(|| Shortfall {
                    sku: sku.clone(),
                    requested: *requested,
                    available: have,
                })
            })
            .collect();
        if shortfalls.is_empty() { Self::Reserve(units.to_vec()) } else { Self::Reject(shortfalls) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Units are held for the order.
    Reserved,
    /// The order did not fit; nothing was held.
    Rejected,
    /// Units were held and have been given back (the order was cancelled).
    Released,
    /// The cancellation arrived before the order: never reserve it.
    Cancelled,
}

impl ReservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Rejected => "rejected",
            Self::Released => "released",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Reserved, Self::Rejected, Self::Released, Self::Cancelled].into_iter().find(|s| s.as_str() == raw)
    }
}

/// What inventory remembers about one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub order_id: OrderId,
    pub state: ReservationState,
    pub lines: Vec<(Sku, u32)>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    #[test]
    fn reserves_when_every_line_fits() {
        let stock = HashMap::from([(sku("A"), 5), (sku("B"), 1)]);
        let units = vec![(sku("A"), 5), (sku("B"), 1)];
        assert_eq!(ReservationDecision::decide(&units, &stock), ReservationDecision::Reserve(units));
    }

    #[test]
    fn rejects_everything_when_one_line_does_not_fit() {
        let stock = HashMap::from([(sku("A"), 5), (sku("B"), 0)]);
        let decision = ReservationDecision::decide(&[(sku("A"), 1), (sku("B"), 1), (sku("C"), 2)], &stock);
        assert_eq!(
            decision,
            ReservationDecision::Reject(vec![
                Shortfall { sku: sku("B"), requested: 1, available: 0 },
                Shortfall { sku: sku("C"), requested: 2, available: 0 },
            ])
        );
    }
}
