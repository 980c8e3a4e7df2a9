//! Configuration: every setting is an environment variable with a matching
//! flag (the flag wins). The README's table is generated from the same names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use shared::resilience::rate_limit::Bucket;

fn duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailMode {
    /// Let requests through when the limiter's store fails.
    Open,
    /// Answer 503 when the limiter's store fails.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncMode {
    /// WAL, fsync at checkpoints: survives a killed process (kill -9).
    Normal,
    /// WAL, fsync every commit: also survives power loss.
    Full,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Where the HTTP API listens.
    #[arg(long, env = "ORDERLY_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Directory for the SQLite database (and the generated dev JWT secret).
    #[arg(long, env = "ORDERLY_DATA_DIR", default_value = ".orderly")]
    pub data_dir: PathBuf,

    /// HS256 secret (at least 32 bytes). Unset: one is generated and kept in the data dir.
    #[arg(long, env = "ORDERLY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// RS256 instead of HS256: a JWKS file with the public keys.
    #[arg(long, env = "ORDERLY_JWKS_FILE", conflicts_with = "jwks_url")]
    pub jwks_file: Option<PathBuf>,

    /// RS256 instead of HS256: a JWKS URL, fetched at start.
    #[arg(long, env = "ORDERLY_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// When set, tokens must carry this `aud`.
    #[arg(long, env = "ORDERLY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// When set, tokens must carry this `iss`.
    #[arg(long, env = "ORDERLY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Notification webhook (POST JSON). Unset: notifications are recorded in the log only.
    #[arg(long, env = "ORDERLY_NOTIFY_URL")]
    pub notify_url: Option<String>,

    /// Let the webhook reach loopback/private/link-local addresses (off: SSRF guard).
    #[arg(long, env = "ORDERLY_NOTIFY_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub notify_allow_private: bool,

    /// Per-call timeout of the notification provider.
    #[arg(long, env = "ORDERLY_NOTIFY_TIMEOUT", default_value = "2s", value_parser = duration)]
    pub notify_timeout: Duration,

    /// SQLite durability.
    #[arg(long, env = "ORDERLY_SQLITE_SYNC", value_enum, default_value = "normal")]
    pub sqlite_sync: SyncMode,

    #[command(flatten)]
    pub queues: QueueConfig,

    #[command(flatten)]
    pub resilience: ResilienceConfig,

    /// OTLP/HTTP endpoint for traces (e.g. http://127.0.0.1:4318); unset: no export.
    #[arg(long, env = "ORDERLY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Longest a client may take to send a request's headers (slow-loris guard).
    #[arg(long, env = "ORDERLY_HEADER_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub header_timeout: Duration,

    /// Longest a client may take to send a request's body.
    #[arg(long, env = "ORDERLY_BODY_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub body_timeout: Duration,

    /// Which queue consumers this process runs (comma-separated; default all):
    /// lets consumers be scaled or stopped separately.
    #[arg(
        long,
        env = "ORDERLY_CONSUMERS",
        value_delimiter = ',',
        default_value = "order-intake,inventory,notification,analytics"
    )]
    pub consumers: Vec<String>,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `orderly=debug`.
    #[arg(long, env = "ORDERLY_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Clone, Args)]
pub struct QueueConfig {
    /// Deliveries of a message before it moves to its dead-letter queue.
    #[arg(long, env = "ORDERLY_MAX_RECEIVES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_receives: u32,

    /// How long a received message stays invisible before it is redelivered.
    #[arg(long, env = "ORDERLY_VISIBILITY_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub visibility_timeout: Duration,

    /// First retry delay of a failed message (doubles per attempt, with jitter).
    #[arg(long, env = "ORDERLY_RETRY_BASE", default_value = "200ms", value_parser = duration)]
    pub retry_base: Duration,

    /// Longest retry delay.
    #[arg(long, env = "ORDERLY_RETRY_MAX", default_value = "30s", value_parser = duration)]
    pub retry_max: Duration,

    /// Messages a consumer takes per receive.
    #[arg(long, env = "ORDERLY_BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub batch_size: u32,

    /// Longest an idle consumer sleeps before looking again (it is woken at
    /// once when a message arrives in this process).
    #[arg(long, env = "ORDERLY_IDLE_POLL", default_value = "1s", value_parser = duration)]
    pub idle_poll: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct ResilienceConfig {
    /// Rate limiting (token buckets shared through the store).
    #[arg(long, env = "ORDERLY_RATE_LIMIT", value_enum, default_value = "on")]
    pub rate_limit: Switch,
    /// Anonymous reads, per client IP: `rate/s:burst`.
    #[arg(long, env = "ORDERLY_RATE_LIMIT_ANON_READ", default_value = "50/s:150", value_parser = Bucket::parse)]
    pub rate_limit_anon_read: Bucket,
    /// Anonymous writes, per client IP.
    #[arg(long, env = "ORDERLY_RATE_LIMIT_ANON_WRITE", default_value = "10/s:30", value_parser = Bucket::parse)]
    pub rate_limit_anon_write: Bucket,
    /// Authenticated reads, per customer.
    #[arg(long, env = "ORDERLY_RATE_LIMIT_AUTH_READ", default_value = "200/s:400", value_parser = Bucket::parse)]
    pub rate_limit_auth_read: Bucket,
    /// Authenticated writes, per customer.
    #[arg(long, env = "ORDERLY_RATE_LIMIT_AUTH_WRITE", default_value = "100/s:200", value_parser = Bucket::parse)]
    pub rate_limit_auth_write: Bucket,
    /// Per-route limits: `POST /api/v1/orders=10/s:20,2/s:5; ...` (authenticated, then anonymous).
    #[arg(long, env = "ORDERLY_RATE_LIMIT_ROUTES", default_value = "")]
    pub rate_limit_routes: String,
    /// What to do when the limiter's store fails.
    #[arg(long, env = "ORDERLY_RATE_LIMIT_FAIL", value_enum, default_value = "open")]
    pub rate_limit_fail: FailMode,

    /// Consecutive provider failures (errors, timeouts) that open the breaker.
    #[arg(long, env = "ORDERLY_BREAKER_THRESHOLD", default_value_t = 5)]
    pub breaker_threshold: u32,
    /// How long the breaker stays open before a probe.
    #[arg(long, env = "ORDERLY_BREAKER_COOL_DOWN", default_value = "30s", value_parser = duration)]
    pub breaker_cool_down: Duration,
    /// Probes let through while half-open.
    #[arg(long, env = "ORDERLY_BREAKER_PROBES", default_value_t = 1)]
    pub breaker_probes: u32,

    /// Catalog cache (cache-aside for GET /api/v1/products/{sku}).
    #[arg(long, env = "ORDERLY_CACHE", value_enum, default_value = "on")]
    pub cache: Switch,
    /// Longest a cached product may be served after a change whose invalidation was missed.
    #[arg(long, env = "ORDERLY_CACHE_TTL", default_value = "5s", value_parser = duration)]
    pub cache_ttl: Duration,
    /// Most products cached.
    #[arg(long, env = "ORDERLY_CACHE_ENTRIES", default_value_t = 10_000)]
    pub cache_entries: u64,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            rate_limit: Switch::On,
            rate_limit_anon_read: Bucket { per_second: 50.0, burst: 150 },
            rate_limit_anon_write: Bucket { per_second: 10.0, burst: 30 },
            rate_limit_auth_read: Bucket { per_second: 200.0, burst: 400 },
            rate_limit_auth_write: Bucket { per_second: 100.0, burst: 200 },
            rate_limit_routes: String::new(),
            rate_limit_fail: FailMode::Open,
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(30),
            breaker_probes: 1,
            cache: Switch::On,
            cache_ttl: Duration::from_secs(5),
            cache_entries: 10_000,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_receives: 5,
            visibility_timeout: Duration::from_secs(10),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            batch_size: 32,
            idle_poll: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// A configuration for tests and embedding: everything default but the
    /// data directory and a loopback port chosen by the OS.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            addr: "127.0.0.1:0".parse().expect("a literal address"),
            data_dir: data_dir.into(),
            jwt_secret: None,
            jwks_file: None,
            jwks_url: None,
            jwt_audience: None,
            jwt_issuer: None,
            notify_url: None,
            notify_allow_private: false,
            notify_timeout: Duration::from_secs(2),
            sqlite_sync: SyncMode::Normal,
            queues: QueueConfig::default(),
            resilience: ResilienceConfig::default(),
            otlp_endpoint: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            consumers: ["order-intake", "inventory", "notification", "analytics"].map(String::from).to_vec(),
            log: "info".into(),
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("orderly.db")
    }
}
