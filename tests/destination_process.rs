//! The destination as Airbyte runs it: the binary with `--role destination write`, messages on
//! stdin, a config and catalog on disk, killed with SIGKILL mid-way and replayed.

mod destination_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clari_copilot_sandbox::Sandbox;
use destination_support::*;
use serde_json::{Value, json};

/// The binary set up for a write against `sandbox`, with its files in `dir`.
fn write_command(sandbox: &Sandbox, dir: &tempfile::TempDir, mode: &str) -> Command {
    write_command_with(&config_value(sandbox, "fail", 200), dir, mode)
}

/// The binary set up for a write with this config, with its files in `dir`.
fn write_command_with(config_value: &Value, dir: &tempfile::TempDir, mode: &str) -> Command {
    let config = dir.path().join("config.json");
    std::fs::write(&config, config_value.to_string()).unwrap();
    let catalog = dir.path().join("catalog.json");
    let streams = json!({"streams": [{
        "stream": {"name": "accounts", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "full_refresh", "destination_sync_mode": mode}]});
    std::fs::write(&catalog, streams.to_string()).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_source-clari-copilot"));
    command
        .args(["--role", "destination", "write", "--config"])
        .arg(&config)
        .arg("--catalog")
        .arg(&catalog)
        .env("CLARI_COPILOT_RETRY_MIN_DELAY_MS", "5")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn accounts_with_states(n: usize, every: usize) -> Input {
    let mut input = Input::new();
    for i in 0..n {
        input = input.record("accounts", account(i, 1));
        if (i + 1) % every == 0 {
            input = input.stream_state("accounts", i + 1);
        }
    }
    input
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_killed_with_sigkill_and_replayed_from_its_last_echoed_state_loses_nothing() {
    kill_and_replay("append_dedup").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_killed_with_sigkill_and_replayed_converges_without_duplicates() {
    kill_and_replay("append").await;
}

/// Writes 300 accounts in `mode` with a state every 10, kills the binary with SIGKILL after
/// its third echoed state, replays from the last echoed state, and checks the replay echoes
/// every later state and leaves each key created once.
async fn kill_and_replay(mode: &str) {
    let sandbox = start().await;
    sandbox
        .faults()
        .set_write_latency(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let input = accounts_with_states(300, 10);
    let mut child = write_command(&sandbox, &dir, mode).spawn().unwrap();

    let mut stdin = child.stdin.take().unwrap();
    let text = input.text();
    let feeder = std::thread::spawn(move || {
        // Fails with a broken pipe once the process is killed, which is the point.
        let _ = stdin.write_all(text.as_bytes());
    });
    let (lines_tx, lines_rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    while echoed_states(&seen.join("\n")).len() < 3 {
        let line = tokio::task::block_in_place(|| lines_rx.recv_timeout(Duration::from_secs(30)))
            .expect("the destination echoes states while it runs");
        seen.push(line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    feeder.join().unwrap();
    seen.extend(lines_rx.try_iter());
    let last = *echoed_states(&seen.join("\n")).last().unwrap();
    assert!(last < 300, "killed mid-way, after record {last}");
    for line in &seen {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not a message: {line}: {e}"));
    }

    let replay = input.after_record(last);
    let mut child = write_command(&sandbox, &dir, mode).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = replay.text();
    let feeder = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let output = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The replay starts with the state it resumes from, then every later one.
    let expected: Vec<usize> = (last / 10..=30).map(|n| n * 10).collect();
    assert_eq!(echoed_states(&stdout), expected, "every later state echoed");

    let store = sandbox.store();
    assert_eq!(store.accounts.len(), 300, "nothing lost");
    assert_eq!(store.creates.accounts, 300, "each key created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_writes_everything_exits_zero_and_prints_only_messages_without_secrets() {
    let sandbox = start().await;
    let dir = tempfile::tempdir().unwrap();
    let input = accounts_with_states(30, 10)
        .raw("not a message")
        .global_state(1);
    let mut child = write_command(&sandbox, &dir, "append").spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = input.text();
    let feeder = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let output = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    feeder.join().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(echoed_states(&stdout), [10, 20, 30]);
    let messages: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(messages.iter().filter(|m| m["type"] == "STATE").count(), 4);
    assert!(stdout.contains("Skipped line 34 of the input"), "{stdout}");
    assert_eq!(sandbox.store().accounts.len(), 30);
    let everything = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(!everything.contains("sandbox-password") && !everything.contains("sandbox-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_stop_the_write_with_one_trace_error_and_at_most_one_error_log() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};
    // A slow 401, so that every write slot holds a request when the first answer comes.
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"errorMessage": "Invalid API key or password"}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"api_key": "k", "api_secret": "wrong-secret-value",
        "base_url": server.uri(), "requests_per_second": 200});
    let input = accounts_with_states(100, 10);
    let mut child = write_command_with(&config, &dir, "append").spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = input.text();
    // Fails with a broken pipe once the process has stopped, which is fine.
    let feeder = std::thread::spawn(move || drop(stdin.write_all(text.as_bytes())));
    let output = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    feeder.join().unwrap();
    assert!(!output.status.success());
    let messages: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |kind: &str, level: &str| {
        messages
            .iter()
            .filter(|m| {
                m["type"] == kind && (m["trace"]["type"] == level || m["log"]["level"] == level)
            })
            .count()
    };
    assert_eq!(count("TRACE", "ERROR"), 1, "{messages:?}");
    assert!(count("LOG", "ERROR") <= 1, "{messages:?}");
    let requests = server.received_requests().await.unwrap_or_default();
    assert!(
        requests.len() > 1,
        "several requests were in flight: {}",
        requests.len()
    );
}

#[test]
fn spec_prints_exactly_one_spec_matching_the_snapshot() {
    let output = Command::new(env!("CARGO_BIN_EXE_source-clari-copilot"))
        .args(["--role", "destination", "spec"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let messages: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(messages.len(), 1);
    insta::assert_json_snapshot!("destination_spec", messages[0]);
}

/// A write stopped by SIGTERM (the platform cancelling the sync) ends as a process killed by
/// the signal, so the platform cannot mistake it for a write that finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stopped_by_sigterm_ends_killed_by_the_signal_after_its_echoed_states() {
    use std::os::unix::process::ExitStatusExt;
    let sandbox = start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = write_command(&sandbox, &dir, "append").spawn().unwrap();
    // stdin stays open: the write is still waiting for input when the signal comes.
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(accounts_with_states(10, 10).text().as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while echoed_states(&seen).is_empty() {
        let mut line = String::new();
        let read = tokio::task::block_in_place(|| stdout.read_line(&mut line)).unwrap();
        assert!(
            read > 0,
            "stdout closed before the state was echoed: {seen}"
        );
        seen.push_str(&line);
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    drop(stdin);
    assert_eq!(status.signal(), Some(15), "{status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    for line in seen.lines().chain(rest.lines()) {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not a message: {line}: {e}"));
    }
}
