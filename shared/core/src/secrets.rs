//! # Secrets and keys that rotate
//!
//! A JWKS at the identity provider, an HS256 secret in SSM, a webhook URL
//! with a token in it: each changes while instances keep running. Reading
//! them once per instance means a rotation gives errors until every instance
//! has recycled (hours on a warm Lambda). [`Refreshing`] is the one policy,
//! in plain Rust over the [`SecretFetcher`] port and the [`Clock`], so it is
//! unit-tested with a clock the test drives and runs the same on every host:
//!
//! - **Max age.** A copy older than [`RefreshPolicy::max_age`] is fetched
//!   again before use: a key removed at the source stops working once the
//!   cached copy expires, and a new secret is picked up within that time.
//! - **Refetch on demand, rate-limited.** A caller that meets something the
//!   copy does not know (a JWT's unknown `kid`) may ask for a fresh copy
//!   ([`Refreshing::refetch`]), at most once per
//!   [`RefreshPolicy::min_interval`]: a new key is accepted without waiting
//!   for the max age, and a flood of tokens with made-up `kid`s costs one
//!   fetch per interval, not one per request.
//! - **Single flight.** One fetch at a time. Callers that find the copy
//!   stale use it while another caller fetches; only the very first fetch
//!   is waited for.
//! - **Stale if error.** A failed refetch keeps the last good copy (and is
//!   logged): an identity provider's outage does not lock every caller out.
//!   The failure counts as an attempt, so the source is not hammered either:
//!   a stale copy is fetched again at most once per minimum interval.
//!   Only a first fetch that fails is an error.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::{Clock, FetchError, SecretFetcher};

/// How long a copy is used and how often it may be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// A copy older than this is fetched again before use.
    pub max_age: Duration,
    /// At most one on-demand refetch per interval.
    pub min_interval: Duration,
}

/// Why there is no value to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("fetching {what}: {error}")]
    Fetch { what: String, error: FetchError },
    #[error("{what} is not usable: {problem}")]
    Parse { what: String, problem: String },
}

type Parse<T> = Box<dyn Fn(&str) -> Result<T, String> + Send + Sync>;

struct Copy<T> {
    value: Arc<T>,
    fetched_at: DateTime<Utc>,
}

/// A value parsed from a [`SecretFetcher`]'s text, kept for its max age.
pub struct Refreshing<T> {
    fetcher: Arc<dyn SecretFetcher>,
    parse: Parse<T>,
    policy: RefreshPolicy,
    clock: Arc<dyn Clock>,
    copy: RwLock<Option<Copy<T>>>,
    /// Held while fetching (single flight); the last attempt, failed or not.
    fetching: futures::lock::Mutex<Option<DateTime<Utc>>>,
}

impl<T> std::fmt::Debug for Refreshing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refreshing")
            .field("fetcher", &self.fetcher.describe())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

impl<T: Send + Sync> Refreshing<T> {
    /// Nothing is fetched until the first [`Self::get`].
    pub fn new(
        fetcher: Arc<dyn SecretFetcher>,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync + 'static,
        policy: RefreshPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            fetcher,
            parse: Box::new(parse),
            policy,
            clock,
            copy: RwLock::new(None),
            fetching: futures::lock::Mutex::new(None),
        }
    }

    fn fresh(&self) -> Option<Arc<T>> {
        let copy = self.copy.read().unwrap_or_else(|e| e.into_inner());
        copy.as_ref().filter(|c| elapsed(c.fetched_at, self.clock.now()) < self.policy.max_age).map(|c| c.value.clone())
    }

    /// The copy, when the last attempt to replace it failed (it came after
    /// the copy was fetched) within the minimum interval.
    fn failed_recently(&self, last_attempt: Option<DateTime<Utc>>) -> Option<Arc<T>> {
        let attempt = last_attempt?;
        let copy = self.copy.read().unwrap_or_else(|e| e.into_inner());
        copy.as_ref()
            .filter(|c| attempt > c.fetched_at && elapsed(attempt, self.clock.now()) < self.policy.min_interval)
            .map(|c| c.value.clone())
    }

    fn cached(&self) -> Option<Arc<T>> {
        self.copy.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|c| c.value.clone())
    }

    /// The value: the cached copy while younger than the max age, else a
    /// fresh one (the stale copy if the fetch fails).
    ///
    /// Once a copy exists, a caller never waits for a fetch another caller
    /// is making, and a source that failed is tried again only after the
    /// minimum interval: during an outage the stale copy serves everyone at
    /// once, instead of each caller queueing for a fetch of its own.
    pub async fn get(&self) -> Result<Arc<T>, RefreshError> {
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let mut last_attempt = match (self.fetching.try_lock(), self.cached()) {
            (Some(guard), _) => guard,
            (None, Some(stale)) => return Ok(stale),
            (None, None) => self.fetching.lock().await,
        };
        // Someone else may have fetched while this caller waited.
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        if let Some(stale) = self.failed_recently(*last_attempt) {
            return Ok(stale);
        }
        self.fetch(&mut last_attempt).await
    }

    /// A newer copy than `seen`, fetched now unless one was fetched (or
    /// tried) within the minimum interval; `None` when there is none.
    pub async fn refetch(&self, seen: &Arc<T>) -> Option<Arc<T>> {
        let mut last_attempt = self.fetching.lock().await;
        if let Some(current) = self.cached()
            && !Arc::ptr_eq(&current, seen)
        {
            // Refreshed while this caller waited.
            return Some(current);
        }
        if last_attempt.is_some_and(|at| elapsed(at, self.clock.now()) < self.policy.min_interval) {
            return None;
        }
        self.fetch(&mut last_attempt).await.ok().filter(|value| !Arc::ptr_eq(value, seen))
    }

    async fn fetch(&self, last_attempt: &mut Option<DateTime<Utc>>) -> Result<Arc<T>, RefreshError> {
        let now = self.clock.now();
        *last_attempt = Some(now);
        let what = self.fetcher.describe();
        let parsed = match self.fetcher.fetch().await {
            Ok(text) => (self.parse)(&text).map_err(|problem| RefreshError::Parse { what: what.clone(), problem }),
            Err(error) => Err(RefreshError::Fetch { what: what.clone(), error }),
        };
        match parsed {
            Ok(value) => {
                let value = Arc::new(value);
                *self.copy.write().unwrap_or_else(|e| e.into_inner()) =
                    Some(Copy { value: value.clone(), fetched_at: now });
                Ok(value)
            }
            Err(error) => match self.cached() {
                Some(stale) => {
                    tracing::warn!(%error, "keeping the last good copy");
                    Ok(stale)
                }
                None => Err(error),
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;

    /// A clock the test moves.
    #[derive(Default)]
    pub struct ManualClock(Mutex<Duration>);

    impl ManualClock {
        pub fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            DateTime::<Utc>::UNIX_EPOCH + *self.0.lock().unwrap()
        }
    }

    /// Serves whatever the test put there, counting fetches.
    pub struct Source {
        pub text: Mutex<Result<String, FetchError>>,
        pub fetches: AtomicUsize,
    }

    impl Source {
        pub fn serving(text: &str) -> Arc<Self> {
            Arc::new(Self { text: Mutex::new(Ok(text.into())), fetches: AtomicUsize::new(0) })
        }

        pub fn set(&self, text: Result<&str, &str>) {
            *self.text.lock().unwrap() = text.map(str::to_owned).map_err(|e| FetchError(e.into()));
        }

        pub fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl SecretFetcher for Source {
        fn describe(&self) -> String {
            "the test source".into()
        }

        async fn fetch(&self) -> Result<String, FetchError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            self.text.lock().unwrap().clone()
        }
    }

    const POLICY: RefreshPolicy =
        RefreshPolicy { max_age: Duration::from_secs(60), min_interval: Duration::from_secs(5) };

    fn refreshing(source: &Arc<Source>, clock: &Arc<ManualClock>) -> Refreshing<String> {
        Refreshing::new(source.clone(), |text| Ok(text.to_owned()), POLICY, clock.clone())
    }

    #[tokio::test]
    async fn a_copy_is_used_until_its_max_age_then_fetched_again() {
        let (source, clock) = (Source::serving("one"), Arc::new(ManualClock::default()));
        let value = refreshing(&source, &clock);
        assert_eq!(*value.get().await.unwrap(), "one");
        source.set(Ok("two"));
        clock.advance(Duration::from_secs(59));
        assert_eq!(*value.get().await.unwrap(), "one", "still within the max age");
        assert_eq!(source.fetches(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(*value.get().await.unwrap(), "two", "expired: fetched again");
        assert_eq!(source.fetches(), 2);
    }

    #[tokio::test]
    async fn an_on_demand_refetch_is_rate_limited() {
        let (source, clock) = (Source::serving("one"), Arc::new(ManualClock::default()));
        let value = refreshing(&source, &clock);
        let first = value.get().await.unwrap();
        source.set(Ok("two"));
        assert_eq!(value.refetch(&first).await, None, "fetched just now: no second fetch yet");
        clock.advance(Duration::from_secs(4));
        assert_eq!(value.refetch(&first).await, None);
        assert_eq!(source.fetches(), 1);
        clock.advance(Duration::from_secs(1));
        let second = value.refetch(&first).await.expect("the interval has passed");
        assert_eq!(*second, "two");
        assert_eq!(*value.get().await.unwrap(), "two", "the refetched copy is the cached one");
        // A caller still holding the old copy gets the new one without a fetch.
        assert_eq!(value.refetch(&first).await.as_deref().map(String::as_str), Some("two"));
        assert_eq!(source.fetches(), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_last_good_copy_and_counts_as_an_attempt() {
        let (source, clock) = (Source::serving("one"), Arc::new(ManualClock::default()));
        let value = refreshing(&source, &clock);
        let first = value.get().await.unwrap();
        source.set(Err("the identity provider is down"));
        clock.advance(Duration::from_secs(61));
        assert_eq!(*value.get().await.unwrap(), "one");
        assert_eq!(value.refetch(&first).await, None, "the failed fetch was an attempt");
        assert_eq!(source.fetches(), 2);
    }

    #[tokio::test]
    async fn during_an_outage_an_expired_copy_is_fetched_again_at_most_once_per_interval() {
        let (source, clock) = (Source::serving("one"), Arc::new(ManualClock::default()));
        let value = refreshing(&source, &clock);
        value.get().await.unwrap();
        source.set(Err("the identity provider is down"));
        clock.advance(Duration::from_secs(61));
        for _ in 0..10 {
            assert_eq!(*value.get().await.unwrap(), "one");
        }
        assert_eq!(source.fetches(), 2, "one failed attempt, then the stale copy");
        clock.advance(Duration::from_secs(5));
        source.set(Ok("two"));
        assert_eq!(*value.get().await.unwrap(), "two", "the interval has passed: tried again");
        assert_eq!(source.fetches(), 3);
    }

    #[tokio::test]
    async fn an_expired_copy_is_fetched_again_even_within_the_interval_of_its_own_fetch() {
        let (source, clock) = (Source::serving("one"), Arc::new(ManualClock::default()));
        let short = RefreshPolicy { max_age: Duration::from_secs(2), min_interval: Duration::from_secs(5) };
        let value = Refreshing::new(source.clone(), |text| Ok(text.to_owned()), short, clock.clone());
        value.get().await.unwrap();
        source.set(Ok("two"));
        clock.advance(Duration::from_secs(2));
        assert_eq!(*value.get().await.unwrap(), "two", "the interval limits retries after failures only");
    }

    /// A fetch that does not answer until the test says so.
    struct Hanging {
        release: tokio::sync::Notify,
        fetches: AtomicUsize,
    }

    #[async_trait]
    impl SecretFetcher for Hanging {
        fn describe(&self) -> String {
            "a hanging source".into()
        }

        async fn fetch(&self) -> Result<String, FetchError> {
            if self.fetches.fetch_add(1, Ordering::SeqCst) > 0 {
                self.release.notified().await;
            }
            Ok("fetched".into())
        }
    }

    #[tokio::test]
    async fn callers_use_the_stale_copy_while_another_caller_fetches() {
        let clock = Arc::new(ManualClock::default());
        let source = Arc::new(Hanging { release: tokio::sync::Notify::new(), fetches: AtomicUsize::new(0) });
        let value = Arc::new(Refreshing::new(source.clone(), |text| Ok(text.to_owned()), POLICY, clock.clone()));
        value.get().await.unwrap();
        clock.advance(Duration::from_secs(61));
        let fetching = tokio::spawn({
            let value = value.clone();
            async move { value.get().await }
        });
        // Wait, with a deadline, until the spawned caller's fetch hangs.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while source.fetches.load(Ordering::SeqCst) < 2 {
            assert!(std::time::Instant::now() < deadline, "the second fetch never started");
            tokio::task::yield_now().await;
        }
        let stale = tokio::time::timeout(Duration::from_secs(5), value.get()).await;
        assert_eq!(stale.expect("answered without waiting for the fetch").unwrap().as_str(), "fetched");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2, "no fetch of its own");
        source.release.notify_one();
        assert_eq!(*fetching.await.unwrap().unwrap(), "fetched");
    }

    #[tokio::test]
    async fn a_first_fetch_that_fails_or_does_not_parse_is_an_error() {
        let clock = Arc::new(ManualClock::default());
        let source = Source::serving("x");
        source.set(Err("refused"));
        assert!(matches!(refreshing(&source, &clock).get().await, Err(RefreshError::Fetch { .. })));
        let strict = Refreshing::new(Source::serving("x"), |_| Err::<(), _>("not JSON".into()), POLICY, clock);
        assert!(matches!(strict.get().await, Err(RefreshError::Parse { .. })));
    }
}
