//! The quota arithmetic: a read spends close to the minimum number of requests, and at
//! Clari's documented rate it never trips a server enforcing that rate.

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
