//! The destination against the sandbox, in process: every object in every mode, the state
//! contract on a slow and faulty API, a write killed mid-way and replayed, rejections under
//! both policies, tolerant input, and secrets.

mod destination_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clari_copilot::config::DestinationConfig;
use clari_copilot::destination::{self, WriteSummary};
use clari_copilot::error::Error;
use clari_copilot::protocol::output::MemorySink;
use clari_copilot::protocol::{FailureType, Output};
use clari_copilot_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use destination_support::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_lands_in_the_store_in_each_supported_mode() {
    let sandbox = start().await;
    let objects = ["accounts", "contacts", "deals", "calls"];

    // append: three of each, every field (unknown ones included) as sent.
    let input = Input::new().records_of(&objects, 0..3, 1).global_state(1);
    let (result, _) = run(&sandbox, "fail", &modes(&objects, "append"), &input).await;
    assert_eq!(result.unwrap().written, 12);
    let store = sandbox.store();
    assert_eq!(store.creates.total(), 12);
    assert_eq!(store.accounts["acc-1"]["name"], "accounts 1 v1");
    assert_eq!(
        store.accounts["acc-1"]["x_unknown"],
        json!({"kept": [1.5, "yes"]})
    );
    assert_eq!(store.contacts["con-2"]["account_crm_id"], "acc-2");
    assert_eq!(store.deals["deal-0"]["amount"], "1000.50");
    assert_eq!(store.calls["call-2"]["title"], "calls 2 v1");
    assert_eq!(store.calls["call-2"]["source_user_ids"], json!(["u-1"]));

    // append_dedup: the three again (updated) and one new of each.
    let input = Input::new().records_of(&objects, 0..4, 2).global_state(1);
    let (result, _) = run(&sandbox, "fail", &modes(&objects, "append_dedup"), &input).await;
    assert_eq!(result.unwrap().written, 16);
    let store = sandbox.store();
    assert_eq!(store.duplicate_creates.total(), 0);
    assert_eq!(store.creates.total(), 16);
    assert_eq!(store.updates.total(), 12);
    assert_eq!(store.accounts["acc-1"]["name"], "accounts 1 v2");
    assert_eq!(store.deals["deal-3"]["deal_name"], "deals 3 v2");
    assert_eq!(store.calls["call-0"]["title"], "calls 0 v2");

    // update: existing records change; a missing one is rejected, never created.
    let crm = ["accounts", "contacts", "deals"];
    let input = Input::new()
        .records_of(&crm, 0..2, 3)
        .records_of(&crm, 90..91, 3)
        .global_state(1);
    let (result, lines) = run(&sandbox, "skip", &modes(&crm, "update"), &input).await;
    let summary = result.unwrap();
    assert_eq!((summary.written, summary.rejected), (6, 3));
    let store = sandbox.store();
    assert_eq!(store.contacts["con-1"]["first_name"], "contacts 1 v3");
    assert_eq!(store.contacts["con-2"]["first_name"], "contacts 2 v2");
    assert!(!store.accounts.contains_key("acc-90"));
    assert_eq!(store.creates.total(), 16, "update never creates");
    assert!(
        logs(&lines, "WARN")
            .iter()
            .any(|l| l.contains("no account with crm_id \"acc-90\""))
    );

    // soft_delete: present records go, an absent one counts as already gone.
    let input = Input::new()
        .records_of(&crm, 0..1, 4)
        .records_of(&crm, 90..91, 4)
        .global_state(1);
    let (result, _) = run(&sandbox, "fail", &modes(&crm, "soft_delete"), &input).await;
    assert_eq!(result.unwrap().written, 6);
    let store = sandbox.store();
    assert_eq!(store.deletes.total(), 3);
    assert!(!store.accounts.contains_key("acc-0") && !store.deals.contains_key("deal-0"));
    assert!(store.accounts.contains_key("acc-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_an_append_dedup_sync_creates_no_duplicates() {
    let sandbox = start().await;
    let objects = ["accounts", "contacts", "deals", "calls"];
    let input = Input::new().records_of(&objects, 0..10, 1).global_state(1);
    for _ in 0..2 {
        let (result, _) = run(&sandbox, "fail", &modes(&objects, "append_dedup"), &input).await;
        result.unwrap();
    }
    let store = sandbox.store();
    assert_eq!(store.creates.total(), 40);
    assert_eq!(store.updates.total(), 40);
    assert_eq!(store.duplicate_creates.total(), 0);
    assert_eq!(store.calls.len(), 10);
}

/// Records whose every field the look-up shows, written as a source may spell them: dates
/// with an offset, amounts with trailing zeros, empty lists and nulls.
fn held_records(version: u32) -> Input {
    let mut input = Input::new();
    for i in 0..10 {
        input = input
            .record(
                "accounts",
                json!({"crm_id": format!("acc-{i}"), "name": format!("Acme {i} v{version}"),
                    "city": "Lyon", "phones": []}),
            )
            .record(
                "contacts",
                json!({"crm_id": format!("con-{i}"), "first_name": "Ada", "last_name": null}),
            )
            .record(
                "deals",
                json!({"crm_id": format!("deal-{i}"), "deal_name": "Big", "amount": "1000.50",
                    "close_date": "2024-05-01T12:00:00+02:00"}),
            );
    }
    input.global_state(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_dedup_sends_only_the_look_up_for_records_the_api_already_holds() {
    let sandbox = start().await;
    let crm = ["accounts", "contacts", "deals"];
    let (result, _) = run(&sandbox, "fail", &modes(&crm, "append"), &held_records(1)).await;
    result.unwrap();
    let before = sandbox.request_count();

    let (result, lines) = run(
        &sandbox,
        "fail",
        &modes(&crm, "append_dedup"),
        &held_records(1),
    )
    .await;
    let summary = result.unwrap();
    assert_eq!((summary.written, summary.unchanged), (0, 30));
    assert_eq!(sandbox.request_count() - before, 30, "one look-up each");
    assert_eq!(sandbox.store().updates.total(), 0);
    let state = lines
        .iter()
        .find(|l| l.starts_with(r#"{"type":"STATE""#))
        .unwrap();
    assert!(
        state.contains(r#""destinationStats":{"recordCount":30.0}"#),
        "unchanged records are committed records: {state}"
    );
    let finished = logs(&lines, "INFO");
    assert!(
        finished
            .iter()
            .any(|l| l.starts_with("Destination finished") && l.contains("30 unchanged")),
        "{finished:?}"
    );

    // What the look-up cannot prove held is written: a changed value, a field it does not show.
    let input = Input::new()
        .record("accounts", json!({"crm_id": "acc-1", "name": "Acme 1 v2"}))
        .record(
            "contacts",
            json!({"crm_id": "con-1", "emails": ["ada@example.com"]}),
        )
        .record("deals", json!({"crm_id": "deal-1", "amount": "1000.51"}))
        .record("deals", json!({"crm_id": "deal-2", "amount": "1000.5000"}));
    let (result, _) = run(&sandbox, "fail", &modes(&crm, "append_dedup"), &input).await;
    let summary = result.unwrap();
    assert_eq!((summary.written, summary.unchanged), (3, 1));
    let store = sandbox.store();
    assert_eq!(
        store.contacts["con-1"]["emails"],
        json!(["ada@example.com"])
    );
    assert_eq!(store.deals["deal-1"]["amount"], "1000.51");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_429s_stop_the_write_once_the_configured_patience_is_spent() {
    // The config's patience governs the destination too (not the default ten minutes), and
    // a spent patience is not waited out again by running the upsert plan again.
    let sandbox = start().await;
    sandbox.faults().fail_every(1, 429);
    let mut value = config_value(&sandbox, "fail", 200);
    value["rate_limit_patience_minutes"] = json!(1);
    let config = DestinationConfig::from_value(&value).unwrap();
    let input = Input::new().records_of(&["accounts"], 0..1, 1);
    let catalog = modes(&["accounts"], "append_dedup");
    let write = run_with(&config, &catalog, &input);
    // Ten minutes of default patience, or a second run of the plan (another minute), would
    // each overrun this bound.
    let (result, _) = tokio::time::timeout(Duration::from_secs(110), write)
        .await
        .expect("the write stopped after one spell of its one-minute patience");
    assert!(
        matches!(result, Err(Error::RateLimited { .. })),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_is_never_echoed_before_its_records_are_acknowledged_on_a_slow_faulty_api() {
    let sandbox = start().await;
    sandbox
        .faults()
        .set_write_latency(Duration::from_millis(15));
    sandbox.faults().fail_every(7, 503);
    sandbox.faults().set_rate_limit(Some(150));
    // 20 keys, 3 versions each, interleaved; a state after every 5 records.
    let mut input = Input::new();
    let mut expected = Vec::new();
    for version in 1..=3 {
        for i in 0..20 {
            input = input.record("accounts", account(i, version));
            expected.push((format!("acc-{i}"), version));
            if expected.len() % 5 == 0 {
                input = input.stream_state("accounts", expected.len());
            }
        }
    }
    let checker = StateChecker::new(sandbox.handle(), expected);
    let output = Output::new(Box::new(checker.clone()));
    let config = config(&sandbox, "fail", 200);
    let summary = destination::write(
        &config,
        &modes(&["accounts"], "append_dedup"),
        input.reader(),
        Arc::clone(&output),
    )
    .await
    .unwrap();
    output.flush().unwrap();
    assert_eq!(summary.written, 60);
    assert_eq!(checker.states_seen(), 12, "every state echoed");
    checker.assert_no_violation();
    assert!(
        sandbox.faults().rate_limited_count() > 0 || summary.requests > 120,
        "the faults were exercised"
    );
    let store = sandbox.store();
    assert_eq!(store.duplicate_creates.total(), 0);
    for i in 0..20 {
        assert_eq!(
            store.accounts[&format!("acc-{i}")]["name"],
            format!("accounts {i} v3"),
            "the latest version wins"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_killed_midway_and_replayed_from_its_last_echoed_state_loses_nothing() {
    let sandbox = start().await;
    sandbox
        .faults()
        .set_write_latency(Duration::from_millis(10));
    let mut input = Input::new();
    for i in 0..120 {
        input = input.record("accounts", account(i, 1));
        if (i + 1) % 10 == 0 {
            input = input.stream_state("accounts", i + 1);
        }
    }
    let sink = MemorySink::default();
    let output = Output::new(Box::new(sink.clone()));
    let config = config(&sandbox, "fail", 200);
    let catalog = modes(&["accounts"], "append_dedup");
    let task = {
        let (config, catalog, reader, output) = (
            config.clone(),
            catalog.clone(),
            input.reader(),
            Arc::clone(&output),
        );
        tokio::spawn(async move { destination::write(&config, &catalog, reader, output).await })
    };
    let started = Instant::now();
    while echoed_states(&sink.contents()).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no state echoed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    let _ = task.await;
    let last = *echoed_states(&sink.contents()).last().unwrap();
    assert!(last < 120, "killed mid-way, after record {last}");

    let replay = input.after_record(last);
    let (result, _) = run(&sandbox, "fail", &catalog, &replay).await;
    result.unwrap();
    let store = sandbox.store();
    assert_eq!(store.accounts.len(), 120, "nothing lost");
    assert_eq!(store.duplicate_creates.total(), 0, "nothing duplicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_api_is_written_many_records_at_a_time_and_each_key_in_order() {
    let sandbox = start().await;
    sandbox
        .faults()
        .set_write_latency(Duration::from_millis(100));
    let mut input = Input::new().records_of(&["deals"], 0..32, 1);
    for version in 1..=8 {
        input = input.record("deals", deal(99, version));
    }
    let input = input.global_state(1);
    let (result, _) = run(&sandbox, "fail", &modes(&["deals"], "append_dedup"), &input).await;
    result.unwrap();
    // Counted from the sandbox's journal rather than timed: each write is answered after
    // 100 ms, so writes sent many at a time overlap there however slow the machine is.
    let writes: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    let peak_in_flight = writes
        .iter()
        .map(|w| {
            writes
                .iter()
                .filter(|o| o.time <= w.time && w.time < o.answered)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        peak_in_flight >= 4,
        "at most {peak_in_flight} writes at a time"
    );
    let store = sandbox.store();
    assert_eq!(
        store.deals["deal-99"]["deal_name"], "deals 99 v8",
        "the last version of a key wins"
    );
    assert_eq!(store.duplicate_creates.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_is_echoed_in_order_unchanged_but_for_destination_stats() {
    let sandbox = start().await;
    let state = r#"{"type":"STREAM","stream":{"stream_descriptor":{"name":"accounts"},"stream_state":{"cursor":1.50,"big":12345678901234567890}},"sourceStats":{"recordCount":2.0},"x_future":true}"#;
    let input = Input::new()
        .raw(&format!(r#"{{"type":"STATE","state":{state}}}"#))
        .record("accounts", account(1, 1))
        .record("accounts", account(2, 1))
        .raw(&format!(r#"{{"type":"STATE","state":{state}}}"#))
        .raw(&format!(r#"{{"type":"STATE","state":{state}}}"#))
        .raw(r#"{"type":"STATE","state":{"data":{"legacy":1}}}"#);
    let (result, lines) = run(&sandbox, "fail", &modes(&["accounts"], "append"), &input).await;
    assert_eq!(result.unwrap().states, 4);
    let states: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with(r#"{"type":"STATE""#))
        .map(String::as_str)
        .collect();
    assert_eq!(states.len(), 4);
    for (echo, count) in states[..3].iter().zip([0.0, 2.0, 0.0]) {
        assert!(
            echo.contains(r#""cursor":1.50,"big":12345678901234567890"#),
            "raw values kept: {echo}"
        );
        let mut echoed: Value = serde_json::from_str(echo).unwrap();
        let stats = echoed["state"]
            .as_object_mut()
            .unwrap()
            .remove("destinationStats")
            .unwrap();
        assert_eq!(stats, json!({"recordCount": count}));
        assert_eq!(
            echoed["state"],
            serde_json::from_str::<Value>(state).unwrap()
        );
    }
    assert!(
        states[1].contains(r#""destinationStats":{"recordCount":2.0}"#),
        "{}",
        states[1]
    );
    assert!(
        states[3].contains(r#""destinationStats":{"recordCount":2.0}"#),
        "a legacy state counts every record: {}",
        states[3]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_skip_rejected_records_are_logged_with_line_and_reason_and_counted() {
    let sandbox = start().await;
    let mut nobody = call(5, 1);
    nobody["source_user_ids"] = Value::Null;
    nobody["user_emails"] = json!(["nobody@example.com"]);
    let input = Input::new()
        .record("accounts", account(1, 1))
        .record("accounts", json!({"name": "no key"}))
        .record("deals", json!({"crm_id": "d-1", "amount": 12}))
        .record("calls", nobody)
        .record("calls", call(6, 1))
        .global_state(1);
    let (result, lines) = run(
        &sandbox,
        "skip",
        &modes(&["accounts", "deals", "calls"], "append"),
        &input,
    )
    .await;
    let summary = result.unwrap();
    assert_eq!((summary.written, summary.rejected), (2, 3));
    let warnings = logs(&lines, "WARN");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("line 2 of stream `accounts`") && w.contains("`/crm_id`")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("line 3 of stream `deals`") && w.contains("`/amount`")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("line 4 of stream `calls`") && w.contains("no recording user")),
        "{warnings:?}"
    );
    let state = lines
        .iter()
        .find(|l| l.starts_with(r#"{"type":"STATE""#))
        .unwrap();
    assert!(
        state.contains(r#""destinationStats":{"recordCount":2.0,"rejectedRecordCount":3.0}"#),
        "{state}"
    );
    assert_eq!(sandbox.store().calls.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_fail_the_first_rejected_record_stops_the_sync_naming_stream_line_and_field() {
    let sandbox = start().await;
    let input = Input::new()
        .record("accounts", account(1, 1))
        .stream_state("accounts", 1)
        .record("accounts", json!({"crm_id": "", "name": "empty key"}))
        .stream_state("accounts", 2)
        .record("accounts", account(3, 1));
    let (result, lines) = run(&sandbox, "fail", &modes(&["accounts"], "append"), &input).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, Error::RecordRejected { line: 3, .. }),
        "{error:?}"
    );
    assert_eq!(error.failure_type(), FailureType::ConfigError);
    let message = error.user_message();
    assert!(
        message.contains("line 3 of stream `accounts`") && message.contains("`/crm_id`"),
        "{message}"
    );
    assert!(
        message.contains("on_rejected_record"),
        "tells the user what to do: {message}"
    );
    assert_eq!(
        echoed_states(&lines.join("\n")),
        [1],
        "only the state before the rejected record"
    );
    assert!(
        !sandbox.store().accounts.contains_key("acc-3"),
        "nothing after the rejection is sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_and_truncated_lines_are_reported_and_the_rest_is_written() {
    let sandbox = start().await;
    let input = Input::new()
        .raw("this is not json")
        .record("accounts", account(1, 1))
        .raw(r#"{"no":"type"}"#)
        .raw(r#"{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":"accounts"},"status":"COMPLETE"}}}"#)
        .global_state(1)
        .raw_unterminated(r#"{"type":"LOG","log":{"level":"INFO","message":"cut"#);
    let (result, lines) = run(&sandbox, "fail", &modes(&["accounts"], "append"), &input).await;
    let summary = result.unwrap();
    assert_eq!(
        (summary.written, summary.skipped_lines, summary.states),
        (1, 3, 1)
    );
    let warnings = logs(&lines, "WARN");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("line 1") && w.contains("not JSON")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("line 3") && w.contains("not an Airbyte message")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("line 6") && w.contains("truncated")),
        "{warnings:?}"
    );
    assert_eq!(
        warnings.len(),
        3,
        "the TRACE message is ignored quietly: {warnings:?}"
    );
}

/// A record, a RECORD line cut mid-way, a record, a STATE, then more.
fn input_with_a_cut_record() -> Input {
    Input::new()
        .record("accounts", account(1, 1))
        .stream_state("accounts", 1)
        .record("accounts", account(2, 1))
        .raw(r#"{"type":"RECORD","record":{"stream":"accounts","data":{"crm_id":"acc-"#)
        .record("accounts", account(3, 1))
        .stream_state("accounts", 3)
        .record("accounts", account(4, 1))
        .stream_state("accounts", 4)
}

/// Writes [`input_with_a_cut_record`] to accounts in `append` under `policy`.
async fn write_a_cut_record(
    policy: &str,
) -> (clari_copilot::error::Result<WriteSummary>, Vec<String>) {
    let sandbox = start().await;
    let catalog = modes(&["accounts"], "append");
    run(&sandbox, policy, &catalog, &input_with_a_cut_record()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_fail_a_cut_record_line_stops_the_sync_before_any_later_state() {
    let (result, lines) = write_a_cut_record("fail").await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, Error::RecordRejected { line: 4, .. }),
        "{error:?}"
    );
    assert!(
        error.user_message().contains("line 4 of stream `accounts`"),
        "{}",
        error.user_message()
    );
    assert_eq!(echoed_states(&lines.join("\n")), [1], "no state past it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_skip_a_cut_record_line_is_counted_as_rejected_in_the_next_state() {
    let (result, lines) = write_a_cut_record("skip").await;
    let summary = result.unwrap();
    assert_eq!((summary.written, summary.rejected), (4, 1));
    let states: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(r#"{"type":"STATE""#))
        .collect();
    assert_eq!(states.len(), 3);
    assert!(
        states[1].contains(r#""destinationStats":{"recordCount":2.0,"rejectedRecordCount":1.0}"#),
        "{}",
        states[1]
    );
    assert!(
        logs(&lines, "WARN")
            .iter()
            .any(|w| w.contains("line 4") && w.contains("RECORD cannot be read")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_for_a_stream_not_in_the_catalog_is_an_error_not_a_silent_drop() {
    let sandbox = start().await;
    let input = Input::new().record("companies", account(1, 1));
    let (result, _) = run(&sandbox, "skip", &modes(&["accounts"], "append"), &input).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::UnconfiguredStream { stream, line: 1 } if stream == "companies"),
        "{error:?}"
    );
    assert_eq!(error.failure_type(), FailureType::SystemError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_object_name_routes_a_differently_named_stream() {
    let sandbox = start().await;
    let catalog = catalog(&[("hubspot_companies", "append_dedup", Some("accounts"))]);
    let input = Input::new()
        .record("hubspot_companies", account(7, 1))
        .global_state(1);
    let (result, _) = run(&sandbox, "fail", &catalog, &input).await;
    result.unwrap();
    assert_eq!(sandbox.store().accounts["acc-7"]["name"], "accounts 7 v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_and_impossible_modes_are_refused_before_any_request() {
    let sandbox = start().await;
    for (object, mode) in [
        ("accounts", "overwrite"),
        ("calls", "update"),
        ("calls", "soft_delete"),
    ] {
        let input = Input::new().record(object, account(1, 1));
        let (result, _) = run(&sandbox, "fail", &modes(&[object], mode), &input).await;
        let message = result.unwrap_err().user_message();
        assert!(
            message.contains(&format!("`{mode}` on `{object}`")),
            "{message}"
        );
    }
    assert_eq!(sandbox.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_without_writing_and_reports_bad_credentials() {
    let sandbox = start().await;
    destination::check(&config(&sandbox, "fail", 10))
        .await
        .unwrap();
    let requests = sandbox.requests();
    assert!(requests.iter().all(|r| r.method == "GET"), "{requests:?}");
    assert_eq!(
        sandbox.store().creates.total() + sandbox.store().updates.total(),
        0
    );
    let mut wrong = config_value(&sandbox, "fail", 10);
    wrong["api_secret"] = json!("wrong-password-value");
    let error = destination::check(&DestinationConfig::from_value(&wrong).unwrap())
        .await
        .unwrap_err();
    assert!(error.is_auth(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_output() {
    let sandbox = Sandbox::start(SandboxConfig {
        api_key: "key-7f3a9c1e5b".into(),
        api_password: "pw-d41d8cd98f".into(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let mut raw = config_value(&sandbox, "skip", 200);
    raw["api_key"] = json!("key-7f3a9c1e5b");
    raw["api_secret"] = json!("pw-d41d8cd98f");
    let good = DestinationConfig::from_value(&raw).unwrap();
    let input = Input::new()
        .record("accounts", account(1, 1))
        .record("accounts", json!({"name": "rejected"}))
        .raw("junk")
        .global_state(1);
    let catalog = modes(&["accounts"], "append");
    let (result, lines) = run_with(&good, &catalog, &input).await;
    result.unwrap();
    raw["api_secret"] = json!("pw-wrong-0000");
    let bad = DestinationConfig::from_value(&raw).unwrap();
    let (result, bad_lines) = run_with(&bad, &catalog, &input).await;
    let error = result.unwrap_err();
    let everything = [
        lines.join("\n"),
        bad_lines.join("\n"),
        error.to_string(),
        error.user_message(),
        format!("{error:?} {good:?}"),
    ]
    .join("\n");
    for secret in ["key-7f3a9c1e5b", "pw-d41d8cd98f", "pw-wrong-0000"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(lines.len() >= 3, "there was output to check: {lines:?}");
}

/// A sink that, at the moment each STATE line is written, checks that the sandbox already
/// holds every record before it (at that record's version or a later one).
#[derive(Clone)]
struct StateChecker {
    handle: SandboxHandle,
    expected: Arc<Vec<(String, u32)>>,
    pending: Arc<Mutex<Vec<u8>>>,
    seen: Arc<Mutex<usize>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl StateChecker {
    fn new(handle: SandboxHandle, expected: Vec<(String, u32)>) -> Self {
        Self {
            handle,
            expected: Arc::new(expected),
            pending: Arc::default(),
            seen: Arc::default(),
            violations: Arc::default(),
        }
    }

    fn states_seen(&self) -> usize {
        *self.seen.lock().unwrap()
    }

    fn assert_no_violation(&self) {
        let violations = self.violations.lock().unwrap();
        assert!(violations.is_empty(), "{violations:#?}");
    }

    fn check_line(&self, line: &str) {
        let Some(upto) = echoed_states(line).first().copied() else {
            return;
        };
        *self.seen.lock().unwrap() += 1;
        let store = self.handle.store();
        for (key, version) in &self.expected[..upto] {
            let stored = store
                .accounts
                .get(key)
                .and_then(|v| v["name"].as_str())
                .and_then(|n| n.rsplit('v').next()?.parse::<u32>().ok());
            if stored.is_none_or(|s| s < *version) {
                self.violations.lock().unwrap().push(format!("state after record {upto} echoed while {key} v{version} was not stored ({stored:?})"));
            }
        }
    }
}

impl std::io::Write for StateChecker {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.pending.lock().unwrap();
        pending.extend_from_slice(buf);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            self.check_line(&String::from_utf8_lossy(&line));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_append_sync_counts_existing_records_as_already_present() {
    let sandbox = start().await;
    let objects = ["accounts", "contacts", "deals", "calls"];
    let input = Input::new().records_of(&objects, 0..5, 1).global_state(1);
    let (result, _) = run(&sandbox, "fail", &modes(&objects, "append"), &input).await;
    assert_eq!(result.unwrap().written, 20);

    let (result, lines) = run(&sandbox, "fail", &modes(&objects, "append"), &input).await;
    let summary = result.unwrap();
    assert_eq!((summary.written, summary.already_present), (0, 20));
    let state = lines
        .iter()
        .find(|l| l.starts_with(r#"{"type":"STATE""#))
        .expect("the replay echoes its state");
    assert!(
        state.contains(r#""destinationStats":{"recordCount":20.0}"#),
        "{state}"
    );
    assert!(
        logs(&lines, "INFO")
            .iter()
            .any(|l| l.starts_with("Destination finished") && l.contains("20 already present")),
        "{lines:?}"
    );
    let store = sandbox.store();
    assert_eq!(store.creates.total(), 20, "nothing created twice");
    assert_eq!(
        store.duplicate_creates.total(),
        20,
        "each replayed create refused"
    );
    assert_eq!(
        sandbox
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .count(),
        20,
        "one look-up per refused create, none before"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_record_differing_from_the_existing_object_is_rejected_suggesting_append_dedup() {
    let sandbox = start().await;
    let catalog = modes(&["accounts", "calls"], "append");
    let first = Input::new().records_of(&["accounts", "calls"], 0..2, 1);
    run(&sandbox, "fail", &catalog, &first).await.0.unwrap();
    let changed = Input::new()
        .records_of(&["accounts", "calls"], 0..1, 2)
        .global_state(1);
    let (result, lines) = run(&sandbox, "skip", &catalog, &changed).await;
    let summary = result.unwrap();
    assert_eq!((summary.rejected, summary.already_present), (2, 0));
    let warnings = logs(&lines, "WARN");
    for expected in ["`/name`", "`/title`"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(expected) && w.contains("`append_dedup`")),
            "{warnings:?}"
        );
    }
    assert_eq!(sandbox.store().accounts["acc-0"]["name"], "accounts 0 v1");
    let (result, _) = run(&sandbox, "fail", &catalog, &changed).await;
    let message = result.unwrap_err().user_message();
    assert!(message.contains("append_dedup"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_5xx_or_lost_is_retried_and_written_once() {
    let sandbox = start().await;
    let objects = ["accounts", "calls"];
    sandbox.faults().fail_write_next(2, 504);
    let input = Input::new().records_of(&objects, 0..1, 1).global_state(1);
    let (result, _) = run(&sandbox, "fail", &modes(&objects, "append"), &input).await;
    assert_eq!(result.unwrap().written, 2);

    // Every success cut mid-body: each create lands, its answer is lost, and the retry is
    // refused as existing, which the look-up resolves.
    sandbox.faults().set_reset_connection_every(2);
    let input = Input::new().records_of(&objects, 1..4, 1).global_state(1);
    let (result, _) = run(&sandbox, "fail", &modes(&objects, "append"), &input).await;
    let summary = result.unwrap();
    assert_eq!(summary.written + summary.already_present, 6, "{summary:?}");
    let store = sandbox.store();
    assert_eq!((store.accounts.len(), store.calls.len()), (4, 4));
    assert_eq!(store.creates.total(), 8, "each record created once");
    let no_overwrite = store
        .calls
        .values()
        .all(|call| call.get("force_overwrite_old_call").is_none());
    assert!(no_overwrite, "append never asks to overwrite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_five_percent_faults_every_mode_completes_with_every_record_written_once() {
    let sandbox = start().await;
    // One request in 20 answered 503 before it is processed, and one success in 40 processed
    // but cut mid-answer (a create that landed, its answer lost).
    sandbox.faults().fail_every(20, 503);
    sandbox.faults().set_reset_connection_every(40);
    let crm = ["accounts", "contacts", "deals"];
    let all = ["accounts", "contacts", "deals", "calls"];
    let runs: [(&[&str], &str, std::ops::Range<usize>, u32); 4] = [
        (&all, "append", 0..30, 1),
        (&all, "append_dedup", 20..40, 2),
        (&crm, "update", 0..20, 3),
        (&crm, "soft_delete", 30..40, 4),
    ];
    for (objects, mode, range, version) in runs {
        let input = Input::new()
            .records_of(objects, range.clone(), version)
            .global_state(version);
        let (result, lines) = run(&sandbox, "fail", &modes(objects, mode), &input).await;
        let summary = result.unwrap_or_else(|e| panic!("{mode}: {e:?} {lines:?}"));
        let landed = summary.written + summary.unchanged + summary.already_present;
        assert_eq!(landed, (range.len() * objects.len()) as u64, "{mode}");
        assert_eq!(summary.states, 1, "{mode}");
    }
    let store = sandbox.store();
    assert_eq!(
        store.creates.total(),
        3 * 30 + 3 * 10 + 40,
        "every key created once"
    );
    assert_eq!(store.accounts.len(), 30, "40 keys, 10 deleted");
    assert_eq!(store.accounts["acc-5"]["name"], "accounts 5 v3");
    assert_eq!(store.accounts["acc-25"]["name"], "accounts 25 v2");
    assert_eq!(store.calls["call-35"]["title"], "calls 35 v2");
    assert!(sandbox.requests().iter().any(|r| r.status == 503));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_dedup_keeps_unsent_fields_even_when_updates_replace_the_object() {
    let sandbox = start().await;
    let catalog = modes(&["accounts"], "append_dedup");
    let full = Input::new().record("accounts", account(1, 1));
    run(&sandbox, "fail", &catalog, &full).await.0.unwrap();
    sandbox.faults().set_update_replaces(true);
    let before = sandbox.request_count();
    let partial = Input::new().record(
        "accounts",
        json!({"crm_id": "acc-1", "name": "renamed", "website": "https://acme.example"}),
    );
    let (result, _) = run(&sandbox, "fail", &catalog, &partial).await;
    assert_eq!(result.unwrap().written, 1);
    assert_eq!(
        sandbox.request_count() - before,
        2,
        "the look-up and the update"
    );
    let stored = &sandbox.store().accounts["acc-1"];
    assert_eq!(
        (&stored["name"], &stored["website"], &stored["city"]),
        (
            &json!("renamed"),
            &json!("https://acme.example"),
            &json!("Lyon")
        ),
        "the city the record did not carry survives a replacing update"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_report_records_per_stream_rate_requests_and_rejections_while_writing() {
    use clari_copilot::client::{Client, RetryPolicy};
    use clari_copilot::destination::{reader, routes::Routes, writer};
    let sandbox = start().await;
    // Each write takes 300 ms: a progress interval of 50 ms must tick while one is pending.
    sandbox
        .faults()
        .set_write_latency(Duration::from_millis(300));
    let config = config(&sandbox, "skip", 200);
    let input = Input::new()
        .record("accounts", account(1, 1))
        .record("deals", deal(1, 1))
        .record("accounts", json!({"name": "no key"}))
        .global_state(1);
    let sink = MemorySink::default();
    let output = Output::new(Box::new(sink.clone()));
    let client = Client::new(&config.api, RetryPolicy::for_sync(&config.api)).unwrap();
    let routes = Routes::from_catalog(&modes(&["accounts", "deals"], "append")).unwrap();
    let items = reader::spawn(input.reader(), 16).unwrap();
    writer::Writer::new(
        client,
        Arc::clone(&output),
        config.on_rejected_record,
        routes,
    )
    .with_progress_every(Duration::from_millis(50))
    .run(items)
    .await
    .unwrap();
    output.flush().unwrap();
    let lines: Vec<String> = sink.contents().lines().map(str::to_owned).collect();
    let progress: Vec<String> = logs(&lines, "INFO")
        .into_iter()
        .filter(|l| l.starts_with("Writing:"))
        .collect();
    let last = progress.last().expect("a progress line while writing");
    assert!(
        last.contains("of 3 records read") && last.contains("records/s"),
        "{last}"
    );
    assert!(
        last.contains("requests sent, 1 rejected so far"),
        "the rejection came long before the writes finished: {last}"
    );
    assert!(
        writer::PROGRESS_INTERVAL >= Duration::from_secs(10)
            && writer::PROGRESS_INTERVAL <= Duration::from_secs(15),
        "about every 12 s in production"
    );
}
