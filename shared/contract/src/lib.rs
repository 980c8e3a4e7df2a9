//! The port contract suites: one per port, run unchanged against every
//! adapter of it (SQLite today; DynamoDB and SQS reuse them).
//!
//! An adapter's test file expands a suite into one `#[tokio::test]` per case:
//!
//! ```ignore
//! mod order_store {
//!     orderly_contract::order_store_contract!(crate::fresh_store().await);
//! }
//! ```
//!
//! `$make` is evaluated once per case, so every case starts from an empty
//! store; it yields a guard that derefs to the store (and cleans up on drop). Queue suites expect the store to dead-letter after
//! [`MAX_RECEIVES`] receives.

pub mod analytics;
pub mod fixtures;
pub mod inventory;
pub mod notifications;
pub mod orders;
pub mod queues;
pub mod resilience;

use std::future::Future;
use std::time::Duration;

/// Adapters under the queue contract must dead-letter after this many receives.
pub const MAX_RECEIVES: u32 = 3;

/// Polls `check` until it yields `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > until {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($suite:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make;
                $crate::$suite::$case(&*store).await;
            }
        )*
    };
}

#[macro_export]
macro_rules! order_store_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            orders,
            $make,
            [
                places_an_order_and_reads_it_back,
                an_unknown_order_is_none,
                replays_a_live_idempotency_key_for_the_same_request,
                a_live_key_is_answered_without_placing_anything,
                a_replay_answers_the_order_as_first_placed_after_it_moved_on,
                refuses_a_live_key_for_a_different_request,
                scopes_keys_to_the_customer,
                reuses_an_expired_key_for_a_new_order,
                a_transition_needs_the_version_it_was_read_at,
                a_processed_mark_makes_the_second_transition_a_no_op,
                a_late_redelivery_after_a_later_transition_changes_nothing,
                concurrent_deliveries_of_one_event_move_the_order_once,
                writes_the_events_of_a_write_to_the_outbox,
                events_published_with_a_mark_are_written_once,
                a_failed_write_leaves_no_event_behind,
                kept_events_wait_in_the_outbox,
            ]
        );
    };
}

#[macro_export]
macro_rules! inventory_store_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            inventory,
            $make,
            [
                creates_a_product_once,
                updates_only_from_the_version_read,
                a_stale_conditional_update_changes_nothing,
                pages_products_by_sku,
                reports_available_stock_and_prices,
                takes_stock_for_every_line_or_none,
                returns_stock_only_from_a_matching_state,
                a_processed_event_changes_stock_once,
                late_redeliveries_after_a_release_change_nothing,
                concurrent_deliveries_of_one_event_reserve_once,
                concurrent_takes_never_oversell,
                a_catalog_update_never_writes_back_stock_it_read,
                a_restock_adds_to_stock_taken_since_the_read,
                a_take_larger_than_any_stock_item_combines_them,
                an_order_of_fifty_lines_that_each_combine_stock_items_is_taken_whole,
                a_hot_sku_sells_exactly_its_stock_to_concurrent_buyers,
            ]
        );
    };
}

#[macro_export]
macro_rules! notification_log_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            notifications,
            $make,
            [saves_and_replaces_by_id, lists_by_order_oldest_first, a_sent_notification_stays_sent,]
        );
    };
}

#[macro_export]
macro_rules! read_model_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            analytics,
            $make,
            [
                writes_a_view_and_counters_together,
                a_stale_view_version_is_a_conflict,
                a_processed_event_applies_once,
                lists_a_customers_orders_newest_first,
                several_events_apply_in_one_write,
                a_write_of_the_most_items_goes_in_whole,
                a_duplicate_in_a_batch_writes_nothing,
                a_moved_view_in_a_batch_writes_nothing,
                concurrent_batches_of_the_same_events_count_once,
                concurrent_batches_move_shared_counters_exactly,
                the_events_that_write_a_view_are_kept_on_it,
            ]
        );
    };
}

#[macro_export]
macro_rules! queue_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            queues,
            $make,
            [
                fans_out_to_every_subscriber,
                an_unacknowledged_message_comes_back_after_the_visibility_timeout,
                an_acknowledged_message_is_gone,
                a_stale_receipt_acknowledges_nothing,
                retry_later_hides_the_message_for_the_delay,
                a_deferred_delivery_comes_back_after_the_delay,
                dead_letters_after_max_receives_and_redrives,
                one_message_per_subject_is_in_flight_at_a_time,
                a_poisoned_subject_does_not_block_others,
                reports_depth_and_age,
            ]
        );
    };
}

#[macro_export]
macro_rules! breaker_store_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            resilience,
            $make,
            [an_unknown_breaker_is_closed, breaker_writes_are_compare_and_set]
        );
    };
}

#[macro_export]
macro_rules! rate_limiter_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            resilience,
            $make,
            [a_bucket_allows_its_burst_then_refuses, concurrent_takes_never_exceed_the_burst,]
        );
    };
}

/// For caches built with a short TTL (a second or two).
#[macro_export]
macro_rules! cache_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            resilience,
            $make,
            [
                caches_and_invalidates,
                a_fill_read_before_an_invalidation_of_its_key_is_dropped,
                entries_expire_after_the_ttl
            ]
        );
    };
}
