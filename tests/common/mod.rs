//! Shared helpers of the integration tests: a sandbox-backed reader that captures the
//! protocol output, and accessors over the captured messages.
#![allow(dead_code)] // each test binary uses its own subset

pub mod process;

use std::collections::BTreeSet;
use std::time::Duration;

use clari_copilot::client::RetryPolicy;
use clari_copilot::config::SourceConfig;
use clari_copilot::protocol::output::MemorySink;
use clari_copilot::protocol::{ConfiguredCatalog, Output};
use clari_copilot::source::{self, InputState, ReadSummary};
use clari_copilot_sandbox::{RecordedRequest, Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// Distinctive credentials: any test output containing them is a leak.
pub const KEY: &str = "sbx-key-7f3a91";
pub const PASSWORD: &str = "sbx-pass-c4e2d8";

pub fn sandbox_config(calls: usize) -> SandboxConfig {
    SandboxConfig {
        api_key: KEY.into(),
        api_password: PASSWORD.into(),
        ..SandboxConfig::with_calls(calls)
    }
}

pub async fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("the sandbox starts")
}

/// A source config for `sandbox` with `overrides` merged in.
pub fn config_json(base_url: &str, overrides: Value) -> Value {
    let mut config = json!({
        "api_key": KEY,
        "api_secret": PASSWORD,
        "base_url": base_url,
        "requests_per_second": 10000,
        "lookback_window_days": 0,
        // Tests touch calls "now" and read them at once; the margin has tests of its own.
        "indexing_margin_seconds": 0,
    });
    if let (Some(target), Value::Object(extra)) = (config.as_object_mut(), overrides) {
        target.extend(extra);
    }
    config
}

/// Retries that cost milliseconds, not seconds.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
        max_retries: 8,
        request_timeout: Duration::from_secs(20),
        rate_limit_patience: Duration::from_secs(2),
    }
}

/// A configured catalog from `discover`, keeping `streams` in the given modes.
pub fn catalog(streams: &[(&str, &str)]) -> ConfiguredCatalog {
    let discovered = source::discover();
    let configured: Vec<Value> = streams
        .iter()
        .map(|(name, mode)| {
            let stream = discovered
                .streams
                .iter()
                .find(|s| s.name == *name)
                .expect("known stream");
            json!({"stream": stream, "sync_mode": mode, "destination_sync_mode": "append"})
        })
        .collect();
    serde_json::from_value(json!({ "streams": configured })).expect("valid catalog")
}

pub struct Run {
    pub messages: Vec<Value>,
    pub summary: Result<ReadSummary, String>,
}

/// Reads in-process and captures every line written.
pub async fn read(config: Value, catalog: &ConfiguredCatalog, state: &Value) -> Run {
    let sink = MemorySink::default();
    let output = Output::new(Box::new(sink.clone()));
    let config = SourceConfig::from_value(&config).expect("valid config");
    let state = InputState::from_value(state).expect("valid state");
    let summary = source::read(&config, catalog, &state, &output, fast_retries())
        .await
        .map_err(|e| e.to_string());
    output.flush().unwrap();
    let messages = parse_lines(&sink.contents());
    Run { messages, summary }
}

/// Reads `calls` (incremental, default settings) from `sandbox` with no state, and asserts the
/// read reported no error.
pub async fn read_calls_from_scratch(sandbox: &Sandbox) -> Run {
    read_from_scratch(
        config_json(&sandbox.base_url(), serde_json::json!({})),
        &[("calls", "incremental")],
    )
    .await
}

/// Reads `streams` with no state, and asserts the read reported no error.
pub async fn read_from_scratch(config: Value, streams: &[(&str, &str)]) -> Run {
    let run = read(config, &catalog(streams), &serde_json::json!([])).await;
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    run
}

/// Every line must be one JSON protocol message, and no line may carry a credential.
pub fn parse_lines(text: &str) -> Vec<Value> {
    assert!(
        !text.contains(KEY) && !text.contains(PASSWORD),
        "a credential leaked into the output"
    );
    text.lines()
        .map(|line| {
            let value: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(value["type"].is_string(), "not an Airbyte message: {line}");
            value
        })
        .collect()
}

impl Run {
    pub fn of_type(&self, kind: &str) -> impl Iterator<Item = &Value> {
        self.messages.iter().filter(move |m| m["type"] == kind)
    }

    pub fn records(&self, stream: &str) -> Vec<&Value> {
        self.of_type("RECORD")
            .filter(|m| m["record"]["stream"] == stream)
            .map(|m| &m["record"]["data"])
            .collect()
    }

    pub fn ids(&self, stream: &str, key: &str) -> BTreeSet<String> {
        self.records(stream)
            .iter()
            .map(|r| r[key].as_str().expect("string key").to_owned())
            .collect()
    }

    /// The ids of `stream`'s records, asserting that none was emitted twice: for the reads
    /// where the design allows no duplicate (`docs/source.md` lists where it does).
    pub fn unique_ids(&self, stream: &str, key: &str) -> BTreeSet<String> {
        let ids = self.ids(stream, key);
        assert_eq!(
            self.records(stream).len(),
            ids.len(),
            "{stream}: a record was emitted twice"
        );
        ids
    }

    pub fn states(&self, stream: &str) -> Vec<&Value> {
        self.of_type("STATE")
            .filter(|m| m["state"]["stream"]["stream_descriptor"]["name"] == stream)
            .collect()
    }

    /// The state input the platform would hand to the next sync.
    pub fn next_state(&self) -> Value {
        let mut latest: Vec<Value> = Vec::new();
        for message in self.of_type("STATE") {
            let state = &message["state"];
            latest.retain(|s| {
                s["stream"]["stream_descriptor"] != state["stream"]["stream_descriptor"]
            });
            latest.push(state.clone());
        }
        Value::Array(latest)
    }

    pub fn statuses(&self, stream: &str) -> Vec<String> {
        stream_statuses(&self.messages, stream)
    }

    pub fn errors(&self) -> Vec<&Value> {
        self.of_type("TRACE")
            .filter(|m| m["trace"]["type"] == "ERROR")
            .map(|m| &m["trace"]["error"])
            .collect()
    }
}

/// The stream statuses of `stream` among `messages`, in order.
pub fn stream_statuses(messages: &[Value], stream: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "STREAM_STATUS")
        .filter(|m| m["trace"]["stream_status"]["stream_descriptor"]["name"] == stream)
        .map(|m| {
            m["trace"]["stream_status"]["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Ids `/calls` serves for a config: every call but the private ones (unless included).
pub fn visible_call_ids(sandbox: &Sandbox, include_private: bool) -> BTreeSet<String> {
    let private: BTreeSet<String> = sandbox.private_call_ids().into_iter().collect();
    sandbox
        .calls_snapshot()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .filter(|id| include_private || !private.contains(id))
        .collect()
}

/// A query parameter of a recorded request, with the `:` of timestamps decoded.
pub fn query_param(request: &RecordedRequest, name: &str) -> Option<String> {
    request
        .query
        .as_deref()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .map(|value| value.replace("%3A", ":"))
}
