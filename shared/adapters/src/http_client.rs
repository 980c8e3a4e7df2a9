//! The native HTTP client every outbound adapter shares (reqwest over
//! rustls), built in one place so that what a security review asks of
//! outbound calls holds for each of them — the webhook, the JWKS fetch, a
//! payment gateway:
//!
//! - **Mutual TLS.** With `outbound_tls_cert` + `outbound_tls_key` every
//!   HTTPS call presents that client certificate; `outbound_tls_ca` adds
//!   CA certificates to the trusted roots (a partner's private CA). Each
//!   setting is a PEM file or the PEM text itself (a Lambda function has no
//!   files of its own: the text comes from its environment). Inside a Spin
//!   component the host makes the call (wasi:http) and its runtime
//!   configuration decides what is presented (`[[client_tls]]` in Spin's
//!   runtime config: `cert_chain`, `private_key`, `ca_roots` per host).
//! - **No redirects**: the operator chose the URL, not whoever answers it.
//! - **SSRF guard** where asked ([`ClientOptions::outward_only`]): names
//!   resolving to internal addresses are refused at connection time.
//!
//! [`UrlFetcher`] is the native [`SecretFetcher`] over it: a JWKS URL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderly_core::ports::{FetchError, SecretFetcher};
use orderly_core::settings::OutboundTls;

use crate::webhook::OutwardOnly;

/// How one client is built.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub tls: OutboundTls,
    /// Refuse names that resolve to internal addresses (SSRF guard).
    pub outward_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{setting}: {problem}")]
    Tls { setting: &'static str, problem: String },
    #[error("could not build the HTTP client: {0}")]
    Build(String),
}

/// A PEM setting's bytes: the text itself, else the file it names.
pub fn pem(setting: &'static str, value: &str) -> Result<Vec<u8>, ClientError> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    // The value is not repeated: a key pasted with something before its
    // BEGIN line would land in a log.
    std::fs::read(value).map_err(|e| ClientError::Tls {
        setting,
        problem: format!("neither PEM text (starting with -----BEGIN) nor a readable file: {e}"),
    })
}

/// The shared client construction.
pub fn client(options: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if options.outward_only {
        // Through a proxy (HTTP(S)_PROXY), the resolver would judge the
        // proxy's address, not the target's: the guard needs direct calls.
        builder = builder.dns_resolver(Arc::new(OutwardOnly)).no_proxy();
    }
    let tls = &options.tls;
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        let mut both = pem("ORDERLY_OUTBOUND_TLS_CERT", cert)?;
        both.push(b'\n');
        both.extend(pem("ORDERLY_OUTBOUND_TLS_KEY", key)?);
        let identity = reqwest::Identity::from_pem(&both)
            .map_err(|e| ClientError::Tls { setting: "ORDERLY_OUTBOUND_TLS_CERT", problem: e.to_string() })?;
        builder = builder.identity(identity);
    }
    if let Some(ca) = &tls.ca {
        let roots = reqwest::Certificate::from_pem_bundle(&pem("ORDERLY_OUTBOUND_TLS_CA", ca)?)
            .map_err(|e| ClientError::Tls { setting: "ORDERLY_OUTBOUND_TLS_CA", problem: e.to_string() })?;
        builder = builder.tls_certs_merge(roots);
    }
    builder.build().map_err(|e| ClientError::Build(e.to_string()))
}

/// A document at a URL (an identity provider's JWKS), fetched with `GET`.
#[derive(Debug, Clone)]
pub struct UrlFetcher {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
}

impl UrlFetcher {
    pub fn new(client: reqwest::Client, url: &str, timeout: Duration) -> Self {
        Self { client, url: url.to_owned(), timeout }
    }
}

#[async_trait]
impl SecretFetcher for UrlFetcher {
    fn describe(&self) -> String {
        self.url.clone()
    }

    async fn fetch(&self) -> Result<String, FetchError> {
        let failed = |e: reqwest::Error| FetchError(e.without_url().to_string());
        let response = self.client.get(&self.url).timeout(self.timeout).send().await.map_err(failed)?;
        let response = response.error_for_status().map_err(failed)?;
        response.text().await.map_err(failed)
    }
}
