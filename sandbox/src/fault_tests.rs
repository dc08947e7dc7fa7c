//! Behaviour tests of the faults that model the real API's harsher habits: a skewed server
//! clock, data churning while it is read, unstable ties, pagination that disagrees with itself,
//! `null` for empty lists, details that never come and late indexing. Same harness as `tests.rs`.

use std::time::Duration;

use axum::http::header;
use jiff::fmt::rfc2822::DateTimeParser;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::tests::{get, get_response, ids, start, start_default, ts};
use super::{Churn, ChurnScope, SandboxConfig};

/// The raw `Date` headers of a response.
fn date_headers(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(header::DATE)
        .iter()
        .map(|v| v.to_str().expect("ASCII date").to_owned())
        .collect()
}

fn parse_date(date: &str) -> Timestamp {
    DateTimeParser::new()
        .parse_timestamp(date)
        .expect("an IMF-fixdate")
}

#[tokio::test]
async fn every_answer_carries_one_date_header_from_the_skewed_server_clock() {
    let sandbox = start_default().await;
    let skew = SignedDuration::from_hours(-3);
    sandbox.faults().set_clock_skew(skew);
    let unauthenticated = reqwest::Client::new()
        .get(format!("{}/calls", sandbox.base_url()))
        .send()
        .await
        .expect("request succeeds");
    let answers = [
        unauthenticated,
        get_response(&sandbox, "/users", &[]).await,
        get_response(&sandbox, "/calls", &[("limit", "101")]).await,
        get_response(&sandbox, "/nowhere", &[]).await,
    ];
    sandbox.faults().fail_next(1, 502);
    let injected = get_response(&sandbox, "/calls", &[]).await;
    let statuses: Vec<u16> = answers
        .iter()
        .chain([&injected])
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses, [401, 200, 400, 404, 502]);
    for response in answers.iter().chain([&injected]) {
        let dates = date_headers(response);
        assert_eq!(dates.len(), 1, "{dates:?}");
        assert!(
            dates[0].ends_with(" GMT") && dates[0].len() == 29,
            "{dates:?}"
        );
        // Second resolution: the header is at most a second behind the server clock.
        let behind = parse_date(&dates[0]).duration_until(sandbox.server_now());
        assert!(
            behind >= SignedDuration::ZERO && behind < SignedDuration::from_secs(5),
            "{behind:?}"
        );
    }
    let machine = Timestamp::now();
    assert!(
        (sandbox.server_now().duration_since(machine) - skew).abs() < SignedDuration::from_secs(1)
    );
}

#[tokio::test]
async fn matched_cap_understates_matched_while_has_more_and_next_page_skip_stay_true() {
    let sandbox = start_default().await;
    let (_, honest) = get(&sandbox, "/calls", &[("limit", "100")]).await;
    let real = honest["pagination"]["matched"].as_u64().expect("matched");
    assert!(real > 400, "{real}");
    sandbox.faults().set_matched_cap(Some(30));
    let (_, first) = get(&sandbox, "/calls", &[("limit", "100")]).await;
    assert_eq!(
        first["pagination"],
        json!({"matched": 30, "hasMore": true, "nextPageSkip": 100})
    );
    assert_eq!(first["calls"], honest["calls"]);
    let last_skip = (real / 100 * 100).to_string();
    let (_, last) = get(
        &sandbox,
        "/calls",
        &[("limit", "100"), ("skip", &last_skip)],
    )
    .await;
    assert_eq!(last["pagination"], json!({"matched": 30, "hasMore": false}));
    assert_eq!(ids(&last, "calls").len() as u64, real % 100);
    let (_, cards) = get(&sandbox, "/scorecard", &[]).await;
    assert_eq!(
        cards["pagination"],
        json!({"matched": 30, "hasMore": true, "nextPageSkip": 50})
    );
    sandbox.faults().set_matched_cap(Some(10_000));
    let (_, above) = get(&sandbox, "/calls", &[]).await;
    assert_eq!(above["pagination"]["matched"], json!(real));
    sandbox.faults().set_matched_cap(None);
    let (_, off) = get(&sandbox, "/scorecard", &[]).await;
    assert_eq!(off["pagination"]["matched"], json!(125));
}

#[tokio::test]
async fn null_empty_lists_answers_null_for_an_empty_page_and_arrays_otherwise() {
    let sandbox = start_default().await;
    let before_history = [("filterTimeLt", "2020-01-01T00:00:00Z")];
    let (_, empty) = get(&sandbox, "/calls", &before_history).await;
    assert_eq!(empty["calls"], json!([]));
    sandbox.faults().set_null_empty_lists(true);
    let (status, empty) = get(&sandbox, "/calls", &before_history).await;
    assert_eq!(status, 200);
    assert_eq!(
        empty,
        json!({"calls": null, "pagination": {"matched": 0, "hasMore": false}})
    );
    let (_, past_the_end) = get(&sandbox, "/scorecard", &[("skip", "200")]).await;
    assert_eq!(past_the_end["scorecards"], json!(null));
    assert_eq!(past_the_end["pagination"]["matched"], json!(125));
    let (_, full) = get(&sandbox, "/scorecard", &[]).await;
    assert_eq!(ids(&full, "scorecards").len(), 50);
    sandbox.faults().set_null_empty_lists(false);
    let (_, empty) = get(&sandbox, "/scorecard", &before_history).await;
    assert_eq!(empty["scorecards"], json!([]));
}

#[tokio::test]
async fn fail_details_for_always_fails_the_listed_ids_and_only_them() {
    let sandbox = start_default().await;
    let snapshot = sandbox.calls_snapshot();
    let id = |n: usize| snapshot[n]["id"].as_str().expect("id").to_owned();
    let details = |id: String| {
        let sandbox = &sandbox;
        async move { get(sandbox, "/call-details", &[("id", &id)]).await }
    };
    sandbox.faults().fail_details_for(vec![id(0), id(1)], 502);
    for _ in 0..3 {
        assert_eq!(
            details(id(0)).await,
            (502, json!({"message": "internal server error"}))
        );
    }
    assert_eq!(details(id(1)).await.0, 502);
    let (status, other) = details(id(2)).await;
    assert_eq!((status, &other["call"]["id"]), (200, &json!(id(2))));
    sandbox.faults().fail_details_for(vec![id(2)], 504);
    assert_eq!(details(id(0)).await.0, 200);
    assert_eq!(details(id(2)).await.0, 504);
    sandbox.faults().fail_details_for(Vec::new(), 502);
    assert_eq!(details(id(2)).await.0, 200);
}

#[tokio::test]
async fn index_delay_hides_a_modified_call_from_calls_until_the_server_clock_passes_it() {
    let sandbox = start_default().await;
    let everything = [("includePrivate", "true"), ("limit", "1")];
    let matched = |page: &Value| page["pagination"]["matched"].as_u64().expect("matched");
    let total = matched(&get(&sandbox, "/calls", &everything).await.1);
    let id = sandbox.calls_snapshot()[5]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    sandbox.faults().set_index_delay(Duration::from_secs(3_600));
    let touched = sandbox.server_now();
    sandbox.touch_call(&id, "PROCESSING", touched);
    let since = a_minute_before(touched);
    let recent = [
        ("filterModifiedGt", since.as_str()),
        ("includePrivate", "true"),
    ];
    let (status, hidden) = get(&sandbox, "/calls", &recent).await;
    assert_eq!(status, 200);
    assert_eq!(hidden["calls"], json!([]));
    assert_eq!(matched(&hidden), 0);
    assert_eq!(
        matched(&get(&sandbox, "/calls", &everything).await.1),
        total - 1
    );
    assert_eq!(get(&sandbox, "/call-details", &[("id", &id)]).await.0, 200);
    sandbox
        .faults()
        .set_clock_skew(SignedDuration::from_mins(61));
    let (_, shown) = get(&sandbox, "/calls", &recent).await;
    assert_eq!(ids(&shown, "calls"), std::slice::from_ref(&id));
    assert_eq!(
        matched(&get(&sandbox, "/calls", &everything).await.1),
        total
    );
    sandbox.faults().set_clock_skew(SignedDuration::ZERO);
    sandbox.faults().set_index_delay(Duration::ZERO);
    let (_, off) = get(&sandbox, "/calls", &recent).await;
    assert_eq!(ids(&off, "calls"), [id]);
}

/// 500 calls in one hour: about seven share each whole minute.
fn tied_tenant() -> SandboxConfig {
    SandboxConfig {
        history_start: ts("2024-06-01T00:00:00Z"),
        history_end: ts("2024-06-01T01:00:00Z"),
        ..SandboxConfig::default()
    }
}

/// One field of every record on a page, as text.
fn texts(page: &Value, key: &str, field: &str) -> Vec<String> {
    page[key]
        .as_array()
        .expect("records array")
        .iter()
        .map(|r| r[field].as_str().expect("text field").to_owned())
        .collect()
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

#[tokio::test]
async fn unstable_ties_reorder_calls_sharing_a_time_per_request_but_keep_the_time_order() {
    let sandbox = start(tied_tenant()).await;
    let window = [
        ("filterTimeGt", "2024-06-01T00:19:59Z"),
        ("filterTimeLt", "2024-06-01T00:25:00Z"),
        ("includePrivate", "true"),
        ("limit", "100"),
        ("sortTime", "asc"),
    ];
    let (_, stable) = get(&sandbox, "/calls", &window).await;
    assert_eq!(stable["pagination"]["hasMore"], json!(false));
    sandbox.faults().set_unstable_ties(true);
    let (_, first) = get(&sandbox, "/calls", &window).await;
    let (_, second) = get(&sandbox, "/calls", &window).await;
    let times = texts(&stable, "calls", "time");
    assert!(times.len() > 30 && times.windows(2).any(|w| w[0] == w[1]));
    assert_eq!(texts(&first, "calls", "time"), times);
    assert_eq!(texts(&second, "calls", "time"), times);
    assert_ne!(ids(&first, "calls"), ids(&second, "calls"));
    assert_eq!(sorted(ids(&first, "calls")), sorted(ids(&stable, "calls")));
    assert_eq!(sorted(ids(&second, "calls")), sorted(ids(&stable, "calls")));
    let (_, desc) = get(
        &sandbox,
        "/calls",
        &[
            ("sortTime", "desc"),
            ("includePrivate", "true"),
            ("limit", "100"),
        ],
    )
    .await;
    let desc_times = texts(&desc, "calls", "time");
    assert!(desc_times.windows(2).all(|w| w[0] >= w[1]));

    // Paged in tens, position by position the times are still the sorted times of the tenant,
    // yet ties cut by a page boundary make the pages skip and repeat calls.
    let (mut paged_times, mut paged_ids) = (Vec::new(), Vec::new());
    for skip in (0..500).step_by(10) {
        let skip = skip.to_string();
        let (_, page) = get(
            &sandbox,
            "/calls",
            &[
                ("sortTime", "asc"),
                ("includePrivate", "true"),
                ("limit", "10"),
                ("skip", &skip),
            ],
        )
        .await;
        paged_times.extend(texts(&page, "calls", "time"));
        paged_ids.extend(ids(&page, "calls"));
    }
    let tenant = json!({ "calls": sandbox.calls_snapshot() });
    assert_eq!(paged_times, texts(&tenant, "calls", "time"));
    assert_ne!(sorted(paged_ids), sorted(ids(&tenant, "calls")));

    sandbox.faults().set_unstable_ties(false);
    let (_, again) = get(&sandbox, "/calls", &window).await;
    assert_eq!(again, stable);
}

#[tokio::test]
async fn unstable_ties_shuffle_the_scorecards_per_request_over_the_same_matches() {
    let sandbox = start(SandboxConfig {
        scorecards: 80,
        ..SandboxConfig::default()
    })
    .await;
    let all = [("limit", "100")];
    let (_, stable) = get(&sandbox, "/scorecard", &all).await;
    assert_eq!(get(&sandbox, "/scorecard", &all).await.1, stable);
    sandbox.faults().set_unstable_ties(true);
    let (_, first) = get(&sandbox, "/scorecard", &all).await;
    let (_, second) = get(&sandbox, "/scorecard", &all).await;
    let orders = [&stable, &first, &second].map(|page| ids(page, "scorecards"));
    assert_ne!(orders[0], orders[1]);
    assert_ne!(orders[1], orders[2]);
    assert_eq!(orders[1].len(), 80);
    let [stable_set, first_set, second_set] = orders.map(sorted);
    assert_eq!(first_set, stable_set);
    assert_eq!(second_set, stable_set);
    assert_eq!(first["pagination"], stable["pagination"]);
}

/// The calls of `after` that differ from `before`, both [`super::SandboxHandle::calls_snapshot`]s
/// of a tenant whose call times did not change (so both list the calls in the same order).
fn changed(before: &[Value], after: &[Value]) -> Vec<(Value, Value)> {
    assert_eq!(before.len(), after.len());
    before
        .iter()
        .zip(after)
        .filter(|(old, new)| old != new)
        .map(|(old, new)| (old.clone(), new.clone()))
        .collect()
}

/// A skew that sets the server clock to `at`.
fn skew_to(at: &str) -> SignedDuration {
    Timestamp::now().duration_until(ts(at))
}

fn time_of(call: &Value, field: &str) -> Timestamp {
    ts(call[field].as_str().expect("timestamp field"))
}

#[tokio::test]
async fn churn_moves_one_recent_call_to_the_server_now_every_k_answered_listing_requests() {
    let sandbox = start_default().await;
    // A day after the tenant's history: its last week is in scope, and nothing was modified
    // in the server's last minute.
    sandbox
        .faults()
        .set_clock_skew(skew_to("2025-01-02T00:00:00Z"));
    let week = SignedDuration::from_hours(7 * 24);
    sandbox.faults().set_churn(Some(Churn {
        every: 3,
        scope: ChurnScope::Recent(week),
    }));
    let before = sandbox.calls_snapshot();

    // Two listings answered 200; other routes, 400s and injected failures do not count.
    get(&sandbox, "/calls", &[]).await;
    get(&sandbox, "/users", &[]).await;
    assert_eq!(get(&sandbox, "/calls", &[("limit", "101")]).await.0, 400);
    sandbox.faults().fail_next(1, 502);
    assert_eq!(get(&sandbox, "/scorecard", &[]).await.0, 502);
    get(&sandbox, "/scorecard", &[]).await;
    assert_eq!(sandbox.faults().churned_calls(), 0);
    assert_eq!(sandbox.calls_snapshot(), before);

    // The third answers the old data, the fourth sees the change.
    let since = a_minute_before(sandbox.server_now());
    let recent = [
        ("filterModifiedGt", since.as_str()),
        ("includePrivate", "true"),
    ];
    let (_, third) = get(&sandbox, "/calls", &recent).await;
    assert_eq!(third["pagination"]["matched"], json!(0));
    assert_eq!(sandbox.faults().churned_calls(), 1);
    let (_, fourth) = get(&sandbox, "/calls", &recent).await;
    let changes = changed(&before, &sandbox.calls_snapshot());
    assert_eq!(changes.len(), 1);
    let (old, new) = &changes[0];
    assert_eq!(ids(&fourth, "calls"), [new["id"].as_str().expect("id")]);
    assert_ne!(old["status"], new["status"]);
    let now = sandbox.server_now();
    let lag = time_of(new, "last_modified_time").duration_until(now);
    assert!(
        lag >= SignedDuration::ZERO && lag < SignedDuration::from_secs(5),
        "{lag:?}"
    );
    let scope = now.checked_sub(week).expect("in range")..=now;
    assert!(scope.contains(&time_of(new, "time")));

    for _ in 0..26 {
        get(&sandbox, "/scorecard", &[]).await;
    }
    assert_eq!(sandbox.faults().churned_calls(), 10);
    let changes = changed(&before, &sandbox.calls_snapshot());
    assert!((2..=10).contains(&changes.len()), "{}", changes.len());
    for (old, new) in &changes {
        assert!(scope.contains(&time_of(old, "time")));
        assert!(time_of(new, "last_modified_time") > time_of(old, "last_modified_time"));
    }

    sandbox.faults().set_churn(None);
    let settled = sandbox.calls_snapshot();
    for _ in 0..3 {
        get(&sandbox, "/calls", &[]).await;
    }
    assert_eq!(sandbox.calls_snapshot(), settled);
}

#[tokio::test]
async fn churn_changes_nothing_while_no_call_is_in_scope() {
    let sandbox = start_default().await;
    // The tenant's history ends in 2025; the server clock is today's.
    sandbox.faults().set_churn(Some(Churn {
        every: 1,
        scope: ChurnScope::Recent(SignedDuration::from_hours(24)),
    }));
    let before = sandbox.calls_snapshot();
    for _ in 0..5 {
        assert_eq!(get(&sandbox, "/calls", &[]).await.0, 200);
    }
    assert_eq!(sandbox.faults().churned_calls(), 0);
    assert_eq!(sandbox.calls_snapshot(), before);
}

#[tokio::test]
async fn churn_picks_the_same_calls_and_statuses_for_the_same_seed() {
    let churned = |seed: u64| async move {
        let sandbox = start(SandboxConfig {
            seed,
            ..SandboxConfig::default()
        })
        .await;
        sandbox.faults().set_churn(Some(Churn {
            every: 1,
            scope: ChurnScope::Anywhere,
        }));
        let before = sandbox.calls_snapshot();
        for _ in 0..5 {
            get(&sandbox, "/scorecard", &[]).await;
        }
        assert_eq!(sandbox.faults().churned_calls(), 5);
        changed(&before, &sandbox.calls_snapshot())
            .into_iter()
            .map(|(_, new)| (new["id"].clone(), new["status"].clone()))
            .collect::<Vec<_>>()
    };
    let first = churned(42).await;
    assert!(!first.is_empty());
    assert_eq!(churned(42).await, first);
    assert_ne!(churned(7).await, first);
}

/// The `filterModifiedGt` value that asks for what changed in the last minute before `t`.
fn a_minute_before(t: Timestamp) -> String {
    t.checked_sub(SignedDuration::from_mins(1))
        .expect("in range")
        .to_string()
}
