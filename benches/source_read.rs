//! End-to-end read benchmark: the release binary reads `calls` from the in-process sandbox and
//! this harness prints records/s, output MB/s, CPU per record and the binary's peak memory.
//!
//! `cargo bench --bench source_read` runs 100,000 calls with the sandbox's rate limit off, then
//! times `spec` start-up. Environment knobs:
//! - `BENCH_CALLS=1000000` for a larger tenant (peak memory must stay flat as it grows);
//! - `BENCH_RATE_LIMITED=1` adds the rate-limit efficiency run: 20,000 calls against a sandbox
//!   enforcing 10 requests/s with 150 ms latency, compared with `requests / 10` seconds;
//! - `BENCH_CHURN=1` adds the churn runs: a busy workspace (20,000 calls over the last 72 hours)
//!   read at 10 requests/s under the same limit and latency, at default settings and at
//!   `page_size` 100, each once quiet and once with one recent call changing status every 20
//!   listing requests. Each read is checked complete against the calls visible at its end, and
//!   the requests under churn are compared with the quiet read's (goal: at most 1.5 times).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clari_copilot_sandbox::{Churn, ChurnScope, Sandbox, SandboxConfig};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_source-clari-copilot");

/// One read of `calls` by the release binary, full refresh.
struct ReadOptions {
    tenant: SandboxConfig,
    /// Requests per second the sandbox enforces and the latency (ms) it adds to each request.
    limit: Option<(u32, u64)>,
    churn: Option<Churn>,
    /// Connector settings besides the credentials and the URL; those left out keep their
    /// defaults.
    settings: Value,
    /// Collect the distinct call ids read, to check the read against the calls visible at its
    /// end.
    count_ids: bool,
}

struct Figures {
    records: u64,
    bytes: u64,
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
    succeeded: bool,
    /// Distinct `data.id`s of the RECORD lines, when asked for.
    ids: Option<HashSet<String>>,
}

/// What a read cost the sandbox, and whether it got every call.
struct Outcome {
    figures: Figures,
    requests: usize,
    /// HTTP 429s answered, when the sandbox enforced a rate limit.
    refused: Option<usize>,
    /// Status changes applied during the read, when the data churned.
    churned: Option<usize>,
    completeness: Option<Completeness>,
}

struct Completeness {
    read: usize,
    visible: usize,
    missing: usize,
}

/// Just enough of a RECORD line to get its id.
#[derive(Deserialize)]
struct RecordLine {
    record: RecordData,
}

#[derive(Deserialize)]
struct RecordData {
    data: RecordId,
}

#[derive(Deserialize)]
struct RecordId {
    id: String,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!(
        "machine: {} cores; binary: {BIN}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let unlimited = runtime.block_on(read_calls(ReadOptions {
        tenant: SandboxConfig::with_calls(calls),
        limit: None,
        churn: None,
        settings: json!({"requests_per_second": 10_000, "page_size": 100}),
        count_ids: false,
    }));
    print_outcome(&format!("read {calls} calls, rate limit off"), &unlimited);

    if std::env::var("BENCH_RATE_LIMITED").is_ok() {
        // Default settings, then a tenant whose pages fit only 48 calls of average size (the
        // gateway's ~6 MB cap scaled down): the page size the connector must find.
        let tenant = SandboxConfig::with_calls(20_000);
        let capped = SandboxConfig {
            max_response_bytes: bytes_for_calls(&runtime, &tenant, 48),
            ..tenant.clone()
        };
        for (name, tenant, per_page) in [
            ("default settings", tenant, 100),
            ("pages over 48 calls answered 502", capped, 48),
        ] {
            let limited = runtime.block_on(read_calls(ReadOptions {
                tenant,
                limit: Some((10, 150)),
                churn: None,
                settings: json!({"requests_per_second": 10}),
                count_ids: true,
            }));
            print_outcome(
                &format!("read 20000 calls at 10 requests/s, 150 ms latency, {name}"),
                &limited,
            );
            let (wall, requests) = (limited.figures.wall.as_secs_f64(), limited.requests);
            let floor = requests as f64 / 10.0;
            let minimum = limited.figures.records.div_ceil(per_page);
            println!(
                "  rate-limit efficiency: {wall:.1} s for {requests} requests; floor {floor:.1} s; ratio {:.3} (goal <= 1.1)",
                wall / floor
            );
            println!(
                "  requests / (records / {per_page}): {requests} / {minimum} = {:.3}",
                requests as f64 / minimum as f64
            );
        }
    }

    if std::env::var("BENCH_CHURN").is_ok() {
        // Calls touched during the read are modified "now": no indexing margin, so that both
        // reads of a pair cover them (the sandbox indexes at once).
        let settings = [
            (
                "default settings",
                json!({"requests_per_second": 10, "indexing_margin_seconds": 0}),
            ),
            (
                "page_size 25 (the default before 0.1.0's adaptive page size)",
                json!({"requests_per_second": 10, "indexing_margin_seconds": 0, "page_size": 25}),
            ),
        ];
        for (name, settings) in settings {
            let busy_workspace = |churn| {
                let now = Timestamp::now();
                ReadOptions {
                    tenant: SandboxConfig {
                        history_start: now - SignedDuration::from_hours(72),
                        history_end: now,
                        ..SandboxConfig::with_calls(20_000)
                    },
                    limit: Some((10, 150)),
                    churn,
                    settings: settings.clone(),
                    count_ids: true,
                }
            };
            let quiet = runtime.block_on(read_calls(busy_workspace(None)));
            print_outcome(
                &format!("busy workspace, {name}, 10 requests/s, 150 ms latency, no churn"),
                &quiet,
            );
            let churned = runtime.block_on(read_calls(busy_workspace(Some(Churn {
                every: 20,
                scope: ChurnScope::Recent(SignedDuration::from_hours(72)),
            }))));
            print_outcome(
                &format!(
                    "busy workspace, {name}, 10 requests/s, 150 ms latency, churn every 20 listings"
                ),
                &churned,
            );
            println!(
                "  requests under churn / quiet: {} / {} = {:.3} (goal <= 1.5)",
                churned.requests,
                quiet.requests,
                churned.requests as f64 / quiet.requests as f64
            );
        }
    }

    let runs = 20;
    let started = Instant::now();
    for _ in 0..runs {
        let status = Command::new(BIN)
            .arg("spec")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    println!(
        "spec start-up: {:.2} ms per run (mean of {runs})",
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs)
    );
}

/// The response size cap under which a page of `calls` calls of the tenant's average size
/// fits and a page of one more does not.
fn bytes_for_calls(
    runtime: &tokio::runtime::Runtime,
    tenant: &SandboxConfig,
    calls: usize,
) -> usize {
    runtime.block_on(async {
        let sandbox = Sandbox::start(tenant.clone()).await.unwrap();
        let snapshot = sandbox.calls_snapshot();
        let average = snapshot.iter().map(|c| c.to_string().len()).sum::<usize>() / snapshot.len();
        sandbox.shutdown().await;
        average * calls + average / 2
    })
}

async fn read_calls(options: ReadOptions) -> Outcome {
    let sandbox = Sandbox::start(options.tenant).await.unwrap();
    if let Some((per_second, latency_ms)) = options.limit {
        sandbox.faults().set_rate_limit(Some(per_second));
        sandbox
            .faults()
            .set_latency(Duration::from_millis(latency_ms));
    }
    sandbox.faults().set_churn(options.churn);
    let dir = std::env::temp_dir().join(format!("clari-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    let catalog = dir.join("catalog.json");
    let mut settings = json!({"api_key": "sandbox-key", "api_secret": "sandbox-password",
        "base_url": sandbox.base_url()});
    if let (Some(target), Value::Object(extra)) = (settings.as_object_mut(), options.settings) {
        target.extend(extra);
    }
    std::fs::write(&config, settings.to_string()).unwrap();
    let discovered = Command::new(BIN)
        .args(["discover", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let catalog_message: serde_json::Value = serde_json::from_slice(&discovered.stdout).unwrap();
    let calls_stream = catalog_message["catalog"]["streams"][0].clone();
    std::fs::write(
        &catalog,
        json!({"streams": [{"stream": calls_stream, "sync_mode": "full_refresh", "destination_sync_mode": "append"}]})
            .to_string(),
    )
    .unwrap();

    let count_ids = options.count_ids;
    let figures = tokio::task::spawn_blocking(move || run_read(&config, &catalog, count_ids))
        .await
        .unwrap();
    let completeness = figures.ids.as_ref().map(|read| {
        let private: HashSet<String> = sandbox.private_call_ids().into_iter().collect();
        let visible: HashSet<String> = sandbox
            .calls_snapshot()
            .iter()
            .filter_map(|call| call["id"].as_str())
            .filter(|id| !private.contains(*id))
            .map(str::to_owned)
            .collect();
        Completeness {
            read: read.len(),
            visible: visible.len(),
            missing: visible.difference(read).count(),
        }
    });
    let outcome = Outcome {
        figures,
        requests: sandbox.request_count(),
        refused: options.limit.map(|_| sandbox.faults().rate_limited_count()),
        churned: options.churn.map(|_| sandbox.faults().churned_calls()),
        completeness,
    };
    sandbox.shutdown().await;
    outcome
}

fn run_read(config: &std::path::Path, catalog: &std::path::Path, count_ids: bool) -> Figures {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["read", "--config"])
        .arg(config)
        .arg("--catalog")
        .arg(catalog)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let counter = std::thread::spawn(move || {
        let (mut records, mut bytes) = (0u64, 0u64);
        let mut ids = count_ids.then(HashSet::new);
        let mut reader = BufReader::with_capacity(1 << 20, stdout);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap() > 0 {
            bytes += line.len() as u64;
            if line.starts_with(br#"{"type":"RECORD""#) {
                records += 1;
                if let Some(ids) = &mut ids {
                    let record: RecordLine = serde_json::from_slice(&line).unwrap();
                    ids.insert(record.record.data.id);
                }
            }
            line.clear();
        }
        (records, bytes, ids)
    });
    let (mut peak, mut cpu) = (0, Duration::ZERO);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some((rss, used)) = sample(pid) {
            peak = peak.max(rss);
            cpu = used;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    let (records, bytes, ids) = counter.join().unwrap();
    Figures {
        records,
        bytes,
        wall,
        cpu,
        peak_rss_kib: peak,
        succeeded: status.success(),
        ids,
    }
}

/// Peak resident memory (KiB) and CPU time so far of a running process, from /proc.
fn sample(pid: u32) -> Option<(u64, Duration)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((rss, Duration::from_millis(ticks * 10)))
}

fn print_outcome(title: &str, outcome: &Outcome) {
    let f = &outcome.figures;
    let secs = f.wall.as_secs_f64();
    println!("{title}:");
    if !f.succeeded {
        println!("  THE READ FAILED (non-zero exit)");
    }
    println!(
        "  {} records, {} requests, {:.2} s wall",
        f.records, outcome.requests, secs
    );
    println!(
        "  {:.0} records/s, {:.1} MB/s of protocol output",
        f.records as f64 / secs,
        f.bytes as f64 / secs / 1e6
    );
    println!(
        "  CPU {:.2} s ({:.1} µs per record); peak RSS {:.1} MiB",
        f.cpu.as_secs_f64(),
        f.cpu.as_secs_f64() * 1e6 / f.records.max(1) as f64,
        f.peak_rss_kib as f64 / 1024.0
    );
    if let Some(refused) = outcome.refused {
        println!("  HTTP 429 answers from the sandbox: {refused}");
    }
    if let Some(c) = &outcome.completeness {
        println!(
            "  {} distinct call ids read of {} visible at the end: {} missing{}",
            c.read,
            c.visible,
            c.missing,
            if c.missing == 0 { " (complete)" } else { "" }
        );
    }
    if let Some(churned) = outcome.churned {
        println!("  status changes applied during the read: {churned}");
    }
}
