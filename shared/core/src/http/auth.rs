//! Zero trust: every function verifies the caller's JWT itself, on every
//! request, even behind a gateway that already did.
//!
//! Exactly one algorithm family is accepted per deployment (HS256 with a
//! shared secret in development, RS256 with keys from a JWKS in production),
//! so `alg: none`, HS/RS confusion and downgrades are refused by construction.
//! `exp` is required and checked without leeway unless configured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{ApiError, RequestContext};
use crate::domain::CustomerId;

/// How tokens are verified. Exactly one of `hs256_secret` / `jwks_json`.
#[derive(Clone, Default)]
pub struct AuthConfig {
    pub hs256_secret: Option<Vec<u8>>,
    /// A JWKS document (`{"keys":[...]}`) with the RS256 public keys.
    pub jwks_json: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf`.
    pub leeway: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, not even in a debug dump.
        f.debug_struct("AuthConfig")
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "<redacted>"))
            .field("jwks_json", &self.jwks_json.as_ref().map(|_| "<jwks>"))
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("configure exactly one of an HS256 secret or an RS256 JWKS")]
    NoKeys,
    #[error("the HS256 secret must be at least 32 bytes")]
    WeakSecret,
    #[error("the JWKS is not usable: {0}")]
    BadJwks(String),
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub customer_id: CustomerId,
    pub is_admin: bool,
}

impl Principal {
    /// Owners see their orders; admins see all.
    pub fn may_access(&self, owner: &CustomerId) -> bool {
        self.is_admin || &self.customer_id == owner
    }
}

#[derive(Debug, Deserialize, Serialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

enum Keys {
    Hs256(DecodingKey),
    Rs256 { by_kid: HashMap<String, DecodingKey>, only: Option<DecodingKey> },
}

pub struct Authenticator {
    keys: Keys,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.keys {
            Keys::Hs256(_) => "HS256",
            Keys::Rs256 { .. } => "RS256 (JWKS)",
        };
        f.debug_struct("Authenticator").field("mode", &mode).finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let (keys, algorithm) = match (&config.hs256_secret, &config.jwks_json) {
            (Some(secret), None) => {
                if secret.len() < 32 {
                    return Err(AuthError::WeakSecret);
                }
                (Keys::Hs256(DecodingKey::from_secret(secret)), Algorithm::HS256)
            }
            (None, Some(jwks)) => (parse_jwks(jwks)?, Algorithm::RS256),
            _ => return Err(AuthError::NoKeys),
        };
        let mut validation = Validation::new(algorithm);
        // A configured audience or issuer must also be *present*: jsonwebtoken
        // only checks claims that exist unless they are required.
        let mut required = vec!["exp", "sub"];
        required.extend(config.audience.as_ref().map(|_| "aud"));
        required.extend(config.issuer.as_ref().map(|_| "iss"));
        validation.set_required_spec_claims(&required);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self { keys, validation })
    }

    pub fn shared(config: &AuthConfig) -> Result<Arc<Self>, AuthError> {
        Self::new(config).map(Arc::new)
    }

    /// Verifies a compact JWT; the error text is safe to show the caller.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let deny = |why: &str| ApiError::Unauthorized(format!("invalid token: {why}"));
        if token.len() > 8 * 1024 {
            return Err(deny("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| deny("malformed or unsupported algorithm"))?;
        let key = match &self.keys {
            Keys::Hs256(key) => key,
            Keys::Rs256 { by_kid, only } => match header.kid.as_deref() {
                Some(kid) => by_kid.get(kid).ok_or_else(|| deny("unknown key id"))?,
                None => only.as_ref().ok_or_else(|| deny("key id required"))?,
            },
        };
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(deny("algorithm not accepted"));
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => deny("expired"),
            ErrorKind::ImmatureSignature => deny("not yet valid"),
            ErrorKind::InvalidSignature => deny("bad signature"),
            ErrorKind::InvalidAlgorithm => deny("algorithm not accepted"),
            ErrorKind::InvalidAudience => deny("wrong audience"),
            ErrorKind::InvalidIssuer => deny("wrong issuer"),
            ErrorKind::MissingRequiredClaim(claim) => deny(&format!("missing {claim}")),
            _ => deny("malformed"),
        })?;
        let customer_id = CustomerId::parse(&data.claims.sub).map_err(|_| deny("unusable sub"))?;
        let is_admin = data.claims.scope.as_deref().is_some_and(|s| s.split_ascii_whitespace().any(|s| s == "admin"));
        Ok(Principal { customer_id, is_admin })
    }
}

fn parse_jwks(raw: &str) -> Result<Keys, AuthError> {
    let set: JwkSet = serde_json::from_str(raw).map_err(|e| AuthError::BadJwks(e.to_string()))?;
    let mut by_kid = HashMap::new();
    let mut all = Vec::new();
    for jwk in &set.keys {
        let key = DecodingKey::from_jwk(jwk).map_err(|e| AuthError::BadJwks(e.to_string()))?;
        if let Some(kid) = &jwk.common.key_id {
            by_kid.insert(kid.clone(), key.clone());
        }
        all.push(key);
    }
    if all.is_empty() {
        return Err(AuthError::BadJwks("no keys".into()));
    }
    let only = if all.len() == 1 { all.pop() } else { None };
    Ok(Keys::Rs256 { by_kid, only })
}

/// Mints an HS256 token: for development (`orderly token`) and tests.
pub fn mint_hs256(secret: &[u8], sub: &str, admin: bool, ttl: Duration) -> String {
    let exp = jsonwebtoken::get_current_timestamp() + ttl.as_secs();
    let claims = Claims { sub: sub.to_owned(), exp, scope: admin.then(|| "admin".to_owned()) };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap_or_default()
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = RequestContext::from_parts(parts)?;
        if let Some(principal) = context.principal() {
            return Ok(principal);
        }
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <token>".into()))?;
        let value = header.to_str().map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(ApiError::Unauthorized("the Authorization scheme must be Bearer".into())),
        };
        let principal = context.authenticator().verify(token)?;
        context.set_principal(&principal);
        Ok(principal)
    }
}

/// A caller with the `admin` scope; anyone else authenticated gets 403.
#[derive(Debug, Clone)]
pub struct AdminPrincipal(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for AdminPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if principal.is_admin { Ok(Self(principal)) } else { Err(ApiError::Forbidden) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn authenticator() -> Authenticator {
        Authenticator::new(&AuthConfig { hs256_secret: Some(SECRET.to_vec()), ..Default::default() }).unwrap()
    }

    fn encode(header: Header, claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn a_valid_token_yields_its_subject_and_scope() {
        let principal = authenticator().verify(&mint_hs256(SECRET, "alice", true, Duration::from_secs(60))).unwrap();
        assert_eq!(principal.customer_id.as_str(), "alice");
        assert!(principal.is_admin);
        let plain = authenticator().verify(&mint_hs256(SECRET, "bob", false, Duration::from_secs(60))).unwrap();
        assert!(!plain.is_admin);
    }

    #[test]
    fn refuses_expired_unsigned_and_foreign_tokens() {
        let a = authenticator();
        let expired = encode(Header::default(), serde_json::json!({"sub":"a","exp": now() - 5}), SECRET);
        let no_exp = encode(Header::default(), serde_json::json!({"sub":"a"}), SECRET);
        let wrong_secret = encode(
            Header::default(),
            serde_json::json!({"sub":"a","exp": now() + 60}),
            b"another-secret-another-secret-xx",
        );
        let hs512 = encode(Header::new(Algorithm::HS512), serde_json::json!({"sub":"a","exp": now() + 60}), SECRET);
        let not_yet =
            encode(Header::default(), serde_json::json!({"sub":"a","exp": now() + 60, "nbf": now() + 30}), SECRET);
        // alg "none": header {"alg":"none","typ":"JWT"}, no signature.
        let none = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.",
                b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
                b64.encode(format!(r#"{{"sub":"a","exp":{}}}"#, now() + 60))
            )
        };
        for token in [expired, no_exp, wrong_secret, hs512, not_yet, none, "garbage".into(), String::new()] {
            assert!(matches!(a.verify(&token), Err(ApiError::Unauthorized(_))), "{token}");
        }
    }

    #[test]
    fn a_configured_audience_and_issuer_must_be_present() {
        let config = AuthConfig {
            hs256_secret: Some(SECRET.to_vec()),
            audience: Some("orderly".into()),
            issuer: Some("https://issuer.example".into()),
            ..Default::default()
        };
        let a = Authenticator::new(&config).unwrap();
        let claims = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"sub": "a", "exp": now() + 60});
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            encode(Header::default(), c, SECRET)
        };
        assert!(a.verify(&claims(serde_json::json!({"aud": "orderly", "iss": "https://issuer.example"}))).is_ok());
        for bad in [
            serde_json::json!({"iss": "https://issuer.example"}),
            serde_json::json!({"aud": "orderly"}),
            serde_json::json!({"aud": "other", "iss": "https://issuer.example"}),
            serde_json::json!({"aud": "orderly", "iss": "https://evil.example"}),
        ] {
            assert!(a.verify(&claims(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_secrets_are_refused_at_start() {
        let weak = AuthConfig { hs256_secret: Some(b"short".to_vec()), ..Default::default() };
        assert_eq!(Authenticator::new(&weak).unwrap_err(), AuthError::WeakSecret);
        assert_eq!(Authenticator::new(&AuthConfig::default()).unwrap_err(), AuthError::NoKeys);
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let config = AuthConfig { hs256_secret: Some(SECRET.to_vec()), ..Default::default() };
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
    }
}
