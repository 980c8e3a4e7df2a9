use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, problem, spawn_local_app, spawn_local_app_with, token};
use crate::support::{Mode, Webhook};

async fn breaker_state(app: &TestApp) -> String {
    app.health().await["notification_provider"]["breaker"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_breaker_opens_on_a_failing_or_hanging_provider_defers_notifications_and_closes_when_it_recovers() {
    let provider = Webhook::start(Mode::Failing).await;
    let Some(app) = spawn_local_app_with("it points the runner at a provider it breaks and mends", |config| {
        config.notify_url = Some(provider.url.clone());
        config.notify_allow_private = true;
        config.notify_timeout = Duration::from_millis(300);
        config.resilience.breaker_threshold = 3;
        config.resilience.breaker_cool_down = Duration::from_millis(700);
        config.queues.max_receives = 50;
    })
    .await
    else {
        return;
    };
    app.put_product("TEA", "1.00", 100).await;
    let alice = token("alice", false);

    // Failing provider: orders are confirmed all the same (confirmation never
    // waits for a notification, which could not be sent anyway).
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(app.accepted_order(&alice, &[("TEA", 1)]).await);
    }
    for id in &ids {
        app.settled(&alice, id, "confirmed").await;
    }

    eventually("the breaker to open", || async { (breaker_state(&app).await == "open").then_some(()) }).await;
    let health = app.health().await;
    assert_eq!(health["status"], "degraded");
    assert!(health["reasons"].to_string().contains("circuit breaker"));
    // The gauge is process-wide, and the other runners of this test process
    // sample their own (closed) breakers into it too: poll until ours shows.
    eventually("the breaker state metric to read open (2)", || async {
        let metrics = app.get("/metrics", None).await.text().await.ok()?;
        metrics.contains("orderly_breaker_state{breaker=\"notification-provider\"} 2").then_some(())
    })
    .await;
    let deferred = eventually("a deferred notification", || async {
        let list: Value = app.get("/api/v1/notifications", Some(&app.admin)).await.json().await.unwrap();
        list["items"].as_array()?.iter().find(|n| n["state"] == "deferred").cloned()
    })
    .await;
    assert!(deferred["last_error"].is_string());

    // Hanging provider: probes time out, the breaker stays open, calls stay few.
    provider.set(Mode::Hanging);
    let calls_before = provider.calls();
    tokio::time::sleep(Duration::from_millis(2500)).await; // a window to count calls in, not a wait for a result
    let calls_while_hanging = provider.calls() - calls_before;
    assert!(calls_while_hanging <= 4, "{calls_while_hanging} calls while open: probes only");
    assert_ne!(breaker_state(&app).await, "closed");

    // Recovered: a probe closes it and every notification ends sent.
    provider.set(Mode::Up);
    eventually("the breaker to close", || async { (breaker_state(&app).await == "closed").then_some(()) }).await;
    let sent = eventually("every notification sent", || async {
        let list: Value = app.get("/api/v1/notifications", Some(&app.admin)).await.json().await.unwrap();
        let items = list["items"].as_array()?.clone();
        (items.len() == ids.len() && items.iter().all(|n| n["state"] == "sent")).then_some(items)
    })
    .await;
    assert_eq!(sent.len(), 6, "none lost, none twice");
    assert_eq!(app.health().await["status"], "ok");
}

/// A delivery the open breaker refused was not attempted: it neither counts
/// towards the dead-letter queue nor marks its notification failed, so an
/// outage longer than the receives allowed defers notifications instead of
/// dead-lettering them unsent. Only those the provider itself failed as
/// often as allowed (the probes) end failed.
#[tokio::test]
async fn notifications_refused_by_the_open_breaker_are_deferred_not_dead_lettered() {
    const ORDERS: usize = 5;
    let provider = Webhook::start(Mode::Failing).await;
    let Some(app) = spawn_local_app_with("it points the runner at a provider it breaks and mends", |config| {
        config.notify_url = Some(provider.url.clone());
        config.notify_allow_private = true;
        config.resilience.breaker_threshold = 1;
        config.resilience.breaker_cool_down = Duration::from_millis(300);
        config.queues.max_receives = 2;
    })
    .await
    else {
        return;
    };
    app.put_product("TEA", "1.00", 100).await;
    let alice = token("alice", false);
    for _ in 0..ORDERS {
        let id = app.accepted_order(&alice, &[("TEA", 1)]).await;
        app.settled(&alice, &id, "confirmed").await;
    }
    let notifications = || async {
        let list: Value = app.get("/api/v1/notifications", Some(&app.admin)).await.json().await.unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    };
    // Two probes failed as often as allowed: every other notification has
    // been refused in several cool-downs by then, more than twice.
    let failed = eventually("two notifications to fail at the provider", || async {
        let failed: Vec<Value> = notifications().await.into_iter().filter(|n| n["state"] == "failed").collect();
        (failed.len() >= 2).then_some(failed)
    })
    .await;
    for notification in &failed {
        assert_eq!(notification["attempts"], 2, "failed only after two calls: {notification}");
    }

    provider.set(Mode::Up);
    let settled = eventually("the rest to be sent", || async {
        let all = notifications().await;
        (all.len() == ORDERS && all.iter().all(|n| n["state"] == "sent" || n["state"] == "failed")).then_some(all)
    })
    .await;
    let failed: Vec<_> = settled.iter().filter(|n| n["state"] == "failed").collect();
    assert!(failed.len() < ORDERS, "refusals dead-lettered nothing: {settled:?}");
    assert!(failed.iter().all(|n| n["attempts"] == 2), "{failed:?}");
    // A failed message moves to the dead letters at its next receive.
    eventually("each failed notification's message to be dead-lettered", || async {
        (app.health().await["queues"]["notification"]["dead_letters"] == failed.len()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_burst_over_the_limit_gets_429_with_retry_after_then_refills() {
    // One token per 5 s: the burst below refills nothing unless the machine
    // stalls for seconds, and the refill still comes within the deadline.
    let Some(app) = spawn_local_app_with("it sets the runner's rate limits", |config| {
        config.resilience.rate_limit_anon_read =
            orderly_core::resilience::rate_limit::Bucket { per_second: 0.2, burst: 3 }
    })
    .await
    else {
        return;
    };
    for expected in ["2", "1", "0"] {
        let response = app.get("/api/v1/products", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["ratelimit-limit"], "3");
        assert_eq!(response.headers()["ratelimit-remaining"], expected);
        assert!(response.headers().get("ratelimit-reset").is_some());
    }
    let refused = app.get("/api/v1/products", None).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Whole seconds until the next token: at most one token's interval.
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    eventually("a token to come back", || async {
        (app.get("/api/v1/products", None).await.status() == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn anonymous_callers_are_limited_sooner_than_customers_and_each_customer_has_a_bucket() {
    use orderly_core::resilience::rate_limit::Bucket;
    // One token per 100 s: none comes back during the test, however slow it runs.
    let Some(app) = spawn_local_app_with("it sets the runner's rate limits", |config| {
        config.resilience.rate_limit_anon_read = Bucket { per_second: 0.01, burst: 2 };
        config.resilience.rate_limit_auth_read = Bucket { per_second: 0.01, burst: 5 };
    })
    .await
    else {
        return;
    };
    let count_ok = |token: Option<String>| {
        let app = &app;
        async move {
            let mut ok = 0;
            for _ in 0..8 {
                if app.get("/api/v1/products", token.as_deref()).await.status() == StatusCode::OK {
                    ok += 1;
                }
            }
            ok
        }
    };
    assert_eq!(count_ok(None).await, 2);
    assert_eq!(count_ok(Some(token("alice", false))).await, 5);
    assert_eq!(count_ok(Some(token("bob", false))).await, 5, "bob does not share alice's bucket");
}

#[tokio::test]
async fn writes_and_single_routes_have_their_own_limits() {
    use orderly_core::resilience::rate_limit::Bucket;
    // One token per 100 s: none comes back during the test, however slow it runs.
    let Some(app) = spawn_local_app_with("it sets the runner's rate limits", |config| {
        config.resilience.rate_limit_auth_write = Bucket { per_second: 0.01, burst: 2 };
        config.resilience.rate_limit_routes = "GET /api/v1/products/{sku}=0.01/s:1".into();
    })
    .await
    else {
        return;
    };
    let alice = token("alice", false);
    let body = json!({"items": [{"sku": "NONE", "quantity": 1}]});
    let statuses: Vec<StatusCode> = {
        let mut s = Vec::new();
        for _ in 0..3 {
            s.push(app.post_json("/api/v1/orders", Some(&alice), &body).await.status());
        }
        s
    };
    assert_eq!(
        statuses,
        [StatusCode::UNPROCESSABLE_ENTITY, StatusCode::UNPROCESSABLE_ENTITY, StatusCode::TOO_MANY_REQUESTS]
    );
    // Reads are another bucket, and one route is tighter than the rest.
    assert_eq!(app.get("/api/v1/orders", Some(&alice)).await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/v1/products/ANY", Some(&alice)).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/v1/products/ANY", Some(&alice)).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.get("/api/v1/products", Some(&alice)).await.status(), StatusCode::OK);
    // Health checks are never limited.
    for _ in 0..10 {
        assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn two_runners_on_one_store_share_one_limit() {
    use orderly_core::resilience::rate_limit::Bucket;
    // One token per 100 s: none comes back during the test, however slow it runs.
    let Some(first) = spawn_local_app_with("it starts two runners on one store", |config| {
        config.resilience.rate_limit_anon_read = Bucket { per_second: 0.01, burst: 6 }
    })
    .await
    else {
        return;
    };
    let mut config = crate::helpers::fast_config(first.runner().store().database().path().parent().unwrap());
    config.resilience.rate_limit_anon_read = Bucket { per_second: 0.01, burst: 6 };
    let second = orderly::Runner::start(config).await.unwrap();
    let second_url = format!("http://{}", second.addr());
    let mut allowed = 0;
    for i in 0..12 {
        let url = if i % 2 == 0 { first.url("/api/v1/products") } else { format!("{second_url}/api/v1/products") };
        if first.client.get(url).send().await.unwrap().status() == StatusCode::OK {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 6, "one bucket across both instances");
    second.stop().await;
}

#[tokio::test]
async fn a_cached_product_is_fresh_after_an_update_and_after_stock_moves() {
    let Some(app) =
        spawn_local_app_with("it sets the runner's cache TTL (the Spin components keep no cache)", |config| {
            // Far past the test's deadline: only invalidation can refresh an entry.
            config.resilience.cache_ttl = Duration::from_secs(3600)
        })
        .await
    else {
        return;
    };
    app.put_product("TEA", "1.00", 10).await;
    // The PUT's own product.changed.v1 invalidates the entry once more when
    // inventory consumes it, so the first fill may be dropped: read until a
    // read is served from the cache.
    eventually("a read served from the cache", || async {
        assert_eq!(app.product("TEA").await["price"], "1.00");
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        metrics.contains("orderly_cache_hits_total").then_some(())
    })
    .await;

    app.put_product("TEA", "2.00", 10).await;
    assert_eq!(app.product("TEA").await["price"], "2.00", "the writer's own update is visible at once");

    // Stock moves through the saga; the event invalidates the entry long
    // before the hour-long TTL would.
    let alice = token("alice", false);
    let id = app.accepted_order(&alice, &[("TEA", 3)]).await;
    app.settled(&alice, &id, "confirmed").await;
    eventually("the cached stock to move", || async { (app.product("TEA").await["available"] == 7).then_some(()) })
        .await;
}

#[tokio::test]
async fn metrics_cover_requests_queues_breaker_cache_and_limits() {
    let reason = "GET /metrics is the runner's Prometheus endpoint; Spin and Lambda report through their platform";
    let Some(app) = spawn_local_app(reason).await else { return };
    app.put_product("TEA", "1.00", 5).await;
    app.product("TEA").await;
    let alice = token("alice", false);
    let id = app.accepted_order(&alice, &[("TEA", 1)]).await;
    app.settled(&alice, &id, "confirmed").await;
    let text = eventually("queue gauges", || async {
        let text = app.get("/metrics", None).await.text().await.unwrap();
        text.contains("orderly_queue_depth").then_some(text)
    })
    .await;
    for metric in [
        "orderly_http_requests_total",
        "orderly_http_request_duration_seconds{",
        "quantile=\"0.99\"",
        "orderly_queue_depth{queue=\"inventory\"}",
        "orderly_queue_oldest_age_seconds",
        "orderly_dlq_depth{queue=\"notification\"}",
        "orderly_breaker_state",
        "orderly_cache_misses_total",
        "orderly_messages_total",
    ] {
        assert!(text.contains(metric), "missing {metric}");
    }
}
