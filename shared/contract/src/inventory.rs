//! `InventoryStore` + `PriceList`.

use super::fixtures::*;
use orderly_core::domain::{OrderId, ProductDraft, ProductName, Reservation, ReservationState};
use orderly_core::ports::{InventoryStore, PriceList, ReservationChange, StockMove, StoreError};

fn reservation(order: OrderId, state: ReservationState, lines: &[(&str, u32)]) -> Reservation {
    Reservation { order_id: order, state, lines: lines.iter().map(|(s, n)| (sku(s), *n)).collect(), updated_at: now() }
}

fn new_order_id() -> OrderId {
    OrderId::from_uuid(uuid::Uuid::now_v7())
}

pub async fn creates_a_product_once<S: InventoryStore>(store: &S) {
    let tea = product("TEA", 5);
    store.save_product(&tea, None, &[]).await.unwrap();
    assert_eq!(store.product(&sku("TEA")).await.unwrap(), Some(tea.clone()));
    assert_eq!(store.save_product(&tea, None, &[]).await, Err(StoreError::Conflict), "create must not overwrite");
}

pub async fn updates_only_from_the_version_read<S: InventoryStore>(store: &S) {
    let tea = product("TEA", 5);
    store.save_product(&tea, None, &[]).await.unwrap();
    let restocked = tea.restock(orderly_core::domain::RestockQuantity::parse(3).unwrap(), now()).unwrap();
    store.save_product(&restocked, Some(tea.version), &[]).await.unwrap();
    assert_eq!(store.save_product(&restocked, Some(tea.version), &[]).await, Err(StoreError::Conflict));
    assert_eq!(store.product(&sku("TEA")).await.unwrap().unwrap().available, 8);
}

/// `If-Match` on a product update rests on this: a write conditional on a
/// version that is no longer stored changes nothing at all.
pub async fn a_stale_conditional_update_changes_nothing<S: InventoryStore>(store: &S) {
    let tea = product("TEA", 5);
    store.save_product(&tea, None, &[]).await.unwrap();
    let draft = |price| ProductDraft { name: ProductName::parse("Renamed").unwrap(), price, initial_stock: None };
    let first = tea.update(draft(eur(300)), now());
    store.save_product(&first, Some(tea.version), &[]).await.unwrap();
    // A second editor still holds version 1.
    let second = tea.update(draft(eur(999)), now());
    assert_eq!(second.version, first.version, "both edits claim the same next version");
    assert_eq!(store.save_product(&second, Some(tea.version), &[]).await, Err(StoreError::Conflict));
    let stored = store.product(&sku("TEA")).await.unwrap().unwrap();
    assert_eq!(stored, first, "the stale write left no trace");
}

/// ETags derive from the version: a stock move (which changes `available`,
/// part of the representation) must bump it, so that the tag changes and an
/// update conditional on the old version fails.
pub async fn a_stock_move_bumps_the_version<S: InventoryStore>(store: &S) {
    let tea = product("TEA", 5);
    store.save_product(&tea, None, &[]).await.unwrap();
    let take = ReservationChange {
        reservation: reservation(new_order_id(), ReservationState::Reserved, &[("TEA", 2)]),
        expected: None,
        stock: StockMove::Take(vec![(sku("TEA"), 2)]),
    };
    store.apply_reservation(&take, &[], &mark("inventory")).await.unwrap();
    let moved = store.product(&sku("TEA")).await.unwrap().unwrap();
    assert!(moved.version > tea.version, "version {} after a take from {}", moved.version, tea.version);
    let stale = tea.update(
        ProductDraft { name: ProductName::parse("Renamed").unwrap(), price: eur(300), initial_stock: None },
        now(),
    );
    assert_eq!(store.save_product(&stale, Some(tea.version), &[]).await, Err(StoreError::Conflict));
}

pub async fn pages_products_by_sku<S: InventoryStore>(store: &S) {
    for s in ["C", "A", "B", "D"] {
        store.save_product(&product(s, 1), None, &[]).await.unwrap();
    }
    let first: Vec<_> = store.products(None, 2).await.unwrap().into_iter().map(|p| p.sku.to_string()).collect();
    assert_eq!(first, ["A", "B"]);
    let rest: Vec<_> =
        store.products(Some(&sku("B")), 10).await.unwrap().into_iter().map(|p| p.sku.to_string()).collect();
    assert_eq!(rest, ["C", "D"]);
}

pub async fn reports_available_stock_and_prices<S: InventoryStore + PriceList>(store: &S) {
    store.save_product(&product("A", 7), None, &[]).await.unwrap();
    let available = store.available(&[sku("A"), sku("MISSING")]).await.unwrap();
    assert_eq!(available.get(&sku("A")), Some(&7));
    assert!(!available.contains_key(&sku("MISSING")));
    let prices = store.prices(&[sku("A"), sku("MISSING")]).await.unwrap();
    assert_eq!(prices.get(&sku("A")), Some(&eur(250)));
    assert_eq!(prices.len(), 1);
}

pub async fn takes_stock_for_every_line_or_none<S: InventoryStore>(store: &S) {
    store.save_product(&product("A", 5), None, &[]).await.unwrap();
    store.save_product(&product("B", 1), None, &[]).await.unwrap();
    let too_much = ReservationChange {
        reservation: reservation(new_order_id(), ReservationState::Reserved, &[("A", 2), ("B", 2)]),
        expected: None,
        stock: StockMove::Take(vec![(sku("A"), 2), (sku("B"), 2)]),
    };
    assert_eq!(store.apply_reservation(&too_much, &[], &mark("inventory")).await, Err(StoreError::Conflict));
    assert_eq!(store.product(&sku("A")).await.unwrap().unwrap().available, 5, "nothing taken from A either");
    assert_eq!(store.reservation(too_much.reservation.order_id).await.unwrap(), None);

    let fits = ReservationChange {
        reservation: reservation(new_order_id(), ReservationState::Reserved, &[("A", 2), ("B", 1)]),
        expected: None,
        stock: StockMove::Take(vec![(sku("A"), 2), (sku("B"), 1)]),
    };
    store.apply_reservation(&fits, &[], &mark("inventory")).await.unwrap();
    let a = store.product(&sku("A")).await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (3, 2));
    assert_eq!(store.reservation(fits.reservation.order_id).await.unwrap().unwrap().state, ReservationState::Reserved);
}

pub async fn returns_stock_only_from_a_matching_state<S: InventoryStore>(store: &S) {
    store.save_product(&product("A", 5), None, &[]).await.unwrap();
    let order = new_order_id();
    let take = ReservationChange {
        reservation: reservation(order, ReservationState::Reserved, &[("A", 2)]),
        expected: None,
        stock: StockMove::Take(vec![(sku("A"), 2)]),
    };
    store.apply_reservation(&take, &[], &mark("inventory")).await.unwrap();
    let release = ReservationChange {
        reservation: reservation(order, ReservationState::Released, &[("A", 2)]),
        expected: Some(ReservationState::Reserved),
        stock: StockMove::Return(vec![(sku("A"), 2)]),
    };
    store.apply_reservation(&release, &[], &mark("inventory")).await.unwrap();
    // A second release (another event) finds the state moved on.
    assert_eq!(store.apply_reservation(&release, &[], &mark("inventory")).await, Err(StoreError::Conflict));
    let a = store.product(&sku("A")).await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (5, 0));
}

pub async fn a_processed_event_changes_stock_once<S: InventoryStore>(store: &S) {
    store.save_product(&product("A", 5), None, &[]).await.unwrap();
    let seen = mark("inventory");
    let take = |order| ReservationChange {
        reservation: reservation(order, ReservationState::Reserved, &[("A", 1)]),
        expected: None,
        stock: StockMove::Take(vec![(sku("A"), 1)]),
    };
    store.apply_reservation(&take(new_order_id()), &[], &seen).await.unwrap();
    assert_eq!(store.apply_reservation(&take(new_order_id()), &[], &seen).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(store.product(&sku("A")).await.unwrap().unwrap().available, 4);
}

pub async fn concurrent_takes_never_oversell<S: InventoryStore + 'static>(store: &S) {
    store.save_product(&product("LAST", 10), None, &[]).await.unwrap();
    let attempts = futures::future::join_all((0..40).map(|_| async {
        let change = ReservationChange {
            reservation: reservation(new_order_id(), ReservationState::Reserved, &[("LAST", 1)]),
            expected: None,
            stock: StockMove::Take(vec![(sku("LAST"), 1)]),
        };
        store.apply_reservation(&change, &[], &mark("inventory")).await
    }))
    .await;
    let won = attempts.iter().filter(|r| r.is_ok()).count();
    assert!(attempts.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict))));
    assert_eq!(won, 10);
    let last = store.product(&sku("LAST")).await.unwrap().unwrap();
    assert_eq!((last.available, last.reserved), (0, 10));
}
