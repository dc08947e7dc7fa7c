//! The commands for people: `sandbox` serves the fake API, `demo` runs the whole source on it
//! and prints a short summary. Both print plain text; neither speaks the protocol.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use crate::client::RetryPolicy;
use crate::config::{self, SourceConfig};
use crate::error::Result;
use crate::protocol::output::{MASK, MemorySink};
use crate::protocol::{ConfiguredCatalog, Output};
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::source::{self, InputState};

/// Options of the sandbox (the `sandbox` command, and the tenant the demo reads).
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// Number of calls in the seeded tenant.
    #[arg(long, default_value_t = 2_000)]
    pub calls: usize,
    /// Seed of the generated data: the same seed gives the same tenant.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Enforce this many requests per second, answering 429 beyond it (like Clari's limit).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Answer every successful request with a body that is not JSON (a cut HTML error page).
    #[arg(long)]
    pub malformed_body: bool,
    /// Answer every successful request with JSON of the wrong shape (no records), which
    /// `check` cannot blame on the configuration: the acceptance tests' `exception` case.
    #[arg(long)]
    pub unexpected_json: bool,
}

impl SandboxArgs {
    fn sandbox_config(&self) -> SandboxConfig {
        SandboxConfig {
            seed: self.seed,
            port: self.port,
            ..SandboxConfig::with_calls(self.calls)
        }
    }

    async fn start(&self) -> std::io::Result<Sandbox> {
        let sandbox = Sandbox::start(self.sandbox_config()).await?;
        sandbox.faults().set_rate_limit(self.rate_limit);
        sandbox
            .faults()
            .set_latency(Duration::from_millis(self.latency_ms));
        sandbox.faults().set_malformed_body(self.malformed_body);
        sandbox.faults().set_unexpected_json(self.unexpected_json);
        Ok(sandbox)
    }
}

pub async fn sandbox(args: SandboxArgs) -> ExitCode {
    match args.start().await {
        Ok(sandbox) => {
            let config = args.sandbox_config();
            println!("Clari Copilot sandbox listening on {}", sandbox.base_url());
            println!(
                "  X-Api-Key: {}   X-Api-Password: {}",
                config.api_key, config.api_password
            );
            println!(
                "  {} calls (seed {}); press Ctrl-C to stop",
                args.calls, args.seed
            );
            match sandbox.run_until_ctrl_c().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("the sandbox stopped: {e}")),
            }
        }
        Err(e) => fail(&format!(
            "cannot start the sandbox on port {}: {e}",
            args.port
        )),
    }
}

/// Runs check, discover, a full read and an incremental read against a fresh sandbox.
pub async fn demo(mut args: SandboxArgs) -> ExitCode {
    args.port = 0;
    let sandbox = match args.start().await {
        Ok(sandbox) => sandbox,
        Err(e) => return fail(&format!("cannot start the sandbox: {e}")),
    };
    match run_demo(&sandbox, &args.sandbox_config()).await {
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
    .map_err(|e| crate::error::Error::input("demo catalog", e))?;

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
