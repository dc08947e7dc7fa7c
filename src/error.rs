//! The connector's one error type, and the single place that decides how each failure is
//! reported: its `failure_type` and the message a user can act on.
//!
//! `Display` is the internal message (what happened, for the logs and `internal_message`);
//! [`Error::user_message`] is the sentence shown in the Airbyte UI.

use std::time::Duration;

use crate::protocol::{ErrorTrace, FailureType, StreamDescriptor};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config does not satisfy the spec, or a value in it cannot be used.
    // The detail alone: [`Error::user_message`] says "The configuration is invalid" once.
    #[error("{0}")]
    Config(String),

    /// The API refused the credentials (401/403).
    #[error("{method} {path} answered HTTP {status}: {body}")]
    Auth {
        method: String,
        path: String,
        status: u16,
        body: String,
    },

    /// An HTTP status the connector does not retry, or one that kept failing past the retry budget.
    #[error("{method} {path} answered HTTP {status} after {}: {body}", tries(*attempts, *elapsed))]
    Http {
        method: String,
        path: String,
        status: u16,
        attempts: u32,
        /// Time from the first attempt to the last answer.
        elapsed: Duration,
        body: String,
    },

    /// The API kept answering 429 past the retry budget.
    #[error("{method} {path} was rate limited (HTTP {status}) on {}", tries(*attempts, *elapsed))]
    RateLimited {
        method: String,
        path: String,
        attempts: u32,
        elapsed: Duration,
        status: u16,
        /// The last answer's body, shortened.
        body: String,
    },

    /// The request never got an HTTP answer (DNS, refused connection, reset, timeout).
    #[error("{method} {path} failed after {}: {detail}", tries(*attempts, *elapsed))]
    Transport {
        method: String,
        path: String,
        attempts: u32,
        elapsed: Duration,
        detail: String,
    },

    /// The API redirected a request away from `base_url`'s origin, and the connector refused
    /// to follow (the credentials would have gone along).
    #[error("{method} {path}: {detail}")]
    Redirected {
        method: String,
        path: String,
        detail: String,
    },

    /// The API answered 200 with an HTML page: `base_url` most likely names a website.
    #[error("{path} returned an HTML page instead of JSON")]
    HtmlPage { path: String },

    /// The API answered 200 with a body the connector cannot use.
    #[error("{path} returned an unusable body: {detail}")]
    InvalidResponse { path: String, detail: String },

    /// A file or stdin line given to the connector is unreadable (catalog, state, messages).
    #[error("{what}: {detail}")]
    Input { what: String, detail: String },

    /// A time window holds more records than `skip` can reach and cannot be split further.
    #[error("{0}")]
    SkipCap(String),

    /// A time window kept changing on every read and cannot be cut any finer.
    #[error("{0}")]
    Unstable(String),

    /// A record the write schema or the API rejected, under the `fail` rejection policy.
    #[error("record on line {line} of stream {stream:?} rejected: {reason}")]
    RecordRejected {
        stream: String,
        line: u64,
        reason: String,
    },

    /// A RECORD on the destination's input for a stream the configured catalog lacks.
    #[error("line {line}: record for stream {stream:?}, which is not in the configured catalog")]
    UnconfiguredStream { stream: String, line: u64 },

    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }

    pub fn input(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Error::Input {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    pub fn failure_type(&self) -> FailureType {
        match self {
            Error::Config(_)
            | Error::Auth { .. }
            | Error::Redirected { .. }
            | Error::HtmlPage { .. }
            | Error::Input { .. }
            | Error::RecordRejected { .. } => FailureType::ConfigError,
            Error::RateLimited { .. } | Error::Transport { .. } | Error::Unstable(_) => {
                FailureType::TransientError
            }
            Error::Http { status, .. } if *status >= 500 => FailureType::TransientError,
            Error::Http { .. }
            | Error::InvalidResponse { .. }
            | Error::SkipCap(_)
            | Error::UnconfiguredStream { .. }
            | Error::Io(_) => FailureType::SystemError,
        }
    }

    /// What the user should read, and ideally do.
    pub fn user_message(&self) -> String {
        match self {
            Error::Config(message) => format!("The configuration is invalid: {message}."),
            Error::Auth { status, .. } => format!(
                "Clari Copilot rejected the credentials (HTTP {status}). Check the API key and the API password \
                 (Copilot Workspace Settings > Integrations > Clari Copilot API)."
            ),
            Error::Http {
                status,
                path,
                attempts,
                elapsed,
                ..
            } if *status >= 500 => format!(
                "Clari Copilot kept failing with HTTP {status} on {path} ({}). This is usually temporary: the \
                 next sync resumes from the last checkpoint.",
                tries(*attempts, *elapsed)
            ),
            Error::Http {
                status, path, body, ..
            } => {
                format!("Clari Copilot refused a request to {path} (HTTP {status}): {body}")
            }
            Error::RateLimited {
                attempts, elapsed, ..
            } => format!(
                "Clari Copilot kept rate limiting the connector (HTTP 429, {}). The next sync resumes from \
                 the last checkpoint; lower `requests_per_second` if other tools share this API key.",
                tries(*attempts, *elapsed)
            ),
            Error::Transport {
                detail,
                attempts,
                elapsed,
                ..
            } => format!(
                "Could not reach Clari Copilot after {} ({detail}). Check the network and the `base_url` \
                 setting.",
                tries(*attempts, *elapsed)
            ),
            Error::Redirected {
                method,
                path,
                detail,
            } => format!("{method} {path}: {detail}. {}.", check_base_url()),
            Error::HtmlPage { path } => format!(
                "The address in `base_url` answered {path} with an HTML page, not Clari Copilot's \
                 JSON. {}, not a website.",
                check_base_url()
            ),
            Error::InvalidResponse { path, .. } => {
                format!(
                    "Clari Copilot returned a response from {path} that is not the expected JSON."
                )
            }
            Error::Input { what, detail } => format!("The {what} is invalid: {detail}"),
            Error::SkipCap(message) | Error::Unstable(message) => message.clone(),
            Error::RecordRejected {
                stream,
                line,
                reason,
            } => format!(
                "The record on line {line} of stream `{stream}` was rejected: {reason}. Fix the record in the \
                 source, or set `on_rejected_record` to `skip` to log and count such records instead of failing."
            ),
            Error::UnconfiguredStream { stream, line } => format!(
                "Line {line} of the input holds a record for stream `{stream}`, which is not in the configured \
                 catalog. Refresh the connection's schema so the catalog and the source agree."
            ),
            Error::Io(error) => format!("An I/O error stopped the connector: {error}"),
        }
    }

    /// This error as the last of a request's retries, the first of which was `elapsed` ago.
    pub fn after(mut self, elapsed: Duration) -> Self {
        if let Error::Http { elapsed: e, .. }
        | Error::RateLimited { elapsed: e, .. }
        | Error::Transport { elapsed: e, .. } = &mut self
        {
            *e = elapsed;
        }
        self
    }

    /// True when `check` answers this failure with a FAILED connection status (exit 0) rather
    /// than a TRACE ERROR: the user can fix it from the connection form (config, credentials,
    /// address, network, a request the API refuses), so it is the form's verdict, not the
    /// connector's crash. Server errors, rate limits and unusable bodies stay errors: nothing
    /// in the form would fix them.
    pub fn fails_check(&self) -> bool {
        match self {
            Error::Http { status, .. } => (400..500).contains(status),
            other => matches!(
                other,
                Error::Config(_)
                    | Error::Auth { .. }
                    | Error::Input { .. }
                    | Error::Transport { .. }
                    | Error::Redirected { .. }
                    | Error::HtmlPage { .. }
            ),
        }
    }

    /// True when the request reached the API and the credentials were refused.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. })
    }

    pub fn trace(&self, stream: Option<&str>) -> ErrorTrace {
        ErrorTrace {
            message: self.user_message(),
            internal_message: Some(self.to_string()),
            failure_type: self.failure_type(),
            stream_descriptor: stream.map(StreamDescriptor::named),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The advice of every failure that says `base_url` is not the API.
fn check_base_url() -> String {
    format!(
        "Check the `base_url` setting: it must be the API's own address ({} unless Clari says \
         otherwise)",
        crate::config::DEFAULT_BASE_URL
    )
}

/// "1 attempt", or "9 attempts over 4 min 15 s": how hard a request was tried.
fn tries(attempts: u32, elapsed: Duration) -> String {
    match attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts over {}", span(elapsed)),
    }
}

/// A duration as people read it: "850 ms", "12 s", "4 min 15 s".
pub fn span(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0 => format!("{} ms", duration.as_millis()),
        1..60 => format!("{seconds} s"),
        _ if seconds.is_multiple_of(60) => format!("{} min", seconds / 60),
        _ => format!("{} min {} s", seconds / 60, seconds % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_largest_units_that_fit() {
        assert_eq!(span(Duration::from_millis(850)), "850 ms");
        assert_eq!(span(Duration::from_millis(12_400)), "12 s");
        assert_eq!(span(Duration::from_secs(255)), "4 min 15 s");
        assert_eq!(span(Duration::from_secs(600)), "10 min");
    }

    fn http(status: u16) -> Error {
        Error::Http {
            method: "GET".into(),
            path: "/users".into(),
            status,
            attempts: 1,
            elapsed: Duration::ZERO,
            body: String::new(),
        }
    }

    #[test]
    fn check_fails_on_what_the_connection_form_can_fix_and_errors_on_the_rest() {
        let fixable = [
            Error::config("bad"),
            Error::Auth {
                method: "GET".into(),
                path: "/users".into(),
                status: 401,
                body: String::new(),
            },
            Error::input("config file", "unreadable"),
            Error::Transport {
                method: "GET".into(),
                path: "/users".into(),
                attempts: 1,
                elapsed: Duration::ZERO,
                detail: "refused".into(),
            },
            Error::Redirected {
                method: "GET".into(),
                path: "/users".into(),
                detail: "elsewhere".into(),
            },
            Error::HtmlPage {
                path: "/users".into(),
            },
            http(404),
        ];
        for error in fixable {
            assert!(error.fails_check(), "{error:?} should answer FAILED");
        }
        let not_fixable = [
            http(503),
            Error::RateLimited {
                method: "GET".into(),
                path: "/users".into(),
                attempts: 9,
                elapsed: Duration::ZERO,
                status: 429,
                body: String::new(),
            },
            Error::InvalidResponse {
                path: "/users".into(),
                detail: "not JSON".into(),
            },
            Error::Io(std::io::Error::other("disk")),
        ];
        for error in not_fixable {
            assert!(!error.fails_check(), "{error:?} should be a TRACE ERROR");
        }
    }

    #[test]
    fn a_request_given_up_says_how_many_attempts_over_how_long() {
        let error = Error::Transport {
            method: "GET".into(),
            path: "/users".into(),
            attempts: 9,
            elapsed: Duration::ZERO,
            detail: "connection failed".into(),
        }
        .after(Duration::from_secs(255));
        for text in [error.to_string(), error.user_message()] {
            assert!(text.contains("9 attempts over 4 min 15 s"), "{text}");
        }
    }
}
