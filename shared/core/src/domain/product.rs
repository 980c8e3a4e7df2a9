use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Money, RestockQuantity, Sku, StockLevel};

/// A product name: 1..=200 characters, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductName(String);

impl ProductName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if raw.trim().is_empty() || chars > 200 || raw.chars().any(char::is_control) {
            Err("must be 1 to 200 characters, not blank, without control characters".into())
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProductName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ProductName> for String {
    fn from(value: ProductName) -> Self {
        value.0
    }
}

/// What an admin may set on a product. Stock only counts when the product is
/// created; afterwards it moves by restocks and reservations alone, so a
/// replayed PUT can never reset stock that orders already hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDraft {
    pub name: ProductName,
    pub price: Money,
    pub initial_stock: Option<StockLevel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: Sku,
    pub name: ProductName,
    pub price: Money,
    /// Units on hand and not reserved by any order.
    pub available: i64,
    /// Units held by confirmed (reserved) orders.
    pub reserved: i64,
    pub updated_at: DateTime<Utc>,
    /// Counts catalog writes (create, update, restock), the guard of their
    /// read-modify-write. Reservations do not move it: they take and return
    /// stock by conditional arithmetic, and on a sharded store they never
    /// touch the item that holds the version.
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stock of {sku} would exceed {max} units", max = Product::MAX_STOCK)]
pub struct StockOverflow {
    pub sku: Sku,
}

impl Product {
    /// Far beyond any warehouse and well inside every store's integer range.
    pub const MAX_STOCK: i64 = 1_000_000_000_000;

    pub fn create(sku: Sku, draft: ProductDraft, now: DateTime<Utc>) -> Self {
        Self {
            sku,
            name: draft.name,
            price: draft.price,
            available: draft.initial_stock.map_or(0, |s| i64::from(s.get())),
            reserved: 0,
            updated_at: now,
            version: 1,
        }
    }

    /// Name and price change; stock does not (see [`ProductDraft`]).
    pub fn update(&self, draft: ProductDraft, now: DateTime<Utc>) -> Self {
        Self {
            name: draft.name,
            price: draft.price,
            updated_at: now.max(self.updated_at),
            version: self.version + 1,
            ..self.clone()
        }
    }

    pub fn restock(&self, quantity: RestockQuantity, now: DateTime<Utc>) -> Result<Self, StockOverflow> {
        let available = self.available + i64::from(quantity.get());
        if available + self.reserved > Self::MAX_STOCK {
            return Err(StockOverflow { sku: self.sku.clone() });
        }
        Ok(Self { available, updated_at: now.max(self.updated_at), version: self.version + 1, ..self.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    fn draft(stock: Option<u32>) -> ProductDraft {
        ProductDraft {
            name: ProductName::parse("Tea").unwrap(),
            price: Money::parse_decimal("3.20", Currency::parse("EUR").unwrap()).unwrap(),
            initial_stock: stock.map(|s| StockLevel::parse(i64::from(s)).unwrap()),
        }
    }

    #[test]
    fn an_update_keeps_stock_and_bumps_the_version() {
        let sku = Sku::parse("TEA").unwrap();
        let created = Product::create(sku, draft(Some(10)), DateTime::UNIX_EPOCH);
        let updated = created.update(draft(Some(999)), DateTime::UNIX_EPOCH);
        assert_eq!(updated.available, 10);
        assert_eq!(updated.version, 2);
    }

    #[test]
    fn restock_adds_to_available() {
        let p = Product::create(Sku::parse("TEA").unwrap(), draft(None), DateTime::UNIX_EPOCH);
        let p = p.restock(RestockQuantity::parse(5).unwrap(), DateTime::UNIX_EPOCH).unwrap();
        assert_eq!(p.available, 5);
    }

    #[test]
    fn names_must_be_visible_text() {
        assert!(ProductName::parse("Green tea").is_ok());
        for bad in ["", "   ", "a\u{0}b", &"x".repeat(201)] {
            assert!(ProductName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
