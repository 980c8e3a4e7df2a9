//! The runner as an operator meets it: JSON logs that follow one trace
//! across every queue hop, spans exported over OTLP, a clean SIGTERM, the
//! token command, and no secret ever written to the logs.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{DEADLINE, Launch, RunnerProcess, SECRET, eventually, free_port, token};

mod support;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Creates a product, places a traced order and waits until it is notified.
async fn traced_order(runner: &RunnerProcess) -> String {
    let client = reqwest::Client::new();
    let admin = token("admin", true);
    client
        .put(format!("{}/api/v1/products/TEA", runner.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "Tea", "price": "1.00", "currency": "EUR", "stock": 5}))
        .send()
        .await
        .unwrap();
    let response = client
        .post(format!("{}/api/v1/orders", runner.base))
        .bearer_auth(token("alice", false))
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .header("x-request-id", "req-trace-test")
        .json(&json!({"items": [{"sku": "TEA", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    eventually("the notification", || async {
        let list: Value = client
            .get(format!("{}/api/v1/notifications?order_id={id}", runner.base))
            .bearer_auth(&admin)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (list["items"][0]["state"] == "sent").then_some(())
    })
    .await;
    id
}

#[tokio::test]
async fn logs_are_json_lines_and_one_trace_id_follows_an_order_across_every_queue_hop() {
    let dir = tempfile::tempdir().unwrap();
    let runner = RunnerProcess::start(Launch::new(dir.path(), free_port())).await;
    let id = traced_order(&runner).await;

    let hops = [
        ("inventory", "order.placed.v1"),
        ("order-intake", "inventory.reserved.v1"),
        ("notification", "order.confirmed.v1"),
        ("analytics", "order.placed.v1"),
        ("analytics", "inventory.reserved.v1"),
        ("analytics", "order.confirmed.v1"),
    ];
    let is_hop = |l: &Value, (function, event): (&str, &str)| {
        l["function"] == function && l["event_type"] == event && l["subject"] == id.as_str()
    };
    // Each consumer logs its hop after its commit, on its own schedule: wait
    // for every one, not for the one that usually comes last.
    let lines = eventually("every hop in the log", || async {
        let lines = runner.log_lines();
        hops.iter().all(|hop| lines.iter().any(|l| is_hop(l, *hop))).then_some(lines)
    })
    .await;
    let access =
        lines.iter().find(|l| l["request_id"] == "req-trace-test").expect("an access log line for the order request");
    assert_eq!(access["trace_id"], TRACE_ID);
    assert_eq!(access["customer_id"], "alice");
    assert_eq!(access["function"], "order-intake");
    assert_eq!(access["status"], 202);
    assert!(access["latency_ms"].is_number());

    for (function, event) in hops {
        let hop = lines.iter().find(|l| is_hop(l, (function, event))).expect("waited for above");
        assert_eq!(hop["trace_id"], TRACE_ID, "{function} handling {event} lost the trace");
        assert!(hop["latency_ms"].is_number());
    }
}

#[tokio::test]
async fn spans_are_exported_over_otlp_with_the_request_trace_id() {
    let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let sink = bodies.clone();
    let collector = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut launch = Launch::new(dir.path(), free_port());
    launch.env = vec![("ORDERLY_OTLP_ENDPOINT", endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100".into())];
    let runner = RunnerProcess::start(launch).await;
    traced_order(&runner).await;

    let trace_id: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap()).collect();
    let has = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    eventually("the request and consumer spans, in the request's trace", || async {
        let all: Vec<u8> = bodies.lock().unwrap().iter().flat_map(|b| b.to_vec()).collect();
        let spans = [&b"POST /api/v1/orders"[..], b"inventory order.placed.v1", b"order-intake inventory.reserved.v1"];
        (has(&all, &trace_id) && spans.iter().all(|s| has(&all, s))).then_some(())
    })
    .await;
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_keeps_queued_work() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut runner = RunnerProcess::start(Launch::new(dir.path(), port)).await;
    let client = reqwest::Client::new();
    let admin = token("admin", true);
    client
        .put(format!("{}/api/v1/products/TEA", runner.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "Tea", "price": "1.00", "currency": "EUR", "stock": 1000}))
        .send()
        .await
        .unwrap();
    let alice = token("alice", false);
    let first_accepted = Arc::new(tokio::sync::Notify::new());
    let orders: Vec<_> = (0..30)
        .map(|_| {
            let (client, base, alice) = (client.clone(), runner.base.clone(), alice.clone());
            let first_accepted = first_accepted.clone();
            tokio::spawn(async move {
                let response = client
                    .post(format!("{base}/api/v1/orders"))
                    .bearer_auth(&alice)
                    .json(&json!({"items": [{"sku": "TEA", "quantity": 1}]}))
                    .send()
                    .await
                    .ok()?;
                if response.status() != StatusCode::ACCEPTED {
                    return None;
                }
                first_accepted.notify_one();
                response.json::<Value>().await.ok()?["id"].as_str().map(str::to_owned)
            })
        })
        .collect();
    // SIGTERM once the first order is in, the rest still on their way: at
    // least one accepted order has to survive the stop, on any machine.
    tokio::time::timeout(DEADLINE, first_accepted.notified()).await.expect("an order accepted before the SIGTERM");
    let status = runner.terminate().await;
    assert!(status.success(), "SIGTERM must end the process cleanly, got {status}");
    assert!(runner.log_text().contains("\"stopped\""), "the runner logs its clean stop");
    let accepted: Vec<String> =
        futures::future::join_all(orders).await.into_iter().filter_map(|r| r.unwrap()).collect();
    assert!(!accepted.is_empty(), "no accepted order to follow across the restart");

    let runner = RunnerProcess::start(Launch { generation: 1, ..Launch::new(dir.path(), port) }).await;
    for id in &accepted {
        eventually("every accepted order to be confirmed after the restart", || async {
            let order: Value = client
                .get(format!("{}/api/v1/orders/{id}", runner.base))
                .bearer_auth(&alice)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (order["status"] == "confirmed").then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn the_token_command_mints_what_a_runner_with_a_generated_secret_accepts_and_logs_never_hold_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut launch = Launch::new(dir.path(), free_port());
    launch.with_secret = false;
    let runner = RunnerProcess::start(launch).await;
    let secret_file = dir.path().join("data/jwt-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the generated secret is readable by its owner only");
    }
    let minted = std::process::Command::new(env!("CARGO_BIN_EXE_orderly"))
        .args(["token", "--sub", "alice"])
        .env_remove("ORDERLY_JWT_SECRET")
        .env("ORDERLY_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(minted.status.success());
    let alice = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let response =
        reqwest::Client::new().get(format!("{}/api/v1/orders", runner.base)).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let generated = std::fs::read_to_string(&secret_file).unwrap();
    let log = runner.log_text();
    assert!(log.contains("generated a development secret"), "the runner says it generated one");
    for secret in [generated.trim(), alice.as_str(), SECRET] {
        assert!(!log.contains(secret), "a secret or token leaked into the log");
    }
}

#[tokio::test]
async fn the_health_command_passes_against_a_running_runner_and_fails_when_nothing_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let runner = RunnerProcess::start(Launch::new(dir.path(), port)).await;
    let health = |addr: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orderly"))
            .args(["health", "--timeout", "5s"])
            .env("ORDERLY_ADDR", addr)
            .env("ORDERLY_DATA_DIR", dir.path().join("data"))
            .output()
            .unwrap()
    };
    // As in the container image: the runner's setting names a wildcard address.
    let up = health(format!("0.0.0.0:{port}"));
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let report: Value = serde_json::from_slice(&up.stdout).unwrap();
    assert!(report["status"].is_string(), "{report}");
    drop(runner);
    let down = health(format!("127.0.0.1:{}", free_port()));
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("no answer"), "{}", String::from_utf8_lossy(&down.stderr));
}

/// `orderly bench`'s floor under intake: every POST the durable hello
/// answers 202 is a row committed through the runner's writer (it survives
/// a kill -9), and each request is access-logged as the runner's are.
#[tokio::test]
async fn the_durable_hello_answers_202_only_for_rows_it_has_committed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("durable-hello.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut hello = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderly"))
        .arg("bench-durable-hello")
        .env("ORDERLY_ADDR", format!("127.0.0.1:{port}"))
        .env("ORDERLY_DATA_DIR", dir.path().join("data"))
        .env("ORDERLY_JWT_SECRET", SECRET)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::new();
    eventually("the durable hello to answer", || async {
        client.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;

    let mut posts = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (client, url) = (client.clone(), url.clone());
        posts.spawn(async move { client.post(url).body(format!("{{\"n\":{i}}}")).send().await.unwrap().status() });
    }
    while let Some(status) = posts.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::ACCEPTED);
    }
    hello.start_kill().unwrap();
    hello.wait().await.unwrap();

    let path = orderly::config::database_path(&dir.path().join("data"));
    let db = orderly_adapters::sqlite::Database::open(&path, Default::default()).unwrap();
    let rows = db
        .read(|conn| {
            conn.query_row("SELECT count(*) FROM bench_hello", [], |row| row.get::<_, i64>(0))
                .map_err(|error| orderly_core::ports::StoreError::Unavailable(error.to_string()))
        })
        .await
        .unwrap();
    assert_eq!(rows, 40, "every 202 is a committed row");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.matches("\"orderly::access\"").count(), 41, "an access-log line per request:\n{logged}");
}

/// Mistakes an operator makes are said, not absorbed: a log filter that is
/// not one stops the start, and `orderly dlq` pointed at a directory with no
/// database says so instead of reporting an empty queue.
#[test]
fn a_wrong_log_filter_stops_the_start_and_dlq_needs_the_runners_database() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], log: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orderly"))
            .args(args)
            .env("ORDERLY_DATA_DIR", dir.path())
            .env("ORDERLY_LOG", log)
            .env("ORDERLY_ADDR", "127.0.0.1:0")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let serve = run(&["serve"], "info,[[not-a-filter");
    assert!(!serve.status.success());
    assert!(String::from_utf8_lossy(&serve.stderr).contains("is not a log filter"), "{serve:?}");
    let dlq = run(&["dlq", "list"], "info");
    assert!(!dlq.status.success());
    assert!(String::from_utf8_lossy(&dlq.stderr).contains("no database at"), "{dlq:?}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was created");
}
