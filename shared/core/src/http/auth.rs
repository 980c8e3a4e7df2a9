//! Zero trust: every function verifies the caller's JWT itself, on every
//! request, even behind a gateway that already did.
//!
//! Exactly one algorithm family is accepted per deployment (HS256 with a
//! shared secret in development, RS256 with keys from a JWKS in production),
//! so `alg: none`, HS/RS confusion and downgrades are refused by construction.
//! `exp` is required and checked without leeway unless configured.
//!
//! Keys rotate without a restart:
//! - **HS256**: several secrets, the current one first. A token signed with
//!   any of them verifies, so a new secret can be rolled out to verifiers
//!   before signers use it, and an old one kept until its tokens expire.
//! - **RS256**: the token's `kid` picks the JWKS key. Keys fetched from a
//!   source (a JWKS URL, an SSM parameter) live in a
//!   [`Refreshing`](crate::secrets::Refreshing) copy: refetched after their
//!   max age (a key removed at the identity provider stops verifying), and at
//!   once, rate-limited, when a token names a `kid` the copy does not know (a
//!   key the identity provider just added verifies within seconds).

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
use crate::ports::{Clock, SecretFetcher};
use crate::secrets::{RefreshPolicy, Refreshing};

/// Where the verifying keys come from.
#[derive(Clone, Default)]
pub enum KeyConfig {
    #[default]
    None,
    /// HS256 secrets, the current one first.
    Hs256(Vec<Vec<u8>>),
    /// A JWKS document (`{"keys":[...]}`) with the RS256 public keys.
    Jwks(String),
    /// Fetched from a source and refreshed by `policy`.
    Fetched { fetcher: Arc<dyn SecretFetcher>, kind: KeyKind, policy: RefreshPolicy, clock: Arc<dyn Clock> },
}

/// What a fetched key document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// HS256 secrets, comma-separated, the current one first.
    Hs256Secrets,
    /// A JWKS document.
    Jwks,
}

impl KeyKind {
    fn algorithm(self) -> Algorithm {
        match self {
            Self::Hs256Secrets => Algorithm::HS256,
            Self::Jwks => Algorithm::RS256,
        }
    }
}

/// How tokens are verified.
#[derive(Clone, Default)]
pub struct AuthConfig {
    pub keys: KeyConfig,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf`.
    pub leeway: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret, not even in a debug dump.
        let keys = match &self.keys {
            KeyConfig::None => "none".to_owned(),
            KeyConfig::Hs256(secrets) => format!("{} HS256 secret(s) <redacted>", secrets.len()),
            KeyConfig::Jwks(_) => "<jwks>".to_owned(),
            KeyConfig::Fetched { fetcher, kind, .. } => format!("{kind:?} from {}", fetcher.describe()),
        };
        f.debug_struct("AuthConfig")
            .field("keys", &keys)
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

/// One parsed key set.
pub struct VerifyingKeys {
    keys: Keys,
}

enum Keys {
    /// Tried in order (the current secret first).
    Hs256(Vec<DecodingKey>),
    Rs256 {
        by_kid: HashMap<String, DecodingKey>,
        only: Option<DecodingKey>,
    },
}

enum Lookup<'a> {
    Found(&'a [DecodingKey]),
    UnknownKid,
    KidRequired,
}

impl VerifyingKeys {
    fn parse(kind: KeyKind, text: &str) -> Result<Self, AuthError> {
        match kind {
            KeyKind::Hs256Secrets => {
                Self::secrets(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()))
            }
            KeyKind::Jwks => parse_jwks(text),
        }
    }

    fn secrets(secrets: impl IntoIterator<Item = Vec<u8>>) -> Result<Self, AuthError> {
        let mut keys = Vec::new();
        for secret in secrets {
            if secret.len() < 32 {
                return Err(AuthError::WeakSecret);
            }
            keys.push(DecodingKey::from_secret(&secret));
        }
        if keys.is_empty() {
            return Err(AuthError::NoKeys);
        }
        Ok(Self { keys: Keys::Hs256(keys) })
    }

    fn lookup(&self, kid: Option<&str>) -> Lookup<'_> {
        match (&self.keys, kid) {
            (Keys::Hs256(keys), _) => Lookup::Found(keys),
            (Keys::Rs256 { by_kid, .. }, Some(kid)) => {
                by_kid.get(kid).map_or(Lookup::UnknownKid, |key| Lookup::Found(std::slice::from_ref(key)))
            }
            (Keys::Rs256 { only, .. }, None) => {
                only.as_ref().map_or(Lookup::KidRequired, |key| Lookup::Found(std::slice::from_ref(key)))
            }
        }
    }
}

enum KeyStore {
    Fixed(Arc<VerifyingKeys>),
    Fetched(Refreshing<VerifyingKeys>),
}

pub struct Authenticator {
    keys: KeyStore,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.validation.algorithms.first() {
            Some(Algorithm::HS256) => "HS256",
            _ => "RS256 (JWKS)",
        };
        f.debug_struct("Authenticator").field("mode", &mode).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Fixed keys are checked here; fetched ones on the first request.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        super::jwt_crypto::install();
        let (keys, algorithm) = match &config.keys {
            KeyConfig::None => return Err(AuthError::NoKeys),
            KeyConfig::Hs256(secrets) => {
                (KeyStore::Fixed(Arc::new(VerifyingKeys::secrets(secrets.iter().cloned())?)), Algorithm::HS256)
            }
            KeyConfig::Jwks(jwks) => (KeyStore::Fixed(Arc::new(parse_jwks(jwks)?)), Algorithm::RS256),
            KeyConfig::Fetched { fetcher, kind, policy, clock } => {
                let kind = *kind;
                let parse = move |text: &str| VerifyingKeys::parse(kind, text).map_err(|e| e.to_string());
                (KeyStore::Fetched(Refreshing::new(fetcher.clone(), parse, *policy, clock.clone())), kind.algorithm())
            }
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

    async fn current_keys(&self) -> Result<Arc<VerifyingKeys>, ApiError> {
        match &self.keys {
            KeyStore::Fixed(keys) => Ok(keys.clone()),
            KeyStore::Fetched(keys) => keys.get().await.map_err(|error| ApiError::Unavailable {
                detail: "the token's keys are unavailable; try again shortly".into(),
                cause: error.to_string(),
            }),
        }
    }

    /// Verifies a compact JWT; the error text is safe to show the caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let deny = |why: &str| ApiError::Unauthorized(format!("invalid token: {why}"));
        if token.len() > 8 * 1024 {
            return Err(deny("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| deny("malformed or unsupported algorithm"))?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(deny("algorithm not accepted"));
        }
        let kid = header.kid.as_deref();
        let mut keys = self.current_keys().await?;
        if let (Lookup::UnknownKid, KeyStore::Fetched(fetched)) = (keys.lookup(kid), &self.keys)
            && let Some(newer) = fetched.refetch(&keys).await
        {
            // A key the identity provider may have just added.
            keys = newer;
        }
        let candidates = match keys.lookup(kid) {
            Lookup::Found(candidates) => candidates,
            Lookup::UnknownKid => return Err(deny("unknown key id")),
            Lookup::KidRequired => return Err(deny("key id required")),
        };
        let mut outcome = Err(ErrorKind::InvalidSignature.into());
        for key in candidates {
            outcome = jsonwebtoken::decode::<Claims>(token, key, &self.validation);
            // Another secret of a rotation may have signed it.
            if !matches!(&outcome, Err(e) if *e.kind() == ErrorKind::InvalidSignature) {
                break;
            }
        }
        let data = outcome.map_err(|e: jsonwebtoken::errors::Error| match e.kind() {
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

fn parse_jwks(raw: &str) -> Result<VerifyingKeys, AuthError> {
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
    Ok(VerifyingKeys { keys: Keys::Rs256 { by_kid, only } })
}

/// Mints an HS256 token: for development (`orderly token`) and tests.
pub fn mint_hs256(secret: &[u8], sub: &str, admin: bool, ttl: Duration) -> String {
    super::jwt_crypto::install();
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
        let principal = context.authenticator().verify(token).await?;
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
    use super::super::jwt_crypto::identity_provider;
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn authenticator() -> Authenticator {
        Authenticator::new(&AuthConfig { keys: KeyConfig::Hs256(vec![SECRET.to_vec()]), ..Default::default() }).unwrap()
    }

    fn encode(header: Header, claims: serde_json::Value, secret: &[u8]) -> String {
        identity_provider::sign(&header, &claims, &EncodingKey::from_secret(secret))
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[tokio::test]
    async fn a_valid_token_yields_its_subject_and_scope() {
        let principal =
            authenticator().verify(&mint_hs256(SECRET, "alice", true, Duration::from_secs(60))).await.unwrap();
        assert_eq!(principal.customer_id.as_str(), "alice");
        assert!(principal.is_admin);
        let plain = authenticator().verify(&mint_hs256(SECRET, "bob", false, Duration::from_secs(60))).await.unwrap();
        assert!(!plain.is_admin);
    }

    #[tokio::test]
    async fn refuses_expired_unsigned_and_foreign_tokens() {
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
            assert!(matches!(a.verify(&token).await, Err(ApiError::Unauthorized(_))), "{token}");
        }
    }

    #[tokio::test]
    async fn a_configured_audience_and_issuer_must_be_present() {
        let config = AuthConfig {
            keys: KeyConfig::Hs256(vec![SECRET.to_vec()]),
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
        assert!(
            a.verify(&claims(serde_json::json!({"aud": "orderly", "iss": "https://issuer.example"}))).await.is_ok()
        );
        for bad in [
            serde_json::json!({"iss": "https://issuer.example"}),
            serde_json::json!({"aud": "orderly"}),
            serde_json::json!({"aud": "other", "iss": "https://issuer.example"}),
            serde_json::json!({"aud": "orderly", "iss": "https://evil.example"}),
        ] {
            assert!(a.verify(&claims(bad.clone())).await.is_err(), "{bad}");
        }
    }

    #[test]
    fn short_secrets_are_refused_at_start() {
        let weak =
            AuthConfig { keys: KeyConfig::Hs256(vec![SECRET.to_vec(), b"short".to_vec()]), ..Default::default() };
        assert_eq!(Authenticator::new(&weak).unwrap_err(), AuthError::WeakSecret);
        assert_eq!(Authenticator::new(&AuthConfig::default()).unwrap_err(), AuthError::NoKeys);
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let config = AuthConfig { keys: KeyConfig::Hs256(vec![SECRET.to_vec()]), ..Default::default() };
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
    }

    #[tokio::test]
    async fn during_a_rotation_tokens_of_every_configured_secret_verify() {
        let previous = b"the-previous-secret-the-previous-secret".to_vec();
        let config =
            AuthConfig { keys: KeyConfig::Hs256(vec![SECRET.to_vec(), previous.clone()]), ..Default::default() };
        let a = Authenticator::new(&config).unwrap();
        for secret in [SECRET, previous.as_slice()] {
            assert!(a.verify(&mint_hs256(secret, "alice", false, Duration::from_secs(60))).await.is_ok());
        }
        let stranger = mint_hs256(b"a-third-secret-nobody-configured-xx", "alice", false, Duration::from_secs(60));
        assert!(matches!(a.verify(&stranger).await, Err(ApiError::Unauthorized(why)) if why.contains("bad signature")));
        // An expired token of the old secret is refused as expired, not retried as a bad signature.
        let expired = encode(Header::default(), serde_json::json!({"sub":"a","exp": now() - 5}), &previous);
        assert!(matches!(a.verify(&expired).await, Err(ApiError::Unauthorized(why)) if why.contains("expired")));
    }

    mod jwks {
        use std::sync::Arc;

        use jsonwebtoken::jwk::JwkSet;

        use super::*;
        use crate::secrets::tests::{ManualClock, Source};

        const KEY_A: &str = include_str!("../../../../tests/fixtures/rsa-private.pem");
        const KEY_B: &str = include_str!("../../../../tests/fixtures/rsa-other-private.pem");

        fn jwks(keys: &[(&str, &str)]) -> String {
            let keys = keys
                .iter()
                .map(|(kid, pem)| {
                    let mut jwk = identity_provider::rsa_jwk(&EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap());
                    jwk.common.key_id = Some((*kid).to_owned());
                    jwk
                })
                .collect();
            serde_json::to_string(&JwkSet { keys }).unwrap()
        }

        fn token(kid: &str, pem: &str) -> String {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(kid.to_owned());
            let claims = serde_json::json!({"sub": "alice", "exp": now() + 600});
            identity_provider::sign(&header, &claims, &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap())
        }

        fn fetched(source: &Arc<Source>, clock: &Arc<ManualClock>) -> Authenticator {
            let policy = RefreshPolicy { max_age: Duration::from_secs(300), min_interval: Duration::from_secs(5) };
            let keys =
                KeyConfig::Fetched { fetcher: source.clone(), kind: KeyKind::Jwks, policy, clock: clock.clone() };
            Authenticator::new(&AuthConfig { keys, ..Default::default() }).unwrap()
        }

        #[tokio::test]
        async fn the_kid_picks_the_key() {
            let a = Authenticator::new(&AuthConfig {
                keys: KeyConfig::Jwks(jwks(&[("a", KEY_A), ("b", KEY_B)])),
                ..Default::default()
            })
            .unwrap();
            assert!(a.verify(&token("a", KEY_A)).await.is_ok());
            assert!(a.verify(&token("b", KEY_B)).await.is_ok());
            assert!(a.verify(&token("b", KEY_A)).await.is_err(), "kid b, signed with a");
            assert!(
                matches!(a.verify(&token("c", KEY_A)).await, Err(ApiError::Unauthorized(why)) if why.contains("unknown key id"))
            );
        }

        #[tokio::test]
        async fn an_unknown_kid_refetches_the_jwks_at_most_once_per_interval() {
            let (source, clock) = (Source::serving(&jwks(&[("a", KEY_A)])), Arc::new(ManualClock::default()));
            let a = fetched(&source, &clock);
            assert!(a.verify(&token("a", KEY_A)).await.is_ok());
            // The identity provider adds key b; the first token with it comes
            // within the refetch interval of the last fetch.
            source.set(Ok(&jwks(&[("a", KEY_A), ("b", KEY_B)])));
            assert!(a.verify(&token("b", KEY_B)).await.is_err(), "refetched too recently");
            clock.advance(Duration::from_secs(5));
            assert!(a.verify(&token("b", KEY_B)).await.is_ok(), "refetched: the new kid verifies");
            // Made-up kids cost one fetch per interval, not one per request.
            let before = source.fetches();
            for _ in 0..20 {
                assert!(a.verify(&token("made-up", KEY_A)).await.is_err());
            }
            assert_eq!(source.fetches(), before);
        }

        #[tokio::test]
        async fn a_key_removed_from_the_jwks_is_refused_once_the_copy_expires() {
            let (source, clock) =
                (Source::serving(&jwks(&[("a", KEY_A), ("b", KEY_B)])), Arc::new(ManualClock::default()));
            let a = fetched(&source, &clock);
            assert!(a.verify(&token("a", KEY_A)).await.is_ok());
            source.set(Ok(&jwks(&[("b", KEY_B)])));
            clock.advance(Duration::from_secs(299));
            assert!(a.verify(&token("a", KEY_A)).await.is_ok(), "the cached copy has not expired");
            clock.advance(Duration::from_secs(1));
            assert!(a.verify(&token("a", KEY_A)).await.is_err(), "expired: refetched without key a");
            assert!(a.verify(&token("b", KEY_B)).await.is_ok());
        }

        #[tokio::test]
        async fn keys_that_cannot_be_fetched_at_all_are_a_503_not_a_401() {
            let (source, clock) = (Source::serving(""), Arc::new(ManualClock::default()));
            source.set(Err("connection refused"));
            let a = fetched(&source, &clock);
            assert!(matches!(a.verify(&token("a", KEY_A)).await, Err(ApiError::Unavailable { .. })));
        }
    }
}
