//! HTTPS and mutual TLS on the runner (rustls).
//!
//! With `tls_cert` + `tls_key` the runner serves HTTPS only; with
//! `tls_client_ca` too, a client must present a certificate signed by that
//! CA or the handshake fails: zero trust at the edge, not only in the JWT.
//! The handshake runs in the connection's own task, bounded by the header
//! timeout, so a client that opens a socket and never finishes its
//! handshake costs one task for that long, and never blocks `accept`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use orderly_core::settings::ServerTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

fn certificates(path: &Path, setting: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("{setting}: reading certificates from {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{setting}: no certificate in {}", path.display());
    Ok(certs)
}

/// The acceptor the settings describe. Every file is read and checked here:
/// a wrong one fails the start, not a handshake.
pub fn acceptor(tls: &ServerTls) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certificates(&tls.cert, "ORDERLY_TLS_CERT")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("ORDERLY_TLS_KEY: reading a private key from {}", tls.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &tls.client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(path, "ORDERLY_TLS_CLIENT_CA")? {
                roots.add(ca).context("ORDERLY_TLS_CLIENT_CA: not a usable CA certificate")?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("ORDERLY_TLS_CLIENT_CA")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_single_cert(chain, key).context("ORDERLY_TLS_CERT / ORDERLY_TLS_KEY: not a matching pair")?;
    // The server speaks HTTP/1.1 only (hyper's http2 is not built in).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
