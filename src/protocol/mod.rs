//! Our own serde model of the Airbyte protocol (v0, release 0.18).
//!
//! The unofficial `airbyte-protocol` crate has known defects, so the messages the connector
//! emits and reads are declared here against `airbyte_protocol.yaml`. Field casing is mixed on
//! purpose (`connectionStatus`, `sourceStats`, ...), so there is no global `rename_all`, and no
//! type denies unknown fields: every protocol object allows additional properties.
//!
//! Records never pass through these types as typed structs: their payload is the API's raw JSON
//! (see [`output::Output::record`]), so a field Clari adds tomorrow reaches the warehouse today.

pub mod log_layer;
pub mod output;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use output::Output;

/// Milliseconds since the Unix epoch, as the protocol wants for `emitted_at`.
pub fn now_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The message envelope: `{"type": "...", "<payload key>": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Message {
    #[serde(rename = "STATE")]
    State { state: StateMessage },
    #[serde(rename = "LOG")]
    Log { log: LogMessage },
    #[serde(rename = "SPEC")]
    Spec { spec: Spec },
    #[serde(rename = "CONNECTION_STATUS")]
    ConnectionStatus {
        #[serde(rename = "connectionStatus")]
        connection_status: ConnectionStatus,
    },
    #[serde(rename = "CATALOG")]
    Catalog { catalog: Catalog },
    #[serde(rename = "TRACE")]
    Trace { trace: Trace },
    #[serde(rename = "DESTINATION_CATALOG")]
    DestinationCatalog { destination_catalog: Value },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogLevel {
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogMessage {
    pub level: LogLevel,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    #[serde(rename = "documentationUrl", skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    #[serde(rename = "changelogUrl", skip_serializing_if = "Option::is_none")]
    pub changelog_url: Option<String>,
    #[serde(rename = "connectionSpecification")]
    pub connection_specification: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_destination_sync_modes: Option<Vec<DestinationSyncMode>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionStatus {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub streams: Vec<Stream>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    FullRefresh,
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationSyncMode {
    Append,
    Overwrite,
    AppendDedup,
    Update,
    SoftDelete,
}

/// An `AirbyteStream`, as `discover` reports it and as the configured catalog repeats it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stream {
    pub name: String,
    pub json_schema: Value,
    pub supported_sync_modes: Vec<SyncMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_defined_cursor: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cursor_field: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_defined_primary_key: Option<Vec<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_resumable: Option<bool>,
}

/// A `ConfiguredAirbyteStream`. Optional fields may be `null` (CAT writes pydantic output).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfiguredStream {
    pub stream: Stream,
    pub sync_mode: SyncMode,
    #[serde(default)]
    pub destination_sync_mode: Option<DestinationSyncMode>,
    #[serde(default)]
    pub cursor_field: Option<Vec<String>>,
    #[serde(default)]
    pub primary_key: Option<Vec<Vec<String>>>,
    #[serde(default)]
    pub destination_object_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfiguredCatalog {
    pub streams: Vec<ConfiguredStream>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamDescriptor {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl StreamDescriptor {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamState {
    pub stream_descriptor: StreamDescriptor,
    #[serde(default)]
    pub stream_state: Option<Value>,
}

/// Per-state record counts. Declared as doubles by the protocol and written with a decimal point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StateStats {
    #[serde(rename = "recordCount")]
    pub record_count: f64,
    #[serde(
        rename = "rejectedRecordCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rejected_record_count: Option<f64>,
}

/// A STATE message as this source emits it: always `STREAM`, always with `sourceStats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateMessage {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub state_type: Option<StateType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(
        rename = "sourceStats",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_stats: Option<StateStats>,
}

impl StateMessage {
    /// A STREAM state for `stream` carrying `blob` and the records emitted since the last one.
    pub fn stream(stream: &str, blob: Value, record_count: u64) -> Self {
        Self {
            state_type: Some(StateType::Stream),
            stream: Some(StreamState {
                stream_descriptor: StreamDescriptor::named(stream),
                stream_state: Some(blob),
            }),
            global: None,
            data: None,
            source_stats: Some(StateStats {
                record_count: record_count as f64,
                rejected_record_count: None,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StateType {
    Global,
    Stream,
    Legacy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trace {
    #[serde(rename = "type")]
    pub trace_type: TraceType,
    pub emitted_at: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorTrace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<EstimateTrace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_status: Option<StreamStatusTrace>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TraceType {
    Error,
    Estimate,
    StreamStatus,
    Analytics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    SystemError,
    ConfigError,
    TransientError,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorTrace {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_message: Option<String>,
    pub failure_type: FailureType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_descriptor: Option<StreamDescriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EstimateTrace {
    pub name: String,
    #[serde(rename = "type")]
    pub estimate_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_estimate: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Started,
    Running,
    Complete,
    Incomplete,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamStatusTrace {
    pub stream_descriptor: StreamDescriptor,
    pub status: StreamStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<Value>>,
}

impl Message {
    pub fn log(level: LogLevel, message: impl Into<String>) -> Self {
        Message::Log {
            log: LogMessage {
                level,
                message: message.into(),
            },
        }
    }

    pub fn connection_status(status: Status, message: Option<String>) -> Self {
        Message::ConnectionStatus {
            connection_status: ConnectionStatus { status, message },
        }
    }

    pub fn stream_status(stream: &str, status: StreamStatus) -> Self {
        Self::trace(TraceType::StreamStatus, |t| {
            t.stream_status = Some(StreamStatusTrace {
                stream_descriptor: StreamDescriptor::named(stream),
                status,
                reasons: None,
            })
        })
    }

    /// An INCOMPLETE status saying the stream stopped on the rate limit, and when the quota resets.
    pub fn rate_limited(stream: &str, quota_reset_millis: i64) -> Self {
        Self::trace(TraceType::StreamStatus, |t| {
            t.stream_status = Some(StreamStatusTrace {
                stream_descriptor: StreamDescriptor::named(stream),
                status: StreamStatus::Incomplete,
                reasons: Some(vec![serde_json::json!({
                    "type": "RATE_LIMITED",
                    "rate_limited": {"quota_reset": quota_reset_millis}
                })]),
            })
        })
    }

    pub fn estimate(stream: &str, rows: u64) -> Self {
        Self::trace(TraceType::Estimate, |t| {
            t.estimate = Some(EstimateTrace {
                name: stream.to_owned(),
                estimate_type: "STREAM".to_owned(),
                row_estimate: Some(rows),
            })
        })
    }

    pub fn error(error: ErrorTrace) -> Self {
        Self::trace(TraceType::Error, |t| t.error = Some(error))
    }

    fn trace(trace_type: TraceType, fill: impl FnOnce(&mut Trace)) -> Self {
        let mut trace = Trace {
            trace_type,
            emitted_at: now_millis() as f64,
            error: None,
            estimate: None,
            stream_status: None,
        };
        fill(&mut trace);
        Message::Trace { trace }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_counts_are_written_as_doubles_and_keys_keep_protocol_casing() {
        let msg = Message::State {
            state: StateMessage::stream("calls", json!({"a": 1}), 12),
        };
        let line = serde_json::to_string(&msg).unwrap();
        assert!(
            line.contains(r#""sourceStats":{"recordCount":12.0}"#),
            "{line}"
        );
        assert!(
            line.starts_with(r#"{"type":"STATE","state":{"type":"STREAM""#),
            "{line}"
        );
    }

    #[test]
    fn connection_status_uses_camel_case_payload_key() {
        let line = serde_json::to_string(&Message::connection_status(
            Status::Failed,
            Some("x".into()),
        ))
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"CONNECTION_STATUS","connectionStatus":{"status":"FAILED","message":"x"}}"#
        );
    }

    #[test]
    fn configured_catalog_accepts_nulls_and_unknown_keys() {
        let raw = r#"{"streams":[{"stream":{"name":"users","json_schema":{},"supported_sync_modes":["full_refresh"],"x":1},
            "sync_mode":"incremental","destination_sync_mode":"append","cursor_field":null,"primary_key":null,"generation_id":null}]}"#;
        let catalog: ConfiguredCatalog = serde_json::from_str(raw).unwrap();
        assert_eq!(catalog.streams[0].sync_mode, SyncMode::Incremental);
        assert!(catalog.streams[0].cursor_field.is_none());
    }

    #[test]
    fn an_invalid_sync_mode_is_a_parse_error_not_a_panic() {
        let raw = r#"{"streams":[{"stream":{"name":"x","json_schema":{},"supported_sync_modes":["full_refresh"]},"sync_mode":"INVALID"}]}"#;
        let err = serde_json::from_str::<ConfiguredCatalog>(raw).unwrap_err();
        assert!(err.to_string().contains("INVALID"), "{err}");
    }
}
