//! Shipping a card order, on the real SQLite store: the start of the
//! capture is saved before the gateway is called, and it stays while the
//! capture's outcome is unknown, so that no cancel can void a hold that is
//! being taken (see `Order::start_capture`).

use std::sync::Arc;

use async_trait::async_trait;
use order_intake::payments::Payments;
use order_intake::{Fulfilment, IntakeError, OrderIntake};
use orderly_adapters::sqlite::{DbOptions, QueueSettings, SqliteStore};
use orderly_contract::fixtures::{customer, now, order_for};
use orderly_core::domain::{AuthorizationId, CancelError, Money, Order, OrderId, PaymentMethod, PaymentStatus};
use orderly_core::http::Principal;
use orderly_core::ports::{Authorization, GatewayError, OrderStore, PaymentGateway, SystemClock, UuidV7Ids};

/// A gateway whose captures all answer `answer`.
struct Captures(fn() -> Result<(), GatewayError>);

#[async_trait]
impl PaymentGateway for Captures {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn authorize(&self, _: OrderId, _: Money) -> Result<Authorization, GatewayError> {
        unreachable!("the orders here are authorized already")
    }

    async fn capture(&self, _: OrderId, _: &AuthorizationId) -> Result<(), GatewayError> {
        (self.0)()
    }

    async fn void(&self, _: OrderId, _: &AuthorizationId) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn void_by_reference(&self, _: OrderId) -> Result<(), GatewayError> {
        Ok(())
    }
}

fn intake(store: &Arc<SqliteStore>, captures: fn() -> Result<(), GatewayError>) -> OrderIntake {
    let payments = Payments::new(Some(Arc::new(Captures(captures))), "Pay {amount}".into());
    OrderIntake::new(store.clone(), store.clone(), Arc::new(SystemClock), Arc::new(UuidV7Ids), payments)
}

async fn confirmed_card_order(store: &SqliteStore) -> Order {
    let order = order_for("alice", &[("TEA", 1)]).paid_by(PaymentMethod::Card);
    store.place(&order, None, &[], now()).await.unwrap();
    let confirmed = order.confirm_authorized(AuthorizationId::parse("auth-1").unwrap(), now()).unwrap();
    store.save_transition(&confirmed, &[], None).await.unwrap();
    confirmed
}

fn alice() -> Principal {
    Principal { customer_id: customer("alice"), is_admin: false }
}

fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db"), DbOptions::default(), QueueSettings::default()).unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn a_capture_whose_answer_was_lost_blocks_cancels_until_a_shipment_learns_its_outcome() {
    let lost: [fn() -> Result<(), GatewayError>; 4] = [
        || Err(GatewayError::Timeout),
        || Err(GatewayError::Unreachable("connection reset".into())),
        || Err(GatewayError::InvalidAnswer("not JSON".into())),
        || Err(GatewayError::Failed(504)),
    ];
    for answer in lost {
        let (_dir, store) = store();
        let order = confirmed_card_order(&store).await;
        let shipping = intake(&store, answer).fulfil(order.id(), Fulfilment::Ship, None).await;
        assert!(matches!(shipping, Err(IntakeError::Gateway(_))), "{shipping:?}");
        let stored = store.get(order.id()).await.unwrap().unwrap();
        assert!(stored.payment().capturing, "{:?}", stored.payment());

        let cancel = intake(&store, answer).cancel(&alice(), order.id(), None).await;
        assert!(matches!(cancel, Err(IntakeError::NotCancellable(CancelError::Capturing))), "{cancel:?}");

        let shipped = intake(&store, || Ok(())).fulfil(order.id(), Fulfilment::Ship, None).await.unwrap();
        assert_eq!(shipped.payment().status, PaymentStatus::Captured);
        assert_eq!(store.get(order.id()).await.unwrap(), Some(shipped));
    }
}

/// The first capture's answer was lost; the retry is answered "did
/// nothing" (an open breaker, a 503). That speaks for the retry only: the
/// first may have taken the money, so the order stays uncancellable.
#[tokio::test]
async fn a_retry_the_gateway_did_nothing_for_does_not_undo_a_lost_answer() {
    let did_nothing: [fn() -> Result<(), GatewayError>; 2] = [
        || Err(GatewayError::Failed(503)),
        || Err(GatewayError::CircuitOpen { retry_after: std::time::Duration::from_secs(1) }),
    ];
    for retry in did_nothing {
        let (_dir, store) = store();
        let order = confirmed_card_order(&store).await;
        let lost = intake(&store, || Err(GatewayError::Timeout)).fulfil(order.id(), Fulfilment::Ship, None).await;
        assert!(matches!(lost, Err(IntakeError::Gateway(GatewayError::Timeout))), "{lost:?}");
        let retried = intake(&store, retry).fulfil(order.id(), Fulfilment::Ship, None).await;
        assert!(matches!(retried, Err(IntakeError::Gateway(_))), "{retried:?}");
        assert!(store.get(order.id()).await.unwrap().unwrap().payment().capturing);
        let cancel = intake(&store, retry).cancel(&alice(), order.id(), None).await;
        assert!(matches!(cancel, Err(IntakeError::NotCancellable(CancelError::Capturing))), "{cancel:?}");
    }
}

#[tokio::test]
async fn a_capture_the_gateway_did_not_take_leaves_the_order_cancellable() {
    let not_taken: [fn() -> Result<(), GatewayError>; 3] = [
        || Err(GatewayError::Refused(409)),
        || Err(GatewayError::Failed(503)),
        || Err(GatewayError::CircuitOpen { retry_after: std::time::Duration::from_secs(1) }),
    ];
    for answer in not_taken {
        let (_dir, store) = store();
        let order = confirmed_card_order(&store).await;
        let shipping = intake(&store, answer).fulfil(order.id(), Fulfilment::Ship, None).await;
        assert!(matches!(shipping, Err(IntakeError::Gateway(_))), "{shipping:?}");
        let stored = store.get(order.id()).await.unwrap().unwrap();
        assert_eq!((stored.payment().status, stored.payment().capturing), (PaymentStatus::Authorized, false));

        let cancelled = intake(&store, answer).cancel(&alice(), order.id(), None).await.unwrap();
        assert_eq!(cancelled.payment().status, PaymentStatus::Voided);
    }
}
