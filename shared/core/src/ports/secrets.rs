use async_trait::async_trait;

/// Fetches the current text of something that rotates: a JWKS document at
/// the identity provider, an SSM parameter, a Spin variable. One call, no
/// caching: how often to ask is [`crate::secrets::Refreshing`]'s policy, the
/// same on every host.
#[async_trait]
pub trait SecretFetcher: Send + Sync {
    /// What is fetched, for logs (a URL or a parameter name, never a value).
    fn describe(&self) -> String;

    async fn fetch(&self) -> Result<String, FetchError>;
}

/// Why a fetch failed; never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);
