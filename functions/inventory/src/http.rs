//! The catalog API (public reads, admin writes).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use orderly_core::api::{Page, ProductV1, ProductV2};
use orderly_core::domain::{
    Currency, Money, Product, ProductDraft, ProductName, RestockQuantity, Sku, StockLevel, ValidationErrors,
};
use orderly_core::http::{
    AdminPrincipal, ApiError, ApiVersion, Cursor, JsonBody, PageParams, QueryParams, Representation, RequestContext,
    tag_function,
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{Catalog, CatalogError, FUNCTION, PutOutcome};

pub fn router(catalog: Arc<Catalog>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_products))
        .routes(routes!(get_product, put_product))
        .routes(routes!(restock_product))
        .layer(from_fn_with_state(FUNCTION, tag_function))
        .with_state(catalog)
}

/// `PUT /api/v1/products/{sku}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutProductRequest {
    #[schema(value_type = String, example = "Green tea")]
    pub name: ProductName,
    /// Decimal string, at most 2 places.
    #[schema(example = "12.50")]
    pub price: String,
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
    /// Units on hand; only applied when the product is created (then use restock).
    #[schema(value_type = Option<u32>, maximum = 1000000000)]
    pub stock: Option<StockLevel>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockRequest {
    #[schema(value_type = u32, minimum = 1, maximum = 1000000)]
    pub quantity: RestockQuantity,
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NotFound => ApiError::NotFound("product not found".into()),
            CatalogError::Overflow(e) => ApiError::Validation(ValidationErrors::single("quantity", e.to_string())),
            CatalogError::Store(e) => e.into(),
        }
    }
}

fn parse_sku(raw: &str) -> Result<Sku, ApiError> {
    // A SKU that cannot exist is simply not there.
    Sku::parse(raw).map_err(|_| ApiError::NotFound("product not found".into()))
}

fn represent(status: StatusCode, version: ApiVersion, product: &Product) -> Representation {
    Representation::new(
        status,
        version,
        format!("/api/v1/products/{}", product.sku),
        || ProductV1::from(product),
        || ProductV2::from(product),
    )
}

/// The catalog, by SKU, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "catalog",
    params(PageParams),
    responses(
        (status = 200, description = "A page of products", body = Page<ProductV1>),
        (status = 400, description = "Bad limit or cursor", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_products(
    State(catalog): State<Arc<Catalog>>,
    version: ApiVersion,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Representation, ApiError> {
    let limit = page.limit()?;
    let after = page.cursor.as_deref().map(|c| Cursor::decode(c, |p| Sku::parse(p).ok())).transpose()?;
    let (products, next) = catalog.list(after.as_ref(), limit).await?;
    let next_cursor = next.map(|sku| Cursor::encode(sku.as_str()));
    Ok(Representation::new(
        StatusCode::OK,
        version,
        "/api/v1/products",
        || Page { items: products.iter().map(ProductV1::from).collect(), next_cursor: next_cursor.clone() },
        || Page { items: products.iter().map(ProductV2::from).collect(), next_cursor: next_cursor.clone() },
    ))
}

/// One product.
#[utoipa::path(
    get,
    path = "/api/v1/products/{sku}",
    tag = "catalog",
    params(("sku" = String, Path, description = "^[A-Z0-9][A-Z0-9-]{0,39}$")),
    responses(
        (status = 200, description = "The product", body = ProductV1),
        (status = 404, description = "No such product", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_product(
    State(catalog): State<Arc<Catalog>>,
    version: ApiVersion,
    Path(sku): Path<String>,
) -> Result<Representation, ApiError> {
    let product = catalog.get(&parse_sku(&sku)?).await?;
    Ok(represent(StatusCode::OK, version, &product))
}

/// Create (201) or update (200) a product. Admin only.
#[utoipa::path(
    put,
    path = "/api/v1/products/{sku}",
    tag = "catalog",
    params(("sku" = String, Path, description = "^[A-Z0-9][A-Z0-9-]{0,39}$")),
    request_body = PutProductRequest,
    responses(
        (status = 200, description = "Updated", body = ProductV1),
        (status = 201, description = "Created", body = ProductV1),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid SKU, name, price or currency", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn put_product(
    State(catalog): State<Arc<Catalog>>,
    context: RequestContext,
    _admin: AdminPrincipal,
    version: ApiVersion,
    Path(sku): Path<String>,
    JsonBody(body): JsonBody<PutProductRequest>,
) -> Result<Representation, ApiError> {
    let sku = Sku::parse(&sku).map_err(|e| ValidationErrors::single("sku", e.to_string()))?;
    let price = Money::parse_decimal(&body.price, body.currency)
        .map_err(|e| ValidationErrors::single("price", e.to_string()))?;
    let draft = ProductDraft { name: body.name, price, initial_stock: body.stock };
    let (status, product) = match catalog.put(sku, draft, Some(context.event_traceparent())).await? {
        PutOutcome::Created(p) => (StatusCode::CREATED, p),
        PutOutcome::Updated(p) => (StatusCode::OK, p),
    };
    let location = format!("/api/v1/products/{}", product.sku);
    Ok(represent(status, version, &product).with_header(axum::http::header::LOCATION, &location))
}

/// Add stock. Admin only.
#[utoipa::path(
    post,
    path = "/api/v1/products/{sku}/restock",
    tag = "catalog",
    params(("sku" = String, Path, description = "^[A-Z0-9][A-Z0-9-]{0,39}$")),
    request_body = RestockRequest,
    responses(
        (status = 200, description = "Restocked", body = ProductV1),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Quantity out of 1..=1000000", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn restock_product(
    State(catalog): State<Arc<Catalog>>,
    context: RequestContext,
    _admin: AdminPrincipal,
    version: ApiVersion,
    Path(sku): Path<String>,
    JsonBody(body): JsonBody<RestockRequest>,
) -> Result<Representation, ApiError> {
    let product = catalog.restock(&parse_sku(&sku)?, body.quantity, Some(context.event_traceparent())).await?;
    Ok(represent(StatusCode::OK, version, &product))
}
