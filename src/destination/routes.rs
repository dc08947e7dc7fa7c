//! Which object and mode each configured stream is written with, decided once at start so
//! that a catalog the API cannot honour is refused before anything is written.
//!
//! A stream goes to its `destination_object_name` when set (Airbyte's data-activation
//! convention: a CRM source's `companies` stream can feed `accounts`), otherwise to the object
//! of its own name.

use std::collections::HashMap;
use std::sync::Arc;

use super::objects::{OBJECTS, Object, mode_name};
use crate::error::{Error, Result};
use crate::protocol::{ConfiguredCatalog, DestinationSyncMode};

/// A stream as records and STREAM states name it: name and namespace.
pub type StreamKey = (String, Option<String>);

/// Where one configured stream's records go.
#[derive(Debug)]
pub struct Route {
    /// The stream's name, for messages (`namespace.name` when it has a namespace).
    pub stream: String,
    pub object: &'static Object,
    pub mode: DestinationSyncMode,
}

#[derive(Debug)]
pub struct Routes(HashMap<StreamKey, Arc<Route>>);

impl Routes {
    /// Checks every configured stream and builds the table, naming the first stream whose
    /// object or mode cannot be written.
    pub fn from_catalog(catalog: &ConfiguredCatalog) -> Result<Routes> {
        let mut routes = HashMap::new();
        for configured in &catalog.streams {
            let stream = &configured.stream;
            let label = match &stream.namespace {
                Some(namespace) => format!("{namespace}.{}", stream.name),
                None => stream.name.clone(),
            };
            let object_name = configured
                .destination_object_name
                .as_deref()
                .unwrap_or(&stream.name);
            let object = Object::named(object_name).ok_or_else(|| {
                refused(format!(
                    "stream `{label}` would be written to `{object_name}`, which Clari Copilot cannot store; \
                     set its destination object to one of {}",
                    object_list()
                ))
            })?;
            let mode = configured
                .destination_sync_mode
                .unwrap_or(DestinationSyncMode::Append);
            if !object.supports(mode) {
                return Err(refused(unsupported(&label, object, mode)));
            }
            routes.insert(
                (stream.name.clone(), stream.namespace.clone()),
                Arc::new(Route {
                    stream: label,
                    object,
                    mode,
                }),
            );
        }
        Ok(Routes(routes))
    }

    pub fn get(&self, key: &StreamKey) -> Option<&Arc<Route>> {
        self.0.get(key)
    }
}

fn refused(detail: String) -> Error {
    Error::input("configured catalog", detail)
}

fn object_list() -> String {
    OBJECTS
        .iter()
        .map(|o| format!("`{}`", o.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unsupported(label: &str, object: &Object, mode: DestinationSyncMode) -> String {
    let supported = object
        .modes
        .iter()
        .map(|m| format!("`{}`", mode_name(*m)))
        .collect::<Vec<_>>()
        .join(", ");
    let why = match mode {
        DestinationSyncMode::Overwrite => format!(
            "overwrite would have to delete every {} missing from this sync, and Clari Copilot cannot list them",
            object.name
        ),
        _ => format!(
            "Clari Copilot has no route to {} {}",
            if mode == DestinationSyncMode::Update {
                "update"
            } else {
                "delete"
            },
            object.name
        ),
    };
    format!(
        "stream `{label}` asks for `{}` on `{}`, which is not possible: {why}. Choose one of {supported}",
        mode_name(mode),
        object.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog(streams: serde_json::Value) -> ConfiguredCatalog {
        serde_json::from_value(json!({ "streams": streams })).unwrap()
    }

    fn stream(name: &str, mode: &str, object: Option<&str>) -> serde_json::Value {
        json!({
            "stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
            "sync_mode": "full_refresh",
            "destination_sync_mode": mode,
            "destination_object_name": object,
        })
    }

    #[test]
    fn a_destination_object_name_routes_any_stream_name() {
        let routes = Routes::from_catalog(&catalog(json!([
            stream("companies", "append_dedup", Some("accounts")),
            stream("deals", "soft_delete", None),
        ])))
        .unwrap();
        let companies = routes.get(&("companies".into(), None)).unwrap();
        assert_eq!(companies.object.name, "accounts");
        assert_eq!(companies.mode, DestinationSyncMode::AppendDedup);
        assert_eq!(
            routes.get(&("deals".into(), None)).unwrap().object.name,
            "deals"
        );
    }

    #[test]
    fn overwrite_and_impossible_modes_are_refused_naming_stream_and_mode() {
        for (name, mode, expected) in [
            ("accounts", "overwrite", "`overwrite` on `accounts`"),
            ("calls", "update", "`update` on `calls`"),
            ("calls", "soft_delete", "`soft_delete` on `calls`"),
        ] {
            let err =
                Routes::from_catalog(&catalog(json!([stream(name, mode, None)]))).unwrap_err();
            let message = err.user_message();
            assert!(message.contains(expected), "{message}");
            assert_eq!(
                err.failure_type(),
                crate::protocol::FailureType::ConfigError
            );
        }
    }

    #[test]
    fn a_stream_without_a_known_object_is_refused() {
        let err =
            Routes::from_catalog(&catalog(json!([stream("users", "append", None)]))).unwrap_err();
        assert!(
            err.user_message().contains("`users`"),
            "{}",
            err.user_message()
        );
    }
}
