//! The notification log API (admin).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::middleware::from_fn_with_state;
use orderly_core::api::timestamp;
use orderly_core::domain::OrderId;
use orderly_core::http::{AdminPrincipal, ApiError, QueryParams, tag_function};
use orderly_core::ports::{NotificationLog, NotificationRecord, NotificationState};
use orderly_core::{api_routes, http::ApiRoutes};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::FUNCTION;

pub fn router(log: Arc<dyn NotificationLog>) -> ApiRoutes {
    api_routes!(Arc<dyn NotificationLog> => [list_notifications])
        .layer(from_fn_with_state(FUNCTION, tag_function))
        .with_state(log)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// Only this order's notifications.
    #[param(format = Uuid)]
    pub order_id: Option<String>,
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationEntry {
    pub id: String,
    pub order_id: String,
    pub customer_id: String,
    /// The event that caused it, e.g. `order.confirmed.v1`.
    pub kind: String,
    pub state: NotificationState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub provider: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&NotificationRecord> for NotificationEntry {
    fn from(r: &NotificationRecord) -> Self {
        Self {
            id: r.id.to_string(),
            order_id: r.order_id.to_string(),
            customer_id: r.customer_id.to_string(),
            kind: r.kind.clone(),
            state: r.state,
            attempts: r.attempts,
            last_error: r.last_error.clone(),
            provider: r.provider.clone(),
            created_at: timestamp(r.created_at),
            updated_at: timestamp(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub items: Vec<NotificationEntry>,
}

/// The notification log, oldest first. Admin only.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    params(NotificationsQuery),
    responses(
        (status = 200, description = "Notifications", body = NotificationList),
        (status = 400, description = "Bad query", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_notifications(
    State(log): State<Arc<dyn NotificationLog>>,
    _admin: AdminPrincipal,
    QueryParams(query): QueryParams<NotificationsQuery>,
) -> Result<Json<NotificationList>, ApiError> {
    let order_id = query
        .order_id
        .as_deref()
        .map(|raw| {
            OrderId::parse(raw).ok_or_else(|| ApiError::BadRequest("order_id must be an order id (UUID)".into()))
        })
        .transpose()?;
    let limit = match query.limit.unwrap_or(100) {
        n @ 1..=1000 => n as usize,
        _ => return Err(ApiError::BadRequest("limit must be from 1 to 1000".into())),
    };
    let records = log.list(order_id, limit).await?;
    Ok(Json(NotificationList { items: records.iter().map(NotificationEntry::from).collect() }))
}
