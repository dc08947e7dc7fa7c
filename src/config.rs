//! The connector's configuration: the structs users fill in, the `connectionSpecification`
//! generated from them (schemars, draft-07), and validation that names the offending field.
//!
//! Validation runs in two steps before any request: the raw JSON is checked against the
//! generated spec (so the same rules the Airbyte UI enforces apply to a hand-written file),
//! then values the schema cannot express (URL safety, dates) are checked in code.

use std::fmt;
use std::path::Path;

use jiff::Timestamp;
use schemars::{JsonSchema, generate::SchemaSettings};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{Error, Result};

pub const DEFAULT_BASE_URL: &str = "https://rest-api.copilot.clari.com";
/// Clari Copilot's documented limit.
pub const DOCUMENTED_REQUESTS_PER_SECOND: u32 = 10;

/// A credential. It deserialises like a string but never prints its value.
///
/// This type is the one declaration of what is secret: a config field is a secret exactly
/// when its type is `Secret`. Its schema carries `airbyte_secret` (so the spec marks the
/// field), [`secret_fields`] reads the marks back from the spec (so the output masks those
/// fields' values in raw configs), and [`ApiSettings::secrets`] returns the values of the
/// fields of this type.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl JsonSchema for Secret {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "airbyte_secret": true})
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that needs it: the request headers.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(**********)")
    }
}

/// Clari's documented `CallStatus` values. Clari may add statuses, so one outside this list is
/// accepted with a warning (see [`SourceConfig::warnings`]) rather than refused.
pub const CALL_STATUSES: [&str; 17] = [
    "SCHEDULED",
    "INITIATED",
    "INPROGRESS",
    "WAITING_IN_QUEUE",
    "PROCESSING",
    "PROCESSED",
    "ERROR_IN_TRANSCRIBE",
    "ERROR_IN_PROCESSING",
    "ERROR_IN_RECORDING",
    "UNABLE_TO_JOIN",
    "CALL_DID_NOT_HAPPEN",
    "IGNORED_BY_USER",
    "BOTJOIN_DISABLED",
    "POST_PROCESSING_DONE",
    "NO_DATA_INCALL",
    "NOBODY_JOINED_CALL",
    "BOTJOIN_DENIED",
];

/// Settings shared by both roles: how to reach and authenticate against the API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ApiSettings {
    /// Your Clari Copilot API key, from Copilot Workspace Settings > Integrations > Clari Copilot API.
    /// Sent as the `X-Api-Key` header.
    #[schemars(title = "API Key", extend("order" = 0))]
    pub api_key: Secret,

    /// The secret that goes with the API key. Clari calls it the "API Password" and it is sent as
    /// the `X-Api-Password` header. Find it next to the API key in Copilot Workspace Settings >
    /// Integrations > Clari Copilot API.
    #[schemars(title = "API Password (API secret)", extend("order" = 1))]
    pub api_secret: Secret,

    /// Requests per second across the whole sync. Clari Copilot allows 10 per second and 100,000 per
    /// week per key: lower this to leave room for other tools sharing the key. Values above 10 (up
    /// to 10,000) are accepted with a warning (useful only against a local test server).
    #[serde(default = "default_requests_per_second")]
    #[schemars(title = "Requests per second", range(min = 1, max = 10000), extend("order" = 20, "examples" = [10, 5]))]
    pub requests_per_second: u32,

    /// How many minutes the connector keeps retrying while Clari answers HTTP 429 before it
    /// checkpoints and stops with a transient error. Clari sends no signal when the weekly quota of
    /// 100,000 requests is used up, so 429s that persist this long are treated as exactly that.
    #[serde(default = "default_rate_limit_patience_minutes")]
    #[schemars(title = "Rate-limit patience (minutes)", range(min = 1, max = 1440), extend("order" = 22, "examples" = [10]))]
    pub rate_limit_patience_minutes: u32,

    /// Advanced: the API's base URL. Leave the default unless Clari tells you otherwise. Plain
    /// `http://` is only accepted for loopback hosts (local testing).
    #[serde(default = "default_base_url")]
    #[schemars(title = "API base URL", extend("order" = 21, "examples" = ["https://rest-api.copilot.clari.com"]))]
    pub base_url: String,
}

/// Configuration of the source role.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(title = "Clari Copilot Source Spec")]
pub struct SourceConfig {
    #[serde(flatten)]
    pub api: ApiSettings,

    /// Only calls (by their scheduled time) and scorecards from this instant on are read, for
    /// example 2024-01-01T00:00:00Z. An offset such as +02:00 is accepted and converted to UTC.
    /// Leave it empty to copy the account's whole history. A date in the future is refused: no
    /// call could be read.
    #[serde(default)]
    #[schemars(
        title = "Start date",
        regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"),
        extend("format" = "date-time", "pattern_descriptor" = "YYYY-MM-DDTHH:mm:ssZ", "order" = 2, "examples" = ["2024-01-01T00:00:00Z"])
    )]
    pub start_date: Option<String>,

    /// Off by default, so calls their owners marked private stay private. Turn it on only if
    /// everyone who can read the destination may see private calls.
    #[serde(default)]
    #[schemars(title = "Include private calls", extend("order" = 3))]
    pub include_private_calls: bool,

    /// On every incremental sync, calls modified up to this many days before the last checkpoint are
    /// read again. Clari only moves `last_modified_time` when a call's status changes, so edits to other
    /// fields are caught only inside this window. 1 day costs about one day of calls per sync; 0 turns it off.
    #[serde(default = "default_lookback_days")]
    #[schemars(title = "Lookback window (days)", range(min = 0, max = 365), extend("order" = 4, "examples" = [1, 7]))]
    pub lookback_window_days: u32,

    /// The most records per request for calls and scorecards (the API allows 100). Each request
    /// counts against the quota, so the connector starts here and uses the largest page Clari
    /// answers: pages over about 6 MB fail with HTTP 502, and then it finds the largest size that
    /// fits (and remembers it for the next sync). Lower it only to cap the size of each response.
    #[serde(default = "default_page_size")]
    #[schemars(title = "Page size (maximum)", range(min = 1, max = 100), extend("order" = 5, "examples" = [100]))]
    pub page_size: u32,

    /// `call-details` fetches a call's transcript and summary once its status is one of these,
    /// and again only when its status changes. POST_PROCESSING_DONE is when Clari has finished
    /// the transcript, the summary and the metrics; calls in other statuses are fetched later,
    /// when they reach one of these. Statuses are Clari's upper-case names (other spellings are
    /// upper-cased); one Clari does not document is accepted with a warning.
    #[serde(
        default = "default_call_details_statuses",
        deserialize_with = "call_statuses_in_clari_case"
    )]
    #[schemars(title = "Call details: finished statuses", length(min = 1), extend("order" = 6, "examples" = [["POST_PROCESSING_DONE"]]))]
    pub call_details_statuses: Vec<String>,

    /// At most this many `/call-details` requests per sync (up to 100,000), to protect the weekly
    /// quota of 100,000 requests. When the next batch would pass it, the sync stops cleanly at its last
    /// checkpoint and the next sync carries on from there. Empty means no cap.
    #[serde(default)]
    #[schemars(title = "Call details: requests per sync", range(min = 1, max = 100000), extend("order" = 7, "examples" = [5000]))]
    pub call_details_max_requests: Option<u32>,

    /// Ask `call-details` for a signed `audio_url`. Signed URLs expire 4 hours after the sync.
    #[serde(default)]
    #[schemars(title = "Call details: include audio URL", extend("order" = 8))]
    pub call_details_include_audio: bool,

    /// Ask `call-details` for a signed `video_url`. Signed URLs expire 4 hours after the sync.
    #[serde(default)]
    #[schemars(title = "Call details: include video URL", extend("order" = 9))]
    pub call_details_include_video: bool,

    /// Clari may index a modified call a little after its `last_modified_time`. Each sync reads
    /// calls modified up to this many seconds before the server's clock (from the API's `Date`
    /// header) and checkpoints there, so a call indexed late is read by the next sync instead of
    /// being passed forever.
    #[serde(default = "default_indexing_margin_seconds")]
    #[schemars(title = "Indexing margin (seconds)", range(min = 0, max = 3600), extend("order" = 23, "examples" = [120]))]
    pub indexing_margin_seconds: u32,
}

/// What the destination does with a record the schema or the API rejects.
// `Serialize` lets the spec show the default (`"default": "fail"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
// No doc comments on the variants: with them schemars renders a `oneOf`, which Airbyte's spec
// rules only allow under objects. The field's description explains both values.
pub enum RejectionPolicy {
    #[default]
    Fail,
    Skip,
}

/// Configuration of the destination role.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(title = "Clari Copilot Destination Spec")]
pub struct DestinationConfig {
    #[serde(flatten)]
    pub api: ApiSettings,

    /// `fail` (default) stops the sync at the first record that the schema or Clari Copilot rejects;
    /// `skip` logs it (stream, position in the input, reason), counts it in `rejectedRecordCount`
    /// and carries on.
    #[serde(default)]
    #[schemars(title = "Rejected records", extend("order" = 2))]
    pub on_rejected_record: RejectionPolicy,
}

fn default_requests_per_second() -> u32 {
    DOCUMENTED_REQUESTS_PER_SECOND
}
fn default_rate_limit_patience_minutes() -> u32 {
    10
}
fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_lookback_days() -> u32 {
    1
}
fn default_indexing_margin_seconds() -> u32 {
    120
}
fn default_page_size() -> u32 {
    100
}
fn default_call_details_statuses() -> Vec<String> {
    vec!["POST_PROCESSING_DONE".to_owned()]
}

/// Statuses as Clari spells them. Clari compares them exactly, so `post_processing_done` or
/// ` POST_PROCESSING_DONE ` as typed would match no call and silently fetch no details.
/// Normalising here, at parse, means the rest of the connector only ever sees Clari's spelling.
fn call_statuses_in_clari_case<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    let statuses = Vec::<String>::deserialize(deserializer)?;
    Ok(statuses
        .iter()
        .map(|status| status.trim().to_ascii_uppercase())
        .collect())
}

/// The `connectionSpecification` of a config type: draft-07, no `$ref`, Airbyte's extensions.
pub fn connection_specification<T: JsonSchema>() -> Value {
    let mut settings = SchemaSettings::draft07();
    settings.inline_subschemas = true;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    tidy(&mut value);
    if let Value::Object(root) = &mut value {
        root.insert("additionalProperties".into(), Value::Bool(true));
    }
    value
}

/// Removes schemars artefacts the Airbyte UI and CAT do not want: integer `format`s such as
/// `uint32`, `"default": null`, and the line breaks of wrapped doc comments in descriptions.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(text)) = map.get_mut("description") {
                *text = text.replace('\n', " ");
            }
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"))
            {
                map.remove("format");
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// Reads a JSON file given on the command line, naming it in every error.
pub fn read_json_file(path: &Path, what: &str) -> Result<Value> {
    parse_json_text(path, what, &read_text_file(path, what)?)
}

/// The text of the `what` file at `path`, with an error naming both when it cannot be read.
pub fn read_text_file(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::input(what, format!("cannot read {}: {e}", path.display())))
}

/// `text`, read from the `what` file at `path`, as JSON.
pub fn parse_json_text(path: &Path, what: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::input(what, format!("{} is not valid JSON: {e}", path.display())))
}

/// Validates a raw config against the spec of `T`, then deserialises it.
///
/// Every problem names its field, once: a value breaking two rules (a `start_date` that is
/// neither the pattern nor a date-time) gets one sentence, in words rather than a regex when
/// the spec gives a `pattern_descriptor`. The spec bounds every integer, so once it passes,
/// deserialising cannot fail on a value no message named.
pub fn parse<T: JsonSchema + for<'de> Deserialize<'de>>(raw: &Value) -> Result<T> {
    let spec = connection_specification::<T>();
    let validator = jsonschema::draft7::new(&spec)
        .map_err(|e| Error::config(format!("spec is invalid: {e}")))?;
    let mut problems: Vec<(String, String)> = Vec::new();
    for error in validator.iter_errors(raw) {
        let path = error.instance_path().to_string();
        let field = path.trim_start_matches('/').replace('/', ".");
        if field.is_empty() {
            problems.push((field, error.to_string()));
        } else if !problems.iter().any(|(named, _)| *named == field) {
            let problem = describe_problem(&spec, &field, &error);
            problems.push((field, problem));
        }
    }
    if !problems.is_empty() {
        let problems: Vec<String> = problems.into_iter().map(|(_, problem)| problem).collect();
        return Err(Error::config(problems.join("; ")));
    }
    serde_json::from_value(integral_floats_as_integers(raw, &spec))
        .map_err(|e| Error::config(e.to_string()))
}

/// One sentence about a value that breaks the spec, naming its `field`. A value whose form the
/// spec describes (`pattern_descriptor`) is told that form and an example, not a regex.
fn describe_problem(spec: &Value, field: &str, error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind;
    let property = &spec["properties"][field];
    match (error.kind(), property["pattern_descriptor"].as_str()) {
        (ValidationErrorKind::Pattern { .. } | ValidationErrorKind::Format { .. }, Some(form)) => {
            let example = property["examples"][0]
                .as_str()
                .map(|example| format!(", for example {example}"))
                .unwrap_or_default();
            format!(
                "`{field}` must have the form {form}{example} (got {})",
                error.instance()
            )
        }
        _ => format!("`{field}`: {error}"),
    }
}

/// `raw` with each integral float (`10.0`, as some clients write numbers) of an integer field
/// turned into an integer: serde refuses `10.0` for a `u32`, although JSON Schema calls it an
/// integer and the spec check accepted it.
fn integral_floats_as_integers(raw: &Value, spec: &Value) -> Value {
    let mut raw = raw.clone();
    let Some(fields) = raw.as_object_mut() else {
        return raw;
    };
    for (field, value) in fields.iter_mut() {
        let types = &spec["properties"][field]["type"];
        let integer_field = types == "integer"
            || types
                .as_array()
                .is_some_and(|t| t.contains(&"integer".into()));
        // The spec bounds every integer field within u32, so the conversion is exact.
        if let Some(float) = value.as_f64()
            && integer_field
            && value.is_f64()
            && float.fract() == 0.0
            && (0.0..=f64::from(u32::MAX)).contains(&float)
        {
            *value = Value::from(float as u64);
        }
    }
    raw
}

/// The top-level keys of `raw` that `T`'s spec does not know (a misspelt `start_data`), except
/// those starting with `_`, which by convention carry comments.
pub fn unknown_keys<T: JsonSchema>(raw: &Value) -> Vec<String> {
    let spec = connection_specification::<T>();
    raw.as_object()
        .into_iter()
        .flat_map(|fields| fields.keys())
        .filter(|key| !key.starts_with('_') && spec["properties"].get(key.as_str()).is_none())
        .cloned()
        .collect()
}

/// The fields of `T`'s spec marked `airbyte_secret`: those of type [`Secret`].
pub fn secret_fields<T: JsonSchema>() -> Vec<String> {
    let spec = connection_specification::<T>();
    spec["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, property)| property["airbyte_secret"] == true)
        .map(|(name, _)| name.clone())
        .collect()
}

/// The values of a raw config `raw` in the fields `T`'s spec marks secret, before the config
/// is validated (so that even an invalid config's secrets are known).
pub fn secret_values<T: JsonSchema>(raw: &Value) -> Vec<String> {
    secret_fields::<T>()
        .iter()
        .filter_map(|field| raw.get(field).and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// Warns about the keys of `raw` that `T` ignores: Airbyte configs may carry extra keys, so
/// they are accepted, but a misspelt setting would otherwise fall back to its default unseen.
fn warn_about_unknown_keys<T: JsonSchema>(raw: &Value) {
    let unknown = unknown_keys::<T>(raw);
    if !unknown.is_empty() {
        tracing::warn!(
            "the configuration has keys this connector does not know, which it ignores: `{}`. \
             Check their spelling against the spec",
            unknown.join("`, `")
        );
    }
}

impl ApiSettings {
    pub fn validate(&self) -> Result<()> {
        if self.api_key.expose().trim().is_empty() || self.api_secret.expose().trim().is_empty() {
            return Err(Error::config(
                "`api_key` and `api_secret` must not be empty",
            ));
        }
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| {
            Error::config(format!("`base_url` {:?} is not a URL: {e}", self.base_url))
        })?;
        match url.scheme() {
            "https" => Ok(()),
            "http" if is_loopback(&url) => Ok(()),
            "http" => Err(Error::config(format!(
                "`base_url` {:?} uses plain http, which is only allowed for loopback hosts; use https",
                self.base_url
            ))),
            other => Err(Error::config(format!(
                "`base_url` scheme {other:?} is not supported; use https"
            ))),
        }
    }

    /// The value of every [`Secret`] field, so the output can scrub them from logs. The
    /// destructuring names every field, so a new one does not compile until it is sorted here.
    pub fn secrets(&self) -> Vec<String> {
        let ApiSettings {
            api_key,
            api_secret,
            requests_per_second: _,
            rate_limit_patience_minutes: _,
            base_url: _,
        } = self;
        [api_key, api_secret]
            .map(|secret| secret.expose().to_owned())
            .to_vec()
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl SourceConfig {
    pub fn from_value(raw: &Value) -> Result<Self> {
        let mut config: Self = parse(raw)?;
        warn_about_unknown_keys::<Self>(raw);
        config.api.validate()?;
        // One spelling from here on, in UTC: state records it, and a sync compares it.
        config.start_date = config.start()?.map(|start| start.to_string());
        config.validate_call_details_statuses()?;
        Ok(config)
    }

    /// Refuses what depends on the clock, so only the commands that read calls (`check` and
    /// `read`) call it: a `start_date` after `now` would read no call, and every sync would
    /// succeed with nothing.
    pub fn validate_for_reading(&self, now: Timestamp) -> Result<()> {
        match self.start()? {
            Some(start) if start > now => Err(Error::config(format!(
                "`start_date` {start} is in the future, so no call could be read: set it to a past \
                 date, or leave it empty to read the whole history"
            ))),
            _ => Ok(()),
        }
    }

    /// A blank status (the spec's `minItems` already refuses an empty list) matches no call,
    /// so `call-details` would checkpoint past every call without fetching its details.
    fn validate_call_details_statuses(&self) -> Result<()> {
        match self.call_details_statuses.iter().position(String::is_empty) {
            Some(index) => Err(Error::config(format!(
                "`call_details_statuses.{index}` is blank: remove it or name a status, such as POST_PROCESSING_DONE"
            ))),
            None => Ok(()),
        }
    }

    /// Settings that are accepted but may not be what the user meant, one sentence each.
    /// `check` and `read` log them once the log layer is installed, so they reach the
    /// platform's logs.
    pub fn warnings(&self) -> Vec<String> {
        let undocumented: Vec<&str> = self
            .call_details_statuses
            .iter()
            .map(String::as_str)
            .filter(|status| !CALL_STATUSES.contains(status))
            .collect();
        if undocumented.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "`call_details_statuses` lists {undocumented:?}, which Clari does not document: \
             details are fetched only for calls Clari reports in exactly that status. \
             Check the spelling against Clari's statuses: {}",
            CALL_STATUSES.join(", ")
        )]
    }

    /// The parsed `start_date`, if any.
    pub fn start(&self) -> Result<Option<Timestamp>> {
        self.start_date
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.parse::<Timestamp>().map_err(|e| {
                    Error::config(format!("`start_date` {s:?} is not a date-time: {e}"))
                })
            })
            .transpose()
    }
}

impl DestinationConfig {
    pub fn from_value(raw: &Value) -> Result<Self> {
        let config: Self = parse(raw)?;
        warn_about_unknown_keys::<Self>(raw);
        config.api.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"api_key": "k-123", "api_secret": "p-456"})
    }

    #[test]
    fn defaults_apply_when_optional_fields_are_absent() {
        let config = SourceConfig::from_value(&minimal()).unwrap();
        assert_eq!(config.page_size, 100);
        assert_eq!(config.api.requests_per_second, 10);
        assert_eq!(config.lookback_window_days, 1);
        assert!(!config.include_private_calls);
        assert_eq!(config.api.base_url, DEFAULT_BASE_URL);
    }

    #[test]
    fn an_out_of_range_page_size_names_the_field() {
        let mut raw = minimal();
        raw["page_size"] = json!(500);
        let err = SourceConfig::from_value(&raw).unwrap_err();
        assert!(err.to_string().contains("`page_size`"), "{err}");
        assert_eq!(
            err.failure_type(),
            crate::protocol::FailureType::ConfigError
        );
    }

    #[test]
    fn the_indexing_margin_defaults_to_two_minutes_and_is_an_advanced_setting_of_at_most_an_hour() {
        assert_eq!(
            SourceConfig::from_value(&minimal())
                .unwrap()
                .indexing_margin_seconds,
            120
        );
        let mut raw = minimal();
        raw["indexing_margin_seconds"] = json!(0);
        assert_eq!(
            SourceConfig::from_value(&raw)
                .unwrap()
                .indexing_margin_seconds,
            0
        );
        raw["indexing_margin_seconds"] = json!(3601);
        let err = SourceConfig::from_value(&raw).unwrap_err();
        assert!(
            err.to_string().contains("`indexing_margin_seconds`"),
            "{err}"
        );

        let spec = connection_specification::<SourceConfig>();
        let order = |field: &str| spec["properties"][field]["order"].as_u64().unwrap();
        let last_of_the_others = spec["properties"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|field| *field != "indexing_margin_seconds")
            .map(|field| order(field))
            .max()
            .unwrap();
        assert!(order("indexing_margin_seconds") > last_of_the_others);
    }

    #[test]
    fn a_missing_secret_is_a_config_error() {
        let err = SourceConfig::from_value(&json!({"api_key": "k"})).unwrap_err();
        assert!(err.to_string().contains("api_secret"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback() {
        let mut raw = minimal();
        raw["base_url"] = json!("http://example.com");
        assert!(
            SourceConfig::from_value(&raw)
                .unwrap_err()
                .to_string()
                .contains("loopback")
        );
        raw["base_url"] = json!("http://127.0.0.1:8080");
        assert!(SourceConfig::from_value(&raw).is_ok());
    }

    #[test]
    fn a_malformed_start_date_is_rejected_with_its_name() {
        let mut raw = minimal();
        raw["start_date"] = json!("yesterday");
        assert!(
            SourceConfig::from_value(&raw)
                .unwrap_err()
                .to_string()
                .contains("start_date")
        );
    }

    #[test]
    fn an_empty_list_of_statuses_or_a_blank_status_is_refused_naming_the_field() {
        let spec = connection_specification::<SourceConfig>();
        assert_eq!(
            spec["properties"]["call_details_statuses"]["minItems"],
            json!(1)
        );
        for statuses in [json!([]), json!(["POST_PROCESSING_DONE", "  "])] {
            let mut raw = minimal();
            raw["call_details_statuses"] = statuses;
            let err = SourceConfig::from_value(&raw).unwrap_err();
            assert!(err.to_string().contains("call_details_statuses"), "{err}");
        }
    }

    #[test]
    fn statuses_are_read_in_clari_case_whatever_their_spelling() {
        let mut raw = minimal();
        raw["call_details_statuses"] = json!(["post_processing_done", " Processed "]);
        let config = SourceConfig::from_value(&raw).unwrap();
        assert_eq!(
            config.call_details_statuses,
            ["POST_PROCESSING_DONE", "PROCESSED"]
        );
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    }

    #[test]
    fn an_undocumented_status_is_kept_with_one_warning_naming_the_documented_ones() {
        let mut raw = minimal();
        raw["call_details_statuses"] = json!(["TRANSCRIBED", "POST_PROCESSING_DONE", "ARCHIVED"]);
        let config = SourceConfig::from_value(&raw).unwrap();
        assert_eq!(config.call_details_statuses.len(), 3);
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            ["\"TRANSCRIBED\"", "\"ARCHIVED\"", &CALL_STATUSES.join(", ")]
                .iter()
                .all(|needle| warnings[0].contains(needle)),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn a_start_date_in_the_future_is_refused_for_reading_with_the_date() {
        let now: Timestamp = "2025-06-01T00:00:00Z".parse().unwrap();
        let with_start = |start: Value| {
            let mut raw = minimal();
            raw["start_date"] = start;
            SourceConfig::from_value(&raw).unwrap()
        };
        let err = with_start(json!("2025-06-01T00:00:01Z"))
            .validate_for_reading(now)
            .unwrap_err();
        let message = err.user_message();
        assert!(
            ["`start_date`", "2025-06-01T00:00:01Z", "future", "no call"]
                .iter()
                .all(|needle| message.contains(needle)),
            "{message}"
        );
        assert_eq!(
            err.failure_type(),
            crate::protocol::FailureType::ConfigError
        );
        for readable in [json!("2025-06-01T00:00:00Z"), json!(null)] {
            assert!(with_start(readable).validate_for_reading(now).is_ok());
        }
    }

    #[test]
    fn a_start_date_of_the_wrong_form_gets_one_sentence_with_the_expected_form() {
        let mut raw = minimal();
        raw["start_date"] = json!("2024-01-01");
        let message = SourceConfig::from_value(&raw).unwrap_err().user_message();
        assert!(
            message.contains("YYYY-MM-DDTHH:mm:ssZ") && message.contains("2024-01-01T00:00:00Z"),
            "{message}"
        );
        assert_eq!(message.matches("start_date").count(), 1, "{message}");
        assert!(!message.contains("[0-9]"), "a regex: {message}");
        let spec = connection_specification::<SourceConfig>();
        assert_eq!(
            spec["properties"]["start_date"]["pattern_descriptor"],
            "YYYY-MM-DDTHH:mm:ssZ"
        );
    }

    #[test]
    fn a_start_date_with_any_offset_is_accepted_and_kept_in_utc() {
        for (given, utc) in [
            ("2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00Z"),
            ("2024-01-01T02:00:00+02:00", "2024-01-01T00:00:00Z"),
            ("2023-12-31T19:30:00-04:30", "2024-01-01T00:00:00Z"),
            ("2024-01-01T00:00:00.250+00:00", "2024-01-01T00:00:00.25Z"),
            ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        ] {
            let mut raw = minimal();
            raw["start_date"] = json!(given);
            let config = SourceConfig::from_value(&raw).unwrap();
            assert_eq!(config.start_date.as_deref(), Some(utc), "{given}");
        }
    }

    #[test]
    fn a_number_too_large_for_its_field_is_refused_naming_the_field() {
        let mut raw = minimal();
        raw["requests_per_second"] = json!(1e20);
        let message = SourceConfig::from_value(&raw).unwrap_err().user_message();
        assert!(message.contains("`requests_per_second`"), "{message}");
        let spec = connection_specification::<SourceConfig>();
        assert!(spec["properties"]["requests_per_second"]["maximum"].is_u64());
    }

    /// With a bound on each, the spec check refuses every integer serde would: no type error
    /// can reach the user without its field's name.
    #[test]
    fn every_integer_field_of_both_specs_is_bounded_within_u32() {
        for spec in [
            connection_specification::<SourceConfig>(),
            connection_specification::<DestinationConfig>(),
        ] {
            for (field, property) in spec["properties"].as_object().unwrap() {
                if property["type"] == "integer"
                    || property["type"]
                        .as_array()
                        .is_some_and(|t| t.contains(&json!("integer")))
                {
                    let max = property["maximum"].as_u64();
                    assert!(max.is_some_and(|max| max <= u64::from(u32::MAX)), "{field}");
                    assert!(property["minimum"].as_u64().is_some(), "{field}");
                }
            }
        }
    }

    #[test]
    fn integral_floats_are_accepted_for_integer_fields_of_both_roles() {
        let mut raw = minimal();
        raw["requests_per_second"] = json!(10.0);
        raw["page_size"] = json!(50.0);
        raw["call_details_max_requests"] = json!(5.0);
        let source = SourceConfig::from_value(&raw).unwrap();
        assert_eq!(source.api.requests_per_second, 10);
        assert_eq!(source.page_size, 50);
        assert_eq!(source.call_details_max_requests, Some(5));
        let mut raw = minimal();
        raw["rate_limit_patience_minutes"] = json!(3.0);
        let destination = DestinationConfig::from_value(&raw).unwrap();
        assert_eq!(destination.api.rate_limit_patience_minutes, 3);
        raw["rate_limit_patience_minutes"] = json!(2.5);
        let message = DestinationConfig::from_value(&raw)
            .unwrap_err()
            .user_message();
        assert!(
            message.contains("`rate_limit_patience_minutes`"),
            "{message}"
        );
    }

    #[test]
    fn unknown_keys_are_listed_except_underscored_comments() {
        let mut raw = minimal();
        raw["start_data"] = json!("2024-01-01T00:00:00Z");
        raw["page_sise"] = json!(10);
        raw["_comment"] = json!("for people");
        let mut unknown = unknown_keys::<SourceConfig>(&raw);
        unknown.sort();
        assert_eq!(unknown, ["page_sise", "start_data"]);
        assert!(SourceConfig::from_value(&raw).is_ok(), "still accepted");
        raw["on_rejected_record"] = json!("skip");
        assert!(unknown_keys::<SourceConfig>(&raw).contains(&"on_rejected_record".to_owned()));
        assert!(
            !unknown_keys::<DestinationConfig>(&raw).contains(&"on_rejected_record".to_owned())
        );
    }

    #[test]
    fn secrets_never_print() {
        let config = SourceConfig::from_value(&minimal()).unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("k-123") && !debug.contains("p-456"),
            "{debug}"
        );
    }

    /// The fields whose values `secrets` returns, found by value in `raw` (whose values are
    /// distinct).
    fn masked_fields(raw: &Value, secrets: Vec<String>) -> Vec<String> {
        let mut fields: Vec<String> = secrets
            .iter()
            .filter_map(|secret| {
                raw.as_object()?
                    .iter()
                    .find(|(_, value)| value.as_str() == Some(secret))
                    .map(|(name, _)| name.clone())
            })
            .collect();
        fields.sort();
        fields
    }

    #[test]
    fn the_spec_s_secret_fields_are_exactly_the_masked_fields_of_both_roles() {
        let raw = minimal();
        let source = SourceConfig::from_value(&raw).unwrap();
        let destination = DestinationConfig::from_value(&raw).unwrap();
        for (role, marked, masked) in [
            (
                "source",
                secret_fields::<SourceConfig>(),
                masked_fields(&raw, source.api.secrets()),
            ),
            (
                "destination",
                secret_fields::<DestinationConfig>(),
                masked_fields(&raw, destination.api.secrets()),
            ),
        ] {
            let mut marked = marked;
            marked.sort();
            assert_eq!(marked, ["api_key", "api_secret"], "{role}");
            assert_eq!(masked, marked, "{role}");
        }
        let mut raw_secrets = secret_values::<SourceConfig>(&raw);
        raw_secrets.sort();
        assert_eq!(raw_secrets, ["k-123", "p-456"]);
    }

    #[test]
    fn the_spec_marks_both_credentials_secret_and_allows_extra_keys() {
        let spec = connection_specification::<SourceConfig>();
        assert_eq!(spec["properties"]["api_key"]["airbyte_secret"], json!(true));
        assert_eq!(
            spec["properties"]["api_secret"]["airbyte_secret"],
            json!(true)
        );
        assert_eq!(spec["additionalProperties"], json!(true));
        assert_eq!(
            spec["$schema"],
            json!("http://json-schema.org/draft-07/schema#")
        );
        assert!(!spec.to_string().contains("$ref"));
    }
}
