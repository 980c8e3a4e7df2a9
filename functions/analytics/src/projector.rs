//! The analytics consumer: applies every event to the read models.
//!
//! Most of what analytics writes is counters, and most events move the same
//! few (orders by status, by day, events by type). So a delivery batch is
//! applied in as few writes as fit (one `TransactWriteItems` takes at most
//! [`MAX_APPLY_ITEMS`] items): each order's view once, the marks of events
//! that move no view, and the counters' deltas summed, one item per counter.
//! A hundred events that each move the "pending" counter write it once per
//! write, not a hundred times; each event still applies exactly once,
//! because what records it (its view or its mark) commits in the same write.
//!
//! The projection commutes, so the batch may come from a standard queue, in
//! any order and with duplicates: the events of one order in a batch are
//! folded into one plan, read once — the view moves to the newest of them
//! (`project` from the stored view to it is the sum of the steps between) and
//! keeps all their ids — and copies of one event count once.
//!
//! When a write is refused (one event was a duplicate and its mark exists, a
//! view moved, the store refused), it wrote nothing. A lost race (a view
//! moved under a concurrent batch) is planned again from the views as they
//! are now and written once more; anything else, or a second refusal, and
//! the events are applied one at a time, each deciding again on its own: the
//! duplicate is dropped, the others go in. A lone event takes that path
//! directly.
//!
//! An event that moves a view forward needs no processed mark of its own:
//! the view keeps the ids of the events that wrote it, in the same
//! conditional write (`version` as read), so a redelivery finds its id there
//! and writes nothing, and a concurrent one loses the version race and then
//! finds it. Only events that move no view (inventory's, a late order
//! version on its own) write a mark: one item less per order event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use orderly_core::domain::{Order, OrderId};
use orderly_core::events::Event;
use orderly_core::events::routing::Consumer;
use orderly_core::messaging::{Delivery, EventHandler, HandlerError};
use orderly_core::ports::{
    Applied, Counter, MAX_APPLY_ITEMS, ProcessedEvent, ReadModelStore, StoreError, already_processed_is_done,
};
use orderly_core::resilience::conflict::{MaybeConflict, retry_on_conflict};
use tracing::Instrument;
use uuid::Uuid;

use crate::FUNCTION;
use crate::projection::project;

pub struct Projector {
    store: Arc<dyn ReadModelStore>,
}

/// One event as the projector reads it.
struct Incoming<'e> {
    id: Uuid,
    event_type: &'e str,
    /// The order it carries, if it is about one.
    order: Option<Order>,
}

/// The view one plan moves forward.
struct ViewWrite {
    order: Order,
    expected_version: Option<u32>,
    /// The events it keeps: the stored ones and this plan's.
    events: Vec<Uuid>,
    /// The newest event's mark (the store's `Applied` carries one; a view
    /// write records it on the view, not apart).
    mark: ProcessedEvent,
}

/// What the events of one order (or one event about no order) write,
/// decided from the view as it was read: the view moved to the newest of
/// them, keeping all their ids; or, when none is newer than the view, a
/// mark each.
///
/// With a view write, `marks` holds the marks of the events in it that are
/// no newer than the stored view: such an event changed no view when it was
/// applied before, so its mark, not the view, says whether it was (a
/// standard queue delivers out of order, and a lost acknowledgement brings
/// it back beside a newer event). Written with the view, an existing mark
/// refuses the write, and the events are applied one at a time. Events
/// newer than the stored view were never applied (they would have moved
/// it), so the common batch needs no mark.
struct Plan {
    view: Option<ViewWrite>,
    marks: Vec<ProcessedEvent>,
    deltas: Vec<(Counter, i64)>,
}

impl Plan {
    fn applied(&self) -> Vec<Applied<'_>> {
        let marks = self.marks.iter().map(|mark| Applied {
            view: None,
            expected_version: None,
            view_events: &[],
            processed: mark,
        });
        match &self.view {
            Some(view) => std::iter::once(Applied {
                view: Some(&view.order),
                expected_version: view.expected_version,
                view_events: &view.events,
                processed: &view.mark,
            })
            .chain(marks)
            .collect(),
            None => marks.collect(),
        }
    }
}

fn mark(id: Uuid) -> ProcessedEvent {
    ProcessedEvent { consumer: FUNCTION, event_id: id }
}

/// The order an event carries, if it is about one.
fn order_of(event: &Event) -> Result<Option<Order>, HandlerError> {
    match event {
        Event::OrderPlaced(e)
        | Event::OrderConfirmed(e)
        | Event::OrderRejected(e)
        | Event::OrderCancelled(e)
        | Event::OrderPaid(e)
        | Event::OrderShipped(e)
        | Event::OrderDelivered(e) => Ok(Some(Order::try_from(&e.order)?)),
        _ => Ok(None),
    }
}

/// What a batch's events are planned by: the order they are about, or, for
/// an event about none, the event itself (so copies of it plan once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Subject {
    Order(OrderId),
    Event(Uuid),
}

/// Splits plans (by position) into writes of at most [`MAX_APPLY_ITEMS`]
/// items: one per view or mark, one per distinct counter of the write. No
/// two plans share a view or an event (a batch has one plan per subject).
fn writes(plans: &[Plan]) -> Vec<Vec<usize>> {
    let mut writes = Vec::new();
    let mut write: Vec<usize> = Vec::new();
    let (mut items, mut counters) = (0, BTreeSet::new());
    for (at, plan) in plans.iter().enumerate() {
        let own = plan.applied().len();
        let new_counters = plan.deltas.iter().map(|(c, _)| c).collect::<BTreeSet<_>>();
        let new_counters = new_counters.iter().filter(|c| !counters.contains(**c)).count();
        if !write.is_empty() && items + counters.len() + own + new_counters > MAX_APPLY_ITEMS {
            writes.push(std::mem::take(&mut write));
            (items, counters) = (0, BTreeSet::new());
        }
        items += own;
        counters.extend(plan.deltas.iter().map(|(c, _)| c.clone()));
        write.push(at);
    }
    if !write.is_empty() {
        writes.push(write);
    }
    writes
}

impl Projector {
    pub fn new(store: Arc<dyn ReadModelStore>) -> Self {
        Self { store }
    }

    /// What `events` (of one subject; copies of one event allowed) write,
    /// or `None` when every one is already in its view (redeliveries of
    /// events that wrote it).
    async fn plan(&self, events: &[&Incoming<'_>]) -> Result<Option<Plan>, StoreError> {
        let mut fresh: Vec<&Incoming<'_>> = Vec::new();
        for event in events {
            if !fresh.iter().any(|f| f.id == event.id) {
                fresh.push(event);
            }
        }
        let Some(order) = fresh.first().and_then(|e| e.order.as_ref()) else {
            let marks = fresh.iter().map(|e| mark(e.id)).collect();
            let deltas = fresh.iter().map(|e| (Counter::Events(e.event_type.to_owned()), 1)).collect();
            return Ok(Some(Plan { view: None, marks, deltas }));
        };
        let current = self.store.order_view(order.id()).await?;
        fresh.retain(|e| !current.as_ref().is_some_and(|v| v.events.contains(&e.id)));
        if fresh.is_empty() {
            return Ok(None);
        }
        let mut deltas: Vec<(Counter, i64)> =
            fresh.iter().map(|e| (Counter::Events(e.event_type.to_owned()), 1)).collect();
        let newest = fresh.iter().filter_map(|e| e.order.as_ref().map(|o| (o, e.id))).max_by_key(|(o, _)| o.version());
        let stored = current.as_ref().map(|v| &v.order);
        let moved = newest.and_then(|(order, id)| project(stored, order).map(|d| (order, id, d)));
        let Some((newest, id, moves)) = moved else {
            // None newer than what we have: only count that they were seen.
            return Ok(Some(Plan { view: None, marks: fresh.iter().map(|e| mark(e.id)).collect(), deltas }));
        };
        deltas.extend(moves);
        let expected_version = stored.map(Order::version);
        let stale = fresh
            .iter()
            .filter(|e| e.order.as_ref().is_some_and(|o| expected_version.is_some_and(|v| o.version() <= v)))
            .map(|e| mark(e.id))
            .collect();
        let mut kept = current.map(|v| v.events).unwrap_or_default();
        kept.extend(fresh.iter().map(|e| e.id));
        let view = ViewWrite { order: newest.clone(), expected_version, events: kept, mark: mark(id) };
        Ok(Some(Plan { view: Some(view), marks: stale, deltas }))
    }

    /// One event on its own: read, decide, write, again on a lost race.
    async fn apply_one(&self, event: &Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let incoming =
            Incoming { id: delivery.envelope.id, event_type: &delivery.envelope.event_type, order: order_of(event)? };
        retry_on_conflict(|| async {
            let Some(plan) = self.plan(&[&incoming]).await? else { return Ok(()) };
            Ok(already_processed_is_done(self.store.apply(&plan.applied(), &plan.deltas).await)?)
        })
        .await
    }

    /// Tries the events in as few writes as fit; says which went in.
    async fn apply_together(&self, batch: &[(Event, Delivery<'_>)]) -> Vec<bool> {
        let mut done = vec![false; batch.len()];
        if batch.len() < 2 {
            return done;
        }
        // Positions by subject; an event whose order does not read goes on
        // its own (and fails there, with its error).
        let mut incoming = Vec::new();
        let mut subjects: BTreeMap<Subject, Vec<usize>> = BTreeMap::new();
        for (at, (event, delivery)) in batch.iter().enumerate() {
            let Ok(order) = order_of(event) else { continue };
            let id = delivery.envelope.id;
            let subject = order.as_ref().map_or(Subject::Event(id), |o| Subject::Order(o.id()));
            subjects.entry(subject).or_default().push(incoming.len());
            incoming.push((at, Incoming { id, event_type: &delivery.envelope.event_type, order }));
        }
        let mut todo: Vec<Vec<usize>> = subjects.into_values().collect();
        // A lost race is planned again once, from the views as they are now.
        for last in [false, true] {
            let plans = join_all(todo.iter().map(|group| {
                let events: Vec<&Incoming<'_>> = group.iter().map(|&k| &incoming[k].1).collect();
                async move { self.plan(&events).await }
            }))
            .await;
            // A plan that failed is decided again (and fails, or not) on its own.
            let mut planned: Vec<(&Vec<usize>, Plan)> = Vec::new();
            for (group, plan) in todo.iter().zip(plans) {
                match plan {
                    Ok(Some(plan)) => planned.push((group, plan)),
                    Ok(None) => group.iter().for_each(|&k| done[incoming[k].0] = true),
                    Err(_) => {}
                }
            }
            let (groups, plans): (Vec<_>, Vec<_>) = planned.into_iter().unzip();
            let mut again = Vec::new();
            for write in writes(&plans) {
                let applied: Vec<Applied<'_>> = write.iter().flat_map(|&k| plans[k].applied()).collect();
                let deltas: Vec<(Counter, i64)> = write.iter().flat_map(|&k| plans[k].deltas.iter().cloned()).collect();
                match self.store.apply(&applied, &deltas).await {
                    Ok(()) => write.iter().flat_map(|&k| groups[k]).for_each(|&k| done[incoming[k].0] = true),
                    Err(error) if error.is_conflict() && !last => {
                        again.extend(write.iter().map(|&k| groups[k].clone()))
                    }
                    Err(error) => {
                        tracing::info!(events = write.len(), %error, "batched write refused; one event at a time")
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            tracing::info!(subjects = again.len(), "batched write lost a race; planned again");
            todo = again;
        }
        done
    }
}

#[async_trait]
impl EventHandler for Projector {
    fn consumer(&self) -> Consumer {
        Consumer::Analytics
    }

    async fn handle(&self, event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        self.apply_one(&event, delivery).await
    }

    async fn handle_all(&self, batch: Vec<(Event, Delivery<'_>)>) -> Vec<Result<(), HandlerError>> {
        let done = self.apply_together(&batch).await;
        join_all(batch.iter().zip(done).map(|((event, delivery), done)| async move {
            if done { Ok(()) } else { self.apply_one(event, delivery).instrument(delivery.span.clone()).await }
        }))
        .await
    }
}
