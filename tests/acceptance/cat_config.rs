//! `acceptance-test-config.yml` as CAT reads it: these structs mirror the pydantic models of
//! `connector_acceptance_test/config.py` (CAT 3.x), defaults included. CAT's `BaseConfig`
//! forbids extra keys, so every struct but the generic group does too: a key CAT would reject
//! is a parse error here, before any test runs.

// Fields CAT uses only for what needs Docker (deployment mode, backward compatibility against a
// published image, OAuth defaults, helper containers) are parsed, so the file is checked, but unused.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn config_path() -> String {
    "secrets/config.json".to_owned()
}

fn spec_path() -> String {
    "secrets/spec.json".to_owned()
}

fn yes() -> bool {
    true
}

/// CAT's root `Config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatConfig {
    pub connector_image: String,
    pub acceptance_tests: AcceptanceTests,
    pub base_path: Option<String>,
    #[serde(default)]
    pub test_strictness_level: Strictness,
    #[serde(default)]
    pub custom_environment_variables: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strictness {
    #[default]
    Low,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentMode {
    Cloud,
    Oss,
}

/// `AcceptanceTestConfigurations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptanceTests {
    pub spec: Option<Group<SpecTest>>,
    pub connection: Option<Group<ConnectionTest>>,
    pub discovery: Option<Group<DiscoveryTest>>,
    pub basic_read: Option<Group<BasicReadTest>>,
    pub full_refresh: Option<Group<FullRefreshTest>>,
    pub incremental: Option<Group<IncrementalTest>>,
    pub connector_attributes: Option<Group<ConnectorAttributesTest>>,
    pub connector_documentation: Option<Group<DocumentationTest>>,
    pub client_container_config: Option<ClientContainerConfig>,
}

/// `GenericTestConfig`: `tests`, or a `bypass_reason`, never both. (A pydantic generic model
/// without `extra = "forbid"`, so unknown keys are ignored here as in CAT.)
#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub struct Group<T> {
    pub bypass_reason: Option<String>,
    pub tests: Option<Vec<T>>,
}

impl<T> Group<T> {
    /// The declared cases, or why the group is unusable.
    pub fn cases(&self) -> Result<&[T], String> {
        match (&self.tests, &self.bypass_reason) {
            (Some(tests), Some(_)) if !tests.is_empty() => {
                Err("You can't set a bypass_reason if tests are set.".to_owned())
            }
            (Some(tests), _) => Ok(tests),
            (None, _) => Ok(&[]),
        }
    }

    /// Declared with tests, or bypassed with a reason (what high strictness requires).
    pub fn is_declared(&self) -> bool {
        self.tests.as_ref().is_some_and(|t| !t.is_empty())
            || self.bypass_reason.as_ref().is_some_and(|r| !r.is_empty())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackwardCompatibility {
    pub previous_connector_version: Option<String>,
    pub disable_for_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthTest {
    pub oauth: Option<bool>,
    pub bypass_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecTest {
    #[serde(default = "spec_path")]
    pub spec_path: String,
    #[serde(default = "config_path")]
    pub config_path: String,
    pub timeout_seconds: Option<u64>,
    pub deployment_mode: Option<DeploymentMode>,
    pub backward_compatibility_tests_config: Option<BackwardCompatibility>,
    pub auth_default_method: Option<OAuthTest>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    #[default]
    Succeed,
    Failed,
    Exception,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionTest {
    #[serde(default = "config_path")]
    pub config_path: String,
    #[serde(default)]
    pub status: ConnectionStatus,
    pub timeout_seconds: Option<u64>,
    pub deployment_mode: Option<DeploymentMode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryTest {
    #[serde(default = "config_path")]
    pub config_path: String,
    pub timeout_seconds: Option<u64>,
    pub deployment_mode: Option<DeploymentMode>,
    pub backward_compatibility_tests_config: Option<BackwardCompatibility>,
    #[serde(default = "yes")]
    pub validate_primary_keys_data_type: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRecords {
    pub bypass_reason: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub exact_order: bool,
}

/// `EmptyStreamConfiguration` (also used for `missing_streams` and streams without a key).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedBypass {
    pub name: String,
    pub bypass_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bypass {
    pub bypass_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsupportedFileType {
    pub extension: String,
    pub bypass_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTypes {
    pub bypass_reason: Option<String>,
    pub unsupported_types: Option<Vec<UnsupportedFileType>>,
    pub skip_test: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientContainerConfig {
    pub secrets_path: Option<String>,
    pub client_container_dockerfile_path: Option<String>,
    pub setup_command: Option<Vec<String>>,
    pub teardown_command: Option<Vec<String>>,
    pub between_syncs_command: Option<Vec<String>>,
    pub final_teardown_command: Option<Vec<String>>,
}

pub type IgnoredFields = BTreeMap<String, Vec<NamedBypass>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicReadTest {
    #[serde(default = "config_path")]
    pub config_path: String,
    pub deployment_mode: Option<DeploymentMode>,
    pub configured_catalog_path: Option<String>,
    #[serde(default)]
    pub empty_streams: Vec<NamedBypass>,
    pub expect_records: Option<ExpectedRecords>,
    #[serde(default = "yes")]
    pub validate_schema: bool,
    pub validate_stream_statuses: Option<bool>,
    #[serde(default = "yes")]
    pub validate_state_messages: bool,
    #[serde(default = "yes")]
    pub validate_primary_keys_data_type: bool,
    #[serde(default = "yes")]
    pub fail_on_extra_columns: bool,
    #[serde(default)]
    pub validate_data_points: bool,
    #[serde(default = "yes")]
    pub expect_trace_message_on_failure: bool,
    pub timeout_seconds: Option<u64>,
    pub file_types: Option<FileTypes>,
    pub ignored_fields: Option<IgnoredFields>,
    pub client_container_config: Option<ClientContainerConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullRefreshTest {
    #[serde(default = "config_path")]
    pub config_path: String,
    pub configured_catalog_path: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub deployment_mode: Option<DeploymentMode>,
    pub ignored_fields: Option<IgnoredFields>,
    pub client_container_config: Option<ClientContainerConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorFormatStream {
    pub name: String,
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorFormat {
    pub format: Option<String>,
    #[serde(default)]
    pub streams: Vec<CursorFormatStream>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FutureState {
    pub future_state_path: Option<String>,
    #[serde(default)]
    pub missing_streams: Vec<NamedBypass>,
    pub bypass_reason: Option<String>,
    pub cursor_format: Option<CursorFormat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalTest {
    #[serde(default = "config_path")]
    pub config_path: String,
    pub configured_catalog_path: Option<String>,
    pub future_state: Option<FutureState>,
    pub timeout_seconds: Option<u64>,
    pub deployment_mode: Option<DeploymentMode>,
    pub skip_comprehensive_incremental_tests: Option<bool>,
    pub client_container_config: Option<ClientContainerConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorAttributesTest {
    pub timeout_seconds: Option<u64>,
    #[serde(default = "config_path")]
    pub config_path: String,
    pub streams_without_primary_key: Option<Vec<NamedBypass>>,
    pub allowed_hosts: Option<Bypass>,
    pub suggested_streams: Option<Bypass>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentationTest {
    pub timeout_seconds: Option<u64>,
    #[serde(default = "config_path")]
    pub config_path: String,
}

/// Parses an `acceptance-test-config.yml`.
pub fn load(path: &std::path::Path) -> Result<CatConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
