//! Money as integer minor units plus a currency.
//!
//! Floats cannot represent 0.10 exactly, so prices never touch them: the API's
//! `"12.50"` is parsed straight into 1250 minor units, and every sum is checked
//! arithmetic over integers in one currency.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An ISO 4217-shaped currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("a currency is three upper-case letters, like \"EUR\"")]
    InvalidCurrency,
    #[error("a price is a decimal string with at most 2 decimal places, like \"12.50\"")]
    InvalidAmount,
    #[error("amount is larger than {max}", max = Money::format_minor(Money::MAX_MINOR))]
    TooLarge,
    #[error("cannot combine amounts in {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
}

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, MoneyError> {
        match raw.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(MoneyError::InvalidCurrency),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters can be stored, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-negative amount of one currency, in minor units (cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    /// One billion in major units: far above any shop price, far below overflow
    /// even when multiplied by the largest order (50 lines x 1000 units).
    pub const MAX_MINOR: i64 = 100_000_000_000;

    pub fn from_minor(amount_minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount_minor < 0 {
            return Err(MoneyError::InvalidAmount);
        }
        if amount_minor > Self::MAX_MINOR {
            return Err(MoneyError::TooLarge);
        }
        Ok(Self { amount_minor, currency })
    }

    /// A sum of prices read back from outside, such as an order's total in
    /// an event: non-negative like any amount, but not capped by
    /// [`MAX_MINOR`](Self::MAX_MINOR), which bounds one price and not a sum
    /// of them (see [`plus`](Self::plus)).
    pub fn sum_from_minor(amount_minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount_minor < 0 {
            return Err(MoneyError::InvalidAmount);
        }
        Ok(Self { amount_minor, currency })
    }

    pub fn zero(currency: Currency) -> Self {
        Self { amount_minor: 0, currency }
    }

    /// Parses `"12.50"`, `"12.5"` or `"12"`; rejects signs, exponents, spaces and
    /// a third decimal place rather than rounding someone's price.
    pub fn parse_decimal(raw: &str, currency: Currency) -> Result<Self, MoneyError> {
        let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > 2
            || (raw.contains('.') && fraction.is_empty())
        {
            return Err(MoneyError::InvalidAmount);
        }
        if whole.trim_start_matches('0').len() > 12 {
            return Err(MoneyError::TooLarge);
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyError::InvalidAmount)?;
        let cents: i64 = format!("{fraction:0<2}").parse().map_err(|_| MoneyError::InvalidAmount)?;
        let minor = whole.checked_mul(100).and_then(|w| w.checked_add(cents)).ok_or(MoneyError::TooLarge)?;
        Self::from_minor(minor, currency)
    }

    pub fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// `"12.50"`: the v1 wire form.
    pub fn to_decimal_string(&self) -> String {
        Self::format_minor(self.amount_minor)
    }

    pub fn format_minor(minor: i64) -> String {
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }

    pub fn times(&self, quantity: u32) -> Result<Self, MoneyError> {
        let amount = self.amount_minor.checked_mul(i64::from(quantity)).ok_or(MoneyError::TooLarge)?;
        Ok(Self { amount_minor: amount, currency: self.currency })
    }

    /// Sums are not capped by `MAX_MINOR` (that bounds a price), only by overflow.
    pub fn plus(&self, other: &Money) -> Result<Self, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let amount = self.amount_minor.checked_add(other.amount_minor).ok_or(MoneyError::TooLarge)?;
        Ok(Self { amount_minor: amount, currency: self.currency })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn parses_decimal_strings_into_minor_units() {
        for (raw, minor) in [("12.50", 1250), ("12.5", 1250), ("12", 1200), ("0.01", 1), ("0", 0), ("007.10", 710)] {
            assert_eq!(Money::parse_decimal(raw, eur()).unwrap().amount_minor(), minor, "{raw}");
        }
    }

    #[test]
    fn rejects_ambiguous_or_invalid_amounts() {
        for raw in ["", "-1", "+1", "1.234", "1e3", " 1", "1.", ".5", "1,50", "NaN", "1.5.0", "١٢"] {
            assert!(Money::parse_decimal(raw, eur()).is_err(), "{raw:?} should be rejected");
        }
    }

    #[test]
    fn rejects_amounts_above_the_cap() {
        assert_eq!(Money::parse_decimal("1000000000.01", eur()), Err(MoneyError::TooLarge));
        assert_eq!(Money::parse_decimal("99999999999999999999999", eur()), Err(MoneyError::TooLarge));
        assert!(Money::parse_decimal("1000000000.00", eur()).is_ok());
    }

    #[test]
    fn formats_with_two_places() {
        assert_eq!(Money::from_minor(1250, eur()).unwrap().to_decimal_string(), "12.50");
        assert_eq!(Money::from_minor(5, eur()).unwrap().to_decimal_string(), "0.05");
        assert_eq!(Money::format_minor(-1250), "-12.50");
    }

    #[test]
    fn a_sum_may_exceed_the_price_cap_but_not_go_negative() {
        assert!(Money::from_minor(Money::MAX_MINOR + 1, eur()).is_err());
        assert_eq!(Money::sum_from_minor(Money::MAX_MINOR + 1, eur()).unwrap().amount_minor(), Money::MAX_MINOR + 1);
        assert_eq!(Money::sum_from_minor(-1, eur()), Err(MoneyError::InvalidAmount));
    }

    #[test]
    fn refuses_to_add_different_currencies() {
        let usd = Currency::parse("USD").unwrap();
        let err = Money::zero(eur()).plus(&Money::zero(usd)).unwrap_err();
        assert_eq!(err, MoneyError::CurrencyMismatch(eur(), usd));
    }

    #[test]
    fn currency_is_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }
}
