//! Read APIs: a customer's orders, and the analytics summary.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use orderly_core::api::{OrderV1, OrderV2, Page};
use orderly_core::domain::OrderId;
use orderly_core::http::{
    AdminPrincipal, ApiError, ApiVersion, Cursor, PageParams, Principal, QueryParams, Representation, tag_function,
};
use orderly_core::ports::ReadModelStore;
use orderly_core::{api_routes, http::ApiRoutes};

use crate::FUNCTION;
use crate::popular::{MAX_POPULAR, Popular, PopularList};
use crate::projection::Summary;

pub fn router(store: Arc<dyn ReadModelStore>, popular: Arc<Popular>) -> ApiRoutes {
    let popular = api_routes!(Arc<Popular> => [popular_products]).with_state(popular);
    api_routes!(Arc<dyn ReadModelStore> => [list_my_orders], [summary])
        .with_state(store)
        .merge(popular)
        .layer(from_fn_with_state(FUNCTION, tag_function))
}

/// `?limit=` of the popular ranking.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PopularParams {
    /// 1 to 50; default 10.
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

/// The most ordered products (confirmed, shipped or delivered), most first.
/// Never 5xx: when the read model fails or is slow, the last good list (or a
/// configured one) with `"source":"fallback"`.
#[utoipa::path(
    get,
    path = "/api/v1/recommendations/popular",
    tag = "recommendations",
    params(PopularParams),
    responses(
        (status = 200, description = "The ranking, live or fallback", body = PopularList),
        (status = 400, description = "Bad limit", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
)]
async fn popular_products(
    State(popular): State<Arc<Popular>>,
    QueryParams(params): QueryParams<PopularParams>,
) -> Result<Json<PopularList>, ApiError> {
    let limit = match params.limit.map(|n| n as usize) {
        None => 10,
        Some(n @ 1..=MAX_POPULAR) => n,
        Some(_) => return Err(ApiError::BadRequest(format!("limit must be from 1 to {MAX_POPULAR}"))),
    };
    Ok(Json(popular.top(limit).await))
}

/// The caller's own orders, newest first (read model: a just-placed order
/// shows up within milliseconds, not necessarily at once).
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    params(PageParams),
    responses(
        (status = 200, description = "A page of the caller's orders", body = Page<OrderV1>),
        (status = 400, description = "Bad limit or cursor", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_my_orders(
    State(store): State<Arc<dyn ReadModelStore>>,
    principal: Principal,
    version: ApiVersion,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Representation, ApiError> {
    let limit = page.limit()?;
    let before = page.cursor.as_deref().map(|c| Cursor::decode(c, OrderId::parse)).transpose()?;
    let mut orders = store.customer_orders(&principal.customer_id, before, limit + 1).await?;
    let next_cursor = if orders.len() > limit {
        orders.truncate(limit);
        orders.last().map(|o| Cursor::encode(&o.id().to_string()))
    } else {
        None
    };
    Ok(Representation::new(
        StatusCode::OK,
        version,
        "/api/v1/orders",
        || Page { items: orders.iter().map(OrderV1::from).collect(), next_cursor: next_cursor.clone() },
        || Page { items: orders.iter().map(OrderV2::from).collect(), next_cursor: next_cursor.clone() },
    ))
}

/// Totals: orders by status, revenue, units by SKU, a per-day series. Admin only.
#[utoipa::path(
    get,
    path = "/api/v1/analytics/summary",
    tag = "analytics",
    responses(
        (status = 200, description = "The summary", body = Summary),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn summary(
    State(store): State<Arc<dyn ReadModelStore>>,
    _admin: AdminPrincipal,
) -> Result<Json<Summary>, ApiError> {
    Ok(Json(Summary::from_counters(&store.counters().await?)))
}
