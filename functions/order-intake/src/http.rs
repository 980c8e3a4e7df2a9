//! The orders API: thin handlers that parse, call [`OrderIntake`], and map
//! the result to a response.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::from_fn_with_state;
use orderly_core::api::{OrderV1, OrderV2};
use orderly_core::domain::{CancelError, NewOrder, NewOrderLine, Order, OrderId, Quantity, Sku};
use orderly_core::http::{
    AdminPrincipal, ApiError, ApiVersion, JsonBody, PathText, Principal, Representation, RequestContext, tag_function,
};
use orderly_core::ports::GatewayError;
use orderly_core::{api_routes, http::ApiRoutes};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{FUNCTION, Fulfilment, IdempotencyKey, IntakeError, OrderIntake, Placed};

pub fn router(intake: Arc<OrderIntake>) -> ApiRoutes {
    api_routes!(
        Arc<OrderIntake> => [place_order], [get_order], [cancel_order], [record_payment], [ship_order], [deliver_order]
    )
    .layer(from_fn_with_state(FUNCTION, tag_function))
    .with_state(intake)
}

/// `POST /api/v1/orders`. Unknown fields are refused, so a client cannot set
/// `status`, `total`, `customer_id` or prices.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    /// 1 to 50 lines.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<OrderItemRequest>,
}

/// One line: an object, never the array of its fields (see `object_only`).
#[derive(Debug, ToSchema)]
pub struct OrderItemRequest {
    #[schema(value_type = String, pattern = "^[A-Z0-9][A-Z0-9-]{0,39}$", example = "TEA-GREEN")]
    pub sku: Sku,
    #[schema(value_type = u32, minimum = 1, maximum = 1000)]
    pub quantity: Quantity,
}

impl<'de> Deserialize<'de> for OrderItemRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            sku: Sku,
            quantity: Quantity,
        }
        let Fields { sku, quantity } = orderly_core::http::object_only(deserializer)?;
        Ok(Self { sku, quantity })
    }
}

impl From<IntakeError> for ApiError {
    fn from(error: IntakeError) -> Self {
        match error {
            IntakeError::Invalid(errors) => ApiError::Validation(errors),
            IntakeError::KeyReused => ApiError::IdempotencyKeyReused,
            IntakeError::NotFound => ApiError::NotFound("order not found".into()),
            IntakeError::NotCancellable(CancelError::Status(e)) => {
                ApiError::Conflict(format!("the order is {} and can no longer be cancelled", e.from))
            }
            IntakeError::NotCancellable(e @ CancelError::Capturing) => ApiError::Conflict(e.to_string()),
            IntakeError::Step(e) => ApiError::Conflict(e.to_string()),
            IntakeError::Gateway(GatewayError::Refused(status)) => {
                ApiError::Conflict(format!("the payment gateway refused the capture ({status})"))
            }
            IntakeError::Gateway(e) => ApiError::Unavailable {
                detail: "the payment gateway is unavailable; try again later".into(),
                cause: e.to_string(),
            },
            IntakeError::Store(e) => e.into(),
        }
    }
}

fn represent(status: StatusCode, version: ApiVersion, order: &Order) -> Representation {
    Representation::new(
        status,
        version,
        format!("/api/v1/orders/{}", order.id()),
        || OrderV1::from(order),
        || OrderV2::from(order),
    )
}

fn parse_order_id(raw: &str) -> Result<OrderId, ApiError> {
    // An id that cannot exist is simply not found.
    OrderId::parse(raw).ok_or_else(|| ApiError::NotFound("order not found".into()))
}

/// Place an order. Answered at once with `pending`; the saga settles it.
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "orders",
    request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1..=255 visible ASCII; scoped to the customer, kept 24 h")),
    responses(
        (status = 202, description = "Accepted, pending", body = OrderV1, headers(("Location" = String))),
        (status = 400, description = "Malformed body or unknown field", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid order, or key reused with another body", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn place_order(
    State(intake): State<Arc<OrderIntake>>,
    context: RequestContext,
    principal: Principal,
    version: ApiVersion,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PlaceOrderRequest>,
) -> Result<Representation, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let raw =
                value.to_str().map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?;
            Some(IdempotencyKey::parse(raw).map_err(ApiError::BadRequest)?)
        }
    };
    let lines = body.items.into_iter().map(|i| NewOrderLine { sku: i.sku, quantity: i.quantity }).collect();
    let request = NewOrder::new(lines)?;
    let placed = intake.place(principal.customer_id, request, key, Some(context.event_traceparent())).await?;
    let (order, replayed) = match &placed {
        Placed::New(order) => (order, false),
        Placed::Replayed(order) => (order, true),
    };
    let location = format!("/api/v1/orders/{}", order.id());
    let mut response = represent(StatusCode::ACCEPTED, version, order).with_header(header::LOCATION, &location);
    if replayed {
        response = response.with_header(header::HeaderName::from_static("idempotent-replayed"), "true");
    }
    Ok(response)
}

/// One order: its owner or an admin; anyone else gets 404.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(("id" = String, Path, description = "Order id (UUID)")),
    responses(
        (status = 200, description = "The order", body = OrderV1),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not yours", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_order(
    State(intake): State<Arc<OrderIntake>>,
    principal: Principal,
    version: ApiVersion,
    PathText(id): PathText,
) -> Result<Representation, ApiError> {
    let order = intake.order_for(&principal, parse_order_id(&id)?).await?;
    Ok(represent(StatusCode::OK, version, &order))
}

/// Cancel a pending or confirmed order; its stock is released.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/cancel",
    tag = "orders",
    params(("id" = String, Path, description = "Order id (UUID)")),
    responses(
        (status = 202, description = "Cancelled; stock is being released", body = OrderV1),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not yours", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "No longer cancellable, or a shipment is capturing its payment", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn cancel_order(
    State(intake): State<Arc<OrderIntake>>,
    context: RequestContext,
    principal: Principal,
    version: ApiVersion,
    PathText(id): PathText,
) -> Result<Representation, ApiError> {
    let order = intake.cancel(&principal, parse_order_id(&id)?, Some(context.event_traceparent())).await?;
    Ok(represent(StatusCode::ACCEPTED, version, &order))
}

/// `POST /api/v1/orders/{id}/payment`: an offline payment arrived.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordPaymentRequest {
    /// Only `paid`.
    #[schema(example = "paid")]
    pub status: String,
}

/// Record the offline payment of a confirmed order (`awaiting_offline` →
/// `paid`). Admins only.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/payment",
    tag = "fulfilment",
    request_body = RecordPaymentRequest,
    params(("id" = String, Path, description = "Order id (UUID)")),
    responses(
        (status = 200, description = "Payment recorded", body = OrderV1),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is not awaiting an offline payment", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`status` is not `paid`", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn record_payment(
    State(intake): State<Arc<OrderIntake>>,
    context: RequestContext,
    _admin: AdminPrincipal,
    version: ApiVersion,
    PathText(id): PathText,
    JsonBody(body): JsonBody<RecordPaymentRequest>,
) -> Result<Representation, ApiError> {
    let id = parse_order_id(&id)?;
    if body.status != "paid" {
        return Err(ApiError::Validation(orderly_core::domain::ValidationErrors::single(
            "status",
            "the only payment that can be recorded is \"paid\"",
        )));
    }
    fulfil(&intake, &context, version, id, Fulfilment::RecordPayment).await
}

/// Ship a confirmed order whose payment is settled: a card hold is
/// captured first; an offline payment must have been recorded. Admins only.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/ship",
    tag = "fulfilment",
    params(("id" = String, Path, description = "Order id (UUID)")),
    responses(
        (status = 200, description = "Shipped", body = OrderV1),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not confirmed, or its payment is neither authorized nor paid", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The payment gateway did not take the capture: try again", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn ship_order(
    State(intake): State<Arc<OrderIntake>>,
    context: RequestContext,
    _admin: AdminPrincipal,
    version: ApiVersion,
    PathText(id): PathText,
) -> Result<Representation, ApiError> {
    fulfil(&intake, &context, version, parse_order_id(&id)?, Fulfilment::Ship).await
}

/// Mark a shipped order delivered. Admins only.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/deliver",
    tag = "fulfilment",
    params(("id" = String, Path, description = "Order id (UUID)")),
    responses(
        (status = 200, description = "Delivered", body = OrderV1),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not shipped", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn deliver_order(
    State(intake): State<Arc<OrderIntake>>,
    context: RequestContext,
    _admin: AdminPrincipal,
    version: ApiVersion,
    PathText(id): PathText,
) -> Result<Representation, ApiError> {
    fulfil(&intake, &context, version, parse_order_id(&id)?, Fulfilment::Deliver).await
}

async fn fulfil(
    intake: &OrderIntake,
    context: &RequestContext,
    version: ApiVersion,
    id: OrderId,
    step: Fulfilment,
) -> Result<Representation, ApiError> {
    let order = intake.fulfil(id, step, Some(context.event_traceparent())).await?;
    Ok(represent(StatusCode::OK, version, &order))
}
