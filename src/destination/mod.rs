//! The destination role: writes accounts, contacts, deals and calls into Clari Copilot from
//! Airbyte messages on stdin, echoing each STATE only once everything before it landed.
//!
//! - [`reader`]: the tolerant, bounded stdin reader (its own thread, backpressure);
//! - [`acks`]: record numbering and state release (pure logic);
//! - [`objects`]: the four objects as data (routes, key field, supported modes);
//! - [`compare`]: whether an object as the API shows it already holds a record's values;
//! - [`routes`]: configured stream → object and mode, refused at start when impossible;
//! - [`requests`]: the requests one record costs in each mode, and what each answer means;
//! - [`writer`]: the loop tying them together (concurrency, per-key ordering, state echoes).
//!
//! See `docs/destination.md` for the user-facing description of modes and rejections.

pub mod acks;
pub mod compare;
pub mod objects;
pub mod reader;
pub mod requests;
pub mod routes;
pub mod writer;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::catalog::destination_schema;
use crate::client::{Client, RetryPolicy};
use crate::config::{DestinationConfig, connection_specification};
use crate::error::Result;
use crate::protocol::{ConfiguredCatalog, LogLevel, Message, Output, Spec};
use objects::{OBJECTS, SUPPORTED_MODES, mode_name};
use routes::Routes;

/// Items buffered between the stdin reader and the writer (their bytes are bounded too, by
/// [`reader::MAX_HELD_BYTES`]).
const INPUT_CAPACITY: usize = 256;

/// Where users read about the destination.
const DOCUMENTATION_URL: &str = "https://docs.airbyte.com/integrations/destinations/clari-copilot";

/// What a `write` did, for the final log line and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// RECORD messages taken from the input.
    pub records: u64,
    /// Records the API confirmed.
    pub written: u64,
    /// Records not sent because the API already held every value they set (`append_dedup`).
    pub unchanged: u64,
    /// Records whose create was refused because the key exists, and whose look-up showed no
    /// value differing from the record: written before (a replay, or a retried create).
    pub already_present: u64,
    /// Records rejected and skipped under the `skip` policy.
    pub rejected: u64,
    /// Input lines that were not usable messages.
    pub skipped_lines: u64,
    /// STATE messages echoed.
    pub states: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
}

/// The destination's `spec`: its own connection specification and the modes it can honour.
pub fn spec() -> Spec {
    Spec {
        documentation_url: Some(DOCUMENTATION_URL.to_owned()),
        changelog_url: None,
        connection_specification: connection_specification::<DestinationConfig>(),
        supported_destination_sync_modes: Some(SUPPORTED_MODES.to_vec()),
        protocol_version: None,
    }
}

/// One authenticated, read-only request (`GET /users`): proves the URL and credentials work
/// without writing anything.
pub async fn check(config: &DestinationConfig) -> Result<()> {
    let client = Client::new(&config.api, RetryPolicy::check())?;
    client.get("/users", Vec::new()).await.map(drop)
}

/// The DESTINATION_CATALOG payload: one operation per object and supported mode, with the
/// object's write schema and its matching key.
pub fn destination_catalog() -> Value {
    let operations: Vec<Value> = OBJECTS
        .iter()
        .flat_map(|object| {
            object.modes.iter().map(move |mode| {
                json!({
                    "object_name": object.name,
                    "sync_mode": mode_name(*mode),
                    "json_schema": destination_schema(object.name).unwrap_or_else(|| json!({})),
                    "matching_keys": [[object.key]],
                })
            })
        })
        .collect();
    json!({ "operations": operations })
}

/// Writes every record of `input` (Airbyte messages, one per line) and echoes its states on
/// `output`. The catalog is checked before anything is read or written.
pub async fn write(
    config: &DestinationConfig,
    catalog: &ConfiguredCatalog,
    input: Box<dyn std::io::Read + Send>,
    output: Arc<Output>,
) -> Result<WriteSummary> {
    let routes = Routes::from_catalog(catalog)?;
    let client = Client::new(&config.api, RetryPolicy::for_sync(&config.api))?;
    let items = reader::spawn(input, INPUT_CAPACITY)?;
    let summary = writer::Writer::new(
        client,
        Arc::clone(&output),
        config.on_rejected_record,
        routes,
    )
    .run(items)
    .await?;
    let _ = output.emit(&Message::log(
        LogLevel::Info,
        format!(
            "Destination finished: {} records read, {} written, {} unchanged (already held, not sent again), \
             {} already present (refused as existing, found equal), {} rejected and skipped, \
             {} unusable input lines, {} states echoed, {} requests sent",
            summary.records,
            summary.written,
            summary.unchanged,
            summary.already_present,
            summary.rejected,
            summary.skipped_lines,
            summary.states,
            summary.requests
        ),
    ));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_declares_the_four_modes_and_the_rejection_policy() {
        let spec = serde_json::to_value(spec()).unwrap();
        assert_eq!(
            spec["supported_destination_sync_modes"],
            json!(["append", "append_dedup", "update", "soft_delete"])
        );
        let properties = &spec["connectionSpecification"]["properties"];
        assert_eq!(properties["api_secret"]["airbyte_secret"], json!(true));
        assert_eq!(properties["on_rejected_record"]["default"], json!("fail"));
        assert_eq!(spec["documentationUrl"], json!(DOCUMENTATION_URL));
        let required = spec["connectionSpecification"]["required"]
            .as_array()
            .unwrap();
        for (name, property) in properties.as_object().unwrap() {
            assert!(
                required.contains(&json!(name)) || property.get("default").is_some(),
                "{name} shows no default"
            );
        }
    }

    #[test]
    fn the_destination_catalog_lists_each_object_and_mode_with_its_key() {
        let catalog = destination_catalog();
        let operations = catalog["operations"].as_array().unwrap();
        assert_eq!(operations.len(), 3 * 4 + 2);
        let calls: Vec<_> = operations
            .iter()
            .filter(|op| op["object_name"] == "calls")
            .map(|op| op["sync_mode"].as_str().unwrap())
            .collect();
        assert_eq!(calls, ["append", "append_dedup"]);
        for op in operations {
            let key = op["matching_keys"][0][0].as_str().unwrap();
            assert!(op["json_schema"]["properties"].get(key).is_some(), "{op}");
        }
    }
}
