//! The source binary as Airbyte runs it: protocol-only stdout, snapshot-tested spec and
//! catalog, check statuses, clear errors for bad input, and resuming a killed read.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::process::{Files, arg, command, finish, run, run_with_env};
use common::*;
use serde_json::{Value, json};

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn spec_prints_exactly_one_spec_matching_the_snapshot() {
    let ran = run(args(&["spec"])).await;
    assert_eq!(ran.code, Some(0));
    assert_eq!(ran.messages.len(), 1);
    insta::assert_json_snapshot!("source_spec", ran.messages[0]);
}

#[tokio::test]
async fn discover_prints_exactly_one_catalog_matching_the_snapshot() {
    let files = Files::new();
    let config = files.config("http://127.0.0.1:9", json!({}));
    let ran = run(args(&["discover", "--config", &arg(&config)])).await;
    assert_eq!(ran.code, Some(0));
    assert_eq!(ran.messages.len(), 1);
    let streams = ran.messages[0]["catalog"]["streams"].as_array().unwrap();
    for stream in streams {
        assert_eq!(
            stream["supported_sync_modes"][0], "full_refresh",
            "full_refresh comes first"
        );
    }
    insta::assert_json_snapshot!("source_catalog", ran.messages[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_succeeds_with_good_credentials_and_fails_cleanly_with_bad_ones() {
    let sandbox = start(sandbox_config(10)).await;
    let files = Files::new();
    let good = files.json("good.json", &config_json(&sandbox.base_url(), json!({})));
    let ran = run(args(&["check", "--config", &arg(&good)])).await;
    assert_eq!(ran.code, Some(0));
    assert_eq!(
        ran.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"],
        "SUCCEEDED"
    );

    let bad = files.json(
        "bad.json",
        &config_json(
            &sandbox.base_url(),
            json!({"api_secret": "wrong-password-123"}),
        ),
    );
    let ran = run(args(&["check", "--config", &arg(&bad)])).await;
    assert_eq!(ran.code, Some(0), "a FAILED check still exits 0");
    let statuses = ran.of_type("CONNECTION_STATUS");
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0]["connectionStatus"]["status"], "FAILED");
    assert!(
        statuses[0]["connectionStatus"]["message"]
            .as_str()
            .unwrap()
            .contains("API key")
    );
    assert!(
        !serde_json::to_string(&ran.messages)
            .unwrap()
            .contains("wrong-password-123")
    );

    let invalid = files.json(
        "invalid.json",
        &json!({"api_key": KEY, "api_secret": PASSWORD, "page_size": 0}),
    );
    let ran = run(args(&["check", "--config", &arg(&invalid)])).await;
    assert_eq!(ran.code, Some(0));
    let message = ran.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("page_size"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_against_an_html_page_fails_with_a_hint_to_check_base_url() {
    let sandbox = start(sandbox_config(10)).await;
    sandbox.faults().set_malformed_body(true);
    let files = Files::new();
    let config = files.config(&sandbox.base_url(), json!({}));
    let ran = run(args(&["check", "--config", &arg(&config)])).await;
    assert_eq!(ran.code, Some(0), "a FAILED check still exits 0");
    assert!(ran.errors().is_empty());
    let statuses = ran.of_type("CONNECTION_STATUS");
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0]["connectionStatus"]["status"], "FAILED");
    let message = statuses[0]["connectionStatus"]["message"].as_str().unwrap();
    assert!(
        message.contains("HTML") && message.contains("`base_url`"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_json_of_the_wrong_shape_is_exactly_one_trace_error_and_a_failure_exit() {
    let sandbox = start(sandbox_config(10)).await;
    sandbox.faults().set_unexpected_json(true);
    let files = Files::new();
    let config = files.config(&sandbox.base_url(), json!({}));
    let ran = run(args(&["check", "--config", &arg(&config)])).await;
    assert_ne!(ran.code, Some(0));
    assert_eq!(ran.of_type("TRACE").len(), 1);
    assert!(ran.of_type("CONNECTION_STATUS").is_empty());
    assert_eq!(ran.errors()[0]["failure_type"], "system_error");
}

#[tokio::test]
async fn an_invalid_catalog_is_a_trace_error_naming_the_problem() {
    let files = Files::new();
    let config = files.config("http://127.0.0.1:9", json!({}));
    let catalog = files.json(
        "catalog.json",
        &json!({"streams": [{"stream": {"name": "__AIRBYTE__stream_that_does_not_exist", "json_schema": {},
            "supported_sync_modes": ["full_refresh"]}, "sync_mode": "INVALID", "destination_sync_mode": "INVALID"}]}),
    );
    let ran = run(args(&[
        "read",
        "--config",
        &arg(&config),
        "--catalog",
        &arg(&catalog),
    ]))
    .await;
    assert_ne!(ran.code, Some(0));
    let errors = ran.errors();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]["message"].as_str().unwrap().contains("catalog"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0]["internal_message"]
            .as_str()
            .unwrap()
            .contains("INVALID")
    );
}

#[tokio::test]
async fn unreadable_config_catalog_and_state_files_each_get_a_clear_config_error() {
    let files = Files::new();
    let good_config = files.config("http://127.0.0.1:9", json!({}));
    let catalog = files.catalog(&[("calls", "incremental")]);
    let cases = [
        (
            "config",
            files.text("c.json", "{not json"),
            catalog.clone(),
            None,
            "config",
        ),
        (
            "catalog",
            good_config.clone(),
            files.text("cat.json", "[]"),
            None,
            "catalog",
        ),
        (
            "state",
            good_config.clone(),
            catalog.clone(),
            Some(files.text("s.json", "{\"calls\": 5")),
            "state",
        ),
        (
            "cursor",
            good_config.clone(),
            catalog.clone(),
            Some(files.json(
                "s2.json",
                &json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "calls"},
                "stream_state": {"last_modified_time": "soon"}}}]),
            )),
            "soon",
        ),
    ];
    for (what, config, catalog, state, needle) in cases {
        let mut argv = args(&[
            "read",
            "--config",
            &arg(&config),
            "--catalog",
            &arg(&catalog),
        ]);
        if let Some(state) = &state {
            argv.extend(args(&["--state", &arg(state)]));
        }
        let ran = run(argv).await;
        assert_ne!(ran.code, Some(0), "{what}");
        let errors = ran.errors();
        assert!(!errors.is_empty(), "{what}: no TRACE ERROR");
        let text = errors.iter().map(|e| e.to_string()).collect::<String>();
        assert!(text.contains(needle), "{what}: {text}");
        assert!(
            errors.iter().all(|e| e["failure_type"] == "config_error"),
            "{what}: {text}"
        );
        assert_eq!(
            text.matches("is invalid").count(),
            errors.len(),
            "{what}: said once per error: {text}"
        );
    }
}

#[tokio::test]
async fn a_command_line_error_is_a_trace_error_not_usage_text_on_stdout() {
    let ran = run(args(&["read", "--config"])).await;
    assert_eq!(ran.code, Some(2));
    assert_eq!(ran.errors().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_killed_midway_and_resumed_from_its_last_state_loses_nothing() {
    // Dense enough that the skip cap splits the range into several checkpointed windows.
    let sandbox = start(sandbox_config(25_000)).await;
    sandbox.faults().set_latency(Duration::from_millis(2));
    let files = Files::new();
    let config = files.config(&sandbox.base_url(), json!({}));
    let catalog = files.catalog(&[("calls", "incremental")]);
    let expected = visible_call_ids(&sandbox, false);

    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut state = json!([]);
    // Kill after the second checkpoint of each run, resuming each time from the last state.
    let kill_after_states = 2;
    let mut kills = 0;
    for _ in 0..3 {
        let state_file = files.json("state.json", &state);
        let (lines, killed) = tokio::task::spawn_blocking({
            let (config, catalog) = (arg(&config), arg(&catalog));
            let state_file = arg(&state_file);
            move || {
                let mut child = command(&[
                    "read",
                    "--config",
                    &config,
                    "--catalog",
                    &catalog,
                    "--state",
                    &state_file,
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
                let reader = BufReader::new(child.stdout.take().unwrap());
                let mut lines = Vec::new();
                let mut states = 0;
                let mut killed = false;
                for line in reader.lines() {
                    let line = line.unwrap();
                    if line.contains("\"type\":\"STATE\"") {
                        states += 1;
                    }
                    lines.push(line);
                    if states == kill_after_states {
                        child.kill().unwrap();
                        killed = true;
                        break;
                    }
                }
                child.wait().unwrap();
                (lines, killed)
            }
        })
        .await
        .unwrap();
        kills += usize::from(killed);
        for line in &lines {
            let message: Value = serde_json::from_str(line).unwrap();
            if message["type"] == "RECORD" {
                seen.insert(message["record"]["data"]["id"].as_str().unwrap().to_owned());
            }
            if message["type"] == "STATE" {
                state = json!([message["state"]]);
            }
        }
    }
    assert!(
        kills >= 2,
        "the read finished before it could be killed twice"
    );
    let state_file = files.json("state.json", &state);
    let finished = tokio::task::spawn_blocking(move || {
        finish(
            command(&[
                "read",
                "--config",
                &arg(&config),
                "--catalog",
                &arg(&catalog),
                "--state",
                &arg(&state_file),
            ])
            .output()
            .unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(finished.code, Some(0));
    for message in finished.of_type("RECORD") {
        seen.insert(message["record"]["data"]["id"].as_str().unwrap().to_owned());
    }
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "{} calls lost across kills: {missing:?}",
        missing.len()
    );
}

/// The one CONNECTION_STATUS of a `check` that exited 0, as (status, message).
fn connection_status(ran: &common::process::Ran) -> (String, String) {
    assert_eq!(ran.code, Some(0), "check exits 0: {:?}", ran.messages);
    let statuses = ran.of_type("CONNECTION_STATUS");
    assert_eq!(statuses.len(), 1, "{:?}", ran.messages);
    let status = &statuses[0]["connectionStatus"];
    (
        status["status"].as_str().unwrap().to_owned(),
        status["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The text of every WARN log line of a run.
/// Settings under which a sync would pass calls without reading them, with words their
/// refusal must say.
fn settings_that_would_read_nothing() -> [(Value, &'static [&'static str]); 3] {
    [
        (
            json!({"call_details_statuses": []}),
            &["call_details_statuses"],
        ),
        (
            json!({"call_details_statuses": ["POST_PROCESSING_DONE", " "]}),
            &["call_details_statuses", "blank"],
        ),
        (
            json!({"start_date": "2999-01-01T00:00:00Z"}),
            &["start_date", "2999-01-01T00:00:00Z", "future", "no call"],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_settings_that_would_read_nothing_without_a_request() {
    let sandbox = start(sandbox_config(10)).await;
    let files = Files::new();
    for (overrides, needles) in settings_that_would_read_nothing() {
        let config = files.json(
            "config.json",
            &config_json(&sandbox.base_url(), overrides.clone()),
        );
        let ran = run(args(&["check", "--config", &arg(&config)])).await;
        let (status, message) = connection_status(&ran);
        assert_eq!(status, "FAILED", "{overrides}");
        for needle in needles {
            assert!(message.contains(needle), "{overrides}: {message}");
        }
    }
    assert_eq!(sandbox.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_refuses_settings_that_would_read_nothing_with_a_config_error_before_any_request() {
    let sandbox = start(sandbox_config(10)).await;
    let files = Files::new();
    let catalog = files.json(
        "catalog.json",
        &serde_json::to_value(catalog(&[
            ("calls", "incremental"),
            ("call-details", "incremental"),
        ]))
        .unwrap(),
    );
    for (overrides, needles) in settings_that_would_read_nothing() {
        let config = files.json(
            "config.json",
            &config_json(&sandbox.base_url(), overrides.clone()),
        );
        let ran = run(read_args(&config, &catalog)).await;
        ran.assert_one_config_error(&overrides, needles);
        assert!(ran.of_type("RECORD").is_empty() && ran.of_type("STATE").is_empty());
    }
    assert_eq!(sandbox.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_refuses_a_state_it_did_not_write_naming_the_accepted_shapes_before_any_request() {
    let sandbox = start(sandbox_config(10)).await;
    let files = Files::new();
    let config = files.config(&sandbox.base_url(), json!({}));
    let catalog = files.catalog(&[("calls", "incremental")]);
    let unusable = [
        json!({"cursor": "2024-01-01T00:00:00Z"}),
        json!({"calls": {"lastModifiedTime": "2024-01-01T00:00:00Z"}}),
        json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "calls"},
            "stream_state": {"cursor": "2024-01-01T00:00:00Z"}}}]),
    ];
    for state in unusable {
        let state_file = files.json("state.json", &state);
        let mut with_state = read_args(&config, &catalog);
        with_state.extend(["--state".to_owned(), arg(&state_file)]);
        let ran = run(with_state).await;
        ran.assert_one_config_error(
            &state,
            &[
                "state",
                "STREAM, GLOBAL or LEGACY",
                "calls, call-details",
                "reset",
            ],
        );
    }
    assert_eq!(sandbox.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undocumented_call_status_is_kept_with_a_warning_in_check_and_read() {
    let sandbox = start(sandbox_config(10)).await;
    let files = Files::new();
    let config = files.config(
        &sandbox.base_url(),
        json!({"call_details_statuses": ["post_processing_done", "TRANSCRIBED"]}),
    );
    let catalog = files.catalog(&[("users", "full_refresh")]);
    let check = run(args(&["check", "--config", &arg(&config)])).await;
    assert_eq!(connection_status(&check).0, "SUCCEEDED");
    let read = run(args(&[
        "read",
        "--config",
        &arg(&config),
        "--catalog",
        &arg(&catalog),
    ]))
    .await;
    assert_eq!(read.code, Some(0), "{:?}", read.errors());
    for ran in [&check, &read] {
        let warnings: Vec<&str> = ran
            .logs("WARN")
            .into_iter()
            .filter(|w| w.contains("call_details_statuses"))
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("\"TRANSCRIBED\"") && warnings[0].contains("BOTJOIN_DENIED"),
            "names the status and the documented ones: {}",
            warnings[0]
        );
        assert!(
            !warnings[0].contains("post_processing_done"),
            "a status in the wrong case is normalised, not warned about: {}",
            warnings[0]
        );
    }
}

fn read_args(config: &std::path::Path, catalog: &std::path::Path) -> Vec<String> {
    args(&["read", "--config", &arg(config), "--catalog", &arg(catalog)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_the_read_once_with_every_stream_incomplete() {
    let sandbox = start(sandbox_config(10)).await;
    let files = Files::new();
    let config = files.config(
        &sandbox.base_url(),
        json!({"api_secret": "wrong-password-123"}),
    );
    let streams = [
        ("users", "full_refresh"),
        ("calls", "incremental"),
        ("scorecard", "incremental"),
    ];
    let catalog = files.catalog(&streams);
    let ran = run(read_args(&config, &catalog)).await;
    assert_eq!(ran.code, Some(1));
    let errors = ran.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["failure_type"], "config_error");
    assert!(
        errors[0].get("stream_descriptor").is_none(),
        "{}",
        errors[0]
    );
    for (stream, _) in streams {
        let statuses = ran.statuses(stream);
        assert_eq!(
            statuses.first().map(String::as_str),
            Some("STARTED"),
            "{stream}"
        );
        assert_eq!(
            statuses.last().map(String::as_str),
            Some("INCOMPLETE"),
            "{stream}"
        );
    }
    assert_eq!(
        sandbox.requests().len(),
        1,
        "the API was asked again after refusing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_config_keys_and_an_ignored_cursor_field_are_warned_about() {
    let sandbox = start(sandbox_config(10)).await;
    let files = Files::new();
    let config = files.config(
        &sandbox.base_url(),
        json!({"start_data": "2024-01-01T00:00:00Z", "page_sise": 10, "_comment": "ok"}),
    );
    let mut catalog = serde_json::to_value(catalog(&[("calls", "incremental")])).unwrap();
    catalog["streams"][0]["cursor_field"] = json!(["call_time"]);
    let catalog = files.json("catalog.json", &catalog);
    let ran = run(read_args(&config, &catalog)).await;
    assert_eq!(ran.code, Some(0), "still accepted");
    let warnings = ran.logs("WARN").join("\n");
    for needle in [
        "start_data",
        "page_sise",
        "`call_time` is ignored",
        "last_modified_time",
    ] {
        assert!(warnings.contains(needle), "{needle}: {warnings}");
    }
    assert!(!warnings.contains("_comment"), "{warnings}");
}

#[tokio::test]
async fn an_unknown_stream_names_the_configured_catalog_and_suggests_refreshing_the_schema() {
    let files = Files::new();
    let config = files.config("http://127.0.0.1:9", json!({}));
    let mut catalog = serde_json::to_value(catalog(&[("users", "full_refresh")])).unwrap();
    catalog["streams"][0]["stream"]["name"] = json!("meetings");
    let catalog = files.json("catalog.json", &catalog);
    let ran = run(read_args(&config, &catalog)).await;
    assert_eq!(ran.code, Some(1));
    let message = ran.errors()[0]["message"].as_str().unwrap().to_owned();
    for needle in [
        "configured catalog",
        "\"meetings\"",
        "Refresh the source schema",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_an_unreachable_api_are_warned_and_the_error_says_how_long_and_how_often() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let files = Files::new();
    let config = files.config(&base_url, json!({}));
    let catalog = files.catalog(&[("users", "full_refresh")]);
    let ran = run(read_args(&config, &catalog)).await;
    assert_eq!(ran.code, Some(1));
    let warnings = ran.logs("WARN");
    let first = warnings
        .iter()
        .find(|w| w.contains("GET /users"))
        .unwrap_or_else(|| panic!("no WARN about the retries: {warnings:?}"));
    assert!(
        first.contains("attempt 1") && first.contains("retrying in"),
        "{first}"
    );
    let message = ran.errors()[0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("after 9 attempts over"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_debug_shows_a_line_per_request() {
    let sandbox = start(sandbox_config(10)).await;
    let files = Files::new();
    let config = files.config(&sandbox.base_url(), json!({}));
    let catalog = files.catalog(&[("users", "full_refresh")]);
    let ran = run_with_env(read_args(&config, &catalog), &[("LOG_LEVEL", "debug")]).await;
    assert_eq!(ran.code, Some(0));
    let debug = ran.logs("DEBUG");
    assert!(
        debug
            .iter()
            .any(|line| line.contains("GET /users") && line.contains("HTTP 200")),
        "{debug:?}"
    );
}

#[tokio::test]
async fn every_configuration_problem_says_the_configuration_is_invalid_once_the_same_way() {
    let files = Files::new();
    let configs = [
        files.text("unreadable.json", "{not json"),
        files.json(
            "bounds.json",
            &json!({"api_key": KEY, "api_secret": PASSWORD, "page_size": 500}),
        ),
        files.json(
            "empty.json",
            &json!({"api_key": " ", "api_secret": PASSWORD}),
        ),
    ];
    for config in configs {
        let ran = run(args(&["discover", "--config", &arg(&config)])).await;
        assert_eq!(ran.code, Some(1));
        let error = ran.errors()[0].to_string();
        let message = ran.errors()[0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("The configuration is invalid: "),
            "{message}"
        );
        assert_eq!(error.matches("invalid").count(), 1, "{error}");
    }
}
