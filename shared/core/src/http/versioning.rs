//! API versioning: the path carries the major version (`/api/v1`); the
//! `Accept` media type selects a newer *representation* of the same resource.
//!
//! `application/vnd.orderly.v2+json` gets v2 (money as
//! `{"amount_minor","currency"}`); anything else that accepts JSON gets v1,
//! which for resources that have a v2 carries `Deprecation` (RFC 9745),
//! `Sunset` (RFC 8594) and a `Link` to its successor. An Orderly version we do
//! not have is a 406, not a silent downgrade.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiError;
use super::caching::{Conditions, Validators};

pub const MEDIA_TYPE_V2: &str = "application/vnd.orderly.v2+json";
const VENDOR_PREFIX: &str = "application/vnd.orderly.";

/// v1 representations were deprecated on 2026-11-01 and go away a year later.
const DEPRECATION: &str = "@1793491200";
const SUNSET: &str = "Mon, 01 Nov 2027 00:00:00 GMT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V2,
}

impl ApiVersion {
    pub fn negotiate(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut asked_for_unknown = None;
        let mut best = None;
        let mut plain_json_ok = false;
        for value in headers.get_all(header::ACCEPT) {
            let Ok(value) = value.to_str() else { continue };
            for range in value.split(',') {
                let mut params = range.split(';');
                let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
                let refused = params
                    .any(|p| matches!(p.trim().replace(' ', "").as_str(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
                if refused {
                    continue;
                }
                let Some(version) = media.strip_prefix(VENDOR_PREFIX) else {
                    plain_json_ok |= matches!(media.as_str(), "application/json" | "application/*" | "*/*");
                    continue;
                };
                match version {
                    "v2+json" => best = Some(Self::V2),
                    "v1+json" | "json" => best = best.or(Some(Self::V1)),
                    other => asked_for_unknown = Some(other.to_owned()),
                }
            }
        }
        match (best, asked_for_unknown) {
            (Some(version), _) => Ok(version),
            (None, Some(_)) if plain_json_ok => Ok(Self::V1),
            (None, Some(unknown)) => Err(ApiError::NotAcceptable(format!(
                "application/vnd.orderly.{unknown} is not a version this API serves; use application/vnd.orderly.v2+json or application/json"
            ))),
            (None, None) => Ok(Self::V1),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::negotiate(&parts.headers)
    }
}

/// A resource in the representation the client negotiated.
pub struct Representation {
    pub status: StatusCode,
    pub version: ApiVersion,
    pub body: Vec<u8>,
    /// The path of the resource (for `Link: rel="successor-version"`).
    pub path: String,
    pub extra_headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Set on public, cacheable reads (see [`super::caching`]).
    pub validators: Option<Validators>,
}

impl Representation {
    pub fn new<V1: Serialize, V2: Serialize>(
        status: StatusCode,
        version: ApiVersion,
        path: impl Into<String>,
        v1: impl FnOnce() -> V1,
        v2: impl FnOnce() -> V2,
    ) -> Self {
        let body = match version {
            ApiVersion::V1 => serde_json::to_vec(&v1()),
            ApiVersion::V2 => serde_json::to_vec(&v2()),
        }
        .unwrap_or_default();
        Self { status, version, body, path: path.into(), extra_headers: Vec::new(), validators: None }
    }

    /// A public read: 200 with its ETag and `Cache-Control: public,
    /// max-age`, or a bodiless 304 (same headers, nothing serialized) when
    /// the client's `If-None-Match` names the current tag.
    pub fn cacheable<V1: Serialize, V2: Serialize>(
        version: ApiVersion,
        path: impl Into<String>,
        validators: Validators,
        conditions: &Conditions,
        v1: impl FnOnce() -> V1,
        v2: impl FnOnce() -> V2,
    ) -> Self {
        let mut representation = if conditions.not_modified(&validators.etag) {
            Self {
                status: StatusCode::NOT_MODIFIED,
                version,
                body: Vec::new(),
                path: path.into(),
                extra_headers: Vec::new(),
                validators: None,
            }
        } else {
            Self::new(StatusCode::OK, version, path, v1, v2)
        };
        representation.validators = Some(validators);
        representation
    }

    /// Only the validator (a write's answer: the tag to send in the next
    /// `If-Match`; the response itself stays `no-store`).
    pub fn with_etag(mut self, etag: &super::caching::EntityTag) -> Self {
        self.extra_headers.push((header::ETAG, etag.header_value()));
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.extra_headers.push((name, value));
        }
        self
    }
}

impl IntoResponse for Representation {
    fn into_response(self) -> Response {
        let not_modified = self.status == StatusCode::NOT_MODIFIED;
        let mut response =
            if not_modified { self.status.into_response() } else { (self.status, self.body).into_response() };
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Accept"));
        if let Some(validators) = &self.validators {
            headers.insert(header::ETAG, validators.etag.header_value());
            headers.insert(header::CACHE_CONTROL, validators.policy.header_value());
        }
        match self.version {
            ApiVersion::V2 => {
                if !not_modified {
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE_V2));
                }
            }
            ApiVersion::V1 => {
                if !not_modified {
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                headers.insert("deprecation", HeaderValue::from_static(DEPRECATION));
                headers.insert("sunset", HeaderValue::from_static(SUNSET));
                let link = format!("<{}>; rel=\"successor-version\"; type=\"{MEDIA_TYPE_V2}\"", self.path);
                if let Ok(value) = HeaderValue::from_str(&link) {
                    headers.insert(header::LINK, value);
                }
            }
        }
        for (name, value) in self.extra_headers {
            headers.insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn negotiates_by_accept() {
        assert_eq!(ApiVersion::negotiate(&HeaderMap::new()), Ok(ApiVersion::V1));
        assert_eq!(ApiVersion::negotiate(&accept("application/json")), Ok(ApiVersion::V1));
        assert_eq!(ApiVersion::negotiate(&accept("*/*")), Ok(ApiVersion::V1));
        assert_eq!(ApiVersion::negotiate(&accept(MEDIA_TYPE_V2)), Ok(ApiVersion::V2));
        assert_eq!(
            ApiVersion::negotiate(&accept("application/json, application/vnd.orderly.v2+json;q=0.9")),
            Ok(ApiVersion::V2)
        );
        assert_eq!(ApiVersion::negotiate(&accept("application/vnd.orderly.v1+json")), Ok(ApiVersion::V1));
    }

    #[test]
    fn unknown_orderly_versions_are_not_acceptable() {
        assert!(matches!(
            ApiVersion::negotiate(&accept("application/vnd.orderly.v3+json")),
            Err(ApiError::NotAcceptable(_))
        ));
        assert!(matches!(ApiVersion::negotiate(&accept("application/vnd.orderly.v2+json;q=0")), Ok(ApiVersion::V1)));
        // A client that also takes plain JSON gets v1 rather than an error.
        assert_eq!(
            ApiVersion::negotiate(&accept("application/vnd.orderly.v9+json, application/json")),
            Ok(ApiVersion::V1)
        );
    }
}
