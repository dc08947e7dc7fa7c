//! The source's state: reading what the platform hands back (`--state`), and the blobs this
//! source checkpoints. This is the one place the state schema is decided; `docs/source.md`
//! writes it down.
//!
//! - Streams without a cursor checkpoint `{"__ab_no_cursor_state_message": true}`.
//! - `calls` and `call-details` checkpoint a [`CursorState`]:
//!   `{"last_modified_time": "<instant>", "config": {...}, "pending_details": [...]}`.
//!   The cursor means "every call modified before this instant was emitted". It is always a
//!   window bound, never a record's value, so it can never claim a record that was not read.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// The blob full-refresh streams checkpoint with (the Python CDK's convention).
pub fn no_cursor_blob() -> Value {
    json!({"__ab_no_cursor_state_message": true})
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
        Ok(Self {
            cursor,
            built_with,
            pending_details,
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
        Value::Object(blob)
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
    pub fn from_value(value: &Value) -> Result<Self> {
        let mut state = InputState::default();
        match value {
            Value::Null => {}
            Value::Array(messages) => {
                for (index, message) in messages.iter().enumerate() {
                    state.add_message(message).map_err(|detail| {
                        Error::input(
                            "state",
                            format!("entry {index} of the state array: {detail}"),
                        )
                    })?;
                }
            }
            Value::Object(legacy) => state.add_legacy(legacy),
            other => {
                return Err(Error::input(
                    "state",
                    format!("expected an array of state messages, found {other}"),
                ));
            }
        }
        Ok(state)
    }

    /// A legacy state: one blob per stream name (anything but an object is ignored).
    fn add_legacy(&mut self, legacy: &Map<String, Value>) {
        for (name, blob) in legacy.iter().filter(|(_, blob)| blob.is_object()) {
            self.blobs.insert(name.clone(), blob.clone());
        }
    }

    fn add_message(&mut self, message: &Value) -> std::result::Result<(), String> {
        let object = message.as_object().ok_or("is not an object")?;
        if let Some(stream) = object.get("stream").filter(|s| !s.is_null()) {
            self.add_stream_state(stream)
        } else if let Some(global) = object.get("global").filter(|g| !g.is_null()) {
            let streams = global
                .get("stream_states")
                .and_then(Value::as_array)
                .ok_or("GLOBAL state without stream_states")?;
            streams.iter().try_for_each(|s| self.add_stream_state(s))
        } else if let Some(Value::Object(legacy)) = object.get("data") {
            self.add_legacy(legacy);
            Ok(())
        } else {
            Err("has none of \"stream\", \"global\" or \"data\"".into())
        }
    }

    fn add_stream_state(&mut self, stream: &Value) -> std::result::Result<(), String> {
        let name = stream
            .pointer("/stream_descriptor/name")
            .and_then(Value::as_str)
            .ok_or("a stream state has no stream_descriptor.name")?;
        match stream.get("stream_state") {
            None | Some(Value::Null) => {}
            Some(blob @ Value::Object(_)) => {
                self.blobs.insert(name.to_owned(), blob.clone());
            }
            Some(other) => {
                return Err(format!(
                    "the state of stream {name:?} is not an object: {other}"
                ));
            }
        }
        Ok(())
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

    #[test]
    fn a_cursor_state_round_trips_with_its_config_and_owed_details() {
        let state = CursorState {
            cursor: Some(parse_instant("2025-06-11T14:53:06.310Z").unwrap()),
            built_with: Some(BuiltWith {
                start_date: Some("2024-01-01T00:00:00.000Z".to_owned()),
                call_details_statuses: Some(vec!["POST_PROCESSING_DONE".to_owned()]),
            }),
            pending_details: vec!["c1".to_owned()],
        };
        let blob = state.blob("last_modified_time");
        assert_eq!(
            blob,
            json!({"last_modified_time": "2025-06-11T14:53:06.310Z",
                "config": {"start_date": "2024-01-01T00:00:00.000Z", "call_details_statuses": ["POST_PROCESSING_DONE"]},
                "pending_details": ["c1"]})
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
