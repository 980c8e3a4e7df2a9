//! `orderly gateway`: a small card payment gateway that speaks the protocol
//! of `docs/contract.md` §6, for local runs and for the test suites on every
//! host. It is the other side of a real protocol, not a mock of our code:
//! Orderly's HTTP adapter talks to it exactly as to a real gateway.
//!
//! Its behaviour is switched at run time (`PUT /_gateway/mode`):
//!
//! | mode | authorizations |
//! |---|---|
//! | `approve` (default) | 201 authorized |
//! | `decline` | 201 declined, with a reason |
//! | `fail` | 500, nothing recorded |
//! | `hang` | never answers, nothing recorded |
//! | `commit-then-hang` | records the authorization, then never answers |
//! | `slow` | records the authorization, answers it a second later |
//! | `hold-captures` | (authorizes as `approve`) records each capture, and answers it only once the mode changes |
//!
//! Voids always answer (a hung authorization must be voidable "once the
//! gateway answers again"); captures do, except while held. Every call is idempotent by
//! reference, as a real gateway's is by `Idempotency-Key`: a second
//! authorization of one order returns the first. `GET /_gateway/authorizations`
//! shows every authorization with the calls and keys it saw, which is how
//! the tests check "authorized exactly once, voided once".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Approve,
    Decline,
    Fail,
    Hang,
    CommitThenHang,
    Slow,
    HoldCaptures,
}

/// One authorization, as the gateway keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Held {
    pub id: String,
    pub reference: String,
    pub amount_minor: i64,
    pub currency: String,
    /// `authorized`, `declined`, `captured` or `voided`.
    pub status: String,
    /// Authorization requests seen for this reference (repeats included).
    pub authorize_calls: u32,
    pub captures: u32,
    pub voids: u32,
    /// Every `Idempotency-Key` the authorization requests carried.
    pub idempotency_keys: Vec<String>,
}

#[derive(Default)]
struct Book {
    mode: Mode,
    /// By reference (the order id).
    held: BTreeMap<String, Held>,
    /// Void-by-reference requests for references never authorized.
    voids_without_hold: u32,
    /// Authorization requests answered 500 (`fail` mode).
    failed_authorizations: u32,
    next: u64,
}

#[derive(Clone, Default)]
struct Gateway {
    book: Arc<Mutex<Book>>,
    /// Wakes the captures held by `hold-captures` when the mode changes.
    mode_changed: Arc<tokio::sync::Notify>,
}

impl Gateway {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns once the mode is no longer `hold-captures` (or after [`HANG`]).
    async fn captures_released(&self) {
        let _ = tokio::time::timeout(HANG, async {
            loop {
                let changed = self.mode_changed.notified();
                if self.book().mode != Mode::HoldCaptures {
                    return;
                }
                changed.await;
            }
        })
        .await;
    }
}

/// The gateway's routes: the protocol under `/`, its switches under `/_gateway`.
pub fn router() -> Router {
    Router::new()
        .route("/authorizations", post(authorize))
        .route("/authorizations/void-by-reference", post(void_by_reference))
        .route("/authorizations/{id}/capture", post(capture))
        .route("/authorizations/{id}/void", post(void))
        .route("/_gateway/mode", put(set_mode))
        .route("/_gateway/authorizations", get(list))
        .route("/_gateway/reset", post(reset))
        .with_state(Gateway::default())
}

/// Serves the gateway on `addr` until the process ends.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("payment gateway listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router()).await?;
    Ok(())
}

/// A gateway on a free port of 127.0.0.1, for tests; stops when dropped.
pub struct TestGateway {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl TestGateway {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router()).await;
        });
        Ok(Self { url, task })
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Long enough for any client's timeout.
const HANG: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
struct AuthorizeRequest {
    reference: String,
    amount_minor: i64,
    currency: String,
}

async fn authorize(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    Json(request): Json<AuthorizeRequest>,
) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (answer, then) = {
        let mut book = gateway.book();
        let mode = book.mode;
        if let Some(held) = book.held.get_mut(&request.reference) {
            // Idempotent: the first answer again.
            held.authorize_calls += 1;
            held.idempotency_keys.push(key);
            (Some(authorization_answer(held)), Mode::Approve)
        } else {
            match mode {
                Mode::Fail => {
                    book.failed_authorizations += 1;
                    return (StatusCode::INTERNAL_SERVER_ERROR, "gateway failure").into_response();
                }
                Mode::Hang => (None, Mode::Hang),
                Mode::Approve | Mode::Decline | Mode::CommitThenHang | Mode::Slow | Mode::HoldCaptures => {
                    book.next += 1;
                    let held = Held {
                        id: format!("auth_{}", book.next),
                        reference: request.reference.clone(),
                        amount_minor: request.amount_minor,
                        currency: request.currency,
                        status: if mode == Mode::Decline { "declined" } else { "authorized" }.into(),
                        authorize_calls: 1,
                        captures: 0,
                        voids: 0,
                        idempotency_keys: vec![key],
                    };
                    let answer = authorization_answer(&held);
                    book.held.insert(request.reference, held);
                    (Some(answer), mode)
                }
            }
        }
    };
    match then {
        Mode::Hang | Mode::CommitThenHang => tokio::time::sleep(HANG).await,
        Mode::Slow => tokio::time::sleep(Duration::from_secs(1)).await,
        _ => {}
    }
    (StatusCode::CREATED, Json(answer.unwrap_or_default())).into_response()
}

fn authorization_answer(held: &Held) -> serde_json::Value {
    match held.status.as_str() {
        "declined" => json!({"id": held.id, "status": "declined", "reason": "insufficient funds"}),
        _ => json!({"id": held.id, "status": "authorized"}),
    }
}

async fn capture(State(gateway): State<Gateway>, Path(id): Path<String>) -> Response {
    let answer = step(&gateway, &id, "captured");
    gateway.captures_released().await;
    answer
}

async fn void(State(gateway): State<Gateway>, Path(id): Path<String>) -> Response {
    step(&gateway, &id, "voided")
}

/// Moves an authorization to `to` (`captured` or `voided`), idempotently.
fn step(gateway: &Gateway, id: &str, to: &str) -> Response {
    let mut book = gateway.book();
    let Some(held) = book.held.values_mut().find(|h| h.id == id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such authorization"}))).into_response();
    };
    if to == "captured" {
        held.captures += 1;
    } else {
        held.voids += 1;
    }
    if held.status == to || held.status == "authorized" {
        held.status = to.to_owned();
        (StatusCode::OK, Json(json!({"status": to}))).into_response()
    } else {
        (StatusCode::CONFLICT, Json(json!({"error": format!("the authorization is {}", held.status)}))).into_response()
    }
}

#[derive(Deserialize)]
struct ByReference {
    reference: String,
}

async fn void_by_reference(State(gateway): State<Gateway>, Json(request): Json<ByReference>) -> Response {
    let mut book = gateway.book();
    match book.held.get_mut(&request.reference) {
        Some(held) => {
            held.voids += 1;
            if held.status == "authorized" {
                held.status = "voided".into();
            }
        }
        None => book.voids_without_hold += 1,
    }
    (StatusCode::OK, Json(json!({"status": "voided"}))).into_response()
}

#[derive(Deserialize)]
struct SetMode {
    mode: Mode,
}

async fn set_mode(State(gateway): State<Gateway>, Json(request): Json<SetMode>) -> StatusCode {
    gateway.book().mode = request.mode;
    gateway.mode_changed.notify_waiters();
    StatusCode::NO_CONTENT
}

async fn list(State(gateway): State<Gateway>) -> Json<serde_json::Value> {
    let book = gateway.book();
    let held: Vec<&Held> = book.held.values().collect();
    Json(json!({
        "mode": book.mode,
        "authorizations": held,
        "voids_without_hold": book.voids_without_hold,
        "failed_authorizations": book.failed_authorizations,
    }))
}

async fn reset(State(gateway): State<Gateway>) -> StatusCode {
    *gateway.book() = Book::default();
    gateway.mode_changed.notify_waiters();
    StatusCode::NO_CONTENT
}
