use std::fmt;

use serde::{Deserialize, Serialize};

/// The customer an order belongs to: the `sub` claim of a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a customer id is 1 to 128 visible ASCII characters")]
pub struct InvalidCustomerId;

impl CustomerId {
    pub fn parse(raw: &str) -> Result<Self, InvalidCustomerId> {
        let visible = raw.bytes().all(|b| b.is_ascii_graphic());
        if !raw.is_empty() && raw.len() <= 128 && visible { Ok(Self(raw.to_owned())) } else { Err(InvalidCustomerId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CustomerId {
    type Error = InvalidCustomerId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CustomerId> for String {
    fn from(value: CustomerId) -> Self {
        value.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
