//! The `call-details` stream: details fetched once per new or changed finished call, later for
//! calls still being processed, under a per-sync request cap that never skips a call.

mod common;

use std::collections::BTreeSet;

use clari_copilot_sandbox::Sandbox;
use common::*;
use jiff::Timestamp;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FINISHED: &str = "POST_PROCESSING_DONE";

fn detail_requests(sandbox: &Sandbox) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/call-details")
        .count()
}

/// Visible calls by status: (finished ids, unfinished ids).
fn calls_by_status(sandbox: &Sandbox) -> (BTreeSet<String>, BTreeSet<String>) {
    let visible = visible_call_ids(sandbox, false);
    let mut finished = BTreeSet::new();
    let mut unfinished = BTreeSet::new();
    for call in sandbox.calls_snapshot() {
        let id = call["id"].as_str().unwrap().to_owned();
        if visible.contains(&id) {
            if call["status"] == FINISHED {
                finished.insert(id)
            } else {
                unfinished.insert(id)
            };
        }
    }
    (finished, unfinished)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_are_fetched_once_per_new_or_changed_finished_call_across_two_syncs() {
    let sandbox = start(sandbox_config(400)).await;
    let (finished, unfinished) = calls_by_status(&sandbox);
    assert!(
        !unfinished.is_empty(),
        "the tenant has calls still being processed"
    );
    // `calls` is read with a lookback in the same syncs: it must not cause re-fetches.
    let streams = catalog(&[("calls", "incremental"), ("call-details", "incremental")]);
    let config = config_json(&sandbox.base_url(), json!({"lookback_window_days": 7}));

    let first = read(config.clone(), &streams, &json!([])).await;
    assert!(first.errors().is_empty(), "{:?}", first.errors());
    assert_eq!(first.ids("call-details", "id"), finished);
    assert_eq!(
        detail_requests(&sandbox),
        finished.len(),
        "one request per finished call"
    );
    assert!(
        first
            .records("call-details")
            .iter()
            .all(|r| r["transcript"].is_array() && r["summary"].is_object())
    );

    // Two finished calls change again; two calls still being processed finish.
    let changed: Vec<String> = finished.iter().take(2).cloned().collect();
    let now_finished: Vec<String> = unfinished.iter().take(2).cloned().collect();
    for id in changed.iter().chain(&now_finished) {
        sandbox.touch_call(id, FINISHED, Timestamp::now());
    }
    let before = detail_requests(&sandbox);
    let second = read(config, &streams, &first.next_state()).await;
    assert!(second.errors().is_empty(), "{:?}", second.errors());
    let expected: BTreeSet<String> = changed.into_iter().chain(now_finished).collect();
    assert_eq!(second.ids("call-details", "id"), expected);
    assert_eq!(
        detail_requests(&sandbox) - before,
        4,
        "only the changed and newly finished calls are fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_typed_in_another_case_still_fetches_every_finished_call() {
    let sandbox = start(sandbox_config(50)).await;
    let (finished, _) = calls_by_status(&sandbox);
    let config = config_json(
        &sandbox.base_url(),
        json!({"call_details_statuses": [" post_processing_done "]}),
    );
    let run = read_from_scratch(config, &[("call-details", "incremental")]).await;
    assert!(!finished.is_empty());
    assert_eq!(run.ids("call-details", "id"), finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cap_stops_each_sync_cleanly_and_the_syncs_together_lose_nothing() {
    let sandbox = start(sandbox_config(600)).await;
    let (finished, _) = calls_by_status(&sandbox);
    let cap = 60;
    let streams = catalog(&[("call-details", "incremental")]);
    let config = config_json(
        &sandbox.base_url(),
        json!({"call_details_max_requests": cap}),
    );
    let mut state = json!([]);
    let mut got = BTreeSet::new();
    let mut syncs = 0;
    while got.len() < finished.len() && syncs < 40 {
        let before = detail_requests(&sandbox);
        let run = read(config.clone(), &streams, &state).await;
        assert!(run.errors().is_empty(), "{:?}", run.errors());
        assert_eq!(run.statuses("call-details").last().unwrap(), "COMPLETE");
        assert!(
            detail_requests(&sandbox) - before <= cap,
            "sync {syncs} passed the cap"
        );
        assert!(!run.states("call-details").is_empty());
        got.extend(run.ids("call-details", "id"));
        state = run.next_state();
        syncs += 1;
    }
    assert!(syncs > 1, "the cap split the work over several syncs");
    assert_eq!(got, finished, "every finished call's details arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_sync_estimates_what_it_will_fetch_not_every_call() {
    let sandbox = start(sandbox_config(300)).await;
    let cap = 25;
    let run = read(
        config_json(
            &sandbox.base_url(),
            json!({"call_details_max_requests": cap}),
        ),
        &catalog(&[("call-details", "incremental")]),
        &json!([]),
    )
    .await;
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let estimates: Vec<&Value> = run
        .of_type("TRACE")
        .filter(|m| m["trace"]["type"] == "ESTIMATE")
        .map(|m| &m["trace"]["estimate"]["row_estimate"])
        .collect();
    assert_eq!(estimates, [&json!(cap)]);
    assert!(
        visible_call_ids(&sandbox, false).len() > cap,
        "the cap binds"
    );
}

#[tokio::test]
async fn a_call_deleted_before_its_details_are_fetched_is_skipped_not_failed() {
    let server = MockServer::start().await;
    let call = |id: &str| json!({"id": id, "status": FINISHED, "last_modified_time": "2025-01-01T00:00:00.000Z"});
    Mock::given(method("GET"))
        .and(path("/calls"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"calls": [call("kept"), call("gone")],
            "pagination": {"matched": 2, "hasMore": false}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/call-details"))
        .and(query_param("id", "kept"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"call": {"id": "kept", "transcript": []}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/call-details"))
        .and(query_param("id", "gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({})))
        .mount(&server)
        .await;
    let config = config_json(&server.uri(), json!({"call_details_include_audio": true}));
    let run = read_from_scratch(config, &[("call-details", "incremental")]).await;
    assert_eq!(
        run.ids("call-details", "id"),
        BTreeSet::from(["kept".to_owned()])
    );
    let details: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/call-details")
        .map(|r| json!(r.url.query()))
        .collect();
    assert_eq!(
        details.len(),
        2,
        "each call's details are asked for once: {details:?}"
    );
    assert!(
        details
            .iter()
            .all(|q| q.as_str().unwrap().contains("includeAudio=true"))
    );
}
