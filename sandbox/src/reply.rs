//! Response building shared by every route: the `{"errorMessage": ...}` error envelope, JSON
//! bodies written in one piece, and the `pagination` envelope of `/calls` and `/scorecard`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};

/// An error answered with a JSON body.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    /// The envelope the API uses for its own errors: `{"errorMessage": "..."}`.
    pub(crate) fn message(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "errorMessage": message.into() }),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::message(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::message(StatusCode::NOT_FOUND, "Not found")
    }

    /// An error with an arbitrary body (create-call answers `{"error": "..."}`).
    pub(crate) fn with_body(status: StatusCode, body: Value) -> ApiError {
        ApiError { status, body }
    }

    /// What an injected fault answers: gateway-style bodies for 429 and 5xx (as AWS API
    /// Gateway sends them), the API's own envelope for other 4xx. Never a `Retry-After`.
    pub(crate) fn injected(status: u16) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reason = status.canonical_reason().unwrap_or("error");
        let body = match status.as_u16() {
            429 => json!({ "message": "Too Many Requests" }),
            500 | 502 => json!({ "message": "internal server error" }),
            500.. => json!({ "message": reason.to_lowercase() }),
            _ => json!({ "errorMessage": reason }),
        };
        ApiError { status, body }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_bytes(self.status, self.body.to_string().into_bytes())
    }
}

/// A complete JSON response from already-serialized bytes.
pub(crate) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Serializes `value` as a 200 JSON response.
pub(crate) fn ok_json(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_bytes(StatusCode::OK, body),
        Err(err) => {
            ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
        }
    }
}

/// `skip`, `limit` and whether the caller wants the `pagination` object.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageRequest {
    pub skip: usize,
    pub limit: usize,
    pub with_pagination: bool,
}

/// Marks a `/calls` or `/scorecard` page, so that the gateway counts it for churn once it
/// is sure to be answered 200.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listing;

/// How a list answer departs from the truth, as set on [`super::Faults`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListFaults {
    /// `pagination.matched` reports at most this many (`hasMore` and `nextPageSkip` stay true).
    pub matched_cap: Option<usize>,
    /// A page without records answers `null` under its key instead of `[]`.
    pub null_when_empty: bool,
}

/// The API's `PaginationInfo`; `nextPageSkip` is left out on the last page.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    matched: usize,
    has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_skip: Option<usize>,
}

/// One page of a list response: `{"<key>": [...], "pagination": {...}}`, with `null` for
/// the records when they are `None`.
struct Page<'a, T> {
    key: &'static str,
    records: Option<&'a [T]>,
    pagination: Option<Pagination>,
}

impl<T: Serialize> Serialize for Page<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(self.key, &self.records)?;
        if let Some(pagination) = &self.pagination {
            map.serialize_entry("pagination", pagination)?;
        }
        map.end()
    }
}

/// Answers one page of `matches` (every match of the filter, in order) under `key`,
/// rendering only the records on the page. `matched` counts all matches, unless `faults`
/// caps it; `faults` may also turn an empty page's `[]` into `null`. The response carries the
/// [`Listing`] mark.
pub(crate) fn paged<M: Copy, T: Serialize>(
    key: &'static str,
    matches: &[M],
    page: PageRequest,
    faults: ListFaults,
    render: impl Fn(M) -> T,
) -> Response {
    let start = page.skip.min(matches.len());
    let end = page.skip.saturating_add(page.limit).min(matches.len());
    let records: Vec<T> = matches[start..end].iter().map(|&m| render(m)).collect();
    let has_more = end < matches.len();
    let pagination = page.with_pagination.then_some(Pagination {
        matched: faults
            .matched_cap
            .map_or(matches.len(), |cap| cap.min(matches.len())),
        has_more,
        next_page_skip: has_more.then_some(end),
    });
    let null = records.is_empty() && faults.null_when_empty;
    let mut response = ok_json(&Page {
        key,
        records: (!null).then_some(&records),
        pagination,
    });
    response.extensions_mut().insert(Listing);
    response
}
