//! The source's state: reading what the platform hands back (`--state`), and the blobs this
//! source checkpoints. This is the one place the state schema is decided; `docs/source.md`
//! writes it down.
//!
//! - Streams without a cursor checkpoint `{"__ab_no_cursor_state_message": true}`.
//! - `calls` and `call-details` checkpoint a [`CursorState`]:
//!   `{"last_modified_time": "<instant>", "config": {...}, "pending_details": [...]}`.
//!   The cursor means "every call modified before this instant was emitted". It is always a
//!   window bound, never a record's value, so it can never claim a record that was not read.
//!
//! A `--state` this source cannot use is refused rather than ignored: ignoring it would start
//! the streams over, spending the weekly quota, or pass what the state was meant to hold.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::streams::{self, StreamDef};
use crate::error::{Error, Result};

/// The key of the blob full-refresh streams checkpoint with (the Python CDK's convention).
const NO_CURSOR_KEY: &str = "__ab_no_cursor_state_message";

/// The keys the state of a stream with a cursor may hold: the cursor, what the state was built
/// with (`config`), the calls whose details must be fetched again (`pending_details`) and a
/// page size learned from the API (`page_size`). Every cursor stream of this source follows
/// `last_modified_time`.
const CURSOR_STATE_KEYS: [&str; 4] = [
    "last_modified_time",
    "config",
    "pending_details",
    "page_size",
];

/// The keys a state this source wrote for `def` may hold. A non-empty state with none of them
/// was written by something else.
pub fn known_keys(def: &StreamDef) -> &'static [&'static str] {
    match def.cursor {
        Some(_) => &CURSOR_STATE_KEYS,
        None => &[NO_CURSOR_KEY],
    }
}

/// The blob full-refresh streams checkpoint with.
pub fn no_cursor_blob() -> Value {
    json!({ NO_CURSOR_KEY: true })
}

/// The state of a stream with a cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CursorState {
    /// Epoch milliseconds: every record modified before this instant was emitted.
    pub cursor: Option<i64>,
    /// The settings the state was built with, so that a later change of them can be acted
    /// on. States written before this was recorded carry none.
    pub built_with: Option<BuiltWith>,
    /// `call-details`: calls whose details could not be fetched (Clari kept answering 502),
    /// tried again on every sync until they are.
    pub pending_details: Vec<String>,
    /// The page size the last sync settled on (the largest that Clari answered), where the
    /// next sync starts.
    pub page_size: Option<u32>,
}

/// The settings that decide which records a cursor stream's state covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltWith {
    /// `start_date` in the API's format, or null for the whole history.
    pub start_date: Option<String>,
    /// `call-details` only: the statuses whose details were fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_details_statuses: Option<Vec<String>>,
}

impl BuiltWith {
    /// `start_date` in epoch milliseconds (0 for none: the whole history).
    pub fn start_millis(&self) -> i64 {
        self.start_date
            .as_deref()
            .and_then(parse_instant)
            .unwrap_or(0)
    }
}

impl CursorState {
    /// The state of `stream` in `input`, whose cursor is under `field`.
    pub fn read(input: &InputState, stream: &str, field: &str) -> Result<Self> {
        let cursor = input.cursor(stream, field)?;
        let blob = input.blobs.get(stream);
        let built_with = match blob.and_then(|b| b.get("config")) {
            None | Some(Value::Null) => None,
            Some(value) => Some(serde_json::from_value(value.clone()).map_err(|e| {
                Error::input(
                    "state",
                    format!("the {stream} state's \"config\" = {value} is not one this source wrote ({e})"),
                )
            })?),
        };
        let pending_details = match blob.and_then(|b| b.get("pending_details")) {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
                Error::input(
                    "state",
                    format!("the {stream} state's \"pending_details\" = {value} is not a list of call ids ({e})"),
                )
            })?,
        };
        let page_size = match blob.and_then(|b| b.get("page_size")) {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        Error::input(
                            "state",
                            format!("the {stream} state's \"page_size\" = {value} is not a positive integer"),
                        )
                    })?,
            ),
        };
        Ok(Self {
            cursor,
            built_with,
            pending_details,
            page_size,
        })
    }

    /// The blob to checkpoint, with the cursor under `field`.
    pub fn blob(&self, field: &str) -> Value {
        let mut blob = Map::new();
        if let Some(cursor) = self.cursor {
            blob.insert(field.to_owned(), Value::String(format_millis(cursor)));
        }
        if let Some(built_with) = &self.built_with {
            blob.insert("config".to_owned(), json!(built_with));
        }
        if !self.pending_details.is_empty() {
            blob.insert("pending_details".to_owned(), json!(self.pending_details));
        }
        if let Some(page_size) = self.page_size {
            blob.insert("page_size".to_owned(), json!(page_size));
        }
        Value::Object(blob)
    }
}

/// The checkpoint rule of a cursor stream, the one place that decides what a checkpoint claims
/// and whether it is emitted. A checkpoint says "every record modified before the cursor was
/// emitted", so:
/// - it claims the upper bound of a **completed closed window** only: the open tail of a full
///   refresh has no bound, and a window still being read may yet hold unread records;
/// - once the whole read finished, it claims `hi`, the read's own upper bound;
/// - it **never moves back** below what the input state (or an earlier checkpoint) claimed:
///   a lookback re-reads windows below it, whose records an earlier sync already emitted;
/// - it **never passes the API's clock** less the indexing margin: when the API's clock is
///   behind this machine's (`server_skew` negative), `hi` is lowered by that much, so a call
///   the API indexes late is still ahead of the state;
/// - a read that claimed nothing checkpoints where it started (`lo`);
/// - the last checkpoint is **not repeated**: one equal to the previous with no record since
///   says nothing new.
pub struct Checkpoints {
    field: &'static str,
    lo: i64,
    hi: i64,
    state: CursorState,
    last: Option<Value>,
}

impl Checkpoints {
    /// The checkpoints of a read of `[lo, hi)` from `prior`, recording `built_with`, with the
    /// cursor under `field`.
    pub fn new(
        field: &'static str,
        prior: CursorState,
        built_with: BuiltWith,
        (lo, hi): (i64, i64),
    ) -> Self {
        Self {
            field,
            lo,
            hi,
            state: CursorState {
                built_with: Some(built_with),
                ..prior
            },
            last: None,
        }
    }

    /// The checkpoint for a completed window ending at `window_hi` (`None` for the open tail,
    /// which has none), with the details owed and the page size so far.
    pub fn window_completed(
        &mut self,
        window_hi: Option<i64>,
        server_skew: Option<i64>,
        owed_details: &[String],
        page_size: u32,
    ) -> Option<Value> {
        let bound = window_hi?;
        self.claim(bound, server_skew);
        self.state.pending_details = owed_details.to_vec();
        self.state.page_size = Some(page_size);
        Some(self.emit())
    }

    /// The last checkpoint of the read, `None` when it repeats the previous one and no record
    /// was emitted since. `finished` says every window was read (not stopped by a budget).
    pub fn read_ended(
        &mut self,
        finished: bool,
        server_skew: Option<i64>,
        owed_details: Vec<String>,
        page_size: u32,
        records_since_last: u64,
    ) -> Option<Value> {
        if finished {
            self.claim(self.hi, server_skew);
        }
        self.state.pending_details = owed_details;
        self.state.page_size = Some(page_size);
        self.state.cursor = self.state.cursor.or(Some(self.lo));
        let repeated = records_since_last == 0 && self.last == Some(self.state.blob(self.field));
        (!repeated).then(|| self.emit())
    }

    /// Moves the cursor up to `bound`, capped at the API's clock less the margin.
    fn claim(&mut self, bound: i64, server_skew: Option<i64>) {
        let claimable = bound.min(self.hi + server_skew.unwrap_or(0).min(0));
        self.state.cursor = self.state.cursor.max(Some(claimable));
    }

    fn emit(&mut self) -> Value {
        let blob = self.state.blob(self.field);
        self.last = Some(blob.clone());
        blob
    }
}

/// `2025-06-11T14:53:06.310Z`: the API's own format, with milliseconds.
pub fn format_millis(millis: i64) -> String {
    Timestamp::from_millisecond(millis)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn parse_instant(text: &str) -> Option<i64> {
    text.parse::<Timestamp>()
        .ok()
        .map(Timestamp::as_millisecond)
}

/// Per-stream state blobs from the `--state` file, keyed by stream name.
#[derive(Debug, Default)]
pub struct InputState {
    blobs: HashMap<String, Value>,
}

impl InputState {
    /// Accepts every shape the platform, PyAirbyte and CAT send: nothing, `null`, `{}`, `[]`,
    /// an array of STREAM/GLOBAL/LEGACY messages, or a bare legacy object keyed by stream.
    /// States of streams this source does not have are ignored (a catalog can change), but a
    /// legacy object naming none of its streams, or a stream state holding none of that
    /// stream's [`known_keys`], is refused: this source did not write it.
    pub fn from_value(value: &Value) -> Result<Self> {
        let mut state = InputState::default();
        state.add(value).map_err(|problem| {
            Error::input(
                "state",
                format!(
                    "{problem}, so this source did not write it. Accepted: an array of STREAM, \
                     GLOBAL or LEGACY state messages, or an object keyed by stream name ({}). To \
                     start over, clear the connection's state (reset).",
                    streams::STREAMS.map(|def| def.name).join(", ")
                ),
            )
        })?;
        Ok(state)
    }

    fn add(&mut self, value: &Value) -> std::result::Result<(), String> {
        match value {
            Value::Null => Ok(()),
            Value::Array(messages) => {
                messages
                    .iter()
                    .enumerate()
                    .try_for_each(|(index, message)| {
                        self.add_message(message).map_err(|problem| {
                            format!("entry {index} of the state array: {problem}")
                        })
                    })
            }
            Value::Object(legacy) => self.add_legacy(legacy),
            other => Err(format!("it is {other}, neither an array nor an object")),
        }
    }

    /// A legacy state: one blob per stream name. Keys naming no stream of this source are
    /// ignored, unless none of the keys names one.
    fn add_legacy(&mut self, legacy: &Map<String, Value>) -> std::result::Result<(), String> {
        let known: Vec<(&StreamDef, &Value)> = legacy
            .iter()
            .filter_map(|(name, blob)| Some((streams::find(name)?, blob)))
            .collect();
        if known.is_empty() && !legacy.is_empty() {
            return Err("no key of the object names a stream of this source".into());
        }
        known
            .into_iter()
            .try_for_each(|(def, blob)| self.add_stream(def, blob))
    }

    fn add_message(&mut self, message: &Value) -> std::result::Result<(), String> {
        let object = message.as_object().ok_or("it is not an object")?;
        if let Some(stream) = object.get("stream").filter(|s| !s.is_null()) {
            self.add_stream_state(stream)
        } else if let Some(global) = object.get("global").filter(|g| !g.is_null()) {
            let streams = global
                .get("stream_states")
                .and_then(Value::as_array)
                .ok_or("it is a GLOBAL state without stream_states")?;
            streams.iter().try_for_each(|s| self.add_stream_state(s))
        } else if let Some(Value::Object(legacy)) = object.get("data") {
            self.add_legacy(legacy)
        } else {
            Err("it has none of \"stream\", \"global\" or \"data\"".into())
        }
    }

    /// A stream state of a STREAM or GLOBAL message. One of a stream this source does not have
    /// is ignored.
    fn add_stream_state(&mut self, stream: &Value) -> std::result::Result<(), String> {
        let name = stream
            .pointer("/stream_descriptor/name")
            .and_then(Value::as_str)
            .ok_or("a stream state has no stream_descriptor.name")?;
        match streams::find(name) {
            Some(def) => self.add_stream(def, stream.get("stream_state").unwrap_or(&Value::Null)),
            None => Ok(()),
        }
    }

    /// One stream's blob: `null` or `{}` starts the stream over; anything else must be an
    /// object holding one of the stream's [`known_keys`].
    fn add_stream(&mut self, def: &StreamDef, blob: &Value) -> std::result::Result<(), String> {
        let name = def.name;
        match blob {
            Value::Null => Ok(()),
            Value::Object(keys) if keys.is_empty() => Ok(()),
            Value::Object(keys) if known_keys(def).iter().any(|key| keys.contains_key(*key)) => {
                self.blobs.insert(name.to_owned(), blob.clone());
                Ok(())
            }
            Value::Object(_) => Err(format!(
                "the state of stream {name:?} has none of the keys {}",
                known_keys(def).join(", ")
            )),
            other => Err(format!(
                "the state of stream {name:?} is not an object: {other}"
            )),
        }
    }

    /// The cursor of `stream`, in epoch milliseconds, if its state has one. A cursor that is
    /// present but unreadable is an error: silently restarting would re-read, or worse skip.
    pub fn cursor(&self, stream: &str, field: &str) -> Result<Option<i64>> {
        let Some(value) = self.blobs.get(stream).and_then(|blob| blob.get(field)) else {
            return Ok(None);
        };
        match value {
            Value::Null => Ok(None),
            Value::String(text) => parse_instant(text).map(Some).ok_or_else(|| {
                Error::input(
                    "state",
                    format!(
                        "the {stream} cursor {field:?} = {text:?} is not an RFC 3339 date-time"
                    ),
                )
            }),
            other => Err(Error::input(
                "state",
                format!("the {stream} cursor {field:?} = {other} is not a string"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_empty_shape_means_no_state() {
        for empty in [json!(null), json!({}), json!([])] {
            let state = InputState::from_value(&empty).unwrap();
            assert_eq!(state.cursor("calls", "last_modified_time").unwrap(), None);
        }
    }

    #[test]
    fn stream_states_are_matched_by_name_even_without_type() {
        let value = json!([{"stream": {"stream_descriptor": {"name": "calls"},
            "stream_state": {"last_modified_time": "2025-06-11T14:53:06.310Z"}}}]);
        let state = InputState::from_value(&value).unwrap();
        assert_eq!(
            state.cursor("calls", "last_modified_time").unwrap(),
            Some(parse_instant("2025-06-11T14:53:06.310Z").unwrap())
        );
    }

    #[test]
    fn global_and_legacy_states_are_understood() {
        let global = json!([{"type": "GLOBAL", "global": {"stream_states": [
            {"stream_descriptor": {"name": "calls"}, "stream_state": {"last_modified_time": "2024-01-01T00:00:00Z"}}]}}]);
        assert!(
            InputState::from_value(&global)
                .unwrap()
                .cursor("calls", "last_modified_time")
                .unwrap()
                .is_some()
        );
        let legacy = json!({"calls": {"last_modified_time": "2024-01-01T00:00:00Z"}});
        assert!(
            InputState::from_value(&legacy)
                .unwrap()
                .cursor("calls", "last_modified_time")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn an_unreadable_cursor_is_a_config_error_naming_the_stream() {
        let value = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "calls"},
            "stream_state": {"last_modified_time": "last tuesday"}}}]);
        let err = InputState::from_value(&value)
            .unwrap()
            .cursor("calls", "last_modified_time")
            .unwrap_err();
        assert!(
            err.to_string().contains("calls") && err.to_string().contains("last tuesday"),
            "{err}"
        );
        assert!(InputState::from_value(&json!("text")).is_err());
        assert!(InputState::from_value(&json!([{"type": "STREAM"}])).is_err());
    }

    /// The user-facing message of a refused state.
    fn refusal(value: &Value) -> String {
        let err = InputState::from_value(value).unwrap_err();
        assert_eq!(
            err.failure_type(),
            crate::protocol::FailureType::ConfigError
        );
        err.user_message()
    }

    #[test]
    fn an_object_naming_no_stream_of_this_source_is_refused_with_the_accepted_shapes() {
        for value in [
            json!({"cursor": "2024-01-01T00:00:00Z"}),
            json!({"foo": {"last_modified_time": "2024-01-01T00:00:00Z"}}),
            // One STREAM message, not wrapped in an array.
            json!({"type": "STREAM", "stream": {"stream_descriptor": {"name": "calls"},
                "stream_state": {"last_modified_time": "2024-01-01T00:00:00Z"}}}),
            json!([{"type": "LEGACY", "data": {"cursor": "2024-01-01T00:00:00Z"}}]),
        ] {
            let message = refusal(&value);
            for needle in [
                "The state is invalid",
                "no key of the object names a stream of this source",
                "STREAM, GLOBAL or LEGACY",
                "(calls, call-details, users, topics, scorecard, scorecard-template)",
                "reset",
            ] {
                assert!(message.contains(needle), "{value}: {message}");
            }
        }
        let mixed = json!({"calls": {"last_modified_time": "2024-01-01T00:00:00Z"}, "foo": 1});
        assert!(
            InputState::from_value(&mixed)
                .unwrap()
                .cursor("calls", "last_modified_time")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_stream_state_with_none_of_its_keys_is_refused_but_an_empty_one_starts_over() {
        let stream = |name: &str, blob: Value| json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": blob}}]);
        let global = |blob: Value| {
            json!([{"type": "GLOBAL", "global": {"stream_states": [
                {"stream_descriptor": {"name": "calls"}, "stream_state": blob}]}}])
        };
        let cursor = json!({"cursor": "2024-01-01T00:00:00Z"});
        let camel = json!({"lastModifiedTime": "2024-01-01T00:00:00Z"});
        for value in [
            stream("calls", cursor.clone()),
            stream("call-details", camel.clone()),
            global(cursor.clone()),
            json!({"calls": camel}),
            json!({"calls": "2024-01-01T00:00:00Z"}),
        ] {
            let message = refusal(&value);
            assert!(
                message.contains("of stream \"calls\"")
                    || message.contains("of stream \"call-details\""),
                "{value}: {message}"
            );
            assert!(message.contains("reset"), "{value}: {message}");
        }
        assert!(
            refusal(&stream("calls", cursor)).contains(
                "none of the keys last_modified_time, config, pending_details, page_size"
            )
        );
        assert!(refusal(&stream("users", json!({"done": true}))).contains(NO_CURSOR_KEY));

        for empty in [
            stream("calls", json!({})),
            json!({"calls": {}, "users": null}),
        ] {
            let state = InputState::from_value(&empty).unwrap();
            assert_eq!(state.cursor("calls", "last_modified_time").unwrap(), None);
        }
    }

    #[test]
    fn states_of_streams_this_source_lacks_are_ignored_in_message_arrays() {
        let value = json!([
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "deals"}, "stream_state": 5}},
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "calls"},
                "stream_state": {"last_modified_time": "2024-01-01T00:00:00Z"}}},
        ]);
        let state = InputState::from_value(&value).unwrap();
        assert!(
            state
                .cursor("calls", "last_modified_time")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn every_state_this_source_writes_holds_one_of_its_known_keys() {
        for def in &streams::STREAMS {
            let blob = match def.cursor {
                Some(cursor) => {
                    assert_eq!(known_keys(def)[0], cursor, "{}", def.name);
                    CursorState {
                        cursor: Some(0),
                        ..CursorState::default()
                    }
                    .blob(cursor)
                }
                None => no_cursor_blob(),
            };
            let legacy = json!({ def.name: blob });
            assert!(InputState::from_value(&legacy).is_ok(), "{legacy}");
        }
        let pending_only = json!({"call-details": {"pending_details": ["a"]}});
        assert!(InputState::from_value(&pending_only).is_ok());
    }

    #[test]
    fn a_cursor_state_round_trips_with_its_config_and_owed_details() {
        let state = CursorState {
            cursor: Some(parse_instant("2025-06-11T14:53:06.310Z").unwrap()),
            built_with: Some(BuiltWith {
                start_date: Some("2024-01-01T00:00:00.000Z".to_owned()),
                call_details_statuses: Some(vec!["POST_PROCESSING_DONE".to_owned()]),
            }),
            pending_details: vec!["c1".to_owned()],
            page_size: Some(48),
        };
        let blob = state.blob("last_modified_time");
        assert_eq!(
            blob,
            json!({"last_modified_time": "2025-06-11T14:53:06.310Z",
                "config": {"start_date": "2024-01-01T00:00:00.000Z", "call_details_statuses": ["POST_PROCESSING_DONE"]},
                "pending_details": ["c1"], "page_size": 48})
        );
        let input = InputState::from_value(&json!({ "call-details": blob })).unwrap();
        assert_eq!(
            CursorState::read(&input, "call-details", "last_modified_time").unwrap(),
            state
        );
        let old = InputState::from_value(
            &json!({"calls": {"last_modified_time": "2025-06-11T14:53:06.310Z"}}),
        )
        .unwrap();
        let read = CursorState::read(&old, "calls", "last_modified_time").unwrap();
        assert_eq!(
            (read.built_with, read.pending_details.len()),
            (None, 0),
            "a state written before the config was recorded"
        );
    }

    const FIELD: &str = "last_modified_time";

    fn cursor_of(blob: &Value) -> i64 {
        parse_instant(blob[FIELD].as_str().unwrap()).unwrap()
    }

    fn checkpoints(prior: Option<i64>, lo: i64, hi: i64) -> Checkpoints {
        let prior = CursorState {
            cursor: prior,
            ..CursorState::default()
        };
        let built_with = BuiltWith {
            start_date: None,
            call_details_statuses: None,
        };
        Checkpoints::new(FIELD, prior, built_with, (lo, hi))
    }

    #[test]
    fn a_checkpoint_claims_a_closed_window_s_bound_and_never_the_open_tail() {
        let mut checkpoints = checkpoints(None, 0, 1_000);
        let blob = checkpoints
            .window_completed(Some(400), None, &[], 50)
            .unwrap();
        assert_eq!(cursor_of(&blob), 400);
        assert_eq!(blob["page_size"], json!(50));
        assert!(checkpoints.window_completed(None, None, &[], 50).is_none());
    }

    #[test]
    fn a_checkpoint_never_moves_below_the_prior_state() {
        let mut checkpoints = checkpoints(Some(900), 500, 1_000);
        let blob = checkpoints
            .window_completed(Some(600), None, &[], 50)
            .unwrap();
        assert_eq!(
            cursor_of(&blob),
            900,
            "a lookback window below the prior state"
        );
    }

    #[test]
    fn a_checkpoint_never_passes_the_api_s_clock_less_the_margin() {
        let mut checkpoints = checkpoints(None, 0, 1_000);
        let blob = checkpoints
            .window_completed(Some(1_000), Some(-300), &[], 50)
            .unwrap();
        assert_eq!(cursor_of(&blob), 700, "the API's clock is 300 ms behind");
        let ahead = checkpoints
            .read_ended(true, Some(5_000), Vec::new(), 50, 1)
            .unwrap();
        assert_eq!(
            cursor_of(&ahead),
            1_000,
            "an API clock ahead raises nothing"
        );
    }

    #[test]
    fn a_finished_read_claims_its_upper_bound_and_a_stopped_one_keeps_its_last_window() {
        let mut finished = checkpoints(None, 0, 1_000);
        let end = finished.read_ended(true, None, Vec::new(), 50, 0).unwrap();
        assert_eq!(cursor_of(&end), 1_000);
        let mut stopped = checkpoints(None, 0, 1_000);
        stopped.window_completed(Some(400), None, &[], 50);
        let end = stopped
            .read_ended(false, None, vec!["c1".to_owned()], 50, 3)
            .unwrap();
        assert_eq!(
            (cursor_of(&end), &end["pending_details"]),
            (400, &json!(["c1"]))
        );
    }

    #[test]
    fn a_read_that_claimed_nothing_checkpoints_where_it_started() {
        let mut checkpoints = checkpoints(None, 250, 1_000);
        let end = checkpoints
            .read_ended(false, None, Vec::new(), 50, 0)
            .unwrap();
        assert_eq!(cursor_of(&end), 250);
    }

    #[test]
    fn the_last_checkpoint_is_not_repeated_unless_records_came_since() {
        let mut quiet = checkpoints(None, 0, 1_000);
        quiet.window_completed(Some(1_000), None, &[], 50);
        assert!(quiet.read_ended(true, None, Vec::new(), 50, 0).is_none());
        let mut busy = checkpoints(None, 0, 1_000);
        busy.window_completed(Some(1_000), None, &[], 50);
        assert!(
            busy.read_ended(true, None, Vec::new(), 50, 2).is_some(),
            "a state carries the count of the records before it"
        );
    }

    #[test]
    fn cursors_round_trip_in_the_api_format() {
        let millis = parse_instant("2025-06-11T14:53:06.31Z").unwrap();
        assert_eq!(format_millis(millis), "2025-06-11T14:53:06.310Z");
        let state = CursorState {
            cursor: Some(0),
            ..CursorState::default()
        };
        assert_eq!(
            state.blob("last_modified_time"),
            json!({"last_modified_time": "1970-01-01T00:00:00.000Z"})
        );
    }
}
