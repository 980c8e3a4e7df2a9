//! `orderly capacity`: the capacity model of the AWS stack, as arithmetic.
//!
//! docs/capacity.md explains it; its table is [`markdown`]'s output and a test
//! keeps the two equal, so the document cannot drift from the numbers.
//!
//! The inputs are the design's own per-order counts (docs/aws.md, "Cost per
//! million orders" and "Table design"), DynamoDB's per-partition limits, and
//! the account quotas a deployment starts with. Work is by Little's law:
//! concurrency = arrivals per second × seconds each. Every figure is for a
//! sustained rate; a flash sale's burst is shorter, but a partition's limit
//! is per second, so the sustained figure is the one that matters.

use std::fmt::Write;

use orderly_core::events::routing::Consumer;
use orderly_core::ports::MAX_APPLY_ITEMS;
use orderly_core::settings::MAX_STOCK_SHARDS;

/// One partition takes at most this many write units a second…
pub const PARTITION_WCU: f64 = 1_000.0;
/// …and this many (strongly consistent) read units.
pub const PARTITION_RCU: f64 = 3_000.0;
/// On-demand table default: write and read request units a second.
pub const TABLE_WRU: f64 = 40_000.0;
/// Lambda's default concurrency per account and region.
pub const LAMBDA_CONCURRENCY: f64 = 1_000.0;
/// SQS FIFO high-throughput mode (us-east-1): requests per second per API
/// action per queue; a batch of 10 messages is one request.
pub const FIFO_TPS: f64 = 70_000.0;
/// HTTP API requests a second per account and region.
pub const HTTP_API_RPS: f64 = 10_000.0;

/// A transactional write costs 2 units per item; a plain write 1.
const TX: f64 = 2.0;

/// The SQS messages one order sends, per consumer queue (`order.placed` to
/// inventory and analytics, the reply to order-intake, `order.confirmed` to
/// notification and analytics, the reply to analytics). Analytics' queue is
/// standard (`Consumer::needs_order`), the others FIFO.
pub const MESSAGES_PER_ORDER: [(&str, f64); 4] =
    [("order-intake", 1.0), ("inventory", 1.0), ("notification", 1.0), ("analytics", 3.0)];

/// Work per order and the seconds each piece takes, per function: the HTTP
/// request and the stream relays (order-intake), each queue delivery. A
/// batch's invocation takes about its events' time, so concurrency and GB-s
/// go by events, not invocations.
pub const WORK_PER_ORDER: [(&str, f64, f64); 4] =
    [("order-intake", 4.0, 0.020), ("inventory", 2.0, 0.020), ("notification", 1.0, 0.020), ("analytics", 3.0, 0.020)];

/// What invokes each function per order (function, trigger, records per
/// order, records per invocation): Lambda bills a request per invocation,
/// and a queue or stream mapping hands one invocation a batch. The records
/// per invocation are measured over `scripts/aws-e2e.sh` on the emulator
/// (`scripts/aws_log_counts.py`; docs/aws.md), a light load: a busy queue
/// fills its batches more, so these are an upper bound on invocations.
/// (The emulator's mappings hand out at most 10 messages, whatever the
/// batch size, so analytics' 100 does not show in its figure either.)
pub const INVOCATIONS: [(&str, &str, f64, f64); 7] = [
    ("order-intake", "HTTP", 1.0, 1.0),
    ("order-intake", "stream", 2.0, 4.31),
    ("order-intake", "SQS", 1.0, 3.91),
    ("inventory", "SQS", 1.0, 3.13),
    ("inventory", "stream", 1.0, 2.48),
    ("notification", "SQS", 1.0, 3.64),
    ("analytics", "SQS", 3.0, 3.70),
];

/// Lambda invocations per order, batches counted as one.
pub fn invocations_per_order() -> f64 {
    INVOCATIONS.iter().map(|(_, _, records, per_invocation)| records / per_invocation).sum()
}

/// Events analytics applies per order (`placed`, `reserved`, `confirmed`).
/// Two write the order's view, which keeps their ids (their processed
/// marks); `reserved` moves no view and writes a mark.
const ANALYTICS_EVENTS_PER_ORDER: f64 = 3.0;
const ANALYTICS_VIEWS_PER_ORDER: f64 = 2.0;
const ANALYTICS_MARKS_PER_ORDER: f64 = ANALYTICS_EVENTS_PER_ORDER - ANALYTICS_VIEWS_PER_ORDER;
/// Counter items per order when every event is applied alone: `placed` 3
/// (pending, the day's orders, events by type), `reserved` 1 (events by
/// type), `confirmed` 6 (pending, confirmed, revenue, the day's revenue, its
/// SKU's units, events by type).
const ANALYTICS_COUNTERS_ALONE: f64 = 10.0;
/// Counters every batched analytics write moves whatever its orders: the two
/// statuses, the day's orders and revenue, revenue, events by type ×3. The
/// units of the SKUs its confirmations sold come on top: one on a hot SKU,
/// one per confirmation spread over a catalog.
const ANALYTICS_FIXED_COUNTERS: f64 = 8.0;
/// Analytics events per delivery batch under load: `AnalyticsBatchSize`
/// (template.yaml; its queue is standard, so past FIFO's 10). The projector
/// writes a batch in as few transactions of at most [`MAX_APPLY_ITEMS`]
/// items as fit, each counter once per transaction
/// (`functions/analytics/src/projector.rs`).
pub const ANALYTICS_BATCH: f64 = 100.0;
/// What FIFO allowed before: 10 per batch.
pub const FIFO_BATCH: f64 = 10.0;

/// Transactions one delivery batch of `batch` events takes: each event one
/// item (its view, or its mark), each counter one, at most
/// [`MAX_APPLY_ITEMS`] a transaction.
fn analytics_writes_per_batch(batch: f64, workload: Workload) -> f64 {
    let room = MAX_APPLY_ITEMS as f64 - ANALYTICS_FIXED_COUNTERS;
    let fits = match workload {
        Workload::HotSku => room - 1.0,
        Workload::Spread => room / (1.0 + 1.0 / ANALYTICS_EVENTS_PER_ORDER),
    };
    (batch / fits.floor()).ceil()
}

/// Analytics write units per order with `batch` events per delivery batch:
/// each view and mark always, counters once per transaction.
pub fn analytics_wru(batch: f64, workload: Workload) -> f64 {
    let counters = if batch <= 1.0 {
        ANALYTICS_COUNTERS_ALONE
    } else {
        let writes = analytics_writes_per_batch(batch, workload);
        // Units by SKU: the hot one in every write, or one per confirmation.
        let units = match workload {
            Workload::HotSku => writes,
            Workload::Spread => batch / ANALYTICS_EVENTS_PER_ORDER,
        };
        ANALYTICS_EVENTS_PER_ORDER / batch * (ANALYTICS_FIXED_COUNTERS * writes + units)
    };
    TX * (ANALYTICS_MARKS_PER_ORDER + ANALYTICS_VIEWS_PER_ORDER + counters)
}

/// The orders table's write units per order, with the stack's `outbox =
/// stream` (events ride on the items their writes change): intake's
/// transaction ×2 of the order, which carries `order.placed` (1–2 KB: 2
/// units), and the idempotency claim (1); the caller's rate-limit bucket 1;
/// the confirmation, one conditional `UpdateItem` of the order carrying
/// `order.confirmed` and the reply's processed mark (1–2 KB: 2). No outbox
/// item to put or remove. Item sizes: docs/aws.md, for orders of one or two
/// lines. (With outbox items: 3 ×2 + 1 + 2 ×2 + 2 removals = 13.)
const ORDERS_WRU: f64 = (2.0 + 1.0) * TX + 1.0 + 2.0;
/// The inventory table's: the reservation's transaction ×2 of the
/// reservation, which keeps the processed mark of `order.placed` and
/// carries `inventory.reserved` (under 1 KB), and one stock item. (With
/// outbox items: 3 ×2 + 1 removal = 7.)
const INVENTORY_WRU: f64 = 2.0 * TX;

/// DynamoDB write units per order, per table, with `batch` analytics events
/// per delivery batch.
pub fn wru_per_order(batch: f64, workload: Workload) -> [(&'static str, f64); 4] {
    [
        ("orders", ORDERS_WRU),
        ("inventory", INVENTORY_WRU),
        ("analytics", analytics_wru(batch, workload)),
        ("notifications", 1.0),
    ]
}
/// Read units per order, with one stock item per SKU.
pub const RRU_PER_ORDER: f64 = 9.5;
/// Outbox items per order in the orders table (placed, confirmed) when the
/// queues are down and the relay keeps every event there: each a
/// transactional put, then the sweep's delete. (None while they are up.)
const OUTBOX_ITEMS_PER_ORDER: f64 = 2.0;
/// The analytics counter every write moves (orders by status): one
/// transactional `ADD` per transaction of a batch of [`ANALYTICS_BATCH`].
fn hottest_counter_writes_per_order(workload: Workload) -> f64 {
    ANALYTICS_EVENTS_PER_ORDER / ANALYTICS_BATCH * analytics_writes_per_batch(ANALYTICS_BATCH, workload)
}

/// docs/aws.md's price sheet (us-east-1, on demand), in dollars.
pub mod price {
    pub const WRU: f64 = 0.625e-6;
    pub const RRU: f64 = 0.125e-6;
    /// SQS FIFO, and standard (analytics' queue).
    pub const SQS_REQUEST: f64 = 0.50e-6;
    pub const SQS_STANDARD_REQUEST: f64 = 0.40e-6;
    pub const LAMBDA_REQUEST: f64 = 0.20e-6;
    pub const LAMBDA_GB_S: f64 = 0.000_013_333_4;
    pub const HTTP_REQUEST: f64 = 1.00e-6;
    pub const LOG_GB: f64 = 0.50;
}
/// SQS requests per order when the mappings and relays batch 10 (a send, a
/// receive and a delete per message, ten a request): FIFO, and standard
/// (analytics' 3 messages).
const SQS_REQUESTS_PER_ORDER: f64 = 1.8;
const SQS_STANDARD_REQUESTS_PER_ORDER: f64 = 0.9;
const LAMBDA_MEMORY_GB: f64 = 0.25;
/// Log bytes per order: ~10 JSON lines of ~300 bytes, six of them the
/// consumers' "event handled" lines (one per event and consumer), of which
/// a deployed stack keeps [`HANDLED_LOG_SHARE`].
const LOG_LINE_BYTES: f64 = 300.0;
const HANDLED_LINES_PER_ORDER: f64 = 6.0;
const OTHER_LOG_LINES_PER_ORDER: f64 = 4.0;
/// template.yaml's `HandledLogShare` default (setting `handled_log_share`).
pub const HANDLED_LOG_SHARE: f64 = 0.1;
const LOG_BYTES_PER_ORDER: f64 =
    LOG_LINE_BYTES * (OTHER_LOG_LINES_PER_ORDER + HANDLED_LINES_PER_ORDER * HANDLED_LOG_SHARE);

/// Where the orders go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Every order for one SKU (a flash sale that lasts).
    HotSku,
    /// Orders spread over a large catalog: no SKU is hot.
    Spread,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Self::HotSku => "one hot SKU",
            Self::Spread => "spread",
        }
    }
}

/// The model's answer for one rate and workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub orders_per_second: f64,
    pub workload: Workload,
    /// Stock items the SKU needs for its writes (`stock_shards`).
    pub stock_shards: u32,
    /// Counter partitions the hottest analytics counter needs.
    pub counter_shards: u32,
    /// Outbox partitions the orders table needs.
    pub outbox_shards: u32,
    /// Lambda concurrency, per function and in all.
    pub concurrency: Vec<(&'static str, f64)>,
    pub total_concurrency: f64,
    /// Messages a second into the busiest queue, and its requests a second
    /// when sends are batched by 10.
    pub busiest_queue: (&'static str, f64, f64),
    pub http_rps: f64,
    /// The busiest table's write units a second.
    pub busiest_table: (&'static str, f64),
    /// What breaks first with today's defaults (4 counter and outbox
    /// partitions, 1 stock item, the default quotas), and every quota to
    /// raise.
    pub walls: Vec<String>,
    pub cost_per_million: f64,
}

fn shards(units_per_second: f64, limit: f64) -> u32 {
    (units_per_second / limit).ceil().max(1.0) as u32
}

/// The model at `rate` orders a second.
pub fn capacity(rate: f64, workload: Workload) -> Capacity {
    let hot = workload == Workload::HotSku;
    // Each take writes one stock item in the reservation's transaction.
    let stock_shards = if hot { shards(rate * TX, PARTITION_WCU) } else { 1 };
    let hottest_counter = hottest_counter_writes_per_order(workload);
    let counter_shards = shards(rate * hottest_counter * TX, PARTITION_WCU);
    // Sized for a queue outage: a transactional put (2) and the sweep's
    // delete (1) per kept event.
    let outbox_shards = shards(rate * OUTBOX_ITEMS_PER_ORDER * (TX + 1.0), PARTITION_WCU);
    let concurrency: Vec<_> = WORK_PER_ORDER.iter().map(|(f, n, s)| (*f, rate * n * s)).collect();
    let total_concurrency = concurrency.iter().map(|(_, c)| c).sum();
    // A standard queue has no throughput quota: the busiest FIFO queue is the wall.
    let fifo =
        MESSAGES_PER_ORDER.iter().copied().filter(|(q, _)| Consumer::from_queue(q).is_none_or(|c| c.needs_order()));
    let (queue, per_order) = fifo.fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let busiest_queue = (queue, rate * per_order, rate * per_order / 10.0);
    let (table, wru) =
        wru_per_order(ANALYTICS_BATCH, workload).iter().copied().fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let busiest_table = (table, rate * wru);
    // Availability reads every stock item of the SKU once per order.
    let stock_reads_per_item = if hot { rate } else { 0.0 };

    // Each wall with the rate at which it is hit, so they list first first.
    let mut walls: Vec<(f64, String)> = Vec::new();
    if hot && stock_shards > 1 {
        let text = format!(
            "stock writes: one item takes {:.0} reservations/s → stock_shards ≥ {stock_shards}",
            PARTITION_WCU / TX
        );
        walls.push((PARTITION_WCU / TX, text));
    }
    if hot && stock_shards > MAX_STOCK_SHARDS {
        let text = format!(
            "more stock items than the {MAX_STOCK_SHARDS} one product may have (a create writes them in one transaction)"
        );
        walls.push((f64::from(MAX_STOCK_SHARDS) * PARTITION_WCU / TX, text));
    }
    if stock_reads_per_item > PARTITION_RCU {
        let text = format!(
            "stock reads: every order reads every stock item ({stock_reads_per_item:.0} RCU/s each > {PARTITION_RCU:.0}), which more items cannot relieve: read a subset, or eventually consistent first"
        );
        walls.push((PARTITION_RCU, text));
    }
    let outbox_wall = 4.0 * PARTITION_WCU / (OUTBOX_ITEMS_PER_ORDER * (TX + 1.0));
    if rate > outbox_wall {
        walls.push((
            outbox_wall,
            format!("orders outbox, while the queues are down (every event kept there): {outbox_shards} partitions needed (4 today)"),
        ));
    }
    let counter_wall = 4.0 * PARTITION_WCU / (hottest_counter * TX);
    if rate > counter_wall {
        walls.push((counter_wall, format!("analytics counters: {counter_shards} partitions needed (4 today)")));
    }
    if busiest_table.1 > TABLE_WRU {
        let text = format!("{table} table: {:.0} WRU/s > {TABLE_WRU:.0} (raise the table quota)", busiest_table.1);
        walls.push((TABLE_WRU / wru, text));
    }
    if total_concurrency > LAMBDA_CONCURRENCY {
        let text =
            format!("Lambda: {total_concurrency:.0} concurrent > {LAMBDA_CONCURRENCY:.0} (raise the account quota)");
        walls.push((rate * LAMBDA_CONCURRENCY / total_concurrency, text));
    }
    if rate > HTTP_API_RPS {
        walls.push((HTTP_API_RPS, format!("HTTP API: {rate:.0} req/s > {HTTP_API_RPS:.0} (raise the account quota)")));
    }
    if busiest_queue.1 > FIFO_TPS {
        let text =
            format!("SQS {queue}: {:.0} msgs/s > {FIFO_TPS:.0} TPS unbatched (batch sends by 10)", busiest_queue.1);
        walls.push((FIFO_TPS / per_order, text));
    }
    walls.sort_by(|a, b| a.0.total_cmp(&b.0));
    let walls = walls.into_iter().map(|(at, text)| format!("{text} [from {at:.0}/s]")).collect();

    Capacity {
        orders_per_second: rate,
        workload,
        stock_shards,
        counter_shards,
        outbox_shards,
        concurrency,
        total_concurrency,
        busiest_queue,
        http_rps: rate,
        busiest_table,
        walls,
        cost_per_million: cost_per_order(if hot { stock_shards } else { 1 }, ANALYTICS_BATCH, workload) * 1e6,
    }
}

/// Dollars per order on the price sheet, with `stock_items` read per
/// reservation and `analytics_batch` events per analytics delivery batch.
pub fn cost_per_order(stock_items: u32, analytics_batch: f64, workload: Workload) -> f64 {
    let wru: f64 = wru_per_order(analytics_batch, workload).iter().map(|(_, w)| w).sum();
    let rru = RRU_PER_ORDER + f64::from(stock_items.max(1) - 1);
    let seconds: f64 = WORK_PER_ORDER.iter().map(|(_, n, s)| n * s).sum();
    wru * price::WRU
        + rru * price::RRU
        + (SQS_REQUESTS_PER_ORDER - SQS_STANDARD_REQUESTS_PER_ORDER) * price::SQS_REQUEST
        + SQS_STANDARD_REQUESTS_PER_ORDER * price::SQS_STANDARD_REQUEST
        + invocations_per_order() * price::LAMBDA_REQUEST
        + seconds * LAMBDA_MEMORY_GB * price::LAMBDA_GB_S
        + price::HTTP_REQUEST
        + LOG_BYTES_PER_ORDER / 1e9 * price::LOG_GB
}

/// The rates the document covers.
pub const RATES: [f64; 3] = [1_000.0, 10_000.0, 100_000.0];

/// The table of docs/capacity.md.
pub fn markdown() -> String {
    let mut out = String::from(
        "| workload | orders/s | stock shards | counter shards | outbox shards | Lambda concurrency (intake / inventory / notification / analytics = total) | busiest FIFO queue: msgs/s (requests/s batched) | HTTP API req/s | busiest table WRU/s | $ per million orders | walls, first first |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for workload in [Workload::HotSku, Workload::Spread] {
        for rate in RATES {
            let c = capacity(rate, workload);
            let each: Vec<String> = c.concurrency.iter().map(|(_, n)| format!("{n:.0}")).collect();
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} = {:.0} | {}: {:.0} ({:.0}) | {:.0} | {}: {:.0} | {:.2} | {} |",
                workload.label(),
                rate,
                c.stock_shards,
                c.counter_shards,
                c.outbox_shards,
                each.join(" / "),
                c.total_concurrency,
                c.busiest_queue.0,
                c.busiest_queue.1,
                c.busiest_queue.2,
                c.http_rps,
                c.busiest_table.0,
                c.busiest_table.1,
                c.cost_per_million,
                if c.walls.is_empty() { "none".to_owned() } else { c.walls.join("; ") },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_holds_the_models_table() {
        let doc = include_str!("../docs/capacity.md");
        let (_, rest) = doc.split_once("<!-- capacity:begin").expect("the document's table markers");
        let (_, rest) = rest.split_once('\n').expect("a line after the marker");
        let (table, _) = rest.split_once("<!-- capacity:end -->").expect("the end marker");
        assert_eq!(table, markdown(), "docs/capacity.md is stale: regenerate its table with `orderly capacity`");
    }

    #[test]
    fn a_stock_item_takes_five_hundred_reservations_a_second() {
        assert_eq!(capacity(500.0, Workload::HotSku).stock_shards, 1);
        assert_eq!(capacity(501.0, Workload::HotSku).stock_shards, 2);
        assert_eq!(capacity(10_000.0, Workload::HotSku).stock_shards, 20);
        assert_eq!(capacity(10_000.0, Workload::Spread).stock_shards, 1);
    }

    #[test]
    fn the_cost_matches_the_price_sheet_of_docs_aws() {
        // 9.5 RRU; 0.9 FIFO and 0.9 standard SQS requests; the measured
        // invocations; 10 events of 20 ms at 0.25 GB; one HTTP request; 1.38
        // KB of logs (4 lines + a tenth of 6 "event handled" lines, 300 bytes
        // each). And the writes: 40 WRU with every analytics event alone,
        // 25.4 in FIFO batches of 10 on a hot SKU, 21.08 in standard batches
        // of 100 (22.96 spread over a catalog).
        let rest =
            9.5 * 0.125 + 0.9 * 0.5 + 0.9 * 0.4 + invocations_per_order() * 0.2 + 0.2 * 0.25 * 13.3334 + 1.0 + 0.69;
        for (batch, workload, wru) in [
            (1.0, Workload::Spread, 40.0),
            (FIFO_BATCH, Workload::HotSku, 25.4),
            (ANALYTICS_BATCH, Workload::HotSku, 21.08),
            (ANALYTICS_BATCH, Workload::Spread, 22.96),
        ] {
            let cost = cost_per_order(1, batch, workload) * 1e6;
            assert!((cost - (wru * 0.625 + rest)).abs() < 1e-6, "batch {batch}, {workload:?}: {cost}");
        }
    }

    #[test]
    fn the_models_log_share_is_the_templates_default() {
        let template = include_str!("../template.yaml");
        let (_, parameter) = template.split_once("\n  HandledLogShare:\n").expect("the HandledLogShare parameter");
        let default = parameter.lines().find_map(|l| l.trim().strip_prefix("Default:")).expect("its default");
        assert_eq!(default.trim().trim_matches('"').parse::<f64>(), Ok(HANDLED_LOG_SHARE));
    }

    #[test]
    fn the_sagas_marks_and_events_cost_no_item_of_their_own() {
        let wru: std::collections::HashMap<_, _> =
            wru_per_order(ANALYTICS_BATCH, Workload::Spread).into_iter().collect();
        assert_eq!(wru["orders"], 9.0, "intake (order 2 units + claim 1) ×2 + bucket 1, confirmation 2 units alone");
        assert_eq!(wru["inventory"], 4.0, "reservation 2 items ×2");
    }

    #[test]
    fn batches_count_as_one_invocation_each() {
        // 1 HTTP request + 2/4.31 + 1/3.91 + 1/3.13 + 1/2.48 + 1/3.64 + 3/3.70.
        assert!((invocations_per_order() - 3.528).abs() < 1e-3, "{}", invocations_per_order());
        let events: f64 = INVOCATIONS.iter().map(|(_, _, records, _)| records).sum();
        assert_eq!(events, WORK_PER_ORDER.iter().map(|(_, n, _)| n).sum::<f64>(), "the same work, counted by event");
    }

    #[test]
    fn batching_analytics_writes_each_counter_once_per_transaction() {
        for workload in [Workload::HotSku, Workload::Spread] {
            assert_eq!(analytics_wru(1.0, workload), 26.0, "placed 4 items, reserved 2, confirmed 7, ×2");
        }
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // 1 mark + 2 views, and 8 counters + the SKU's units per transaction.
        assert!(close(analytics_wru(FIFO_BATCH, Workload::HotSku), 2.0 * (3.0 + 3.0 / 10.0 * 9.0)));
        assert!(close(analytics_wru(ANALYTICS_BATCH, Workload::HotSku), 2.0 * (3.0 + 3.0 / 100.0 * 18.0)));
        // Spread: a units counter per confirmation (a third of the events).
        let spread = 2.0 * (3.0 + 3.0 / 100.0 * (16.0 + 100.0 / 3.0));
        assert!(close(analytics_wru(ANALYTICS_BATCH, Workload::Spread), spread));
    }

    #[test]
    fn a_batch_of_a_hundred_takes_two_transactions_of_at_most_a_hundred_items() {
        // Hot: 91 events + 9 counters fit; spread: 69 events + 8 + 23 units.
        assert_eq!(analytics_writes_per_batch(91.0, Workload::HotSku), 1.0);
        assert_eq!(analytics_writes_per_batch(69.0, Workload::Spread), 1.0);
        for workload in [Workload::HotSku, Workload::Spread] {
            assert_eq!(analytics_writes_per_batch(ANALYTICS_BATCH, workload), 2.0, "{workload:?}");
        }
    }

    #[test]
    fn the_busiest_fifo_queue_leaves_out_the_standard_analytics_queue() {
        assert_eq!(capacity(1_000.0, Workload::Spread).busiest_queue.0, "order-intake");
    }
}
