//! Transport security (contract §9): the runner's HTTPS and mutual TLS, and
//! the webhook's client certificate. The CA and every certificate are made
//! here at run time (rcgen); none is committed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orderly_adapters::webhook::WebhookProvider;
use orderly_core::ports::{Notification, NotificationProvider};
use orderly_core::settings::{OutboundTls, ServerTls};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use reqwest::StatusCode;
use tokio::io::AsyncReadExt;

use crate::helpers::spawn_local_app_with;

/// A test PKI in a temporary directory: a CA, a server certificate for
/// localhost signed by it, a client certificate signed by it, and a client
/// certificate of another CA.
struct Pki {
    dir: tempfile::TempDir,
}

fn write(dir: &std::path::Path, name: &str, pem: &str) {
    std::fs::write(dir.join(name), pem).unwrap();
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            (params, key, cert)
        };
        let leaf = |names: &[&str], client: bool, issuer: &Issuer<'_, &KeyPair>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
            params.extended_key_usages =
                vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
            (params.signed_by(&key, issuer).unwrap(), key)
        };
        let (ca_params, ca_key, ca_cert) = ca("Orderly test CA");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let (server, server_key) = leaf(&["localhost", "127.0.0.1"], false, &issuer);
        let (client, client_key) = leaf(&["client.orderly.test"], true, &issuer);
        let (other_params, other_key, _) = ca("Someone else's CA");
        let (stranger, stranger_key) = leaf(&["stranger.test"], true, &Issuer::from_params(&other_params, &other_key));
        let path = dir.path();
        write(path, "ca.pem", &ca_cert.pem());
        write(path, "server.pem", &server.pem());
        write(path, "server-key.pem", &server_key.serialize_pem());
        write(path, "client.pem", &client.pem());
        write(path, "client-key.pem", &client_key.serialize_pem());
        write(path, "stranger.pem", &stranger.pem());
        write(path, "stranger-key.pem", &stranger_key.serialize_pem());
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    fn server_tls(&self, require_client_certificates: bool) -> ServerTls {
        ServerTls {
            cert: self.path("server.pem"),
            key: self.path("server-key.pem"),
            client_ca: require_client_certificates.then(|| self.path("ca.pem")),
        }
    }

    /// A client trusting only the test CA, presenting `identity` (cert, key) if given.
    fn client(&self, identity: Option<(&str, &str)>) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&self.read("ca.pem")).unwrap();
        let mut builder = reqwest::Client::builder().tls_certs_only([ca]).timeout(Duration::from_secs(10));
        if let Some((cert, key)) = identity {
            let mut pem = self.read(cert);
            pem.extend(self.read(key));
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }
}

#[tokio::test]
async fn with_a_certificate_and_key_the_runner_serves_https() {
    let pki = Pki::new();
    let Some(app) =
        spawn_local_app_with("it configures the runner's TLS", |config| config.tls = Some(pki.server_tls(false))).await
    else {
        return;
    };
    let https = format!("https://localhost:{}/health", app.runner().addr().port());
    let response = pki.client(None).get(&https).send().await.expect("an HTTPS request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(app.client.get(app.url("/health")).send().await.is_err(), "plain HTTP is not served");
}

#[tokio::test]
async fn with_a_client_ca_a_client_without_a_certificate_of_that_ca_fails_the_handshake() {
    let pki = Pki::new();
    let Some(app) =
        spawn_local_app_with("it configures the runner's TLS", |config| config.tls = Some(pki.server_tls(true))).await
    else {
        return;
    };
    let https = format!("https://localhost:{}/health", app.runner().addr().port());
    let with_ours = pki.client(Some(("client.pem", "client-key.pem"))).get(&https).send().await;
    assert_eq!(with_ours.expect("a client certificate of our CA is accepted").status(), StatusCode::OK);
    let without = pki.client(None).get(&https).send().await;
    assert!(without.is_err(), "no client certificate: {without:?}");
    let stranger = pki.client(Some(("stranger.pem", "stranger-key.pem"))).get(&https).send().await;
    assert!(stranger.is_err(), "a certificate of another CA: {stranger:?}");
    // The server is still up for the right client.
    let again = pki.client(Some(("client.pem", "client-key.pem"))).get(&https).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

/// The container image's HEALTHCHECK is `orderly health`: it must still
/// answer once the runner serves HTTPS and requires client certificates.
#[tokio::test]
async fn the_health_command_checks_a_runner_that_serves_mutual_tls() {
    let pki = Pki::new();
    let tls = pki.server_tls(true);
    let Some(app) =
        spawn_local_app_with("it configures the runner's TLS", |config| config.tls = Some(tls.clone())).await
    else {
        return;
    };
    let url = orderly::health_check::health_url(app.runner().addr(), true);
    let outbound = OutboundTls {
        cert: Some(pki.path("client.pem").display().to_string()),
        key: Some(pki.path("client-key.pem").display().to_string()),
        ca: None,
    };
    let body = orderly::health_check::check(&url, Duration::from_secs(5), Some(&tls), &outbound).await.unwrap();
    assert!(body.contains("\"status\""), "{body}");
    let without_certificate = orderly::health_check::check(&url, Duration::from_secs(5), None, &outbound).await;
    assert!(without_certificate.is_err(), "plain HTTP to an HTTPS listener fails");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_dropped_after_the_header_timeout() {
    let pki = Pki::new();
    let Some(app) = spawn_local_app_with("it configures the runner's TLS", |config| {
        config.tls = Some(pki.server_tls(true));
        config.header_timeout = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    let mut socket = tokio::net::TcpStream::connect(app.runner().addr()).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the server closes the connection: {read:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
}

/// An HTTPS webhook receiver that requires client certificates of the test
/// CA (the runner's own acceptor, the one under test above), counting the
/// deliveries that got through.
async fn receiver_requiring_client_certificates(pki: &Pki) -> (String, Arc<AtomicUsize>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let acceptor = orderly::tls::acceptor(&pki.server_tls(true)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}/hook", listener.local_addr().unwrap().port());
    let delivered = Arc::new(AtomicUsize::new(0));
    let counter = delivered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else { return };
                let service = hyper::service::service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut response = hyper::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
                    *response.status_mut() = hyper::StatusCode::NO_CONTENT;
                    std::future::ready(Ok::<_, std::convert::Infallible>(response))
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (url, delivered)
}

fn notification() -> Notification {
    Notification {
        id: uuid::Uuid::now_v7(),
        kind: "order.confirmed.v1".into(),
        order_id: "o-1".into(),
        customer_id: "alice".into(),
        status: "confirmed".into(),
        total: "3.00".into(),
        currency: "EUR".into(),
        message: "Your order o-1 is confirmed.".into(),
    }
}

#[tokio::test]
async fn the_webhook_presents_its_client_certificate_to_a_receiver_that_requires_one() {
    let pki = Pki::new();
    let (url, delivered) = receiver_requiring_client_certificates(&pki).await;
    let path = |name: &str| Some(pki.path(name).display().to_string());
    let with_certificate = OutboundTls { cert: path("client.pem"), key: path("client-key.pem"), ca: path("ca.pem") };
    let webhook = WebhookProvider::with_tls(&url, Duration::from_secs(5), true, &with_certificate).unwrap();
    webhook.send(&notification()).await.expect("delivered over mutual TLS");
    assert_eq!(delivered.load(Ordering::SeqCst), 1);

    // The PEM text itself works as well as a file (Lambda's environment).
    let inline = OutboundTls {
        cert: Some(String::from_utf8(pki.read("client.pem")).unwrap()),
        key: Some(String::from_utf8(pki.read("client-key.pem")).unwrap()),
        ca: Some(String::from_utf8(pki.read("ca.pem")).unwrap()),
    };
    let webhook = WebhookProvider::with_tls(&url, Duration::from_secs(5), true, &inline).unwrap();
    webhook.send(&notification()).await.expect("delivered with inline PEM settings");

    let without = OutboundTls { ca: path("ca.pem"), ..OutboundTls::default() };
    let webhook = WebhookProvider::with_tls(&url, Duration::from_secs(5), true, &without).unwrap();
    assert!(webhook.send(&notification()).await.is_err(), "no client certificate: refused");
    assert_eq!(delivered.load(Ordering::SeqCst), 2);
}
