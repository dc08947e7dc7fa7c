//! JSON schemas of the source streams and of the destination's write objects.
//!
//! The schemas live as plain JSON files under `catalog/` rather than as Rust code:
//!
//! - they are the contract with Airbyte (`discover` reports the source ones verbatim), and a
//!   JSON file can be reviewed, diffed and checked by ordinary JSON Schema tools (the Connector
//!   Acceptance Test runs Python's `Draft7Validator` on them) without reading Rust;
//! - they are embedded at compile time with [`include_str!`], so the binary needs no files at
//!   run time and a schema can never go missing or drift from the binary that reports it;
//! - each file is parsed once, on first use, through a [`LazyLock`]. A file that is not valid
//!   JSON is a build defect, caught by the tests in `tests/catalog_schemas.rs`.
//!
//! Source records are passed through exactly as the API returns them, so the source schemas
//! describe the API's fields without constraining them: every field but the primary key may be
//! absent or null, enums are left open and `additionalProperties` is always true.
//!
//! The destination schemas are checked against every record before it is sent to the API;
//! [`validate_destination_record`] reports each problem with the field it concerns.

use std::fmt;
use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::Value;

/// Names of the streams the source reports in `discover`, in catalog order.
pub const SOURCE_STREAMS: [&str; 6] = [
    "calls",
    "call-details",
    "users",
    "topics",
    "scorecard",
    "scorecard-template",
];

/// Names of the objects the destination can write, in catalog order.
pub const DESTINATION_OBJECTS: [&str; 4] = ["accounts", "contacts", "deals", "calls"];

/// Schema text of each source stream, in the order of [`SOURCE_STREAMS`].
const SOURCE_SCHEMA_TEXTS: [(&str, &str); 6] = [
    ("calls", include_str!("../catalog/source/calls.json")),
    (
        "call-details",
        include_str!("../catalog/source/call-details.json"),
    ),
    ("users", include_str!("../catalog/source/users.json")),
    ("topics", include_str!("../catalog/source/topics.json")),
    (
        "scorecard",
        include_str!("../catalog/source/scorecard.json"),
    ),
    (
        "scorecard-template",
        include_str!("../catalog/source/scorecard-template.json"),
    ),
];

/// Schema text of each destination object, in the order of [`DESTINATION_OBJECTS`].
const DESTINATION_SCHEMA_TEXTS: [(&str, &str); 4] = [
    (
        "accounts",
        include_str!("../catalog/destination/accounts.json"),
    ),
    (
        "contacts",
        include_str!("../catalog/destination/contacts.json"),
    ),
    ("deals", include_str!("../catalog/destination/deals.json")),
    ("calls", include_str!("../catalog/destination/calls.json")),
];

fn parse_all(texts: &[(&'static str, &'static str)]) -> Vec<(&'static str, Value)> {
    texts
        .iter()
        .map(|&(name, text)| {
            let schema = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("embedded schema for {name:?} is not valid JSON: {e}"));
            (name, schema)
        })
        .collect()
}

static SOURCE_SCHEMAS: LazyLock<Vec<(&'static str, Value)>> =
    LazyLock::new(|| parse_all(&SOURCE_SCHEMA_TEXTS));

static DESTINATION_SCHEMAS: LazyLock<Vec<(&'static str, Value)>> =
    LazyLock::new(|| parse_all(&DESTINATION_SCHEMA_TEXTS));

static DESTINATION_VALIDATORS: LazyLock<Vec<(&'static str, Validator)>> = LazyLock::new(|| {
    DESTINATION_SCHEMAS
        .iter()
        .map(|(name, schema)| {
            let validator = record_validator(schema)
                .unwrap_or_else(|e| panic!("embedded schema for {name:?} does not compile: {e}"));
            (*name, validator)
        })
        .collect()
});

fn lookup<'a, T>(table: &'a [(&'static str, T)], name: &str) -> Option<&'a T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The embedded JSON text of a source stream's schema, exactly as stored in `catalog/source/`.
pub fn source_schema_text(stream: &str) -> Option<&'static str> {
    lookup(&SOURCE_SCHEMA_TEXTS, stream).copied()
}

/// The embedded JSON text of a destination object's write schema (`catalog/destination/`).
pub fn destination_schema_text(object: &str) -> Option<&'static str> {
    lookup(&DESTINATION_SCHEMA_TEXTS, object).copied()
}

/// The parsed schema of a source stream, shared; `None` for an unknown stream.
pub fn source_schema_ref(stream: &str) -> Option<&'static Value> {
    lookup(&SOURCE_SCHEMAS, stream)
}

/// The parsed write schema of a destination object, shared; `None` for an unknown object.
pub fn destination_schema_ref(object: &str) -> Option<&'static Value> {
    lookup(&DESTINATION_SCHEMAS, object)
}

/// An owned copy of a source stream's schema (e.g. for the `json_schema` of a catalog entry).
pub fn source_schema(stream: &str) -> Option<Value> {
    source_schema_ref(stream).cloned()
}

/// An owned copy of a destination object's write schema.
pub fn destination_schema(object: &str) -> Option<Value> {
    destination_schema_ref(object).cloned()
}

/// Compiles a record validator for one of these schemas that checks records the way the
/// Connector Acceptance Test does: Draft-7 keywords, `date-time` formats checked, and **strict
/// integers** (`1.0` is not an integer).
///
/// Draft 7 itself calls `1.0` an integer, and so does `jsonschema`'s Draft-7 mode. Draft 4 decides
/// `integer` by how the number is written, which is CAT's rule, so the schema is compiled with
/// Draft-4 semantics. That is sound for the schemas in `catalog/`: they use only keywords whose
/// meaning is the same in both drafts (`type`, `properties`, `items`, `required`,
/// `additionalProperties`, `format`, `minLength`, `enum`), which the tests enforce.
///
/// # Errors
///
/// Returns the compilation error if `schema` is not a valid schema.
pub fn record_validator(schema: &Value) -> Result<Validator, ValidationError<'static>> {
    jsonschema::options()
        .with_draft(Draft::Draft4)
        .should_validate_formats(true)
        .build(schema)
}

/// One reason a record does not match its write schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field concerned, as a JSON pointer into the record (`/audio_url`,
    /// `/custom_fields/0/key`). For a missing required field it is the missing field's path.
    pub field: String,
    /// What is wrong, in the validator's words (e.g. `"audio_url" is a required property`).
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

/// Why a record could not be checked or did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordRejected {
    /// The destination has no object of this name.
    #[error("unknown destination object {0:?}; expected one of {DESTINATION_OBJECTS:?}")]
    UnknownObject(String),
    /// The record breaks the object's write schema; one entry per problem, never empty.
    #[error("record does not match the {object} schema: {}", join(.errors))]
    Invalid {
        /// The destination object the record was meant for.
        object: String,
        /// Every problem found.
        errors: Vec<FieldError>,
    },
}

impl RecordRejected {
    /// The reasons alone, without the object's name: what a rejected record's log line quotes.
    pub fn reasons(&self) -> String {
        match self {
            RecordRejected::Invalid { errors, .. } => join(errors),
            unknown => unknown.to_string(),
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn field_error(error: &ValidationError<'_>) -> FieldError {
    let mut field = error.instance_path().as_str().to_owned();
    if let ValidationErrorKind::Required { property } = error.kind() {
        let name = property
            .as_str()
            .map_or_else(|| property.to_string(), str::to_owned);
        field.push('/');
        field.push_str(&name.replace('~', "~0").replace('/', "~1"));
    }
    FieldError {
        field,
        message: error.to_string(),
    }
}

/// Checks a record against a destination object's write schema before it is sent to the API.
///
/// Fields the schema does not list pass through. The rule of `calls` that `user_emails` or
/// `source_user_ids` must name at least one recording user is not checked here.
///
/// # Errors
///
/// [`RecordRejected::UnknownObject`] for an unknown object; [`RecordRejected::Invalid`] with
/// every problem, each naming its field, when the record does not match.
pub fn validate_destination_record(object: &str, record: &Value) -> Result<(), RecordRejected> {
    let validator = lookup(&DESTINATION_VALIDATORS, object)
        .ok_or_else(|| RecordRejected::UnknownObject(object.to_owned()))?;
    let errors: Vec<FieldError> = validator
        .iter_errors(record)
        .map(|e| field_error(&e))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RecordRejected::Invalid {
            object: object.to_owned(),
            errors,
        })
    }
}
