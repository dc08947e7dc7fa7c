//! Reads converge however the data moves while they run: calls changing status all day, an
//! order that shifts between requests, counts that disagree with `hasMore`, empty lists sent
//! as `null`, details that never come, and calls the API indexes late.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use clari_copilot_sandbox::{Churn, ChurnScope, Mutation, Sandbox, SandboxConfig};
use common::*;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::{Value, json};

/// A workspace whose calls all lie in the last three days, as a busy one's recent calls do.
fn busy_workspace(calls: usize) -> SandboxConfig {
    let now = Timestamp::now();
    SandboxConfig {
        history_start: now - 72.hours(),
        history_end: now,
        ..sandbox_config(calls)
    }
}

/// The config a new user starts with: every setting at its default.
fn default_settings(sandbox: &Sandbox) -> Value {
    let mut config = config_json(&sandbox.base_url(), json!({}));
    let settings = config.as_object_mut().unwrap();
    for key in ["page_size", "lookback_window_days"] {
        settings.remove(key);
    }
    config
}

/// The cursors `calls` checkpointed, in order.
fn checkpoints(run: &Run) -> Vec<Timestamp> {
    run.states("calls")
        .iter()
        .map(|state| {
            state["state"]["stream"]["stream_state"]["last_modified_time"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// Asserts every call visible now was read, and returns how many requests the read spent.
fn assert_complete(run: &Run, sandbox: &Sandbox) -> usize {
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    assert_eq!(run.statuses("calls").last().unwrap(), "COMPLETE");
    let got = run.ids("calls", "id");
    let visible = visible_call_ids(sandbox, false);
    let missing: Vec<_> = visible.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "lost {} of {} calls, e.g. {:?}",
        missing.len(),
        visible.len(),
        missing.iter().take(3).collect::<Vec<_>>()
    );
    sandbox.request_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_workspace_is_read_completely_in_one_sync_within_half_again_the_quiet_requests() {
    // One recent call changes status every 20 page requests, as in a workspace recording
    // about 10,000 calls a day read at 10 requests/s.
    let calls = 20_000;
    let full_refresh = catalog(&[("calls", "full_refresh")]);
    let quiet = start(busy_workspace(calls)).await;
    let quiet_requests = assert_complete(
        &read(default_settings(&quiet), &full_refresh, &json!([])).await,
        &quiet,
    );

    let busy = start(busy_workspace(calls)).await;
    busy.faults().set_churn(Some(Churn {
        every: 20,
        scope: ChurnScope::Recent(SignedDuration::from_hours(72)),
    }));
    let run = read(default_settings(&busy), &full_refresh, &json!([])).await;
    let busy_requests = assert_complete(&run, &busy);
    let churned = busy.faults().churned_calls();
    assert!(churned >= 8, "the data moved {churned} times");
    assert!(
        busy_requests as f64 <= quiet_requests as f64 * 1.5,
        "{busy_requests} requests under churn, {quiet_requests} without"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_changing_anywhere_in_six_years_under_faulty_requests_are_all_read() {
    // One call anywhere in history changes every 4 pages, and about one request in twenty
    // fails (503s, and connections cut mid-body).
    let now = Timestamp::now();
    let sandbox = start(SandboxConfig {
        history_start: now - (6 * 365 * 24).hours(),
        history_end: now,
        ..sandbox_config(12_000)
    })
    .await;
    sandbox.faults().set_churn(Some(Churn {
        every: 4,
        scope: ChurnScope::Anywhere,
    }));
    sandbox.faults().fail_every(25, 503);
    sandbox.faults().set_reset_connection_every(100);
    let run = read(
        default_settings(&sandbox),
        &catalog(&[("calls", "full_refresh")]),
        &json!([]),
    )
    .await;
    assert_complete(&run, &sandbox);
    assert!(sandbox.faults().churned_calls() >= 25);
    assert!(!run.states("calls").is_empty());
}

/// Reads `calls` and `scorecard` in pages of `page_size` and asserts both complete.
async fn assert_calls_and_scorecards_complete(sandbox: &Sandbox, page_size: u32) {
    let run = read(
        config_json(&sandbox.base_url(), json!({ "page_size": page_size })),
        &catalog(&[("calls", "incremental"), ("scorecard", "full_refresh")]),
        &json!([]),
    )
    .await;
    assert_complete(&run, sandbox);
    // The sandbox scores one call in four.
    let scorecards = sandbox.calls_snapshot().len() / 4;
    assert_eq!(run.unique_ids("scorecard", "id").len(), scorecards);
    assert_eq!(run.statuses("scorecard").last().unwrap(), "COMPLETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_shifts_between_requests_still_gives_every_call_and_scorecard() {
    // Calls sharing a `time` (most start on the minute) and scorecards (which have no sort at
    // all) come in a different order on every request: pages skip and repeat records.
    let sandbox = start(sandbox_config(3_000)).await;
    sandbox.faults().set_unstable_ties(true);
    assert_calls_and_scorecards_complete(&sandbox, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_matched_count_does_not_end_a_window_before_has_more_says_so() {
    let sandbox = start(sandbox_config(2_000)).await;
    sandbox.faults().set_matched_cap(Some(120));
    assert_calls_and_scorecards_complete(&sandbox, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_lists_sent_as_null_are_empty_pages() {
    let sandbox = start(sandbox_config(300)).await;
    sandbox.faults().set_null_empty_lists(true);
    let streams = catalog(&[("calls", "incremental"), ("scorecard", "full_refresh")]);
    let first = read(
        config_json(&sandbox.base_url(), json!({})),
        &streams,
        &json!([]),
    )
    .await;
    assert_complete(&first, &sandbox);
    // Nothing changed since: every window of the next sync is empty.
    let second = read(
        config_json(&sandbox.base_url(), json!({})),
        &streams,
        &first.next_state(),
    )
    .await;
    assert!(second.errors().is_empty(), "{:?}", second.errors());
    assert!(second.records("calls").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_details_never_come_is_emitted_from_the_listing_and_owed_to_later_syncs() {
    let sandbox = start(sandbox_config(300)).await;
    let finished: Vec<String> = sandbox
        .calls_snapshot()
        .iter()
        .filter(|c| c["status"] == "POST_PROCESSING_DONE")
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .filter(|id| !sandbox.private_call_ids().contains(id))
        .collect();
    let stuck = finished[3].clone();
    sandbox.faults().fail_details_for(vec![stuck.clone()], 502);
    let streams = catalog(&[("call-details", "incremental")]);
    let config = config_json(&sandbox.base_url(), json!({}));

    let first = read(config.clone(), &streams, &json!([])).await;
    assert!(first.errors().is_empty(), "{:?}", first.errors());
    assert_eq!(first.statuses("call-details").last().unwrap(), "COMPLETE");
    let records = first.records("call-details");
    let listed = records.iter().find(|r| r["id"] == stuck.as_str()).unwrap();
    assert!(
        listed.get("transcript").is_none(),
        "what the listing knows, without details"
    );
    assert_eq!(records.len(), finished.len());
    let state = first.next_state();
    let blob = &state[0]["stream"]["stream_state"];
    assert_eq!(blob["pending_details"], json!([stuck]));
    assert!(blob["last_modified_time"].is_string());

    // Still failing: still owed. Then it answers: fetched, and no longer owed.
    let second = read(config.clone(), &streams, &state).await;
    assert!(second.records("call-details").is_empty());
    assert_eq!(
        second.next_state()[0]["stream"]["stream_state"]["pending_details"],
        json!([stuck])
    );
    sandbox.faults().fail_details_for(Vec::new(), 502);
    let third = read(config, &streams, &second.next_state()).await;
    assert!(third.errors().is_empty(), "{:?}", third.errors());
    let details = third.records("call-details");
    assert_eq!(details.len(), 1);
    assert_eq!(details[0]["id"], stuck.as_str());
    assert!(details[0]["transcript"].is_array());
    assert!(
        third.next_state()[0]["stream"]["stream_state"]
            .get("pending_details")
            .is_none()
    );
}

/// An incremental sync right after a call changed, then the next sync, with `margin` seconds
/// of indexing margin; whether the second sync read the changed call.
async fn late_indexed_call_is_read(sandbox: &Sandbox, margin: u32) -> bool {
    let id = sandbox.calls_snapshot()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Modified a moment ago, indexed only 3 s after its modification (the callers' delay).
    sandbox.touch_call(
        &id,
        "POST_PROCESSING_DONE",
        sandbox.server_now() - SignedDuration::from_millis(1_500),
    );
    let config = config_json(
        &sandbox.base_url(),
        json!({"indexing_margin_seconds": margin, "include_private_calls": true}),
    );
    let streams = catalog(&[("calls", "incremental")]);
    let first = read(config.clone(), &streams, &json!([])).await;
    assert!(first.errors().is_empty(), "{:?}", first.errors());
    assert!(
        !first.ids("calls", "id").contains(&id),
        "not indexed yet during the first sync"
    );
    // Past the index delay, and far enough for the next sync's bound to pass the call.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = read(config, &streams, &first.next_state()).await;
    second.ids("calls", "id").contains(&id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_indexed_late_is_read_by_the_next_sync_thanks_to_the_margin() {
    let with_margin = start(sandbox_config(200)).await;
    with_margin.faults().set_index_delay(Duration::from_secs(3));
    assert!(late_indexed_call_is_read(&with_margin, 5).await);
    // Without a margin the first sync checkpoints past the call before it is visible.
    let without = start(sandbox_config(200)).await;
    without.faults().set_index_delay(Duration::from_secs(3));
    assert!(!late_indexed_call_is_read(&without, 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_checkpoint_passes_the_api_s_clock_when_it_runs_behind_this_machine() {
    let sandbox = start(sandbox_config(200)).await;
    sandbox
        .faults()
        .set_clock_skew(SignedDuration::from_mins(-10));
    let run = read_from_scratch(
        config_json(&sandbox.base_url(), json!({"indexing_margin_seconds": 60})),
        &[("calls", "incremental")],
    )
    .await;
    let server_now = sandbox.server_now();
    for cursor in checkpoints(&run) {
        assert!(
            cursor <= server_now - SignedDuration::from_secs(59),
            "checkpoint {cursor} is within the margin of the API's clock {server_now}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_start_date_earlier_reads_the_calls_it_uncovers() {
    let sandbox = start(sandbox_config(1_000)).await;
    let streams = catalog(&[("calls", "incremental")]);
    let (later, earlier) = ("2024-07-01T00:00:00Z", "2024-03-01T00:00:00Z");
    let first = read(
        config_json(&sandbox.base_url(), json!({"start_date": later})),
        &streams,
        &json!([]),
    )
    .await;
    assert!(first.errors().is_empty(), "{:?}", first.errors());
    let time = |c: &Value| c["time"].as_str().unwrap().parse::<Timestamp>().unwrap();
    let visible = visible_call_ids(&sandbox, false);
    let uncovered: BTreeSet<String> = sandbox
        .calls_snapshot()
        .iter()
        .filter(|c| {
            let t = time(c);
            t >= earlier.parse().unwrap() && t < later.parse().unwrap()
        })
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .filter(|id| visible.contains(id))
        .collect();
    assert!(!uncovered.is_empty());
    assert!(first.ids("calls", "id").is_disjoint(&uncovered));

    let second = read(
        config_json(&sandbox.base_url(), json!({"start_date": earlier})),
        &streams,
        &first.next_state(),
    )
    .await;
    assert!(second.errors().is_empty(), "{:?}", second.errors());
    assert_eq!(second.ids("calls", "id"), uncovered);
    let blob = &second.next_state()[0]["stream"]["stream_state"];
    assert_eq!(blob["config"]["start_date"], "2024-03-01T00:00:00.000Z");

    // A state written before the config was recorded reads nothing more.
    let mut old_state = first.next_state();
    old_state[0]["stream"]["stream_state"]
        .as_object_mut()
        .unwrap()
        .remove("config");
    let third = read(
        config_json(&sandbox.base_url(), json!({"start_date": earlier})),
        &streams,
        &old_state,
    )
    .await;
    assert!(third.records("calls").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_millisecond_that_changes_on_every_read_fails_honestly_without_a_checkpoint_past_it() {
    // 100 calls share one `last_modified_time`, more than a page of 10, so their millisecond
    // can be neither cut nor read in one request; one of them changes after every request.
    let sandbox = start(sandbox_config(50)).await;
    let stamp = Timestamp::now() - 1.hour();
    let crowd = sandbox.add_calls(100, stamp);
    for (n, id) in crowd.into_iter().enumerate() {
        sandbox.faults().mutate_after_calls_requests(
            n + 2,
            Mutation::TouchCalls {
                ids: vec![id],
                status: "PROCESSED".into(),
                last_modified: Timestamp::now() + 1.hour(),
            },
        );
    }
    let run = read(
        config_json(
            &sandbox.base_url(),
            json!({"page_size": 10, "include_private_calls": true}),
        ),
        &catalog(&[("calls", "incremental")]),
        &json!([]),
    )
    .await;
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("changed on each"), "{message}");
    assert!(!message.contains("JSON"), "{message}");
    assert_eq!(errors[0]["failure_type"], "transient_error");
    for cursor in checkpoints(&run) {
        assert!(
            cursor <= stamp,
            "checkpoint {cursor} passed the unread millisecond"
        );
    }
}
