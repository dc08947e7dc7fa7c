//! What the CAT runner needs around the assertions: the sandboxes standing in for the ports the
//! committed configs name, a scratch copy of the acceptance-test folder with those ports
//! rewritten, running the binary as CAT's container would (files in, protocol lines out, a
//! per-class timeout), catalogs built the way CAT builds them, and failure messages that name
//! the CAT test and assertion.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use clari_copilot_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::common::process::{self, Ran};

/// The source image's acceptance-test folder.
pub const SOURCE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/acceptance-tests");
/// The destination image's acceptance-test folder.
pub const DESTINATION_DIR: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/acceptance-tests/destination");

/// Port of the normal sandbox in the committed configs (`clari-copilot-sandbox --port 8089 --calls 25000`).
pub const MAIN_PORT: u16 = 8089;
/// Port of the sandbox answering JSON of the wrong shape
/// (`clari-copilot-sandbox --port 8090 --calls 10 --unexpected-json`).
pub const UNEXPECTED_JSON_PORT: u16 = 8090;
/// Calls in the normal sandbox: 22,500 visible ones, more than the skip cap lets one window
/// hold, so an incremental read checkpoints at least three windows with records.
pub const MAIN_CALLS: usize = 25_000;

/// CAT's default timeouts per test class (`timeout_seconds` overrides them).
pub const SPEC_TIMEOUT: u64 = 60;
pub const CONNECTION_TIMEOUT: u64 = 60;
pub const DISCOVERY_TIMEOUT: u64 = 300;
pub const BASIC_READ_TIMEOUT: u64 = 600;
pub const FULL_REFRESH_TIMEOUT: u64 = 1200;
pub const INCREMENTAL_TIMEOUT: u64 = 1200;

/// The sandboxes every test shares (they are only read), on a runtime that outlives the tests.
pub struct Env {
    runtime: tokio::runtime::Runtime,
    urls: BTreeMap<u16, String>,
    _sandboxes: Vec<Sandbox>,
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the sandboxes");
    let (main, unexpected) = runtime.block_on(async {
        let main = Sandbox::start(SandboxConfig::with_calls(MAIN_CALLS))
            .await
            .expect("the main sandbox starts");
        let unexpected = Sandbox::start(SandboxConfig::with_calls(10))
            .await
            .expect("the unexpected-JSON sandbox starts");
        unexpected.faults().set_unexpected_json(true);
        (main, unexpected)
    });
    let urls = BTreeMap::from([
        (MAIN_PORT, main.base_url()),
        (UNEXPECTED_JSON_PORT, unexpected.base_url()),
    ]);
    Env {
        runtime,
        urls,
        _sandboxes: vec![main, unexpected],
    }
});

impl Env {
    pub fn get() -> &'static Env {
        &ENV
    }

    /// A fresh sandbox of its own (for a test that writes, or mutates data).
    pub fn fresh_sandbox(&self, config: SandboxConfig) -> Sandbox {
        self.runtime
            .block_on(Sandbox::start(config))
            .expect("a sandbox starts")
    }

    /// The URL standing in for a loopback port of the committed configs.
    pub fn url_for_port(&self, port: u16) -> Option<&str> {
        self.urls.get(&port).map(String::as_str)
    }
}

/// Which CAT test a check belongs to, for the failure message.
#[derive(Clone, Debug)]
pub struct Case {
    pub class: &'static str,
    pub test: &'static str,
    pub case: String,
}

impl Case {
    pub fn new(class: &'static str, test: &'static str, case: impl Into<String>) -> Self {
        Case {
            class,
            test,
            case: case.into(),
        }
    }

    /// The same case under another CAT test method of the class.
    pub fn at(&self, test: &'static str) -> Case {
        Case {
            test,
            ..self.clone()
        }
    }

    /// Fails with "CAT <Class>::<test> (<case>): <assertion> — offending message: <json>".
    #[track_caller]
    pub fn fail(&self, assertion: impl Display, offending: &Value) -> ! {
        panic!(
            "CAT {}::{} ({}): {assertion} — offending message: {}",
            self.class,
            self.test,
            self.case,
            shorten(&offending.to_string())
        )
    }

    #[track_caller]
    pub fn ensure(&self, ok: bool, assertion: impl FnOnce() -> String, offending: &Value) {
        if !ok {
            self.fail(assertion(), offending);
        }
    }
}

/// Offending messages can be megabytes (a whole read): keep the start and the end.
fn shorten(text: &str) -> String {
    const MAX: usize = 4_000;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut head = MAX / 2;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - MAX / 2;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{} …[{} bytes left out]… {}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// A short description of a whole output, as the "offending message" of assertions about
/// what is missing from it.
pub fn summary(messages: &[Value]) -> Value {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for message in messages {
        let mut kind = message["type"].as_str().unwrap_or("?").to_owned();
        if kind == "TRACE" {
            kind = format!("TRACE/{}", message["trace"]["type"].as_str().unwrap_or("?"));
        }
        *counts.entry(kind).or_default() += 1;
    }
    let interesting: Vec<&Value> = messages
        .iter()
        .filter(|m| m["type"] != "RECORD" && m["type"] != "LOG")
        .take(20)
        .collect();
    json!({"message_counts": counts, "first_non_record_messages": interesting})
}

/// A scratch copy of an acceptance-test folder in which every loopback `base_url` of a JSON file
/// points at the sandbox standing in for its port: the committed files stay usable by a real CAT
/// run, and the tests never depend on a fixed port being free.
pub struct Materialized {
    pub dir: tempfile::TempDir,
}

impl Materialized {
    pub fn new(source: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        copy_tree(Path::new(source), dir.path(), Env::get());
        Materialized { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn json(&self, relative: &str) -> Value {
        read_json(&self.path(relative))
    }

    /// Writes a scratch JSON file (a catalog, a state) and returns its path.
    pub fn write_json(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.dir.path().join("run").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, value.to_string()).expect("write a scratch file");
        path
    }

    /// Overwrites a config's `base_url` (for a test with a sandbox of its own).
    pub fn point_config_at(&self, relative: &str, base_url: &str) {
        let path = self.path(relative);
        let mut config = read_json(&path);
        config["base_url"] = json!(base_url);
        std::fs::write(&path, config.to_string()).unwrap();
    }
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn copy_tree(from: &Path, to: &Path, env: &Env) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, env);
            continue;
        }
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let mut value = read_json(&path);
            if let Some(url) = value.get("base_url").and_then(Value::as_str) {
                let port = url
                    .strip_prefix("http://127.0.0.1:")
                    .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok());
                if let Some(port) = port {
                    let sandbox = env.url_for_port(port).unwrap_or_else(|| {
                        panic!(
                            "{} points at port {port}, which no runner sandbox stands in for",
                            path.display()
                        )
                    });
                    value["base_url"] = json!(sandbox);
                }
            }
            std::fs::write(&target, serde_json::to_string_pretty(&value).unwrap()).unwrap();
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Runs the binary with `args` (and `stdin`, for `write`), killing it after `timeout_secs` as
/// CAT would; checks that every stdout line is a protocol message and that no secret of
/// `secrets` reached stdout or stderr.
pub fn run(
    case: &Case,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout_secs: u64,
    secrets: &[String],
) -> Ran {
    let mut command = process::command(args);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    let input = stdin.map(<[u8]>::to_vec);
    let mut child_stdin = child.stdin.take();
    let feeder = std::thread::spawn(move || {
        if let (Some(pipe), Some(bytes)) = (child_stdin.as_mut(), input) {
            // The connector may exit early (an error) and close its stdin.
            let _ = pipe.write_all(&bytes);
        }
        drop(child_stdin);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).map(|_| buf)
    });
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        err.read_to_end(&mut buf).map(|_| buf)
    });
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the binary") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            case.fail(
                format!("the command did not finish within CAT's timeout of {timeout_secs} s"),
                &json!({ "args": args }),
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    feeder.join().unwrap();
    let ran_for = started.elapsed();
    let output = Output {
        status,
        stdout: stdout.join().unwrap().expect("read stdout"),
        stderr: stderr.join().unwrap().expect("read stderr"),
    };
    let all_text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in secrets {
        case.ensure(
            !all_text.contains(secret.as_str()),
            || {
                "a secret of the config (a value marked airbyte_secret) appears in the output"
                    .to_owned()
            },
            &json!({ "args": args, "secret_length": secret.len() }),
        );
    }
    let ran = process::finish(output);
    if std::env::var_os("CAT_TIMINGS").is_some() {
        eprintln!(
            "{}::{} ({}): {:?} ran {:.2} s, parsed after {:.2} s",
            case.class,
            case.test,
            case.case,
            args.first(),
            ran_for.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    ran
}

/// The values of a config that its spec marks `airbyte_secret` (top-level properties).
pub fn secrets_of(config: &Value, spec: &Value) -> Vec<String> {
    let Some(properties) = spec["connectionSpecification"]["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .filter(|(_, p)| p["airbyte_secret"] == true)
        .filter_map(|(name, _)| config.get(name).and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The binary's arguments for a role.
pub fn role_args<'a>(destination: bool, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = Vec::new();
    if destination {
        all.extend(["--role", "destination"]);
    }
    all.extend_from_slice(args);
    all
}

pub fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// Messages of one type.
pub fn of_type<'a>(messages: &'a [Value], kind: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["type"] == kind).collect()
}

/// The one message of `kind` that `command` must print; any other count fails the case.
pub fn only_message<'a>(
    case: &Case,
    messages: &'a [Value],
    command: &str,
    kind: &str,
) -> &'a Value {
    let found = of_type(messages, kind);
    case.ensure(
        found.len() == 1,
        || {
            format!(
                "{command} must output exactly one {kind}, got {}",
                found.len()
            )
        },
        &summary(messages),
    );
    found[0]
}

pub fn records(messages: &[Value]) -> Vec<&Value> {
    of_type(messages, "RECORD")
}

pub fn states(messages: &[Value]) -> Vec<&Value> {
    of_type(messages, "STATE")
}

pub fn error_traces(messages: &[Value]) -> Vec<&Value> {
    of_type(messages, "TRACE")
        .into_iter()
        .filter(|m| m["trace"]["type"] == "ERROR")
        .collect()
}

/// `discover` with a config, as CAT's `discovered_catalog` fixture: name → AirbyteStream.
pub fn discover(case: &Case, config: &Path, secrets: &[String]) -> BTreeMap<String, Value> {
    discover_streams(case, config, DISCOVERY_TIMEOUT, secrets)
        .into_iter()
        .map(|s| (s["name"].as_str().unwrap_or_default().to_owned(), s))
        .collect()
}

/// The streams of the one CATALOG `discover` must print, in the order it printed them.
pub fn discover_streams(
    case: &Case,
    config: &Path,
    timeout: u64,
    secrets: &[String],
) -> Vec<Value> {
    let ran = run(
        case,
        &["discover", "--config", &arg(config)],
        None,
        timeout,
        secrets,
    );
    only_message(case, &ran.messages, "discover", "CATALOG")["catalog"]["streams"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `build_configured_catalog_from_discovered_catalog_and_empty_streams`: every discovered stream
/// but the empty ones, in its first supported mode, `append`, default cursor and key. Absent
/// optional values are written as `null`, as pydantic's `.json()` does.
pub fn catalog_from_discovered(discovered: &BTreeMap<String, Value>, empty: &[String]) -> Value {
    let streams: Vec<Value> = discovered
        .values()
        .filter(|s| !empty.iter().any(|e| s["name"] == e.as_str()))
        .map(|stream| {
            json!({
                "stream": stream,
                "sync_mode": stream["supported_sync_modes"][0],
                "destination_sync_mode": "append",
                "cursor_field": stream.get("default_cursor_field").cloned().unwrap_or(Value::Null),
                "primary_key": stream.get("source_defined_primary_key").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({ "streams": streams })
}

/// `build_configured_catalog_from_custom_catalog`: the file's streams, each stream definition
/// replaced by the discovered one.
pub fn catalog_from_custom(
    case: &Case,
    custom: &Value,
    discovered: &BTreeMap<String, Value>,
) -> Value {
    let mut catalog = custom.clone();
    for configured in catalog["streams"].as_array_mut().into_iter().flatten() {
        let name = configured["stream"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(stream) = discovered.get(&name) else {
            case.fail(
                format!(
                    "the configured catalog names a stream {name:?} that discover does not report"
                ),
                configured,
            );
        };
        configured["stream"] = stream.clone();
    }
    catalog
}

/// CAT's `configured_catalog` fixture: the custom catalog if one is given, else the discovered one.
pub fn configured_catalog(
    case: &Case,
    dir: &Materialized,
    custom_path: Option<&str>,
    discovered: &BTreeMap<String, Value>,
) -> Value {
    match custom_path {
        Some(path) => catalog_from_custom(case, &dir.json(path), discovered),
        None => catalog_from_discovered(discovered, &[]),
    }
}

/// `full_refresh_only_catalog`.
pub fn full_refresh_only(catalog: &Value) -> Value {
    only_mode(catalog, "full_refresh")
}

/// `incremental_only_catalog`, with `cursor_field` defaulted as the incremental fixture does.
pub fn incremental_only(case: &Case, catalog: &Value) -> Value {
    let mut catalog = only_mode(catalog, "incremental");
    for configured in catalog["streams"].as_array_mut().into_iter().flatten() {
        if configured["cursor_field"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            match configured["stream"].get("default_cursor_field") {
                Some(Value::Array(default)) if !default.is_empty() => {
                    configured["cursor_field"] = Value::Array(default.clone());
                }
                _ => case.fail(
                    "All incremental streams should either have `cursor_field` declared in the configured_catalog \
                     or `default_cursor_field` specified in the catalog output by discover",
                    configured,
                ),
            }
        }
    }
    catalog
}

fn only_mode(catalog: &Value, mode: &str) -> Value {
    let streams: Vec<Value> = catalog["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["stream"]["supported_sync_modes"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == mode))
        })
        .map(|s| {
            let mut s = s.clone();
            s["sync_mode"] = json!(mode);
            s
        })
        .collect();
    json!({ "streams": streams })
}

/// `[{"type":"STREAM","stream":{"stream_descriptor":{"name":…},"stream_state":…}}, …]` from the
/// latest state of each stream, as CAT rebuilds state input.
pub fn state_input(latest: &BTreeMap<String, Value>) -> Value {
    Value::Array(
        latest
            .iter()
            .map(|(name, blob)| {
                json!({"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": blob}})
            })
            .collect(),
    )
}

/// `construct_latest_state_from_messages`.
pub fn latest_states(messages: &[&Value]) -> BTreeMap<String, Value> {
    let mut latest = BTreeMap::new();
    for message in messages {
        let state = &message["state"];
        if state["type"] == "STREAM" {
            let name = state["stream"]["stream_descriptor"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let blob = match &state["stream"]["stream_state"] {
                Value::Null => json!({}),
                blob => blob.clone(),
            };
            latest.insert(name, blob);
        }
    }
    latest
}

/// DeepDiff(records_1.data, records_2.data, ignore_order=True) is empty exactly when both hold
/// the same set of distinct values (repetitions are not reported by default).
pub fn same_data(first: &[&Value], second: &[&Value]) -> bool {
    use std::collections::HashMap;
    use std::hash::{DefaultHasher, Hasher};
    // Hash buckets, then exact comparison inside a bucket: no re-serialising of large reads.
    fn hash(value: &Value, h: &mut DefaultHasher) {
        match value {
            Value::Null => h.write_u8(0),
            Value::Bool(b) => h.write_u8(1 + u8::from(*b)),
            Value::Number(n) => {
                h.write_u8(3);
                h.write_u64(n.as_f64().unwrap_or_default().to_bits());
            }
            Value::String(s) => {
                h.write_u8(4);
                h.write(s.as_bytes());
            }
            Value::Array(items) => {
                h.write_u8(5);
                items.iter().for_each(|i| hash(i, h));
            }
            Value::Object(map) => {
                h.write_u8(6);
                for (k, v) in map {
                    h.write(k.as_bytes());
                    hash(v, h);
                }
            }
        }
    }
    fn set<'a>(records: &[&'a Value]) -> HashMap<u64, Vec<&'a Value>> {
        let mut buckets: HashMap<u64, Vec<&Value>> = HashMap::new();
        for record in records {
            let data = &record["record"]["data"];
            let mut h = DefaultHasher::new();
            hash(data, &mut h);
            let bucket = buckets.entry(h.finish()).or_default();
            if !bucket.contains(&data) {
                bucket.push(data);
            }
        }
        buckets
    }
    let contains = |set: &HashMap<u64, Vec<&Value>>, other: &HashMap<u64, Vec<&Value>>| {
        other.iter().all(|(k, values)| {
            set.get(k)
                .is_some_and(|b| values.iter().all(|v| b.contains(v)))
        })
    };
    let (a, b) = (set(first), set(second));
    contains(&a, &b) && contains(&b, &a)
}
