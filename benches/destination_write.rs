//! Destination throughput against the sandbox under the real API's constraints: every request
//! takes 200 ms and the API admits 10 requests per second (the connector is configured for the
//! same 10). The figure to expect is the rate limit, not 1 / latency: ~10 records/s in
//! `append` (one create per record), ~5 in `append_dedup` of new records (a look-up, then a
//! create) and ~10 in `append_dedup` of records the API already holds unchanged (the look-up
//! alone). Each run prints its requests per record, what the weekly quota pays for.
//!
//! A plain `main` rather than criterion: one long run bound by a rate limit is the honest
//! measurement, and statistics over repeated runs would add nothing but minutes.
//!
//! ```text
//! cargo bench --bench destination_write                       # 5,000 records, append
//! cargo bench --bench destination_write -- append_dedup 1000  # mode and record count
//! cargo bench --bench destination_write -- unchanged 200      # append_dedup of held records
//! ```

use std::time::{Duration, Instant};

use clari_copilot::config::DestinationConfig;
use clari_copilot::destination::{self, WriteSummary};
use clari_copilot::protocol::{ConfiguredCatalog, Output};
use clari_copilot_sandbox::{Sandbox, SandboxConfig};
use serde_json::json;

const LATENCY: Duration = Duration::from_millis(200);
const RATE_LIMIT: u32 = 10;

fn main() {
    // `cargo bench` passes `--bench`; every other argument is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().cloned().unwrap_or_else(|| "append".to_owned());
    let records: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(&mode, records));
}

async fn bench(mode: &str, records: usize) {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let input = accounts(records);
    // `unchanged` is `append_dedup` of records an unmeasured, unthrottled `append` wrote first.
    let measured_mode = match mode {
        "unchanged" => {
            write(&sandbox, "append", 1_000, &input).await;
            "append_dedup"
        }
        other => other,
    };
    sandbox.faults().set_latency(LATENCY);
    sandbox.faults().set_rate_limit(Some(RATE_LIMIT));
    let started = Instant::now();
    let summary = write(&sandbox, measured_mode, RATE_LIMIT, &input).await;
    let elapsed = started.elapsed().as_secs_f64();
    let store = sandbox.store();
    assert_eq!(store.accounts.len(), records, "every record landed");
    println!(
        "destination_write mode={mode} records={records} latency={}ms limit={RATE_LIMIT}/s: \
         {elapsed:.1} s, {:.2} records/s, {} requests ({:.2} requests/s, {:.2} per record), \
         {} written, {} unchanged, {} answered 429",
        LATENCY.as_millis(),
        records as f64 / elapsed,
        summary.requests,
        summary.requests as f64 / elapsed,
        summary.requests as f64 / records as f64,
        summary.written,
        summary.unchanged,
        sandbox.faults().rate_limited_count(),
    );
}

/// `records` accounts, with a STREAM state after every 500.
fn accounts(records: usize) -> String {
    let mut input = String::new();
    for i in 0..records {
        let record = json!({"type": "RECORD", "record": {"stream": "accounts", "emitted_at": 1,
            "data": {"crm_id": format!("acc-{i}"), "name": format!("Account {i}"), "city": "Lyon"}}});
        input.push_str(&record.to_string());
        input.push('\n');
        if (i + 1) % 500 == 0 {
            let state = json!({"type": "STATE", "state": {"type": "STREAM",
                "stream": {"stream_descriptor": {"name": "accounts"}, "stream_state": {"upto": i + 1}}}});
            input.push_str(&state.to_string());
            input.push('\n');
        }
    }
    input
}

/// Writes `input` to the accounts object in `mode`, at `requests_per_second`.
async fn write(
    sandbox: &Sandbox,
    mode: &str,
    requests_per_second: u32,
    input: &str,
) -> WriteSummary {
    let config = DestinationConfig::from_value(&json!({
        "api_key": "sandbox-key",
        "api_secret": "sandbox-password",
        "base_url": sandbox.base_url(),
        "requests_per_second": requests_per_second,
    }))
    .expect("config");
    let catalog: ConfiguredCatalog = serde_json::from_value(json!({"streams": [{
        "stream": {"name": "accounts", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "full_refresh",
        "destination_sync_mode": mode,
    }]}))
    .expect("catalog");
    let output = Output::new(Box::new(std::io::sink()));
    destination::write(
        &config,
        &catalog,
        Box::new(std::io::Cursor::new(input.as_bytes().to_vec())),
        output,
    )
    .await
    .expect("write")
}
