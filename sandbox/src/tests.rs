//! Behaviour tests: a real server on an ephemeral port, driven through reqwest.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Mutation, Sandbox, SandboxConfig};

pub(super) const KEY: &str = "sandbox-key";
pub(super) const PASSWORD: &str = "sandbox-password";

pub(super) async fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

pub(super) async fn start_default() -> Sandbox {
    start(SandboxConfig::default()).await
}

/// An authenticated GET, its response unread (for its headers).
pub(super) async fn get_response(
    sandbox: &Sandbox,
    path: &str,
    query: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", sandbox.base_url()))
        .query(query)
        .header("X-Api-Key", KEY)
        .header("X-Api-Password", PASSWORD)
        .send()
        .await
        .expect("request succeeds")
}

/// An authenticated GET; answers the status and the body parsed as JSON (Null if not JSON).
pub(super) async fn get(sandbox: &Sandbox, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    decode(get_response(sandbox, path, query).await).await
}

/// An authenticated request with a JSON body.
async fn send(sandbox: &Sandbox, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", sandbox.base_url()))
        .header("x-api-key", KEY)
        .header("x-api-password", PASSWORD)
        .json(&body)
        .send()
        .await
        .expect("request succeeds");
    decode(response).await
}

pub(super) async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub(super) fn ids(page: &Value, key: &str) -> Vec<String> {
    page[key]
        .as_array()
        .expect("records array")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

pub(super) fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[tokio::test]
async fn missing_credentials_get_documented_401_on_every_path() {
    let sandbox = start_default().await;
    let client = reqwest::Client::new();
    for path in ["/calls", "/users", "/graphql", "/.well-known/x"] {
        let response = client
            .get(format!("{}{path}", sandbox.base_url()))
            .header("X-Api-Key", KEY)
            .send()
            .await
            .unwrap();
        let (status, body) = decode(response).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(
            body,
            json!({"errorMessage": "Credentials not provided!, see documentation: https://api-doc.copilot.clari.com"})
        );
    }
    assert_eq!(sandbox.request_count(), 4);
    assert!(sandbox.requests().iter().all(|r| r.status == 401));
}

#[tokio::test]
async fn wrong_credentials_get_401_invalid_key() {
    let sandbox = start_default().await;
    let response = reqwest::Client::new()
        .get(format!("{}/users", sandbox.base_url()))
        .header("x-api-key", KEY)
        .header("x-api-password", "nope")
        .send()
        .await
        .unwrap();
    let (status, body) = decode(response).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"errorMessage": "Invalid API key or password"}));
}

#[tokio::test]
async fn unknown_path_after_auth_is_404_not_found() {
    let sandbox = start_default().await;
    assert_eq!(
        get(&sandbox, "/accounts", &[]).await,
        (404, json!({"errorMessage": "Not found"}))
    );
}

#[tokio::test]
async fn pagination_envelope_pages_through_every_visible_call_and_omits_next_skip_at_the_end() {
    let sandbox = start_default().await;
    let (_, all) = get(
        &sandbox,
        "/calls",
        &[("includePrivate", "true"), ("limit", "1")],
    )
    .await;
    let total = all["pagination"]["matched"].as_u64().unwrap() as usize;
    assert_eq!(total, 500);
    let mut seen = Vec::new();
    let mut skip = 0;
    loop {
        let skip_text = skip.to_string();
        let (status, page) = get(
            &sandbox,
            "/calls",
            &[("skip", &skip_text), ("limit", "100")],
        )
        .await;
        assert_eq!(status, 200);
        let pagination = &page["pagination"];
        seen.extend(ids(&page, "calls"));
        match pagination.get("nextPageSkip") {
            Some(next) => {
                assert_eq!(pagination["hasMore"], json!(true));
                assert_eq!(next.as_u64().unwrap() as usize, skip + 100);
                skip += 100;
            }
            None => {
                assert_eq!(pagination["hasMore"], json!(false));
                assert_eq!(pagination.as_object().unwrap().len(), 2, "{pagination}");
                break;
            }
        }
    }
    let matched = {
        let (_, first) = get(&sandbox, "/calls", &[]).await;
        assert_eq!(
            first["calls"].as_array().unwrap().len(),
            25,
            "default limit"
        );
        first["pagination"]["matched"].as_u64().unwrap() as usize
    };
    assert_eq!(seen.len(), matched);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), matched);
    assert!(
        matched < total && matched > total * 8 / 10,
        "about 10% private"
    );
}

#[tokio::test]
async fn skip_over_10000_limit_over_100_and_non_integers_are_400() {
    let sandbox = start_default().await;
    for query in [
        [("skip", "10001"), ("limit", "10")],
        [("skip", "0"), ("limit", "101")],
        [("skip", "0"), ("limit", "0")],
        [("skip", "-1"), ("limit", "10")],
        [("skip", "abc"), ("limit", "10")],
    ] {
        for path in ["/calls", "/scorecard"] {
            let (status, body) = get(&sandbox, path, &query).await;
            assert_eq!(status, 400, "{path} {query:?}");
            assert!(body["errorMessage"].is_string());
        }
    }
    let (status, page) = get(&sandbox, "/calls", &[("skip", "10000"), ("limit", "100")]).await;
    assert_eq!(status, 200);
    assert_eq!(page["calls"], json!([]));
    assert_eq!(page["pagination"]["hasMore"], json!(false));
}

#[tokio::test]
async fn time_and_modified_filters_are_strict_and_accept_offset_formats() {
    let sandbox = start_default().await;
    let snapshot = sandbox.calls_snapshot();
    let call = &snapshot[snapshot.len() / 2];
    let id = call["id"].as_str().unwrap();
    let modified = ts(call["last_modified_time"].as_str().unwrap());
    let count = |query: Vec<(&'static str, String)>| {
        let sandbox = &sandbox;
        async move {
            let mut query: Vec<(&str, &str)> =
                query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            query.extend([("includePrivate", "true"), ("limit", "100")]);
            let (status, page) = get(sandbox, "/calls", &query).await;
            assert_eq!(status, 200, "{page}");
            page
        }
    };
    let ms = |t: Timestamp, delta: i64| {
        let shifted = Timestamp::from_millisecond(t.as_millisecond() + delta).unwrap();
        format!("{shifted:.3}")
    };
    // Gt excludes an equal value, includes one just below.
    let at = count(vec![
        ("filterModifiedGt", ms(modified, -1)),
        ("filterModifiedLt", ms(modified, 1)),
    ])
    .await;
    let exact: Vec<&Value> = snapshot
        .iter()
        .filter(|c| c["last_modified_time"] == call["last_modified_time"])
        .collect();
    assert_eq!(ids(&at, "calls").len(), exact.len());
    assert!(ids(&at, "calls").contains(&id.to_owned()));
    let strict = count(vec![
        ("filterModifiedGt", ms(modified, 0)),
        ("filterModifiedLt", ms(modified, 1)),
    ])
    .await;
    assert_eq!(strict["pagination"]["matched"], json!(0));
    let strict = count(vec![
        ("filterModifiedGt", ms(modified, -1)),
        ("filterModifiedLt", ms(modified, 0)),
    ])
    .await;
    assert_eq!(strict["pagination"]["matched"], json!(0));

    // Same window on `time`, written with a `+0000` offset and fractional seconds.
    let time = ts(call["time"].as_str().unwrap());
    let offset = |t: Timestamp, delta: i64| {
        let shifted = Timestamp::from_millisecond(t.as_millisecond() + delta).unwrap();
        shifted.strftime("%Y-%m-%dT%H:%M:%S.%3f+0000").to_string()
    };
    let by_time = count(vec![
        ("filterTimeGt", offset(time, -1)),
        ("filterTimeLt", offset(time, 1)),
    ])
    .await;
    let same_time = snapshot
        .iter()
        .filter(|c| c["time"] == call["time"])
        .count();
    assert_eq!(ids(&by_time, "calls").len(), same_time);

    // Every returned record lies in the half-year window.
    let window = count(vec![
        ("filterModifiedGt", "2024-03-01T00:00:00Z".to_owned()),
        ("filterModifiedLt", "2024-09-01T00:00:00+02:00".to_owned()),
    ])
    .await;
    let expected = snapshot
        .iter()
        .filter(|c| {
            let m = ts(c["last_modified_time"].as_str().unwrap());
            m > ts("2024-03-01T00:00:00Z") && m < ts("2024-08-31T22:00:00Z")
        })
        .count();
    assert_eq!(window["pagination"]["matched"], json!(expected));

    for bad in ["yesterday", "2024-01-01", "2024-01-01T00:00:00 0000"] {
        let (status, body) = get(&sandbox, "/calls", &[("filterModifiedGt", bad)]).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["errorMessage"]
                .as_str()
                .unwrap()
                .contains("filterModifiedGt")
        );
    }
}

#[tokio::test]
async fn private_calls_are_hidden_unless_include_private() {
    let sandbox = start_default().await;
    let matched = |page: Value| page["pagination"]["matched"].as_u64().unwrap();
    let (_, hidden) = get(&sandbox, "/calls", &[]).await;
    let (_, explicit) = get(&sandbox, "/calls", &[("includePrivate", "false")]).await;
    let (_, shown) = get(&sandbox, "/calls", &[("includePrivate", "1")]).await;
    let (status, _) = get(&sandbox, "/calls", &[("includePrivate", "yes")]).await;
    assert_eq!(status, 400);
    let (hidden, explicit, shown) = (matched(hidden), matched(explicit), matched(shown));
    assert_eq!(hidden, explicit);
    assert_eq!(shown as usize, sandbox.calls_snapshot().len());
    assert_eq!((shown - hidden) as usize, sandbox.private_call_ids().len());
    let private: HashSet<String> = sandbox.private_call_ids().into_iter().collect();
    let (_, page) = get(&sandbox, "/calls", &[("limit", "100")]).await;
    assert!(ids(&page, "calls").iter().all(|id| !private.contains(id)));
    assert!(hidden < shown);
}

#[tokio::test]
async fn sort_time_orders_by_time_then_id_in_both_directions() {
    let sandbox = start_default().await;
    let key = |c: &Value| {
        (
            c["time"].as_str().unwrap().to_owned(),
            c["id"].as_str().unwrap().to_owned(),
        )
    };
    let (_, asc) = get(&sandbox, "/calls", &[("sortTime", "asc"), ("limit", "100")]).await;
    let (_, again) = get(&sandbox, "/calls", &[("sortTime", "asc"), ("limit", "100")]).await;
    let (_, desc) = get(
        &sandbox,
        "/calls",
        &[("sortTime", "desc"), ("limit", "100"), ("skip", "0")],
    )
    .await;
    let asc_keys: Vec<_> = asc["calls"].as_array().unwrap().iter().map(key).collect();
    let mut sorted = asc_keys.clone();
    sorted.sort();
    assert_eq!(asc_keys, sorted);
    assert_eq!(asc, again);
    let desc_keys: Vec<_> = desc["calls"].as_array().unwrap().iter().map(key).collect();
    let mut reversed = desc_keys.clone();
    reversed.sort_by(|a, b| b.cmp(a));
    assert_eq!(desc_keys, reversed);
    assert_eq!(get(&sandbox, "/calls", &[("sortTime", "up")]).await.0, 400);
}

#[tokio::test]
async fn unstable_default_order_changes_between_requests_but_sort_time_does_not() {
    let sandbox = start_default().await;
    sandbox.faults().set_unstable_default_order(true);
    let first = ids(
        &get(&sandbox, "/calls", &[("limit", "100")]).await.1,
        "calls",
    );
    let second = ids(
        &get(&sandbox, "/calls", &[("limit", "100")]).await.1,
        "calls",
    );
    assert_ne!(first, second);
    let sorted = |_: ()| async {
        ids(
            &get(&sandbox, "/calls", &[("limit", "100"), ("sortTime", "asc")])
                .await
                .1,
            "calls",
        )
    };
    assert_eq!(sorted(()).await, sorted(()).await);
}

#[tokio::test]
async fn include_pagination_false_omits_the_pagination_object() {
    let sandbox = start_default().await;
    let (status, page) = get(&sandbox, "/calls", &[("includePagination", "false")]).await;
    assert_eq!(status, 200);
    assert_eq!(page.as_object().unwrap().len(), 1);
    assert_eq!(page["calls"].as_array().unwrap().len(), 25);
}

#[tokio::test]
async fn responses_over_the_size_cap_become_502_internal_server_error() {
    let sandbox = start(SandboxConfig {
        max_response_bytes: 50_000,
        ..SandboxConfig::default()
    })
    .await;
    let (status, body) = get(&sandbox, "/calls", &[("limit", "100")]).await;
    assert_eq!(status, 502);
    assert_eq!(body, json!({"message": "internal server error"}));
    assert_eq!(get(&sandbox, "/calls", &[("limit", "5")]).await.0, 200);
}

#[tokio::test]
async fn fail_next_and_fail_every_inject_statuses_with_gateway_bodies() {
    let sandbox = start_default().await;
    sandbox.faults().fail_next(2, 502);
    assert_eq!(
        get(&sandbox, "/users", &[]).await,
        (502, json!({"message": "internal server error"}))
    );
    assert_eq!(get(&sandbox, "/calls", &[]).await.0, 502);
    assert_eq!(get(&sandbox, "/users", &[]).await.0, 200);

    sandbox.faults().fail_next(1, 429);
    assert_eq!(
        get(&sandbox, "/users", &[]).await,
        (429, json!({"message": "Too Many Requests"}))
    );
    sandbox.faults().fail_next(1, 403);
    assert_eq!(
        get(&sandbox, "/users", &[]).await,
        (403, json!({"errorMessage": "Forbidden"}))
    );

    sandbox.faults().fail_every(3, 500);
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..6 {
            out.push(get(&sandbox, "/users", &[]).await.0);
        }
        out
    };
    assert_eq!(statuses.iter().filter(|&&s| s == 500).count(), 2);
    sandbox.faults().fail_every(0, 500);
    assert_eq!(get(&sandbox, "/users", &[]).await.0, 200);
    let response = reqwest::Client::new()
        .get(format!("{}/users", sandbox.base_url()))
        .header("X-Api-Key", KEY)
        .header("X-Api-Password", PASSWORD)
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn rate_limit_answers_429_beyond_n_per_second_and_counts_them() {
    let sandbox = start_default().await;
    sandbox.faults().set_rate_limit(Some(3));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(&sandbox, "/users", &[]).await.0);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    assert_eq!(sandbox.faults().rate_limited_count(), 2);
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(get(&sandbox, "/users", &[]).await.0, 200);
    sandbox.faults().set_rate_limit(None);
}

#[tokio::test]
async fn latency_delays_every_request() {
    let sandbox = start_default().await;
    sandbox.faults().set_latency(Duration::from_millis(100));
    let started = std::time::Instant::now();
    get(&sandbox, "/users", &[]).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn malformed_and_truncated_bodies_are_not_json() {
    let sandbox = start_default().await;
    sandbox.faults().set_malformed_body(true);
    let (status, body) = get(&sandbox, "/users", &[]).await;
    assert_eq!((status, body), (200, Value::Null));
    sandbox.faults().set_malformed_body(false);
    sandbox.faults().set_truncate_body(true);
    assert_eq!(get(&sandbox, "/users", &[]).await, (200, Value::Null));
    sandbox.faults().set_truncate_body(false);
    assert!(get(&sandbox, "/users", &[]).await.1["users"].is_array());
}

#[tokio::test]
async fn unexpected_json_answers_an_object_without_the_records() {
    let sandbox = start_default().await;
    sandbox.faults().set_unexpected_json(true);
    let (status, body) = get(&sandbox, "/users", &[]).await;
    assert_eq!(status, 200);
    assert!(body.is_object() && body.get("users").is_none(), "{body}");
}

#[tokio::test]
async fn reset_connection_drops_every_kth_success_mid_body() {
    let sandbox = start_default().await;
    sandbox.faults().set_reset_connection_every(2);
    let client = reqwest::Client::new();
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let response = client
            .get(format!("{}/calls", sandbox.base_url()))
            .header("X-Api-Key", KEY)
            .header("X-Api-Password", PASSWORD)
            .send()
            .await;
        // Depending on how much hyper flushed before the cut, the error surfaces while
        // reading the head or the body.
        let body = match response {
            Ok(response) => response.bytes().await.ok(),
            Err(_) => None,
        };
        outcomes.push(body.is_some_and(|b| serde_json::from_slice::<Value>(&b).is_ok()));
    }
    assert_eq!(outcomes, vec![true, false, true, false]);
}

#[tokio::test]
async fn mutate_after_calls_requests_shifts_a_window_between_pages() {
    let sandbox = start_default().await;
    let query = [
        ("sortTime", "asc"),
        ("limit", "10"),
        ("includePrivate", "true"),
    ];
    let (_, first) = get(&sandbox, "/calls", &query).await;
    let first_ids = ids(&first, "calls");
    // After the 2nd /calls request, the 1st call of the window moves to the far future.
    sandbox.faults().mutate_after_calls_requests(
        2,
        Mutation::TouchCalls {
            ids: vec![first_ids[0].clone()],
            status: "PROCESSING".to_owned(),
            last_modified: ts("2030-01-01T00:00:00Z"),
        },
    );
    let window = [
        ("sortTime", "asc"),
        ("limit", "10"),
        ("includePrivate", "true"),
        ("filterModifiedLt", "2029-01-01T00:00:00Z"),
    ];
    let (_, before) = get(&sandbox, "/calls", &window).await;
    assert_eq!(
        ids(&before, "calls"),
        first_ids,
        "2nd request sees old data"
    );
    let (_, after) = get(&sandbox, "/calls", &window).await;
    assert_eq!(
        ids(&after, "calls")[..9],
        first_ids[1..],
        "3rd request shifted"
    );
    assert_eq!(
        after["pagination"]["matched"].as_u64().unwrap() + 1,
        before["pagination"]["matched"].as_u64().unwrap()
    );
    sandbox.faults().mutate_after_calls_requests(
        3,
        Mutation::AddCalls {
            n: 4,
            last_modified: ts("2024-06-01T00:00:00Z"),
        },
    );
    get(&sandbox, "/calls", &[]).await;
    assert_eq!(sandbox.calls_snapshot().len(), 504);
}

#[tokio::test]
async fn touch_call_moves_last_modified_but_a_title_edit_does_not() {
    let sandbox = start_default().await;
    let snapshot = sandbox.calls_snapshot();
    let id = snapshot[7]["id"].as_str().unwrap().to_owned();
    let find = |sandbox: &Sandbox| {
        sandbox
            .calls_snapshot()
            .into_iter()
            .find(|c| c["id"] == json!(id))
            .unwrap()
    };
    sandbox.edit_call_title(&id, "Renamed");
    let edited = find(&sandbox);
    assert_eq!(edited["title"], json!("Renamed"));
    assert_eq!(
        edited["last_modified_time"],
        snapshot[7]["last_modified_time"]
    );
    sandbox.touch_call(&id, "ERROR_IN_PROCESSING", ts("2024-12-31T23:59:59.999Z"));
    let touched = find(&sandbox);
    assert_eq!(touched["status"], json!("ERROR_IN_PROCESSING"));
    assert_eq!(
        touched["last_modified_time"],
        json!("2024-12-31T23:59:59.999Z")
    );
    let (_, page) = get(
        &sandbox,
        "/calls",
        &[
            ("filterModifiedGt", "2024-12-31T23:59:59.998Z"),
            ("includePrivate", "true"),
        ],
    )
    .await;
    assert!(ids(&page, "calls").contains(&id));
    let added = sandbox.add_calls(3, ts("2025-06-01T00:00:00Z"));
    let (_, page) = get(
        &sandbox,
        "/calls",
        &[
            ("filterModifiedGt", "2025-05-31T00:00:00Z"),
            ("includePrivate", "true"),
        ],
    )
    .await;
    assert_eq!(
        ids(&page, "calls").into_iter().collect::<BTreeSet<_>>(),
        added.into_iter().collect()
    );
}

#[tokio::test]
async fn call_records_have_the_api_shapes() {
    let sandbox = start_default().await;
    let snapshot = sandbox.calls_snapshot();
    let uuid = |s: &str| {
        s.len() == 36
            && s.chars().enumerate().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
                }
            })
    };
    let mut modified_ties = HashSet::new();
    let mut modified_seen = HashSet::new();
    for call in &snapshot {
        let id = call["id"].as_str().unwrap();
        assert!(uuid(id), "{id}");
        for field in ["time", "last_modified_time"] {
            let text = call[field].as_str().unwrap();
            assert_eq!(text.len(), 24, "{text}");
            assert!(text.ends_with('Z'));
            let t = ts(text);
            assert!(t >= ts("2024-01-01T00:00:00Z") && t < ts("2025-01-01T00:00:00Z"));
        }
        assert!(
            ts(call["last_modified_time"].as_str().unwrap()) >= ts(call["time"].as_str().unwrap())
        );
        if !modified_seen.insert(call["last_modified_time"].clone()) {
            modified_ties.insert(call["last_modified_time"].clone());
        }
        assert_eq!(call["audio_url"], Value::Null);
        assert_eq!(call["video_url"], Value::Null);
        assert!(call["metrics"]["call_duration"].is_u64());
        assert!(call["metrics"]["num_questions_asked"].is_u64());
        assert!(call["metrics"]["talk_listen_ratio"].is_number());
        for user in call["users"].as_array().unwrap() {
            assert!(user["personId"].is_u64());
            assert!(user["userEmail"].is_string());
        }
        assert_eq!(
            call["call_review_page_url"],
            json!(format!("https://copilot.clari.com/call/{id}"))
        );
    }
    assert!(
        !modified_ties.is_empty(),
        "some calls share last_modified_time"
    );
    let absent = |field: &str| snapshot.iter().filter(|c| c.get(field).is_none()).count();
    for field in ["source_id", "calendar_id", "crm_info", "deal_value"] {
        assert!(
            absent(field) > 0 && absent(field) < snapshot.len(),
            "{field}"
        );
    }
    assert!(
        snapshot
            .iter()
            .any(|c| c["status"] != json!("POST_PROCESSING_DONE"))
    );
    assert!(snapshot.iter().any(|c| {
        c["joinedParticipants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_object().unwrap().len() == 1)
    }));
    let (_, page) = get(
        &sandbox,
        "/calls",
        &[("includeAudio", "true"), ("includeVideo", "true")],
    )
    .await;
    let call = &page["calls"][0];
    assert!(call["audio_url"].as_str().unwrap().starts_with("https://"));
    assert!(call["video_url"].as_str().unwrap().starts_with("https://"));
}

#[tokio::test]
async fn same_seed_gives_the_same_tenant_and_another_seed_does_not() {
    let a = start_default().await;
    let b = start_default().await;
    let c = start(SandboxConfig {
        seed: 7,
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(a.calls_snapshot(), b.calls_snapshot());
    assert_ne!(a.calls_snapshot(), c.calls_snapshot());
    for path in ["/users", "/v2/topics", "/scorecard", "/scorecard-template"] {
        assert_eq!(get(&a, path, &[]).await, get(&b, path, &[]).await, "{path}");
    }
}

#[tokio::test]
async fn users_topics_and_templates_are_single_unpaged_lists() {
    let sandbox = start(SandboxConfig {
        templates_key: "scoreCardTemplates".to_owned(),
        ..SandboxConfig::default()
    })
    .await;
    let (_, users) = get(&sandbox, "/users", &[("limit", "1"), ("skip", "5")]).await;
    let users = users["users"].as_array().unwrap();
    assert_eq!(users.len(), 12);
    assert!(users.iter().all(|u| u["is_recording"].is_boolean()
        && ["REP", "MANAGER", "OBSERVER"].contains(&u["role"].as_str().unwrap())));
    assert!(users.iter().any(|u| u.get("manager_id").is_none()));
    let (_, topics) = get(&sandbox, "/v2/topics", &[]).await;
    assert_eq!(topics["topics"].as_array().unwrap().len(), 8);
    assert!(topics["topics"][0]["custom_topic"]["status"].is_string());
    let (status, _) = get(&sandbox, "/v2/topics", &[("filterModifiedGt", "soon")]).await;
    assert_eq!(status, 400);
    let (_, filtered) = get(
        &sandbox,
        "/v2/topics",
        &[("filterModifiedGt", "2000-01-01T00:00:00+0000")],
    )
    .await;
    assert_eq!(filtered["topics"].as_array().unwrap().len(), 8);
    let (_, templates) = get(&sandbox, "/scorecard-template", &[]).await;
    let templates = templates["scoreCardTemplates"].as_array().unwrap();
    assert_eq!(templates.len(), 3);
    assert_eq!(templates[0]["type"], json!("CALL"));
    assert_eq!(templates[0]["questions"][0]["order"], json!("1"));
}

#[tokio::test]
async fn scorecards_page_and_filter_like_calls() {
    let sandbox = start_default().await;
    let (_, first) = get(&sandbox, "/scorecard", &[]).await;
    assert_eq!(
        first["scorecards"].as_array().unwrap().len(),
        50,
        "default limit"
    );
    assert_eq!(first["pagination"]["matched"], json!(125));
    assert_eq!(first["pagination"]["nextPageSkip"], json!(50));
    let (_, last) = get(&sandbox, "/scorecard", &[("skip", "100")]).await;
    assert_eq!(last["scorecards"].as_array().unwrap().len(), 25);
    assert!(last["pagination"].get("nextPageSkip").is_none());
    let card = &first["scorecards"][0];
    assert!(card["total_score"].is_f64());
    assert!(card["questions_score"][0]["score"].is_u64());
    assert!(card.get("time").is_none());
    let rep = card["rep"].as_str().unwrap();
    let (_, by_rep) = get(
        &sandbox,
        "/scorecard",
        &[("filterRepId", rep), ("limit", "100")],
    )
    .await;
    let reps: HashSet<&str> = by_rep["scorecards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rep"].as_str().unwrap())
        .collect();
    assert_eq!(reps, HashSet::from([rep]));
    let (_, none) = get(
        &sandbox,
        "/scorecard",
        &[("filterTimeLt", "2024-01-01T00:00:00Z")],
    )
    .await;
    assert_eq!(none["pagination"]["matched"], json!(0));
}

#[tokio::test]
async fn call_details_adds_transcript_and_404s_unknown_ids() {
    let sandbox = start_default().await;
    let snapshot = sandbox.calls_snapshot();
    let id = snapshot[0]["id"].as_str().unwrap();
    let (status, details) = get(&sandbox, "/call-details", &[("id", id)]).await;
    assert_eq!(status, 200);
    let call = &details["call"];
    assert_eq!(call["id"], json!(id));
    assert!(call["transcript"].is_array());
    assert!(call["summary"]["full_summary"].is_string());
    assert!(call["deal_stage_live"].is_string());
    assert_eq!(
        get(
            &sandbox,
            "/call-details",
            &[("id", "00000000-0000-4000-8000-000000000000")]
        )
        .await,
        (404, json!({"errorMessage": "Not found"}))
    );
}

#[tokio::test]
async fn crm_write_endpoints_round_trip_and_count_duplicates() {
    use reqwest::Method;
    let sandbox = start_default().await;
    let (status, created) = send(
        &sandbox,
        Method::POST,
        "/create-account",
        json!({"crm_id": "A1", "name": "Acme"}),
    )
    .await;
    assert_eq!(status, 200);
    let copilot_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(copilot_id.len(), 24);
    assert!(copilot_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        send(
            &sandbox,
            Method::POST,
            "/create-account",
            json!({"name": "x"})
        )
        .await,
        (400, json!({"errorMessage": "crm_id is required"}))
    );
    let (status, fetched) = get(&sandbox, "/get-account", &[("id", "A1")]).await;
    assert_eq!((status, &fetched), (200, &created));
    assert_eq!(
        get(&sandbox, "/get-account", &[("id", "nope")]).await.0,
        404
    );
    let (status, updated) = send(
        &sandbox,
        Method::PUT,
        "/update-account",
        json!({"crm_id": "A1", "city": "Paris", "id": "ignored"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&updated["id"], &updated["name"], &updated["city"]),
        (&json!(copilot_id), &json!("Acme"), &json!("Paris"))
    );
    assert_eq!(
        send(
            &sandbox,
            Method::PUT,
            "/update-deal",
            json!({"crm_id": "D404"})
        )
        .await
        .0,
        404
    );
    send(
        &sandbox,
        Method::POST,
        "/create-contact",
        json!({"crm_id": "C1", "first_name": "Ada"}),
    )
    .await;
    assert_eq!(
        send(
            &sandbox,
            Method::POST,
            "/create-contact",
            json!({"crm_id": "C1", "first_name": "Grace"}),
        )
        .await,
        (
            400,
            json!({"errorMessage": "contact with crm_id C1 already exists"})
        )
    );
    let (status, deleted) = send(
        &sandbox,
        Method::DELETE,
        "/delete-account",
        json!({"id": "A1"}),
    )
    .await;
    assert_eq!((status, deleted), (200, updated));
    assert_eq!(
        send(
            &sandbox,
            Method::DELETE,
            "/delete-account",
            json!({"id": "A1"})
        )
        .await
        .0,
        404
    );
    let store = sandbox.store();
    assert!(store.accounts.is_empty());
    assert_eq!(store.contacts.len(), 1);
    assert_eq!(store.creates.accounts, 1);
    assert_eq!(store.creates.contacts, 1, "a refused create stores nothing");
    assert_eq!(store.contacts["C1"]["first_name"], "Ada");
    assert_eq!(store.duplicate_creates.contacts, 1);
    assert_eq!(store.updates.total(), 1);
    assert_eq!(store.deletes.accounts, 1);
}

#[tokio::test]
async fn crm_answers_show_objects_in_clari_s_lossy_read_shape_while_the_store_keeps_them_whole() {
    use reqwest::Method;
    let sandbox = start_default().await;
    let (_, account) = send(
        &sandbox,
        Method::POST,
        "/create-account",
        json!({"crm_id": "A1", "name": "Acme", "custom_fields": [{"key": "k", "value": "v"}]}),
    )
    .await;
    let contact = json!({"crm_id": "C1", "account_crm_id": "A1", "first_name": "Ada",
        "phones": ["+33 (1) 23-45-67-89"], "emails": ["ada@example.com"], "is_lead": true,
        "x_unknown": 1});
    let (status, created) = send(&sandbox, Method::POST, "/create-contact", contact.clone()).await;
    assert_eq!(status, 200);
    let (_, fetched) = get(&sandbox, "/get-contact", &[("id", "C1")]).await;
    assert_eq!(fetched, created);
    assert_eq!(
        fetched,
        json!({"id": fetched["id"], "crm_id": "C1", "first_name": "Ada", "last_name": null,
            "job_title": null, "phones": ["+33 (1) 23-45-67-89"], "stage": null, "reason": null,
            "account_id": account["id"], "phone_norms": ["33123456789"],
            "phone_suffixes": ["6789"]}),
        "hidden: emails, is_lead, custom_fields, account_crm_id and unknown fields"
    );
    send(
        &sandbox,
        Method::POST,
        "/create-deal",
        json!({"crm_id": "D1", "amount": "1000.50", "probability": "0.250",
            "close_date": "2024-05-01T12:00:00+02:00", "stage_change_history": [],
            "close_date_change_history": [{"close_date": "2024-05-01T10:00:00Z"}]}),
    )
    .await;
    let (_, deal) = get(&sandbox, "/get-deal", &[("id", "D1")]).await;
    assert_eq!(
        (&deal["amount"], &deal["probability"], &deal["close_date"]),
        (
            &json!("1000.5"),
            &json!("0.25"),
            &json!("2024-05-01T10:00:00.000Z")
        )
    );
    assert_eq!(
        deal["stage_change_history"],
        Value::Null,
        "[] shows as null"
    );
    assert_eq!(
        deal["close_date_change_history"][0]["close_date"],
        "2024-05-01T10:00:00.000Z"
    );
    let store = sandbox.store();
    assert_eq!(store.contacts["C1"]["emails"], contact["emails"]);
    assert_eq!(store.deals["D1"]["amount"], "1000.50");
}

#[tokio::test]
async fn create_call_validates_fields_recording_user_and_source_id() {
    use reqwest::Method;
    let sandbox = start_default().await;
    let (_, users) = get(&sandbox, "/users", &[]).await;
    let recording = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["is_recording"] == json!(true))
        .unwrap()["email"]
        .clone();
    let valid = json!({
        "source_id": "S1",
        "call_time": "2025-01-02T10:00:00Z",
        "type": "RECORDING",
        "audio_url": "https://example.com/a.mp3",
        "user_emails": [recording],
    });
    for field in ["source_id", "call_time", "type", "audio_url"] {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        assert_eq!(
            send(&sandbox, Method::POST, "/create-call", body).await,
            (400, json!({"errorMessage": format!("{field} is required")}))
        );
    }
    let mut bad_type = valid.clone();
    bad_type["type"] = json!("ZOOM");
    assert_eq!(
        send(&sandbox, Method::POST, "/create-call", bad_type)
            .await
            .0,
        400
    );
    let mut stranger = valid.clone();
    stranger["user_emails"] = json!(["nobody@example.com"]);
    assert_eq!(
        send(&sandbox, Method::POST, "/create-call", stranger).await,
        (400, json!({"error": "no recording user"}))
    );
    let (status, created) = send(&sandbox, Method::POST, "/create-call", valid.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(created["call_id"].as_str().unwrap().len(), 36);
    assert_eq!(
        send(&sandbox, Method::POST, "/create-call", valid.clone()).await,
        (400, json!({"error": "call with source_id already exists"}))
    );
    let mut overwrite = valid.clone();
    overwrite["force_overwrite_old_call"] = json!(true);
    overwrite["user_emails"] = json!([]);
    overwrite["source_user_ids"] = json!(["u-1"]);
    assert_eq!(
        send(&sandbox, Method::POST, "/create-call", overwrite)
            .await
            .0,
        200
    );
    let store = sandbox.store();
    assert_eq!(store.calls.len(), 1);
    assert_eq!(store.creates.calls, 1);
    assert_eq!(
        store.duplicate_creates.calls, 1,
        "the refused create is counted"
    );
    assert_eq!(store.updates.calls, 1);
    assert_eq!(store.calls["S1"]["source_user_ids"], json!(["u-1"]));
}

#[tokio::test]
async fn every_crm_create_route_refuses_an_existing_key_with_400_already_exists() {
    use reqwest::Method;
    let sandbox = start_default().await;
    for kind in ["account", "contact", "deal"] {
        let path = format!("/create-{kind}");
        let body = json!({"crm_id": "K1", "x": 1});
        assert_eq!(
            send(&sandbox, Method::POST, &path, body.clone()).await.0,
            200
        );
        let (status, refused) = send(&sandbox, Method::POST, &path, body).await;
        assert_eq!(status, 400, "{kind}");
        let message = refused["errorMessage"].as_str().unwrap();
        assert!(message.contains("already exists"), "{message}");
    }
    let store = sandbox.store();
    assert_eq!(store.creates.total(), 3);
    assert_eq!(store.duplicate_creates.total(), 3);
}

#[tokio::test]
async fn calls_filtered_by_source_id_answer_uploaded_and_generated_calls_only() {
    use reqwest::Method;
    let sandbox = start_default().await;
    let upload = json!({"source_id": "S1", "call_time": "2025-01-02T12:00:00+02:00",
        "type": "RECORDING", "audio_url": "https://example.com/a.mp3",
        "source_user_ids": ["u-1"], "title": "Demo"});
    assert_eq!(
        send(&sandbox, Method::POST, "/create-call", upload).await.0,
        200
    );
    let generated = sandbox
        .calls_snapshot()
        .into_iter()
        .find(|c| c["source_id"].is_string())
        .unwrap();
    let generated_source = generated["source_id"].as_str().unwrap();
    let (status, page) = get(
        &sandbox,
        "/calls",
        &[
            ("filterSourceId", "S1"),
            ("filterSourceId", generated_source),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let calls = page["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{page}");
    assert_eq!(
        (
            &calls[0]["source_id"],
            &calls[0]["title"],
            &calls[0]["time"]
        ),
        (
            &json!("S1"),
            &json!("Demo"),
            &json!("2025-01-02T10:00:00.000Z")
        )
    );
    assert_eq!(calls[1]["id"], generated["id"]);
    let (_, none) = get(&sandbox, "/calls", &[("filterSourceId", "unknown")]).await;
    assert_eq!(none["calls"], json!([]));
    assert_eq!(none["pagination"]["matched"], 0);
}

#[tokio::test]
async fn updates_merge_by_default_and_replace_when_switched() {
    use reqwest::Method;
    let sandbox = start_default().await;
    let create = json!({"crm_id": "A1", "name": "Acme", "city": "Lyon"});
    send(&sandbox, Method::POST, "/create-account", create).await;
    let partial = json!({"crm_id": "A1", "name": "Acme 2"});
    send(&sandbox, Method::PUT, "/update-account", partial.clone()).await;
    assert_eq!(sandbox.store().accounts["A1"]["city"], "Lyon", "merged");
    sandbox.faults().set_update_replaces(true);
    let (status, shown) = send(&sandbox, Method::PUT, "/update-account", partial).await;
    assert_eq!(status, 200);
    let stored = &sandbox.store().accounts["A1"];
    assert_eq!(
        (&stored["name"], stored.get("city")),
        (&json!("Acme 2"), None)
    );
    assert_eq!(stored["id"], shown["id"], "the Copilot id stays");
}

#[tokio::test]
async fn write_faults_hit_only_write_routes() {
    use reqwest::Method;
    let sandbox = start_default().await;
    sandbox.faults().fail_write_next(1, 500);
    sandbox
        .faults()
        .set_write_latency(Duration::from_millis(50));
    assert_eq!(get(&sandbox, "/users", &[]).await.0, 200);
    let started = std::time::Instant::now();
    assert_eq!(
        send(
            &sandbox,
            Method::POST,
            "/create-deal",
            json!({"crm_id": "D1"})
        )
        .await
        .0,
        500
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        send(
            &sandbox,
            Method::POST,
            "/create-deal",
            json!({"crm_id": "D1"})
        )
        .await
        .0,
        200
    );
    assert_eq!(sandbox.store().deals.len(), 1);
}

#[tokio::test]
async fn journal_records_method_path_query_and_status() {
    let sandbox = start_default().await;
    get(&sandbox, "/calls", &[("limit", "2")]).await;
    get(&sandbox, "/calls", &[("limit", "200")]).await;
    let requests = sandbox.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/calls");
    assert_eq!(requests[0].query.as_deref(), Some("limit=2"));
    assert_eq!((requests[0].status, requests[1].status), (200, 400));
}

/// Start-up with a million calls: run with `--ignored` (and `--release` to see real speed).
#[tokio::test]
#[ignore]
async fn a_million_calls_start_and_page() {
    let started = std::time::Instant::now();
    let sandbox = start(SandboxConfig::with_calls(1_000_000)).await;
    eprintln!("1M calls generated in {:?}", started.elapsed());
    let (status, page) = get(
        &sandbox,
        "/calls",
        &[
            ("filterModifiedGt", "2024-06-01T00:00:00Z"),
            ("filterModifiedLt", "2024-06-02T00:00:00Z"),
            ("sortTime", "asc"),
            ("limit", "100"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(page["pagination"]["matched"].as_u64().unwrap() > 1_000);
    eprintln!("first window page after {:?}", started.elapsed());
}
