//! Source behaviour that needs a precise HTTP script (wiremock): the exact window filters,
//! `Retry-After`, a missing pagination object, and records without their key.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn users(n: usize) -> Value {
    json!({"users": (0..n).map(|i| json!({"id": format!("u{i}"), "email": format!("u{i}@x.io")})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn window_filters_are_half_open_with_a_one_millisecond_overlap_and_a_stable_order() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/calls"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"calls": [], "pagination": {"matched": 0, "hasMore": false}}),
            ),
        )
        .mount(&server)
        .await;
    let state = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "calls"},
        "stream_state": {"last_modified_time": "2025-01-01T00:00:00.000Z"}}}]);
    let config = config_json(
        &server.uri(),
        json!({"start_date": "2024-01-01T00:00:00Z", "page_size": 25}),
    );
    let run = read(config, &catalog(&[("calls", "incremental")]), &state).await;
    assert!(run.errors().is_empty(), "{:?}", run.errors());

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let query: std::collections::HashMap<String, String> =
        requests[0].url.query_pairs().into_owned().collect();
    assert_eq!(
        query["filterModifiedGt"], "2024-12-31T23:59:59.999Z",
        "the cursor instant itself is included"
    );
    assert_eq!(
        query["filterTimeGt"], "2023-12-31T23:59:59.999Z",
        "start_date bounds the calls' own time"
    );
    assert!(
        query.contains_key("filterModifiedLt"),
        "the sync's upper bound is fixed at its start"
    );
    assert_eq!(query["sortTime"], "asc");
    assert_eq!(query["includePrivate"], "false");
    assert_eq!(query["includePagination"], "true");
    assert_eq!(
        (query["skip"].as_str(), query["limit"].as_str()),
        ("0", "25")
    );
    assert_eq!(requests[0].headers["x-api-key"], KEY);
    assert_eq!(requests[0].headers["x-api-password"], PASSWORD);
}

#[tokio::test]
async fn a_retry_after_header_is_honoured_when_the_api_sends_one() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(users(2)))
        .mount(&server)
        .await;
    let started = Instant::now();
    let run = read(
        config_json(&server.uri(), json!({})),
        &catalog(&[("users", "full_refresh")]),
        &json!([]),
    )
    .await;
    assert_eq!(run.records("users").len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the 2 ms test backoff was used instead of Retry-After"
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_patience_left_stops_the_stream_instead_of_sleeping() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "600"))
        .mount(&server)
        .await;
    let streams = catalog(&[("users", "full_refresh")]);
    let state = json!([]);
    let read = read(config_json(&server.uri(), json!({})), &streams, &state);
    // The test patience is 2 s; sleeping the asked 600 s would overrun this bound.
    let run = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the stream stopped instead of sleeping");
    assert_eq!(
        run.statuses("users").last().map(String::as_str),
        Some("INCOMPLETE")
    );
    assert_eq!(run.errors()[0]["failure_type"], "transient_error");
}

#[tokio::test]
async fn without_a_pagination_object_paging_stops_at_the_first_short_page() {
    let server = MockServer::start().await;
    let scorecards = |n: usize, from: usize| json!({"scorecards": (from..from + n).map(|i| json!({"id": format!("s{i}"), "total_score": 1})).collect::<Vec<_>>()});
    Mock::given(method("GET"))
        .and(path("/scorecard"))
        .and(query_param("skip", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(scorecards(10, 0)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scorecard"))
        .and(query_param("skip", "10"))
        .respond_with(ResponseTemplate::new(200).set_body_json(scorecards(3, 10)))
        .mount(&server)
        .await;
    let run = read_from_scratch(
        config_json(&server.uri(), json!({"page_size": 10})),
        &[("scorecard", "full_refresh")],
    )
    .await;
    // Each window (the closed range, then the open tail) pages until a short page.
    assert_eq!(run.ids("scorecard", "id").len(), 13);
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r: &Request| {
        r.url
            .query_pairs()
            .any(|(k, v)| k == "skip" && (v == "0" || v == "10"))
    }));
    assert_eq!(
        requests.len(),
        4,
        "two requests per window, none past the short page"
    );
}

#[tokio::test]
async fn a_record_without_its_primary_key_is_an_error_naming_the_key_and_the_endpoint() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/topics"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"topics": [{"topic_name": "pricing"}]})),
        )
        .mount(&server)
        .await;
    let run = read(
        config_json(&server.uri(), json!({})),
        &catalog(&[("topics", "full_refresh")]),
        &json!([]),
    )
    .await;
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    let internal = errors[0]["internal_message"].as_str().unwrap();
    assert!(
        internal.contains("/v2/topics") && internal.contains("topic_id"),
        "{internal}"
    );
    assert_eq!(run.statuses("topics").last().unwrap(), "INCOMPLETE");
}

#[tokio::test]
async fn a_400_is_quoted_to_the_user_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"errorMessage": "limit must be an integer"})),
        )
        .mount(&server)
        .await;
    let run = read(
        config_json(&server.uri(), json!({})),
        &catalog(&[("users", "full_refresh")]),
        &json!([]),
    )
    .await;
    let message = run.errors()[0]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("limit must be an integer") && message.contains("HTTP 400"),
        "{message}"
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "a 400 is not retried"
    );
}
