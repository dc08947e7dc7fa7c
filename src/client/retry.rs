//! The one table that decides what an HTTP answer or a transport failure means, and the
//! backoff schedule for the answers worth retrying.
//!
//! Clari Copilot sends no `Retry-After` and documents no 429, so every retry is blind
//! exponential backoff with jitter; a `Retry-After` that does appear is honoured.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::ApiSettings;

/// What to do with one attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A final answer for the caller (2xx, or a 4xx the caller interprets such as 404 or 400).
    Done,
    /// Temporary server trouble: retry after a backoff.
    Retry,
    /// HTTP 429: retry after a backoff (the request was not processed).
    RateLimited,
    /// HTTP 502, which Clari also uses for pages over ~6 MB: the caller may shrink the page.
    BadGateway,
    /// 401/403: the credentials are wrong; retrying cannot help.
    Unauthorized,
}

pub fn classify_status(status: u16) -> Action {
    match status {
        401 | 403 => Action::Unauthorized,
        429 => Action::RateLimited,
        502 => Action::BadGateway,
        408 | 500 | 503 | 504 => Action::Retry,
        _ => Action::Done,
    }
}

/// What a transport failure (no HTTP answer) means for retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// The request never left: connection refused, DNS. Safe to retry any request.
    NotSent,
    /// The request may have been processed (timeout, reset mid-way). Retry only idempotent requests.
    Unknown,
    /// The connector refused to follow a redirect (away from `base_url`'s origin, or one too
    /// many): retrying gets the same redirect, so it is final.
    Refused,
}

pub fn classify_transport(error: &reqwest::Error) -> TransportFailure {
    if error.is_redirect() {
        TransportFailure::Refused
    } else if error.is_connect() {
        TransportFailure::NotSent
    } else {
        TransportFailure::Unknown
    }
}

/// How many times and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_retries: usize,
    /// Timeout of one attempt, body included.
    pub request_timeout: Duration,
    /// How long answers of HTTP 429 may go on before the request is given up.
    pub rate_limit_patience: Duration,
}

/// Environment override of the first backoff delay, in milliseconds. Only tests and benchmarks
/// against the local sandbox set it, so fault storms do not cost real seconds.
pub const MIN_DELAY_ENV: &str = "CLARI_COPILOT_RETRY_MIN_DELAY_MS";

impl RetryPolicy {
    /// The policy of a sync: about four minutes of patience before a request is given up.
    pub fn sync() -> Self {
        Self::with_env_min_delay(Self {
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retries: 8,
            request_timeout: Duration::from_secs(120),
            rate_limit_patience: Duration::from_secs(600),
        })
    }

    /// The policy of a sync against `settings`: [`RetryPolicy::sync`] with the configured
    /// patience for HTTP 429.
    pub fn for_sync(settings: &ApiSettings) -> Self {
        Self {
            rate_limit_patience: Duration::from_secs(
                u64::from(settings.rate_limit_patience_minutes) * 60,
            ),
            ..Self::sync()
        }
    }

    /// The policy of `check`: it must answer within seconds.
    pub fn check() -> Self {
        Self::with_env_min_delay(Self {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(2),
            max_retries: 2,
            request_timeout: Duration::from_secs(10),
            rate_limit_patience: Duration::from_secs(5),
        })
    }

    fn with_env_min_delay(mut self) -> Self {
        if let Some(ms) = std::env::var(MIN_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            self.min_delay = Duration::from_millis(ms);
            self.max_delay = self
                .max_delay
                .min(Duration::from_millis(ms.saturating_mul(8).max(1)));
        }
        self
    }

    /// The jittered exponential delays between attempts; its length is the retry budget.
    pub fn schedule(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        self.exponential(self.max_retries)
    }

    /// The delays after HTTP 429: unbounded in count, bounded by `rate_limit_patience`.
    pub fn rate_limited_schedule(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        self.exponential(usize::MAX)
    }

    fn exponential(&self, times: usize) -> impl Iterator<Item = Duration> + Send + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(times)
            .with_jitter()
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table_matches_the_documented_api_behaviour() {
        assert_eq!(classify_status(200), Action::Done);
        assert_eq!(classify_status(400), Action::Done);
        assert_eq!(classify_status(404), Action::Done);
        assert_eq!(classify_status(401), Action::Unauthorized);
        assert_eq!(classify_status(403), Action::Unauthorized);
        assert_eq!(classify_status(429), Action::RateLimited);
        assert_eq!(classify_status(502), Action::BadGateway);
        for status in [500, 503, 504, 408] {
            assert_eq!(classify_status(status), Action::Retry, "{status}");
        }
    }

    #[test]
    fn the_schedule_is_bounded_by_the_retry_budget() {
        let policy = RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_retries: 5,
            request_timeout: Duration::from_secs(1),
            rate_limit_patience: Duration::from_secs(1),
        };
        let delays: Vec<_> = policy.schedule().collect();
        assert_eq!(delays.len(), 5);
        // Jitter adds at most one more delay's worth on top of the cap.
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(80)),
            "{delays:?}"
        );
    }
}
