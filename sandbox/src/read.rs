//! The read endpoints: `/calls`, `/call-details`, `/users`, `/v2/topics`, `/scorecard` and
//! `/scorecard-template`. Records are rendered under the data lock and serialized at once,
//! so a response is one consistent snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use fastrand::Rng;

use super::data::{CallFilter, CallOrder, Media};
use super::query::Params;
use super::reply::{ApiError, ok_json, paged};
use super::{SandboxHandle, Shared};

/// Default `limit` of `/calls`.
const CALLS_DEFAULT_LIMIT: usize = 25;
/// Default `limit` of `/scorecard`.
const SCORECARD_DEFAULT_LIMIT: usize = 50;

fn media(params: &Params) -> Result<Media, ApiError> {
    Ok(Media {
        audio: params.flag("includeAudio", false)?,
        video: params.flag("includeVideo", false)?,
    })
}

/// `GET /calls`. Calls modified too recently to be indexed are left out. After answering,
/// applies the mutations due after this request.
///
/// With `filterSourceId` (repeatable) it answers only the calls with those `source_id`s: the
/// calls uploaded through `create-call`, then the generated ones, other filters ignored. That
/// is how a client finds out whether a call it uploaded is there.
pub(crate) async fn calls(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let params = Params::from_uri(&uri)?;
    let page = params.page(CALLS_DEFAULT_LIMIT, true)?;
    let source_ids = params.all("filterSourceId");
    if !source_ids.is_empty() {
        return calls_by_source_id(&shared, &source_ids, page, &params);
    }
    let filter = CallFilter {
        time: params.range("filterTime")?,
        modified: params
            .range("filterModified")?
            .at_most(shared.faults.indexed_until()),
        include_private: params.flag("includePrivate", false)?,
    };
    let media = media(&params)?;
    let sort = match params.get("sortTime") {
        None => None,
        Some("asc") => Some(CallOrder::Asc),
        Some("desc") => Some(CallOrder::Desc),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sortTime must be asc or desc, got {other:?}"
            )));
        }
    };
    let (request_number, unstable) = shared.faults.count_calls_request();
    let order = match sort {
        Some(order) => order,
        None if unstable => CallOrder::Shuffled(request_number as u64),
        None => CallOrder::Asc,
    };
    let response = {
        let data = shared.data();
        let mut matches = data.find_calls(&filter, order);
        if sort.is_some() && shared.faults.unstable_ties() {
            data.shuffle_ties(&mut matches, request_number as u64);
        }
        paged("calls", &matches, page, shared.faults.list_faults(), |i| {
            data.render_call(i, media)
        })
    };
    let handle = SandboxHandle(Arc::clone(&shared));
    for mutation in shared.faults.due_mutations(request_number) {
        handle.apply(mutation);
    }
    Ok(response)
}

/// The `filterSourceId` answer of `/calls`.
fn calls_by_source_id(
    shared: &Shared,
    source_ids: &[&str],
    page: super::reply::PageRequest,
    params: &Params,
) -> Result<Response, ApiError> {
    let media = media(params)?;
    let mut found = shared.writes().uploaded_calls(source_ids);
    let data = shared.data();
    let everything = CallFilter {
        include_private: true,
        ..CallFilter::default()
    };
    for index in data.find_calls(&everything, CallOrder::Asc) {
        let call = serde_json::to_value(data.render_call(index, media))
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
        if call["source_id"]
            .as_str()
            .is_some_and(|id| source_ids.contains(&id))
        {
            found.push(call);
        }
    }
    let positions: Vec<usize> = (0..found.len()).collect();
    Ok(paged(
        "calls",
        &positions,
        page,
        shared.faults.list_faults(),
        |i| &found[i],
    ))
}

/// `GET /call-details?id=`: 404 for an unknown id, the injected status for an id set to fail.
pub(crate) async fn call_details(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let params = Params::from_uri(&uri)?;
    let media = media(&params)?;
    let id = params
        .get("id")
        .ok_or_else(|| ApiError::bad_request("id is required"))?;
    if let Some(status) = shared.faults.details_failure(id) {
        return Err(ApiError::injected(status));
    }
    let data = shared.data();
    let details = data
        .render_call_details(id, media)
        .ok_or_else(ApiError::not_found)?;
    Ok(ok_json(&BTreeMap::from([("call", details)])))
}

/// `GET /users`: one page, no pagination, `skip`/`limit` ignored.
pub(crate) async fn users(State(shared): State<Arc<Shared>>) -> Response {
    ok_json(&BTreeMap::from([("users", &shared.data().users)]))
}

/// `GET /v2/topics`, filterable by the topics' (hidden) modified time.
pub(crate) async fn topics(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let range = Params::from_uri(&uri)?.range("filterModified")?;
    let data = shared.data();
    Ok(ok_json(&BTreeMap::from([(
        "topics",
        data.topics_modified(range),
    )])))
}

/// `GET /scorecard`: paged like `/calls`; `filterTime*` applies to the scored call's time.
/// The order is `time`, `id`, or a per-request shuffle under unstable ties.
pub(crate) async fn scorecards(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let params = Params::from_uri(&uri)?;
    let page = params.page(SCORECARD_DEFAULT_LIMIT, false)?;
    let time = params.range("filterTime")?;
    let shuffle = shared.faults.count_scorecard_request();
    let data = shared.data();
    let mut matches = data.find_scorecards(
        time,
        params.get("filterRepId"),
        params.get("filterScorerId"),
    );
    if let Some(seed) = shuffle {
        Rng::with_seed(seed).shuffle(&mut matches);
    }
    Ok(paged(
        "scorecards",
        &matches,
        page,
        shared.faults.list_faults(),
        |i| data.render_scorecard(i),
    ))
}

/// `GET /scorecard-template`, under the configured key (`scorecardTemplates` by default).
pub(crate) async fn scorecard_templates(State(shared): State<Arc<Shared>>) -> Response {
    let key = shared.config.templates_key.as_str();
    ok_json(&BTreeMap::from([(key, &shared.data().templates)]))
}
