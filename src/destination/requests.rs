//! What one record costs in requests, per sync mode, and what each answer means.
//!
//! | mode | accounts, contacts, deals | calls |
//! |---|---|---|
//! | `append` | `POST /create-<obj>` | `POST /create-call` |
//! | `append_dedup` | `GET /get-<obj>?id=` then `PUT /update-<obj>` unless the answer proves the object unchanged, or `POST /create-<obj>` on 404 | `POST /create-call` with `force_overwrite_old_call: true` |
//! | `update` | `PUT /update-<obj>`; 404 rejects the record | refused at start |
//! | `soft_delete` | `DELETE /delete-<obj>` with `{"id": crm_id}`; 404 means already gone | refused at start |
//!
//! Every request is retried after a 5xx, a timeout or a reset, creates included: a create
//! that did land before its answer was lost is refused on the retry as "already exists", and
//! such a refusal is resolved, never guessed. The object is looked up (`GET /get-<obj>?id=`,
//! for calls `GET /calls?filterSourceId=`) and compared with the record
//! ([`super::compare`]): equal means already present, a shown difference rejects the record
//! (`append` never overwrites). The look-up is spent only on such refusals. In
//! `append_dedup` a lost answer is harmless as well, so the whole plan (look-up included) is
//! run again.
//!
//! An answer is read the way the API documents it: a 2xx is a success unless its body holds
//! a non-empty `error` (create-call's documented field) or `errorMessage` (Clari's error
//! envelope); a gateway's `message` in a 2xx means nothing. A 2xx look-up whose body is such
//! an error is not an object.

use reqwest::Method;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::compare::{Comparison, compare};
use super::objects::{Dedup, Lookup, Object};
use crate::catalog::{destination_schema_ref, validate_destination_record};
use crate::client::{Client, Request, Response};
use crate::error::{Error, Result};
use crate::protocol::DestinationSyncMode;

/// How many times an `append_dedup` plan is run when an answer is lost.
const PLAN_ATTEMPTS: usize = 4;

/// The fields in which the API documents an error, even in a 2xx answer.
const DOCUMENTED_ERROR_FIELDS: [&str; 2] = ["errorMessage", "error"];

/// What became of a record once the API answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The API confirmed the write (or, for a delete, that the record is gone).
    Written,
    /// Not sent: the look-up showed the object already holds every value the record sets.
    Unchanged,
    /// The create was refused because the key exists, and the look-up shows no value of the
    /// record differing: written earlier (a replayed sync, or a retried create that landed).
    AlreadyPresent,
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
            let response = put(client, object, record.body.clone()).await?;
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
        // append, and append_dedup by an overwrite flag: one create.
        _ => match create(client, object, record).await? {
            Created::Done(verdict) => Ok(verdict),
            Created::Exists(refusal) => match look_up(client, object, &record.key).await? {
                Found::Object(shown) => Ok(match compare_with(object, record, &shown) {
                    Comparison::Differs(field) => Verdict::Rejected(format!(
                        "{} {} {:?} already exists in Clari Copilot with another value at \
                         `{field}`, and `append` only creates; choose the `append_dedup` mode \
                         to update existing records",
                        object.singular, object.key, record.key
                    )),
                    Comparison::Same | Comparison::NotShown(_) => Verdict::AlreadyPresent,
                }),
                other => Ok(Verdict::Rejected(unresolved(
                    object, record, &refusal, other,
                ))),
            },
        },
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
    match look_up(client, object, &record.key).await? {
        Found::Object(shown) => update_over(client, object, record, &shown).await,
        Found::Refused(reason) => Ok(Verdict::Rejected(reason)),
        Found::Missing => match create(client, object, record).await? {
            Created::Done(verdict) => Ok(verdict),
            // Created since the look-up (by a lost answer's create, or another writer).
            Created::Exists(refusal) => match look_up(client, object, &record.key).await? {
                Found::Object(shown) => update_over(client, object, record, &shown).await,
                other => Ok(Verdict::Rejected(unresolved(
                    object, record, &refusal, other,
                ))),
            },
        },
    }
}

/// Updates the object the look-up showed, unless it proves the object unchanged.
///
/// Whether `PUT /update-<obj>` merges the body into the object or replaces the object is
/// undocumented: the body is the object as shown with the record's fields laid over it, so
/// both give the same result (fields the look-up does not show excepted).
async fn update_over(
    client: &Client,
    object: &Object,
    record: &Prepared,
    shown: &Map<String, Value>,
) -> Result<Verdict> {
    if compare_with(object, record, shown) == Comparison::Same {
        return Ok(Verdict::Unchanged);
    }
    let response = put(client, object, laid_over(object, record, shown)).await?;
    judge(&Method::PUT, &object.path("update"), &response)
}

/// The record's fields laid over the object as shown: the shown `id` and the shown fields
/// the write schema knows (the read-only ones the API adds are left out), then every field
/// of the record. The record's own bytes when it is not an object (it always is, once
/// validated).
fn laid_over(object: &Object, record: &Prepared, shown: &Map<String, Value>) -> Vec<u8> {
    let Ok(fields) = serde_json::from_slice::<Map<String, Value>>(&record.body) else {
        return record.body.clone();
    };
    let writable = destination_schema_ref(object.name).and_then(|s| s["properties"].as_object());
    let mut body: Map<String, Value> = shown
        .iter()
        .filter(|(name, _)| *name == "id" || writable.is_some_and(|p| p.contains_key(*name)))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    body.extend(fields);
    serde_json::to_vec(&body).unwrap_or_else(|_| record.body.clone())
}

/// What comparing the record with the object the look-up showed proves.
fn compare_with(object: &Object, record: &Prepared, shown: &Map<String, Value>) -> Comparison {
    match serde_json::from_slice::<Map<String, Value>>(&record.body) {
        Ok(fields) => compare(object, &fields, shown),
        Err(_) => Comparison::NotShown(String::new()),
    }
}

/// What a look-up of a key found.
enum Found {
    /// The object as the API shows it.
    Object(Map<String, Value>),
    /// No object has the key.
    Missing,
    /// The API answered with an error, quoted.
    Refused(String),
}

/// Finds the object with `key`, by the object's look-up route.
async fn look_up(client: &Client, object: &Object, key: &str) -> Result<Found> {
    let (path, query) = match object.lookup {
        Lookup::Get => (object.path("get"), vec![("id".to_owned(), key.to_owned())]),
        Lookup::Listing {
            path, filter, also, ..
        } => {
            let mut query = vec![(filter.to_owned(), key.to_owned())];
            query.extend(also.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
            (path.to_owned(), query)
        }
    };
    let response = client.execute(Request::get(path.clone(), query)).await?;
    if response.status == 404 {
        return Ok(Found::Missing);
    }
    // A 2xx carrying a documented error, or a 4xx, is the API's refusal, read as any answer.
    if let Verdict::Rejected(reason) = judge(&Method::GET, &path, &response)? {
        return Ok(Found::Refused(reason));
    }
    let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let shown = match object.lookup {
        Lookup::Get => Some(&body),
        Lookup::Listing { list_key, .. } => body[list_key]
            .as_array()
            .and_then(|items| items.iter().find(|item| item[object.key] == key)),
    };
    Ok(match shown {
        Some(Value::Object(found)) => Found::Object(found.clone()),
        None if matches!(object.lookup, Lookup::Listing { .. }) => Found::Missing,
        _ => Found::Refused(format!(
            "Clari Copilot answered GET {path} with something that is not an object: {}",
            response.body_snippet()
        )),
    })
}

/// The rejection reason of a create refused as existing whose object the look-up could not
/// show.
fn unresolved(object: &Object, record: &Prepared, refusal: &Response, found: Found) -> String {
    let refused = api_message(refusal).unwrap_or_else(|| refusal.body_snippet());
    let why = match found {
        Found::Refused(reason) => reason,
        _ => format!("no {} with this key can be found", object.singular),
    };
    format!(
        "Clari Copilot refused to create {} {} {:?} ({refused}), and it cannot be compared \
         with the record: {why}",
        object.singular, object.key, record.key
    )
}

async fn put(client: &Client, object: &Object, body: Vec<u8>) -> Result<Response> {
    let request = Request::json(Method::PUT, object.path("update"), body, true);
    client.execute(request).await
}

/// A create's outcome: a verdict, or the API's refusal because the key exists.
enum Created {
    Done(Verdict),
    Exists(Response),
}

/// One create of the record, retried like any request: a retry whose first attempt landed is
/// answered "already exists", which the caller resolves.
async fn create(client: &Client, object: &Object, record: &Prepared) -> Result<Created> {
    let path = object.path("create");
    let request = Request::json(Method::POST, path.clone(), record.body.clone(), true);
    let response = client.execute(request).await?;
    if refuses_existing_key(&response) {
        return Ok(Created::Exists(response));
    }
    create_verdict(&path, &response).map(Created::Done)
}

/// Whether a create's answer refuses it because the key exists: a 4xx (or a 2xx with a
/// documented error) saying "already exists".
fn refuses_existing_key(response: &Response) -> bool {
    let message = match response.status {
        400..=499 => api_message(response),
        200..=299 => documented_error(response),
        _ => None,
    };
    message.is_some_and(|text| text.to_lowercase().contains("already exists"))
}

/// A create route answering 404 means the route itself is missing (a wrong `base_url`), not
/// that the record is bad.
fn create_verdict(path: &str, response: &Response) -> Result<Verdict> {
    if response.status == 404 {
        return Err(response.error(&Method::POST, path, 1));
    }
    judge(&Method::POST, path, response)
}

/// The meaning of a final answer: 2xx is written unless its body carries a documented error;
/// other 4xx answers reject the record; anything else stops the sync.
fn judge(method: &Method, path: &str, response: &Response) -> Result<Verdict> {
    match response.status {
        200..=299 => Ok(match documented_error(response) {
            Some(error) => Verdict::Rejected(format!(
                "Clari Copilot answered {method} {path} with an error: {error}"
            )),
            None => Verdict::Written,
        }),
        400..=499 => Ok(Verdict::Rejected(rejection(method, path, response))),
        _ => Err(response.error(method, path, 1)),
    }
}

/// The reason a 4xx answer rejects a record, in the API's words when it has any.
fn rejection(method: &Method, path: &str, response: &Response) -> String {
    format!(
        "Clari Copilot answered {method} {path} with HTTP {}: {}",
        response.status,
        api_message(response).unwrap_or_else(|| response.body_snippet())
    )
}

/// An error the API documents in a body: a non-empty `errorMessage` or `error`.
fn documented_error(response: &Response) -> Option<String> {
    message_in(response, &DOCUMENTED_ERROR_FIELDS)
}

/// The words of an error answer: the documented fields, or a gateway's `message`.
fn api_message(response: &Response) -> Option<String> {
    documented_error(response).or_else(|| message_in(response, &["message"]))
}

/// The first of `fields` the body holds, when non-empty.
fn message_in(response: &Response, fields: &[&str]) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    fields.iter().find_map(|field| match &body[field] {
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
        assert_eq!(
            judge(
                &post,
                "/create-deal",
                &response(200, r#"{"id":"x","message":"Created"}"#)
            )
            .unwrap(),
            Verdict::Written,
            "a gateway's `message` is not an error the API documents"
        );
        assert!(judge(&post, "/create-deal", &response(501, "nope")).is_err());
        assert!(
            create_verdict("/create-deal", &response(404, "{}")).is_err(),
            "a missing route is not the record's fault"
        );
    }

    #[test]
    fn only_a_refusal_saying_already_exists_is_resolved_by_a_look_up() {
        assert!(refuses_existing_key(&response(
            400,
            r#"{"errorMessage":"account with crm_id a already exists"}"#
        )));
        assert!(refuses_existing_key(&response(
            400,
            r#"{"error":"call with source_id already exists"}"#
        )));
        assert!(!refuses_existing_key(&response(
            400,
            r#"{"errorMessage":"bad amount"}"#
        )));
        assert!(!refuses_existing_key(&response(
            500,
            r#"{"message":"already exists"}"#
        )));
    }

    #[test]
    fn an_update_body_is_the_shown_object_with_the_record_laid_over_it() {
        let shown = serde_json::json!({"id": "c0", "crm_id": "a-1", "name": "Old", "city": "Lyon",
            "phones": null, "phone_norms": null});
        let record = Prepared {
            key: "a-1".into(),
            body: br#"{"crm_id":"a-1","name":"New","x_custom":1}"#.to_vec(),
        };
        let body = laid_over(object("accounts"), &record, shown.as_object().unwrap());
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"id": "c0", "crm_id": "a-1", "name": "New", "city": "Lyon",
                "phones": null, "x_custom": 1}),
            "read-only fields left out, the record's fields win"
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
