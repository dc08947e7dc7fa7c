//! The HTTP client of both roles: authentication headers, the one rate limiter every request
//! waits on, and the retry loop driven by [`retry::classify_status`].
//!
//! The client knows nothing about streams or records: it turns a request into a final HTTP
//! answer or a classified [`Error`]. Callers interpret the bodies.

pub mod retry;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

    /// This answer as the error of `method path`, reached after `attempts` attempts (the
    /// retry loop adds how long they took, [`Error::after`]).
    pub fn error(&self, method: &Method, path: &str, attempts: u32) -> Error {
        Error::Http {
            method: method.to_string(),
            path: path.to_owned(),
            status: self.status,
            attempts,
            elapsed: Duration::ZERO,
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
        let base_url = settings.base_url.trim_end_matches('/').to_owned();
        let home = reqwest::Url::parse(&base_url)
            .map_err(|e| Error::config(format!("`base_url` is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(same_origin_redirects(home))
            .user_agent(concat!("airbyte-clari-copilot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(policy.request_timeout)
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        let limiter = RateLimiter::direct(pacing(settings.requests_per_second));
        Ok(Arc::new(Self {
            http,
            base_url,
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
    /// retries are errors, which say how many attempts were made over how long.
    pub async fn execute(&self, request: Request) -> Result<Response> {
        let mut delays = self.policy.schedule();
        let mut rate_limited_delays = self.policy.rate_limited_schedule();
        // Clari documents no signal for an exhausted weekly quota: 429s that persist past the
        // patience budget are treated as one, instead of sleeping for days.
        let mut rate_limited_since: Option<Instant> = None;
        let started = Instant::now();
        let mut warned: Option<Duration> = None;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.wait_for_turn().await;
            self.sent.fetch_add(1, Ordering::Relaxed);
            let sent_at = Instant::now();
            let outcome = self.attempt(&request).await;
            tracing::debug!(
                "{} {} (attempt {attempts}): {} in {} ms",
                request.method,
                request.path,
                match &outcome {
                    Ok((response, _)) => format!("HTTP {}", response.status),
                    Err((_, detail)) => detail.clone(),
                },
                sent_at.elapsed().as_millis()
            );
            let (retry_after, failure, reason) = match outcome {
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
                                elapsed: started.elapsed(),
                                status: response.status,
                                body: response.body_snippet(),
                            });
                        }
                        let retry = Retry::new(&request, attempts, started, wait);
                        self.pause(retry, "HTTP 429", &mut warned).await;
                        continue;
                    }
                    Action::Retry | Action::BadGateway if request.idempotent => (
                        retry_after,
                        response.error(&request.method, &request.path, attempts),
                        format!("HTTP {}", response.status),
                    ),
                    Action::Retry | Action::BadGateway => {
                        return Err(response.error(&request.method, &request.path, attempts));
                    }
                },
                Err((TransportFailure::Refused, detail)) => {
                    return Err(Error::Redirected {
                        method: request.method.to_string(),
                        path: request.path.clone(),
                        detail,
                    });
                }
                Err((failure, detail)) => {
                    let error = Error::Transport {
                        method: request.method.to_string(),
                        path: request.path.clone(),
                        attempts,
                        elapsed: started.elapsed(),
                        detail: detail.clone(),
                    };
                    if failure == TransportFailure::Unknown && !request.idempotent {
                        return Err(error);
                    }
                    (None, error, detail)
                }
            };
            rate_limited_since = None;
            let Some(backoff) = delays.next() else {
                return Err(failure.after(started.elapsed()));
            };
            let retry = Retry::new(&request, attempts, started, retry_after.unwrap_or(backoff));
            self.pause(retry, &reason, &mut warned).await;
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

    /// Waits before the next attempt, saying so at WARN when the retries start and then every
    /// [`RETRY_WARN_INTERVAL`] they go on (at DEBUG otherwise): without it a closed port is
    /// minutes of silence followed by an error.
    async fn pause(&self, retry: Retry<'_>, reason: &str, warned: &mut Option<Duration>) {
        let Retry {
            request,
            attempts,
            elapsed,
            wait,
        } = retry;
        let line = format!(
            "{} {}: {reason} on attempt {attempts}, {} after the first; retrying in {}",
            request.method,
            request.path,
            crate::error::span(elapsed),
            crate::error::span(wait)
        );
        if warning_due(*warned, elapsed) {
            *warned = Some(elapsed);
            tracing::warn!("{line}");
        } else {
            tracing::debug!("{line}");
        }
        tokio::time::sleep(wait).await;
    }

    /// One attempt: the status, the whole body, and a `Retry-After` if the server sent one.
    async fn attempt(
        &self,
        request: &Request,
    ) -> std::result::Result<(Response, Option<Duration>), (TransportFailure, String)> {
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

/// How often a request that keeps being retried is reported at WARN.
const RETRY_WARN_INTERVAL: Duration = Duration::from_secs(30);

/// A retry about to wait: what is retried, the attempts so far and since when.
struct Retry<'a> {
    request: &'a Request,
    attempts: u32,
    /// Time since the first attempt.
    elapsed: Duration,
    wait: Duration,
}

impl<'a> Retry<'a> {
    fn new(request: &'a Request, attempts: u32, started: Instant, wait: Duration) -> Self {
        Self {
            request,
            attempts,
            elapsed: started.elapsed(),
            wait,
        }
    }
}

/// Whether a retry `elapsed` after a request's first attempt is reported at WARN: the first
/// retry is, and then one at least every [`RETRY_WARN_INTERVAL`] after the last reported.
fn warning_due(last_warned: Option<Duration>, elapsed: Duration) -> bool {
    last_warned.is_none_or(|last| elapsed.saturating_sub(last) >= RETRY_WARN_INTERVAL)
}

/// Follows a redirect only within `home`'s origin (scheme, host and port).
///
/// Every request carries `X-Api-Key` and `X-Api-Password`, and reqwest strips only its own
/// list of sensitive headers when a redirect changes host: following a redirect elsewhere
/// would hand the credentials to whoever `base_url` points at. Refusing it (rather than
/// following without the headers) also tells the user that `base_url` is not the API.
fn same_origin_redirects(home: reqwest::Url) -> reqwest::redirect::Policy {
    const MAX_REDIRECTS: usize = 10;
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.url().origin() != home.origin() {
            let refused = LeftOrigin(attempt.url().clone());
            attempt.error(refused)
        } else if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// A redirect away from `base_url`'s origin, refused so the credentials stay home.
#[derive(Debug)]
struct LeftOrigin(reqwest::Url);

impl std::fmt::Display for LeftOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The target as a person needs it: no query, and no user information it might carry.
        let mut target = self.0.clone();
        target.set_query(None);
        let _ = target.set_username("");
        let _ = target.set_password(None);
        write!(
            f,
            "the API answered with a redirect to {target}, outside `base_url`'s origin; \
             the connector does not follow it, so the credentials are not sent there"
        )
    }
}

impl std::error::Error for LeftOrigin {}

/// Requests are spaced evenly (a burst of one) and 5% under the configured rate: a server
/// counting arrivals in a rolling second must never see more than the limit, even when network
/// jitter brings two requests closer together than they left.
fn pacing(requests_per_second: u32) -> Quota {
    let rate = f64::from(requests_per_second.max(1)) * PACING_MARGIN;
    let period = Duration::from_secs_f64(1.0 / rate);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN)
}

fn retry_after(headers: &HeaderMap, status: StatusCode) -> Option<Duration> {
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
    Some(Duration::from_secs(seconds.min(600)))
}

/// A transport error without its URL (which carries no secret, but is noise in a user message).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_redirect() {
        "redirect refused"
    } else if error.is_timeout() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_reported_at_warn_first_and_then_every_half_minute() {
        let at = |seconds| Duration::from_secs(seconds);
        assert!(warning_due(None, at(0)));
        assert!(!warning_due(Some(at(0)), at(29)));
        assert!(warning_due(Some(at(0)), at(30)));
        assert!(!warning_due(Some(at(31)), at(60)));
        assert!(warning_due(Some(at(31)), at(95)));
    }
}
