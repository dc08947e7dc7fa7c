//! The source's reads against the sandbox: completeness under the skip cap, incremental
//! semantics, data changing mid-read, fault storms and failure reporting.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use clari_copilot_sandbox::{Mutation, Sandbox, SandboxConfig};
use common::*;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

const ALL_FULL_REFRESH: [(&str, &str); 5] = [
    ("calls", "full_refresh"),
    ("users", "full_refresh"),
    ("topics", "full_refresh"),
    ("scorecard", "full_refresh"),
    ("scorecard-template", "full_refresh"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_is_read_completely_with_statuses_and_counted_states() {
    let sandbox = start(sandbox_config(500)).await;
    let run = read(
        config_json(&sandbox.base_url(), json!({"page_size": 25})),
        &catalog(&ALL_FULL_REFRESH),
        &json!([]),
    )
    .await;
    assert!(
        run.summary.as_ref().unwrap().failed_streams.is_empty(),
        "{:?}",
        run.errors()
    );

    assert_eq!(
        run.unique_ids("calls", "id"),
        visible_call_ids(&sandbox, false)
    );
    assert_eq!(run.unique_ids("users", "id").len(), 12);
    assert_eq!(run.unique_ids("topics", "topic_id").len(), 8);
    assert_eq!(run.unique_ids("scorecard", "id").len(), 125);
    assert_eq!(run.unique_ids("scorecard-template", "id").len(), 3);

    for (stream, _) in ALL_FULL_REFRESH {
        assert_eq!(
            run.statuses(stream),
            ["STARTED", "RUNNING", "COMPLETE"],
            "{stream}"
        );
        let states = run.states(stream);
        assert!(!states.is_empty(), "{stream} has no state");
        let counted: f64 = states
            .iter()
            .map(|s| s["state"]["sourceStats"]["recordCount"].as_f64().unwrap())
            .sum();
        assert_eq!(
            counted as usize,
            run.records(stream).len(),
            "{stream}: recordCount must add up to the records"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_calls_are_read_only_when_the_user_includes_them() {
    let sandbox = start(sandbox_config(300)).await;
    let streams = catalog(&[("calls", "full_refresh")]);
    let hidden = read(
        config_json(&sandbox.base_url(), json!({})),
        &streams,
        &json!([]),
    )
    .await;
    let shown = read(
        config_json(&sandbox.base_url(), json!({"include_private_calls": true})),
        &streams,
        &json!([]),
    )
    .await;
    let private: BTreeSet<String> = sandbox.private_call_ids().into_iter().collect();
    assert!(!private.is_empty());
    assert!(hidden.unique_ids("calls", "id").is_disjoint(&private));
    assert_eq!(
        shown.unique_ids("calls", "id"),
        visible_call_ids(&sandbox, true)
    );
}

async fn assert_backfill_complete(config: SandboxConfig) {
    let sandbox = start(config).await;
    let run = read_calls_from_scratch(&sandbox).await;
    let visible = visible_call_ids(&sandbox, false);
    assert_eq!(run.unique_ids("calls", "id"), visible);
    let estimates: Vec<&Value> = run
        .of_type("TRACE")
        .filter(|m| m["trace"]["type"] == "ESTIMATE")
        .map(|m| &m["trace"]["estimate"])
        .collect();
    assert_eq!(
        estimates,
        [&json!({"name": "calls", "type": "STREAM", "row_estimate": visible.len()})],
        "one estimate of the whole stream, though it is too large for one window"
    );
    let max_skip = sandbox
        .requests()
        .iter()
        .filter_map(|r| query_param(r, "skip")?.parse::<u64>().ok())
        .max()
        .unwrap();
    assert!(max_skip <= 10_000, "a request asked for skip={max_skip}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30000_call_backfill_is_complete_despite_the_skip_cap() {
    assert_backfill_complete(sandbox_config(30_000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30000_call_backfill_inside_one_month_is_complete() {
    let mut config = sandbox_config(30_000);
    config.history_start = "2024-03-01T00:00:00Z".parse().unwrap();
    config.history_end = "2024-04-01T00:00:00Z".parse().unwrap();
    assert_backfill_complete(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_holding_too_many_records_in_one_millisecond_is_a_loud_error() {
    let sandbox = start(sandbox_config(10)).await;
    sandbox.add_calls(10_050, "2024-06-01T00:00:00Z".parse().unwrap());
    let config = config_json(&sandbox.base_url(), json!({"include_private_calls": true}));
    let run = read(config, &catalog(&[("calls", "full_refresh")]), &json!([])).await;
    assert_eq!(run.summary.as_ref().unwrap().failed_streams, ["calls"]);
    assert_eq!(run.statuses("calls").last().unwrap(), "INCOMPLETE");
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("skip limit"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[0]["stream_descriptor"]["name"], "calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_read_without_lookback_returns_only_calls_changed_since_the_last_one() {
    let sandbox = start(sandbox_config(400)).await;
    let streams = catalog(&[("calls", "incremental")]);
    let config = config_json(&sandbox.base_url(), json!({"lookback_window_days": 0}));
    let first = read(config.clone(), &streams, &json!([])).await;
    assert_eq!(
        first.unique_ids("calls", "id"),
        visible_call_ids(&sandbox, false)
    );

    let visible: Vec<String> = visible_call_ids(&sandbox, false)
        .into_iter()
        .take(5)
        .collect();
    for id in &visible {
        sandbox.touch_call(id, "PROCESSED", Timestamp::now());
    }
    let added: BTreeSet<String> = sandbox.add_calls(3, Timestamp::now()).into_iter().collect();
    let second = read(config, &streams, &first.next_state()).await;
    let expected: BTreeSet<String> = visible.into_iter().chain(added).collect();
    let private: BTreeSet<String> = sandbox.private_call_ids().into_iter().collect();
    let expected: BTreeSet<String> = expected.difference(&private).cloned().collect();
    assert_eq!(second.unique_ids("calls", "id"), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_read_with_lookback_also_returns_the_calls_inside_the_lookback() {
    let sandbox = start(sandbox_config(400)).await;
    let streams = catalog(&[("calls", "incremental")]);
    let visible: Vec<String> = visible_call_ids(&sandbox, false).into_iter().collect();
    // Changed 12 hours before the first read: inside a one-day lookback of its checkpoint.
    let recent = Timestamp::now() - 12.hours();
    for id in &visible[..4] {
        sandbox.touch_call(id, "PROCESSED", recent);
    }
    let config = config_json(&sandbox.base_url(), json!({"lookback_window_days": 1}));
    let first = read(config.clone(), &streams, &json!([])).await;
    for id in &visible[10..12] {
        sandbox.touch_call(id, "PROCESSED", Timestamp::now());
    }
    let second = read(config, &streams, &first.next_state()).await;
    let expected: BTreeSet<String> = visible[..4]
        .iter()
        .chain(&visible[10..12])
        .cloned()
        .collect();
    assert_eq!(second.unique_ids("calls", "id"), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_far_in_the_future_emits_no_records_and_keeps_the_state() {
    let sandbox = start(sandbox_config(100)).await;
    let future = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "calls"},
        "stream_state": {"last_modified_time": "2999-01-01T00:00:00.000Z"}}}]);
    let run = read(
        config_json(&sandbox.base_url(), json!({"lookback_window_days": 3})),
        &catalog(&[("calls", "incremental")]),
        &future,
    )
    .await;
    assert!(run.records("calls").is_empty());
    let states = run.states("calls");
    assert_eq!(states.len(), 1);
    assert_eq!(
        states[0]["state"]["stream"]["stream_state"]["last_modified_time"],
        "2999-01-01T00:00:00.000Z"
    );
    assert_eq!(
        sandbox.request_count(),
        0,
        "an empty range needs no request"
    );
}

/// Reads `calls` in pages of `page_size` while `ids` leave the read range (status change, new
/// `last_modified_time` an hour ahead) after `after` `/calls` requests. Returns the run and
/// the ids it must all have read: every visible call that did not move.
async fn read_while_calls_leave(
    sandbox: &Sandbox,
    ids: Vec<String>,
    after: usize,
    page_size: u32,
) -> (Run, BTreeSet<String>) {
    let moved: BTreeSet<String> = ids.iter().cloned().collect();
    sandbox.faults().mutate_after_calls_requests(
        after,
        Mutation::TouchCalls {
            ids,
            status: "PROCESSED".into(),
            last_modified: Timestamp::now() + 1.hour(),
        },
    );
    let config = config_json(&sandbox.base_url(), json!({"page_size": page_size}));
    let run = read(config, &catalog(&[("calls", "incremental")]), &json!([])).await;
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let unchanged = visible_call_ids(sandbox, false)
        .difference(&moved)
        .cloned()
        .collect();
    (run, unchanged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_whose_status_changes_while_a_window_is_paged_are_not_lost() {
    let sandbox = start(sandbox_config(500)).await;
    // The earliest calls by `time` sit on the first pages of the single window; moving them
    // out after the second request shifts every later offset left.
    let early: Vec<String> = sandbox
        .calls_snapshot()
        .iter()
        .take(6)
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let (run, unchanged) = read_while_calls_leave(&sandbox, early, 2, 10).await;
    let got = run.ids("calls", "id");
    let missing: Vec<_> = unchanged.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "lost {} calls: {missing:?}",
        missing.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_changes_while_the_next_ones_pages_are_queued_is_read_in_parts_sending_no_request_twice()
 {
    // 12,000 calls are cut into 8 sibling windows whose first pages are known, so the next
    // window's pages are queued while the first is read; the earliest calls leave the first
    // window mid-read (request 20 comes after the two rounds of first pages) and no other.
    let sandbox = start(sandbox_config(12_000)).await;
    let mut calls = sandbox.calls_snapshot();
    calls.sort_by_key(|c| c["last_modified_time"].as_str().unwrap().to_owned());
    let early: Vec<String> = calls
        .iter()
        .take(6)
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let (run, unchanged) = read_while_calls_leave(&sandbox, early, 20, 100).await;
    let mut sent = BTreeMap::<String, usize>::new();
    let mut windows = BTreeSet::new();
    for request in sandbox.requests() {
        windows.insert((
            query_param(&request, "filterModifiedGt"),
            query_param(&request, "filterModifiedLt"),
        ));
        *sent.entry(request.query.unwrap_or_default()).or_default() += 1;
    }
    let repeated: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "requests sent twice: {repeated:?}");
    assert!(
        windows.len() > 1 + 8 + 10,
        "the changed window was read in one-request parts: {} windows",
        windows.len()
    );
    let got = run.ids("calls", "id");
    assert_eq!(unchanged.difference(&got).count(), 0, "calls were lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_of_429_and_5xx_and_oversized_pages_return_the_same_records() {
    let mut config = sandbox_config(600);
    // Pages of 100 calls exceed this, so the gateway answers 502 until pages shrink.
    config.max_response_bytes = 60_000;
    let sandbox = start(config).await;
    let streams = catalog(&ALL_FULL_REFRESH);
    sandbox.faults().fail_every(4, 429);
    sandbox.faults().fail_next(3, 503);
    let stormy = read(
        config_json(&sandbox.base_url(), json!({})),
        &streams,
        &json!([]),
    )
    .await;
    sandbox.faults().fail_every(5, 500);
    let stormier = read(
        config_json(&sandbox.base_url(), json!({})),
        &streams,
        &json!([]),
    )
    .await;
    sandbox.faults().fail_every(0, 0);
    let calm = read(
        config_json(&sandbox.base_url(), json!({})),
        &streams,
        &json!([]),
    )
    .await;

    assert!(calm.errors().is_empty() && stormy.errors().is_empty() && stormier.errors().is_empty());
    assert_eq!(
        calm.unique_ids("calls", "id"),
        visible_call_ids(&sandbox, false)
    );
    for (stream, _) in ALL_FULL_REFRESH {
        let key = if stream == "topics" { "topic_id" } else { "id" };
        assert_eq!(
            stormy.unique_ids(stream, key),
            calm.unique_ids(stream, key),
            "{stream}"
        );
        assert_eq!(
            stormier.unique_ids(stream, key),
            calm.unique_ids(stream, key),
            "{stream}"
        );
    }
    assert!(
        sandbox.requests().iter().any(|r| r.status == 502),
        "the size cap was exercised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_retries_run_out_ends_incomplete_and_the_others_still_run() {
    let sandbox = start(sandbox_config(50)).await;
    sandbox.faults().fail_next(9, 503);
    let run = read(
        config_json(&sandbox.base_url(), json!({})),
        &catalog(&[("users", "full_refresh"), ("topics", "full_refresh")]),
        &json!([]),
    )
    .await;
    assert_eq!(run.summary.as_ref().unwrap().failed_streams, ["users"]);
    assert_eq!(run.statuses("users"), ["STARTED", "RUNNING", "INCOMPLETE"]);
    assert_eq!(run.statuses("topics"), ["STARTED", "RUNNING", "COMPLETE"]);
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["stream_descriptor"]["name"], "users");
    assert_eq!(errors[0]["failure_type"], "transient_error");
    assert_eq!(run.ids("topics", "topic_id").len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_a_config_error_telling_the_user_what_to_check() {
    let sandbox = start(sandbox_config(10)).await;
    let mut config = config_json(&sandbox.base_url(), json!({}));
    config["api_secret"] = Value::from("not-the-password");
    let run = read(config, &catalog(&[("users", "full_refresh")]), &json!([])).await;
    let errors = run.errors();
    assert_eq!(errors[0]["failure_type"], "config_error");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("API key and the API password")
    );
    assert_eq!(sandbox.request_count(), 1, "401 is not retried");
}
