//! The catalog API (public reads, admin writes).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use orderly_core::api::{Page, ProductV1, ProductV2};
use orderly_core::domain::{
    Currency, Money, Product, ProductDraft, ProductName, RestockQuantity, Sku, StockLevel, ValidationErrors,
};
use orderly_core::http::{
    AdminPrincipal, ApiError, ApiVersion, CachePolicy, Conditions, Cursor, EntityTag, JsonBody, PageParams, PathText,
    QueryParams, Representation, RequestContext, Validators, tag_function,
};
use orderly_core::{api_routes, http::ApiRoutes};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{Catalog, CatalogError, FUNCTION, PutOutcome};

/// The catalog's routes. Its reads are public and cacheable for `policy`'s
/// `max-age` (see `orderly_core::http` caching).
pub fn router(catalog: Arc<Catalog>, policy: CachePolicy) -> ApiRoutes {
    api_routes!(Arc<CatalogApi> => [list_products], [get_product, put_product], [restock_product])
        .layer(from_fn_with_state(FUNCTION, tag_function))
        .with_state(Arc::new(CatalogApi { catalog, policy }))
}

struct CatalogApi {
    catalog: Arc<Catalog>,
    policy: CachePolicy,
}

fn representation_tag(version: ApiVersion) -> &'static str {
    match version {
        ApiVersion::V1 => "v1",
        ApiVersion::V2 => "v2",
    }
}

/// One product's validator: its version and `updated_at` (bumped by every
/// catalog write; `updated_at` also tells apart a product re-created in an
/// emptied store), its `available` (stock moves leave the version alone: on
/// a sharded store they never touch the product's item) and the
/// representation. Derived from the product already read, cached or not:
/// no extra store read.
pub fn product_etag(product: &Product, version: ApiVersion) -> EntityTag {
    EntityTag::strong(&format!(
        "{}.{}.{}.{}",
        product.version,
        product.updated_at.timestamp_micros(),
        product.available,
        representation_tag(version)
    ))
}

/// Both representations' tags: an `If-Match` may name either.
fn current_tags(product: &Product) -> [EntityTag; 2] {
    [product_etag(product, ApiVersion::V1), product_etag(product, ApiVersion::V2)]
}

/// A page's validator: a digest of its products' tags and where it
/// continues (no body is rendered to compute it).
fn page_etag(products: &[Product], next_cursor: Option<&str>, version: ApiVersion) -> EntityTag {
    let mut digest = Sha256::new();
    for product in products {
        digest.update(product.sku.as_str().as_bytes());
        digest.update([0]);
        digest.update(product.version.to_be_bytes());
        digest.update(product.updated_at.timestamp_micros().to_be_bytes());
        digest.update(product.available.to_be_bytes());
    }
    digest.update(next_cursor.unwrap_or("").as_bytes());
    let hash = hex::encode(&digest.finalize()[..12]);
    EntityTag::strong(&format!("page-{hash}.{}", representation_tag(version)))
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
            CatalogError::Stale => ApiError::PreconditionFailed(
                "the product is not in the state If-Match names; GET it again and retry with its ETag".into(),
            ),
            CatalogError::Overflow(e) => ApiError::Validation(ValidationErrors::single("quantity", e.to_string())),
            CatalogError::Store(e) => e.into(),
        }
    }
}

fn parse_sku(raw: &str) -> Result<Sku, ApiError> {
    // A SKU that cannot exist is simply not there.
    Sku::parse(raw).map_err(|_| ApiError::NotFound("product not found".into()))
}

/// A write's answer: the product, with the tag to send in the next `If-Match`.
fn represent(status: StatusCode, version: ApiVersion, product: &Product) -> Representation {
    Representation::new(
        status,
        version,
        format!("/api/v1/products/{}", product.sku),
        || ProductV1::from(product),
        || ProductV2::from(product),
    )
    .with_etag(&product_etag(product, version))
}

/// The catalog, by SKU, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "catalog",
    params(
        PageParams,
        ("If-None-Match" = Option<String>, Header, description = "ETags of copies the client holds: 304 when one is current"),
    ),
    responses(
        (status = 200, description = "A page of products", body = Page<ProductV1>, headers(
            ("ETag" = String, description = "Validator of this page in this representation (v1 and v2 differ)"),
            ("Cache-Control" = String, description = "`public, max-age=N` (ORDERLY_CATALOG_MAX_AGE)"),
            ("Vary" = String, description = "`Accept` (and `Accept-Encoding` when compressed)"),
        )),
        (status = 304, description = "Not modified: the If-None-Match copy is current (same ETag, no body)"),
        (status = 400, description = "Bad limit or cursor", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_products(
    State(api): State<Arc<CatalogApi>>,
    version: ApiVersion,
    conditions: Conditions,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Representation, ApiError> {
    let limit = page.limit()?;
    let after = page.cursor.as_deref().map(|c| Cursor::decode(c, |p| Sku::parse(p).ok())).transpose()?;
    let (products, next) = api.catalog.list(after.as_ref(), limit).await?;
    let next_cursor = next.map(|sku| Cursor::encode(sku.as_str()));
    let validators = Validators { etag: page_etag(&products, next_cursor.as_deref(), version), policy: api.policy };
    Ok(Representation::cacheable(
        version,
        "/api/v1/products",
        validators,
        &conditions,
        || Page { items: products.iter().map(ProductV1::from).collect(), next_cursor: next_cursor.clone() },
        || Page { items: products.iter().map(ProductV2::from).collect(), next_cursor: next_cursor.clone() },
    ))
}

/// One product.
#[utoipa::path(
    get,
    path = "/api/v1/products/{sku}",
    tag = "catalog",
    params(
        ("sku" = String, Path, description = "^[A-Z0-9][A-Z0-9-]{0,39}$"),
        ("If-None-Match" = Option<String>, Header, description = "ETags of copies the client holds: 304 when one is current"),
    ),
    responses(
        (status = 200, description = "The product", body = ProductV1, headers(
            ("ETag" = String, description = "Validator: changes with every change to the product; v1 and v2 differ"),
            ("Cache-Control" = String, description = "`public, max-age=N` (ORDERLY_CATALOG_MAX_AGE)"),
            ("Vary" = String, description = "`Accept` (and `Accept-Encoding` when compressed)"),
        )),
        (status = 304, description = "Not modified: the If-None-Match copy is current (same ETag, no body)"),
        (status = 404, description = "No such product", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_product(
    State(api): State<Arc<CatalogApi>>,
    version: ApiVersion,
    conditions: Conditions,
    PathText(sku): PathText,
) -> Result<Representation, ApiError> {
    let product = api.catalog.get(&parse_sku(&sku)?).await?;
    let validators = Validators { etag: product_etag(&product, version), policy: api.policy };
    Ok(Representation::cacheable(
        version,
        format!("/api/v1/products/{}", product.sku),
        validators,
        &conditions,
        || ProductV1::from(&product),
        || ProductV2::from(&product),
    ))
}

/// Create (201) or update (200) a product. Admin only.
#[utoipa::path(
    put,
    path = "/api/v1/products/{sku}",
    tag = "catalog",
    params(
        ("sku" = String, Path, description = "^[A-Z0-9][A-Z0-9-]{0,39}$"),
        ("If-Match" = Option<String>, Header, description = "Update only if the product is still in this state (an ETag of a GET; `*`: it exists)"),
    ),
    request_body = PutProductRequest,
    responses(
        (status = 200, description = "Updated", body = ProductV1, headers(("ETag" = String, description = "The new state's validator, for the next If-Match"))),
        (status = 201, description = "Created", body = ProductV1, headers(("ETag" = String, description = "The new state's validator"))),
        (status = 412, description = "If-Match names a state the product is no longer in (or it does not exist): nothing changed", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = orderly_core::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid SKU, name, price or currency", body = orderly_core::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn put_product(
    State(api): State<Arc<CatalogApi>>,
    context: RequestContext,
    _admin: AdminPrincipal,
    version: ApiVersion,
    conditions: Conditions,
    PathText(sku): PathText,
    JsonBody(body): JsonBody<PutProductRequest>,
) -> Result<Representation, ApiError> {
    let sku = Sku::parse(&sku).map_err(|e| ValidationErrors::single("sku", e.to_string()))?;
    let price = Money::parse_decimal(&body.price, body.currency)
        .map_err(|e| ValidationErrors::single("price", e.to_string()))?;
    let draft = ProductDraft { name: body.name, price, initial_stock: body.stock };
    let if_match = |current: &Product| conditions.if_match(&current_tags(current)).unwrap_or(true);
    let precondition: Option<&(dyn Fn(&Product) -> bool + Sync)> = conditions.has_if_match().then_some(&if_match as _);
    let (status, product) = match api.catalog.put(sku, draft, precondition, Some(context.event_traceparent())).await? {
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
    State(api): State<Arc<CatalogApi>>,
    context: RequestContext,
    _admin: AdminPrincipal,
    version: ApiVersion,
    PathText(sku): PathText,
    JsonBody(body): JsonBody<RestockRequest>,
) -> Result<Representation, ApiError> {
    let product = api.catalog.restock(&parse_sku(&sku)?, body.quantity, Some(context.event_traceparent())).await?;
    Ok(represent(StatusCode::OK, version, &product))
}
