//! The fault matrix: each fault either leaves the read complete or fails it with a clear TRACE
//! ERROR, never silently short. Plus the process's manners: SIGTERM and a closed stdout.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use clari_copilot::client::RetryPolicy;
use common::process::{Files, arg, command};
use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recoverable_fault_still_returns_every_record() {
    let streams = catalog(&[
        ("calls", "incremental"),
        ("scorecard", "full_refresh"),
        ("users", "full_refresh"),
    ]);
    type Fault = fn(&clari_copilot_sandbox::Faults);
    let faults: [(&str, Fault); 6] = [
        ("connections reset mid-body", |f| {
            f.set_reset_connection_every(5)
        }),
        ("429 bursts", |f| f.fail_every(3, 429)),
        ("500s", |f| f.fail_every(4, 500)),
        ("502s", |f| f.fail_every(4, 502)),
        ("503s", |f| f.fail_every(5, 503)),
        ("504s", |f| f.fail_every(6, 504)),
    ];
    for (name, inject) in faults {
        let sandbox = start(sandbox_config(1_500)).await;
        let calm = read(
            config_json(&sandbox.base_url(), json!({"page_size": 50})),
            &streams,
            &json!([]),
        )
        .await;
        inject(sandbox.faults());
        let faulty = read(
            config_json(&sandbox.base_url(), json!({"page_size": 50})),
            &streams,
            &json!([]),
        )
        .await;
        assert!(faulty.errors().is_empty(), "{name}: {:?}", faulty.errors());
        for (stream, key) in [("calls", "id"), ("scorecard", "id"), ("users", "id")] {
            assert_eq!(
                faulty.ids(stream, key),
                calm.ids(stream, key),
                "{name}: {stream} differs"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_slower_than_the_timeout_are_retried() {
    let sandbox = start(sandbox_config(300)).await;
    sandbox.faults().set_latency(Duration::from_millis(400));
    let handle = sandbox.handle();
    // The API recovers after a while, by which time several attempts have timed out.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        handle.faults().set_latency(Duration::ZERO);
    });
    let sink = clari_copilot::protocol::output::MemorySink::default();
    let output = clari_copilot::protocol::Output::new(Box::new(sink.clone()));
    let config = clari_copilot::config::SourceConfig::from_value(&config_json(
        &sandbox.base_url(),
        json!({}),
    ))
    .unwrap();
    let policy = RetryPolicy {
        request_timeout: Duration::from_millis(150),
        ..fast_retries()
    };
    let state = clari_copilot::source::InputState::default();
    let summary = clari_copilot::source::read(
        &config,
        &catalog(&[("calls", "incremental")]),
        &state,
        &output,
        policy,
    )
    .await
    .unwrap();
    assert!(summary.failed_streams.is_empty());
    output.flush().unwrap();
    let ids: std::collections::BTreeSet<String> = parse_lines(&sink.contents())
        .iter()
        .filter(|m| m["type"] == "RECORD")
        .map(|m| m["record"]["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, visible_call_ids(&sandbox, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_fails_the_stream_with_a_clear_error_never_silently_short() {
    let sandbox = start(sandbox_config(200)).await;
    sandbox.faults().set_truncate_body(true);
    let run = read(
        config_json(&sandbox.base_url(), json!({})),
        &catalog(&[("calls", "incremental"), ("users", "full_refresh")]),
        &json!([]),
    )
    .await;
    assert_eq!(
        run.summary.as_ref().unwrap().failed_streams,
        ["calls", "users"]
    );
    for error in run.errors() {
        assert!(
            error["internal_message"]
                .as_str()
                .unwrap()
                .contains("not a JSON object"),
            "{error}"
        );
        assert_eq!(error["failure_type"], "system_error");
    }
    assert!(
        run.states("calls").is_empty(),
        "no checkpoint claims the unread window"
    );
}

fn slow_read(sandbox_url: &str, files: &Files) -> std::process::Child {
    let config = files.json(
        "config.json",
        &config_json(sandbox_url, json!({"page_size": 10})),
    );
    let catalog = files.json(
        "catalog.json",
        &serde_json::to_value(catalog(&[("calls", "full_refresh")])).unwrap(),
    );
    command(&[
        "read",
        "--config",
        &arg(&config),
        "--catalog",
        &arg(&catalog),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// PyAirbyte, like any wrapper, accepts exit 0 or death by SIGTERM after terminating a
/// connector, and only the signal tells it the sync was cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_marks_the_running_stream_incomplete_and_ends_killed_by_the_signal() {
    let sandbox = start(sandbox_config(2_000)).await;
    sandbox.faults().set_latency(Duration::from_millis(50));
    let files = Files::new();
    let mut child = slow_read(&sandbox.base_url(), &files);
    let (lines, status, stderr) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 0 {
            let first_record = line.contains("\"type\":\"RECORD\"")
                && !lines.iter().any(|l: &String| l.contains("RECORD"));
            lines.push(std::mem::take(&mut line));
            if first_record {
                std::process::Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()
                    .unwrap();
            }
        }
        let output = child.wait_with_output().unwrap();
        (
            lines,
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(SIGTERM), "{status:?}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let messages: Vec<Value> = lines
        .iter()
        .map(|line| {
            assert!(line.ends_with('\n'), "a cut line: {line}");
            serde_json::from_str::<Value>(line).unwrap()
        })
        .collect();
    let last_status = messages
        .iter()
        .rposition(|m| m["trace"]["stream_status"].is_object())
        .expect("stream statuses");
    assert_eq!(
        messages[last_status]["trace"]["stream_status"]["status"],
        "INCOMPLETE"
    );
    assert!(
        messages[last_status..]
            .iter()
            .all(|m| m["type"] != "RECORD"),
        "a record after INCOMPLETE"
    );
}

/// SIGTERM's number on every Unix this runs on.
const SIGTERM: i32 = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_the_read_quietly() {
    let sandbox = start(sandbox_config(2_000)).await;
    sandbox.faults().set_latency(Duration::from_millis(20));
    let files = Files::new();
    let mut child = slow_read(&sandbox.base_url(), &files);
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("\"type\":\"RECORD\"") {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        drop(reader);
        let output = child.wait_with_output().unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
