//! End-to-end read benchmark: the release binary reads `calls` from the in-process sandbox and
//! this harness prints records/s, output MB/s, CPU per record and the binary's peak memory.
//!
//! `cargo bench --bench source_read` runs 100,000 calls with the sandbox's rate limit off, then
//! times `spec` start-up. Environment knobs:
//! - `BENCH_CALLS=1000000` for a larger tenant (peak memory must stay flat as it grows);
//! - `BENCH_RATE_LIMITED=1` adds the rate-limit efficiency run: 20,000 calls against a sandbox
//!   enforcing 10 requests/s with 150 ms latency, compared with `requests / 10` seconds.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clari_copilot::sandbox::{Sandbox, SandboxConfig};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_source-clari-copilot");

struct Figures {
    records: u64,
    bytes: u64,
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
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

    let (figures, requests) = runtime.block_on(read_calls(calls, None, 10_000, 100));
    print_figures(
        &format!("read {calls} calls, rate limit off"),
        &figures,
        requests,
    );

    if std::env::var("BENCH_RATE_LIMITED").is_ok() {
        let (figures, requests) = runtime.block_on(read_calls(20_000, Some((10, 150)), 10, 100));
        let floor = requests as f64 / 10.0;
        print_figures(
            "read 20000 calls at 10 requests/s, 150 ms latency",
            &figures,
            requests,
        );
        println!(
            "  rate-limit efficiency: {:.1} s for {requests} requests; floor {floor:.1} s; ratio {:.3} (goal <= 1.1)",
            figures.wall.as_secs_f64(),
            figures.wall.as_secs_f64() / floor
        );
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

async fn read_calls(
    calls: usize,
    limit: Option<(u32, u64)>,
    rps: u32,
    page_size: u32,
) -> (Figures, usize) {
    let sandbox = Sandbox::start(SandboxConfig::with_calls(calls))
        .await
        .unwrap();
    if let Some((per_second, latency_ms)) = limit {
        sandbox.faults().set_rate_limit(Some(per_second));
        sandbox
            .faults()
            .set_latency(Duration::from_millis(latency_ms));
    }
    let dir = std::env::temp_dir().join(format!("clari-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    let catalog = dir.join("catalog.json");
    std::fs::write(
        &config,
        json!({"api_key": "sandbox-key", "api_secret": "sandbox-password", "base_url": sandbox.base_url(),
            "requests_per_second": rps, "page_size": page_size})
        .to_string(),
    )
    .unwrap();
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

    let figures = tokio::task::spawn_blocking(move || run_read(&config, &catalog))
        .await
        .unwrap();
    let requests = sandbox.request_count();
    if limit.is_some() {
        let refused = sandbox.faults().rate_limited_count();
        println!("  HTTP 429 answers from the sandbox: {refused}");
    }
    sandbox.shutdown().await;
    (figures, requests)
}

fn run_read(config: &std::path::Path, catalog: &std::path::Path) -> Figures {
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
        let mut reader = BufReader::with_capacity(1 << 20, stdout);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap() > 0 {
            bytes += line.len() as u64;
            records += u64::from(line.starts_with(br#"{"type":"RECORD""#));
            line.clear();
        }
        (records, bytes)
    });
    let (mut peak, mut cpu) = (0, Duration::ZERO);
    while child.try_wait().unwrap().is_none() {
        if let Some((rss, used)) = sample(pid) {
            peak = peak.max(rss);
            cpu = used;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed();
    let (records, bytes) = counter.join().unwrap();
    Figures {
        records,
        bytes,
        wall,
        cpu,
        peak_rss_kib: peak,
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

fn print_figures(title: &str, f: &Figures, requests: usize) {
    let secs = f.wall.as_secs_f64();
    println!("{title}:");
    println!(
        "  {} records, {} requests, {:.2} s wall",
        f.records, requests, secs
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
}
