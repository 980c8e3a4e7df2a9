//! HTTP caching of public reads (RFC 9110 §8.8 and §13, RFC 9111).
//!
//! The catalog is read far more often than it changes, and the same bytes go
//! to every client: browsers, a CDN and the runner's own cache may keep them
//! for a short `max-age` ([`CachePolicy`]). Past that, a client revalidates
//! with `If-None-Match` and gets a bodiless 304 while its copy is current.
//!
//! The validator is an [`EntityTag`] the resource derives from what it
//! already read: a product's `version` and `updated_at` (every change to a
//! product, stock moves included, bumps both) and the representation (v1 and
//! v2 are different bytes, so they get different tags). No second store read,
//! no hashing of the body, and a cached product yields the same tag as the
//! stored one, so the runner's in-process cache and clients agree: the
//! moment a change invalidates the cache, the next read has a new tag.
//!
//! Writes use the same tags the other way round: `If-Match` on an update
//! ([`Conditions::if_match`]) names the state the client edited; the use case
//! writes only if the product is still in that state (a conditional write on
//! its version), else 412 and nothing changes.
//!
//! Everything personal (orders, analytics, notifications, health) never gets
//! a policy and keeps the edge's `Cache-Control: no-store`.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};

use super::ApiError;

/// An entity tag: `"opaque"` (strong) or `W/"opaque"` (weak).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    weak: bool,
    opaque: String,
}

impl EntityTag {
    /// A strong tag. `opaque` is kept to the characters RFC 9110 allows in a
    /// tag (visible ASCII but `"`); anything else is dropped.
    pub fn strong(opaque: &str) -> Self {
        Self { weak: false, opaque: opaque.chars().filter(|c| c.is_ascii_graphic() && *c != '"').collect() }
    }

    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// One tag as it appears in a header list (`W/"x"` or `"x"`).
    fn parse(raw: &str) -> Option<Self> {
        let (weak, quoted) = match raw.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let opaque = quoted.strip_prefix('"')?.strip_suffix('"')?;
        opaque.bytes().all(|b| b.is_ascii_graphic() && b != b'"').then(|| Self { weak, opaque: opaque.to_owned() })
    }

    /// Weak comparison (`If-None-Match`): the opaque parts are equal.
    pub fn weak_eq(&self, other: &Self) -> bool {
        self.opaque == other.opaque
    }

    /// Strong comparison (`If-Match`): both strong, opaque parts equal.
    pub fn strong_eq(&self, other: &Self) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    pub fn header_value(&self) -> HeaderValue {
        let text = if self.weak { format!("W/\"{}\"", self.opaque) } else { format!("\"{}\"", self.opaque) };
        // Only visible ASCII survives `strong`/`parse`, so this cannot fail.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }
}

impl std::fmt::Display for EntityTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.weak { write!(f, "W/\"{}\"", self.opaque) } else { write!(f, "\"{}\"", self.opaque) }
    }
}

/// The value of `If-Match` / `If-None-Match`: `*`, or a list of tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    Any,
    /// Tags that do not parse are left out: they can match nothing.
    Tags(Vec<EntityTag>),
}

impl TagList {
    /// Every field line of `name`, or `None` when the header is absent.
    fn from_headers(headers: &HeaderMap, name: header::HeaderName) -> Option<Self> {
        let mut tags = Vec::new();
        let mut present = false;
        for value in headers.get_all(name) {
            present = true;
            let text = value.to_str().unwrap_or("");
            for item in split_tags(text) {
                if item == "*" {
                    return Some(Self::Any);
                }
                tags.extend(EntityTag::parse(item));
            }
        }
        present.then_some(Self::Tags(tags))
    }
}

/// Splits a tag list on the commas between tags (a comma inside quotes is
/// part of an opaque tag in principle; ours never contain one, and a tag
/// that does simply fails to parse and matches nothing).
fn split_tags(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty())
}

/// The request's preconditions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    if_match: Option<TagList>,
    if_none_match: Option<TagList>,
}

impl Conditions {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            if_match: TagList::from_headers(headers, header::IF_MATCH),
            if_none_match: TagList::from_headers(headers, header::IF_NONE_MATCH),
        }
    }

    /// For a read: whether the client's copy is `current` (weak comparison),
    /// so that a 304 answers.
    pub fn not_modified(&self, current: &EntityTag) -> bool {
        match &self.if_none_match {
            None => false,
            Some(TagList::Any) => true,
            Some(TagList::Tags(tags)) => tags.iter().any(|tag| tag.weak_eq(current)),
        }
    }

    /// For a write: `None` without `If-Match`; else whether it names one of
    /// the `current` tags (strong comparison; `*` matches any existing
    /// resource, and nothing when there is none).
    pub fn if_match(&self, current: &[EntityTag]) -> Option<bool> {
        self.if_match.as_ref().map(|list| match list {
            TagList::Any => !current.is_empty(),
            TagList::Tags(tags) => tags.iter().any(|tag| current.iter().any(|c| tag.strong_eq(c))),
        })
    }

    /// Whether the request carries `If-Match` at all.
    pub fn has_if_match(&self) -> bool {
        self.if_match.is_some()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Conditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

/// How long shared caches may serve a public representation unrevalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub max_age: Duration,
}

impl CachePolicy {
    /// `public, max-age=N` (whole seconds, as RFC 9111 counts them).
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("public, max-age={}", self.max_age.as_secs()))
            .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
    }
}

/// What makes a representation cacheable: its validator and its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    pub etag: EntityTag,
    pub policy: CachePolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(name: header::HeaderName, value: &str) -> Conditions {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        Conditions::from_headers(&headers)
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let current = EntityTag::strong("7.1.v1");
        assert!(conditions(header::IF_NONE_MATCH, "\"7.1.v1\"").not_modified(&current));
        assert!(conditions(header::IF_NONE_MATCH, "W/\"7.1.v1\"").not_modified(&current));
        assert!(conditions(header::IF_NONE_MATCH, "\"6.1.v1\", \"7.1.v1\"").not_modified(&current));
        assert!(conditions(header::IF_NONE_MATCH, "*").not_modified(&current));
        assert!(!conditions(header::IF_NONE_MATCH, "\"7.1.v2\"").not_modified(&current));
        assert!(!conditions(header::IF_NONE_MATCH, "7.1.v1").not_modified(&current), "unquoted is no tag");
        assert!(!Conditions::default().not_modified(&current));
    }

    #[test]
    fn if_match_compares_strongly_and_star_needs_a_resource() {
        let current = [EntityTag::strong("7.1.v1"), EntityTag::strong("7.1.v2")];
        assert_eq!(Conditions::default().if_match(&current), None);
        assert_eq!(conditions(header::IF_MATCH, "\"7.1.v2\"").if_match(&current), Some(true));
        assert_eq!(conditions(header::IF_MATCH, "W/\"7.1.v1\"").if_match(&current), Some(false));
        assert_eq!(conditions(header::IF_MATCH, "\"6.1.v1\"").if_match(&current), Some(false));
        assert_eq!(conditions(header::IF_MATCH, "garbage").if_match(&current), Some(false));
        assert_eq!(conditions(header::IF_MATCH, "*").if_match(&current), Some(true));
        assert_eq!(conditions(header::IF_MATCH, "*").if_match(&[]), Some(false));
    }

    #[test]
    fn tags_render_quoted_and_policies_in_whole_seconds() {
        assert_eq!(EntityTag::strong("a\"b c").header_value(), "\"abc\"");
        assert_eq!(CachePolicy { max_age: Duration::from_millis(5900) }.header_value(), "public, max-age=5");
    }
}
