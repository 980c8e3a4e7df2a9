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
    let restocked = tea.restock(units(3), now()).unwrap();
    store.restock(&restocked, tea.version, 3, &[]).await.unwrap();
    assert_eq!(store.restock(&restocked, tea.version, 3, &[]).await, Err(StoreError::Conflict));
    assert_eq!(store.save_product(&restocked, Some(tea.version), &[]).await, Err(StoreError::Conflict));
    assert_eq!(store.product(&sku("TEA")).await.unwrap().unwrap().available, 8);
}

fn units(n: u32) -> orderly_core::domain::RestockQuantity {
    orderly_core::domain::RestockQuantity::parse(i64::from(n)).expect("restock quantity")
}

fn take(lines: &[(&str, u32)]) -> ReservationChange {
    ReservationChange {
        reservation: reservation(new_order_id(), ReservationState::Reserved, lines),
        expected: None,
        stock: StockMove::Take(lines.iter().map(|(s, n)| (sku(s), *n)).collect()),
    }
}

fn release(taken: &ReservationChange) -> ReservationChange {
    let lines = taken.reservation.lines.clone();
    ReservationChange {
        reservation: Reservation { state: ReservationState::Released, ..taken.reservation.clone() },
        expected: Some(ReservationState::Reserved),
        stock: StockMove::Return(lines),
    }
}

pub async fn a_catalog_update_never_writes_back_stock_it_read<S: InventoryStore>(store: &S) {
    store.save_product(&product("TEA", 5), None, &[]).await.unwrap();
    let read = store.product(&sku("TEA")).await.unwrap().unwrap();
    store.apply_reservation(&take(&[("TEA", 2)]), &[], &mark("inventory")).await.unwrap();
    let draft = orderly_core::domain::ProductDraft {
        name: orderly_core::domain::ProductName::parse("Renamed tea").unwrap(),
        price: eur(300),
        initial_stock: None,
    };
    store.save_product(&read.update(draft, now()), Some(read.version), &[]).await.unwrap();
    let after = store.product(&sku("TEA")).await.unwrap().unwrap();
    assert_eq!((after.name.as_str(), after.available, after.reserved), ("Renamed tea", 3, 2));
}

pub async fn a_restock_adds_to_stock_taken_since_the_read<S: InventoryStore>(store: &S) {
    store.save_product(&product("TEA", 5), None, &[]).await.unwrap();
    let read = store.product(&sku("TEA")).await.unwrap().unwrap();
    store.apply_reservation(&take(&[("TEA", 2)]), &[], &mark("inventory")).await.unwrap();
    store.restock(&read.restock(units(4), now()).unwrap(), read.version, 4, &[]).await.unwrap();
    let after = store.product(&sku("TEA")).await.unwrap().unwrap();
    assert_eq!((after.available, after.reserved), (7, 2));
    assert_eq!(store.available(&[sku("TEA")]).await.unwrap()[&sku("TEA")], 7);
}

/// On a sharded store no single item holds 7 of these 8 units after the
/// restock: the take must combine items, and the release put them back.
pub async fn a_take_larger_than_any_stock_item_combines_them<S: InventoryStore>(store: &S) {
    store.save_product(&product("BULK", 1), None, &[]).await.unwrap();
    let read = store.product(&sku("BULK")).await.unwrap().unwrap();
    store.restock(&read.restock(units(7), now()).unwrap(), read.version, 7, &[]).await.unwrap();
    store.available(&[sku("BULK")]).await.unwrap();
    let seven = take(&[("BULK", 7)]);
    store.apply_reservation(&seven, &[], &mark("inventory")).await.unwrap();
    assert_eq!(store.available(&[sku("BULK")]).await.unwrap()[&sku("BULK")], 1);
    store.apply_reservation(&release(&seven), &[], &mark("inventory")).await.unwrap();
    let all = take(&[("BULK", 8)]);
    store.available(&[sku("BULK")]).await.unwrap();
    store.apply_reservation(&all, &[], &mark("inventory")).await.unwrap();
    let bulk = store.product(&sku("BULK")).await.unwrap().unwrap();
    assert_eq!((bulk.available, bulk.reserved), (0, 8));
}

/// An order of the most lines, each of which a sharded store can take only
/// by combining stock items: more items than one transaction holds, taken
/// all the same, and released in full.
pub async fn an_order_of_fifty_lines_that_each_combine_stock_items_is_taken_whole<S: InventoryStore>(store: &S) {
    let names: Vec<String> = (0..orderly_core::domain::MAX_ORDER_LINES).map(|i| format!("WIDE-{i:02}")).collect();
    for name in &names {
        store.save_product(&product(name, 1), None, &[]).await.unwrap();
        let read = store.product(&sku(name)).await.unwrap().unwrap();
        store.restock(&read.restock(units(3), now()).unwrap(), read.version, 3, &[]).await.unwrap();
    }
    let skus: Vec<_> = names.iter().map(|name| sku(name)).collect();
    store.available(&skus).await.unwrap();
    let lines: Vec<(&str, u32)> = names.iter().map(|name| (name.as_str(), 4)).collect();
    let whole = take(&lines);
    let reply = placed_event(&order_for("alice", &[("WIDE-00", 4)]));
    store.apply_reservation(&whole, &[reply], &mark("inventory")).await.unwrap();
    for name in &names {
        let taken = store.product(&sku(name)).await.unwrap().unwrap();
        assert_eq!((taken.available, taken.reserved), (0, 4), "{name}");
    }
    store.apply_reservation(&release(&whole), &[], &mark("inventory")).await.unwrap();
    let available = store.available(&skus).await.unwrap();
    assert!(skus.iter().all(|sku| available[sku] == 4), "{available:?}");
}

/// What a flash sale on one SKU came to.
#[derive(Debug, Clone)]
pub struct FlashSale {
    /// Buyers whose take committed (answered `Ok`, or `AlreadyProcessed` on a
    /// retry of a write whose answer was lost).
    pub sold: usize,
    /// Rounds each buyer needed (1: decided and written at the first try).
    pub rounds: Vec<u32>,
    /// How long each buyer took, from first read to decision.
    pub latencies: Vec<std::time::Duration>,
}

/// `buyers` run the saga's loop on one unit of `sku` at once: look for the
/// order's reservation, read the availability, decide, take; a lost race (`Conflict`) reads again, a
/// failure (`Unavailable`: retries used up) is a redelivery, which also reads
/// again; `AlreadyProcessed` means an earlier try committed. Each buyer has
/// one processed mark, as one `order.placed.v1` delivery has.
pub async fn flash_sale<S: InventoryStore + ?Sized>(store: &S, sku_name: &str, buyers: usize) -> FlashSale {
    let wanted = [sku(sku_name)];
    let outcomes = futures::future::join_all((0..buyers).map(|_| async {
        let (change, seen, started) = (take(&[(sku_name, 1)]), mark("inventory"), std::time::Instant::now());
        for round in 1..=1000 {
            // As the saga does on every round: an earlier try whose answer
            // was lost may have committed.
            match store.reservation(change.reservation.order_id).await {
                Ok(Some(_)) => return (true, round, started.elapsed()),
                Ok(None) => {}
                Err(StoreError::Unavailable(_)) => continue,
                Err(other) => panic!("reservation: {other}"),
            }
            let available = match store.available(&wanted).await {
                Ok(found) => found.get(&wanted[0]).copied().unwrap_or(0),
                Err(StoreError::Unavailable(_)) => continue,
                Err(other) => panic!("availability: {other}"),
            };
            if available < 1 {
                return (false, round, started.elapsed());
            }
            match store.apply_reservation(&change, &[], &seen).await {
                Ok(()) | Err(StoreError::AlreadyProcessed) => return (true, round, started.elapsed()),
                Err(StoreError::Conflict | StoreError::Unavailable(_)) => continue,
                Err(other) => panic!("take: {other}"),
            }
        }
        panic!("a buyer was still undecided after 1000 rounds")
    }))
    .await;
    FlashSale {
        sold: outcomes.iter().filter(|(sold, _, _)| *sold).count(),
        rounds: outcomes.iter().map(|(_, rounds, _)| *rounds).collect(),
        latencies: outcomes.iter().map(|(_, _, took)| *took).collect(),
    }
}

/// A product of `stock` units, created with part of it and restocked with
/// the rest (so a sharding store spreads both).
pub async fn stocked_product<S: InventoryStore + ?Sized>(store: &S, sku_name: &str, stock: u32) {
    let initial = stock / 2 + 1;
    store.save_product(&product(sku_name, initial), None, &[]).await.unwrap();
    let read = store.product(&sku(sku_name)).await.unwrap().unwrap();
    let more = stock - initial;
    if more > 0 {
        store.restock(&read.restock(units(more), now()).unwrap(), read.version, more, &[]).await.unwrap();
    }
}

/// Many buyers of one SKU at once: exactly the stock is sold, whatever
/// items the store spreads it over, and every unit sold is reserved once.
pub async fn a_hot_sku_sells_exactly_its_stock_to_concurrent_buyers<S: InventoryStore + 'static>(store: &S) {
    const STOCK: u32 = 24;
    stocked_product(store, "HOT", STOCK).await;
    let sale = flash_sale(store, "HOT", 60).await;
    assert_eq!(sale.sold, STOCK as usize);
    let after = store.product(&sku("HOT")).await.unwrap().unwrap();
    assert_eq!((after.available, after.reserved), (0, i64::from(STOCK)));
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
    let names = store.names(&[sku("A"), sku("MISSING")]).await.unwrap();
    assert_eq!(names.get(&sku("A")).map(String::as_str), Some(product("A", 7).name.as_str()));
    assert_eq!(names.len(), 1);
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

/// A redelivery of the event that made a reservation changes nothing.
pub async fn a_processed_event_changes_stock_once<S: InventoryStore>(store: &S) {
    store.save_product(&product("A", 5), None, &[]).await.unwrap();
    let seen = mark("inventory");
    let take = take(&[("A", 1)]);
    store.apply_reservation(&take, &[], &seen).await.unwrap();
    assert_eq!(store.apply_reservation(&take, &[], &seen).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(store.product(&sku("A")).await.unwrap().unwrap().available, 4);
}

/// Each event's mark outlives the state it was decided from: after the
/// reservation moved on, a redelivery of the event that made it, or of the
/// one that released it, is a duplicate, not a conflict to decide again.
pub async fn late_redeliveries_after_a_release_change_nothing<S: InventoryStore>(store: &S) {
    store.save_product(&product("A", 5), None, &[]).await.unwrap();
    let (placed, cancelled) = (mark("inventory"), mark("inventory"));
    let taken = take(&[("A", 2)]);
    store.apply_reservation(&taken, &[], &placed).await.unwrap();
    store.apply_reservation(&release(&taken), &[], &cancelled).await.unwrap();
    assert_eq!(store.apply_reservation(&taken, &[], &placed).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(store.apply_reservation(&release(&taken), &[], &cancelled).await, Err(StoreError::AlreadyProcessed));
    let a = store.product(&sku("A")).await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (5, 0));
    let stored = store.reservation(taken.reservation.order_id).await.unwrap().unwrap();
    assert_eq!(stored.state, ReservationState::Released);
}

/// Deliveries of one `order.placed` racing each other: one reserves, the
/// others are duplicates, and the stock moves once.
pub async fn concurrent_deliveries_of_one_event_reserve_once<S: InventoryStore>(store: &S) {
    store.save_product(&product("A", 5), None, &[]).await.unwrap();
    let (seen, change) = (mark("inventory"), take(&[("A", 2)]));
    let results = futures::future::join_all((0..4).map(|_| store.apply_reservation(&change, &[], &seen))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::AlreadyProcessed))), "{results:?}");
    let a = store.product(&sku("A")).await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (3, 2));
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
