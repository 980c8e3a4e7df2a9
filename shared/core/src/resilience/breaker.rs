//! A circuit breaker: stop calling a failing dependency for a while, then let
//! a few probes find out whether it is back.
//!
//! ```text
//! closed ──(threshold consecutive failures)──► open ──(cool-down over)──► half-open
//!   ▲                                            ▲                            │
//!   └──────────────(a probe succeeds)────────────┼──────(a probe fails)───────┘
//! ```
//!
//! A probe whose outcome never arrives (its process was killed, or recording
//! it failed) must not keep the breaker half-open for good: once a cool-down
//! has passed since the probes went out, the next call is a new probe.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::conflict::{MaybeConflict, retry_on_conflict};
use crate::domain::{AuthorizationId, Money, OrderId};
use crate::ports::{
    Authorization, BreakerStore, Clock, GatewayError, Notification, NotificationProvider, PaymentGateway,
    ProviderError, StoreError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures (errors or timeouts) that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before probing.
    pub cool_down: Duration,
    /// Calls let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self { failure_threshold: 5, cool_down: Duration::from_secs(30), half_open_probes: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: DateTime<Utc>,
    },
    HalfOpen {
        probes: u32,
        /// When the first probe went. A state stored before this was kept
        /// reads as the epoch: long overdue, so a probe goes.
        #[serde(default)]
        since: DateTime<Utc>,
    },
}

impl Default for BreakerState {
    fn default() -> Self {
        Self::Closed { failures: 0 }
    }
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Call,
    /// A half-open probe: its outcome decides the breaker.
    Probe,
    /// Do not call; try again after this long.
    Reject {
        retry_after: Duration,
    },
}

impl BreakerState {
    /// `closed`, `open` or `half_open`, for metrics and /health.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Closed { .. } => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half_open",
        }
    }

    /// The permit for a call now, and the state to store if it changes.
    pub fn permit(&self, policy: &BreakerPolicy, now: DateTime<Utc>) -> (Permit, Option<BreakerState>) {
        match self {
            Self::Closed { .. } => (Permit::Call, None),
            Self::Open { until } if now < *until => {
                (Permit::Reject { retry_after: (*until - now).to_std().unwrap_or_default() }, None)
            }
            Self::Open { .. } => (Permit::Probe, Some(Self::HalfOpen { probes: 1, since: now })),
            Self::HalfOpen { probes, since } if *probes < policy.half_open_probes => {
                (Permit::Probe, Some(Self::HalfOpen { probes: probes + 1, since: *since }))
            }
            // The probes' outcome is overdue: it will never come.
            Self::HalfOpen { since, .. } if elapsed(*since, now) >= policy.cool_down => {
                (Permit::Probe, Some(Self::HalfOpen { probes: 1, since: now }))
            }
            // Probes are out; their outcome will decide soon.
            Self::HalfOpen { .. } => (Permit::Reject { retry_after: policy.cool_down / 4 }, None),
        }
    }

    pub fn on_success(&self) -> BreakerState {
        match self {
            // A call that started before the breaker opened: it proves
            // little, and the probe will decide.
            Self::Open { until } => Self::Open { until: *until },
            _ => Self::Closed { failures: 0 },
        }
    }

    pub fn on_failure(&self, policy: &BreakerPolicy, now: DateTime<Utc>) -> BreakerState {
        let open = || Self::Open { until: now + chrono::Duration::from_std(policy.cool_down).unwrap_or_default() };
        match self {
            Self::Closed { failures } if failures + 1 >= policy.failure_threshold => open(),
            Self::Closed { failures } => Self::Closed { failures: failures + 1 },
            Self::HalfOpen { .. } => open(),
            Self::Open { until } => Self::Open { until: *until },
        }
    }
}

/// A circuit breaker over one dependency, whose state lives in a
/// `BreakerStore` so that every instance of every function shares it. It
/// guards any call ([`CircuitBreaker::call`]); [`Guarded`] puts a port
/// behind it (the notification provider, the payment gateway).
pub struct CircuitBreaker {
    name: String,
    store: Arc<dyn BreakerStore>,
    policy: BreakerPolicy,
    clock: Arc<dyn Clock>,
}

/// Not called: the breaker is open. Try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub retry_after: Duration,
}

impl CircuitBreaker {
    pub fn new(
        name: impl Into<String>,
        store: Arc<dyn BreakerStore>,
        policy: BreakerPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { name: name.into(), store, policy, clock }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    /// The shared state, for /health and metrics.
    pub async fn state(&self) -> Result<BreakerState, StoreError> {
        self.store.load(&self.name).await.map(|(state, _)| state)
    }

    /// While open: how long until a probe may go. Consumers pause that long
    /// instead of taking messages they could only defer.
    pub async fn open_for(&self) -> Option<Duration> {
        match self.state().await {
            Ok(BreakerState::Open { until }) => (until - self.clock.now()).to_std().ok().filter(|d| !d.is_zero()),
            _ => None,
        }
    }

    /// Makes `call` if the breaker lets it through, and records its outcome:
    /// a success closes the count, an error that `unwell` says shows the
    /// dependency unwell counts against it, and any other error (a 4xx:
    /// our request was bad, not the dependency down) neither opens nor
    /// closes the breaker, except on a probe: there an answer of any kind
    /// shows the dependency is back.
    pub async fn call<T, E>(
        &self,
        call: impl Future<Output = Result<T, E>>,
        unwell: impl FnOnce(&E) -> bool,
    ) -> Result<Result<T, E>, Open> {
        let permit = self.permit().await;
        if let Permit::Reject { retry_after } = permit {
            metrics::counter!("orderly_breaker_rejections_total", "breaker" => self.name.clone()).increment(1);
            return Err(Open { retry_after });
        }
        let result = call.await;
        match &result {
            Ok(_) => self.record(false).await,
            Err(error) if unwell(error) => self.record(true).await,
            Err(_) if permit == Permit::Probe => self.record(false).await,
            Err(_) => {}
        }
        Ok(result)
    }

    /// Whether a call may go, moving the shared state when the answer does
    /// (an open breaker whose cool-down ended lets a probe go).
    async fn permit(&self) -> Permit {
        let decided = retry_on_conflict(|| async {
            let (state, version) = self.store.load(&self.name).await?;
            let (permit, next) = state.permit(&self.policy, self.clock.now());
            if let Some(next) = next {
                match self.store.save(&self.name, &next, version).await {
                    Ok(()) => self.report(&next),
                    Err(error) if error.is_conflict() => return Err(error),
                    // Unrecorded, the decision still stands.
                    Err(_) => {}
                }
            }
            Ok(permit)
        })
        .await;
        match decided {
            Ok(permit) => permit,
            // Other instances keep moving the state: let this call wait.
            Err(StoreError::Contended { .. }) => Permit::Reject { retry_after: self.policy.cool_down / 4 },
            // The breaker's own store failing must not stop the calls: fail open.
            Err(_) => Permit::Call,
        }
    }

    /// Records a call's result in the shared state. Best effort: a store
    /// that fails or stays contended leaves the state as the others made it.
    async fn record(&self, failed: bool) {
        let _ = retry_on_conflict(|| async {
            let (state, version) = self.store.load(&self.name).await?;
            let next = if failed { state.on_failure(&self.policy, self.clock.now()) } else { state.on_success() };
            if next == state {
                return Ok(());
            }
            self.store.save(&self.name, &next, version).await?;
            if next.name() != state.name() {
                tracing::warn!(breaker = %self.name, from = state.name(), to = next.name(), "circuit breaker changed state");
            }
            self.report(&next);
            Ok::<_, StoreError>(())
        })
        .await;
    }

    fn report(&self, state: &BreakerState) {
        let value = match state {
            BreakerState::Closed { .. } => 0.0,
            BreakerState::HalfOpen { .. } => 1.0,
            BreakerState::Open { .. } => 2.0,
        };
        metrics::gauge!("orderly_breaker_state", "breaker" => self.name.clone()).set(value);
    }
}

/// A port behind a circuit breaker: `Guarded<dyn NotificationProvider>` is a
/// notification provider, `Guarded<dyn PaymentGateway>` a payment gateway.
pub struct Guarded<P: ?Sized> {
    breaker: Arc<CircuitBreaker>,
    inner: Arc<P>,
}

impl<P: ?Sized> Guarded<P> {
    pub fn new(breaker: Arc<CircuitBreaker>, inner: Arc<P>) -> Self {
        Self { breaker, inner }
    }

    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

/// Failures that say the provider is unwell (not that our request was bad).
fn counts_against_provider(error: &ProviderError) -> bool {
    match error {
        ProviderError::Timeout | ProviderError::Unreachable(_) => true,
        ProviderError::Rejected(status) => *status >= 500 || *status == 429,
        ProviderError::CircuitOpen { .. } => false,
    }
}

#[async_trait::async_trait]
impl NotificationProvider for Guarded<dyn NotificationProvider> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn send(&self, notification: &Notification) -> Result<(), ProviderError> {
        self.breaker
            .call(self.inner.send(notification), counts_against_provider)
            .await
            .unwrap_or_else(|Open { retry_after }| Err(ProviderError::CircuitOpen { retry_after }))
    }

    async fn unavailable_for(&self) -> Option<Duration> {
        self.breaker.open_for().await
    }
}

/// The gateway's calls, each behind the breaker: an open breaker answers
/// [`GatewayError::CircuitOpen`] at once, so checkout never waits on it.
#[async_trait::async_trait]
impl PaymentGateway for Guarded<dyn PaymentGateway> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn authorize(&self, order: OrderId, amount: Money) -> Result<Authorization, GatewayError> {
        self.breaker
            .call(self.inner.authorize(order, amount), GatewayError::is_gateway_failure)
            .await
            .unwrap_or_else(open)
    }

    async fn capture(&self, order: OrderId, authorization: &AuthorizationId) -> Result<(), GatewayError> {
        self.breaker
            .call(self.inner.capture(order, authorization), GatewayError::is_gateway_failure)
            .await
            .unwrap_or_else(open)
    }

    async fn void(&self, order: OrderId, authorization: &AuthorizationId) -> Result<(), GatewayError> {
        self.breaker
            .call(self.inner.void(order, authorization), GatewayError::is_gateway_failure)
            .await
            .unwrap_or_else(open)
    }

    async fn void_by_reference(&self, order: OrderId) -> Result<(), GatewayError> {
        self.breaker
            .call(self.inner.void_by_reference(order), GatewayError::is_gateway_failure)
            .await
            .unwrap_or_else(open)
    }

    async fn unavailable_for(&self) -> Option<Duration> {
        self.breaker.open_for().await
    }
}

fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

fn open<T>(Open { retry_after }: Open) -> Result<T, GatewayError> {
    Err(GatewayError::CircuitOpen { retry_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy { failure_threshold: 3, cool_down: Duration::from_secs(10), half_open_probes: 1 }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let mut state = BreakerState::default();
        for _ in 0..2 {
            state = state.on_failure(&policy(), at(0));
            assert_eq!(state.permit(&policy(), at(0)).0, Permit::Call);
        }
        state = state.on_failure(&policy(), at(0));
        assert_eq!(state, BreakerState::Open { until: at(10) });
        assert_eq!(state.permit(&policy(), at(4)).0, Permit::Reject { retry_after: Duration::from_secs(6) });
    }

    #[test]
    fn a_success_resets_the_count() {
        let state = BreakerState::default().on_failure(&policy(), at(0)).on_failure(&policy(), at(0)).on_success();
        assert_eq!(state, BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_through() {
        let open = BreakerState::Open { until: at(10) };
        let (permit, next) = open.permit(&policy(), at(10));
        assert_eq!(permit, Permit::Probe);
        let half_open = next.unwrap();
        assert_eq!(half_open, BreakerState::HalfOpen { probes: 1, since: at(10) });
        assert!(matches!(half_open.permit(&policy(), at(10)).0, Permit::Reject { .. }), "only one probe at a time");
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_once_a_cool_down_has_passed() {
        let half_open = BreakerState::HalfOpen { probes: 1, since: at(10) };
        assert!(matches!(half_open.permit(&policy(), at(19)).0, Permit::Reject { .. }), "the probe may still answer");
        let (permit, next) = half_open.permit(&policy(), at(20));
        assert_eq!(permit, Permit::Probe);
        assert_eq!(next, Some(BreakerState::HalfOpen { probes: 1, since: at(20) }));
    }

    #[test]
    fn a_half_open_state_stored_without_its_start_lets_a_probe_go() {
        let stored: BreakerState = serde_json::from_str(r#"{"state":"half_open","probes":1}"#).unwrap();
        assert_eq!(stored.permit(&policy(), at(1_000)).0, Permit::Probe);
    }

    #[test]
    fn a_probe_decides() {
        let half_open = BreakerState::HalfOpen { probes: 1, since: at(10) };
        assert_eq!(half_open.on_success(), BreakerState::Closed { failures: 0 });
        assert_eq!(half_open.on_failure(&policy(), at(20)), BreakerState::Open { until: at(30) });
    }

    /// One breaker's state in memory, compare-and-set like the real stores.
    struct OneBreaker(std::sync::Mutex<(BreakerState, u64)>);

    #[async_trait::async_trait]
    impl BreakerStore for OneBreaker {
        async fn load(&self, _: &str) -> Result<(BreakerState, u64), StoreError> {
            Ok(self.0.lock().unwrap().clone())
        }

        async fn save(&self, _: &str, state: &BreakerState, expected: u64) -> Result<(), StoreError> {
            let mut stored = self.0.lock().unwrap();
            if stored.1 != expected {
                return Err(StoreError::Conflict);
            }
            *stored = (state.clone(), expected + 1);
            Ok(())
        }
    }

    struct At(DateTime<Utc>);

    impl Clock for At {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    #[tokio::test]
    async fn a_probe_answered_with_a_client_error_closes_the_breaker() {
        let store = Arc::new(OneBreaker(std::sync::Mutex::new((BreakerState::Open { until: at(10) }, 1))));
        let breaker = CircuitBreaker::new("provider", store.clone(), policy(), Arc::new(At(at(10))));
        let unwell = |status: &u16| *status >= 500;
        let answer = breaker.call(async { Err::<(), u16>(422) }, unwell).await;
        assert_eq!(answer, Ok(Err(422)), "the probe went");
        assert_eq!(breaker.state().await.unwrap(), BreakerState::Closed { failures: 0 });
        // Closed, the same answer neither opens nor closes anything.
        let answer = breaker.call(async { Err::<(), u16>(422) }, unwell).await;
        assert_eq!(answer, Ok(Err(422)));
        assert_eq!(breaker.state().await.unwrap(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn serialises_for_a_shared_store() {
        let state = BreakerState::Open { until: at(10) };
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains("\"state\":\"open\""));
        assert_eq!(serde_json::from_str::<BreakerState>(&json).unwrap(), state);
    }
}
