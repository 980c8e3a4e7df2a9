//! The analytics consumer: applies every event to the read models.
//!
//! Most of what analytics writes is counters, and most events move the same
//! few (orders by status, by day, events by type). So a round of a delivery
//! batch (one event of each FIFO group, see `messaging::process_batch`) is
//! applied in one write: each event's processed mark and view, and the
//! counters' deltas summed, one item per counter. Ten events that each move
//! the "pending" counter write it once, not ten times; each event still
//! applies exactly once, because its mark commits in the same write.
//!
//! When that write fails for any reason (one event was a duplicate and its
//! mark exists, a view moved, the store refused), it wrote nothing, and the
//! events are applied one at a time, each deciding again on its own: the
//! duplicate is dropped, the others go in. A lone event takes that path
//! directly.
//!
//! An event that moves a view forward needs no processed mark of its own:
//! the view keeps the ids of the events that wrote it, in the same
//! conditional write (`version` as read), so a redelivery finds its id there
//! and writes nothing, and a concurrent one loses the version race and then
//! finds it. Only events that move no view (inventory's, a late order
//! version) write a mark: one item less per order event.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use orderly_core::domain::{Order, OrderId};
use orderly_core::events::Event;
use orderly_core::events::routing::Consumer;
use orderly_core::messaging::{Delivery, EventHandler, HandlerError};
use orderly_core::ports::{
    Applied, Counter, MAX_APPLY_ITEMS, ProcessedEvent, ReadModelStore, already_processed_is_done,
};
use orderly_core::resilience::conflict::retry_on_conflict;
use tracing::Instrument;
use uuid::Uuid;

use crate::FUNCTION;
use crate::projection::project;

pub struct Projector {
    store: Arc<dyn ReadModelStore>,
}

/// What one event writes, decided from the view as it was read.
struct Plan {
    view: Option<Order>,
    expected_version: Option<u32>,
    /// With a view: the events it keeps, this one last.
    view_events: Vec<Uuid>,
    deltas: Vec<(Counter, i64)>,
    mark: ProcessedEvent,
}

impl Plan {
    fn applied(&self) -> Applied<'_> {
        Applied {
            view: self.view.as_ref(),
            expected_version: self.expected_version,
            view_events: &self.view_events,
            processed: &self.mark,
        }
    }
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

/// Splits plans (by position) into writes of at most [`MAX_APPLY_ITEMS`]
/// items, none with an event or a view twice. A plan that would repeat one
/// is left out: it goes on its own.
fn writes(plans: &[(usize, Plan)]) -> Vec<Vec<usize>> {
    let mut writes = Vec::new();
    let mut write: Vec<usize> = Vec::new();
    let (mut items, mut counters) = (0, BTreeSet::new());
    let (mut events, mut views): (BTreeSet<Uuid>, BTreeSet<OrderId>) = (BTreeSet::new(), BTreeSet::new());
    for (at, (_, plan)) in plans.iter().enumerate() {
        let view = plan.view.as_ref().map(Order::id);
        if events.contains(&plan.mark.event_id) || view.is_some_and(|v| views.contains(&v)) {
            continue;
        }
        let new_counters = plan.deltas.iter().filter(|(c, _)| !counters.contains(c)).count();
        // One item for the event: its view, or its mark when it has none.
        if items + counters.len() + 1 + new_counters > MAX_APPLY_ITEMS {
            writes.push(std::mem::take(&mut write));
            (items, counters, events, views) = (0, BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        }
        items += 1;
        counters.extend(plan.deltas.iter().map(|(c, _)| c.clone()));
        events.insert(plan.mark.event_id);
        views.extend(view);
        write.push(at);
    }
    writes.push(write);
    writes.retain(|w| w.len() > 1);
    writes
}

impl Projector {
    pub fn new(store: Arc<dyn ReadModelStore>) -> Self {
        Self { store }
    }

    /// What `event` writes, or `None` when it is already in its view (a
    /// redelivery of an event that wrote it).
    async fn plan(&self, event: &Event, delivery: &Delivery<'_>) -> Result<Option<Plan>, HandlerError> {
        let mark = ProcessedEvent { consumer: FUNCTION, event_id: delivery.envelope.id };
        let seen = (Counter::Events(delivery.envelope.event_type.clone()), 1);
        let Some(order) = order_of(event)? else {
            let deltas = vec![seen];
            return Ok(Some(Plan { view: None, expected_version: None, view_events: Vec::new(), deltas, mark }));
        };
        let current = self.store.order_view(order.id()).await?;
        if current.as_ref().is_some_and(|v| v.events.contains(&mark.event_id)) {
            return Ok(None);
        }
        let expected_version = current.as_ref().map(|v| v.order.version());
        let (view, mut deltas, view_events) = match project(current.as_ref().map(|v| &v.order), &order) {
            Some(deltas) => {
                let mut events = current.map(|v| v.events).unwrap_or_default();
                events.push(mark.event_id);
                (Some(order), deltas, events)
            }
            // Older than what we have: only count that it was seen.
            None => (None, Vec::new(), Vec::new()),
        };
        deltas.push(seen);
        Ok(Some(Plan { view, expected_version, view_events, deltas, mark }))
    }

    /// One event on its own: read, decide, write, again on a lost race.
    async fn apply_one(&self, event: &Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        retry_on_conflict(|| async {
            let Some(plan) = self.plan(event, delivery).await? else { return Ok(()) };
            Ok(already_processed_is_done(self.store.apply(&[plan.applied()], &plan.deltas).await)?)
        })
        .await
    }

    /// Tries the events in as few writes as fit; says which went in.
    async fn apply_together(&self, batch: &[(Event, Delivery<'_>)]) -> Vec<bool> {
        let mut done = vec![false; batch.len()];
        if batch.len() < 2 {
            return done;
        }
        let plans = join_all(batch.iter().map(|(event, delivery)| self.plan(event, delivery))).await;
        // A plan that failed is decided again (and fails, or not) on its own.
        let mut todo: Vec<(usize, Plan)> = Vec::new();
        for (at, plan) in plans.into_iter().enumerate() {
            match plan {
                Ok(Some(plan)) => todo.push((at, plan)),
                Ok(None) => done[at] = true,
                Err(_) => {}
            }
        }
        let plans = todo;
        for write in writes(&plans) {
            let applied: Vec<Applied<'_>> = write.iter().map(|&k| plans[k].1.applied()).collect();
            let deltas: Vec<(Counter, i64)> = write.iter().flat_map(|&k| plans[k].1.deltas.iter().cloned()).collect();
            match self.store.apply(&applied, &deltas).await {
                Ok(()) => write.iter().for_each(|&k| done[plans[k].0] = true),
                Err(error) => {
                    tracing::info!(events = write.len(), %error, "batched write refused; one event at a time")
                }
            }
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
