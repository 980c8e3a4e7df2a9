//! How a value is written to a store and read back, once for every store
//! adapter (SQLite and DynamoDB).
//!
//! Both keep the same fields in the same form: a timestamp as RFC 3339 text
//! in UTC with microseconds (it sorts as text, which `ORDER BY` and the GSI
//! sort keys rely on), a document (an order, a reservation's lines) as JSON,
//! a price as minor units beside an ISO currency code. Reading back is where
//! two adapters would drift, so what a value that does not decode becomes is
//! decided here too: [`StoreError::Corrupt`], naming the record and the
//! field, never a panic or a silent default.
//!
//! A record is read into its `*Fields` form (one field per column or
//! attribute, as stored) by the adapter, and decoded here.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use orderly_core::domain::{Currency, CustomerId, Money, OrderId, Product, ProductName, Sku};
use orderly_core::ports::{Counter, NotificationRecord, NotificationState, StoreError};

pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_timestamp(raw: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp {raw:?}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A price from its minor units and currency code.
pub(crate) fn price(minor: i64, currency: &str) -> Result<Money, StoreError> {
    let currency = Currency::parse(currency).map_err(|e| StoreError::Corrupt(format!("price: {e}")))?;
    Money::from_minor(minor, currency).map_err(|e| StoreError::Corrupt(format!("price: {e}")))
}

/// Analytics counters from their stored keys. A key this build does not know
/// (written by a newer one) is skipped, not fatal: the other counters still
/// make a summary.
pub(crate) fn counters(stored: impl IntoIterator<Item = (String, i64)>) -> Vec<(Counter, i64)> {
    stored
        .into_iter()
        .filter_map(|(key, value)| match Counter::parse_key(&key) {
            Some(counter) => Some((counter, value)),
            None => {
                tracing::debug!(key, "unknown analytics counter skipped");
                None
            }
        })
        .collect()
}

/// A product as stored: one field per column or attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProductFields {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub available: i64,
    pub reserved: i64,
    pub version: i64,
    pub updated_at: String,
}

impl ProductFields {
    pub fn of(product: &Product) -> Result<Self, StoreError> {
        Ok(Self {
            sku: product.sku.to_string(),
            name: product.name.as_str().to_owned(),
            price_minor: product.price.amount_minor(),
            currency: product.price.currency().as_str().to_owned(),
            available: product.available,
            reserved: product.reserved,
            version: i64::try_from(product.version)
                .map_err(|_| StoreError::Corrupt(format!("product {}: version out of range", product.sku)))?,
            updated_at: timestamp(product.updated_at),
        })
    }

    pub fn decode(self) -> Result<Product, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("product {}: bad {what}", self.sku));
        Ok(Product {
            sku: Sku::parse(&self.sku).map_err(|_| corrupt("sku"))?,
            name: ProductName::parse(&self.name).map_err(|_| corrupt("name"))?,
            price: price(self.price_minor, &self.currency).map_err(|_| corrupt("price"))?,
            available: self.available,
            reserved: self.reserved,
            version: u64::try_from(self.version).map_err(|_| corrupt("version"))?,
            updated_at: parse_timestamp(&self.updated_at)?,
        })
    }
}

/// A notification log entry as stored: one field per column or attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotificationFields {
    pub id: String,
    pub order_id: String,
    pub customer_id: String,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub provider: String,
    pub created_at: String,
    pub updated_at: String,
}

impl NotificationFields {
    pub fn of(record: &NotificationRecord) -> Self {
        Self {
            id: record.id.to_string(),
            order_id: record.order_id.to_string(),
            customer_id: record.customer_id.to_string(),
            kind: record.kind.clone(),
            state: record.state.as_str().to_owned(),
            attempts: i64::from(record.attempts),
            last_error: record.last_error.clone(),
            provider: record.provider.clone(),
            created_at: timestamp(record.created_at),
            updated_at: timestamp(record.updated_at),
        }
    }

    pub fn decode(self) -> Result<NotificationRecord, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("notification {}: bad {what}", self.id));
        Ok(NotificationRecord {
            id: Uuid::try_parse(&self.id).map_err(|_| corrupt("id"))?,
            order_id: OrderId::parse(&self.order_id).ok_or_else(|| corrupt("order id"))?,
            customer_id: CustomerId::parse(&self.customer_id).map_err(|_| corrupt("customer id"))?,
            state: NotificationState::parse(&self.state).ok_or_else(|| corrupt("state"))?,
            attempts: u32::try_from(self.attempts).map_err(|_| corrupt("attempts"))?,
            created_at: parse_timestamp(&self.created_at)?,
            updated_at: parse_timestamp(&self.updated_at)?,
            kind: self.kind,
            last_error: self.last_error,
            provider: self.provider,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> Product {
        Product {
            sku: Sku::parse("WIDGET-1").unwrap(),
            name: ProductName::parse("Widget").unwrap(),
            price: price(1250, "EUR").unwrap(),
            available: 7,
            reserved: 2,
            updated_at: DateTime::parse_from_rfc3339("2025-11-27T10:00:00.123456Z").unwrap().with_timezone(&Utc),
            version: 3,
        }
    }

    fn corrupt_field(error: Result<impl std::fmt::Debug, StoreError>) -> String {
        match error {
            Err(StoreError::Corrupt(what)) => what,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn timestamps_keep_microseconds_and_sort_as_text() {
        let early = DateTime::parse_from_rfc3339("2025-11-27T09:59:59.999999Z").unwrap().with_timezone(&Utc);
        let late = DateTime::parse_from_rfc3339("2025-11-27T10:00:00.000001+00:00").unwrap().with_timezone(&Utc);
        assert_eq!(timestamp(late), "2025-11-27T10:00:00.000001Z");
        assert!(timestamp(early) < timestamp(late));
        assert_eq!(parse_timestamp(&timestamp(late)), Ok(late));
        assert!(corrupt_field(parse_timestamp("yesterday")).contains("yesterday"));
    }

    #[test]
    fn a_product_reads_back_as_written() {
        let product = product();
        assert_eq!(ProductFields::of(&product).unwrap().decode(), Ok(product));
    }

    #[test]
    fn a_product_field_that_does_not_decode_is_named() {
        let good = ProductFields::of(&product()).unwrap();
        type Spoil = fn(&mut ProductFields);
        let cases: [(&str, Spoil); 5] = [
            ("sku", |f| f.sku = "lower case".into()),
            ("price", |f| f.currency = "EURO".into()),
            ("price", |f| f.price_minor = -1),
            ("version", |f| f.version = -1),
            ("timestamp", |f| f.updated_at = "now".into()),
        ];
        for (what, spoil) in cases {
            let mut fields = good.clone();
            spoil(&mut fields);
            let message = corrupt_field(fields.decode());
            assert!(message.contains(what), "{what}: {message}");
        }
    }

    #[test]
    fn a_notification_reads_back_as_written_and_bad_fields_are_named() {
        let at = DateTime::parse_from_rfc3339("2025-11-27T10:00:00Z").unwrap().with_timezone(&Utc);
        let record = NotificationRecord {
            id: Uuid::now_v7(),
            order_id: OrderId::parse("0193b6f4-7c1e-7000-8000-000000000001").unwrap(),
            customer_id: CustomerId::parse("alice").unwrap(),
            kind: "order.confirmed.v1".into(),
            state: NotificationState::Sent,
            attempts: 2,
            last_error: None,
            provider: "webhook".into(),
            created_at: at,
            updated_at: at,
        };
        assert_eq!(NotificationFields::of(&record).decode(), Ok(record.clone()));
        let mut negative = NotificationFields::of(&record);
        negative.attempts = -1;
        assert!(corrupt_field(negative.decode()).contains("attempts"));
        let mut unknown = NotificationFields::of(&record);
        unknown.state = "lost".into();
        assert!(corrupt_field(unknown.decode()).contains("state"));
    }

    #[test]
    fn unknown_counters_are_skipped() {
        let known = Counter::Events("order.placed.v1".into());
        let read = counters([(known.key(), 3), ("from-a-newer-build|x".into(), 1)]);
        assert_eq!(read, vec![(known, 3)]);
    }
}
