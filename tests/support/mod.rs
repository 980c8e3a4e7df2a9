//! Runs the real `orderly` binary as a child process, for tests about the
//! process itself: crashes, signals, logs, exported traces.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

pub const SECRET: &str = "process-secret-process-secret-0123456789abcdef";
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn token(sub: &str, admin: bool) -> String {
    orderly_core::http::mint_hs256(SECRET.as_bytes(), sub, admin, Duration::from_secs(3600))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct RunnerProcess {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

pub struct Launch<'a> {
    pub dir: &'a Path,
    /// Where the runner's log goes (default `dir`): elsewhere when `dir` is
    /// meant to fill up.
    pub log_dir: &'a Path,
    pub port: u16,
    pub generation: usize,
    pub env: Vec<(&'a str, String)>,
    /// Use ORDERLY_JWT_SECRET = SECRET (else the runner generates its own).
    pub with_secret: bool,
}

impl<'a> Launch<'a> {
    pub fn new(dir: &'a Path, port: u16) -> Self {
        Self { dir, log_dir: dir, port, generation: 0, env: Vec::new(), with_secret: true }
    }
}

impl RunnerProcess {
    pub async fn start(launch: Launch<'_>) -> Self {
        let log = launch.log_dir.join(format!("runner-{}.log", launch.generation));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_orderly"));
        command
            .env("ORDERLY_ADDR", format!("127.0.0.1:{}", launch.port))
            .env("ORDERLY_DATA_DIR", launch.dir.join("data"))
            .env("ORDERLY_VISIBILITY_TIMEOUT", "1s")
            .env("ORDERLY_RETRY_BASE", "20ms")
            .env("ORDERLY_IDLE_POLL", "200ms")
            .env_remove("ORDERLY_JWT_SECRET")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true);
        if launch.with_secret {
            command.env("ORDERLY_JWT_SECRET", SECRET);
        }
        for (key, value) in &launch.env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start the runner");
        let process = Self { child, base: format!("http://127.0.0.1:{}", launch.port), log };
        process.wait_until_up().await;
        process
    }

    pub async fn wait_until_up(&self) {
        let client = reqwest::Client::new();
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Ok(response) = client.get(format!("{}/health", self.base)).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(tokio::time::Instant::now() < until, "runner did not come up; log:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn kill_9(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.expect("stops within 30 s").unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log up to its last newline: the runner may be writing the line
    /// after it right now (or died writing it, under kill -9).
    fn complete_log(&self) -> String {
        let mut text = self.log_text();
        text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
        text
    }

    /// Every complete log line, parsed; panics on a line that is not JSON.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.complete_log()
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("orderly: listening"))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
            .collect()
    }

    /// How many orders this process answered 202, by its access log (the
    /// line is written before the answer leaves, after the commit).
    pub fn orders_accepted(&self) -> usize {
        self.complete_log()
            .lines()
            .filter(|l| l.contains("/api/v1/orders"))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["method"] == "POST" && l["route"] == "/api/v1/orders" && l["status"] == 202)
            .count()
    }

    /// Waits until this process has answered `at_least` orders with 202: a
    /// fault injected after that hits a runner in the middle of real work,
    /// however slow the machine.
    pub async fn accepted_at_least(&self, at_least: usize) {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            let accepted = self.orders_accepted();
            if accepted >= at_least {
                return;
            }
            if tokio::time::Instant::now() >= until {
                let log = self.log_text();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(20)..];
                panic!(
                    "the runner accepted {accepted} orders, never {at_least}; its last log lines:\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Another host's hops (queues polled over HTTP, relays on a timer) take longer.
pub const REMOTE_DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` until it yields `Some`, or fails the test after `DEADLINE`
/// (`REMOTE_DEADLINE` when the API tests target another host's stack).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let remote = std::env::var("ORDERLY_TEST_BASE_URL").is_ok_and(|url| !url.is_empty());
    let until = tokio::time::Instant::now() + if remote { REMOTE_DEADLINE } else { DEADLINE };
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How the test webhook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// 500 on every call.
    Failing,
    /// Answers after 30 s: far past any client timeout.
    Hanging,
    /// 500 and 204 by turns.
    Flapping,
}

/// A notification webhook on a random loopback port, switchable between
/// modes, counting calls and keeping the bodies it received.
pub struct Webhook {
    pub url: String,
    mode: std::sync::Arc<std::sync::Mutex<Mode>>,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl Webhook {
    pub async fn start(mode: Mode) -> Self {
        use axum::http::StatusCode;
        use std::sync::atomic::Ordering;
        let webhook = Self {
            url: String::new(),
            mode: std::sync::Arc::new(std::sync::Mutex::new(mode)),
            calls: Default::default(),
            bodies: Default::default(),
        };
        let (mode, calls, bodies) = (webhook.mode.clone(), webhook.calls.clone(), webhook.bodies.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let (mode, calls, bodies) = (mode.clone(), calls.clone(), bodies.clone());
                async move {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    bodies.lock().unwrap().push(body);
                    let current = *mode.lock().unwrap();
                    match current {
                        Mode::Up => StatusCode::NO_CONTENT,
                        Mode::Failing => StatusCode::INTERNAL_SERVER_ERROR,
                        Mode::Hanging => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            StatusCode::NO_CONTENT
                        }
                        Mode::Flapping if n % 2 == 0 => StatusCode::INTERNAL_SERVER_ERROR,
                        Mode::Flapping => StatusCode::NO_CONTENT,
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, ..webhook }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}
