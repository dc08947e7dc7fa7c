//! The HTTP client of both roles: authentication headers, the one rate limiter every request
//! waits on, and the retry loop driven by [`retry::classify_status`].
//!
//! The client knows nothing about streams or records: it turns a request into a final HTTP
//! answer or a classified [`Error`]. Callers interpret the bodies.

pub mod retry;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{CONTENT_TYPE, DATE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};

use crate::config::ApiSettings;
use crate::error::{Error, Result};
pub use retry::RetryPolicy;
use retry::{Action, TransportFailure, classify_status, classify_transport};

/// Fraction of the configured rate actually used; see [`pacing`].
const PACING_MARGIN: f64 = 0.95;

/// Longest error body quoted in a message: enough to read Clari's `errorMessage`.
const ERROR_BODY_LIMIT: usize = 300;

/// One request to the API.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Whether replaying the request after an unknown outcome is harmless.
    pub idempotent: bool,
    /// Whether the caller would rather get a 502 back at once and retry with a smaller page.
    pub shrinkable: bool,
}

impl Request {
    pub fn get(path: impl Into<String>, query: Vec<(String, String)>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            query,
            body: None,
            idempotent: true,
            shrinkable: false,
        }
    }

    pub fn json(method: Method, path: impl Into<String>, body: Vec<u8>, idempotent: bool) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
            idempotent,
            shrinkable: false,
        }
    }
}

/// A final HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: bytes::Bytes,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, shortened for an error message.
    pub fn body_snippet(&self) -> String {
        snippet(&self.body)
    }

    /// This answer as the error of `method path`, reached after `attempts` attempts.
    pub fn error(&self, method: &Method, path: &str, attempts: u32) -> Error {
        Error::Http {
            method: method.to_string(),
            path: path.to_owned(),
            status: self.status,
            attempts,
            body: self.body_snippet(),
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    base_url: String,
    limiter: DefaultDirectRateLimiter,
    /// Queue in front of the limiter; see [`Client::wait_for_turn`].
    turn: tokio::sync::Mutex<()>,
    policy: RetryPolicy,
    sent: AtomicU64,
    rate_limited: AtomicU64,
    /// The API's clock minus ours, in milliseconds, from the first answer's `Date` header;
    /// [`UNKNOWN_SKEW`] until then.
    skew: AtomicI64,
}

const UNKNOWN_SKEW: i64 = i64::MIN;

impl Client {
    pub fn new(settings: &ApiSettings, policy: RetryPolicy) -> Result<Arc<Self>> {
        let mut headers = HeaderMap::new();
        for (name, secret) in [
            ("x-api-key", &settings.api_key),
            ("x-api-password", &settings.api_secret),
        ] {
            let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
                Error::config(format!(
                    "the {name} value contains characters not allowed in a header"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("airbyte-clari-copilot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(policy.request_timeout)
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        let limiter = RateLimiter::direct(pacing(settings.requests_per_second));
        Ok(Arc::new(Self {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            limiter,
            turn: tokio::sync::Mutex::new(()),
            policy,
            sent: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            skew: AtomicI64::new(UNKNOWN_SKEW),
        }))
    }

    /// The retry policy every request of this client follows.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Requests sent so far (retries included): what this run cost of the weekly quota.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// HTTP 429 answers received so far.
    pub fn rate_limited_answers(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// How far the API's clock is ahead of this machine's (negative: behind), in milliseconds,
    /// as the `Date` header of the first answer showed; `None` before any answer had one.
    ///
    /// `Date` has whole seconds and is truncated, so the figure errs up to a second towards
    /// the API's clock being behind: the safe side for a bound that must not pass it.
    pub fn server_skew_millis(&self) -> Option<i64> {
        Some(self.skew.load(Ordering::Relaxed)).filter(|skew| *skew != UNKNOWN_SKEW)
    }

    /// Notes the skew of the API's clock from an answer's `Date`, if none was noted yet.
    fn note_server_clock(&self, headers: &HeaderMap) {
        if self.server_skew_millis().is_some() {
            return;
        }
        let date = headers
            .get(DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| {
                jiff::fmt::rfc2822::DateTimeParser::new()
                    .parse_timestamp(text)
                    .ok()
            });
        if let Some(date) = date {
            let skew = date.as_millisecond() - jiff::Timestamp::now().as_millisecond();
            let _ = self.skew.compare_exchange(
                UNKNOWN_SKEW,
                skew,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// GETs `path` and returns the body of a 2xx answer; any other final answer is an error.
    pub async fn get(&self, path: &str, query: Vec<(String, String)>) -> Result<bytes::Bytes> {
        self.get_request(Request::get(path, query)).await
    }

    /// Like [`Client::get`] for a prepared request (e.g. a shrinkable page).
    pub async fn get_request(&self, request: Request) -> Result<bytes::Bytes> {
        let path = request.path.clone();
        let response = self.execute(request).await?;
        if response.is_success() {
            Ok(response.body)
        } else {
            Err(response.error(&Method::GET, &path, 1))
        }
    }

    /// Sends a request, retrying what the classification table says is worth retrying.
    /// Returns every final answer (2xx and the 4xx a caller interprets); 401/403 and exhausted
    /// retries are errors.
    pub async fn execute(&self, request: Request) -> Result<Response> {
        let mut delays = self.policy.schedule();
        let mut rate_limited_delays = self.policy.rate_limited_schedule();
        // Clari documents no signal for an exhausted weekly quota: 429s that persist past the
        // patience budget are treated as one, instead of sleeping for days.
        let mut rate_limited_since: Option<Instant> = None;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.wait_for_turn().await;
            self.sent.fetch_add(1, Ordering::Relaxed);
            let outcome = self.attempt(&request).await;
            let (retry_after, failure) = match outcome {
                Ok((response, retry_after)) => match classify_status(response.status) {
                    Action::Done => return Ok(response),
                    Action::Unauthorized => {
                        return Err(Error::Auth {
                            method: request.method.to_string(),
                            path: request.path.clone(),
                            status: response.status,
                            body: response.body_snippet(),
                        });
                    }
                    Action::BadGateway if request.shrinkable => {
                        return Err(response.error(&request.method, &request.path, attempts));
                    }
                    Action::RateLimited => {
                        // A 429 was not processed, so replaying it is safe for any request.
                        self.rate_limited.fetch_add(1, Ordering::Relaxed);
                        let since = *rate_limited_since.get_or_insert_with(Instant::now);
                        let wait = retry_after.unwrap_or_else(|| {
                            rate_limited_delays.next().unwrap_or(self.policy.max_delay)
                        });
                        // The wait itself counts: a server asking for more than the patience
                        // left is answered with a stop, not a sleep.
                        if since.elapsed() + wait > self.policy.rate_limit_patience {
                            return Err(Error::RateLimited {
                                method: request.method.to_string(),
                                path: request.path.clone(),
                                attempts,
                            });
                        }
                        self.pause(&request, wait, "HTTP 429").await;
                        continue;
                    }
                    Action::Retry | Action::BadGateway if request.idempotent => (
                        retry_after,
                        response.error(&request.method, &request.path, attempts),
                    ),
                    Action::Retry | Action::BadGateway => {
                        return Err(response.error(&request.method, &request.path, attempts));
                    }
                },
                Err((failure, detail)) => {
                    let error = Error::Transport {
                        method: request.method.to_string(),
                        path: request.path.clone(),
                        attempts,
                        detail,
                    };
                    if failure == TransportFailure::Unknown && !request.idempotent {
                        return Err(error);
                    }
                    (None, error)
                }
            };
            rate_limited_since = None;
            let Some(backoff) = delays.next() else {
                return Err(failure);
            };
            self.pause(
                &request,
                retry_after.unwrap_or(backoff),
                &failure.to_string(),
            )
            .await;
        }
    }

    /// Waits until the rate limiter lets this request go, in the order requests asked.
    ///
    /// The limiter alone admits whichever waiter happens to poll first, so the page a caller
    /// needs next could be sent last; an ordered page pipeline then stalls behind it for a whole
    /// round trip with no request left waiting, and the rate goes unused. Tokio's mutex is
    /// fair, so queueing on it first makes the limiter first come, first served.
    async fn wait_for_turn(&self) {
        let _turn = self.turn.lock().await;
        self.limiter.until_ready().await;
    }

    async fn pause(&self, request: &Request, delay: std::time::Duration, reason: &str) {
        tracing::debug!(
            "retrying {} {} in {delay:?}: {reason}",
            request.method,
            request.path
        );
        tokio::time::sleep(delay).await;
    }

    /// One attempt: the status, the whole body, and a `Retry-After` if the server sent one.
    async fn attempt(
        &self,
        request: &Request,
    ) -> std::result::Result<(Response, Option<std::time::Duration>), (TransportFailure, String)>
    {
        let url = format!("{}{}", self.base_url, request.path);
        let mut builder = self
            .http
            .request(request.method.clone(), &url)
            .query(&request.query);
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(|e| (classify_transport(&e), describe(&e)))?;
        let status = response.status();
        self.note_server_clock(response.headers());
        let retry_after = retry_after(response.headers(), status);
        let body = response
            .bytes()
            .await
            .map_err(|e| (TransportFailure::Unknown, describe(&e)))?;
        Ok((
            Response {
                status: status.as_u16(),
                body,
            },
            retry_after,
        ))
    }
}

/// Requests are spaced evenly (a burst of one) and 5% under the configured rate: a server
/// counting arrivals in a rolling second must never see more than the limit, even when network
/// jitter brings two requests closer together than they left.
fn pacing(requests_per_second: u32) -> Quota {
    let rate = f64::from(requests_per_second.max(1)) * PACING_MARGIN;
    let period = std::time::Duration::from_secs_f64(1.0 / rate);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN)
}

fn retry_after(headers: &HeaderMap, status: StatusCode) -> Option<std::time::Duration> {
    if status.is_success() {
        return None;
    }
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::Duration::from_secs(seconds.min(600)))
}

/// A transport error without its URL (which carries no secret, but is noise in a user message).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the response body was cut off"
    } else {
        "request failed"
    };
    let mut detail = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(ERROR_BODY_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
