//! The shop's rules, with no I/O.
//!
//! Every value that enters from outside is parsed once into a type that cannot
//! hold an invalid value (`Sku`, `Quantity`, `Money`, ...). Code past the edge
//! therefore never re-checks, and a bug cannot smuggle a negative quantity or
//! a lower-case SKU into the store.

mod customer;
mod money;
mod order;
mod payment;
mod product;
mod quantity;
mod reservation;
mod sku;
mod validation;

pub use customer::CustomerId;
pub use money::{Currency, Money, MoneyError};
pub use order::{
    CancelError, InvalidOrder, MAX_ORDER_LINES, NewOrder, NewOrderLine, Order, OrderId, OrderLine, OrderRecord,
    OrderStatus, PaymentStepError, TransitionError,
};
pub use payment::{AuthorizationId, Payment, PaymentMethod, PaymentStatus, offline_instructions};
pub use product::{Product, ProductDraft, ProductName, StockOverflow};
pub use quantity::{Quantity, RestockQuantity, StockLevel};
pub use reservation::{Reservation, ReservationDecision, ReservationState, Shortfall};
pub use sku::Sku;
pub use validation::{FieldError, ValidationErrors};
