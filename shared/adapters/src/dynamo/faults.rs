//! Faults on the wire, for tests: an [`HttpClient`] for the DynamoDB SDK that
//! makes a share of calls fail the way DynamoDB fails under load.
//!
//! | fault | what the SDK sees | what must hold |
//! |---|---|---|
//! | [`Fault::Conflict`] | `TransactionCanceledException` with a `TransactionConflict` reason (transactions only; nothing was applied) | the adapter retries within its budget; past it the delivery fails and its message comes back |
//! | [`Fault::Throttle`] | `ProvisionedThroughputExceededException` or `ThrottlingException` (nothing applied) | the SDK's retry backs off and tries again |
//! | [`Fault::TimeoutAfterCommit`] | a timeout, *after* the real write went through (writes only) | the retry finds the write already made (its processed mark, its claim) and nothing happens twice |
//!
//! Neither emulator produces any of these, so without this layer the retry
//! paths would never run. It wraps the real HTTP client rather than sitting in
//! an interceptor: the faults are genuine HTTP responses and connector errors,
//! so the SDK's own deserializers and retry classifiers meet them exactly as
//! they would meet DynamoDB's (an interceptor could only swap typed errors in
//! after the fact, per operation).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// One kind of injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Conflict,
    Throttle,
    TimeoutAfterCommit,
}

/// What share of eligible calls gets each fault (0.0..=1.0 each; their sum
/// at most 1).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultShares {
    pub conflict: f64,
    pub throttle: f64,
    pub timeout_after_commit: f64,
}

impl FaultShares {
    /// The same share of each fault.
    pub fn each(share: f64) -> Self {
        Self { conflict: share, throttle: share, timeout_after_commit: share }
    }
}

/// How many faults were injected, and how many calls went through.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub calls: AtomicU64,
    pub conflicts: AtomicU64,
    pub throttles: AtomicU64,
    pub timeouts_after_commit: AtomicU64,
}

impl FaultCounts {
    pub fn get(&self, fault: Fault) -> u64 {
        match fault {
            Fault::Conflict => self.conflicts.load(Ordering::Relaxed),
            Fault::Throttle => self.throttles.load(Ordering::Relaxed),
            Fault::TimeoutAfterCommit => self.timeouts_after_commit.load(Ordering::Relaxed),
        }
    }

    /// Faults of every kind injected so far.
    pub fn injected(&self) -> u64 {
        [Fault::Conflict, Fault::Throttle, Fault::TimeoutAfterCommit].map(|f| self.get(f)).iter().sum()
    }
}

/// The real client, with faults.
#[derive(Debug, Clone)]
pub struct FaultyHttpClient {
    inner: SharedHttpClient,
    shares: FaultShares,
    limit: Option<u64>,
    counts: Arc<FaultCounts>,
}

impl FaultyHttpClient {
    pub fn new(inner: SharedHttpClient, shares: FaultShares) -> Self {
        Self { inner, shares, limit: None, counts: Arc::default() }
    }

    /// Injects no more than `faults` faults in all; the calls after them
    /// go through untouched (say, one lost answer and then the SDK's retry
    /// meeting the real one).
    pub fn at_most(self, faults: u64) -> Self {
        Self { limit: Some(faults), ..self }
    }

    pub fn counts(&self) -> Arc<FaultCounts> {
        self.counts.clone()
    }
}

impl HttpClient for FaultyHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            shares: self.shares,
            limit: self.limit,
            counts: self.counts.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    shares: FaultShares,
    limit: Option<u64>,
    counts: Arc<FaultCounts>,
}

/// The DynamoDB operation a request calls (`X-Amz-Target: DynamoDB_20120810.PutItem`).
fn operation(request: &HttpRequest) -> &str {
    request.headers().get("x-amz-target").and_then(|t| t.rsplit('.').next()).unwrap_or("")
}

fn is_write(operation: &str) -> bool {
    matches!(operation, "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem")
}

impl FaultyConnector {
    /// Which fault (if any) this call gets.
    fn draw(&self, operation: &str) -> Option<Fault> {
        if self.limit.is_some_and(|limit| self.counts.injected() >= limit) {
            return None;
        }
        let roll: f64 = rand::random();
        let FaultShares { conflict, throttle, timeout_after_commit } = self.shares;
        let candidates = [
            (Fault::Conflict, if operation == "TransactWriteItems" { conflict } else { 0.0 }),
            (Fault::Throttle, throttle),
            (Fault::TimeoutAfterCommit, if is_write(operation) { timeout_after_commit } else { 0.0 }),
        ];
        let mut floor = 0.0;
        for (fault, share) in candidates {
            if roll < floor + share {
                return Some(fault);
            }
            floor += share;
        }
        None
    }
}

/// A DynamoDB error response, as the service sends it (JSON 1.0 protocol).
fn error_response(kind: &str, extra: serde_json::Value) -> HttpResponse {
    let mut body = serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"),
        "message": format!("{kind} (injected by the test's fault layer)"),
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut response =
        HttpResponse::new(StatusCode::try_from(400).expect("400 is a status"), SdkBody::from(body.to_string()));
    response.headers_mut().insert("content-type", "application/x-amz-json-1.0");
    response.headers_mut().insert("x-amzn-requestid", "injected-fault");
    response
}

/// A cancelled transaction whose items each lost a race (none failed a
/// condition): DynamoDB's answer to concurrent transactions on one item.
fn transaction_conflict(request: &HttpRequest) -> HttpResponse {
    let items = request
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
        .unwrap_or(1);
    let reasons: Vec<_> = (0..items)
        .map(|i| {
            if i == 0 {
                serde_json::json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"})
            } else {
                serde_json::json!({"Code": "None"})
            }
        })
        .collect();
    error_response("TransactionCanceledException", serde_json::json!({ "CancellationReasons": reasons }))
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = operation(&request).to_owned();
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        match self.draw(&operation) {
            None => self.inner.call(request),
            Some(Fault::Conflict) => {
                self.counts.conflicts.fetch_add(1, Ordering::Relaxed);
                HttpConnectorFuture::ready(Ok(transaction_conflict(&request)))
            }
            Some(Fault::Throttle) => {
                self.counts.throttles.fetch_add(1, Ordering::Relaxed);
                let kind = if rand::random::<bool>() {
                    "ProvisionedThroughputExceededException"
                } else {
                    "ThrottlingException"
                };
                HttpConnectorFuture::ready(Ok(error_response(kind, serde_json::Value::Null)))
            }
            Some(Fault::TimeoutAfterCommit) => {
                self.counts.timeouts_after_commit.fetch_add(1, Ordering::Relaxed);
                let sent = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    // The write happens; only its answer is lost.
                    let _answer = sent.await;
                    Err(ConnectorError::timeout("injected: timed out after the write was sent".into()))
                })
            }
        }
    }
}
