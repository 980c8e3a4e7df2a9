//! Configuration: every setting is an environment variable with a matching
//! flag (the flag wins). The README's table is generated from the same names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

fn duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))
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

    /// Per-call timeout of the notification provider.
    #[arg(long, env = "ORDERLY_NOTIFY_TIMEOUT", default_value = "2s", value_parser = duration)]
    pub notify_timeout: Duration,

    /// SQLite durability.
    #[arg(long, env = "ORDERLY_SQLITE_SYNC", value_enum, default_value = "normal")]
    pub sqlite_sync: SyncMode,

    #[command(flatten)]
    pub queues: QueueConfig,

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
            notify_timeout: Duration::from_secs(2),
            sqlite_sync: SyncMode::Normal,
            queues: QueueConfig::default(),
            log: "info".into(),
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("orderly.db")
    }
}
