//! The quota arithmetic: a read spends close to the minimum number of requests, at Clari's
//! documented rate it never trips a server enforcing that rate, and it leaves none of that
//! rate unused waiting on its own pipeline. (How close to the rate it runs is measured by the
//! `source_read` benchmark, not asserted here.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clari_copilot_sandbox::RecordedRequest;
use common::*;
use jiff::Timestamp;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_at_default_settings_spends_the_page_minimum_plus_one_request_per_window() {
    let sandbox = start(sandbox_config(20_000)).await;
    let run = read_calls_from_scratch(&sandbox).await;
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
    assert_eq!(
        run.unique_ids("calls", "id"),
        visible_call_ids(&sandbox, false)
    );
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

/// The `/calls` requests of one window: bounds in epoch ms, when its first page arrived, and
/// its other pages.
struct WindowRequests<'a> {
    lo: Option<i64>,
    hi: Option<i64>,
    first_page: Timestamp,
    pages: Vec<&'a RecordedRequest>,
}

fn millis(request: &RecordedRequest, param: &str) -> Option<i64> {
    let text = query_param(request, param)?;
    Some(text.parse::<Timestamp>().ok()?.as_millisecond())
}

/// The windows of a read, in time order.
fn windows_of(requests: &[RecordedRequest]) -> Vec<WindowRequests<'_>> {
    let mut windows: BTreeMap<(Option<i64>, Option<i64>), WindowRequests<'_>> = BTreeMap::new();
    for request in requests.iter().filter(|r| r.path == "/calls") {
        // Windows are asked for as `Gt = lo - 1 ms`.
        let lo = millis(request, "filterModifiedGt").map(|gt| gt + 1);
        let hi = millis(request, "filterModifiedLt");
        let window = windows.entry((lo, hi)).or_insert(WindowRequests {
            lo,
            hi,
            first_page: request.time,
            pages: Vec::new(),
        });
        if query_param(request, "skip").as_deref() == Some("0") {
            window.first_page = window.first_page.min(request.time);
        } else {
            window.pages.push(request);
        }
    }
    windows.into_values().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_windows_pages_are_requested_while_a_windows_last_page_is_still_answered() {
    // Otherwise every window boundary leaves the rate limit unused for a round trip. The
    // latency dwarfs the time to parse a page, even in a debug build on a busy machine.
    let sandbox = start(sandbox_config(12_000)).await;
    sandbox.faults().set_latency(Duration::from_millis(250));
    let run = read_from_scratch(
        config_json(&sandbox.base_url(), json!({"page_size": 100})),
        &[("calls", "incremental")],
    )
    .await;
    assert_eq!(
        run.unique_ids("calls", "id"),
        visible_call_ids(&sandbox, false)
    );
    let requests = sandbox.requests();
    let windows = windows_of(&requests);
    let mut overlapping = 0;
    for pair in windows.windows(2) {
        let (current, next) = (&pair[0], &pair[1]);
        let adjacent = current.hi.is_some() && current.hi == next.lo;
        let (Some(current_first), Some(next_first)) = (
            current.pages.iter().map(|r| r.time).min(),
            next.pages.iter().map(|r| r.time).min(),
        ) else {
            continue;
        };
        // Pages can be queued ahead only for a window whose first page is already known.
        if !adjacent || next.first_page > current_first {
            continue;
        }
        let current_last_answer = current.pages.iter().map(|r| r.answered).max().unwrap();
        assert!(
            next_first < current_last_answer,
            "the window from {:?} waited for the last page of the window before it: its first \
             page arrived at {next_first}, the last page before it was answered at \
             {current_last_answer}",
            next.lo
        );
        overlapping += 1;
    }
    assert!(
        overlapping > 0,
        "no adjacent windows with known first pages were read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_429s_checkpoint_and_stop_with_a_rate_limited_status_instead_of_waiting_for_days()
 {
    let sandbox = start(sandbox_config(25_000)).await;
    // Let the first windows complete, then answer 429 to everything: the weekly quota is gone.
    let handle = sandbox.handle();
    sandbox.faults().mutate_after_calls_requests(
        150,
        clari_copilot_sandbox::Mutation::Custom(Box::new(move |_| {
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

/// The learned page size in the last state of `calls`.
fn learned_page_size(run: &Run) -> u64 {
    run.states("calls").last().unwrap()["state"]["stream"]["stream_state"]["page_size"]
        .as_u64()
        .expect("the state remembers the page size")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_pages_over_48_calls_fail_the_read_finds_48_and_spends_under_1_3x_its_minimum() {
    // The gateway's size cap lets through 48 calls of average size, not 49: the largest page
    // that fits is a property of the tenant, which the connector must find.
    // Enough calls that learning the size (two failed sizes, a few small pages) is part of
    // the figure, not all of it.
    let mut config = sandbox_config(12_000);
    let sizing = start(config.clone()).await;
    let calls = sizing.calls_snapshot();
    let average = calls.iter().map(|c| c.to_string().len()).sum::<usize>() / calls.len();
    sizing.shutdown().await;
    config.max_response_bytes = average * 48 + average / 2;
    let sandbox = start(config).await;
    let run = read_calls_from_scratch(&sandbox).await;
    let visible = visible_call_ids(&sandbox, false);
    assert_eq!(run.unique_ids("calls", "id"), visible);
    // Most pages are asked for near the largest size that fits; where the read ended may be
    // just after a step back (by a quarter at most), which the state remembers.
    let requests = sandbox.requests();
    let mut uses: BTreeMap<u64, usize> = BTreeMap::new();
    for request in requests.iter().filter(|r| r.status == 200) {
        let limit = query_param(request, "limit").and_then(|l| l.parse().ok());
        *uses.entry(limit.unwrap_or(0)).or_default() += 1;
    }
    let settled = uses.iter().max_by_key(|(_, n)| **n).map(|(size, _)| *size);
    assert!(
        settled.is_some_and(|size| (40..=48).contains(&size)),
        "sizes used: {uses:?}"
    );
    let learned = learned_page_size(&run);
    assert!((30..=48).contains(&learned), "remembered {learned}");
    // Every window read costs at least its own (partly filled) first page.
    let minimum = visible.len().div_ceil(48) + windows_of(&requests).len();
    let spent = requests.len();
    assert!(
        spent as f64 <= minimum as f64 * 1.3,
        "spent {spent} requests, minimum {minimum} at 48 per page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_sync_starts_at_the_page_size_the_last_one_learned() {
    let mut config = sandbox_config(3_000);
    config.max_response_bytes = 60_000;
    let sandbox = start(config).await;
    let streams = catalog(&[("calls", "incremental")]);
    let first = read(
        config_json(&sandbox.base_url(), json!({})),
        &streams,
        &json!([]),
    )
    .await;
    assert!(first.errors().is_empty(), "{:?}", first.errors());
    let learned = learned_page_size(&first);
    assert!(learned < 100, "the cap forced smaller pages: {learned}");
    let before = sandbox.request_count();
    let second = read(
        config_json(&sandbox.base_url(), json!({"lookback_window_days": 365})),
        &streams,
        &first.next_state(),
    )
    .await;
    assert!(second.errors().is_empty(), "{:?}", second.errors());
    let first_request = &sandbox.requests()[before];
    assert_eq!(
        query_param(first_request, "limit").unwrap(),
        learned.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_transient_502_is_retried_at_the_same_page_size() {
    let sandbox = start(sandbox_config(2_000)).await;
    sandbox.faults().fail_next(1, 502);
    let run = read_calls_from_scratch(&sandbox).await;
    let limits: BTreeSet<String> = sandbox
        .requests()
        .iter()
        .filter_map(|r| query_param(r, "limit"))
        .collect();
    assert_eq!(limits, BTreeSet::from(["100".to_owned()]));
    assert_eq!(learned_page_size(&run), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_without_start_date_costs_one_request_before_its_first_call() {
    // 30,000 calls in 2024, read from 1970: the whole range is too large for one window.
    let sandbox = start(sandbox_config(30_000)).await;
    let run = read_calls_from_scratch(&sandbox).await;
    let earliest = sandbox
        .calls_snapshot()
        .iter()
        .map(|c| {
            c["last_modified_time"]
                .as_str()
                .unwrap()
                .parse::<Timestamp>()
                .unwrap()
        })
        .min()
        .unwrap()
        .as_millisecond();
    let before_any_call = sandbox
        .requests()
        .iter()
        .filter(|r| millis(r, "filterModifiedLt").is_some_and(|lt| lt <= earliest))
        .count();
    assert!(
        before_any_call <= 1,
        "{before_any_call} requests for windows before the first call"
    );
    let first_record = run
        .messages
        .iter()
        .position(|m| m["type"] == "RECORD")
        .unwrap();
    let early_states = run.messages[..first_record]
        .iter()
        .filter(|m| m["type"] == "STATE")
        .count();
    assert!(
        early_states <= 1,
        "{early_states} empty states before the first call"
    );
}
