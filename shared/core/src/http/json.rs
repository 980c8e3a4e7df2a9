//! Strict JSON request bodies.
//!
//! - 415 unless the body is declared JSON (`application/json` or `*+json`);
//! - 413 past [`BODY_LIMIT_BYTES`], checked on `Content-Length` *and* while
//!   reading, so a lying or chunked client cannot stream more;
//! - 400 for what is not a request document at all: broken JSON, nesting too
//!   deep, unknown fields (a client cannot slip in `status` or `total`);
//! - 422 for a well-formed document whose values are wrong, naming the field.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use super::ApiError;
use super::context::{BODY_LIMIT_BYTES, declared_too_large};
use crate::domain::ValidationErrors;

/// A request body that did not arrive within the host's body timeout.
/// A host that enforces one reports its timeout as this error, so that only
/// a timeout answers 408; a body that cannot be read otherwise (malformed
/// chunked encoding, a client that went away) answers 400.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// A JSON body parsed under the rules above.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        require_json_content_type(request.headers())?;
        if declared_too_large(request.headers()) {
            return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT_BYTES });
        }
        let body = Limited::new(request.into_body(), BODY_LIMIT_BYTES);
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT_BYTES });
            }
            Err(error) if caused_by::<BodyTimedOut>(error.as_ref()) => return Err(ApiError::RequestTimeout),
            Err(_) => {
                return Err(ApiError::BadRequest("the body could not be read: malformed or cut off".into()));
            }
        };
        parse_json(&bytes).map(JsonBody)
    }
}

/// Whether `error` or any error it was caused by is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<E>())
}

fn require_json_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType("send the body as application/json".into()));
    };
    let media = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media == "application/json" || (media.starts_with("application/") && media.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "the body must be application/json, not {}",
            if media.is_empty() { "(empty)" } else { media.as_str() }
        )))
    }
}

/// Parses a request document (a JSON object) into `T`, classifying failures
/// as 400 or 422 (see module docs).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would accept `[..]` for a struct (positional fields): refuse it.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest("the body must be a JSON object".into()));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut *deserializer) {
        Ok(value) => match deserializer.end() {
            Ok(()) => Ok(value),
            Err(error) => Err(ApiError::BadRequest(format!("the body is not valid JSON: {error}"))),
        },
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let message = inner.to_string();
            let message = without_type_names(message.split(" at line ").next().unwrap_or(&message));
            match inner.classify() {
                serde_json::error::Category::Data if message.starts_with("unknown field") => {
                    // The path already ends with the unknown field's name.
                    Err(ApiError::BadRequest(format!("unknown field `{path}`")))
                }
                serde_json::error::Category::Data if message.starts_with("missing field") => {
                    let field = message.split('`').nth(1).unwrap_or("?");
                    Err(ValidationErrors::single(join_path(&path, field), "is required").into())
                }
                serde_json::error::Category::Data if path == "." => {
                    Err(ApiError::BadRequest(format!("the body must be a JSON object: {message}")))
                }
                serde_json::error::Category::Data => Err(ValidationErrors::single(path, message).into()),
                _ => Err(ApiError::BadRequest(format!("the body is not valid JSON: {message}"))),
            }
        }
    }
}

/// Deserializes `T` from a JSON object only. serde's derived structs also
/// take an array of their fields in order (`["TEA", 1]`), which a request
/// document must not: [`parse_json`] refuses it at the top, and a nested
/// request type refuses it with this (see `OrderItemRequest`).
pub fn object_only<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct ObjectOnly<T>(std::marker::PhantomData<T>);

    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = T;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a JSON object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(ObjectOnly(std::marker::PhantomData))
}

/// serde names the Rust type it expected (`expected struct OrderItemRequest`):
/// the client learns what JSON it should have sent instead.
fn without_type_names(message: &str) -> String {
    for (named, kind) in [(", expected struct ", "a JSON object"), (", expected enum ", "one of the allowed values")] {
        if let Some(at) = message.find(named) {
            return format!("{}, expected {kind}", &message[..at]);
        }
    }
    // Numbers are named by their Rust type (`expected i64`, `expected u32`).
    for number in ["i8", "i16", "i32", "i64", "i128", "u8", "u16", "u32", "u64", "u128", "f32", "f64"] {
        if let Some(head) = message.strip_suffix(&format!(", expected {number}")) {
            let kind = if number.starts_with('f') { "a number" } else { "a whole number" };
            return format!("{head}, expected {kind}");
        }
    }
    message.to_owned()
}

fn join_path(parent: &str, field: &str) -> String {
    if parent == "." || parent.is_empty() { field.to_owned() } else { format!("{parent}.{field}") }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::domain::Quantity;

    /// A JSON request whose body yields `{` and then fails with `error`.
    fn broken_body(error: impl std::error::Error + Send + Sync + 'static) -> Request {
        let chunks: Vec<Result<bytes::Bytes, axum::BoxError>> = vec![Ok("{".into()), Err(Box::new(error))];
        axum::http::Request::post("/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from_stream(futures::stream::iter(chunks)))
            .unwrap()
    }

    #[tokio::test]
    async fn only_a_body_that_timed_out_is_a_408_and_one_that_broke_is_a_400() {
        let timed_out = JsonBody::<serde_json::Value>::from_request(broken_body(BodyTimedOut), &()).await;
        assert!(matches!(timed_out, Err(ApiError::RequestTimeout)), "{timed_out:?}");
        let broken = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid chunk size line");
        let refused = JsonBody::<serde_json::Value>::from_request(broken_body(broken), &()).await;
        assert!(matches!(&refused, Err(ApiError::BadRequest(why)) if why.contains("could not be read")), "{refused:?}");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        quantity: Quantity,
    }

    fn field_of(error: ApiError) -> String {
        match error {
            ApiError::Validation(errors) => errors.0[0].field.clone(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_a_400_naming_the_field() {
        let error = parse_json::<Body>(br#"{"items":[{"quantity":1,"price":"0.01"}]}"#).unwrap_err();
        assert_eq!(error, ApiError::BadRequest("unknown field `items[0].price`".into()));
        assert!(matches!(parse_json::<Body>(br#"{"items":[],"status":"confirmed"}"#), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn bad_values_are_a_422_naming_the_field() {
        assert_eq!(field_of(parse_json::<Body>(br#"{"items":[{"quantity":0}]}"#).unwrap_err()), "items[0].quantity");
        assert_eq!(field_of(parse_json::<Body>(br#"{"items":[{"quantity":"2"}]}"#).unwrap_err()), "items[0].quantity");
        assert_eq!(field_of(parse_json::<Body>(br#"{"items":[{}]}"#).unwrap_err()), "items[0].quantity");
        assert_eq!(field_of(parse_json::<Body>(br#"{}"#).unwrap_err()), "items");
    }

    #[test]
    fn a_problem_never_names_a_rust_type() {
        let error = parse_json::<Body>(br#"{"items":[1]}"#).unwrap_err();
        let ApiError::Validation(errors) = error else { panic!("expected 422, got {error:?}") };
        assert_eq!(errors.0[0].field, "items[0]");
        assert_eq!(errors.0[0].message, "invalid type: integer `1`, expected a JSON object");
        let error = parse_json::<Body>(br#"{"items":[{"quantity":"2"}]}"#).unwrap_err();
        let ApiError::Validation(errors) = error else { panic!("expected 422, got {error:?}") };
        assert_eq!(errors.0[0].message, "invalid type: string \"2\", expected a whole number");
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct StrictBody {
        items: Vec<StrictItem>,
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct StrictItem(Item);

    impl<'de> Deserialize<'de> for StrictItem {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            object_only(deserializer).map(Self)
        }
    }

    #[test]
    fn an_object_only_type_refuses_the_array_of_its_fields_and_keeps_field_paths() {
        assert!(parse_json::<Body>(br#"{"items":[[1]]}"#).is_ok(), "what a derived struct takes");
        let error = parse_json::<StrictBody>(br#"{"items":[[1]]}"#).unwrap_err();
        let ApiError::Validation(errors) = error else { panic!("expected 422, got {error:?}") };
        assert_eq!(errors.0[0].field, "items[0]");
        assert_eq!(errors.0[0].message, "invalid type: sequence, expected a JSON object");
        let zero = parse_json::<StrictBody>(br#"{"items":[{"quantity":0}]}"#).unwrap_err();
        assert_eq!(field_of(zero), "items[0].quantity");
        assert!(parse_json::<StrictBody>(br#"{"items":[{"quantity":2}]}"#).is_ok());
    }

    #[test]
    fn broken_or_hostile_documents_are_a_400() {
        for body in [&b"{"[..], b"", b"[]", b"null", b"\xff\xfe", b"{\"items\":[]} trailing"] {
            assert!(matches!(parse_json::<Body>(body), Err(ApiError::BadRequest(_))), "{body:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(parse_json::<serde_json::Value>(deep.as_bytes()), Err(ApiError::BadRequest(_))));
    }
}
