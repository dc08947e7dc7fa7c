//! The destination against hand-written answers (wiremock): how it reads bodies the sandbox
//! never sends, such as a 2xx carrying a gateway's `message` or an error.

mod destination_support;

use clari_copilot::config::DestinationConfig;
use clari_copilot::destination::WriteSummary;
use destination_support::*;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Writes one account against `server` in `mode` under `policy`.
async fn write_one_account(
    server: &MockServer,
    policy: &str,
    mode: &str,
) -> (clari_copilot::error::Result<WriteSummary>, Vec<String>) {
    let config = DestinationConfig::from_value(&json!({
        "api_key": "k", "api_secret": "s", "base_url": server.uri(),
        "requests_per_second": 200, "on_rejected_record": policy,
    }))
    .unwrap();
    let input = Input::new()
        .record("accounts", account(1, 1))
        .global_state(1);
    run_with(&config, &modes(&["accounts"], mode), &input).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_with_only_a_message_field_is_a_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/create-account"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "x", "message": "Created"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (result, _) = write_one_account(&server, "fail", "append").await;
    assert_eq!(result.unwrap().written, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_up_answered_200_with_an_error_is_not_an_existing_object() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/get-account"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errorMessage": "lookup failed"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(0)
        .mount(&server)
        .await;
    let (result, lines) = write_one_account(&server, "skip", "append_dedup").await;
    let summary = result.unwrap();
    assert_eq!((summary.written, summary.rejected), (0, 1));
    let warnings = logs(&lines, "WARN");
    assert!(
        warnings.iter().any(|w| w.contains("lookup failed")),
        "{warnings:?}"
    );
}
