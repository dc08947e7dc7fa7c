//! The write endpoints: CRM accounts, contacts and deals keyed by `crm_id`, and uploaded
//! calls keyed by `source_id`. What they store is inspectable through [`WriteStore`], with
//! counters that let tests spot duplicates and replays.
//!
//! The store keeps each object as written; the API's answers show it in Clari's lossy read
//! shape instead ([`ReadShape`]), so that a client comparing what it wrote with what it reads
//! back meets the same differences it would meet against the real API.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use fastrand::Rng;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::data::{uuid, uuid_string};
use super::query::Params;
use super::reply::{ApiError, ok_json};

/// The `APICallType` values `create-call` accepts.
const API_CALL_TYPES: [&str; 5] = [
    "RECORDING",
    "VENDASTA",
    "KNOWLARITY",
    "CALL_HIPPO",
    "RINGOVER",
];

/// Per-object-type operation counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub accounts: usize,
    pub contacts: usize,
    pub deals: usize,
    pub calls: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.accounts + self.contacts + self.deals + self.calls
    }
}

/// A snapshot of what the write endpoints stored.
#[derive(Clone, Debug, Default)]
pub struct WriteStore {
    /// Accounts by `crm_id` (the latest create or update wins; see `duplicate_creates`).
    pub accounts: BTreeMap<String, Value>,
    pub contacts: BTreeMap<String, Value>,
    pub deals: BTreeMap<String, Value>,
    /// Uploaded calls by `source_id`: the request body plus the assigned `call_id`.
    pub calls: BTreeMap<String, Value>,
    /// Successful creates (create-call overwrites count as updates).
    pub creates: Counts,
    pub updates: Counts,
    pub deletes: Counts,
    /// Creates refused because the key (`crm_id`, or `source_id` without
    /// `force_overwrite_old_call`) already existed. The real API's answer there is
    /// undocumented; the sandbox models the strict case (HTTP 400 "already exists", nothing
    /// stored) and counts each refusal here, so a test can still detect a connector that
    /// creates where it should update.
    pub duplicate_creates: Counts,
}

/// The CRM object families, which share their four routes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CrmKind {
    Account,
    Contact,
    Deal,
}

impl CrmKind {
    pub(crate) const ALL: [CrmKind; 3] = [CrmKind::Account, CrmKind::Contact, CrmKind::Deal];

    /// The path suffix: `/create-<name>`, `/get-<name>`, ...
    pub(crate) fn name(self) -> &'static str {
        match self {
            CrmKind::Account => "account",
            CrmKind::Contact => "contact",
            CrmKind::Deal => "deal",
        }
    }

    fn objects(self, store: &mut WriteStore) -> &mut BTreeMap<String, Value> {
        match self {
            CrmKind::Account => &mut store.accounts,
            CrmKind::Contact => &mut store.contacts,
            CrmKind::Deal => &mut store.deals,
        }
    }

    /// How the API shows this kind (see [`ReadShape`]).
    fn shape(self) -> &'static ReadShape {
        match self {
            CrmKind::Account => &ReadShape {
                shown: &[
                    "crm_id",
                    "name",
                    "phones",
                    "description",
                    "website",
                    "address",
                    "city",
                    "state",
                    "country",
                    "zip",
                ],
                derived: &[Derived::PhoneNorms, Derived::PhoneSuffixes],
            },
            CrmKind::Contact => &ReadShape {
                shown: &[
                    "crm_id",
                    "first_name",
                    "last_name",
                    "job_title",
                    "phones",
                    "stage",
                    "reason",
                ],
                derived: &[
                    Derived::AccountId,
                    Derived::PhoneNorms,
                    Derived::PhoneSuffixes,
                ],
            },
            CrmKind::Deal => &ReadShape {
                shown: &[
                    "crm_id",
                    "owner_crm_id",
                    "deal_name",
                    "amount",
                    "close_date",
                    "created_date",
                    "last_contacted",
                    "next_call_date",
                    "stage",
                    "probability",
                    "forecast_category",
                    "stage_change_history",
                    "close_date_change_history",
                    "deal_reason",
                ],
                derived: &[Derived::AccountId],
            },
        }
    }

    fn count(self, counts: &mut Counts) -> &mut usize {
        match self {
            CrmKind::Account => &mut counts.accounts,
            CrmKind::Contact => &mut counts.contacts,
            CrmKind::Deal => &mut counts.deals,
        }
    }
}

/// How the API shows a stored CRM object: not as it was written. The reference's one observed
/// answer (update-contact, §7.2) shows the Copilot `id`, a fixed set of fields with `null` for
/// the empty ones, read-only fields derived from others (`account_id`, `phone_norms`,
/// `phone_suffixes`), and nothing of `emails`, `is_lead`, `custom_fields` or `account_crm_id`.
/// The sandbox answers every kind that way: `custom_fields` and the account's CRM id are hidden
/// for every kind that has them, fields the API does not know are never shown, dates come back
/// in UTC with milliseconds and amounts as the shortest decimal of their number.
pub(crate) struct ReadShape {
    /// The stored fields the answer shows, in order; absent or empty ones as `null`.
    shown: &'static [&'static str],
    /// The read-only fields the answer adds.
    derived: &'static [Derived],
}

/// A read-only field computed from the stored object.
#[derive(Clone, Copy)]
enum Derived {
    /// The Copilot `id` of the account named by `account_crm_id`, `null` if there is none.
    AccountId,
    /// The digits of each phone number.
    PhoneNorms,
    /// The last four digits of each phone number.
    PhoneSuffixes,
}

/// Fields holding a date-time, at any depth (the deal histories' entries included).
const DATE_FIELDS: [&str; 6] = [
    "close_date",
    "created_date",
    "last_contacted",
    "next_call_date",
    "date_changed",
    "prev_close_date",
];

/// Fields holding an amount typed as a string.
const AMOUNT_FIELDS: [&str; 2] = ["amount", "probability"];

/// A stored value as the API shows it: empty lists as `null`, dates in UTC with milliseconds,
/// amounts re-printed from their number (`"1000.50"` shows as `"1000.5"`), at any depth.
fn shown_value(field: &str, value: &Value) -> Value {
    match value {
        Value::Array(items) if items.is_empty() => Value::Null,
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| shown_value(field, item)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), shown_value(key, value)))
                .collect(),
        ),
        Value::String(text) if DATE_FIELDS.contains(&field) => shown_date(text),
        Value::String(text) if AMOUNT_FIELDS.contains(&field) => match text.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => Value::String(number.to_string()),
            _ => value.clone(),
        },
        _ => value.clone(),
    }
}

/// A date-time as the API prints it: UTC with milliseconds (unparseable text as it is).
fn shown_date(text: &str) -> Value {
    match text.parse::<Timestamp>() {
        Ok(instant) => Value::String(format!("{instant:.3}")),
        Err(_) => Value::String(text.to_owned()),
    }
}

/// The phone numbers of a stored object, mapped by `f` (`null` when it has none).
fn phones(stored: &Map<String, Value>, f: impl Fn(String) -> String) -> Value {
    let shown: Vec<Value> = strings(stored, "phones")
        .map(|phone| phone.chars().filter(char::is_ascii_digit).collect())
        .map(|digits| Value::String(f(digits)))
        .collect();
    if shown.is_empty() {
        Value::Null
    } else {
        Value::Array(shown)
    }
}

/// The write side's state: the store plus what validation needs.
pub(crate) struct Writes {
    pub store: WriteStore,
    rng: Rng,
    recording_emails: Vec<String>,
}

fn object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request("request body must be a JSON object")),
    }
}

/// A required non-empty string field.
fn required<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{field} is required")))
}

fn strings<'a>(body: &'a Map<String, Value>, field: &str) -> impl Iterator<Item = &'a str> {
    body.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

impl Writes {
    pub(crate) fn new(seed: u64, recording_emails: Vec<String>) -> Writes {
        Writes {
            store: WriteStore::default(),
            rng: Rng::with_seed(seed ^ 0x5752_4954_4553),
            recording_emails,
        }
    }

    /// A 24-hex Copilot id, like a Mongo ObjectId.
    fn object_id(&mut self) -> String {
        format!("{:024x}", self.rng.u128(..1 << 96))
    }

    /// `stored` as the API shows it: see [`ReadShape`].
    fn shown(&self, kind: CrmKind, stored: &Value) -> Value {
        let empty = Map::new();
        let stored = stored.as_object().unwrap_or(&empty);
        let shape = kind.shape();
        let mut answer = Map::new();
        answer.insert(
            "id".to_owned(),
            stored.get("id").cloned().unwrap_or(Value::Null),
        );
        for field in shape.shown {
            let value = stored
                .get(*field)
                .map_or(Value::Null, |value| shown_value(field, value));
            answer.insert((*field).to_owned(), value);
        }
        for derived in shape.derived {
            let (name, value) = match derived {
                Derived::AccountId => (
                    "account_id",
                    stored
                        .get("account_crm_id")
                        .and_then(Value::as_str)
                        .and_then(|crm_id| self.store.accounts.get(crm_id))
                        .and_then(|account| account.get("id").cloned())
                        .unwrap_or(Value::Null),
                ),
                Derived::PhoneNorms => ("phone_norms", phones(stored, |digits| digits)),
                Derived::PhoneSuffixes => (
                    "phone_suffixes",
                    phones(stored, |digits| {
                        digits[digits.len().saturating_sub(4)..].to_owned()
                    }),
                ),
            };
            answer.insert(name.to_owned(), value);
        }
        Value::Object(answer)
    }

    /// A 200 answer showing `stored` in the read shape.
    fn answer(&self, kind: CrmKind, stored: &Value) -> Response {
        ok_json(&self.shown(kind, stored))
    }

    /// Stores a new object; an existing `crm_id` is refused with 400 "already exists" (and
    /// counted in `duplicate_creates`), the object left as it was.
    pub(crate) fn create(&mut self, kind: CrmKind, body: &Bytes) -> Result<Response, ApiError> {
        let mut body = object(body)?;
        let crm_id = required(&body, "crm_id")?.to_owned();
        if kind.objects(&mut self.store).contains_key(&crm_id) {
            *kind.count(&mut self.store.duplicate_creates) += 1;
            return Err(ApiError::bad_request(format!(
                "{} with crm_id {crm_id} already exists",
                kind.name()
            )));
        }
        body.insert("id".to_owned(), Value::String(self.object_id()));
        let value = Value::Object(body);
        kind.objects(&mut self.store).insert(crm_id, value.clone());
        *kind.count(&mut self.store.creates) += 1;
        Ok(self.answer(kind, &value))
    }

    pub(crate) fn get(&mut self, kind: CrmKind, uri: &Uri) -> Result<Response, ApiError> {
        let params = Params::from_uri(uri)?;
        let id = params
            .get("id")
            .ok_or_else(|| ApiError::bad_request("id is required"))?;
        let stored = kind
            .objects(&mut self.store)
            .get(id)
            .cloned()
            .ok_or_else(ApiError::not_found)?;
        Ok(self.answer(kind, &stored))
    }

    /// Merges the body's fields into the object named by the body's `crm_id` or, when
    /// `replace` (see [`super::Faults::set_update_replaces`]), replaces the object with the
    /// body. Either way the Copilot `id` stays the one assigned at creation.
    pub(crate) fn update(
        &mut self,
        kind: CrmKind,
        body: &Bytes,
        replace: bool,
    ) -> Result<Response, ApiError> {
        let body = object(body)?;
        let crm_id = required(&body, "crm_id")?;
        let Some(Value::Object(stored)) = kind.objects(&mut self.store).get_mut(crm_id) else {
            return Err(ApiError::not_found());
        };
        if replace {
            stored.retain(|key, _| key == "id");
        }
        for (key, value) in body.into_iter().filter(|(key, _)| key != "id") {
            stored.insert(key, value);
        }
        let updated = Value::Object(stored.clone());
        *kind.count(&mut self.store.updates) += 1;
        Ok(self.answer(kind, &updated))
    }

    /// Deletes by the JSON body's `id` (the CRM id) and answers the last snapshot, shown.
    pub(crate) fn delete(&mut self, kind: CrmKind, body: &Bytes) -> Result<Response, ApiError> {
        let body = object(body)?;
        let id = required(&body, "id")?;
        let removed = kind
            .objects(&mut self.store)
            .remove(id)
            .ok_or_else(ApiError::not_found)?;
        *kind.count(&mut self.store.deletes) += 1;
        Ok(self.answer(kind, &removed))
    }

    /// `POST /create-call`: validates like the spec describes, then stores by `source_id`.
    pub(crate) fn create_call(&mut self, body: &Bytes) -> Result<Response, ApiError> {
        let mut body = object(body)?;
        let source_id = required(&body, "source_id")?.to_owned();
        let call_time = required(&body, "call_time")?;
        let kind = required(&body, "type")?;
        required(&body, "audio_url")?;
        if call_time.parse::<Timestamp>().is_err() {
            return Err(ApiError::bad_request(format!(
                "call_time must be an RFC 3339 date-time, got {call_time:?}"
            )));
        }
        if !API_CALL_TYPES.contains(&kind) {
            return Err(ApiError::bad_request(format!(
                "type must be one of {}",
                API_CALL_TYPES.join(", ")
            )));
        }
        let recording_user = strings(&body, "user_emails")
            .any(|email| self.recording_emails.iter().any(|e| e == email))
            || strings(&body, "source_user_ids").any(|id| !id.is_empty());
        if !recording_user {
            return Err(ApiError::with_body(
                StatusCode::BAD_REQUEST,
                json!({ "error": "no recording user" }),
            ));
        }
        let overwrite = body.get("force_overwrite_old_call") == Some(&Value::Bool(true));
        let exists = self.store.calls.contains_key(&source_id);
        if exists && !overwrite {
            self.store.duplicate_creates.calls += 1;
            return Err(ApiError::with_body(
                StatusCode::BAD_REQUEST,
                json!({ "error": "call with source_id already exists" }),
            ));
        }
        let call_id = uuid_string(&uuid(&mut self.rng));
        body.insert("call_id".to_owned(), Value::String(call_id.clone()));
        self.store.calls.insert(source_id, Value::Object(body));
        let counts = if exists {
            &mut self.store.updates
        } else {
            &mut self.store.creates
        };
        counts.calls += 1;
        Ok(ok_json(&json!({ "call_id": call_id })))
    }

    /// The uploaded calls with one of these `source_id`s, as a `/calls` listing shows a call
    /// (`time` in UTC with milliseconds, no signed `audio_url`, the users resolved elsewhere).
    pub(crate) fn uploaded_calls(&self, source_ids: &[&str]) -> Vec<Value> {
        source_ids
            .iter()
            .filter_map(|id| self.store.calls.get(*id))
            .map(|call| {
                let field = |name: &str| call.get(name).cloned().unwrap_or(Value::Null);
                json!({
                    "id": field("call_id"),
                    "source_id": field("source_id"),
                    "title": field("title"),
                    "type": field("type"),
                    "time": call.get("call_time").and_then(Value::as_str).map(shown_date),
                    "status": "POST_PROCESSING_DONE",
                    "audio_url": null,
                    "users": [],
                })
            })
            .collect()
    }
}
