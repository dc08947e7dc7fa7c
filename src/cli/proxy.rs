//! `proxy`: one authenticated raw request to the Clari Copilot API, through the same headers,
//! rate limiter and retries as a sync. The response body goes to stdout and the status to
//! stderr, so the body can be piped into other tools.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use reqwest::Method;

use crate::client::{Client, Request, RetryPolicy};
use crate::config::{self, ApiSettings};
use crate::error::{Error, Result};
use crate::protocol::output::scrub;

#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Config file with the credentials (a source or destination config).
    #[arg(long)]
    pub config: PathBuf,
    /// HTTP method, e.g. GET, POST, PUT, DELETE.
    pub method: String,
    /// Path and query, e.g. '/calls?limit=1'.
    pub path: String,
    /// JSON request body: a file, or `-` for stdin.
    #[arg(long)]
    pub body: Option<PathBuf>,
}

pub async fn proxy(args: ProxyArgs) -> ExitCode {
    match send(&args).await {
        Ok((status, body, secrets)) => {
            eprintln!("HTTP {status}");
            let _ = std::io::stdout().write_all(mask(&body, &secrets).as_bytes());
            if (200..400).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        // What happened (which request, how many attempts, the transport error), not the
        // advice for a sync.
        Err(error @ (Error::Transport { .. } | Error::Redirected { .. })) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {}", error.user_message());
            ExitCode::FAILURE
        }
    }
}

async fn send(args: &ProxyArgs) -> Result<(u16, String, Vec<String>)> {
    let raw = config::read_json_file(&args.config, "configuration")?;
    let api: ApiSettings = config::parse(&raw)?;
    api.validate()?;
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Error::config(format!("{:?} is not an HTTP method", args.method)))?;
    let (path, query) = split_path(&args.path)?;
    let body = match &args.body {
        None => None,
        Some(file) => Some(read_body(file)?),
    };
    // PUT and DELETE are idempotent by HTTP's rules; a POST is retried only when it was not processed.
    let idempotent = !matches!(method, Method::POST | Method::PATCH);
    let request = Request {
        method,
        path,
        query,
        body,
        idempotent,
        shrinkable: false,
    };
    let client = Client::new(&api, RetryPolicy::for_sync(&api))?;
    // A sync turns a final 401/403, or a status still failing when the retries are spent, into
    // an error that speaks of checkpoints; someone at a terminal wants the last answer itself.
    let response = match client.execute(request).await {
        Ok(response) => response,
        Err(
            Error::Auth { status, body, .. }
            | Error::Http { status, body, .. }
            | Error::RateLimited { status, body, .. },
        ) => crate::client::Response {
            status,
            body: body.into_bytes().into(),
        },
        Err(other) => return Err(other),
    };
    Ok((
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
        api.secrets(),
    ))
}

/// `/calls?limit=1&skip=2` → (`/calls`, [(limit, 1), (skip, 2)]), percent-decoded.
///
/// Only a path is accepted: the request always goes to `base_url` (with the credentials), so
/// an absolute URL such as `http://elsewhere.example/calls` would silently be sent elsewhere
/// than it says.
fn split_path(target: &str) -> Result<(String, Vec<(String, String)>)> {
    let not_a_path = |why: &str| {
        Error::input(
            "request target",
            format!(
                "{target:?} is not a path ({why}): give a path such as /calls or '/calls?limit=1'; \
                 the request always goes to the config's `base_url`"
            ),
        )
    };
    let base =
        reqwest::Url::parse("http://proxy.invalid").map_err(|e| not_a_path(&e.to_string()))?;
    let url = base.join(target).map_err(|e| not_a_path(&e.to_string()))?;
    // `//host/x` and `/\host/x` are relative references too, to another host.
    let why = if reqwest::Url::parse(target).is_ok() {
        Some("it is an absolute URL")
    } else if url.origin() != base.origin() {
        Some("it names a host")
    } else if !target.starts_with('/') {
        Some("it does not start with /")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(not_a_path(why));
    }
    let query = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok((url.path().to_owned(), query))
}

fn read_body(file: &PathBuf) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(file).map_err(|e| {
            Error::input(
                "request body",
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
    }
    serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|e| Error::input("request body", format!("it is not JSON: {e}")))?;
    Ok(body)
}

/// An API that echoes request headers must not print the credentials.
fn mask(body: &str, secrets: &[String]) -> String {
    let secrets: Vec<String> = secrets.iter().filter(|s| s.len() >= 3).cloned().collect();
    scrub(body, &secrets).unwrap_or_else(|| body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_splits_into_a_path_and_decoded_query_pairs() {
        let (path, query) =
            split_path("/calls?limit=1&filterTimeGt=2024-01-01T00%3A00%3A00Z").unwrap();
        assert_eq!(path, "/calls");
        assert_eq!(
            query,
            [
                ("limit".into(), "1".into()),
                ("filterTimeGt".into(), "2024-01-01T00:00:00Z".into())
            ]
        );
        assert_eq!(split_path("/users").unwrap(), ("/users".to_owned(), vec![]));
    }

    #[test]
    fn an_absolute_or_scheme_relative_url_is_refused_asking_for_a_path() {
        for target in [
            "http://elsewhere.example/calls",
            "https://rest-api.copilot.clari.com/calls",
            "//elsewhere.example/calls",
            "/\\elsewhere.example/calls",
            "calls",
        ] {
            let message = split_path(target).unwrap_err().user_message();
            assert!(message.contains("/calls"), "{target}: {message}");
            assert!(message.contains("not a path"), "{target}: {message}");
        }
    }

    #[test]
    fn echoed_credentials_are_masked() {
        assert_eq!(
            mask("key=abc123 pw=xyz789", &["abc123".into(), "xyz789".into()]),
            "key=********** pw=**********"
        );
    }
}
