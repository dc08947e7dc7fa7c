//! The quota arithmetic: a read spends close to the minimum number of requests, at Clari's
//! documented rate it never trips a server enforcing that rate, and pages are sent in the
//! order they are needed. (How close to the rate it runs is measured by the
//! `source_read` benchmark, not asserted here.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_spends_the_page_minimum_plus_one_request_per_window() {
    let sandbox = start(sandbox_config(20_000)).await;
    let run = read(
        config_json(&sandbox.base_url(), json!({"page_size": 100})),
        &catalog(&[("calls", "incremental")]),
        &json!([]),
    )
    .await;
    assert!(run.errors().is_empty());
    let visible = visible_call_ids(&sandbox, false).len();
    let windows = run.states("calls").len();
    let minimum = visible.div_ceil(100) + windows;
    let spent = sandbox.request_count();
    assert!(windows > 1, "the skip cap split the range");
    assert!(
        spent as f64 <= minimum as f64 * 1.05,
        "spent {spent} requests, minimum {minimum}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_documented_rate_a_server_enforcing_it_never_answers_429() {
    let sandbox = start(sandbox_config(2_000)).await;
    sandbox.faults().set_rate_limit(Some(10));
    sandbox.faults().set_latency(Duration::from_millis(150));
    let config = config_json(
        &sandbox.base_url(),
        json!({"requests_per_second": 10, "page_size": 100}),
    );
    let streams = catalog(&[
        ("calls", "incremental"),
        ("users", "full_refresh"),
        ("scorecard", "full_refresh"),
    ]);
    let run = read(config, &streams, &json!([])).await;
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    assert_eq!(sandbox.faults().rate_limited_count(), 0);
    assert_eq!(run.ids("calls", "id"), visible_call_ids(&sandbox, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_waiting_on_the_rate_limiter_are_sent_in_the_order_they_were_asked_for() {
    // Pages are consumed in order, so a page sent late stalls the whole pipeline.
    let sandbox = start(sandbox_config(3_000)).await;
    sandbox.faults().set_latency(Duration::from_millis(150));
    let run = read(
        config_json(
            &sandbox.base_url(),
            json!({"requests_per_second": 10, "page_size": 100}),
        ),
        &catalog(&[("calls", "incremental")]),
        &json!([]),
    )
    .await;
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let mut requests = sandbox.requests();
    requests.sort_by_key(|r| r.time);
    let skips: Vec<u64> = requests
        .iter()
        .filter_map(|r| query_param(r, "skip")?.parse().ok())
        .collect();
    assert!(skips.len() > 20, "one window of many pages: {skips:?}");
    assert!(skips.is_sorted(), "pages arrived out of order: {skips:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_429s_checkpoint_and_stop_with_a_rate_limited_status_instead_of_waiting_for_days()
 {
    let sandbox = start(sandbox_config(25_000)).await;
    // Let the first windows complete, then answer 429 to everything: the weekly quota is gone.
    let handle = sandbox.handle();
    sandbox.faults().mutate_after_calls_requests(
        150,
        clari_copilot::sandbox::Mutation::Custom(Box::new(move |_| {
            handle.faults().fail_every(1, 429)
        })),
    );
    let run = read(
        config_json(&sandbox.base_url(), json!({})),
        &catalog(&[("calls", "incremental")]),
        &json!([]),
    )
    .await;
    let states = run.states("calls");
    assert!(
        !states.is_empty(),
        "completed windows were checkpointed before the stop"
    );
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["failure_type"], "transient_error");
    let last_status = run
        .of_type("TRACE")
        .filter(|m| m["trace"]["type"] == "STREAM_STATUS")
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last_status["trace"]["stream_status"]["status"],
        "INCOMPLETE"
    );
    assert_eq!(
        last_status["trace"]["stream_status"]["reasons"][0]["type"],
        "RATE_LIMITED"
    );
    assert!(
        last_status["trace"]["stream_status"]["reasons"][0]["rate_limited"]["quota_reset"]
            .as_i64()
            .unwrap()
            > 0
    );
}
