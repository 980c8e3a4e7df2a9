//! `handled_log_share`: only a share of the successful per-event lines is
//! logged, chosen by trace; failures are always logged and every message
//! still gets its outcome. Its own test binary, since the share is
//! process-wide.

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use orderly_core::domain::OrderId;
use orderly_core::events::routing::Consumer;
use orderly_core::events::{Event, EventMeta, InventoryReleased};
use orderly_core::messaging::{Delivery, EventHandler, HandlerError, Outcome, keep_handled_lines, process_batch};
use orderly_core::ports::ReceivedMessage;
use orderly_core::settings::Share;
use uuid::Uuid;

/// Fails the events whose source is `fail`.
struct Handler;

#[async_trait]
impl EventHandler for Handler {
    fn consumer(&self) -> Consumer {
        Consumer::Inventory
    }

    async fn handle(&self, _event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        if delivery.envelope.source == "fail" { Err(HandlerError::Retry("refused".into())) } else { Ok(()) }
    }
}

/// Message `n`, in the trace whose id ends with `low` (hex, 8 digits).
fn message(n: u128, low: &str, fails: bool) -> ReceivedMessage {
    let event =
        Event::InventoryReleased(InventoryReleased { order_id: OrderId::from_uuid(Uuid::from_u128(n)), lines: vec![] });
    let meta = EventMeta {
        id: Uuid::from_u128(n),
        source: if fails { "fail" } else { "ok" },
        time: Utc::now(),
        traceparent: Some(format!("00-4bf92f3577b34da6a3ce929d{low}-00f067aa0ba902b7-01")),
    };
    ReceivedMessage {
        message_id: n.to_string(),
        receipt: format!("receipt-{n}"),
        body: event.into_envelope(meta).to_json(),
        receive_count: 1,
        group: None,
        sent_at: Utc::now(),
    }
}

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines of handling `batch`, as JSON, and the outcomes.
async fn logged(batch: &[ReceivedMessage]) -> (Vec<serde_json::Value>, Vec<Outcome>) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let outcomes = process_batch(&Handler, batch, 5).await.into_iter().map(|o| o.outcome).collect();
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    (text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(), outcomes)
}

fn messages_of(lines: &[serde_json::Value], message: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["fields"]["message"] == message)
        .map(|l| l["fields"]["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_share_of_traces_logs_its_successes_and_every_failure_is_logged() {
    let id = |n: u128| Uuid::from_u128(n).to_string();
    // Low trace bits 0x00000010 < half of u32::MAX < 0xfffffff0.
    let batch = [message(1, "00000010", false), message(2, "fffffff0", false), message(3, "fffffff0", true)];

    keep_handled_lines(Share::ALL);
    let (lines, _) = logged(&batch).await;
    assert_eq!(messages_of(&lines, "event handled"), [id(1), id(2)], "everything by default");

    keep_handled_lines(Share::parse("0.5").unwrap());
    let (lines, outcomes) = logged(&batch).await;
    assert_eq!(messages_of(&lines, "event handled"), [id(1)], "only the kept trace");
    assert_eq!(messages_of(&lines, "event failed"), [id(3)], "a failure is logged whatever its trace");
    assert!(matches!(outcomes[..], [Outcome::Done, Outcome::Done, Outcome::Failed { .. }]), "{outcomes:?}");

    keep_handled_lines(Share::parse("0").unwrap());
    let (lines, _) = logged(&batch).await;
    assert!(messages_of(&lines, "event handled").is_empty());
    assert_eq!(messages_of(&lines, "event failed"), [id(3)]);
}
