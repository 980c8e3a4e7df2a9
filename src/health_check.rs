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

/// Where to reach a runner that listens on `addr`: a wildcard address is
/// reached on the loopback of the same family.
pub fn health_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/health", SocketAddr::new(ip, addr.port()))
}

/// GETs `url`; the body when the runner answered with a success, else why not.
pub async fn check(url: &str, timeout: Duration) -> anyhow::Result<String> {
    let client = reqwest::Client::builder().timeout(timeout).build()?;
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
        assert_eq!(health_url("0.0.0.0:8080".parse().unwrap()), "http://127.0.0.1:8080/health");
        assert_eq!(health_url("[::]:8080".parse().unwrap()), "http://[::1]:8080/health");
        assert_eq!(health_url("10.1.2.3:9000".parse().unwrap()), "http://10.1.2.3:9000/health");
    }
}
