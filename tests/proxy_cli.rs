//! `proxy`: raw authenticated requests from the command line.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::process::{BIN, Files, arg};
use common::*;
use serde_json::{Value, json};

struct Proxied {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `proxy --config <config> <args>` with `stdin`.
async fn proxy(config: &Path, args: &[&str], stdin: Option<String>) -> Proxied {
    let config = arg(config);
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(BIN)
            .args(["proxy", "--config", &config])
            .args(&args)
            .env("CLARI_COPILOT_RETRY_MIN_DELAY_MS", "2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        let proxied = Proxied {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        for text in [&proxied.stdout, &proxied.stderr] {
            assert!(
                !text.contains(KEY) && !text.contains(PASSWORD),
                "a credential leaked: {text}"
            );
        }
        proxied
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_prints_the_body_on_stdout_and_the_status_on_stderr() {
    let sandbox = start(sandbox_config(20)).await;
    let files = Files::new();
    let config = files.json("config.json", &config_json(&sandbox.base_url(), json!({})));
    let out = proxy(
        &config,
        &["GET", "/calls?limit=2&includePagination=true"],
        None,
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr.trim(), "HTTP 200");
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(body["calls"].as_array().unwrap().len(), 2);
    let request = sandbox.requests().pop().unwrap();
    assert_eq!(request.path, "/calls");
    assert!(request.query.unwrap().contains("limit=2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_sends_a_json_body_from_a_file_or_stdin() {
    let sandbox = start(sandbox_config(20)).await;
    let files = Files::new();
    let config = files.json("config.json", &config_json(&sandbox.base_url(), json!({})));
    let body = files.json("account.json", &json!({"crm_id": "acc-1", "name": "Acme"}));
    let out = proxy(
        &config,
        &["POST", "/create-account", "--body", &arg(&body)],
        None,
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let stdin_body = json!({"crm_id": "acc-2", "name": "Globex"}).to_string();
    let out = proxy(
        &config,
        &["post", "/create-account", "--body", "-"],
        Some(stdin_body),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let store = sandbox.store();
    assert_eq!(store.accounts["acc-1"]["name"], "Acme");
    assert_eq!(store.accounts["acc-2"]["name"], "Globex");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_and_bad_credentials_exit_non_zero_with_the_status() {
    let sandbox = start(sandbox_config(20)).await;
    let files = Files::new();
    let config = files.json("config.json", &config_json(&sandbox.base_url(), json!({})));
    let out = proxy(&config, &["GET", "/get-account?id=missing"], None).await;
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr.trim(), "HTTP 404");

    let wrong = files.json(
        "wrong.json",
        &config_json(&sandbox.base_url(), json!({"api_secret": "not-it-999"})),
    );
    let out = proxy(&wrong, &["GET", "/users"], None).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert!(!out.stdout.contains("not-it-999") && !out.stderr.contains("not-it-999"));

    let out = proxy(
        &config,
        &["POST", "/create-account", "--body", "-"],
        Some("{oops".into()),
    )
    .await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not JSON"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_origin_is_refused_and_the_credentials_stay_home() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"users\": []}"))
        .mount(&elsewhere)
        .await;
    let home = MockServer::start().await;
    // Same machine, another origin: `localhost` and another port, as the issue reproduced.
    let target = format!("http://localhost:{}/users", elsewhere.address().port());
    Mock::given(any())
        .respond_with(ResponseTemplate::new(302).insert_header("Location", target.as_str()))
        .mount(&home)
        .await;
    let files = Files::new();
    let config = files.json("config.json", &config_json(&home.uri(), json!({})));
    let out = proxy(&config, &["GET", "/users"], None).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("redirect"), "{}", out.stderr);
    assert!(out.stderr.contains(&target), "{}", out.stderr);
    let arrived = elsewhere.received_requests().await.unwrap_or_default();
    assert!(
        arrived.iter().all(|request| {
            !request.headers.contains_key("x-api-key")
                && !request.headers.contains_key("x-api-password")
        }),
        "the credentials followed the redirect"
    );
    assert_eq!(
        home.received_requests().await.unwrap_or_default().len(),
        1,
        "not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_url_is_refused_without_sending_anything() {
    let sandbox = start(sandbox_config(5)).await;
    let files = Files::new();
    let config = files.json("config.json", &config_json(&sandbox.base_url(), json!({})));
    let out = proxy(&config, &["GET", "http://elsewhere.example/calls"], None).await;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("give a path such as /calls"),
        "{}",
        out.stderr
    );
    assert!(sandbox.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_spent_print_the_last_status_and_body_not_sync_advice() {
    let sandbox = start(sandbox_config(5)).await;
    sandbox.faults().fail_next(100, 503);
    let files = Files::new();
    let config = files.json("config.json", &config_json(&sandbox.base_url(), json!({})));
    let out = proxy(&config, &["GET", "/users"], None).await;
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr.lines().last(),
        Some("HTTP 503"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.trim().is_empty(), "no body printed");
    assert!(!out.stderr.contains("checkpoint"), "{}", out.stderr);
    assert_eq!(sandbox.requests().len(), 9, "every retry was spent first");
}
