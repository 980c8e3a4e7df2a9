//! How an order is paid for, and the payment's own small state machine.
//!
//! ```text
//!  card:    pending ──► authorized ──► captured   (at shipment; `capturing` while the call is out)
//!              │            └────────► voided     (a cancel released the hold)
//!              ├──► declined                      (the order is rejected)
//!              └──► voided                        (authorized after a cancel won the race)
//!  offline: pending ──► awaiting_offline ──► paid (an admin recorded it)
//! ```
//!
//! A card order that the gateway could not decide in time (down, slow,
//! circuit open) switches to `offline`: checkout never waits on a sick
//! gateway. Statuses change only through [`Order`](super::Order)'s
//! transitions, which keep the order's status and its payment in step.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Authorized at the payment gateway, captured at shipment.
    Card,
    /// Paid outside the shop, following the instructions; an admin records it.
    Offline,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Not decided yet.
    Pending,
    /// Card: the total is held.
    Authorized,
    /// Card: taken, at shipment.
    Captured,
    /// Offline: instructions issued.
    AwaitingOffline,
    /// Offline: payment recorded.
    Paid,
    /// The gateway refused the card.
    Declined,
    /// Card: the hold was released by a cancel.
    Voided,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 7] = [
        Self::Pending,
        Self::Authorized,
        Self::Captured,
        Self::AwaitingOffline,
        Self::Paid,
        Self::Declined,
        Self::Voided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::AwaitingOffline => "awaiting_offline",
            Self::Paid => "paid",
            Self::Declined => "declined",
            Self::Voided => "voided",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gateway's id of an authorization (opaque to us, never empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthorizationId(String);

impl AuthorizationId {
    /// 1..=200 visible ASCII characters: it goes into the gateway's URLs.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= 200
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AuthorizationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An order's payment. Its serde form is part of the stored order (see
/// `OrderRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    /// How to pay (offline), naming the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The gateway's authorization (card), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationId>,
    /// A shipment has asked the gateway to capture this hold, and its
    /// outcome is not recorded yet: the money may already be taken, so the
    /// order must not be cancelled (its void would come too late). See
    /// `Order::start_capture`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capturing: bool,
}

impl Payment {
    /// The payment of an order stored or sent before payments existed: it
    /// was an offline order, awaiting payment once confirmed.
    pub fn before_payments(status: super::OrderStatus) -> Self {
        use super::OrderStatus as O;
        let status = match status {
            O::Pending | O::Rejected => PaymentStatus::Pending,
            O::Confirmed | O::Cancelled => PaymentStatus::AwaitingOffline,
            O::Shipped | O::Delivered => PaymentStatus::Paid,
        };
        Self { method: PaymentMethod::Offline, status, instructions: None, authorization: None, capturing: false }
    }

    /// Undecided, to be paid by `method`.
    pub fn pending(method: PaymentMethod) -> Self {
        Self { method, status: PaymentStatus::Pending, instructions: None, authorization: None, capturing: false }
    }

    /// Whether this payment fits an order in `status` (a check for data
    /// coming back from a store or an event, see `Order::rehydrate`).
    pub fn fits(&self, status: super::OrderStatus) -> bool {
        use super::OrderStatus as O;
        use PaymentStatus as P;
        if self.capturing {
            return status == O::Confirmed && self.status == P::Authorized;
        }
        match status {
            O::Pending => self.status == P::Pending,
            O::Confirmed => matches!(self.status, P::Authorized | P::AwaitingOffline | P::Paid),
            O::Shipped | O::Delivered => matches!(self.status, P::Captured | P::Paid),
            O::Rejected => matches!(self.status, P::Pending | P::Declined),
            O::Cancelled => matches!(self.status, P::Pending | P::Voided | P::AwaitingOffline | P::Paid),
        }
    }
}

/// Fills the offline instructions template: `{order_id}`, `{amount}`
/// (`12.50`) and `{currency}` are replaced.
pub fn offline_instructions(template: &str, order: &super::Order) -> String {
    template
        .replace("{order_id}", &order.id().to_string())
        .replace("{amount}", &order.total().to_decimal_string())
        .replace("{currency}", &order.currency().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_the_contract_names() {
        let names: Vec<_> = PaymentStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["pending", "authorized", "captured", "awaiting_offline", "paid", "declined", "voided"]);
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn authorization_ids_are_safe_in_a_url() {
        assert!(AuthorizationId::parse("auth_0190a5e4-7d3a").is_some());
        for bad in ["", "a/b", "a b", "../x", "é", &"x".repeat(201)] {
            assert!(AuthorizationId::parse(bad).is_none(), "{bad}");
        }
    }
}
