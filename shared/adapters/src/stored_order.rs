//! The one stored form of an order, for every store that keeps orders
//! (SQLite and DynamoDB, order intake's table and the analytics views).
//!
//! An order is stored as the JSON of its [`OrderRecord`] and comes back only
//! through [`Order::rehydrate`], so a document that no transition could have
//! produced is a [`StoreError::Corrupt`] that says what is wrong with it,
//! never an impossible `Order` loose in the code.

use orderly_core::domain::{Order, OrderRecord};
use orderly_core::ports::StoreError;

pub(crate) fn to_json(order: &Order) -> Result<String, StoreError> {
    serde_json::to_string(&order.to_record()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json(raw: &str) -> Result<Order, StoreError> {
    let record: OrderRecord = serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("order: {e}")))?;
    Order::rehydrate(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_stored_order_is_corrupt_not_a_panic() {
        let raw = include_str!("../../core/tests/fixtures/stored/order.json");
        assert!(from_json(raw).is_ok());
        let confirmed_at_version_one = raw.replace(r#""version": 2"#, r#""version": 1"#);
        assert_ne!(confirmed_at_version_one, raw);
        match from_json(&confirmed_at_version_one) {
            Err(StoreError::Corrupt(message)) => {
                assert!(message.contains("cannot be confirmed at version 1"), "{message}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(matches!(from_json(r#"{"id": 7}"#), Err(StoreError::Corrupt(_))));
    }
}
