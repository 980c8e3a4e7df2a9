use std::fmt;

use serde::{Deserialize, Serialize};

/// A stock keeping unit: `^[A-Z0-9][A-Z0-9-]{0,39}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must match ^[A-Z0-9][A-Z0-9-]{{0,39}}$ (upper-case letters, digits and '-', 1 to 40 characters)")]
pub struct InvalidSku;

impl Sku {
    pub const MAX_LEN: usize = 40;

    pub fn parse(raw: &str) -> Result<Self, InvalidSku> {
        let bytes = raw.as_bytes();
        let first_ok = bytes.first().is_some_and(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        let rest_ok = bytes.iter().skip(1).all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'-');
        if first_ok && rest_ok && bytes.len() <= Self::MAX_LEN { Ok(Self(raw.to_owned())) } else { Err(InvalidSku) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = InvalidSku;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Sku> for String {
    fn from(value: Sku) -> Self {
        value.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contract_pattern() {
        for ok in ["A", "0", "ABC-123", "X-", &"A".repeat(40)] {
            assert!(Sku::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", "-A", "abc", "A_B", "A B", "É", &"A".repeat(41), "A\n"] {
            assert_eq!(Sku::parse(bad), Err(InvalidSku), "{bad:?}");
        }
    }
}
