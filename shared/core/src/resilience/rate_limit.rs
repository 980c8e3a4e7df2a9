//! Token buckets: each principal has a bucket of `burst` tokens refilled at
//! `rate` per second; a request takes one or is refused until one is back.
//! Bursts up to `burst` pass at once, the long-run rate is `rate`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub per_second: f64,
    pub burst: u32,
}

impl Bucket {
    /// `"10/s:20"`: 10 per second, bursts of 20 (`"10/s"` means burst = rate;
    /// `/m` for per minute).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let err = || format!("{raw:?} is not a limit like 10/s:20 (rate per second or per minute, then burst)");
        let (rate, burst) = match raw.trim().split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (raw.trim(), None),
        };
        let (amount, unit) = rate.split_once('/').ok_or_else(err)?;
        let amount: f64 = amount.trim().parse().map_err(|_| err())?;
        let per_second = match unit.trim() {
            "s" => amount,
            "m" => amount / 60.0,
            _ => return Err(err()),
        };
        let burst = match burst {
            Some(b) => b.trim().parse().map_err(|_| err())?,
            None => amount.ceil() as u32,
        };
        if !(per_second > 0.0 && per_second.is_finite()) || burst == 0 {
            return Err(err());
        }
        Ok(Self { per_second, burst })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketState {
    pub tokens: f64,
    pub updated_at_ms: i64,
}

/// The answer, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset_after: Duration,
    /// Until the next token, when refused.
    pub retry_after: Duration,
}

/// Takes a token from `state` (a missing state is a full bucket) at `now_ms`.
pub fn take(state: Option<BucketState>, bucket: &Bucket, now_ms: i64) -> (BucketState, Decision) {
    let burst = f64::from(bucket.burst);
    let tokens = match state {
        None => burst,
        Some(s) => {
            let elapsed = (now_ms - s.updated_at_ms).max(0) as f64 / 1000.0;
            (s.tokens + elapsed * bucket.per_second).min(burst)
        }
    };
    let allowed = tokens >= 1.0;
    let left = if allowed { tokens - 1.0 } else { tokens };
    let seconds = |missing: f64| Duration::from_secs_f64((missing / bucket.per_second).max(0.0));
    let decision = Decision {
        allowed,
        limit: bucket.burst,
        remaining: left.floor().max(0.0) as u32,
        reset_after: seconds(burst - left),
        retry_after: if allowed { Duration::ZERO } else { seconds(1.0 - left) },
    };
    (BucketState { tokens: left, updated_at_ms: now_ms }, decision)
}

/// The same bucket kept as one number, its *theoretical arrival time* (the
/// generic cell rate algorithm): the instant the bucket would be full again.
/// A take moves it one interval (1 / rate) later, counting from now if it
/// lies in the past, and is allowed while it stays within `burst` intervals
/// of now. The decisions are [`take`]'s; what changes is that a shared store
/// can apply a take as one conditional arithmetic write (`tat = tat +
/// interval if tat <= now + tolerance`) with no read before it — one round
/// trip per request instead of a read and a compare-and-set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrivalTime {
    interval_ms: f64,
    burst: u32,
}

impl ArrivalTime {
    pub fn new(bucket: &Bucket) -> Self {
        Self { interval_ms: 1000.0 / bucket.per_second, burst: bucket.burst }
    }

    /// How much later one take moves the arrival time.
    pub fn interval_ms(&self) -> f64 {
        self.interval_ms
    }

    /// The latest stored arrival time at which a take at `now_ms` still passes.
    pub fn latest_allowed(&self, now_ms: f64) -> f64 {
        now_ms + f64::from(self.burst - 1) * self.interval_ms
    }

    /// The arrival time after a take at `now_ms` that is allowed.
    pub fn after_take(&self, stored_ms: Option<f64>, now_ms: f64) -> f64 {
        stored_ms.unwrap_or(now_ms).max(now_ms) + self.interval_ms
    }

    /// The decision for an allowed take that left the arrival time at `tat_ms`.
    pub fn allowed(&self, tat_ms: f64, now_ms: f64) -> Decision {
        self.decision(true, tat_ms, now_ms)
    }

    /// The decision for a refused take, the stored arrival time being `tat_ms`.
    pub fn refused(&self, tat_ms: f64, now_ms: f64) -> Decision {
        self.decision(false, tat_ms, now_ms)
    }

    fn decision(&self, allowed: bool, tat_ms: f64, now_ms: f64) -> Decision {
        let ahead = (tat_ms - now_ms).max(0.0);
        let millis = |ms: f64| Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        // Tokens left; the epsilon keeps 1.9999999 (a non-terminating
        // interval added up) from reporting one token too few.
        let left = f64::from(self.burst) - ahead / self.interval_ms;
        Decision {
            allowed,
            limit: self.burst,
            remaining: (left + 1e-9).floor().max(0.0) as u32,
            reset_after: millis(ahead),
            retry_after: if allowed { Duration::ZERO } else { millis(tat_ms - self.latest_allowed(now_ms)) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let bucket = Bucket { per_second: 2.0, burst: 3 };
        let mut state = None;
        for expected_remaining in [2, 1, 0] {
            let (next, decision) = take(state, &bucket, 0);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            state = Some(next);
        }
        let (next, refused) = take(state, &bucket, 0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        // Half a second later one token is back.
        let (_, later) = take(Some(next), &bucket, 500);
        assert!(later.allowed);
    }

    #[test]
    fn the_bucket_never_holds_more_than_the_burst() {
        let bucket = Bucket { per_second: 10.0, burst: 2 };
        let (state, _) = take(None, &bucket, 0);
        let (_, decision) = take(Some(state), &bucket, 3_600_000);
        assert_eq!(decision.remaining, 1);
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let bucket = Bucket { per_second: 1.0, burst: 1 };
        let (state, _) = take(None, &bucket, 10_000);
        assert!(!take(Some(state), &bucket, 0).1.allowed);
    }

    #[test]
    fn parses_limits() {
        assert_eq!(Bucket::parse("10/s:20").unwrap(), Bucket { per_second: 10.0, burst: 20 });
        assert_eq!(Bucket::parse("5/s").unwrap(), Bucket { per_second: 5.0, burst: 5 });
        assert_eq!(Bucket::parse("120/m:10").unwrap(), Bucket { per_second: 2.0, burst: 10 });
        for bad in ["", "10", "10/h", "0/s", "-1/s", "x/s", "10/s:0", "10/s:x"] {
            assert!(Bucket::parse(bad).is_err(), "{bad}");
        }
    }

    /// The arrival-time form answers like the token bucket, take after take.
    #[test]
    fn arrival_time_decides_as_the_token_bucket_does() {
        let bucket = Bucket { per_second: 3.0, burst: 4 };
        let gcra = ArrivalTime::new(&bucket);
        let (mut state, mut tat) = (None, None::<f64>);
        for now_ms in [0, 0, 10, 20, 30, 300, 333, 334, 700, 5_000, 5_001, 5_002, 5_003, 5_004, 5_400] {
            let (next, expected) = take(state, &bucket, now_ms);
            let now = now_ms as f64;
            let got = if tat.unwrap_or(f64::MIN) <= gcra.latest_allowed(now) {
                let after = gcra.after_take(tat, now);
                tat = Some(after);
                gcra.allowed(after, now)
            } else {
                gcra.refused(tat.expect("a refusal has a stored time"), now)
            };
            assert_eq!(got.allowed, expected.allowed, "at {now_ms} ms");
            assert_eq!(got.remaining, expected.remaining, "at {now_ms} ms");
            let close = |a: Duration, b: Duration| a.abs_diff(b) < Duration::from_micros(10);
            assert!(close(got.retry_after, expected.retry_after), "at {now_ms} ms: {got:?} vs {expected:?}");
            assert!(close(got.reset_after, expected.reset_after), "at {now_ms} ms: {got:?} vs {expected:?}");
            if expected.allowed {
                state = Some(next);
            }
        }
    }
}
