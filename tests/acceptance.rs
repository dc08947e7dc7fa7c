//! The Connector Acceptance Test suite, without Docker: every case of
//! `acceptance-tests/acceptance-test-config.yml` (and of the destination's) run against the
//! binary and the in-process sandbox, with the assertions CAT 3.x makes for that case.
//!
//! One `#[test]` per CAT test; each reads its cases from the YAML, so the file CAT reads and
//! what `cargo test` checks cannot drift. A failure reads
//! `CAT <TestClass>::<test> (<case>): <assertion> — offending message: <json>`.
//! See docs/acceptance-tests.md.

mod common;

#[path = "acceptance/cat_config.rs"]
mod cat_config;
#[path = "acceptance/checks.rs"]
mod checks;
#[path = "acceptance/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};

use cat_config::{CatConfig, ConnectionStatus, Group, Strictness};
use clari_copilot_sandbox::SandboxConfig;
use common::process::Ran;
use harness::*;
use serde_json::{Value, json};

static SOURCE: LazyLock<CatConfig> = LazyLock::new(|| {
    cat_config::load(&Path::new(SOURCE_DIR).join("acceptance-test-config.yml")).unwrap_or_else(
        |e| panic!("CAT would reject acceptance-tests/acceptance-test-config.yml: {e}"),
    )
});

static DESTINATION: LazyLock<CatConfig> = LazyLock::new(|| {
    cat_config::load(&Path::new(DESTINATION_DIR).join("acceptance-test-config.yml")).unwrap_or_else(
        |e| panic!("CAT would reject acceptance-tests/destination/acceptance-test-config.yml: {e}"),
    )
});

/// The source's SPEC payload, for the secrets of a config.
fn spec_of(destination: bool) -> Value {
    let case = Case::new("TestSpec", "test_spec", "spec for secrets");
    let ran = run(
        &case,
        &role_args(destination, &["spec"]),
        None,
        SPEC_TIMEOUT,
        &[],
    );
    of_type(&ran.messages, "SPEC")
        .first()
        .map(|m| m["spec"].clone())
        .unwrap_or_else(|| case.fail("spec printed no SPEC", &summary(&ran.messages)))
}

static SOURCE_SPEC: LazyLock<Value> = LazyLock::new(|| spec_of(false));

fn source_secrets(dir: &Materialized, config_path: &str) -> Vec<String> {
    secrets_of(&dir.json(config_path), &SOURCE_SPEC)
}

fn timeout(configured: Option<u64>, default: u64) -> u64 {
    configured.unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The configuration files themselves
// ---------------------------------------------------------------------------------------------

/// CAT's models (parsed above with unknown keys refused) plus what it enforces at high strictness,
/// and the metadata files its image and certification tests read.
#[test]
fn cat_config_is_valid_at_high_strictness() {
    let case = Case::new("Config", "load_config", "acceptance-test-config.yml");
    let config = &*SOURCE;
    let tests = &config.acceptance_tests;
    case.ensure(
        config.test_strictness_level == Strictness::High,
        || "the source suite must run at test_strictness_level: high".to_owned(),
        &json!(format!("{:?}", config.test_strictness_level)),
    );
    fn declared<T>(group: Option<&Group<T>>) -> Option<(bool, Option<String>)> {
        group.map(|g| (g.is_declared(), g.cases().err()))
    }
    let groups = [
        ("spec", declared(tests.spec.as_ref())),
        ("connection", declared(tests.connection.as_ref())),
        ("discovery", declared(tests.discovery.as_ref())),
        ("basic_read", declared(tests.basic_read.as_ref())),
        ("full_refresh", declared(tests.full_refresh.as_ref())),
        ("incremental", declared(tests.incremental.as_ref())),
    ];
    for (name, group) in groups {
        let high = case.at("high_strictness_level");
        match group {
            Some((true, None)) => {}
            Some((_, Some(error))) => high.fail(format!("group `{name}`: {error}"), &json!(name)),
            _ => high.fail(
                format!("High strictness level error: the `{name}` group must have tests or a bypass_reason"),
                &json!(name),
            ),
        }
    }
    for basic in basic_read_cases() {
        let high = Case::new("TestBasicRead", "high_strictness_level", &basic.config_path);
        high.ensure(
            basic.validate_schema,
            || "validate_schema must stay true at high strictness".to_owned(),
            &json!(basic.config_path),
        );
        high.ensure(
            basic.configured_catalog_path.is_none(),
            || "basic_read reads the discovered catalog at high strictness: drop configured_catalog_path".to_owned(),
            &json!(basic.configured_catalog_path),
        );
        for empty in &basic.empty_streams {
            high.ensure(
                empty.bypass_reason.is_some(),
                || "A bypass_reason must be filled in for all empty streams".to_owned(),
                &json!(empty.name),
            );
        }
        match &basic.expect_records {
            None => high.fail(
                "expect_records must be configured for the basic_read test",
                &json!(null),
            ),
            Some(expect) => high.ensure(
                expect.path.is_some() != expect.bypass_reason.is_some(),
                || "expect_records needs a path or a bypass_reason, not both".to_owned(),
                &json!({"path": expect.path, "bypass_reason": expect.bypass_reason}),
            ),
        }
        for fields in basic
            .ignored_fields
            .iter()
            .flat_map(|m| m.values())
            .flatten()
        {
            high.ensure(
                fields.bypass_reason.is_some(),
                || "ignored fields need a bypass_reason".to_owned(),
                &json!(fields.name),
            );
        }
    }
    for incremental in incremental_cases() {
        let high = Case::new(
            "TestIncremental",
            "future_state_configuration",
            &incremental.config_path,
        );
        match &incremental.future_state {
            Some(future) if future.bypass_reason.is_some() || future.future_state_path.is_some() => {
                for missing in &future.missing_streams {
                    high.ensure(
                        missing.bypass_reason.is_some(),
                        || "all missing_streams must have a bypass reason specified".to_owned(),
                        &json!(missing.name),
                    );
                }
            }
            _ => high.fail(
                "a future state configuration must be provided in high test strictness level or a bypass reason should be filled",
                &json!(incremental.config_path),
            ),
        }
    }

    // metadata.yaml next to each config: the fields Airbyte's metadata schema requires, and the
    // image name CAT's label test compares with the connector under test.
    for (dir, cat, kind) in [
        (SOURCE_DIR, &*SOURCE, "source"),
        (DESTINATION_DIR, &*DESTINATION, "destination"),
    ] {
        let path = Path::new(dir).join("metadata.yaml");
        let metadata: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let meta = Case::new("Metadata", "metadata_schema", path.display().to_string());
        meta.ensure(
            metadata["metadataSpecVersion"] == "1.0",
            || "metadataSpecVersion must be \"1.0\"".to_owned(),
            &metadata,
        );
        let data = &metadata["data"];
        for field in [
            "name",
            "definitionId",
            "connectorType",
            "dockerRepository",
            "dockerImageTag",
            "license",
            "documentationUrl",
            "githubIssueLabel",
            "connectorSubtype",
            "releaseStage",
        ] {
            meta.ensure(
                data[field].is_string(),
                || format!("data.{field} is required"),
                data,
            );
        }
        meta.ensure(
            data["connectorType"] == kind,
            || format!("connectorType must be {kind}"),
            data,
        );
        let repository = cat.connector_image.split(':').next().unwrap_or_default();
        meta.ensure(
            data["dockerRepository"] == repository,
            || format!("dockerRepository must be the connector_image's repository {repository}"),
            data,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// TestSpec
// ---------------------------------------------------------------------------------------------

/// The cases of a test group. A missing, contradictory or empty group fails the test: at high
/// strictness every group the connector supports must have cases.
fn declared<'a, T>(group: Option<&'a Group<T>>, name: &str) -> &'a [T] {
    let group = group.unwrap_or_else(|| panic!("no {name} group in the config"));
    let cases = group
        .cases()
        .unwrap_or_else(|e| panic!("invalid {name} group: {e}"));
    assert!(!cases.is_empty(), "no {name} case in the config");
    cases
}

/// Each case of a CAT test group, with the [`Case`] that names it as CAT does: `class::test`
/// and `name` (the case's config file, as a rule).
fn cases_of<'a, T: 'a>(
    cases: impl IntoIterator<Item = &'a T>,
    (class, test): (&'static str, &'static str),
    name: impl Fn(&T) -> String,
) -> impl Iterator<Item = (Case, &'a T)> {
    cases
        .into_iter()
        .map(move |declared| (Case::new(class, test, name(declared)), declared))
}

fn run_spec(cat: &CatConfig, dir_path: &str, destination: bool) {
    let cases = declared(cat.acceptance_tests.spec.as_ref(), "spec");
    let dir = Materialized::new(dir_path);
    for (case, test) in cases_of(cases, ("TestSpec", "test_spec"), |test| {
        test.config_path.clone()
    }) {
        let ran = run(
            &case,
            &role_args(destination, &["spec"]),
            None,
            timeout(test.timeout_seconds, SPEC_TIMEOUT),
            &[],
        );
        let spec = &only_message(&case, &ran.messages, "spec", "SPEC")["spec"];
        let expected_path = dir.path(&test.spec_path);
        let expected = expected_path.exists().then(|| read_json(&expected_path));
        checks::check_spec(&case, spec, &dir.json(&test.config_path), expected.as_ref());
    }
}

#[test]
fn cat_spec() {
    run_spec(&SOURCE, SOURCE_DIR, false);
}

// ---------------------------------------------------------------------------------------------
// TestConnection
// ---------------------------------------------------------------------------------------------

fn run_connection(cat: &CatConfig, dir_path: &str, destination: bool, status: ConnectionStatus) {
    let cases: Vec<_> = declared(cat.acceptance_tests.connection.as_ref(), "connection")
        .iter()
        .filter(|t| t.status == status)
        .collect();
    assert!(
        !cases.is_empty(),
        "no connection case with status {status:?} in the config"
    );
    let dir = Materialized::new(dir_path);
    let spec = if destination {
        spec_of(true)
    } else {
        SOURCE_SPEC.clone()
    };
    for (case, test) in cases_of(cases, ("TestConnection", "test_check"), |test| {
        format!("{} {status:?}", test.config_path)
    }) {
        let config = dir.path(&test.config_path);
        let ran = run(
            &case,
            &role_args(destination, &["check", "--config", &arg(&config)]),
            None,
            timeout(test.timeout_seconds, CONNECTION_TIMEOUT),
            &secrets_of(&dir.json(&test.config_path), &spec),
        );
        match status {
            ConnectionStatus::Succeed | ConnectionStatus::Failed => {
                let status_message =
                    only_message(&case, &ran.messages, "check", "CONNECTION_STATUS");
                let want = if status == ConnectionStatus::Succeed {
                    "SUCCEEDED"
                } else {
                    "FAILED"
                };
                case.ensure(
                    status_message["connectionStatus"]["status"] == want,
                    || format!("the connection status must be {want}"),
                    status_message,
                );
            }
            ConnectionStatus::Exception => {
                let traces = of_type(&ran.messages, "TRACE");
                case.ensure(
                    traces.len() == 1,
                    || format!("A trace message should be emitted in case of unexpected errors: exactly one TRACE, got {}", traces.len()),
                    &summary(&ran.messages),
                );
                case.ensure(
                    traces[0]["trace"]["error"]["message"].is_string(),
                    || "the TRACE must carry error.message".to_owned(),
                    traces[0],
                );
            }
        }
    }
}

#[test]
fn cat_connection_succeed() {
    run_connection(&SOURCE, SOURCE_DIR, false, ConnectionStatus::Succeed);
}

#[test]
fn cat_connection_failed() {
    run_connection(&SOURCE, SOURCE_DIR, false, ConnectionStatus::Failed);
}

#[test]
fn cat_connection_exception() {
    run_connection(&SOURCE, SOURCE_DIR, false, ConnectionStatus::Exception);
}

// ---------------------------------------------------------------------------------------------
// TestDiscovery
// ---------------------------------------------------------------------------------------------

#[test]
fn cat_discovery() {
    let cases = declared(SOURCE.acceptance_tests.discovery.as_ref(), "discovery");
    let dir = Materialized::new(SOURCE_DIR);
    for (case, test) in cases_of(cases, ("TestDiscovery", "test_discover"), |test| {
        test.config_path.clone()
    }) {
        let config = dir.path(&test.config_path);
        let wait = timeout(test.timeout_seconds, DISCOVERY_TIMEOUT);
        let streams = discover_streams(
            &case,
            &config,
            wait,
            &source_secrets(&dir, &test.config_path),
        );
        checks::check_catalog(&case, &streams, test.validate_primary_keys_data_type);
    }
}

// ---------------------------------------------------------------------------------------------
// TestBasicRead
// ---------------------------------------------------------------------------------------------

fn basic_read_cases() -> &'static [cat_config::BasicReadTest] {
    declared(SOURCE.acceptance_tests.basic_read.as_ref(), "basic_read")
}

/// Outputs of reads, by config, catalog and state: CAT's runner caches the output of a command it
/// already ran with the same inputs (all but the full-refresh reads), and so does this one.
type CachedRead = Arc<OnceLock<Arc<Ran>>>;
static READS: LazyLock<Mutex<HashMap<String, CachedRead>>> = LazyLock::new(Mutex::default);

/// `read` with files for config, catalog and state, as CAT's container runs it, through the cache.
fn read(
    case: &Case,
    dir: &Materialized,
    config_path: &str,
    catalog: &Value,
    state: Option<&Value>,
    timeout_secs: u64,
) -> Arc<Ran> {
    let key = format!(
        "{}\n{catalog}\n{}",
        std::fs::read_to_string(dir.path(config_path)).unwrap_or_default(),
        state.map(Value::to_string).unwrap_or_default()
    );
    let cell = READS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .clone();
    cell.get_or_init(|| {
        Arc::new(read_uncached(
            case,
            dir,
            config_path,
            catalog,
            state,
            timeout_secs,
        ))
    })
    .clone()
}

fn read_uncached(
    case: &Case,
    dir: &Materialized,
    config_path: &str,
    catalog: &Value,
    state: Option<&Value>,
    timeout_secs: u64,
) -> Ran {
    let config = dir.path(config_path);
    let catalog_file = dir.write_json(&format!("catalog-{}.json", unique()), catalog);
    let mut args = vec![
        "read".to_owned(),
        "--config".to_owned(),
        arg(&config),
        "--catalog".to_owned(),
        arg(&catalog_file),
    ];
    if let Some(state) = state {
        let state_file = dir.write_json(&format!("state-{}.json", unique()), state);
        args.extend(["--state".to_owned(), arg(&state_file)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(
        case,
        &args,
        None,
        timeout_secs,
        &source_secrets(dir, config_path),
    )
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

fn stream_names(catalog: &Value) -> Vec<String> {
    catalog["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["stream"]["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn cat_basic_read() {
    let cases = basic_read_cases();
    let dir = Materialized::new(SOURCE_DIR);
    for (case, test) in cases_of(cases, ("TestBasicRead", "test_read"), |test| {
        test.config_path.clone()
    }) {
        let secrets = source_secrets(&dir, &test.config_path);
        let discovered = discover(&case, &dir.path(&test.config_path), &secrets);
        let empty: Vec<String> = test.empty_streams.iter().map(|e| e.name.clone()).collect();
        let catalog = match (&SOURCE.test_strictness_level, &test.configured_catalog_path) {
            (Strictness::Low, Some(path)) => {
                catalog_from_custom(&case, &dir.json(path), &discovered)
            }
            _ => catalog_from_discovered(&discovered, &empty),
        };
        let ran = read(
            &case,
            &dir,
            &test.config_path,
            &catalog,
            None,
            timeout(test.timeout_seconds, BASIC_READ_TIMEOUT),
        );
        let records = records(&ran.messages);
        case.ensure(
            !records.is_empty(),
            || "At least one record should be read using provided catalog".to_owned(),
            &summary(&ran.messages),
        );

        if test.validate_schema {
            checks::check_records_schema(&case, &records, &catalog);
        }

        // _validate_empty_streams
        let mut by_stream: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for record in &records {
            by_stream
                .entry(
                    record["record"]["stream"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
                .or_default()
                .push(record);
        }
        for name in stream_names(&catalog) {
            case.ensure(
                by_stream.contains_key(&name),
                || format!("All streams should return some records: `{name}` returned none (declare it in empty_streams if it is expected)"),
                &summary(&ran.messages),
            );
        }

        // Primary keys: never an object or an array, and not entirely null.
        if test.validate_primary_keys_data_type {
            for configured in catalog["streams"].as_array().into_iter().flatten() {
                let name = configured["stream"]["name"].as_str().unwrap_or_default();
                let key = &configured["primary_key"];
                if key.is_null() {
                    continue;
                }
                for record in by_stream.get(name).into_iter().flatten() {
                    let values = checks::primary_key_of(&record["record"]["data"], key);
                    case.ensure(
                        values.iter().all(|v| !v.is_object() && !v.is_array()) && values.iter().any(|v| !v.is_null()),
                        || format!("the primary key {key} of a `{name}` record must be a non-null scalar"),
                        record,
                    );
                }
            }
        }

        if test.validate_data_points {
            for configured in catalog["streams"].as_array().into_iter().flatten() {
                let name = configured["stream"]["name"].as_str().unwrap_or_default();
                for field in configured["stream"]["json_schema"]["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    let seen = by_stream
                        .get(name)
                        .into_iter()
                        .flatten()
                        .any(|r| !r["record"]["data"][field].is_null());
                    case.ensure(
                        seen,
                        || format!("`{name}`.{field} is null in every record"),
                        &json!(field),
                    );
                }
            }
        }

        if let Some(expect) = &test.expect_records
            && let Some(path) = &expect.path
        {
            check_expected_records(
                &case,
                &dir,
                path,
                expect.exact_order,
                &catalog,
                &empty,
                &by_stream,
            );
        }

        let certified = false; // metadata.yaml: no ab_internal.ql >= 400
        if test.validate_stream_statuses.unwrap_or(certified) {
            check_stream_statuses(
                &case.at("test_read (stream statuses)"),
                &ran.messages,
                &catalog,
            );
        }
        if test.validate_state_messages {
            check_state_messages(
                &case.at("test_read (state messages)"),
                &ran.messages,
                &catalog,
            );
        }
    }
}

/// `_validate_expected_records` with CAT 3.x's comparison: for a stream with a primary key, the
/// expected keys must all be among the actual ones (a prefix of them with `exact_order`).
fn check_expected_records(
    case: &Case,
    dir: &Materialized,
    path: &str,
    exact_order: bool,
    catalog: &Value,
    empty: &[String],
    actual: &BTreeMap<String, Vec<&Value>>,
) {
    let case = case.at("test_read (expected records)");
    let text = std::fs::read_to_string(dir.path(path)).unwrap();
    let mut expected: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{path}: {e}: {line}"));
        expected
            .entry(record["stream"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(record);
    }
    if SOURCE.test_strictness_level == Strictness::High {
        for name in stream_names(catalog) {
            case.ensure(
                empty.contains(&name) || expected.contains_key(&name),
                || format!("High strictness level error: `{name}` is declared in the catalog but has no expected records in {path}"),
                &json!(name),
            );
        }
    }
    for (name, expected) in &expected {
        let configured = catalog["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["stream"]["name"] == name.as_str())
            .unwrap_or_else(|| {
                case.fail(
                    format!("expected records name `{name}`, which is not in the catalog"),
                    &json!(name),
                )
            });
        let actual: Vec<&Value> = actual.get(name).cloned().unwrap_or_default();
        let key = &configured["stream"]["source_defined_primary_key"];
        if key.is_array() {
            let actual_keys: Vec<Vec<Value>> = actual
                .iter()
                .map(|r| checks::primary_key_of(&r["record"]["data"], key))
                .collect();
            for (i, record) in expected.iter().enumerate() {
                let want = checks::primary_key_of(&record["data"], key);
                let found = if exact_order {
                    actual_keys.get(i) == Some(&want)
                } else {
                    actual_keys.contains(&want)
                };
                case.ensure(
                    found,
                    || format!("Expected to see those primary keys in the actual response for stream {name} but they were not found"),
                    record,
                );
            }
        } else if expected.len() > actual.len() {
            case.fail(
                format!(
                    "Stream {name}: more records expected ({}) than read ({})",
                    expected.len(),
                    actual.len()
                ),
                &json!(name),
            );
        }
    }
}

/// `_validate_stream_statuses`: every configured stream, STARTED, RUNNING…, COMPLETE.
fn check_stream_statuses(case: &Case, messages: &[Value], catalog: &Value) {
    let mut statuses: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for message in of_type(messages, "TRACE") {
        if message["trace"]["type"] != "STREAM_STATUS" {
            continue;
        }
        let descriptor = &message["trace"]["stream_status"]["stream_descriptor"];
        let key = format!(
            "{}-{}",
            descriptor["namespace"].as_str().unwrap_or("None"),
            descriptor["name"].as_str().unwrap_or_default()
        );
        statuses.entry(key).or_default().push(message);
    }
    let configured: BTreeSet<String> = catalog["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!(
                "{}-{}",
                s["stream"]["namespace"].as_str().unwrap_or("None"),
                s["stream"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let seen: BTreeSet<String> = statuses.keys().cloned().collect();
    case.ensure(
        configured == seen,
        || {
            format!(
                "All stream must emit status: configured {configured:?}, with statuses {seen:?}"
            )
        },
        &summary(messages),
    );
    for (stream, list) in &statuses {
        let names: Vec<&str> = list
            .iter()
            .map(|m| {
                m["trace"]["stream_status"]["status"]
                    .as_str()
                    .unwrap_or_default()
            })
            .collect();
        let offending = json!({ "stream": stream, "statuses": names, "last": list.last() });
        case.ensure(
            names.len() >= 3,
            || format!("Stream `{stream}` statuses should be emitted in the next order: `STARTED`, `RUNNING`,... `COMPLETE`"),
            &offending,
        );
        case.ensure(
            names[0] == "STARTED",
            || format!("Stream `{stream}`: the first status must be STARTED"),
            &offending,
        );
        case.ensure(
            names[names.len() - 1] == "COMPLETE",
            || format!("Stream `{stream}`: the last status must be COMPLETE"),
            &offending,
        );
        case.ensure(
            names[1..names.len() - 1].iter().all(|s| *s == "RUNNING"),
            || format!("Stream `{stream}`: only RUNNING statuses between STARTED and COMPLETE"),
            &offending,
        );
    }
}

/// `_validate_state_messages`, plus what the other tests rely on: a STREAM state for every
/// stream, each with `sourceStats.recordCount` equal to the records since that stream's previous
/// state (test_read_sequential_slices predicts resumed reads from these counts).
fn check_state_messages(case: &Case, messages: &[Value], catalog: &Value) {
    let states = states(messages);
    let names = stream_names(catalog);
    case.ensure(
        states.len() >= names.len(),
        || format!("At least one state message should be emitted for each configured stream: {} states for {} streams", states.len(), names.len()),
        &summary(messages),
    );
    let mut since_state: BTreeMap<String, u64> = BTreeMap::new();
    let mut with_state: BTreeSet<String> = BTreeSet::new();
    for message in messages {
        match message["type"].as_str() {
            Some("RECORD") => {
                *since_state
                    .entry(
                        message["record"]["stream"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                    .or_default() += 1
            }
            Some("STATE") => {
                let state = &message["state"];
                case.ensure(
                    state["type"] != "LEGACY" && !state["type"].is_null(),
                    || "the LEGACY state type is deprecated: emit STREAM states".to_owned(),
                    message,
                );
                let Some(name) = state["stream"]["stream_descriptor"]["name"].as_str() else {
                    case.fail("a state must be a STREAM state with stream.stream_descriptor (CAT reads state.stream.stream_descriptor.name)", message);
                };
                case.ensure(
                    state["type"] == "STREAM",
                    || "a state must be of type STREAM".to_owned(),
                    message,
                );
                let count = state["sourceStats"]["recordCount"].as_f64();
                case.ensure(
                    state["sourceStats"].is_object() && count.is_some(),
                    || {
                        "Source stats should be in state message: sourceStats.recordCount"
                            .to_owned()
                    },
                    message,
                );
                let emitted = since_state.remove(name).unwrap_or(0);
                case.ensure(
                    count == Some(emitted as f64),
                    || format!("sourceStats.recordCount must count the {emitted} `{name}` records emitted since its previous state"),
                    message,
                );
                with_state.insert(name.to_owned());
            }
            _ => {}
        }
    }
    for name in &names {
        case.ensure(
            with_state.contains(name),
            || format!("no STATE message for stream `{name}`"),
            &summary(messages),
        );
    }
    for (name, left) in &since_state {
        case.ensure(
            *left == 0,
            || format!("{left} `{name}` records came after its last state: no state counts them"),
            &summary(messages),
        );
    }
}

#[test]
fn cat_basic_read_trace_on_failure() {
    let cases = basic_read_cases();
    let dir = Materialized::new(SOURCE_DIR);
    for (case, test) in cases_of(
        cases.iter().filter(|t| t.expect_trace_message_on_failure),
        ("TestBasicRead", "test_airbyte_trace_message_on_failure"),
        |test| test.config_path.clone(),
    ) {
        let invalid = json!({"streams": [{
            "stream": {
                "name": "__AIRBYTE__stream_that_does_not_exist",
                "json_schema": {"type": "object", "properties": {"f1": {"type": "string"}}},
                "supported_sync_modes": ["full_refresh"],
            },
            "sync_mode": "INVALID",
            "destination_sync_mode": "INVALID",
        }]});
        let ran = read(
            &case,
            &dir,
            &test.config_path,
            &invalid,
            None,
            timeout(test.timeout_seconds, BASIC_READ_TIMEOUT),
        );
        case.ensure(
            !error_traces(&ran.messages).is_empty(),
            || "Connector should emit at least one error trace message".to_owned(),
            &summary(&ran.messages),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// TestFullRefresh
// ---------------------------------------------------------------------------------------------

#[test]
fn cat_full_refresh_sequential_reads() {
    let cases = declared(
        SOURCE.acceptance_tests.full_refresh.as_ref(),
        "full_refresh",
    );
    let dir = Materialized::new(SOURCE_DIR);
    for (case, test) in cases_of(
        cases,
        ("TestFullRefresh", "test_sequential_reads"),
        |test| test.config_path.clone(),
    ) {
        let secrets = source_secrets(&dir, &test.config_path);
        let discovered = discover(&case, &dir.path(&test.config_path), &secrets);
        let catalog = full_refresh_only(&configured_catalog(
            &case,
            &dir,
            test.configured_catalog_path.as_deref(),
            &discovered,
        ));
        let limit = timeout(test.timeout_seconds, FULL_REFRESH_TIMEOUT);
        // CAT disables its output cache here: two real reads.
        let first = read_uncached(&case, &dir, &test.config_path, &catalog, None, limit);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let second = read_uncached(&case, &dir, &test.config_path, &catalog, None, limit);
        let records_1 = records(&first.messages);
        let records_2 = records(&second.messages);
        case.ensure(
            !records_1.is_empty(),
            || "At least one record should be read using provided catalog".to_owned(),
            &summary(&first.messages),
        );
        let emitted_at = |r: &Value| r["record"]["emitted_at"].as_i64().unwrap_or(i64::MIN);
        let (Some(latest_1), Some(earliest_2)) = (
            records_1.iter().copied().max_by_key(|r| emitted_at(r)),
            records_2.iter().copied().min_by_key(|r| emitted_at(r)),
        ) else {
            case.fail(
                "the second read returned no record",
                &summary(&second.messages),
            );
        };
        case.ensure(
            emitted_at(latest_1) < emitted_at(earliest_2),
            || format!(
                "emitted_at should increase on subsequent runs: the latest of the first read ({}) is not before the earliest of the second ({}); the first read's is shown",
                emitted_at(latest_1),
                emitted_at(earliest_2)
            ),
            latest_1,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// TestIncremental
// ---------------------------------------------------------------------------------------------

fn incremental_cases() -> &'static [cat_config::IncrementalTest] {
    declared(SOURCE.acceptance_tests.incremental.as_ref(), "incremental")
}

/// The incremental cases, each named as the CAT test `TestIncremental::{test}` runs it.
fn incremental_runs(
    test: &'static str,
) -> impl Iterator<Item = (Case, &'static cat_config::IncrementalTest)> {
    cases_of(incremental_cases(), ("TestIncremental", test), |test| {
        test.config_path.clone()
    })
}

fn incremental_catalog(
    case: &Case,
    dir: &Materialized,
    test: &cat_config::IncrementalTest,
) -> Value {
    let secrets = source_secrets(dir, &test.config_path);
    let discovered = discover(case, &dir.path(&test.config_path), &secrets);
    incremental_only(
        case,
        &configured_catalog(
            case,
            dir,
            test.configured_catalog_path.as_deref(),
            &discovered,
        ),
    )
}

#[test]
fn cat_incremental_two_sequential_reads() {
    let dir = Materialized::new(SOURCE_DIR);
    for (case, test) in incremental_runs("test_two_sequential_reads") {
        let catalog = incremental_catalog(&case, &dir, test);
        let limit = timeout(test.timeout_seconds, INCREMENTAL_TIMEOUT);
        let first = read(&case, &dir, &test.config_path, &catalog, None, limit);
        let states_1 = states(&first.messages);
        let records_1 = records(&first.messages);
        case.ensure(
            !states_1.is_empty(),
            || "First Read should produce at least one state".to_owned(),
            &summary(&first.messages),
        );
        case.ensure(
            !records_1.is_empty(),
            || "First Read should produce at least one record".to_owned(),
            &summary(&first.messages),
        );
        let state = state_input(&latest_states(&states_1));
        let second = read(
            &case,
            &dir,
            &test.config_path,
            &catalog,
            Some(&state),
            limit,
        );
        let records_2 = records(&second.messages);
        case.ensure(
            !same_data(&records_1, &records_2),
            || format!("Records should change between reads but did not: the second read, from state {state}, returned the same {} records", records_2.len()),
            records_2.first().copied().unwrap_or(&Value::Null),
        );
    }
}

/// CAT's `_get_unique_state_messages_with_record_count`, step by step (quirks included): collapse
/// consecutive states with the same blob into the first (summing counts), keep the last one when
/// it differs, drop zero counts, then pair each with total − counts up to and including it.
fn unique_states_with_expected_counts(states: &[&Value]) -> Vec<(Value, f64)> {
    let count = |s: &Value| {
        s["state"]["sourceStats"]["recordCount"]
            .as_f64()
            .unwrap_or(0.0)
    };
    let blob = |s: &Value| -> Value {
        match s["state"]["stream"].is_object() {
            true => s["state"]["stream"]["stream_state"].clone(),
            false => s["state"].clone(),
        }
    };
    let mut states: Vec<Value> = states.iter().map(|s| (*s).clone()).collect();
    if states.len() <= 1 {
        return states
            .into_iter()
            .filter(|s| count(s) != 0.0)
            .map(|s| (s, 0.0))
            .collect();
    }
    let mut unique = Vec::new();
    let mut current = 0;
    while current < states.len() - 1 {
        let mut next = current + 1;
        while blob(&states[current]) == blob(&states[next]) && next < states.len() - 1 {
            next += 1;
        }
        let sum: f64 = states[current..next].iter().map(count).sum();
        states[current]["state"]["sourceStats"] = json!({ "recordCount": sum });
        unique.push(states[current].clone());
        if next == states.len() - 1 && blob(&states[current]) != blob(&states[next]) {
            unique.push(states[next].clone());
        }
        current = next;
    }
    let non_zero: Vec<Value> = unique.into_iter().filter(|s| count(s) != 0.0).collect();
    let total: f64 = non_zero.iter().map(count).sum();
    let mut cumulative = 0.0;
    non_zero
        .into_iter()
        .map(|s| {
            cumulative += count(&s);
            (s, total - cumulative)
        })
        .collect()
}

/// `_states_with_expected_record_count_batch_selector` (MIN_BATCHES_TO_TEST = 5).
fn select_states(unique: Vec<(Value, f64)>) -> Vec<(Value, f64)> {
    if unique.len() < 3 {
        return unique.into_iter().last().into_iter().collect();
    }
    let sample_rate = (unique.len() / 5).max(1);
    let last = unique.len() - 1;
    unique
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 0 && i % sample_rate == 0 && *i != last)
        .map(|(_, s)| s)
        .collect()
}

#[test]
fn cat_incremental_read_sequential_slices() {
    let dir = Materialized::new(SOURCE_DIR);
    for (case, test) in incremental_runs("test_read_sequential_slices") {
        if test.skip_comprehensive_incremental_tests == Some(true) {
            continue;
        }
        let catalog = incremental_catalog(&case, &dir, test);
        let limit = timeout(test.timeout_seconds, INCREMENTAL_TIMEOUT);
        let mut tested = 0;
        for stream in catalog["streams"].as_array().into_iter().flatten() {
            let name = stream["stream"]["name"].as_str().unwrap_or_default();
            let case = Case::new(
                case.class,
                case.test,
                format!("{} {name}", test.config_path),
            );
            let single = json!({ "streams": [stream] });
            let first = read(&case, &dir, &test.config_path, &single, None, limit);
            let records_1 = records(&first.messages);
            let states_1 = states(&first.messages);
            if records_1.is_empty() || states_1.is_empty() {
                continue;
            }
            let selected = select_states(unique_states_with_expected_counts(&states_1));
            if selected.is_empty() {
                case.fail(
                    "Unable to test because there is no suitable state checkpoint, likely due to a zero record count in the states",
                    &json!({ "states": states_1 }),
                );
            }
            let mut accumulated: BTreeMap<String, Value> = BTreeMap::new();
            let count = selected.len();
            for (idx, (state, expected)) in selected.into_iter().enumerate() {
                let descriptor = state["state"]["stream"]["stream_descriptor"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let blob = &state["state"]["stream"]["stream_state"];
                if !blob.is_null() {
                    accumulated.insert(descriptor, blob.clone());
                }
                let input = state_input(&accumulated);
                let resumed = read(&case, &dir, &test.config_path, &single, Some(&input), limit);
                let records_n = records(&resumed.messages);
                case.ensure(
                    records_n.len() as f64 >= expected,
                    || format!(
                        "Read {} of {count} should produce at least {expected} records (the first read's total minus the sourceStats.recordCount up to this state), got {}; the state is shown",
                        idx + 1,
                        records_n.len()
                    ),
                    &state,
                );
                // CAT 3.9 comments this one out; earlier 3.x versions assert it.
                case.ensure(
                    !same_data(&records_1, &records_n),
                    || format!("Records for subsequent reads with new state should be different (read {} of {count}); the state is shown", idx + 1),
                    &state,
                );
                tested += 1;
            }
        }
        assert!(
            tested > 0,
            "{}: no state was tested: the sandbox is too small for this test to mean anything",
            case.case
        );
    }
}

#[test]
fn cat_incremental_abnormal_state() {
    let dir = Materialized::new(SOURCE_DIR);
    for (case, test) in incremental_runs("test_state_with_abnormally_large_values") {
        let Some(future) = &test.future_state else {
            case.fail(
                "High test strictness level error: a future state configuration must be provided",
                &json!(null),
            );
        };
        if future.bypass_reason.is_some() {
            continue;
        }
        let Some(path) = &future.future_state_path else {
            case.fail(
                "future_state needs a future_state_path or a bypass_reason",
                &json!(null),
            );
        };
        let future_state = dir.json(path);
        let secrets = source_secrets(&dir, &test.config_path);
        let discovered = discover(&case, &dir.path(&test.config_path), &secrets);
        // The fixture checks coverage against the configured catalog, then reads incremental only.
        let configured = configured_catalog(
            &case,
            &dir,
            test.configured_catalog_path.as_deref(),
            &discovered,
        );
        let in_state: BTreeSet<&str> = future_state
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["stream"]["stream_descriptor"]["name"].as_str())
            .collect();
        for stream in configured["streams"].as_array().into_iter().flatten() {
            let name = stream["stream"]["name"].as_str().unwrap_or_default();
            let incremental = stream["stream"]["supported_sync_modes"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == "incremental"));
            if incremental && SOURCE.test_strictness_level == Strictness::High {
                case.ensure(
                    in_state.contains(name) || future.missing_streams.iter().any(|m| m.name == name),
                    || format!("High test strictness level error: {name} streams are missing in your future_state file"),
                    &future_state,
                );
            }
        }
        let catalog = only_incremental_without_cursor_default(&configured);
        let ran = read(
            &case,
            &dir,
            &test.config_path,
            &catalog,
            Some(&future_state),
            timeout(test.timeout_seconds, INCREMENTAL_TIMEOUT),
        );
        let records = records(&ran.messages);
        let states = states(&ran.messages);
        case.ensure(
            records.is_empty(),
            || "The sync should produce no records when run with the state with abnormally large values".to_owned(),
            records.first().copied().unwrap_or(&Value::Null),
        );
        case.ensure(
            !states.is_empty(),
            || "The sync should produce at least one STATE message".to_owned(),
            &summary(&ran.messages),
        );
        check_cursor_formats(
            &case,
            &catalog,
            &states,
            &future_state,
            future.cursor_format.as_ref(),
        );
    }
}

/// `incremental_only_catalog` alone (this test does not default `cursor_field`).
fn only_incremental_without_cursor_default(catalog: &Value) -> Value {
    let streams: Vec<Value> = catalog["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["stream"]["supported_sync_modes"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == "incremental"))
        })
        .map(|s| {
            let mut s = s.clone();
            s["sync_mode"] = json!("incremental");
            s
        })
        .collect();
    json!({ "streams": streams })
}

/// CAT 3.9's cursor checks after the future-state read: the cursor values in the output states
/// and in the future state have the schema's type, and (with no `cursor_format`) the same shape,
/// character class by character class.
fn check_cursor_formats(
    case: &Case,
    catalog: &Value,
    states: &[&Value],
    future: &Value,
    format: Option<&cat_config::CursorFormat>,
) {
    fn values_for(node: &Value, cursor: &str, out: &mut Vec<Value>) {
        match node {
            Value::Object(map) => {
                for (key, value) in map {
                    if key == cursor || (map.contains_key("cursor_field") && key == "cursor") {
                        out.push(value.clone());
                    }
                    values_for(value, cursor, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| values_for(i, cursor, out)),
            _ => {}
        }
    }
    fn same_shape(a: &str, b: &str) -> bool {
        a.chars().count() == b.chars().count()
            && a.chars().zip(b.chars()).all(|(x, y)| {
                (x.is_alphabetic() && y.is_alphabetic())
                    || (x.is_numeric() && y.is_numeric())
                    || (!x.is_alphanumeric() && !y.is_alphanumeric() && x == y)
            })
    }
    for stream in catalog["streams"].as_array().into_iter().flatten() {
        let name = stream["stream"]["name"].as_str().unwrap_or_default();
        let Some(cursor) = stream["cursor_field"]
            .as_array()
            .or(stream["stream"]["default_cursor_field"].as_array())
            .and_then(|c| c.first())
            .and_then(Value::as_str)
        else {
            continue;
        };
        let mut actual = Vec::new();
        for state in states
            .iter()
            .filter(|s| s["state"]["stream"]["stream_descriptor"]["name"] == name)
        {
            values_for(
                &state["state"]["stream"]["stream_state"],
                cursor,
                &mut actual,
            );
        }
        let mut expected = Vec::new();
        for state in future
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["stream"]["stream_descriptor"]["name"] == name)
        {
            values_for(&state["stream"]["stream_state"], cursor, &mut expected);
        }
        case.ensure(
            !expected.is_empty(),
            || "Future state must be set up for all given streams".to_owned(),
            future,
        );
        let schema_types: Vec<String> =
            match &stream["stream"]["json_schema"]["properties"][cursor]["type"] {
                Value::String(t) => vec![t.clone()],
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
        let pattern = format.and_then(|f| {
            f.streams
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.format.clone())
                .unwrap_or(f.format.clone())
        });
        for (actual, future_value) in actual.iter().zip(&expected) {
            for value in [actual, future_value] {
                for t in schema_types.iter().filter(|t| *t != "null") {
                    let ok = value.is_null()
                        || match t.as_str() {
                            "string" | "str" => value.is_string(),
                            "integer" | "int" | "int32" | "int64" => {
                                value.is_i64() || value.is_u64()
                            }
                            "number" | "float" | "double" => value.is_f64(),
                            _ => true,
                        };
                    case.ensure(
                        ok,
                        || format!("Cursor value {value} is not of type {t}"),
                        value,
                    );
                }
            }
            if let (Some(a), Some(f)) = (actual.as_str(), future_value.as_str()) {
                case.ensure(
                    pattern.is_some() || same_shape(a, f),
                    || format!("Actual and future state formats do not match. Actual cursor value: {a}, future cursor value: {f}"),
                    actual,
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The destination image: TestSpec and TestConnection, and the write scenarios
// ---------------------------------------------------------------------------------------------

#[test]
fn cat_destination_spec() {
    run_spec(&DESTINATION, DESTINATION_DIR, true);
    let case = Case::new("TestSpec", "test_spec", "destination");
    let spec = spec_of(true);
    case.ensure(
        spec["supported_destination_sync_modes"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        || "a destination spec should list supported_destination_sync_modes".to_owned(),
        &spec,
    );
}

#[test]
fn cat_destination_connection_succeed() {
    run_connection(
        &DESTINATION,
        DESTINATION_DIR,
        true,
        ConnectionStatus::Succeed,
    );
}

#[test]
fn cat_destination_connection_failed() {
    run_connection(
        &DESTINATION,
        DESTINATION_DIR,
        true,
        ConnectionStatus::Failed,
    );
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenarios {
    config: String,
    catalog: String,
    scenarios: Vec<Scenario>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    file: String,
    expect: Expect,
    description: String,
}

#[derive(serde::Deserialize, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Success,
    Error,
}

/// The scenario files themselves (this runs while the destination role is not on main): every
/// line an Airbyte message, every record of a success scenario valid for its object's write
/// schema, and the error scenario naming a stream the catalog does not.
#[test]
fn dest_write_scenarios_are_well_formed() {
    let dir = Path::new(DESTINATION_DIR);
    let scenarios: Scenarios =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("scenarios.yml")).unwrap())
            .unwrap_or_else(|e| panic!("scenarios.yml: {e}"));
    let catalog = read_json(&dir.join(&scenarios.catalog));
    let configured: BTreeSet<&str> = catalog["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["stream"]["name"].as_str())
        .collect();
    assert!(
        dir.join(&scenarios.config).exists(),
        "{} is missing",
        scenarios.config
    );
    for scenario in &scenarios.scenarios {
        let text = std::fs::read_to_string(dir.join(&scenario.file))
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.file));
        let mut unknown_streams = 0;
        for (n, line) in text.lines().enumerate() {
            let message: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{} line {}: not JSON: {e}", scenario.file, n + 1));
            assert!(
                ["RECORD", "STATE", "TRACE"]
                    .contains(&message["type"].as_str().unwrap_or_default()),
                "{} line {}: not a message the platform sends a destination",
                scenario.file,
                n + 1
            );
            if message["type"] != "RECORD" {
                continue;
            }
            let stream = message["record"]["stream"].as_str().unwrap_or_default();
            if !configured.contains(stream) {
                unknown_streams += 1;
                continue;
            }
            if let Err(e) = clari_copilot::catalog::validate_destination_record(
                stream,
                &message["record"]["data"],
            ) {
                panic!("{} line {}: {e}", scenario.file, n + 1);
            }
        }
        match scenario.expect {
            Expect::Success => assert_eq!(
                unknown_streams, 0,
                "{}: a stream outside the catalog",
                scenario.file
            ),
            Expect::Error => assert!(
                unknown_streams > 0,
                "{}: no stream outside the catalog",
                scenario.file
            ),
        }
    }
}

/// The key field of each destination object, and where the sandbox stores it.
fn stored(
    store: &clari_copilot_sandbox::WriteStore,
    stream: &str,
) -> Option<(&'static str, BTreeMap<String, Value>)> {
    match stream {
        "accounts" => Some(("crm_id", store.accounts.clone())),
        "contacts" => Some(("crm_id", store.contacts.clone())),
        "deals" => Some(("crm_id", store.deals.clone())),
        "calls" => Some(("source_id", store.calls.clone())),
        _ => None,
    }
}

#[test]
fn dest_write_scenarios() {
    let path = Path::new(DESTINATION_DIR).join("scenarios.yml");
    let scenarios: Scenarios = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!scenarios.scenarios.is_empty());
    let spec = spec_of(true);
    for scenario in &scenarios.scenarios {
        let case = Case::new(
            "Destination",
            "write",
            format!("{} ({})", scenario.file, scenario.description),
        );
        let dir = Materialized::new(DESTINATION_DIR);
        let sandbox = Env::get().fresh_sandbox(SandboxConfig::with_calls(10));
        dir.point_config_at(&scenarios.config, &sandbox.base_url());
        let config = dir.path(&scenarios.config);
        let catalog = dir.path(&scenarios.catalog);
        let input = std::fs::read(dir.path(&scenario.file)).unwrap();
        let ran = run(
            &case,
            &role_args(
                true,
                &[
                    "write",
                    "--config",
                    &arg(&config),
                    "--catalog",
                    &arg(&catalog),
                ],
            ),
            Some(&input),
            CONNECTION_TIMEOUT,
            &secrets_of(&dir.json(&scenarios.config), &spec),
        );
        let inputs: Vec<Value> = String::from_utf8(input)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if scenario.expect == Expect::Error {
            case.ensure(
                ran.code != Some(0),
                || "the write must exit non-zero".to_owned(),
                &summary(&ran.messages),
            );
            case.ensure(
                !error_traces(&ran.messages).is_empty(),
                || "the write must emit a TRACE ERROR".to_owned(),
                &summary(&ran.messages),
            );
            continue;
        }
        case.ensure(
            ran.code == Some(0),
            || format!("the write must exit 0, exited {:?}", ran.code),
            &summary(&ran.messages),
        );
        case.ensure(
            error_traces(&ran.messages).is_empty(),
            || "the write must not emit a TRACE ERROR".to_owned(),
            &summary(&ran.messages),
        );

        // Every input STATE comes back, in order, unchanged but for destinationStats.
        let sent: Vec<&Value> = inputs.iter().filter(|m| m["type"] == "STATE").collect();
        let echoed = states(&ran.messages);
        case.ensure(
            sent.len() == echoed.len(),
            || {
                format!(
                    "every input STATE must be echoed: {} sent, {} echoed",
                    sent.len(),
                    echoed.len()
                )
            },
            &summary(&ran.messages),
        );
        for (sent, echo) in sent.iter().zip(&echoed) {
            let mut echo_state = echo["state"].clone();
            let stats = echo_state
                .as_object_mut()
                .and_then(|s| s.remove("destinationStats"));
            case.ensure(
                stats.as_ref().is_some_and(|s| s["recordCount"].is_number()),
                || "an echoed STATE must carry destinationStats.recordCount".to_owned(),
                echo,
            );
            case.ensure(
                echo_state == sent["state"],
                || {
                    format!(
                        "states must be echoed in order and unchanged; expected {}",
                        sent["state"]
                    )
                },
                echo,
            );
        }

        // Every record landed, with the values it was sent with (the last one per key wins).
        let store = sandbox.store();
        let mut last: BTreeMap<(String, String), &Value> = BTreeMap::new();
        for message in inputs.iter().filter(|m| m["type"] == "RECORD") {
            let stream = message["record"]["stream"].as_str().unwrap_or_default();
            let (key_field, _) = stored(&store, stream).unwrap_or_else(|| {
                case.fail(
                    "a record of an unknown object in a success scenario",
                    message,
                )
            });
            let key = message["record"]["data"][key_field]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            last.insert((stream.to_owned(), key), message);
        }
        for ((stream, key), message) in last {
            let (_, objects) = stored(&store, &stream).unwrap();
            let Some(object) = objects.get(&key) else {
                case.fail(
                    format!("the `{stream}` record {key:?} did not land in the sandbox"),
                    message,
                );
            };
            for (field, value) in message["record"]["data"].as_object().into_iter().flatten() {
                if let Some(written) = object.get(field) {
                    case.ensure(
                        written == value,
                        || format!("`{stream}` {key:?}: field `{field}` was stored as {written}"),
                        message,
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Maintenance
// ---------------------------------------------------------------------------------------------

/// Rewrites `integration_tests/expected_records.jsonl` from a basic read of the sandbox:
/// `cargo test --test acceptance -- --ignored regenerate_expected_records`.
#[test]
#[ignore = "maintenance: rewrites acceptance-tests/integration_tests/expected_records.jsonl"]
fn regenerate_expected_records() {
    let test = &basic_read_cases()[0];
    let case = Case::new("TestBasicRead", "regenerate", &test.config_path);
    let dir = Materialized::new(SOURCE_DIR);
    let secrets = source_secrets(&dir, &test.config_path);
    let discovered = discover(&case, &dir.path(&test.config_path), &secrets);
    let catalog = catalog_from_discovered(&discovered, &[]);
    let ran = read(
        &case,
        &dir,
        &test.config_path,
        &catalog,
        None,
        BASIC_READ_TIMEOUT,
    );
    let mut per_stream: BTreeMap<String, usize> = BTreeMap::new();
    let mut lines = String::new();
    for record in records(&ran.messages) {
        let stream = record["record"]["stream"].as_str().unwrap().to_owned();
        let seen = per_stream.entry(stream.clone()).or_default();
        *seen += 1;
        if *seen > 5 {
            continue;
        }
        let expected = json!({"stream": stream, "data": record["record"]["data"], "emitted_at": 1_735_689_600_000_i64});
        lines.push_str(&expected.to_string());
        lines.push('\n');
    }
    let path =
        Path::new(SOURCE_DIR).join(test.expect_records.as_ref().unwrap().path.as_ref().unwrap());
    std::fs::write(&path, lines).unwrap();
}
