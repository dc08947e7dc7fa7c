//! Shared helpers of the destination tests: a sandbox, configs and catalogs, input builders,
//! and readers of what the destination wrote.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, Once};

use clari_copilot::config::DestinationConfig;
use clari_copilot::destination::{self, WriteSummary};
use clari_copilot::protocol::output::MemorySink;
use clari_copilot::protocol::{ConfiguredCatalog, Output};
use clari_copilot_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// A sandbox with default data; retries back off in milliseconds, not seconds.
pub async fn start() -> Sandbox {
    static FAST_RETRIES: Once = Once::new();
    FAST_RETRIES.call_once(|| {
        // SAFETY: every test calls this before any code that reads the environment, and
        // `Once` makes the others wait until it is done.
        unsafe { std::env::set_var("CLARI_COPILOT_RETRY_MIN_DELAY_MS", "5") };
    });
    Sandbox::start(SandboxConfig::default()).await.unwrap()
}

pub fn config_value(sandbox: &Sandbox, policy: &str, requests_per_second: u32) -> Value {
    json!({
        "api_key": "sandbox-key",
        "api_secret": "sandbox-password",
        "base_url": sandbox.base_url(),
        "requests_per_second": requests_per_second,
        "on_rejected_record": policy,
    })
}

pub fn config(sandbox: &Sandbox, policy: &str, requests_per_second: u32) -> DestinationConfig {
    DestinationConfig::from_value(&config_value(sandbox, policy, requests_per_second)).unwrap()
}

/// A configured catalog of `(stream, destination_sync_mode, destination_object_name)`.
pub fn catalog(streams: &[(&str, &str, Option<&str>)]) -> ConfiguredCatalog {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(name, mode, object)| {
            json!({
                "stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                "sync_mode": "full_refresh",
                "destination_sync_mode": mode,
                "destination_object_name": object,
            })
        })
        .collect();
    serde_json::from_value(json!({ "streams": streams })).unwrap()
}

/// Each object as a stream of its own name, all in `mode`.
pub fn modes(objects: &[&str], mode: &str) -> ConfiguredCatalog {
    let streams: Vec<_> = objects.iter().map(|o| (*o, mode, None)).collect();
    catalog(&streams)
}

pub fn account(i: usize, version: u32) -> Value {
    json!({"crm_id": format!("acc-{i}"), "name": format!("accounts {i} v{version}"), "city": "Lyon",
           "x_unknown": {"kept": [1.5, "yes"]}})
}

pub fn contact(i: usize, version: u32) -> Value {
    json!({"crm_id": format!("con-{i}"), "account_crm_id": format!("acc-{i}"),
           "first_name": format!("contacts {i} v{version}"), "emails": ["c@example.com"]})
}

pub fn deal(i: usize, version: u32) -> Value {
    json!({"crm_id": format!("deal-{i}"), "deal_name": format!("deals {i} v{version}"), "amount": "1000.50",
           "account_crm_id": format!("acc-{i}")})
}

pub fn call(i: usize, version: u32) -> Value {
    json!({"source_id": format!("call-{i}"), "call_time": "2024-05-01T10:00:00Z", "type": "RECORDING",
           "audio_url": "https://example.com/a.mp3", "source_user_ids": ["u-1"], "title": format!("calls {i} v{version}")})
}

pub fn object_record(object: &str, i: usize, version: u32) -> Value {
    match object {
        "accounts" => account(i, version),
        "contacts" => contact(i, version),
        "deals" => deal(i, version),
        "calls" => call(i, version),
        other => panic!("no builder for {other}"),
    }
}

/// Lines for the destination's stdin.
#[derive(Clone, Default)]
pub struct Input {
    lines: Vec<String>,
    unterminated: Option<String>,
    /// Index in `lines` of each record, in order.
    records: Vec<usize>,
}

impl Input {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(mut self, stream: &str, data: Value) -> Self {
        self.records.push(self.lines.len());
        let line =
            json!({"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": 1}});
        self.lines.push(line.to_string());
        self
    }

    /// For each `i`, one record of each object.
    pub fn records_of(mut self, objects: &[&str], range: Range<usize>, version: u32) -> Self {
        for i in range {
            for object in objects {
                self = self.record(object, object_record(object, i, version));
            }
        }
        self
    }

    /// A STREAM state whose blob says how many records precede it (`upto`).
    pub fn stream_state(self, stream: &str, upto: usize) -> Self {
        self.raw(
            &json!({"type": "STATE", "state": {"type": "STREAM",
                "stream": {"stream_descriptor": {"name": stream}, "stream_state": {"upto": upto}},
                "sourceStats": {"recordCount": 1.0}}})
            .to_string(),
        )
    }

    pub fn global_state(self, n: u32) -> Self {
        self.raw(
            &json!({"type": "STATE", "state": {"type": "GLOBAL",
                "global": {"shared_state": {"n": n}, "stream_states": []}}})
            .to_string(),
        )
    }

    pub fn raw(mut self, line: &str) -> Self {
        self.lines.push(line.to_owned());
        self
    }

    /// A last line without its newline.
    pub fn raw_unterminated(mut self, text: &str) -> Self {
        self.unterminated = Some(text.to_owned());
        self
    }

    /// The input from the line after the `n`-th record (1-based) on: what a replay from the
    /// state echoed after that record sends.
    pub fn after_record(&self, n: usize) -> Input {
        let start = self.records[n - 1] + 1;
        Input {
            lines: self.lines[start..].to_vec(),
            unterminated: self.unterminated.clone(),
            records: self.records[n..].iter().map(|i| i - start).collect(),
        }
    }

    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        if let Some(tail) = &self.unterminated {
            text.push_str(tail);
        }
        text
    }

    pub fn reader(&self) -> Box<dyn Read + Send> {
        Box::new(std::io::Cursor::new(self.text().into_bytes()))
    }
}

/// Runs a write against the sandbox; returns its result and every output line.
pub async fn run(
    sandbox: &Sandbox,
    policy: &str,
    catalog: &ConfiguredCatalog,
    input: &Input,
) -> (clari_copilot::error::Result<WriteSummary>, Vec<String>) {
    run_with(&config(sandbox, policy, 200), catalog, input).await
}

/// Runs a write with a given config, the secrets registered as the CLI does.
pub async fn run_with(
    config: &DestinationConfig,
    catalog: &ConfiguredCatalog,
    input: &Input,
) -> (clari_copilot::error::Result<WriteSummary>, Vec<String>) {
    let sink = MemorySink::default();
    let output = Output::new(Box::new(sink.clone()));
    output.add_secrets(config.api.secrets());
    let result = destination::write(config, catalog, input.reader(), Arc::clone(&output)).await;
    output.flush().unwrap();
    (result, sink.contents().lines().map(str::to_owned).collect())
}

/// The messages of the LOG lines at `level`.
pub fn logs(lines: &[String], level: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["type"] == "LOG" && m["log"]["level"] == level)
        .map(|m| m["log"]["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `upto` of every echoed STREAM state in `text`, in output order.
pub fn echoed_states(text: &str) -> Vec<usize> {
    text.lines()
        .filter(|l| l.starts_with(r#"{"type":"STATE""#))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|m| m["state"]["stream"]["stream_state"]["upto"].as_u64())
        .map(|n| n as usize)
        .collect()
}
