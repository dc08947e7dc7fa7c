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
