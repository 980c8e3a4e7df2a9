//! # Settings: one model for every host
//!
//! Every setting is declared once, in [`SETTINGS`]: its key, its default,
//! what it means and which hosts read it. Each host only says where values
//! come from, through the [`ConfigSource`] port:
//!
//! | host | source | `notify_timeout` is spelled |
//! |---|---|---|
//! | local runner | flags, then the environment | `--notify-timeout 2s`, `ORDERLY_NOTIFY_TIMEOUT=2s` |
//! | Lambda | the environment (`template.yaml`) | `ORDERLY_NOTIFY_TIMEOUT=2s` |
//! | Spin | Spin variables (`spin.toml`), or the environment under `wasmtime serve` | `notify_timeout = "2s"` |
//!
//! [`Settings::load`] reads them all with one parser per type, so a value
//! means the same on every host: durations are humantime (`500ms`, `2s`,
//! `1m`), switches `on`/`off`, limits `rate/s:burst`. A default is text in
//! the table, parsed by the same parser as a user's value: it cannot drift
//! from the documentation, which is generated from the table too
//! ([`markdown_table`], the README's configuration section).
//!
//! Older names keep working as [`Alias`]es: the deployed stacks' millisecond
//! numbers (`notify_timeout_ms = "2000"`, declared by `spin.toml` and used by
//! existing Spin deployments) are read when the new name is unset.
//!
//! Reading settings makes no call and checks everything at once: a wrong
//! value fails the start (or a Lambda init), not a request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::events::routing::Consumer;
use crate::http::{AuthConfig, KeyConfig, RateLimitPolicy};
use crate::messaging::Backoff;
use crate::resilience::breaker::BreakerPolicy;
use crate::resilience::rate_limit::Bucket;
use crate::secrets::RefreshPolicy;
use crate::signing::WebhookSecret;

/// Where settings come from. Keys are `snake_case` (`table_orders`): a Spin
/// variable of that name, the environment variable `ORDERLY_TABLE_ORDERS`,
/// or the runner's flag `--table-orders`.
pub trait ConfigSource {
    /// The value, or `None` when unset or empty.
    fn get(&self, key: &str) -> Option<String>;
}

/// `ORDERLY_<KEY>` from the process environment (`wasi:cli/environment`
/// inside a component).
#[derive(Debug, Clone, Copy, Default)]
pub struct Environment;

/// Messages per receive: the runner's queue takes up to 256 at once.
fn batch_size(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(n @ 1..=256) => Ok(n),
        _ => Err(format!("{raw:?} is not a number from 1 to 256")),
    }
}

/// `none`, or consumers by their queue's name, comma-separated.
fn consumers(raw: &str) -> Result<Vec<Consumer>, String> {
    let names: Vec<&str> = raw.split(',').map(str::trim).filter(|name| !name.is_empty()).collect();
    if names == ["none"] {
        return Ok(Vec::new());
    }
    names
        .into_iter()
        .map(|name| match name {
            "none" => Err("`none` runs no consumer, so it cannot be listed with one".to_owned()),
            name => Consumer::from_queue(name).ok_or_else(|| {
                let known: Vec<&str> = Consumer::ALL.iter().map(|c| c.queue()).collect();
                format!("no consumer named {name:?} (known: {}, or `none`)", known.join(", "))
            }),
        })
        .collect()
}

impl ConfigSource for Environment {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(env_name(key)).ok().filter(|v| !v.is_empty())
    }
}

/// Values from a map (tests, or a host that collected them itself).
impl ConfigSource for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).filter(|v| !v.is_empty()).cloned()
    }
}

/// `ORDERLY_NOTIFY_TIMEOUT` for `notify_timeout`.
pub fn env_name(key: &str) -> String {
    format!("ORDERLY_{}", key.to_ascii_uppercase())
}

/// `notify-timeout` for `notify_timeout` (the runner's `--notify-timeout`).
pub fn flag_name(key: &str) -> String {
    key.replace('_', "-")
}

/// Which hosts read a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosts {
    All,
    /// The local runner only (its server, SQLite, its consumer loops).
    Runner,
    /// Lambda and Spin (DynamoDB + SQS).
    Aws,
    /// Lambda only.
    Lambda,
    /// The runner and Lambda (native processes).
    Native,
}

impl Hosts {
    pub fn label(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Runner => "runner",
            Self::Aws => "Lambda, Spin",
            Self::Lambda => "Lambda",
            Self::Native => "runner, Lambda",
        }
    }
}

/// An older name still read when the setting itself is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias {
    pub key: &'static str,
    /// A number of milliseconds (the old `_ms` spelling of a duration).
    pub millis: bool,
}

/// One setting's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    /// The default as a user would write it; empty: unset.
    pub default: &'static str,
    pub meaning: &'static str,
    pub hosts: Hosts,
    /// Never shown in `--help` values or logs.
    pub secret: bool,
    pub alias: Option<Alias>,
}

const fn setting(key: &'static str, default: &'static str, hosts: Hosts, meaning: &'static str) -> Setting {
    Setting { key, default, meaning, hosts, secret: false, alias: None }
}

const fn secret(key: &'static str, hosts: Hosts, meaning: &'static str) -> Setting {
    Setting { key, default: "", meaning, hosts, secret: true, alias: None }
}

/// A duration whose deployed stacks still pass the old `<key>_ms` number.
const fn duration_with_ms_alias(
    key: &'static str,
    alias: &'static str,
    default: &'static str,
    hosts: Hosts,
    meaning: &'static str,
) -> Setting {
    Setting { key, default, meaning, hosts, secret: false, alias: Some(Alias { key: alias, millis: true }) }
}

use Hosts::{All, Aws, Lambda, Native, Runner};

/// Most DynamoDB items one product's stock may be spread over: a product's
/// create writes all of them in one transaction (at most 100 items).
pub const MAX_STOCK_SHARDS: u32 = 32;

/// Every setting, in the order the README lists them.
pub const SETTINGS: &[Setting] = &[
    // The runner's server and store.
    setting("addr", "127.0.0.1:8080", Runner, "where the HTTP API listens"),
    setting("data_dir", ".orderly", Runner, "SQLite database and the generated development secret"),
    setting(
        "sqlite_sync",
        "normal",
        Runner,
        "`normal`: survives kill -9; `full`: fsync per commit, survives power loss",
    ),
    setting(
        "header_timeout",
        "10s",
        Runner,
        "longest a client may take to send a request's headers (slow-loris guard)",
    ),
    setting("body_timeout", "10s", Runner, "longest a client may take to send a request's body"),
    setting("tls_cert", "", Runner, "PEM certificate chain: serve HTTPS (with `tls_key`)"),
    setting("tls_key", "", Runner, "PEM private key of `tls_cert`"),
    setting(
        "tls_client_ca",
        "",
        Runner,
        "PEM CA certificate(s): require client certificates signed by them (mutual TLS); needs `tls_cert`",
    ),
    setting(
        "consumers",
        "order-intake,inventory,notification,analytics",
        Runner,
        "which queue consumers this process runs (comma-separated, or `none`): consumers can be scaled or stopped separately",
    ),
    setting("log", "info", Native, "log filter (tracing EnvFilter syntax), e.g. `info` or `orderly=debug`"),
    setting(
        "handled_log_share",
        "1",
        All,
        "share of successful `event handled` log lines kept (0..=1), sampled by trace so that a kept order is logged at every hop; failures and warnings are always logged, metrics count every event",
    ),
    setting(
        "otlp_endpoint",
        "",
        Runner,
        "OTLP/HTTP endpoint for traces (e.g. http://127.0.0.1:4318); unset: no export",
    ),
    // Identity.
    secret(
        "jwt_secret",
        All,
        "HS256 secret, at least 32 bytes (a JWKS setting, when set, wins on every host); unset on the runner: generated once into the data dir",
    ),
    secret(
        "jwt_previous_secrets",
        All,
        "older HS256 secrets still accepted during a rotation, comma-separated (tokens are signed with `jwt_secret`)",
    ),
    setting(
        "jwt_secret_parameter",
        "",
        Lambda,
        "the SSM SecureString holding the HS256 secret(s), comma-separated, current first; re-read after `secret_max_age`",
    ),
    setting("jwks", "", All, "RS256 instead: the identity provider's JWKS, inline JSON"),
    setting("jwks_file", "", Runner, "RS256 instead: a JWKS file with the public keys"),
    setting(
        "jwks_url",
        "",
        All,
        "RS256 instead: a JWKS URL, fetched on first use, again after `jwks_max_age`, and on an unknown `kid`",
    ),
    setting("jwks_max_age", "5m", All, "longest a fetched JWKS is used: a key removed from it is refused after this"),
    setting(
        "jwks_refetch_interval",
        "5s",
        All,
        "at most one JWKS refetch per interval when a token names an unknown `kid`",
    ),
    setting(
        "secret_max_age",
        "5m",
        Lambda,
        "longest a secret read from a store (SSM) is used before it is read again (a Spin component reads its variables per request)",
    ),
    setting("jwt_audience", "", All, "when set, tokens must carry this `aud`"),
    setting("jwt_issuer", "", All, "when set, tokens must carry this `iss`"),
    // The notification provider.
    secret("notify_url", All, "webhook that receives notifications (POST JSON); unset: recorded in the log only"),
    setting(
        "notify_url_parameter",
        "",
        Lambda,
        "the SSM SecureString holding the webhook URL, read on the first send and again after `secret_max_age`",
    ),
    secret(
        "webhook_secret",
        All,
        "Standard Webhooks signing secret (`whsec_<base64>`): every notification is signed; unset: unsigned",
    ),
    setting(
        "outbound_tls_cert",
        "",
        Native,
        "client certificate (PEM file, or the PEM itself) that outbound HTTPS calls present (mutual TLS)",
    ),
    secret("outbound_tls_key", Native, "private key (PEM file, or the PEM itself) of `outbound_tls_cert`"),
    setting(
        "outbound_tls_ca",
        "",
        Native,
        "extra CA certificate(s) (PEM file, or the PEM itself) trusted for outbound HTTPS, besides the system's",
    ),
    duration_with_ms_alias("notify_timeout", "notify_timeout_ms", "2s", All, "per-call timeout of the provider"),
    setting(
        "notify_allow_private",
        "off",
        Native,
        "let the webhook reach loopback/private/link-local addresses (off: SSRF guard)",
    ),
    // Payments (§6 of docs/contract.md).
    secret("payment_url", All, "card payment gateway base URL; unset: offline payments only (instructions)"),
    setting(
        "payment_url_parameter",
        "",
        Lambda,
        "the SSM SecureString holding the gateway URL, read on the first payment call",
    ),
    setting("payment_timeout", "2s", All, "per-call timeout of the payment gateway (then: offline instructions)"),
    setting("payment_breaker_threshold", "5", All, "consecutive gateway failures that open its circuit breaker"),
    setting("payment_breaker_cool_down", "30s", All, "how long the gateway's breaker stays open before a probe"),
    setting(
        "payment_instructions",
        "Pay {amount} {currency} by bank transfer to IBAN NL00 ORDR 0123 4567 89, quoting order {order_id}.",
        All,
        "offline payment instructions; `{order_id}`, `{amount}` and `{currency}` are filled in",
    ),
    // Popular products (§7).
    setting(
        "popular_timeout",
        "300ms",
        All,
        "longest the popular ranking waits for the read model before its fallback",
    ),
    setting("popular_fallback", "", All, "static popular list when no ranking was ever read: `SKU=Name;SKU=Name`"),
    // Queues and retries.
    setting("max_receives", "5", All, "deliveries before a message moves to its dead-letter queue (1 to 1000)"),
    setting("visibility_timeout", "10s", Runner, "how long a received message stays invisible"),
    duration_with_ms_alias(
        "retry_base",
        "retry_base_ms",
        "200ms",
        All,
        "first backoff between deliveries (doubles per attempt, jittered; SQS rounds up to whole seconds)",
    ),
    duration_with_ms_alias("retry_max", "retry_max_ms", "30s", All, "longest backoff between deliveries"),
    setting("batch_size", "32", Runner, "messages a consumer takes per receive (analytics: `analytics_batch_size`)"),
    setting(
        "analytics_batch_size",
        "256",
        Runner,
        "messages analytics takes per receive: it gets three events per order and applies a batch in writes of up to 100 items",
    ),
    setting("idle_poll", "1s", Runner, "longest an idle consumer sleeps (it is woken at once by a commit)"),
    // Rate limits.
    setting("rate_limit", "on", All, "token-bucket rate limits (`on`/`off`)"),
    setting("rate_limit_anon_read", "50/s:150", All, "anonymous reads, per client IP: `rate/s:burst` (or `/m`)"),
    setting("rate_limit_anon_write", "10/s:30", All, "anonymous writes, per client IP"),
    setting("rate_limit_auth_read", "200/s:400", All, "authenticated reads, per customer"),
    setting("rate_limit_auth_write", "100/s:200", All, "authenticated writes, per customer"),
    setting(
        "rate_limit_routes",
        "",
        All,
        "per-route limits: `POST /api/v1/orders=10/s:20,2/s:5; ...` (customers, then anonymous)",
    ),
    setting(
        "rate_limit_fail",
        "open",
        All,
        "when the limiter's store fails: `open` lets requests through, `closed` answers 503",
    ),
    // The provider's circuit breaker.
    setting(
        "breaker_threshold",
        "5",
        All,
        "consecutive provider failures (errors, timeouts, 5xx, 429) that open the breaker",
    ),
    duration_with_ms_alias(
        "breaker_cool_down",
        "breaker_cool_down_ms",
        "30s",
        All,
        "how long the breaker stays open before a probe",
    ),
    setting("breaker_probes", "1", All, "probes let through while half-open"),
    // The HTTP edge: caching of catalog reads and CORS (contract §8).
    setting(
        "catalog_max_age",
        "5s",
        All,
        "`Cache-Control: public, max-age` of catalog reads: how stale a browser or CDN copy may be",
    ),
    setting(
        "cors_origins",
        "",
        All,
        "browser origins allowed to call the API (comma-separated, e.g. `https://shop.example`); unset: no CORS",
    ),
    // The catalog cache.
    setting("cache", "on", Runner, "catalog cache (cache-aside for GET /api/v1/products/{sku}; `on`/`off`)"),
    setting(
        "cache_ttl",
        "5s",
        Runner,
        "longest a cached product may be served after a change whose invalidation was missed",
    ),
    setting("cache_entries", "10000", Runner, "most products cached"),
    // AWS (Lambda, and Spin components reaching DynamoDB + SQS).
    setting("aws_region", "us-east-1", Aws, "AWS region (Lambda: its own unless set)"),
    setting("aws_endpoint_url", "", Aws, "an emulator's endpoint, e.g. http://127.0.0.1:4566; unset: AWS itself"),
    secret("aws_access_key_id", Aws, "static credentials (a Spin component has no other source)"),
    secret("aws_secret_access_key", Aws, "static credentials"),
    secret("aws_session_token", Aws, "static credentials (temporary)"),
    setting("table_orders", "orderly-orders", Aws, "order-intake's table"),
    setting("table_inventory", "orderly-inventory", Aws, "inventory's table"),
    setting("table_notifications", "orderly-notifications", Aws, "notification's table"),
    setting("table_analytics", "orderly-analytics", Aws, "analytics' table"),
    setting(
        "store_retries",
        "6",
        Aws,
        "DynamoDB retries of a call that lost a race (TransactionConflict), was throttled or timed out; past them the delivery fails and its message returns to its queue",
    ),
    setting("store_retry_base", "10ms", Aws, "first pause before a DynamoDB retry (doubles per attempt, jittered)"),
    setting(
        "stock_shards",
        "1",
        Aws,
        "DynamoDB items a product's stock is spread over (1..=32): new products get this many, a restock grows older ones to it; ~500 reservations/s per item",
    ),
    setting(
        "stock_shards_max",
        "8",
        Aws,
        "a SKU whose reservations contend (lost races, drained items) doubles its stock items up to this many (1..=32); `stock_shards` or fewer: no automatic growth",
    ),
    setting(
        "outbox",
        "items",
        Aws,
        "where a DynamoDB write leaves its events: `items` (outbox items its relay polls: Spin) or `stream` (on the item it changes, relayed from the table's stream: Lambda; kept as outbox items only when publishing fails; a Spin component refuses it)",
    ),
    setting("queue_url_order_intake", "", Aws, "order-intake's queue"),
    setting("dlq_url_order_intake", "", Aws, "order-intake's dead-letter queue"),
    setting("queue_url_inventory", "", Aws, "inventory's queue"),
    setting("dlq_url_inventory", "", Aws, "inventory's dead-letter queue"),
    setting("queue_url_notification", "", Aws, "notification's queue"),
    setting("dlq_url_notification", "", Aws, "notification's dead-letter queue"),
    setting("queue_url_analytics", "", Aws, "analytics' queue"),
    setting("dlq_url_analytics", "", Aws, "analytics' dead-letter queue"),
];

/// The declaration of `key`. Every key [`Settings::load`] reads is declared
/// (a unit test loads them all).
pub fn declared(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// A setting that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {key} ({env}): {problem}")]
pub struct SettingError {
    pub key: String,
    pub env: String,
    pub problem: String,
}

impl SettingError {
    pub fn new(key: &str, problem: impl Into<String>) -> Self {
        Self { key: key.to_owned(), env: env_name(key), problem: problem.into() }
    }
}

/// SQLite durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    /// WAL, fsync at checkpoints: survives a killed process (kill -9).
    Normal,
    /// WAL, fsync every commit: also survives power loss.
    Full,
}

impl SqliteSync {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "normal" => Ok(Self::Normal),
            "full" => Ok(Self::Full),
            other => Err(format!("{other:?} is not normal or full")),
        }
    }

    /// What a commit survives, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Normal => "SQLite WAL, synchronous=NORMAL: a commit is in the WAL before the 202 (survives kill -9)",
            Self::Full => "SQLite WAL, synchronous=FULL: a commit is fsynced before the 202 (survives power loss)",
        }
    }
}

/// Where a DynamoDB write leaves the events it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxMode {
    /// Outbox items of their own in the same transaction, for a relay that
    /// polls them (every host can run it).
    Items,
    /// On the item the write changes, for a relay fed by the table's stream
    /// (Lambda): no outbox item to write and remove.
    Stream,
}

/// Table names on DynamoDB, one per function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub orders: String,
    pub inventory: String,
    pub notifications: String,
    pub analytics: String,
}

/// A consumer's queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub url: String,
    pub dead_letter_url: String,
}

/// How the AWS-backed hosts reach AWS (or an emulator).
#[derive(Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: String,
    /// Set explicitly (Lambda otherwise keeps its own `AWS_REGION`).
    pub region_set: bool,
    pub endpoint_url: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub tables: TableNames,
    /// Stock items per product (DynamoDB hot-SKU relief).
    pub stock_shards: u32,
    /// Most stock items a contended SKU grows to on its own.
    pub stock_shards_max: u32,
    /// DynamoDB retries (conflicts, throttling, timeouts) and their first pause.
    pub store_retries: u32,
    pub store_retry_base: Duration,
    /// Where order-intake's and inventory's writes leave their events.
    pub outbox: OutboxMode,
    /// By queue name (`order-intake`, ...): only the queues a component names.
    pub queues: BTreeMap<String, QueueUrls>,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field("tables", &self.tables)
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

/// Queues, deliveries and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub max_receives: u32,
    pub visibility_timeout: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub batch_size: u32,
    /// Analytics' own: it is sent three events per order and applies a
    /// batch in a few writes, so small batches leave it behind the saga.
    pub analytics_batch_size: u32,
    pub idle_poll: Duration,
    /// The consumers this process runs (the runner).
    pub consumers: Vec<Consumer>,
}

impl QueueSettings {
    /// How many messages `consumer` takes per receive.
    pub fn batch_size_for(&self, consumer: Consumer) -> usize {
        match consumer {
            Consumer::Analytics => self.analytics_batch_size as usize,
            _ => self.batch_size as usize,
        }
    }
}

/// Rate limits, the provider's breaker and the catalog cache.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceSettings {
    pub rate_limit: bool,
    pub rate_limit_anon_read: Bucket,
    pub rate_limit_anon_write: Bucket,
    pub rate_limit_auth_read: Bucket,
    pub rate_limit_auth_write: Bucket,
    /// Checked when loaded; parsed again by [`Settings::rate_limit_policy`].
    pub rate_limit_routes: String,
    pub rate_limit_fail_open: bool,
    pub breaker_threshold: u32,
    pub breaker_cool_down: Duration,
    pub breaker_probes: u32,
    pub cache: bool,
    pub cache_ttl: Duration,
    pub cache_entries: u64,
}

/// The card payment gateway, and what replaces it.
#[derive(Clone, PartialEq, Eq)]
pub struct PaymentSettings {
    pub url: Option<String>,
    pub url_parameter: Option<String>,
    pub timeout: Duration,
    pub breaker_threshold: u32,
    pub breaker_cool_down: Duration,
    /// With `{order_id}`, `{amount}`, `{currency}`.
    pub instructions: String,
}

impl PaymentSettings {
    /// Whether a gateway is configured (its URL, or where to read it).
    pub fn has_gateway(&self) -> bool {
        self.url.is_some() || self.url_parameter.is_some()
    }
}

impl std::fmt::Debug for PaymentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentSettings")
            .field("url", &self.url.as_ref().map(|_| "<secret>"))
            .field("url_parameter", &self.url_parameter)
            .field("timeout", &self.timeout)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cool_down", &self.breaker_cool_down)
            .finish_non_exhaustive()
    }
}

/// One entry of the static popular list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopularFallback {
    pub sku: crate::domain::Sku,
    pub name: String,
}

/// The popular ranking's fallback (§7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopularSettings {
    pub timeout: Duration,
    pub fallback: Vec<PopularFallback>,
}

/// `SKU=Name;SKU=Name`.
fn parse_popular_fallback(raw: &str) -> Result<Vec<PopularFallback>, String> {
    raw.split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (sku, name) = entry.split_once('=').ok_or_else(|| format!("{entry:?} is not SKU=Name"))?;
            let sku = crate::domain::Sku::parse(sku.trim()).map_err(|e| format!("{entry:?}: {e}"))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("{entry:?} has no name"));
            }
            Ok(PopularFallback { sku, name: name.to_owned() })
        })
        .collect()
}

/// The HTTP edge every host serves (contract §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSettings {
    /// How long catalog reads may be served from a cache unrevalidated.
    pub catalog_max_age: Duration,
    /// Origins (`scheme://host[:port]`) a browser may call the API from.
    pub cors_origins: Vec<String>,
}

/// `https://shop.example, http://localhost:3000`: each an origin as a
/// browser sends it (scheme, host, optional port; no path, no `*`).
pub fn parse_origins(raw: &str) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            let valid = rest.is_some_and(|host| {
                !host.is_empty()
                    && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
            });
            if valid {
                Ok(origin.to_owned())
            } else {
                Err(format!("{origin:?} is not an origin like https://shop.example or http://localhost:3000"))
            }
        })
        .collect()
}

/// HTTPS on the runner: PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by it.
    pub client_ca: Option<PathBuf>,
}

/// What outbound HTTPS calls present and trust: each a PEM file or the PEM
/// text itself (a Lambda environment has no files of its own).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OutboundTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub ca: Option<String>,
}

impl std::fmt::Debug for OutboundTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundTls")
            .field("cert", &self.cert.is_some())
            .field("key", &self.key.as_ref().map(|_| "<secret>"))
            .field("ca", &self.ca.is_some())
            .finish()
    }
}

/// Everything Orderly is configured with, on any host.
#[derive(Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub sqlite_sync: SqliteSync,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub tls: Option<ServerTls>,
    pub log: String,
    /// How many of the per-event success lines are logged.
    pub handled_log_share: Share,
    pub otlp_endpoint: Option<String>,

    pub jwt_secret: Option<String>,
    /// Older secrets still accepted, in order.
    pub jwt_previous_secrets: Vec<String>,
    pub jwt_secret_parameter: Option<String>,
    pub jwks: Option<String>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub jwks_max_age: Duration,
    pub jwks_refetch_interval: Duration,
    pub secret_max_age: Duration,
    pub jwt_audience: Option<String>,
    pub jwt_issuer: Option<String>,

    pub notify_url: Option<String>,
    pub notify_url_parameter: Option<String>,
    pub notify_timeout: Duration,
    pub notify_allow_private: bool,
    pub webhook_secret: Option<String>,
    pub outbound_tls: OutboundTls,

    pub payment: PaymentSettings,
    pub popular: PopularSettings,

    pub queues: QueueSettings,
    pub resilience: ResilienceSettings,
    pub edge: EdgeSettings,
    pub aws: AwsSettings,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<secret>");
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("jwt_secret", &hidden(&self.jwt_secret))
            .field("jwt_previous_secrets", &self.jwt_previous_secrets.len())
            .field("webhook_secret", &hidden(&self.webhook_secret))
            .field("tls", &self.tls)
            .field("outbound_tls", &self.outbound_tls)
            .field("jwks_url", &self.jwks_url)
            .field("notify_url", &hidden(&self.notify_url))
            .field("notify_timeout", &self.notify_timeout)
            .field("payment", &self.payment)
            .field("popular", &self.popular)
            .field("queues", &self.queues)
            .field("resilience", &self.resilience)
            .field("edge", &self.edge)
            .field("aws", &self.aws)
            .finish_non_exhaustive()
    }
}

/// Reads raw values: the key, else its alias (converted), else the default.
struct Reader<'a> {
    source: &'a dyn ConfigSource,
}

impl Reader<'_> {
    fn raw(&self, key: &str) -> Option<String> {
        let Some(setting) = declared(key) else {
            // A programming error, caught by the unit tests that load every setting.
            debug_assert!(false, "setting {key} is not declared in SETTINGS");
            return self.source.get(key);
        };
        if let Some(value) = self.source.get(key) {
            return Some(value);
        }
        if let Some(alias) = setting.alias
            && let Some(value) = self.source.get(alias.key)
        {
            return Some(if alias.millis { format!("{}ms", value.trim()) } else { value });
        }
        (!setting.default.is_empty()).then(|| setting.default.to_owned())
    }

    fn optional(&self, key: &str) -> Option<String> {
        self.raw(key)
    }

    fn text(&self, key: &str) -> String {
        self.raw(key).unwrap_or_default()
    }

    /// A comma-separated list, blanks dropped.
    fn list(&self, key: &str) -> Vec<String> {
        self.text(key).split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect()
    }

    fn parsed<T>(&self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, SettingError> {
        let raw = self.raw(key).ok_or_else(|| SettingError::new(key, "is not set"))?;
        parse(raw.trim()).map_err(|problem| SettingError::new(key, problem))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T, SettingError> {
        self.parsed(key, |raw| raw.parse().map_err(|_| format!("{raw:?} is not a whole number")))
    }

    fn duration(&self, key: &str) -> Result<Duration, SettingError> {
        self.parsed(key, parse_duration)
    }

    /// A duration where zero means nothing sensible (a timeout that fires at
    /// once, a poll or a backoff that spins, a refetch on every request).
    fn positive_duration(&self, key: &str) -> Result<Duration, SettingError> {
        self.parsed(key, |raw| match parse_duration(raw)? {
            Duration::ZERO => Err(format!("{raw:?} must be more than 0")),
            duration => Ok(duration),
        })
    }

    /// An optional `http://` or `https://` URL, checked when settings load
    /// rather than at its first call.
    fn optional_url(&self, key: &str) -> Result<Option<String>, SettingError> {
        self.optional(key)
            .map(|raw| parse_http_url(raw.trim()).map_err(|problem| SettingError::new(key, problem)))
            .transpose()
    }

    fn switch(&self, key: &str) -> Result<bool, SettingError> {
        self.parsed(key, parse_switch)
    }

    fn bucket(&self, key: &str) -> Result<Bucket, SettingError> {
        self.parsed(key, Bucket::parse)
    }
}

/// A share of something, from 0 (none) to 1 (all): `0.1`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Share(f64);

impl Share {
    pub const ALL: Self = Self(1.0);

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.parse::<f64>() {
            Ok(share) if (0.0..=1.0).contains(&share) => Ok(Self(share)),
            _ => Err(format!("{raw:?} is not a share between 0 and 1 (e.g. 0.1)")),
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// `500ms`, `2s`, `1m 30s` (humantime).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{raw:?}: {e} (examples: 500ms, 10s, 2m)"))
}

/// An absolute `http://` or `https://` URL with a host. The value is not
/// repeated in the error: such URLs are secrets (they may carry a token).
pub fn parse_http_url(raw: &str) -> Result<String, String> {
    // Parsed as the HTTP clients will (WHATWG: an IDN host, a path to encode).
    let url = url::Url::parse(raw).map_err(|_| "is not a URL".to_owned())?;
    match (url.scheme(), url.host_str()) {
        ("http" | "https", Some(host)) if !host.is_empty() => Ok(raw.to_owned()),
        _ => Err("is not an http:// or https:// URL with a host".into()),
    }
}

/// A count of DynamoDB stock items per product.
fn shard_count(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(n @ 1..=MAX_STOCK_SHARDS) => Ok(n),
        _ => Err(format!("{raw:?} is not a number from 1 to {MAX_STOCK_SHARDS}")),
    }
}

/// `on`/`off` (also `true`/`false`).
pub fn parse_switch(raw: &str) -> Result<bool, String> {
    match raw {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("{other:?} is not on or off")),
    }
}

impl Settings {
    /// Reads every setting from `source`; the first wrong one is the error.
    pub fn load(source: &dyn ConfigSource) -> Result<Self, SettingError> {
        let read = Reader { source };
        let mut queues = BTreeMap::new();
        for consumer in Consumer::ALL {
            // A component names only the queues it uses.
            let (url, dlq) = (queue_key("queue", consumer), queue_key("dlq", consumer));
            if let (Some(url), Some(dead_letter_url)) = (read.optional(&url), read.optional(&dlq)) {
                queues.insert(consumer.queue().to_owned(), QueueUrls { url, dead_letter_url });
            }
        }
        let settings = Self {
            addr: read.parsed("addr", |raw| raw.parse().map_err(|_| format!("{raw:?} is not host:port")))?,
            data_dir: PathBuf::from(read.text("data_dir")),
            sqlite_sync: read.parsed("sqlite_sync", SqliteSync::parse)?,
            header_timeout: read.positive_duration("header_timeout")?,
            body_timeout: read.positive_duration("body_timeout")?,
            tls: match (read.optional("tls_cert"), read.optional("tls_key"), read.optional("tls_client_ca")) {
                (None, None, None) => None,
                (Some(cert), Some(key), client_ca) => Some(ServerTls {
                    cert: PathBuf::from(cert),
                    key: PathBuf::from(key),
                    client_ca: client_ca.map(PathBuf::from),
                }),
                (None, Some(_), _) => return Err(SettingError::new("tls_cert", "is needed with tls_key")),
                (_, None, _) => return Err(SettingError::new("tls_key", "is needed with tls_cert and tls_client_ca")),
            },
            log: read.text("log"),
            handled_log_share: read.parsed("handled_log_share", Share::parse)?,
            otlp_endpoint: read.optional("otlp_endpoint"),
            jwt_secret: read.optional("jwt_secret"),
            jwt_previous_secrets: read.list("jwt_previous_secrets"),
            jwt_secret_parameter: read.optional("jwt_secret_parameter"),
            jwks: read.optional("jwks"),
            jwks_file: read.optional("jwks_file").map(PathBuf::from),
            jwks_url: read.optional("jwks_url"),
            jwks_max_age: read.positive_duration("jwks_max_age")?,
            jwks_refetch_interval: read.positive_duration("jwks_refetch_interval")?,
            secret_max_age: read.positive_duration("secret_max_age")?,
            jwt_audience: read.optional("jwt_audience"),
            jwt_issuer: read.optional("jwt_issuer"),
            notify_url: read.optional_url("notify_url")?,
            notify_url_parameter: read.optional("notify_url_parameter"),
            notify_timeout: read.positive_duration("notify_timeout")?,
            notify_allow_private: read.switch("notify_allow_private")?,
            payment: PaymentSettings {
                url: read.optional_url("payment_url")?,
                url_parameter: read.optional("payment_url_parameter"),
                timeout: read.positive_duration("payment_timeout")?,
                breaker_threshold: read.number::<u32>("payment_breaker_threshold")?.max(1),
                breaker_cool_down: read.positive_duration("payment_breaker_cool_down")?,
                instructions: read.parsed("payment_instructions", |raw| {
                    if raw.contains("{order_id}") {
                        Ok(raw.to_owned())
                    } else {
                        Err("must name the order: put {order_id} in it".into())
                    }
                })?,
            },
            popular: PopularSettings {
                timeout: read.positive_duration("popular_timeout")?,
                fallback: match read.optional("popular_fallback") {
                    None => Vec::new(),
                    Some(_) => read.parsed("popular_fallback", parse_popular_fallback)?,
                },
            },
            webhook_secret: match read.optional("webhook_secret") {
                Some(secret) => {
                    WebhookSecret::parse(&secret).map_err(|problem| SettingError::new("webhook_secret", problem))?;
                    Some(secret)
                }
                None => None,
            },
            outbound_tls: match (read.optional("outbound_tls_cert"), read.optional("outbound_tls_key")) {
                (Some(_), None) => {
                    return Err(SettingError::new("outbound_tls_key", "is needed with outbound_tls_cert"));
                }
                (None, Some(_)) => {
                    return Err(SettingError::new("outbound_tls_cert", "is needed with outbound_tls_key"));
                }
                (cert, key) => OutboundTls { cert, key, ca: read.optional("outbound_tls_ca") },
            },
            queues: QueueSettings {
                max_receives: read.parsed("max_receives", |raw| match raw.parse::<u32>() {
                    // SQS's own bound for a redrive policy's maxReceiveCount.
                    Ok(n @ 1..=1000) => Ok(n),
                    _ => Err(format!("{raw:?} is not a number from 1 to 1000")),
                })?,
                visibility_timeout: read.positive_duration("visibility_timeout")?,
                retry_base: read.positive_duration("retry_base")?,
                retry_max: read.positive_duration("retry_max")?,
                batch_size: read.parsed("batch_size", batch_size)?,
                analytics_batch_size: read.parsed("analytics_batch_size", batch_size)?,
                idle_poll: read.positive_duration("idle_poll")?,
                consumers: read.parsed("consumers", consumers)?,
            },
            resilience: ResilienceSettings {
                rate_limit: read.switch("rate_limit")?,
                rate_limit_anon_read: read.bucket("rate_limit_anon_read")?,
                rate_limit_anon_write: read.bucket("rate_limit_anon_write")?,
                rate_limit_auth_read: read.bucket("rate_limit_auth_read")?,
                rate_limit_auth_write: read.bucket("rate_limit_auth_write")?,
                rate_limit_routes: {
                    let routes = read.text("rate_limit_routes");
                    RateLimitPolicy::parse_routes(&routes)
                        .map_err(|problem| SettingError::new("rate_limit_routes", problem))?;
                    routes
                },
                rate_limit_fail_open: read.parsed("rate_limit_fail", |raw| match raw {
                    "open" => Ok(true),
                    "closed" => Ok(false),
                    other => Err(format!("{other:?} is not open or closed")),
                })?,
                breaker_threshold: read.number::<u32>("breaker_threshold")?.max(1),
                breaker_cool_down: read.positive_duration("breaker_cool_down")?,
                breaker_probes: read.number::<u32>("breaker_probes")?.max(1),
                cache: read.switch("cache")?,
                cache_ttl: read.duration("cache_ttl")?,
                cache_entries: read.number("cache_entries")?,
            },
            edge: EdgeSettings {
                catalog_max_age: read.duration("catalog_max_age")?,
                cors_origins: match read.optional("cors_origins") {
                    None => Vec::new(),
                    Some(raw) => parse_origins(&raw).map_err(|problem| SettingError::new("cors_origins", problem))?,
                },
            },
            aws: AwsSettings {
                region: read.text("aws_region"),
                region_set: source.get("aws_region").is_some(),
                endpoint_url: read.optional("aws_endpoint_url"),
                access_key_id: read.optional("aws_access_key_id"),
                secret_access_key: read.optional("aws_secret_access_key"),
                session_token: read.optional("aws_session_token"),
                tables: TableNames {
                    orders: read.text("table_orders"),
                    inventory: read.text("table_inventory"),
                    notifications: read.text("table_notifications"),
                    analytics: read.text("table_analytics"),
                },
                stock_shards: read.parsed("stock_shards", shard_count)?,
                stock_shards_max: read.parsed("stock_shards_max", shard_count)?,
                store_retries: read.parsed("store_retries", |raw| match raw.parse::<u32>() {
                    Ok(n @ 0..=20) => Ok(n),
                    _ => Err(format!("{raw:?} is not a number from 0 to 20")),
                })?,
                store_retry_base: read.positive_duration("store_retry_base")?,
                outbox: read.parsed("outbox", |raw| match raw {
                    "items" => Ok(OutboxMode::Items),
                    "stream" => Ok(OutboxMode::Stream),
                    _ => Err(format!("{raw:?} is neither `items` nor `stream`")),
                })?,
                queues,
            },
        };
        Ok(settings)
    }

    /// Every default (what a host with no settings at all runs with).
    pub fn defaults() -> Self {
        // The defaults are parsed by the same code as user values; a unit
        // test keeps them valid.
        Self::load(&BTreeMap::new()).unwrap_or_else(|error| unreachable!("a default does not parse: {error}"))
    }

    /// When a failed message comes back.
    pub fn backoff(&self) -> Backoff {
        Backoff { base: self.queues.retry_base, max: self.queues.retry_max }
    }

    /// The provider's circuit breaker.
    pub fn breaker_policy(&self) -> BreakerPolicy {
        let r = &self.resilience;
        BreakerPolicy {
            failure_threshold: r.breaker_threshold.max(1),
            cool_down: r.breaker_cool_down,
            half_open_probes: r.breaker_probes.max(1),
        }
    }

    /// The payment gateway's circuit breaker.
    pub fn payment_breaker_policy(&self) -> BreakerPolicy {
        BreakerPolicy {
            failure_threshold: self.payment.breaker_threshold.max(1),
            cool_down: self.payment.breaker_cool_down,
            half_open_probes: self.resilience.breaker_probes.max(1),
        }
    }

    /// The rate limits, or `None` when they are off.
    pub fn rate_limit_policy(&self) -> Option<RateLimitPolicy> {
        let r = &self.resilience;
        r.rate_limit.then(|| RateLimitPolicy {
            anonymous_read: r.rate_limit_anon_read,
            anonymous_write: r.rate_limit_anon_write,
            authenticated_read: r.rate_limit_auth_read,
            authenticated_write: r.rate_limit_auth_write,
            // Checked by `load`; a value set in code afterwards counts as none.
            routes: RateLimitPolicy::parse_routes(&r.rate_limit_routes).unwrap_or_default(),
            fail_open: r.rate_limit_fail_open,
            ..RateLimitPolicy::default()
        })
    }

    /// The token verifier's settings over `keys` (which the host chose).
    pub fn auth_config(&self, keys: KeyConfig) -> AuthConfig {
        AuthConfig {
            keys,
            audience: self.jwt_audience.clone(),
            issuer: self.jwt_issuer.clone(),
            ..AuthConfig::default()
        }
    }

    /// The HS256 secrets, `current` first, then the previous ones.
    pub fn hs256_secrets(&self, current: &[u8]) -> Vec<Vec<u8>> {
        std::iter::once(current.to_vec())
            .chain(self.jwt_previous_secrets.iter().map(|s| s.as_bytes().to_vec()))
            .collect()
    }

    /// How a fetched JWKS is kept.
    pub fn jwks_refresh(&self) -> RefreshPolicy {
        RefreshPolicy { max_age: self.jwks_max_age, min_interval: self.jwks_refetch_interval }
    }

    /// How a secret read from a store is kept.
    pub fn secret_refresh(&self) -> RefreshPolicy {
        RefreshPolicy { max_age: self.secret_max_age, min_interval: self.jwks_refetch_interval }
    }
}

/// `queue_url_order_intake`, `dlq_url_inventory`, ...
pub fn queue_key(kind: &str, consumer: Consumer) -> String {
    format!("{kind}_url_{}", consumer.queue().replace('-', "_"))
}

/// The README's configuration table (between its `settings` markers).
pub fn markdown_table() -> String {
    let mut table =
        String::from("| variable | flag / Spin variable | default | hosts | meaning |\n|---|---|---|---|---|\n");
    for setting in SETTINGS {
        let default = if setting.default.is_empty() { "–".to_owned() } else { format!("`{}`", setting.default) };
        let alias = setting
            .alias
            .map(|a| format!(" (also `{}`, `{}`: milliseconds)", env_name(a.key), a.key))
            .unwrap_or_default();
        table.push_str(&format!(
            "| `{}` | `--{}` / `{}` | {} | {} | {}{} |\n",
            env_name(setting.key),
            flag_name(setting.key),
            setting.key,
            default,
            setting.hosts.label(),
            setting.meaning,
            alias,
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_share_is_a_number_from_zero_to_one() {
        assert_eq!(super::Share::parse("0.1").map(super::Share::get), Ok(0.1));
        assert_eq!(super::Share::parse("1").map(super::Share::get), Ok(1.0));
        assert_eq!(super::Share::parse("0").map(super::Share::get), Ok(0.0));
        for bad in ["1.5", "-0.1", "ten percent", "NaN", ""] {
            assert!(super::Share::parse(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    fn source(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_default_parses_and_one_backoff_serves_every_host() {
        let settings = Settings::defaults();
        assert_eq!(settings.backoff(), Backoff { base: Duration::from_millis(200), max: Duration::from_secs(30) });
        assert_eq!(settings.notify_timeout, Duration::from_secs(2));
        assert_eq!(settings.breaker_policy().cool_down, Duration::from_secs(30));
        assert_eq!(settings.aws.tables.orders, "orderly-orders");
        assert!(settings.rate_limit_policy().is_some());
        assert_eq!(settings.queues.consumers.len(), 4);
        // Analytics is sent three events per order: at the saga's 32 it
        // fell behind by most of what it was sent (docs/benchmark.md).
        assert_eq!(settings.queues.batch_size_for(Consumer::Analytics), 256);
        assert_eq!(settings.queues.batch_size_for(Consumer::Inventory), 32);
    }

    #[test]
    fn analytics_takes_its_own_batch_size_and_the_saga_the_common_one() {
        let settings = Settings::load(&source(&[("batch_size", "10"), ("analytics_batch_size", "200")])).unwrap();
        assert_eq!(settings.queues.batch_size_for(Consumer::Analytics), 200);
        for saga in [Consumer::OrderIntake, Consumer::Inventory, Consumer::Notification] {
            assert_eq!(settings.queues.batch_size_for(saga), 10);
        }
        for bad in ["0", "257", "many"] {
            assert!(Settings::load(&source(&[("analytics_batch_size", bad)])).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_process_may_run_some_consumers_or_none() {
        let some = Settings::load(&source(&[("consumers", "inventory, analytics")])).unwrap();
        assert_eq!(some.queues.consumers, [Consumer::Inventory, Consumer::Analytics]);
        let none = Settings::load(&source(&[("consumers", "none")])).unwrap();
        assert!(none.queues.consumers.is_empty());
        // A typo, or `none` beside a consumer, is refused at start-up
        // rather than silently running fewer consumers than meant.
        for bad in ["inventory,none", "none, analytics", "inventry", "inventory,,payments"] {
            let error = Settings::load(&source(&[("consumers", bad)])).unwrap_err();
            assert!(error.to_string().contains("consumers"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn durations_are_spelled_alike_and_the_old_millisecond_names_still_work() {
        let new = Settings::load(&source(&[("notify_timeout", "1500ms"), ("retry_base", "1s")])).unwrap();
        let old = Settings::load(&source(&[("notify_timeout_ms", "1500"), ("retry_base_ms", "1000")])).unwrap();
        assert_eq!(new.notify_timeout, Duration::from_millis(1500));
        assert_eq!(old.notify_timeout, new.notify_timeout);
        assert_eq!(old.queues.retry_base, new.queues.retry_base);
        // The new name wins over the alias.
        let both = Settings::load(&source(&[("breaker_cool_down", "5s"), ("breaker_cool_down_ms", "100")])).unwrap();
        assert_eq!(both.resilience.breaker_cool_down, Duration::from_secs(5));
    }

    #[test]
    fn urls_are_checked_at_load_without_repeating_them_and_zero_means_what_it_says_where_it_can() {
        let error = Settings::load(&source(&[("payment_url", "token@gw.internal")])).unwrap_err();
        assert!(!error.to_string().contains("token@"), "a secret is not repeated: {error}");
        let settings = Settings::load(&source(&[
            ("payment_url", "https://gw.example/v1"),
            ("notify_url", "https://bücher.example/hooks"),
            ("max_receives", "1000"),
            ("catalog_max_age", "0s"),
            ("cache_ttl", "0s"),
        ]))
        .unwrap();
        assert_eq!(settings.payment.url.as_deref(), Some("https://gw.example/v1"));
        assert_eq!(settings.queues.max_receives, 1000);
        assert_eq!(settings.edge.catalog_max_age, Duration::ZERO, "max-age=0 is a policy: revalidate every time");
    }

    #[test]
    fn a_wrong_value_names_its_setting_and_variable() {
        let error = Settings::load(&source(&[("retry_max", "soon")])).unwrap_err();
        assert_eq!(error.key, "retry_max");
        assert!(error.to_string().contains("ORDERLY_RETRY_MAX"), "{error}");
        for (key, value) in [
            ("rate_limit", "maybe"),
            ("rate_limit_anon_read", "lots"),
            ("rate_limit_routes", "GET nowhere"),
            ("max_receives", "0"),
            ("sqlite_sync", "sometimes"),
            ("outbox", "kafka"),
            ("addr", "here"),
            ("notify_timeout_ms", "x"),
            ("max_receives", "1001"),
            ("payment_timeout", "0s"),
            ("idle_poll", "0"),
            ("jwks_refetch_interval", "0ms"),
            ("retry_base_ms", "0"),
            ("payment_url", "gw.internal:8443"),
            ("notify_url", "ftp://hooks.example/in"),
        ] {
            assert!(Settings::load(&source(&[(key, value)])).is_err(), "{key}={value} must be refused");
        }
    }

    #[test]
    fn cors_origins_are_a_list_of_origins_and_nothing_else() {
        assert!(Settings::defaults().edge.cors_origins.is_empty(), "no CORS unless configured");
        let settings =
            Settings::load(&source(&[("cors_origins", "https://shop.example, http://localhost:3000")])).unwrap();
        assert_eq!(settings.edge.cors_origins, ["https://shop.example", "http://localhost:3000"]);
        for bad in ["*", "shop.example", "https://shop.example/path", "ftp://x"] {
            let error = Settings::load(&source(&[("cors_origins", bad)])).unwrap_err();
            assert_eq!(error.key, "cors_origins", "{bad}");
        }
        assert!(Settings::defaults().edge.catalog_max_age <= Duration::from_secs(5));
    }

    #[test]
    fn queue_urls_are_read_in_pairs_per_consumer() {
        let settings = Settings::load(&source(&[
            ("queue_url_inventory", "http://q/inventory.fifo"),
            ("dlq_url_inventory", "http://q/inventory-dlq.fifo"),
            ("queue_url_analytics", "http://q/analytics.fifo"),
        ]))
        .unwrap();
        assert_eq!(settings.aws.queues.len(), 1, "a queue without its dead-letter queue is not configured");
        assert_eq!(settings.aws.queues["inventory"].dead_letter_url, "http://q/inventory-dlq.fifo");
    }

    #[test]
    fn every_setting_is_declared_once_with_a_spin_compatible_key() {
        let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len(), "a key is declared twice");
        for setting in SETTINGS {
            // Spin variable names: lowercase letters, digits and underscores.
            assert!(
                setting.key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                setting.key
            );
            assert!(!setting.secret || setting.default.is_empty(), "a secret has no default: {}", setting.key);
        }
        for consumer in Consumer::ALL {
            assert!(declared(&queue_key("queue", consumer)).is_some());
            assert!(declared(&queue_key("dlq", consumer)).is_some());
        }
    }

    #[test]
    fn key_and_transport_settings_come_in_pairs_and_a_webhook_secret_must_be_whsec() {
        let rotated = Settings::load(&source(&[("jwt_previous_secrets", " old-one , older-one ,")])).unwrap();
        assert_eq!(rotated.jwt_previous_secrets, ["old-one", "older-one"]);
        assert_eq!(rotated.hs256_secrets(b"new").len(), 3);
        let tls = Settings::load(&source(&[("tls_cert", "c.pem"), ("tls_key", "k.pem")])).unwrap();
        assert_eq!(tls.tls.map(|t| t.client_ca), Some(None));
        for pairs in [
            &[("tls_cert", "c.pem")][..],
            &[("tls_key", "k.pem")],
            &[("tls_client_ca", "ca.pem")],
            &[("outbound_tls_cert", "c.pem")],
            &[("outbound_tls_key", "k.pem")],
            &[("webhook_secret", "plain-text")],
        ] {
            assert!(Settings::load(&source(pairs)).is_err(), "{pairs:?} must be refused");
        }
        let signed = Settings::load(&source(&[("webhook_secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")])).unwrap();
        assert!(!format!("{signed:?}").contains("MfKQ"), "the secret stays out of debug output");
    }
}
