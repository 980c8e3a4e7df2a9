//! SQS adapters: the event publisher (fan-out), the consuming side of a
//! queue, and queue administration.
//!
//! Each consumer has one FIFO queue and one FIFO dead-letter queue. Events
//! are sent with `MessageGroupId = subject` (one order's events are delivered
//! in order, one at a time, while other orders flow past a stuck one) and
//! `MessageDeduplicationId = event id` (a relay that publishes twice within
//! SQS's five-minute window sends once). A standard queue works too (no
//! group or dedup id is sent when the URL does not end in `.fifo`).
//!
//! Dead-lettering: SQS moves a message to the DLQ by itself after the redrive
//! policy's `maxReceiveCount`, but it cannot say why. So when a delivery fails
//! on its last allowed attempt, [`SqsQueues::retry_later`] moves it itself
//! (send to the DLQ with the error as a message attribute, then delete), and
//! the redrive policy (same count) stays as the net for deliveries that never
//! report back (a crashed or timed-out function).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};

use crate::deferred::Deferred;
use orderly_core::events::{Envelope, routing};
use orderly_core::messaging::first_of_each_group;
use orderly_core::ports::{
    DeadLetter, EventPublisher, MessageQueue, PublishError, QueueAdmin, QueueError, QueueStats, ReceivedMessage,
};

const LAST_ERROR: &str = "orderly-last-error";
const RECEIVE_COUNT: &str = "orderly-receive-count";
const DEAD_AT: &str = "orderly-dead-at";
const SOURCE_MESSAGE: &str = "orderly-source-message-id";
/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// The queue (and its dead-letter queue) that holds one consumer's messages.
pub use orderly_core::settings::QueueUrls;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsConfig {
    /// By consumer queue name (`inventory`, ...; see `events::routing`).
    pub queues: BTreeMap<String, QueueUrls>,
    /// The redrive policy's `maxReceiveCount` (deliveries before the DLQ).
    pub max_receives: u32,
}

#[derive(Debug)]
pub struct SqsQueues {
    /// Built on first use: a Spin component wires the queues for every
    /// request and sends to them on almost none.
    client: Deferred<Client>,
    config: SqsConfig,
    /// When each message this process received and has not settled was sent:
    /// the only source of "oldest message age" SQS offers outside CloudWatch.
    seen: Mutex<HashMap<String, BTreeMap<String, DateTime<Utc>>>>,
}

/// Everything `ack`/`retry_later` need, packed into the opaque receipt:
/// `<receive count>\t<message id>\t<group>\t<SQS receipt handle>\t<body>`.
/// Carrying the body lets the last failed attempt move the message to the
/// DLQ with its error without another read.
struct Receipt<'a> {
    count: u32,
    message_id: &'a str,
    group: &'a str,
    handle: &'a str,
    body: &'a str,
}

impl<'a> Receipt<'a> {
    fn encode(count: u32, message_id: &str, group: Option<&str>, handle: &str, body: &str) -> String {
        format!("{count}\t{message_id}\t{}\t{handle}\t{body}", group.unwrap_or(""))
    }

    fn parse(raw: &'a str) -> Result<Self, QueueError> {
        let mut parts = raw.splitn(5, '\t');
        let mut next = || parts.next().ok_or_else(|| QueueError::Unavailable("not a receipt of this queue".into()));
        let count = next()?.parse().map_err(|_| QueueError::Unavailable("not a receipt of this queue".into()))?;
        Ok(Self { count, message_id: next()?, group: next()?, handle: next()?, body: next()? })
    }
}

fn unavailable<E: std::error::Error>(error: E) -> QueueError {
    QueueError::Unavailable(super::sdk_error_detail(&error))
}

fn is_fifo(url: &str) -> bool {
    url.ends_with(".fifo")
}

/// Whole seconds, rounded up (SQS counts visibility in seconds).
fn seconds(duration: Duration) -> i32 {
    let capped = duration.min(MAX_VISIBILITY);
    (capped.as_secs() + u64::from(capped.subsec_nanos() > 0)) as i32
}

fn string_attribute(value: impl Into<String>) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("type and value are set")
}

fn message_attribute<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message.message_attributes.as_ref()?.get(name)?.string_value.as_deref()
}

/// A received message's system attributes, read.
fn delivery_attributes(message: &Message) -> DeliveryAttributes {
    DeliveryAttributes::parse(message.attributes.iter().flatten().map(|(name, value)| (name.as_str(), value.as_str())))
}

/// Epoch milliseconds, as SQS writes times.
fn epoch_millis(raw: &str) -> Option<DateTime<Utc>> {
    raw.trim().parse().ok().and_then(DateTime::from_timestamp_millis)
}

/// What SQS says about a delivery besides its body, from its system
/// attributes (`ApproximateReceiveCount`, `MessageGroupId`, `SentTimestamp`).
/// They reach a function three ways — `ReceiveMessage` here, a Lambda SQS
/// event, the spin-trigger-sqs plugin — and all three are read by
/// [`DeliveryAttributes::parse`], so that a missing or malformed value means
/// the same on every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttributes {
    /// 1 on the first delivery.
    pub receive_count: u32,
    /// The FIFO group; `None` on a standard queue.
    pub group: Option<String>,
    pub sent_at: DateTime<Utc>,
}

impl DeliveryAttributes {
    /// Reads the attributes by name; others are ignored. Never fails:
    ///
    /// - a receive count that is missing, not a number or 0 counts as the
    ///   first delivery. It only decides when this code dead-letters a
    ///   message itself; the queue's redrive policy still counts the real
    ///   deliveries.
    /// - an empty group is no group.
    /// - a send time that is missing or not epoch milliseconds is now (it
    ///   only feeds the oldest-message age).
    ///
    /// A value that is present but malformed is logged.
    pub fn parse<'a>(attributes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut parsed = Self { receive_count: 1, group: None, sent_at: Utc::now() };
        for (name, value) in attributes {
            match name {
                "ApproximateReceiveCount" => match value.trim().parse::<u32>() {
                    Ok(count) if count > 0 => parsed.receive_count = count,
                    _ => tracing::warn!(value, "ApproximateReceiveCount is not a positive number: counted as 1"),
                },
                "MessageGroupId" => parsed.group = Some(value.to_owned()).filter(|group| !group.is_empty()),
                "SentTimestamp" => match epoch_millis(value) {
                    Some(at) => parsed.sent_at = at,
                    None => tracing::warn!(value, "SentTimestamp is not epoch milliseconds: read as now"),
                },
                _ => {}
            }
        }
        parsed
    }
}

impl SqsQueues {
    /// `client`: a built client, or a [`Deferred`] one.
    pub fn new(client: impl Into<Deferred<Client>>, config: SqsConfig) -> Self {
        Self { client: client.into(), config, seen: Mutex::new(HashMap::new()) }
    }

    /// The SQS client (built now if it was deferred).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn config(&self) -> &SqsConfig {
        &self.config
    }

    fn urls(&self, queue: &str) -> Result<&QueueUrls, QueueError> {
        self.config.queues.get(queue).ok_or_else(|| QueueError::UnknownQueue(queue.to_owned()))
    }

    /// A delivery, received here or handed over by a trigger (a Lambda
    /// event source mapping, spin-trigger-sqs), in the form `ack` and
    /// `retry_later` understand.
    pub fn delivery(
        message_id: &str,
        receipt_handle: &str,
        body: &str,
        attributes: DeliveryAttributes,
    ) -> ReceivedMessage {
        let DeliveryAttributes { receive_count, group, sent_at } = attributes;
        ReceivedMessage {
            message_id: message_id.to_owned(),
            receipt: Receipt::encode(receive_count, message_id, group.as_deref(), receipt_handle, body),
            body: body.to_owned(),
            receive_count,
            group,
            sent_at,
        }
    }

    /// Makes a delivery visible again after `delay` without counting it as
    /// a failure (a message held back behind its group's failed head).
    pub async fn release(&self, queue: &str, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let urls = self.urls(queue)?;
        let receipt = Receipt::parse(receipt)?;
        self.change_visibility(&urls.url, receipt.handle, delay).await
    }

    async fn change_visibility(&self, url: &str, handle: &str, delay: Duration) -> Result<(), QueueError> {
        let change = self.client.change_message_visibility().queue_url(url).receipt_handle(handle);
        match change.visibility_timeout(seconds(delay)).send().await {
            Ok(_) => Ok(()),
            // Stale: redelivered since; the new delivery decides.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_receipt_handle_is_invalid()) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn remember(&self, queue: &str, message_id: &str, sent: Option<DateTime<Utc>>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let queue = seen.entry(queue.to_owned()).or_default();
        match sent {
            // Bounded: a process that never settles what it sees forgets.
            Some(at) if queue.len() < 10_000 => {
                queue.insert(message_id.to_owned(), at);
            }
            Some(_) => {}
            None => {
                queue.remove(message_id);
            }
        }
    }

    /// Sends `bodies` (with their FIFO group) to `url`, ten at a time, in order.
    async fn send_all(&self, url: &str, messages: &[(String, String, String)]) -> Result<(), String> {
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (body, group, dedup))| {
                    let mut entry = SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body);
                    if is_fifo(url) {
                        entry = entry.message_group_id(group).message_deduplication_id(dedup);
                    }
                    entry.build().map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable(e).to_string())?;
            if let Some(failure) = sent.failed.first() {
                return Err(format!("{}: {}", failure.code, failure.message.as_deref().unwrap_or("")));
            }
        }
        Ok(())
    }

    async fn delete(&self, url: &str, handle: &str) -> Result<(), QueueError> {
        match self.client.delete_message().queue_url(url).receipt_handle(handle).send().await {
            Ok(_) => Ok(()),
            // Stale: the message was redelivered since; nothing to delete.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_receipt_handle_is_invalid()) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Moves a message that failed its last allowed attempt to the DLQ,
    /// saying why.
    async fn dead_letter(&self, urls: &QueueUrls, receipt: &Receipt<'_>, reason: &str) -> Result<(), QueueError> {
        let reason: String = reason.chars().take(1000).collect();
        let mut send = self
            .client
            .send_message()
            .queue_url(&urls.dead_letter_url)
            .message_body(receipt.body)
            .message_attributes(LAST_ERROR, string_attribute(if reason.is_empty() { "-".into() } else { reason }))
            .message_attributes(RECEIVE_COUNT, string_attribute(receipt.count.to_string()))
            .message_attributes(DEAD_AT, string_attribute(Utc::now().timestamp_millis().to_string()))
            .message_attributes(SOURCE_MESSAGE, string_attribute(receipt.message_id));
        if is_fifo(&urls.dead_letter_url) {
            let group = if receipt.group.is_empty() { "dead-letters" } else { receipt.group };
            send = send.message_group_id(group).message_deduplication_id(receipt.message_id);
        }
        send.send().await.map_err(unavailable)?;
        self.delete(&urls.url, receipt.handle).await
    }

    async fn peek_dead_letters(&self, url: &str, max: usize) -> Result<Vec<Message>, QueueError> {
        let received = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(received.messages.unwrap_or_default())
    }

    async fn counts(&self, url: &str) -> Result<(u64, u64, u64), QueueError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(unavailable)?
            .attributes
            .unwrap_or_default();
        let count = |name| attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0u64);
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ))
    }
}

#[async_trait]
impl EventPublisher for SqsQueues {
    async fn publish(&self, events: &[Envelope]) -> Result<(), PublishError> {
        let mut by_queue: BTreeMap<&str, Vec<(String, String, String)>> = BTreeMap::new();
        for event in events {
            for consumer in routing::subscribers(&event.event_type) {
                by_queue.entry(consumer.queue()).or_default().push((
                    event.to_json(),
                    event.subject.clone(),
                    event.id.to_string(),
                ));
            }
        }
        let sends = by_queue.iter().map(|(queue, messages)| async move {
            let urls = self.urls(queue).map_err(|e| e.to_string())?;
            self.send_all(&urls.url, messages).await.map_err(|e| format!("{queue}: {e}"))
        });
        let failures: Vec<String> =
            futures::future::join_all(sends).await.into_iter().filter_map(Result::err).collect();
        if failures.is_empty() { Ok(()) } else { Err(PublishError(failures.join("; "))) }
    }
}

#[async_trait]
impl MessageQueue for SqsQueues {
    async fn receive(&self, queue: &str, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        let urls = self.urls(queue)?;
        let received = self
            .client
            .receive_message()
            .queue_url(&urls.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(seconds(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(unavailable)?;
        let mut messages = Vec::new();
        for message in received.messages.unwrap_or_default() {
            let (Some(id), Some(handle)) = (message.message_id.as_deref(), message.receipt_handle.as_deref()) else {
                continue;
            };
            let body = message.body.as_deref().unwrap_or_default();
            messages.push(Self::delivery(id, handle, body, delivery_attributes(&message)));
        }
        // SQS may hand out several messages of one FIFO group at once; the
        // port promises one per group in flight, so the ones behind the first
        // go back at once (in order: the group stays blocked until the first
        // is settled). It costs them one receive count.
        let (now, behind) = first_of_each_group(messages);
        for message in behind {
            let released = match Receipt::parse(&message.receipt) {
                Ok(receipt) => self.change_visibility(&urls.url, receipt.handle, Duration::ZERO).await,
                Err(error) => Err(error),
            };
            if let Err(error) = released {
                tracing::debug!(queue, %error, "could not release a message early");
            }
        }
        for message in &now {
            self.remember(queue, &message.message_id, Some(message.sent_at));
        }
        Ok(now)
    }

    async fn ack(&self, queue: &str, receipts: &[String]) -> Result<(), QueueError> {
        let urls = self.urls(queue)?;
        let parsed = receipts.iter().map(|r| Receipt::parse(r)).collect::<Result<Vec<_>, _>>()?;
        for chunk in parsed.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r.handle)
                        .build()
                        .map_err(|e| QueueError::Unavailable(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let deleted = self
                .client
                .delete_message_batch()
                .queue_url(&urls.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(unavailable)?;
            // A stale receipt deletes nothing and is no error: the message was
            // redelivered and its new delivery decides.
            if let Some(failure) = deleted.failed.iter().find(|f| f.code != "ReceiptHandleIsInvalid") {
                return Err(QueueError::Unavailable(format!("delete failed: {}", failure.code)));
            }
            for r in chunk {
                self.remember(queue, r.message_id, None);
            }
        }
        Ok(())
    }

    async fn retry_later(&self, queue: &str, receipt: &str, delay: Duration, reason: &str) -> Result<(), QueueError> {
        let urls = self.urls(queue)?;
        let receipt = Receipt::parse(receipt)?;
        if receipt.count >= self.config.max_receives {
            self.remember(queue, receipt.message_id, None);
            return self.dead_letter(urls, &receipt, reason).await;
        }
        self.change_visibility(&urls.url, receipt.handle, delay).await
    }
}

#[async_trait]
impl QueueAdmin for SqsQueues {
    async fn stats(&self, queue: &str) -> Result<QueueStats, QueueError> {
        let urls = self.urls(queue)?;
        let (main, dead) = futures::join!(self.counts(&urls.url), self.counts(&urls.dead_letter_url));
        let ((visible, in_flight, delayed), (dead_visible, dead_in_flight, dead_delayed)) = (main?, dead?);
        let depth = visible + in_flight + delayed;
        let oldest_age = (depth > 0)
            .then(|| {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.get(queue).and_then(|q| q.values().min().copied())
            })
            .flatten()
            .map(|at| (Utc::now() - at).to_std().unwrap_or_default());
        Ok(QueueStats {
            queue: queue.to_owned(),
            depth,
            in_flight,
            oldest_age,
            dead_letters: dead_visible + dead_in_flight + dead_delayed,
        })
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let urls = self.urls(queue)?;
        let messages = self.peek_dead_letters(&urls.dead_letter_url, limit).await?;
        Ok(messages
            .iter()
            .take(limit)
            .map(|message| {
                // What dead_letter wrote, else what SQS knows (a message the
                // redrive policy moved).
                let system = delivery_attributes(message);
                let receive_count = message_attribute(message, RECEIVE_COUNT)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(system.receive_count);
                let dead_at = message_attribute(message, DEAD_AT).and_then(epoch_millis).unwrap_or(system.sent_at);
                DeadLetter {
                    message_id: message_attribute(message, SOURCE_MESSAGE)
                        .or(message.message_id.as_deref())
                        .unwrap_or_default()
                        .to_owned(),
                    queue: queue.to_owned(),
                    body: message.body.clone().unwrap_or_default(),
                    receive_count,
                    last_error: message_attribute(message, LAST_ERROR).map(str::to_owned),
                    dead_at,
                }
            })
            .collect())
    }

    async fn redrive(&self, queue: &str, limit: usize) -> Result<usize, QueueError> {
        let urls = self.urls(queue)?;
        let mut moved = 0;
        while moved < limit {
            let received = self
                .client
                .receive_message()
                .queue_url(&urls.dead_letter_url)
                .max_number_of_messages((limit - moved).clamp(1, 10) as i32)
                .visibility_timeout(30)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(unavailable)?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in &messages {
                let (Some(id), Some(handle)) = (message.message_id.as_deref(), message.receipt_handle.as_deref())
                else {
                    continue;
                };
                let mut send = self
                    .client
                    .send_message()
                    .queue_url(&urls.url)
                    .message_body(message.body.clone().unwrap_or_default());
                if is_fifo(&urls.url) {
                    let group = delivery_attributes(message).group.unwrap_or_else(|| "redriven".into());
                    // A fresh dedup id: the original one may still be inside
                    // SQS's five-minute window.
                    send = send
                        .message_group_id(group)
                        .message_deduplication_id(format!("redrive-{id}-{}", Utc::now().timestamp_millis()));
                }
                send.send().await.map_err(unavailable)?;
                self.delete(&urls.dead_letter_url, handle).await?;
                moved += 1;
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_attributes_are_read_by_name() {
        let read = DeliveryAttributes::parse([
            ("ApproximateReceiveCount", "3"),
            ("MessageGroupId", "order-9"),
            ("SentTimestamp", "1764201600000"),
            ("SenderId", "AIDA..."),
        ]);
        assert_eq!(read.receive_count, 3);
        assert_eq!(read.group.as_deref(), Some("order-9"));
        assert_eq!(read.sent_at.timestamp_millis(), 1_764_201_600_000);
    }

    #[test]
    fn missing_or_malformed_attributes_fall_back_without_failing() {
        let before = Utc::now();
        for attributes in [
            vec![],
            vec![("ApproximateReceiveCount", "many"), ("MessageGroupId", ""), ("SentTimestamp", "yesterday")],
            vec![("ApproximateReceiveCount", "0"), ("SentTimestamp", "99999999999999999999")],
            vec![("ApproximateReceiveCount", "-2"), ("SentTimestamp", "-9223372036854775808")],
        ] {
            let read = DeliveryAttributes::parse(attributes.clone());
            assert_eq!(read.receive_count, 1, "{attributes:?}: counted as the first delivery");
            assert_eq!(read.group, None, "{attributes:?}: no group");
            assert!(read.sent_at >= before, "{attributes:?}: sent now");
        }
    }

    #[test]
    fn a_delivery_carries_what_ack_and_retry_need_in_its_receipt() {
        let attributes =
            DeliveryAttributes { receive_count: 2, group: Some("order-9".into()), sent_at: DateTime::UNIX_EPOCH };
        let message = SqsQueues::delivery("m-1", "h-1", "{\"id\":1}\t", attributes);
        assert_eq!(message.group.as_deref(), Some("order-9"));
        let receipt = Receipt::parse(&message.receipt).unwrap();
        assert_eq!((receipt.count, receipt.message_id, receipt.group), (2, "m-1", "order-9"));
        assert_eq!((receipt.handle, receipt.body), ("h-1", "{\"id\":1}\t"));
    }
}
