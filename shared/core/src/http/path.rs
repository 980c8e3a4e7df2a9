//! Path segments as text, refused as a problem when they are not.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::ApiError;

/// One path parameter as text, for the handler's own parser (a SKU, an
/// order id) to judge. axum's `Path<String>` answers a segment that does
/// not decode to UTF-8 (`/products/%FF`) itself, in plain text; this
/// answers it as a 400 problem like every other malformed request.
#[derive(Debug, Clone)]
pub struct PathText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(text)| Self(text))
            .map_err(|_| ApiError::BadRequest("the path is not valid percent-encoded UTF-8".into()))
    }
}
