//! The resource representations of the HTTP API, v1 and v2.
//!
//! Domain types never go on the wire directly: these structs *are* the
//! public contract, so a refactor of `Order` cannot silently change what
//! clients receive. v2 differs from v1 only in money
//! (`{"amount_minor":1250,"currency":"EUR"}` instead of `"12.50"` + `currency`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::domain::{Money, Order, OrderStatus, PaymentMethod, PaymentStatus, Product};
use crate::http::Problem;

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// v2 money: integer minor units and the currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MoneyV2 {
    #[schema(example = 1250)]
    pub amount_minor: i64,
    #[schema(example = "EUR")]
    pub currency: String,
}

impl From<&Money> for MoneyV2 {
    fn from(money: &Money) -> Self {
        Self { amount_minor: money.amount_minor(), currency: money.currency().to_string() }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderLineV1 {
    pub sku: String,
    pub quantity: u32,
    /// Decimal string with 2 places.
    #[schema(example = "12.50")]
    pub unit_price: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderV1 {
    pub id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    pub items: Vec<OrderLineV1>,
    #[schema(example = "25.00")]
    pub total: String,
    #[schema(example = "EUR")]
    pub currency: String,
    pub created_at: String,
    pub updated_at: String,
    pub payment: PaymentView,
}

/// An order's payment as the API shows it (the same in v1 and v2): never
/// the gateway's ids.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentView {
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    /// How to pay, naming the order (offline); otherwise null.
    pub instructions: Option<String>,
}

impl From<&Order> for PaymentView {
    fn from(order: &Order) -> Self {
        let payment = order.payment();
        Self { method: payment.method, status: payment.status, instructions: payment.instructions.clone() }
    }
}

impl From<&Order> for OrderV1 {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id().to_string(),
            customer_id: order.customer_id().to_string(),
            status: order.status(),
            items: order
                .items()
                .iter()
                .map(|l| OrderLineV1 {
                    sku: l.sku.to_string(),
                    quantity: l.quantity.get(),
                    unit_price: l.unit_price.to_decimal_string(),
                })
                .collect(),
            total: order.total().to_decimal_string(),
            currency: order.currency().to_string(),
            created_at: timestamp(order.created_at()),
            updated_at: timestamp(order.updated_at()),
            payment: order.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderLineV2 {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: MoneyV2,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderV2 {
    pub id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    pub items: Vec<OrderLineV2>,
    pub total: MoneyV2,
    pub created_at: String,
    pub updated_at: String,
    pub payment: PaymentView,
}

impl From<&Order> for OrderV2 {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id().to_string(),
            customer_id: order.customer_id().to_string(),
            status: order.status(),
            items: order
                .items()
                .iter()
                .map(|l| OrderLineV2 {
                    sku: l.sku.to_string(),
                    quantity: l.quantity.get(),
                    unit_price: (&l.unit_price).into(),
                })
                .collect(),
            total: (&order.total()).into(),
            created_at: timestamp(order.created_at()),
            updated_at: timestamp(order.updated_at()),
            payment: order.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductV1 {
    #[schema(example = "TEA-GREEN")]
    pub sku: String,
    pub name: String,
    #[schema(example = "12.50")]
    pub price: String,
    #[schema(example = "EUR")]
    pub currency: String,
    /// Units in stock and not reserved.
    pub available: i64,
    pub updated_at: String,
}

impl From<&Product> for ProductV1 {
    fn from(p: &Product) -> Self {
        Self {
            sku: p.sku.to_string(),
            name: p.name.as_str().to_owned(),
            price: p.price.to_decimal_string(),
            currency: p.price.currency().to_string(),
            available: p.available,
            updated_at: timestamp(p.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductV2 {
    pub sku: String,
    pub name: String,
    pub price: MoneyV2,
    pub available: i64,
    pub updated_at: String,
}

impl From<&Product> for ProductV2 {
    fn from(p: &Product) -> Self {
        Self {
            sku: p.sku.to_string(),
            name: p.name.as_str().to_owned(),
            price: (&p.price).into(),
            available: p.available,
            updated_at: timestamp(p.updated_at),
        }
    }
}

/// A page of a collection; pass `next_cursor` back as `cursor` for the next.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The shared parts of the OpenAPI document: info, the bearer scheme, the
/// problem schema. Each function adds its own paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orderly API",
        version = "1.0.0",
        description = "Event-driven order backend. Errors are application/problem+json (RFC 9457). \
                       Send `Accept: application/vnd.orderly.v2+json` for v2 representations (money as minor units)."
    ),
    components(schemas(Problem, MoneyV2, OrderV2, ProductV2, Page<OrderV2>, Page<ProductV2>)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The media type of v2 representations (`http::versioning`).
const V2_MEDIA_TYPE: &str = "application/vnd.orderly.v2+json";

/// Completes a rendered document with what the per-route annotations leave
/// out because it is the same everywhere: each v1 representation's v2 twin
/// under its own media type (a route annotates one body, but answers the
/// version `Accept` asks for), and the 406 every `/api/` route answers to a
/// version it does not serve.
pub fn add_versions(document: &mut serde_json::Value) {
    let Some(paths) = document.get_mut("paths").and_then(serde_json::Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(operations) = item.as_object_mut() else { continue };
        for operation in operations.values_mut() {
            let Some(responses) = operation.get_mut("responses").and_then(serde_json::Value::as_object_mut) else {
                continue;
            };
            for response in responses.values_mut() {
                let Some(content) = response.get_mut("content").and_then(serde_json::Value::as_object_mut) else {
                    continue;
                };
                let v1 = content.get("application/json").and_then(|c| c["schema"]["$ref"].as_str());
                let v2 = v1.and_then(|reference| {
                    ["OrderV1", "ProductV1", "Page_OrderV1", "Page_ProductV1"]
                        .into_iter()
                        .find(|name| reference == format!("#/components/schemas/{name}"))
                        .map(|name| format!("#/components/schemas/{}", name.replace("V1", "V2")))
                });
                if let Some(v2) = v2 {
                    content.insert(V2_MEDIA_TYPE.into(), serde_json::json!({"schema": {"$ref": v2}}));
                }
            }
            if path.starts_with("/api/") {
                responses.entry("406").or_insert_with(|| {
                    serde_json::json!({
                        "description": "An Orderly version this server does not serve (Accept)",
                        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                    })
                });
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}
