//! The README's first command, `cargo run --release --example demo`: starts the fake Clari
//! Copilot API (the sandbox crate) and runs the source's check, discover, a full and an
//! incremental read on it, printing a short summary.
//!
//! It drives both the sandbox and the connector library in-process, so it needs no binary: an
//! example, unlike a test, gets no `CARGO_BIN_EXE_*` path, and one process is simpler to run
//! and to stop. Flags are the sandbox's (`--calls`, `--seed`, `--rate-limit`, `--latency-ms`,
//! ...), after `--`; `--port` is ignored, the demo's sandbox takes a free one.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use clari_copilot::client::RetryPolicy;
use clari_copilot::config::{self, SourceConfig};
use clari_copilot::error::{Error, Result};
use clari_copilot::protocol::log_layer::{self, LogSink};
use clari_copilot::protocol::output::{MASK, MemorySink};
use clari_copilot::protocol::{ConfiguredCatalog, Output};
use clari_copilot::source::{self, InputState};
use clari_copilot_sandbox::{Sandbox, SandboxConfig, SandboxOptions};
use serde_json::{Value, json};

/// Run check, discover, a full and an incremental read on a local sandbox, and print a summary.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Cli {
    #[command(flatten)]
    tenant: SandboxOptions,
}

// Two workers, as for the connector's commands: plenty for a rate-limited client and its fake.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let mut options = Cli::parse().tenant;
    options.port = 0;
    // Plain warnings on stderr, as for the connector's commands for people.
    log_layer::install(LogSink::Stderr);
    let sandbox = match options.start().await {
        Ok(sandbox) => sandbox,
        Err(e) => return fail(&format!("cannot start the sandbox: {e}")),
    };
    match run_demo(&sandbox, &options.config()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.user_message()),
    }
}

async fn run_demo(sandbox: &Sandbox, tenant: &SandboxConfig) -> Result<()> {
    let raw = json!({
        "api_key": tenant.api_key,
        "api_secret": tenant.api_password,
        "base_url": sandbox.base_url(),
        "lookback_window_days": 0,
        // One detail request per call: capped so the demo shows call-details (and how a capped
        // sync resumes) in seconds rather than minutes at Clari's 10 requests/s.
        "call_details_max_requests": 100,
        // The sandbox indexes a changed call at once, and the demo's second sync follows its
        // first within seconds: without a margin it shows the calls changed in between.
        "indexing_margin_seconds": 0,
    });
    let config = SourceConfig::from_value(&raw)?;
    println!(
        "Clari Copilot connector demo, on a local sandbox with {} calls at {}",
        tenant.calls,
        sandbox.base_url()
    );
    println!("config: {}", redacted(&raw));

    source::check(&config).await?;
    println!("\ncheck      SUCCEEDED");

    let catalog = source::discover();
    println!("discover   {} streams", catalog.streams.len());
    for stream in &catalog.streams {
        let modes: Vec<String> = stream
            .supported_sync_modes
            .iter()
            .map(|m| json!(m).to_string())
            .collect();
        println!(
            "           {:<20} {}",
            stream.name,
            modes.join(", ").replace('"', "")
        );
    }
    let configured: ConfiguredCatalog = serde_json::from_value(json!({
        "streams": catalog.streams.iter().map(|s| json!({
            "stream": s,
            "sync_mode": if s.supported_sync_modes.len() > 1 { "incremental" } else { "full_refresh" },
            "destination_sync_mode": "append",
        })).collect::<Vec<_>>()
    }))
    .map_err(|e| Error::input("demo catalog", e))?;

    println!("\nread       first sync (no state)");
    let first = read_summary(&config, &configured, &InputState::default()).await?;
    first.print();

    let changed: Vec<String> = sandbox
        .calls_snapshot()
        .iter()
        .take(3)
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    for id in &changed {
        sandbox.touch_call(id, "POST_PROCESSING_DONE", jiff::Timestamp::now());
    }
    println!(
        "\nread       second sync from the first one's state, after {} calls changed status",
        changed.len()
    );
    let second = read_summary(&config, &configured, &InputState::from_value(&first.state)?).await?;
    second.print();
    println!(
        "\n{} requests reached the sandbox.",
        sandbox.request_count()
    );
    Ok(())
}

struct Summary {
    records: BTreeMap<String, usize>,
    state: Value,
}

impl Summary {
    fn print(&self) {
        for (stream, count) in &self.records {
            println!("           {stream:<20} {count:>7} records");
        }
        if let Some(calls) = self.state.as_array().and_then(|s| {
            s.iter()
                .find(|m| m["stream"]["stream_descriptor"]["name"] == "calls")
        }) {
            println!(
                "           calls state: {}",
                calls["stream"]["stream_state"]
            );
        }
    }
}

async fn read_summary(
    config: &SourceConfig,
    catalog: &ConfiguredCatalog,
    state: &InputState,
) -> Result<Summary> {
    let sink = MemorySink::default();
    let output: Arc<Output> = Output::new(Box::new(sink.clone()));
    source::read(config, catalog, state, &output, RetryPolicy::sync()).await?;
    output.flush()?;
    let mut records = BTreeMap::new();
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for stream in &catalog.streams {
        records.insert(stream.stream.name.clone(), 0);
    }
    for line in sink.contents().lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match message["type"].as_str() {
            Some("RECORD") => {
                *records
                    .entry(
                        message["record"]["stream"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                    .or_default() += 1;
            }
            Some("STATE") => {
                let name = message["state"]["stream"]["stream_descriptor"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                latest.insert(name, message["state"].clone());
            }
            _ => {}
        }
    }
    Ok(Summary {
        records,
        state: Value::Array(latest.into_values().collect()),
    })
}

fn redacted(raw: &Value) -> Value {
    let mut shown = raw.clone();
    for key in config::secret_fields::<SourceConfig>() {
        shown[key.as_str()] = json!(MASK);
    }
    shown
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
