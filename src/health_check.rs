//! `orderly health`: the runner's health check, answered by the binary itself.
//!
//! A container image built `FROM scratch` has no shell, curl or wget for a
//! `HEALTHCHECK` to call, so the image's check is this subcommand: it GETs
//! `/health` of the runner listening on the configured address (its
//! loopback when that address is a wildcard, as inside a container) and
//! exits non-zero unless the answer is a success. `degraded` is still a
//! 200: the process is up and serving; only a dead store (503) or no
//! answer at all fail the check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use orderly_core::settings::{OutboundTls, ServerTls};

/// Where to reach a runner that listens on `addr` (`https` when it serves
/// TLS): a wildcard address is reached on the loopback of the same family.
pub fn health_url(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}/health", SocketAddr::new(ip, addr.port()))
}

/// The client that checks a runner serving `tls`. Its certificate names
/// the service, not the loopback the check calls, so it is not verified:
/// the check only asks whether the process answers, and sends nothing
/// secret. When the runner requires client certificates, the check
/// presents the outbound one (`outbound_tls_cert`/`_key`), else the
/// runner's own pair (which works when the client CA signed it for client
/// authentication too).
fn client(timeout: Duration, tls: Option<&ServerTls>, outbound: &OutboundTls) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(tls) = tls {
        builder = builder.danger_accept_invalid_certs(true);
        if tls.client_ca.is_some() {
            use orderly_adapters::http_client::pem;
            let (cert, key) = match (&outbound.cert, &outbound.key) {
                (Some(cert), Some(key)) => {
                    (pem("ORDERLY_OUTBOUND_TLS_CERT", cert)?, pem("ORDERLY_OUTBOUND_TLS_KEY", key)?)
                }
                _ => (std::fs::read(&tls.cert)?, std::fs::read(&tls.key)?),
            };
            builder = builder.identity(reqwest::Identity::from_pem(&[cert, b"\n".to_vec(), key].concat())?);
        }
    }
    Ok(builder.build()?)
}

/// GETs `url`; the body when the runner answered with a success, else why not.
pub async fn check(
    url: &str,
    timeout: Duration,
    tls: Option<&ServerTls>,
    outbound: &OutboundTls,
) -> anyhow::Result<String> {
    let client = client(timeout, tls, outbound)?;
    let response = client.get(url).send().await.map_err(|e| anyhow::anyhow!("{url}: no answer: {e}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("{url}: {status}: {body}");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_address_is_checked_on_the_loopback_of_its_family() {
        assert_eq!(health_url("0.0.0.0:8080".parse().unwrap(), false), "http://127.0.0.1:8080/health");
        assert_eq!(health_url("[::]:8080".parse().unwrap(), false), "http://[::1]:8080/health");
        assert_eq!(health_url("10.1.2.3:9000".parse().unwrap(), false), "http://10.1.2.3:9000/health");
        assert_eq!(health_url("0.0.0.0:8443".parse().unwrap(), true), "https://127.0.0.1:8443/health");
    }
}
