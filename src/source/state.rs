//! The source's state: reading what the platform hands back (`--state`), and the blobs this
//! source checkpoints.
//!
//! The calls cursor is `{"last_modified_time": "<instant>"}`: everything modified before that
//! instant has been emitted. It is always a window bound, never a record's value, so it can
//! never claim a record that was not read.

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// The blob full-refresh streams checkpoint with (the Python CDK's convention).
pub fn no_cursor_blob() -> Value {
    json!({"__ab_no_cursor_state_message": true})
}

/// The calls cursor blob for an instant given in epoch milliseconds.
pub fn cursor_blob(cursor_field: &str, millis: i64) -> Value {
    json!({ cursor_field: format_millis(millis) })
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
    fn cursors_round_trip_in_the_api_format() {
        let millis = parse_instant("2025-06-11T14:53:06.31Z").unwrap();
        assert_eq!(format_millis(millis), "2025-06-11T14:53:06.310Z");
        assert_eq!(
            cursor_blob("last_modified_time", 0),
            json!({"last_modified_time": "1970-01-01T00:00:00.000Z"})
        );
    }
}
