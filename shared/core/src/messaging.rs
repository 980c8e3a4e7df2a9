//! At-least-once delivery, made safe.
//!
//! Queues (local or SQS) may deliver a message twice, late, or never
//! acknowledge it because the process died. The pieces here turn that into
//! exactly-once *effects*:
//!
//! - [`Relay`] moves events from the transactional outbox to the queues. It
//!   publishes first and removes second, so a crash in between publishes again
//!   (a duplicate) rather than never (a loss).
//! - [`process_batch`] runs a handler over a batch and reports each message on
//!   its own, so one poison message is retried and eventually dead-lettered
//!   without failing or blocking the rest (partial batch failure). Hosts map
//!   the outcomes to their queue: acknowledge/retry locally, `SqsBatchResponse`
//!   item failures on Lambda.
//! - The FIFO rule is part of it, the same on every host: the messages of
//!   one group (one subject: an order, a SKU) are handled one at a time in
//!   delivery order, and once one fails the rest of its group in the batch
//!   is held back ([`Outcome::HeldBack`]) so that nothing overtakes it; other
//!   groups go on. Queues that hand out one message per group at a time (the
//!   SQLite queue, [`first_of_each_group`] over SQS) make that trivial; a
//!   Lambda batch from a FIFO queue holds several. The batch goes to the
//!   handler in rounds, one message of each group at a time
//!   ([`EventHandler::handle_all`]), so a consumer may write a whole round in
//!   one request (analytics does: its counters once per round).
//! - Handlers make duplicates harmless by committing the event id with their
//!   state change (see `ports::ProcessedEvent`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::Rng;
use tracing::Instrument;

use crate::events::routing::Consumer;
use crate::events::{Envelope, Event, InvalidPayload};
use crate::ports::{EventPublisher, MessageQueue, Outbox, OutboxEntry, QueueError, ReceivedMessage, StoreError};
use crate::resilience::conflict::MaybeConflict;
use crate::settings::Share;
use crate::trace::{TraceContext, continue_trace};

/// One delivery of one event to one consumer.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub envelope: &'a Envelope,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// After this many failed attempts the queue dead-letters the message.
    pub max_attempts: u32,
    /// This delivery's place in the event's trace.
    pub trace: TraceContext,
    /// The span its handling runs in.
    pub span: tracing::Span,
}

impl Delivery<'_> {
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The trace this event belongs to, continued by the consumer: events the
    /// handler emits carry it, so the next hop is this one's child.
    pub fn trace(&self) -> TraceContext {
        self.trace.clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Try again after the usual backoff.
    #[error("{0}")]
    Retry(String),
    /// Not attempted: a dependency's circuit breaker is open. Try again, but
    /// not before this delay; where the queue can, this delivery does not
    /// count as an attempt (see `MessageQueue::defer`).
    #[error("{reason} (retry in {after:?})")]
    RetryAfter { reason: String, after: Duration },
    /// The event decoded, but its data is nothing the domain can hold (say,
    /// an order no transition could have produced). Like undecodable data it
    /// fails the delivery, so it ends in the dead-letter queue for a human.
    #[error("invalid event data: {0}")]
    InvalidData(String),
    /// A store failed: try again after the usual backoff. Kept as it is so
    /// that a lost race (`Conflict`) can be told apart and re-decided at once
    /// (see `resilience::conflict`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MaybeConflict for HandlerError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Store(error) if error.is_conflict())
    }
}

impl From<InvalidPayload> for HandlerError {
    fn from(error: InvalidPayload) -> Self {
        Self::InvalidData(error.to_string())
    }
}

/// How many messages of one batch a consumer handles at once by default.
/// The runner's batches may be set as large as 256; this bound keeps a
/// backlog from turning into hundreds of simultaneous calls to a webhook
/// or a gateway.
pub const HANDLED_AT_ONCE: usize = 32;

/// A consumer's business reaction to events.
#[async_trait]
pub trait EventHandler: Send + Sync {
    fn consumer(&self) -> Consumer;

    async fn handle(&self, event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError>;

    /// Handles events of distinct FIFO groups that arrived in one batch, one
    /// result per event in their order. The default handles each on its own,
    /// at most [`HANDLED_AT_ONCE`] at a time; a consumer that can write
    /// several events in one request (analytics) overrides it, keeping each
    /// event's exactly-once.
    async fn handle_all(&self, batch: Vec<(Event, Delivery<'_>)>) -> Vec<Result<(), HandlerError>> {
        let mut handled = Vec::with_capacity(batch.len());
        let mut waiting = batch.into_iter().enumerate();
        // Unordered, so that one slow call holds only its own slot; each
        // result is put back in its message's place at the end.
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < HANDLED_AT_ONCE {
                let Some((at, (event, delivery))) = waiting.next() else { break };
                running.push(async move {
                    let span = delivery.span.clone();
                    (at, self.handle(event, &delivery).instrument(span).await)
                });
            }
            match running.next().await {
                Some(done) => handled.push(done),
                None => break,
            }
        }
        handled.sort_unstable_by_key(|(at, _)| *at);
        handled.into_iter().map(|(_, result)| result).collect()
    }

    /// `Some(d)`: this consumer cannot make progress for `d` (its downstream
    /// is known to be down). Hosts that control receiving stop taking
    /// messages meanwhile, so the queue buffers them without spending their
    /// delivery attempts.
    async fn paused_for(&self) -> Option<Duration> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled (or already handled before): acknowledge.
    Done,
    /// A type this consumer does not know: acknowledge, log and count.
    Ignored { event_type: String },
    /// Leave it for redelivery; it is dead-lettered after `max_attempts`.
    Failed { error: String, retry_after: Option<Duration> },
    /// Not handled: an earlier message of its FIFO group failed in this
    /// batch. Put it back as it is, without counting an attempt, so that it
    /// comes after the failed one.
    HeldBack,
}

/// The result for one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    pub message_id: String,
    pub receipt: String,
    pub outcome: Outcome,
}

/// The positions of a batch's messages by FIFO group: groups in the order
/// they first appear, each in delivery order. A message with no group is a
/// group of its own (a standard queue promises no order to keep).
fn fifo_groups(messages: &[ReceivedMessage]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (position, message) in messages.iter().enumerate() {
        let group = message.group.as_deref();
        match groups.iter_mut().find(|(g, _)| group.is_some() && *g == group) {
            Some((_, positions)) => positions.push(position),
            None => groups.push((group, vec![position])),
        }
    }
    groups.into_iter().map(|(_, positions)| positions).collect()
}

/// Splits a batch into the first message of each FIFO group, which may be
/// handled now, and the ones behind them, which must wait for it: for queues
/// that promise one message per group in flight.
pub fn first_of_each_group(messages: Vec<ReceivedMessage>) -> (Vec<ReceivedMessage>, Vec<ReceivedMessage>) {
    let firsts: Vec<usize> = fifo_groups(&messages).iter().filter_map(|positions| positions.first().copied()).collect();
    let (mut now, mut behind) = (Vec::new(), Vec::new());
    for (position, message) in messages.into_iter().enumerate() {
        if firsts.contains(&position) { now.push(message) } else { behind.push(message) }
    }
    (now, behind)
}

/// The successful per-event lines ("event handled") kept: a trace is kept
/// when the low 32 bits of its id are below this (`u32::MAX`: every one).
static HANDLED_LINES_BELOW: AtomicU32 = AtomicU32::new(u32::MAX);

/// Keeps `share` of the successful per-event log lines, for this process.
///
/// They are most of what the consumers log (one per event per consumer,
/// six per order), and on Lambda every byte is billed by CloudWatch Logs.
/// The choice is by trace id, which is random: every consumer keeps or
/// drops the same orders, so a kept order is logged at every hop. Failures
/// and warnings are always logged, and the metrics count every event.
pub fn keep_handled_lines(share: Share) {
    let below = if share >= Share::ALL { u32::MAX } else { (share.get() * f64::from(u32::MAX)) as u32 };
    HANDLED_LINES_BELOW.store(below, Ordering::Relaxed);
}

fn handled_line_kept(trace: &TraceContext) -> bool {
    let below = HANDLED_LINES_BELOW.load(Ordering::Relaxed);
    let low = trace.trace_id.get(24..).and_then(|low| u32::from_str_radix(low, 16).ok());
    below == u32::MAX || low.is_some_and(|low| low < below)
}

/// Handles a batch: its FIFO groups concurrently, the messages of one group
/// one after another in delivery order, the rest of a group held back once
/// one of it fails. One outcome per message, in the batch's order.
///
/// It goes in rounds: round `r` hands the `r`-th message of every group that
/// has not failed to [`EventHandler::handle_all`] at once, so a consumer may
/// write a round in one request, and no message overtakes an earlier one of
/// its group.
pub async fn process_batch(
    handler: &dyn EventHandler,
    messages: &[ReceivedMessage],
    max_attempts: u32,
) -> Vec<MessageOutcome> {
    let groups = fifo_groups(messages);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; messages.len()];
    let mut failed = vec![false; groups.len()];
    let rounds = groups.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        let mut now = Vec::new();
        for (group, positions) in groups.iter().enumerate() {
            let Some(&position) = positions.get(round) else { continue };
            if failed[group] { outcomes[position] = Some(Outcome::HeldBack) } else { now.push((group, position)) }
        }
        let handled =
            process_round(handler, messages, &now.iter().map(|(_, p)| *p).collect::<Vec<_>>(), max_attempts).await;
        for ((group, position), outcome) in now.into_iter().zip(handled) {
            failed[group] |= matches!(outcome, Outcome::Failed { .. });
            outcomes[position] = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .zip(messages)
        .map(|(outcome, message)| {
            // Every message is in one round; were one not, it goes back untouched.
            let outcome = outcome.unwrap_or(Outcome::HeldBack);
            let result = match &outcome {
                Outcome::Done => "done",
                Outcome::Ignored { .. } => "ignored",
                Outcome::Failed { .. } => "failed",
                Outcome::HeldBack => "held_back",
            };
            metrics::counter!("orderly_messages_total", "consumer" => handler.consumer().queue(), "outcome" => result)
                .increment(1);
            MessageOutcome { message_id: message.message_id.clone(), receipt: message.receipt.clone(), outcome }
        })
        .collect()
}

/// One message read off the queue, before its handling.
struct Opened {
    envelope: Envelope,
    span: tracing::Span,
    trace: TraceContext,
}

/// Handles the messages at `positions` (one per group) together: decodes
/// each, hands the decoded ones to the handler at once, logs each outcome.
async fn process_round(
    handler: &dyn EventHandler,
    messages: &[ReceivedMessage],
    positions: &[usize],
    max_attempts: u32,
) -> Vec<Outcome> {
    let consumer = handler.consumer().queue();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; positions.len()];
    let mut opened: Vec<(usize, Opened)> = Vec::new();
    for (slot, &position) in positions.iter().enumerate() {
        let message = &messages[position];
        match Envelope::from_json(&message.body) {
            Ok(envelope) => {
                let span = tracing::info_span!("consume", otel.name = %format!("{consumer} {}", envelope.event_type), function = consumer, event_id = %envelope.id);
                let parent = envelope.traceparent.as_deref().and_then(TraceContext::parse);
                let trace = continue_trace(&span, parent.as_ref());
                opened.push((slot, Opened { envelope, span, trace }));
            }
            Err(error) => {
                tracing::warn!(consumer, message_id = %message.message_id, attempt = message.receive_count, %error, "unreadable message");
                outcomes[slot] = Some(Outcome::Failed { error: error.to_string(), retry_after: None });
            }
        }
    }
    let mut batch = Vec::new();
    // Which of `opened` each of `batch` is.
    let mut handled = Vec::new();
    for (at, (slot, open)) in opened.iter().enumerate() {
        let (envelope, trace) = (&open.envelope, &open.trace);
        let _entered = open.span.enter();
        match envelope.decode() {
            Ok(Some(event)) => {
                let attempt = messages[positions[*slot]].receive_count;
                let delivery =
                    Delivery { envelope, attempt, max_attempts, trace: trace.clone(), span: open.span.clone() };
                batch.push((event, delivery));
                handled.push(at);
            }
            Ok(None) => {
                tracing::info!(function = consumer, event_id = %envelope.id, event_type = %envelope.event_type, trace_id = %trace.trace_id, outcome = "ignored", "unknown event type acknowledged");
                outcomes[*slot] = Some(Outcome::Ignored { event_type: envelope.event_type.clone() });
            }
            Err(error) => {
                tracing::warn!(function = consumer, event_id = %envelope.id, event_type = %envelope.event_type, trace_id = %trace.trace_id, outcome = "failed", %error, "invalid event data");
                outcomes[*slot] = Some(Outcome::Failed { error: error.to_string(), retry_after: None });
            }
        }
    }
    let started = std::time::Instant::now();
    let results = if batch.is_empty() { Vec::new() } else { handler.handle_all(batch).await };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    for (at, result) in handled.into_iter().zip(results) {
        let (slot, open) = (opened[at].0, &opened[at].1);
        let (envelope, trace) = (&open.envelope, &open.trace);
        let attempt = messages[positions[slot]].receive_count;
        let _entered = open.span.enter();
        outcomes[slot] = Some(match result {
            Ok(()) => {
                if handled_line_kept(trace) {
                    tracing::info!(
                    function = consumer,
                    event_id = %envelope.id,
                    event_type = %envelope.event_type,
                    subject = %envelope.subject,
                    trace_id = %trace.trace_id,
                    attempt,
                    outcome = "done",
                    latency_ms,
                    "event handled"
                    );
                }
                Outcome::Done
            }
            Err(error) => {
                tracing::warn!(
                    function = consumer,
                    event_id = %envelope.id,
                    event_type = %envelope.event_type,
                    subject = %envelope.subject,
                    trace_id = %trace.trace_id,
                    attempt,
                    outcome = "failed",
                    latency_ms,
                    %error,
                    last_attempt = attempt >= max_attempts,
                    "event failed"
                );
                let retry_after = match &error {
                    HandlerError::RetryAfter { after, .. } => Some(*after),
                    HandlerError::Retry(_) | HandlerError::InvalidData(_) | HandlerError::Store(_) => None,
                };
                Outcome::Failed { error: error.to_string(), retry_after }
            }
        });
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Failed { error: "not handled".into(), retry_after: None }))
        .collect()
}

/// Exponential backoff with full jitter between redeliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_millis(200), max: Duration::from_secs(30) }
    }
}

/// `d` plus up to a quarter more, at random: spreads retries that would
/// otherwise all come due at the same instant.
pub fn jitter(d: Duration) -> Duration {
    d + (d / 4).mul_f64(rand::rng().random::<f64>())
}

impl Backoff {
    /// Delay before attempt `attempt + 1`: random in [d/2, d] with
    /// d = min(max, base * 2^(attempt-1)), so retries of many failed messages
    /// spread out instead of arriving as one thundering herd.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let ceiling = self.base.saturating_mul(1 << exp).min(self.max);
        let half = ceiling / 2;
        half + ceiling.saturating_sub(half).mul_f64(rand::rng().random::<f64>())
    }
}

/// Sends a failed delivery back to its queue for the next attempt: after the
/// delay the handler asked for, else `backoff`'s for this attempt. Returns
/// that delay. Should the queue not take the request, the message still
/// comes back when its visibility timeout ends, only sooner or later than
/// planned; that is logged, not returned.
pub async fn schedule_retry(
    queue: &dyn MessageQueue,
    consumer: &str,
    message: &ReceivedMessage,
    error: &str,
    retry_after: Option<Duration>,
    backoff: Backoff,
) -> Duration {
    // A delay the handler asked for is a refusal (an open breaker): the
    // delivery was not attempted.
    let (delay, scheduled) = match retry_after {
        Some(delay) => (delay, queue.defer(consumer, &message.receipt, delay, error).await),
        None => {
            let delay = backoff.delay(message.receive_count);
            (delay, queue.retry_later(consumer, &message.receipt, delay, error).await)
        }
    };
    if let Err(e) = scheduled {
        tracing::warn!(consumer, error = %e, "could not schedule a retry; the visibility timeout will");
    }
    delay
}

/// Moves outbox events to the consumer queues.
///
/// It remembers how far it has published, so it can remove the previous
/// batch from the outbox *while* publishing the next one (one round trip to
/// the stores per batch instead of two). A crash forgets that position: the
/// events not yet removed are published again, and consumers drop them as
/// duplicates.
pub struct Relay {
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
    published_up_to: Option<String>,
    to_remove: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Outbox(#[from] QueueError),
    #[error(transparent)]
    Publish(#[from] crate::ports::PublishError),
}

impl Relay {
    pub fn new(outbox: Arc<dyn Outbox>, publisher: Arc<dyn EventPublisher>) -> Self {
        Self { outbox, publisher, published_up_to: None, to_remove: Vec::new() }
    }

    /// Publishes up to `batch` new events; returns how many. Always publish,
    /// then remove: a crash in between republishes rather than loses.
    pub async fn relay_once(&mut self, batch: usize) -> Result<usize, RelayError> {
        let entries = self.outbox.pending(self.published_up_to.as_deref(), batch).await?;
        let published = std::mem::take(&mut self.to_remove);
        if entries.is_empty() {
            if !published.is_empty()
                && let Err(error) = self.outbox.remove(&published).await
            {
                self.to_remove = published;
                return Err(error.into());
            }
            return Ok(0);
        }
        let envelopes: Vec<Envelope> = entries.iter().map(|e| e.envelope.clone()).collect();
        let (publish, remove) = futures::join!(self.publisher.publish(&envelopes), async {
            if published.is_empty() { Ok(()) } else { self.outbox.remove(&published).await }
        });
        if remove.is_err() {
            // Try again with the next batch; they are already published.
            self.to_remove.extend(published);
        }
        publish?;
        let count = entries.len();
        self.published_up_to = entries.last().map(|e| e.position.clone());
        self.to_remove.extend(entries.into_iter().map(|e| e.position));
        Ok(count)
    }
}

/// One event a change stream handed over: an outbox item, or events a
/// write left on the item it changed.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamedEvents {
    /// Removed from the outbox once published.
    Entry(OutboxEntry),
    /// Nothing to remove: the stream moves past them.
    Carried(Vec<Envelope>),
}

/// What a relay fed by a change stream does with one batch: publish it all,
/// remove the outbox items among it, and, when publishing fails, keep the
/// carried events as outbox items.
///
/// After a failure everything the batch held is durable in the outbox (its
/// items were there already), so the stream need not retry: the polling
/// relay (the sweep) publishes it, and a kept event's new outbox item comes
/// back through the stream itself. Only when keeping fails does the batch
/// fail, for the stream to hand it over again. Returns how many events were
/// published.
pub async fn relay_streamed(
    outbox: &dyn Outbox,
    publisher: &dyn EventPublisher,
    batch: Vec<StreamedEvents>,
) -> Result<usize, QueueError> {
    let mut envelopes = Vec::new();
    let mut positions = Vec::new();
    let mut carried = Vec::new();
    for events in batch {
        match events {
            StreamedEvents::Entry(entry) => {
                envelopes.push(entry.envelope);
                positions.push(entry.position);
            }
            StreamedEvents::Carried(events) => {
                envelopes.extend(events.iter().cloned());
                carried.extend(events);
            }
        }
    }
    if envelopes.is_empty() {
        return Ok(0);
    }
    if let Err(error) = publisher.publish(&envelopes).await {
        tracing::warn!(%error, events = envelopes.len(), kept = carried.len(), "stream relay: publish failed; left to the outbox sweep");
        outbox.keep(&carried).await?;
        return Ok(0);
    }
    if !positions.is_empty()
        && let Err(error) = outbox.remove(&positions).await
    {
        // Published already: the sweep publishes them again and consumers
        // drop the duplicates.
        tracing::warn!(%error, "stream relay: published outbox items not removed");
    }
    Ok(envelopes.len())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::domain::OrderId;
    use crate::events::{EventMeta, InventoryReleased};

    /// Records the messages it handles (by number) and fails those whose
    /// event came from the source `fail`.
    #[derive(Default)]
    struct Recorder {
        handled: Mutex<Vec<u128>>,
    }

    #[async_trait]
    impl EventHandler for Recorder {
        fn consumer(&self) -> Consumer {
            Consumer::Inventory
        }

        async fn handle(&self, _event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
            self.handled.lock().unwrap().push(delivery.envelope.id.as_u128());
            if delivery.envelope.source == "fail" { Err(HandlerError::Retry("refused".into())) } else { Ok(()) }
        }
    }

    /// Message number `n` of `group`, whose handling fails if `fails`.
    fn message(n: u128, group: Option<&str>, fails: bool) -> ReceivedMessage {
        let event = Event::InventoryReleased(InventoryReleased {
            order_id: OrderId::from_uuid(Uuid::from_u128(n)),
            lines: Vec::new(),
        });
        let meta = EventMeta {
            id: Uuid::from_u128(n),
            source: if fails { "fail" } else { "ok" },
            time: Utc::now(),
            traceparent: None,
        };
        ReceivedMessage {
            message_id: n.to_string(),
            receipt: format!("receipt-{n}"),
            body: event.into_envelope(meta).to_json(),
            receive_count: 1,
            group: group.map(str::to_owned),
            sent_at: Utc::now(),
        }
    }

    fn verdicts(outcomes: &[MessageOutcome]) -> Vec<(&str, &'static str)> {
        outcomes
            .iter()
            .map(|o| {
                let verdict = match o.outcome {
                    Outcome::Done => "done",
                    Outcome::Ignored { .. } => "ignored",
                    Outcome::Failed { .. } => "failed",
                    Outcome::HeldBack => "held back",
                };
                (o.message_id.as_str(), verdict)
            })
            .collect()
    }

    #[tokio::test]
    async fn the_messages_of_a_group_are_handled_in_delivery_order() {
        let handler = Recorder::default();
        let batch = [message(3, Some("a"), false), message(1, Some("a"), false), message(2, Some("a"), false)];
        let outcomes = process_batch(&handler, &batch, 5).await;
        assert_eq!(*handler.handled.lock().unwrap(), [3, 1, 2]);
        assert_eq!(verdicts(&outcomes), [("3", "done"), ("1", "done"), ("2", "done")]);
    }

    #[tokio::test]
    async fn a_failure_holds_back_the_rest_of_its_group_while_other_groups_go_on() {
        let handler = Recorder::default();
        let batch = [
            message(1, Some("a"), true),
            message(2, Some("b"), false),
            message(3, Some("a"), false),
            message(4, Some("b"), false),
            message(5, Some("a"), false),
        ];
        let outcomes = process_batch(&handler, &batch, 5).await;
        assert_eq!(
            verdicts(&outcomes),
            [("1", "failed"), ("2", "done"), ("3", "held back"), ("4", "done"), ("5", "held back")],
            "one outcome per message, in the batch's order"
        );
        let mut handled = handler.handled.lock().unwrap().clone();
        handled.sort();
        assert_eq!(handled, [1, 2, 4], "nothing behind the failure was handled");
    }

    #[tokio::test]
    async fn messages_without_a_group_do_not_hold_each_other_back() {
        let handler = Recorder::default();
        let batch = [message(1, None, true), message(2, None, false), message(3, None, true)];
        let outcomes = process_batch(&handler, &batch, 5).await;
        assert_eq!(verdicts(&outcomes), [("1", "failed"), ("2", "done"), ("3", "failed")]);
    }

    /// Counts how many of its calls are under way at once. Message 1 is
    /// slow: it waits until every other message is done (or gives up).
    #[derive(Default)]
    struct InFlight {
        now: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
        done: std::sync::atomic::AtomicUsize,
        others_done_while_the_slow_one_ran: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl EventHandler for InFlight {
        fn consumer(&self) -> Consumer {
            Consumer::Notification
        }

        async fn handle(&self, _event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
            let n = delivery.envelope.id.as_u128();
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            if n == 1 {
                for _ in 0..10_000 {
                    if self.done.load(Ordering::SeqCst) == 99 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                self.others_done_while_the_slow_one_ran.store(self.done.load(Ordering::SeqCst), Ordering::SeqCst);
            } else {
                // Later messages finish first, as calls of uneven length do.
                for _ in 0..(200 - n) % 9 {
                    tokio::task::yield_now().await;
                }
                self.done.fetch_add(1, Ordering::SeqCst);
            }
            self.now.fetch_sub(1, Ordering::SeqCst);
            if delivery.envelope.source == "fail" { Err(HandlerError::Retry("refused".into())) } else { Ok(()) }
        }
    }

    #[tokio::test]
    async fn a_large_batch_is_handled_a_bounded_number_at_a_time_and_answered_in_order() {
        let handler = InFlight::default();
        let batch: Vec<_> = (1..=100).map(|n| message(n, None, n % 7 == 0)).collect();
        let outcomes = process_batch(&handler, &batch, 5).await;
        assert_eq!(handler.most.load(Ordering::SeqCst), HANDLED_AT_ONCE);
        assert_eq!(
            handler.others_done_while_the_slow_one_ran.load(Ordering::SeqCst),
            99,
            "one slow call held up the messages behind it"
        );
        let failed: Vec<_> =
            verdicts(&outcomes).into_iter().filter(|(_, verdict)| *verdict == "failed").map(|(id, _)| id).collect();
        let expected: Vec<String> = (1..=100).filter(|n| n % 7 == 0).map(|n| n.to_string()).collect();
        assert_eq!(failed, expected, "each outcome belongs to its own message");
        assert_eq!(outcomes.len(), 100);
    }

    /// Records the size of each round it is handed.
    #[derive(Default)]
    struct Rounds {
        sizes: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl EventHandler for Rounds {
        fn consumer(&self) -> Consumer {
            Consumer::Analytics
        }

        async fn handle(&self, _event: Event, _delivery: &Delivery<'_>) -> Result<(), HandlerError> {
            Ok(())
        }

        async fn handle_all(&self, batch: Vec<(Event, Delivery<'_>)>) -> Vec<Result<(), HandlerError>> {
            self.sizes.lock().unwrap().push(batch.len());
            batch
                .iter()
                .map(|(_, d)| if d.envelope.source == "fail" { Err(HandlerError::Retry("no".into())) } else { Ok(()) })
                .collect()
        }
    }

    #[tokio::test]
    async fn a_batch_reaches_the_handler_one_message_of_each_group_at_a_time() {
        let handler = Rounds::default();
        let batch = [
            message(1, Some("a"), false),
            message(2, Some("b"), true),
            message(3, Some("a"), false),
            message(4, Some("c"), false),
            message(5, Some("a"), false),
            message(6, Some("b"), false),
        ];
        let outcomes = process_batch(&handler, &batch, 5).await;
        assert_eq!(*handler.sizes.lock().unwrap(), [3, 1, 1], "a b c, then a (b failed), then a");
        assert_eq!(
            verdicts(&outcomes),
            [("1", "done"), ("2", "failed"), ("3", "done"), ("4", "done"), ("5", "done"), ("6", "held back")]
        );
    }

    #[test]
    fn only_the_first_message_of_each_group_goes_out_at_once() {
        let batch = vec![
            message(1, Some("a"), false),
            message(2, Some("a"), false),
            message(3, None, false),
            message(4, Some("b"), false),
            message(5, None, false),
            message(6, Some("b"), false),
        ];
        let (now, behind) = first_of_each_group(batch);
        let ids = |messages: &[ReceivedMessage]| messages.iter().map(|m| m.message_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&now), ["1", "3", "4", "5"]);
        assert_eq!(ids(&behind), ["2", "6"]);
    }

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let backoff = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for _ in 0..100 {
            let first = backoff.delay(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
            let third = backoff.delay(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            let late = backoff.delay(50);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1), "{late:?}");
        }
    }

    /// An outbox and a publisher in memory, for the stream relay's choices.
    #[derive(Default)]
    struct Relayed {
        publish_fails: bool,
        published: Mutex<Vec<Envelope>>,
        kept: Mutex<Vec<Envelope>>,
        removed: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl EventPublisher for Relayed {
        async fn publish(&self, events: &[Envelope]) -> Result<(), crate::ports::PublishError> {
            if self.publish_fails {
                return Err(crate::ports::PublishError("queues down".into()));
            }
            self.published.lock().unwrap().extend(events.iter().cloned());
            Ok(())
        }
    }

    #[async_trait]
    impl Outbox for Relayed {
        async fn pending(&self, _after: Option<&str>, _limit: usize) -> Result<Vec<OutboxEntry>, QueueError> {
            Ok(Vec::new())
        }
        async fn remove(&self, positions: &[String]) -> Result<(), QueueError> {
            self.removed.lock().unwrap().extend(positions.iter().cloned());
            Ok(())
        }
        async fn keep(&self, events: &[Envelope]) -> Result<(), QueueError> {
            self.kept.lock().unwrap().extend(events.iter().cloned());
            Ok(())
        }
    }

    fn streamed_batch() -> (Vec<StreamedEvents>, Vec<Envelope>) {
        let events: Vec<Envelope> =
            (1..=3).map(|n| Envelope::from_json(&message(n, None, false).body).unwrap()).collect();
        let batch = vec![
            StreamedEvents::Carried(events[..2].to_vec()),
            StreamedEvents::Entry(OutboxEntry { position: "OUTBOX#0/a".into(), envelope: events[2].clone() }),
        ];
        (batch, events)
    }

    #[tokio::test]
    async fn a_stream_batch_is_published_in_order_and_its_outbox_items_removed() {
        let relayed = Relayed::default();
        let (batch, events) = streamed_batch();
        assert_eq!(relay_streamed(&relayed, &relayed, batch).await, Ok(3));
        assert_eq!(*relayed.published.lock().unwrap(), events);
        assert_eq!(*relayed.removed.lock().unwrap(), ["OUTBOX#0/a"]);
        assert!(relayed.kept.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stream_batch_that_fails_to_publish_keeps_its_carried_events_in_the_outbox() {
        let relayed = Relayed { publish_fails: true, ..Relayed::default() };
        let (batch, events) = streamed_batch();
        assert_eq!(relay_streamed(&relayed, &relayed, batch).await, Ok(0));
        assert_eq!(*relayed.kept.lock().unwrap(), events[..2], "the outbox item is there already");
        assert!(relayed.removed.lock().unwrap().is_empty(), "nothing published, nothing removed");
    }
}
