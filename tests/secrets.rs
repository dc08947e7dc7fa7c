//! Credentials never appear in any output, even when the API echoes the request's headers
//! back in an error body. Every run here goes through `common::process::finish` or
//! `common::parse_lines`, which fail on any occurrence of the test credentials.

mod common;

use common::process::{Files, arg, run};
use common::*;
use serde_json::json;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

/// Answers `status` with a body quoting every request header, as a careless gateway might.
struct EchoHeaders(u16);

impl Respond for EchoHeaders {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let headers: Vec<String> = request
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or_default()))
            .collect();
        ResponseTemplate::new(self.0).set_body_json(json!({"errorMessage": headers.join("; ")}))
    }
}

async fn echo_server(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(EchoHeaders(status))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn no_command_prints_a_credential_even_when_errors_echo_the_headers() {
    for status in [400, 401, 403, 404, 500, 502] {
        let server = echo_server(status).await;
        let files = Files::new();
        let config = files.json("config.json", &config_json(&server.uri(), json!({})));
        let catalog = files.json(
            "catalog.json",
            &serde_json::to_value(catalog(&[
                ("users", "full_refresh"),
                ("calls", "incremental"),
            ]))
            .unwrap(),
        );
        for args in [
            vec!["check".to_owned(), "--config".to_owned(), arg(&config)],
            vec!["discover".to_owned(), "--config".to_owned(), arg(&config)],
            vec![
                "read".to_owned(),
                "--config".to_owned(),
                arg(&config),
                "--catalog".to_owned(),
                arg(&catalog),
            ],
        ] {
            let ran = run(args.clone()).await;
            assert!(
                !ran.messages.is_empty(),
                "{args:?} answered HTTP {status} with no output"
            );
        }
    }
}

#[tokio::test]
async fn an_in_process_read_scrubs_echoed_credentials_from_its_error_traces() {
    let server = echo_server(400).await;
    let run = read(
        config_json(&server.uri(), json!({})),
        &catalog(&[("users", "full_refresh")]),
        &json!([]),
    )
    .await;
    let message = run.errors()[0]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("x-api-key: **********"),
        "the echo was quoted, masked: {message}"
    );
}

#[tokio::test]
async fn a_config_file_that_is_not_json_is_not_quoted_back() {
    let files = Files::new();
    let config = files.text(
        "config.json",
        &format!("{{\"api_key\": \"{KEY}\", \"api_secret\": \"{PASSWORD}\""),
    );
    let ran = run(vec!["check".into(), "--config".into(), arg(&config)]).await;
    assert_eq!(ran.code, Some(0));
    assert_eq!(
        ran.messages.last().unwrap()["connectionStatus"]["status"],
        "FAILED"
    );
}
