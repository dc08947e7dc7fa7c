//! What one record costs in requests, per sync mode, and what each answer means.
//!
//! | mode | accounts, contacts, deals | calls |
//! |---|---|---|
//! | `append` | `POST /create-<obj>` | `POST /create-call` |
//! | `append_dedup` | `GET /get-<obj>?id=` then `PUT /update-<obj>` unless the answer proves the object unchanged, or `POST /create-<obj>` on 404 | `POST /create-call` with `force_overwrite_old_call: true` |
//! | `update` | `PUT /update-<obj>`; 404 rejects the record | refused at start |
//! | `soft_delete` | `DELETE /delete-<obj>` with `{"id": crm_id}`; 404 means already gone | refused at start |
//!
//! A create is not idempotent: the client replays it only when the API provably never
//! processed it (connection refused, 429). In `append_dedup` a lost answer is harmless, so the
//! whole plan (look-up included) is run again: a create that did land is then found and
//! updated instead of duplicated.

use reqwest::Method;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::compare::{Comparison, compare};
use super::objects::{Dedup, Object};
use crate::catalog::validate_destination_record;
use crate::client::{Client, Request, Response};
use crate::error::{Error, Result};
use crate::protocol::DestinationSyncMode;

/// How many times an `append_dedup` plan is run when an answer is lost.
const PLAN_ATTEMPTS: usize = 4;

/// What became of a record once the API answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The API confirmed the write (or, for a delete, that the record is gone).
    Written,
    /// Not sent: the look-up showed the object already holds every value the record sets.
    Unchanged,
    /// The API refused this record; the reason quotes it.
    Rejected(String),
}

/// A record that passed the checks made before sending: its key and the body to send.
#[derive(Debug)]
pub struct Prepared {
    pub key: String,
    pub body: Vec<u8>,
}

/// Validates a record's `data` against the object's write schema and the rules the schema
/// cannot express, and builds the request body. `Err` is the rejection reason.
pub fn prepare(
    object: &Object,
    mode: DestinationSyncMode,
    data: &RawValue,
) -> std::result::Result<Prepared, String> {
    let mut value: Value = serde_json::from_str(data.get())
        .map_err(|error| format!("`data` is not valid JSON: {error}"))?;
    validate_destination_record(object.name, &value).map_err(|rejected| rejected.reasons())?;
    if !object.user_fields.is_empty() && !names_a_user(&value, object.user_fields) {
        let fields: Vec<String> = object
            .user_fields
            .iter()
            .map(|f| format!("`/{f}`"))
            .collect();
        return Err(format!(
            "field {} must name at least one recording user",
            fields.join(" or ")
        ));
    }
    // The schema requires the key to be a non-empty string.
    let key = value[object.key].as_str().unwrap_or_default().to_owned();
    let body = match mode {
        DestinationSyncMode::SoftDelete => {
            serde_json::json!({ "id": key }).to_string().into_bytes()
        }
        DestinationSyncMode::AppendDedup if let Dedup::OverwriteFlag(flag) = object.dedup => {
            value[flag] = Value::Bool(true);
            serde_json::to_vec(&value).map_err(|error| error.to_string())?
        }
        // Sent byte for byte as received, unknown fields included.
        _ => data.get().as_bytes().to_vec(),
    };
    Ok(Prepared { key, body })
}

fn names_a_user(call: &Value, fields: &[&str]) -> bool {
    fields.iter().any(|field| {
        call[*field].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()))
        })
    })
}

/// Sends one prepared record the way its mode says, returning the verdict.
pub async fn send(
    client: &Client,
    object: &Object,
    mode: DestinationSyncMode,
    record: &Prepared,
) -> Result<Verdict> {
    match mode {
        DestinationSyncMode::AppendDedup if object.dedup == Dedup::LookUp => {
            upsert(client, object, record).await
        }
        DestinationSyncMode::Update => {
            let response = put(client, object, record).await?;
            if response.status == 404 {
                return Ok(Verdict::Rejected(format!(
                    "no {} with {} {:?} exists in Clari Copilot, and the `update` mode only \
                     updates existing records",
                    object.singular, object.key, record.key
                )));
            }
            judge(&Method::PUT, &object.path("update"), &response)
        }
        DestinationSyncMode::SoftDelete => {
            let path = object.path("delete");
            let request = Request::json(Method::DELETE, path.clone(), record.body.clone(), true);
            let response = client.execute(request).await?;
            if response.status == 404 {
                tracing::info!(
                    "{} {:?} was already absent from Clari Copilot; nothing to delete",
                    object.singular,
                    record.key
                );
                return Ok(Verdict::Written);
            }
            judge(&Method::DELETE, &path, &response)
        }
        // append, and append_dedup by an overwrite flag: one create. With the flag set the
        // create is an overwrite keyed by the record's key, so replaying it is harmless.
        _ => {
            create(
                client,
                object,
                record,
                mode == DestinationSyncMode::AppendDedup,
            )
            .await
        }
    }
}

/// `append_dedup` for CRM objects: look the key up, then update or create. The plan is run
/// again when an answer was lost, which can never create a duplicate: the look-up sees any
/// create that landed.
async fn upsert(client: &Client, object: &Object, record: &Prepared) -> Result<Verdict> {
    let mut backoff = client.policy().schedule();
    let mut attempt = 1;
    loop {
        match upsert_once(client, object, record).await {
            Err(error) if answer_was_lost(&error) && attempt < PLAN_ATTEMPTS => {
                let delay = backoff.next().unwrap_or_default();
                tracing::debug!(
                    "re-running the upsert of {:?} in {delay:?}: {error}",
                    record.key
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

async fn upsert_once(client: &Client, object: &Object, record: &Prepared) -> Result<Verdict> {
    let get_path = object.path("get");
    let query = vec![("id".to_owned(), record.key.clone())];
    let found = client
        .execute(Request::get(get_path.clone(), query))
        .await?;
    match found.status {
        404 => create(client, object, record, false).await,
        200..=299 => {
            if holds(object, record, &found) {
                return Ok(Verdict::Unchanged);
            }
            let response = put(client, object, record).await?;
            judge(&Method::PUT, &object.path("update"), &response)
        }
        _ => judge(&Method::GET, &get_path, &found),
    }
}

/// Whether the look-up's answer proves the object holds every value the record sets.
fn holds(object: &Object, record: &Prepared, found: &Response) -> bool {
    let parse = |bytes: &[u8]| serde_json::from_slice::<Map<String, Value>>(bytes).ok();
    match (parse(&record.body), parse(&found.body)) {
        (Some(fields), Some(shown)) => compare(object, &fields, &shown) == Comparison::Same,
        _ => false,
    }
}

async fn put(client: &Client, object: &Object, record: &Prepared) -> Result<Response> {
    let request = Request::json(
        Method::PUT,
        object.path("update"),
        record.body.clone(),
        true,
    );
    client.execute(request).await
}

/// One create of the record.
async fn create(
    client: &Client,
    object: &Object,
    record: &Prepared,
    idempotent: bool,
) -> Result<Verdict> {
    let path = object.path("create");
    let request = Request::json(Method::POST, path.clone(), record.body.clone(), idempotent);
    let response = client.execute(request).await?;
    create_verdict(&path, &response)
}

/// A create route answering 404 means the route itself is missing (a wrong `base_url`), not
/// that the record is bad.
fn create_verdict(path: &str, response: &Response) -> Result<Verdict> {
    if response.status == 404 {
        return Err(response.error(&Method::POST, path, 1));
    }
    judge(&Method::POST, path, response)
}

/// The meaning of a final answer: 2xx is written unless its body carries an `error`; other
/// 4xx answers reject the record; anything else stops the sync.
fn judge(method: &Method, path: &str, response: &Response) -> Result<Verdict> {
    let message = api_message(response);
    match response.status {
        200..=299 => Ok(match message {
            Some(error) => Verdict::Rejected(format!(
                "Clari Copilot answered {method} {path} with an error: {error}"
            )),
            None => Verdict::Written,
        }),
        400..=499 => Ok(Verdict::Rejected(format!(
            "Clari Copilot answered {method} {path} with HTTP {}: {}",
            response.status,
            message.unwrap_or_else(|| response.body_snippet())
        ))),
        _ => Err(response.error(method, path, 1)),
    }
}

/// The API's own words in a body: `errorMessage`, `error` or `message` when non-empty.
fn api_message(response: &Response) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    ["errorMessage", "error", "message"]
        .iter()
        .find_map(|field| match &body[field] {
            Value::Null => None,
            Value::String(text) if text.trim().is_empty() => None,
            Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        })
}

/// Whether a failed request may or may not have been processed (no answer, or a 5xx). A 429
/// was not processed, and `RateLimited` means the client's patience for 429s is spent: running
/// the plan again would only wait that long again.
fn answer_was_lost(error: &Error) -> bool {
    match error {
        Error::Transport { .. } => true,
        Error::Http { status, .. } => *status >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DestinationSyncMode::{Append, AppendDedup, SoftDelete};

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn object(name: &str) -> &'static Object {
        Object::named(name).unwrap()
    }

    #[test]
    fn an_append_body_is_the_record_byte_for_byte_with_unknown_fields() {
        let data = raw(r#"{"crm_id":"a-1", "name":"Acme","x_custom":{"n":1.50}}"#);
        let prepared = prepare(object("accounts"), Append, &data).unwrap();
        assert_eq!(prepared.key, "a-1");
        assert_eq!(prepared.body, data.get().as_bytes());
    }

    #[test]
    fn a_dedup_call_forces_the_overwrite_and_a_delete_sends_only_the_id() {
        let call = raw(
            r#"{"source_id":"s-1","call_time":"2024-01-01T00:00:00Z","type":"RECORDING","audio_url":"https://a/b.mp3","source_user_ids":["u"],"force_overwrite_old_call":false}"#,
        );
        let prepared = prepare(object("calls"), AppendDedup, &call).unwrap();
        let body: Value = serde_json::from_slice(&prepared.body).unwrap();
        assert_eq!(body["force_overwrite_old_call"], Value::Bool(true));
        assert_eq!(body["source_user_ids"][0], "u");
        let delete = prepare(
            object("deals"),
            SoftDelete,
            &raw(r#"{"crm_id":"d-9","stage":"won"}"#),
        )
        .unwrap();
        assert_eq!(delete.body, br#"{"id":"d-9"}"#);
    }

    #[test]
    fn schema_violations_name_the_field() {
        let reason = prepare(object("accounts"), Append, &raw(r#"{"name":"no key"}"#)).unwrap_err();
        assert!(reason.contains("`/crm_id`"), "{reason}");
        let reason = prepare(
            object("deals"),
            Append,
            &raw(r#"{"crm_id":"d","amount":12}"#),
        )
        .unwrap_err();
        assert!(reason.contains("`/amount`"), "{reason}");
        let reason = prepare(object("accounts"), Append, &raw("[1]")).unwrap_err();
        assert!(reason.contains("object"), "{reason}");
    }

    #[test]
    fn a_call_without_any_recording_user_is_rejected_before_sending() {
        let call = raw(
            r#"{"source_id":"s","call_time":"2024-01-01T00:00:00Z","type":"RECORDING","audio_url":"https://a","user_emails":[""]}"#,
        );
        let reason = prepare(object("calls"), Append, &call).unwrap_err();
        assert!(reason.contains("recording user"), "{reason}");
    }

    #[test]
    fn answers_are_judged_by_status_and_error_field() {
        let post = Method::POST;
        assert_eq!(
            judge(&post, "/create-call", &response(200, r#"{"call_id":"x"}"#)).unwrap(),
            Verdict::Written
        );
        assert_eq!(
            judge(
                &post,
                "/create-call",
                &response(200, r#"{"call_id":"x","error":""}"#)
            )
            .unwrap(),
            Verdict::Written
        );
        let Verdict::Rejected(reason) = judge(
            &post,
            "/create-call",
            &response(200, r#"{"error":"no recording user"}"#),
        )
        .unwrap() else {
            panic!("a 200 with an error is a rejection")
        };
        assert!(reason.contains("no recording user"), "{reason}");
        let Verdict::Rejected(reason) = judge(
            &post,
            "/create-deal",
            &response(400, r#"{"errorMessage":"bad amount"}"#),
        )
        .unwrap() else {
            panic!("a 400 is a rejection")
        };
        assert!(
            reason.contains("HTTP 400") && reason.contains("bad amount"),
            "{reason}"
        );
        assert!(judge(&post, "/create-deal", &response(501, "nope")).is_err());
        assert!(
            create_verdict("/create-deal", &response(404, "{}")).is_err(),
            "a missing route is not the record's fault"
        );
    }

    #[test]
    fn only_failures_that_may_hide_a_processed_request_rerun_a_plan() {
        let http = |status| Error::Http {
            method: "POST".into(),
            path: "/create-account".into(),
            status,
            attempts: 1,
            elapsed: std::time::Duration::ZERO,
            body: String::new(),
        };
        assert!(answer_was_lost(&http(500)));
        assert!(answer_was_lost(&http(502)));
        assert!(!answer_was_lost(&http(404)));
        assert!(!answer_was_lost(&Error::config("x")));
    }
}
