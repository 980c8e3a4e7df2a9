//! A stack on DynamoDB + SQS (the Lambda host's on an emulator, or the Spin
//! harness's), as tests reach into it: its [`AwsBackend`], and a wipe that lets
//! each test start from nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use orderly_adapters::aws_backend::AwsBackend;
use orderly_adapters::dynamo::{DynamoConfig, TableKind};
use orderly_core::composition::Backend;
use orderly_core::events::routing::Consumer;
use orderly_core::ports::QueueAdmin;
use orderly_core::settings::{Settings, queue_key};

/// The backend of the tables and queues `sam deploy` made for `stage`
/// (`orderly-<stage>-<capability>`, queues with their DLQs: FIFO, but a
/// standard pair for a consumer that needs no order).
#[allow(dead_code)] // the Spin harness builds its host from its own settings
pub async fn deployed(config: &aws_config::SdkConfig, stage: &str) -> anyhow::Result<AwsBackend> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let tables = DynamoConfig::with_prefix(&format!("orderly-{stage}"));
    let mut values = BTreeMap::new();
    for (kind, key) in [
        (TableKind::Orders, "table_orders"),
        (TableKind::Inventory, "table_inventory"),
        (TableKind::Notifications, "table_notifications"),
        (TableKind::Analytics, "table_analytics"),
    ] {
        values.insert(key.to_owned(), tables.table(kind).to_owned());
    }
    for consumer in Consumer::ALL {
        for (kind, suffix) in [("queue", ""), ("dlq", "-dlq")] {
            let fifo = if consumer.needs_order() { ".fifo" } else { "" };
            let name = format!("orderly-{stage}-{}{suffix}{fifo}", consumer.queue());
            let url = sqs.get_queue_url().queue_name(&name).send().await?.queue_url.unwrap_or_default();
            values.insert(queue_key(kind, consumer), url);
        }
    }
    let settings = Settings::load(&values)?;
    let provider = std::sync::Arc::new(orderly_adapters::log_provider::LogProvider);
    Ok(AwsBackend::new(settings, aws_sdk_dynamodb::Client::new(config), sqs, provider))
}

/// How long the previous test's events may take to settle.
const SETTLE: Duration = Duration::from_secs(60);
/// Consecutive looks that must find the stack settled.
const SETTLED_LOOKS: u32 = 3;
/// How long they must span: with `outbox = stream` an event waiting in a
/// table's stream is in no queue and no outbox item, and the emulator's
/// stream poller, when idle, looks once a second.
const SETTLED_FOR: Duration = Duration::from_millis(1500);

/// Waits for the stack to settle — nothing queued or in flight, nothing
/// waiting in an outbox — then empties every table and queue. A stack still
/// busy after [`SETTLE`] is an error: wiping it anyway would let the
/// previous test's late writes land in the next test's tables.
///
/// One look is not enough: it reads the queues, then the outboxes, one
/// after the other, and an event moving along the saga (outbox, queue,
/// handler, outbox) can slip past a look's reads. It must look settled
/// [`SETTLED_LOOKS`] times in a row, over at least [`SETTLED_FOR`].
pub async fn wipe(host: &AwsBackend) -> anyhow::Result<()> {
    let queues = host.queues();
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut settled_looks = 0;
    let mut settled_since = None;
    loop {
        let mut busy = Vec::new();
        for consumer in Consumer::ALL {
            let depth = queues.stats(consumer.queue()).await?.depth;
            if depth > 0 {
                busy.push(format!("{} messages in {}", depth, consumer.queue()));
            }
        }
        for kind in [TableKind::Orders, TableKind::Inventory] {
            let table = host.tables().table(kind);
            let outbox = host
                .dynamo()
                .scan()
                .table_name(table)
                .filter_expression("begins_with(pk, :outbox)")
                .expression_attribute_values(":outbox", AttributeValue::S("OUTBOX#".into()))
                .send()
                .await?;
            if outbox.count > 0 {
                busy.push(format!("{} outbox items in {table}", outbox.count));
            }
        }
        if busy.is_empty() {
            let since = *settled_since.get_or_insert_with(tokio::time::Instant::now);
            settled_looks += 1;
            if settled_looks >= SETTLED_LOOKS && since.elapsed() >= SETTLED_FOR {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        settled_looks = 0;
        settled_since = None;
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the stack did not settle within {SETTLE:?}: {}", busy.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for kind in TableKind::ALL {
        let table = host.tables().table(kind);
        let mut start = None;
        loop {
            let page = host
                .dynamo()
                .scan()
                .table_name(table)
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for chunk in page.items().chunks(25) {
                let deletes = chunk
                    .iter()
                    .map(|key| {
                        let delete = DeleteRequest::builder().set_key(Some(key.clone())).build()?;
                        Ok(WriteRequest::builder().delete_request(delete).build())
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                host.dynamo().batch_write_item().request_items(table, deletes).send().await?;
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    for urls in host.settings().aws.queues.values() {
        for url in [&urls.url, &urls.dead_letter_url] {
            host.sqs().purge_queue().queue_url(url).send().await?;
        }
    }
    Ok(())
}
