//! The destination against hand-written answers (wiremock): how it reads bodies the sandbox
//! never sends, such as a 2xx carrying a gateway's `message` or an error.

mod destination_support;

use clari_copilot::config::DestinationConfig;
use destination_support::*;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config_for(server: &MockServer, policy: &str) -> DestinationConfig {
    DestinationConfig::from_value(&json!({
        "api_key": "k", "api_secret": "s", "base_url": server.uri(),
        "requests_per_second": 200, "on_rejected_record": policy,
    }))
    .unwrap()
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
    let input = Input::new()
        .record("accounts", account(1, 1))
        .global_state(1);
    let (result, _) = run_with(
        &config_for(&server, "fail"),
        &modes(&["accounts"], "append"),
        &input,
    )
    .await;
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
    let input = Input::new()
        .record("accounts", account(1, 1))
        .global_state(1);
    let (result, lines) = run_with(
        &config_for(&server, "skip"),
        &modes(&["accounts"], "append_dedup"),
        &input,
    )
    .await;
    let summary = result.unwrap();
    assert_eq!((summary.written, summary.rejected), (0, 1));
    let warnings = logs(&lines, "WARN");
    assert!(
        warnings.iter().any(|w| w.contains("lookup failed")),
        "{warnings:?}"
    );
}
