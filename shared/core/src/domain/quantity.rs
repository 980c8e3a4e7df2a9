use serde::{Deserialize, Serialize};

/// Units of one order line: 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Quantity(u32);

/// Units added by one restock: 1..=1_000_000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct RestockQuantity(u32);

/// Units on hand when a product is created: 0..=1_000_000_000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct StockLevel(u32);

macro_rules! bounded_u32 {
    ($name:ident, $min:expr, $max:expr) => {
        impl $name {
            pub const MIN: u32 = $min;
            pub const MAX: u32 = $max;

            /// Takes any JSON-ish integer so that `-1` or `2^40` are reported as
            /// out of range rather than as a type error.
            pub fn parse(raw: i64) -> Result<Self, String> {
                if (i64::from(Self::MIN)..=i64::from(Self::MAX)).contains(&raw) {
                    Ok(Self(raw as u32))
                } else {
                    Err(format!("must be an integer from {} to {}", Self::MIN, Self::MAX))
                }
            }

            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(value: i64) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> u32 {
                value.0
            }
        }
    };
}

bounded_u32!(Quantity, 1, 1000);
bounded_u32!(RestockQuantity, 1, 1_000_000);
bounded_u32!(StockLevel, 0, 1_000_000_000);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_bounds_are_inclusive() {
        assert!(Quantity::parse(0).is_err());
        assert_eq!(Quantity::parse(1).unwrap().get(), 1);
        assert_eq!(Quantity::parse(1000).unwrap().get(), 1000);
        assert!(Quantity::parse(1001).is_err());
        assert!(Quantity::parse(-5).is_err());
        assert!(Quantity::parse(i64::MAX).is_err());
    }

    #[test]
    fn restock_allows_up_to_a_million() {
        assert!(RestockQuantity::parse(0).is_err());
        assert!(RestockQuantity::parse(1_000_000).is_ok());
        assert!(RestockQuantity::parse(1_000_001).is_err());
    }

    #[test]
    fn deserialising_out_of_range_fails() {
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("-1").is_err());
        assert!(serde_json::from_str::<Quantity>("7").is_ok());
    }
}
