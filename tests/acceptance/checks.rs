//! CAT's assertions on the spec, the discovered catalog and the records, each under the name of
//! the CAT test method that makes it.

use std::collections::{BTreeMap, BTreeSet};

use jsonschema::{Draft, Validator};
use serde_json::{Map, Value, json};

use crate::harness::Case;

/// Property names CAT's `test_secret_is_properly_marked` requires to be `airbyte_secret`, plus
/// the two credentials of this connector (Clari's API key and its password), which we mark too.
const SECRET_NAMES: [&str; 19] = [
    "client_token",
    "access_token",
    "api_token",
    "token",
    "secret",
    "client_secret",
    "password",
    "key",
    "service_account_info",
    "service_account",
    "tenant_id",
    "certificate",
    "jwt",
    "credentials",
    "app_id",
    "appid",
    "refresh_token",
    "api_key",
    "api_secret",
];

/// Keywords `test_forbidden_complex_types` refuses in a spec.
const FORBIDDEN_SPEC_KEYWORDS: [&str; 10] = [
    "not",
    "anyOf",
    "patternProperties",
    "prefixItems",
    "allOf",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "dependentRequired",
];

/// Every TestSpec assertion on one SPEC payload. `config` is the test's config; `expected` the
/// file at `spec_path` when it exists.
pub fn check_spec(case: &Case, spec: &Value, config: &Value, expected: Option<&Value>) {
    let schema = &spec["connectionSpecification"];
    case.at("test_spec").ensure(
        schema.is_object(),
        || "the SPEC has no connectionSpecification object".to_owned(),
        spec,
    );
    if let Some(expected) = expected {
        case.at("test_match_expected").ensure(
            spec == expected,
            || "the spec differs from the file at spec_path".to_owned(),
            spec,
        );
    }

    // test_config_match_spec: the config minus keys starting with `_` validates.
    let validator = jsonschema::draft7::new(schema).unwrap_or_else(|e| {
        case.at("test_config_match_spec").fail(
            format!("connectionSpecification is not a valid JSON schema: {e}"),
            schema,
        )
    });
    let mut visible = config.clone();
    if let Value::Object(map) = &mut visible {
        map.retain(|k, _| !k.starts_with('_'));
    }
    let problems: Vec<String> = validator
        .iter_errors(&visible)
        .map(|e| e.to_string())
        .collect();
    case.at("test_config_match_spec").ensure(
        problems.is_empty(),
        || {
            format!(
                "the config does not match the spec: {}",
                problems.join("; ")
            )
        },
        &json!({"config_keys": visible.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>())}),
    );

    check_no_key_anywhere(
        &case.at("test_defined_refs_exist_in_json_spec_file"),
        schema,
        "$ref",
    );
    check_additional_properties(&case.at("test_additionalProperties_is_true"), schema);
    check_spec_node(case, schema, "", true);
}

/// Fails if `key` appears as an object key anywhere in `value`.
pub fn check_no_key_anywhere(case: &Case, value: &Value, key: &str) {
    if let Some(found) = find_key(value, key) {
        case.fail(format!("`{key}` is not allowed here"), found);
    }
}

fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(key) {
                return Some(value);
            }
            map.values().find_map(|v| find_key(v, key))
        }
        Value::Array(items) => items.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

/// `additionalProperties`, wherever it is set, must be `true`.
pub fn check_additional_properties(case: &Case, value: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(additional) = map.get("additionalProperties") {
                case.ensure(
                    additional == &Value::Bool(true),
                    || format!("additionalProperties must be true, found {additional}"),
                    value,
                );
            }
            map.values()
                .for_each(|v| check_additional_properties(case, v));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| check_additional_properties(case, v)),
        _ => {}
    }
}

fn types_of(node: &Value) -> Vec<&str> {
    match &node["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The structural TestSpec rules, on one schema node and below.
fn check_spec_node(case: &Case, node: &Value, path: &str, is_root: bool) {
    let Value::Object(map) = node else {
        return;
    };
    let offending = &json!({ "path": path, "schema": node });
    for keyword in FORBIDDEN_SPEC_KEYWORDS {
        case.at("test_forbidden_complex_types").ensure(
            !map.contains_key(keyword),
            || format!("the keyword `{keyword}` is not allowed in a spec (at {path:?})"),
            offending,
        );
    }
    match &node["type"] {
        Value::Null | Value::String(_) => {}
        Value::Array(items) => case.at("test_property_type_is_not_array").ensure(
            items.len() == 2 && items[1] == "null" && items[0] != "null",
            || format!("a type must be one type or [T, \"null\"] (at {path:?})"),
            offending,
        ),
        other => case.at("test_property_type_is_not_array").fail(
            format!("`type` must be a string or a list, found {other}"),
            offending,
        ),
    }
    let types = types_of(node);
    if types.contains(&"object") && !is_root {
        let has_properties = node["properties"]
            .as_object()
            .is_some_and(|p| !p.is_empty());
        case.at("test_object_not_empty").ensure(
            has_properties || node.get("oneOf").is_some(),
            || format!("an object below the root needs properties or oneOf (at {path:?})"),
            offending,
        );
    }
    if types.contains(&"array")
        && let Some(items) = node.get("items")
    {
        case.at("test_array_type").ensure(
            items.is_object(),
            || format!("array items must be a single schema (at {path:?})"),
            offending,
        );
        let item_types = types_of(items);
        case.at("test_array_type").ensure(
            items.get("enum").is_some()
                || item_types
                    .iter()
                    .any(|t| ["object", "string", "number", "integer"].contains(t)),
            || format!("array items must be objects, strings, numbers, integers or an enum (at {path:?})"),
            offending,
        );
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let distinct: BTreeSet<String> = values.iter().map(Value::to_string).collect();
        case.at("test_enum_usage").ensure(
            distinct.len() == values.len(),
            || format!("enum values must be unique (at {path:?})"),
            offending,
        );
    }
    if let Some(display) = node.get("display_type") {
        case.at("test_display_type").ensure(
            node.get("oneOf").is_some() && (display == "dropdown" || display == "radio"),
            || format!("display_type must be dropdown or radio, next to a oneOf (at {path:?})"),
            offending,
        );
    }
    if let Some(variants) = node.get("oneOf").and_then(Value::as_array) {
        check_one_of(&case.at("test_oneof_usage"), node, variants, path);
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        check_properties(case, properties, path, is_root);
        for (name, property) in properties {
            check_spec_node(case, property, &format!("{path}/{name}"), false);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child @ Value::Object(_)) = node.get(key) {
            check_spec_node(case, child, &format!("{path}/{key}"), false);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, child) in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_spec_node(case, child, &format!("{path}/{key}/{i}"), false);
        }
    }
}

/// Secrets, `order` and `group` rules on one `properties` map.
fn check_properties(case: &Case, properties: &Map<String, Value>, path: &str, top_level: bool) {
    let mut orders: BTreeMap<(String, i64), &str> = BTreeMap::new();
    for (name, property) in properties {
        let offending = &json!({ "path": format!("{path}/{name}"), "schema": property });
        let types = types_of(property);
        let can_hold_secret = types
            .iter()
            .any(|t| ["string", "integer", "number"].contains(t))
            && property.get("const").is_none();
        if SECRET_NAMES.contains(&name.to_lowercase().as_str()) && can_hold_secret {
            case.at("test_secret_is_properly_marked").ensure(
                property["airbyte_secret"] == true,
                || format!("the property `{name}` holds a secret and must be marked airbyte_secret: true"),
                offending,
            );
        }
        if property["airbyte_secret"] == true {
            case.at("test_secret_is_properly_marked").ensure(
                can_hold_secret,
                || format!("`{name}` is marked airbyte_secret but cannot hold a secret (boolean, object or const)"),
                offending,
            );
        }
        if property.get("group").is_some() {
            case.at("test_nested_group").ensure(
                top_level,
                || format!("`group` is only allowed on top-level properties (`{name}`)"),
                offending,
            );
        }
        if let Some(order) = property.get("order").and_then(Value::as_i64) {
            let group = property["group"].as_str().unwrap_or_default().to_owned();
            if let Some(other) = orders.insert((group, order), name) {
                case.at("test_duplicate_order").fail(
                    format!("`{name}` and `{other}` share order {order}"),
                    offending,
                );
            }
        }
    }
}

/// Airbyte's oneOf rules: an object parent, object variants with properties, and one property
/// common to all variants whose `const` tells them apart.
fn check_one_of(case: &Case, node: &Value, variants: &[Value], path: &str) {
    let offending = &json!({ "path": path, "schema": node });
    case.ensure(
        types_of(node).contains(&"object"),
        || format!("the parent of a oneOf must be an object (at {path:?})"),
        offending,
    );
    let mut common: Option<BTreeSet<String>> = None;
    for variant in variants {
        let properties = variant["properties"].as_object();
        case.ensure(
            types_of(variant).contains(&"object") && properties.is_some(),
            || format!("every oneOf variant must be an object with properties (at {path:?})"),
            offending,
        );
        let with_const: BTreeSet<String> = properties
            .into_iter()
            .flatten()
            .filter(|(_, p)| p.get("const").is_some())
            .map(|(k, _)| k.clone())
            .collect();
        common = Some(match common {
            None => with_const,
            Some(c) => c.intersection(&with_const).cloned().collect(),
        });
    }
    let common = common.unwrap_or_default();
    let discriminator = common.iter().find(|key| {
        let consts: BTreeSet<String> = variants
            .iter()
            .map(|v| v["properties"][key.as_str()]["const"].to_string())
            .collect();
        consts.len() == variants.len()
    });
    let Some(key) = discriminator else {
        case.fail(
            format!("the oneOf variants need one common property with a distinct const each (at {path:?})"),
            offending,
        );
    };
    for variant in variants {
        let property = &variant["properties"][key.as_str()];
        if let Some(default) = property.get("default") {
            case.ensure(
                Some(default) == property.get("const"),
                || format!("`{key}`'s default must equal its const (at {path:?})"),
                offending,
            );
        }
        if let Some(values) = property.get("enum").and_then(Value::as_array) {
            case.ensure(
                values.len() == 1 && Some(&values[0]) == property.get("const"),
                || format!("`{key}`'s enum must be its const alone (at {path:?})"),
                offending,
            );
        }
    }
}

/// Every TestDiscovery assertion on the discovered streams.
pub fn check_catalog(case: &Case, streams: &[Value], validate_primary_keys_data_type: bool) {
    case.at("test_discover").ensure(
        !streams.is_empty(),
        || "the catalog must have at least one stream".to_owned(),
        &json!({ "streams": streams }),
    );
    let mut names = BTreeSet::new();
    for stream in streams {
        let name = stream["name"].as_str().unwrap_or_default();
        case.at("test_discover").ensure(
            names.insert(name.to_owned()),
            || format!("stream names must be unique: `{name}` appears twice"),
            stream,
        );
        let schema = &stream["json_schema"];
        if let Err(e) = jsonschema::draft7::meta::validate(schema) {
            case.at("test_streams_have_valid_json_schemas").fail(
                format!("`{name}`'s json_schema is not a valid Draft 7 schema: {e}"),
                stream,
            );
        }
        case.at("test_defined_cursors_exist_in_schema").ensure(
            schema["properties"].is_object(),
            || format!("`{name}`'s json_schema must have top-level properties"),
            stream,
        );
        if let Some(cursor) = stream.get("default_cursor_field").and_then(Value::as_array) {
            case.at("test_defined_cursors_exist_in_schema").ensure(
                property_at(schema, cursor).is_some(),
                || format!("`{name}`'s default_cursor_field {cursor:?} is not in its schema"),
                stream,
            );
        }
        check_no_key_anywhere(
            &case.at("test_defined_refs_exist_in_schema"),
            schema,
            "$ref",
        );
        for keyword in ["allOf", "not"] {
            check_no_key_anywhere(
                &case.at("test_defined_keyword_exist_in_schema"),
                schema,
                keyword,
            );
        }
        for key in stream["source_defined_primary_key"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let path = key.as_array().cloned().unwrap_or_default();
            let property = property_at(schema, &path);
            case.at("test_primary_keys_exist_in_schema").ensure(
                property.is_some(),
                || format!("`{name}`'s primary key {key} is not in its schema"),
                stream,
            );
            if validate_primary_keys_data_type {
                let types = property.map(types_of).unwrap_or_default();
                case.at("test_primary_keys_data_type").ensure(
                    !types.iter().any(|t| *t == "object" || *t == "array"),
                    || format!("`{name}`'s primary key {key} must not be an object or an array"),
                    stream,
                );
            }
        }
        case.at("test_streams_has_sync_modes").ensure(
            stream["supported_sync_modes"]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            || format!("`{name}` must list its supported_sync_modes"),
            stream,
        );
        check_additional_properties(&case.at("test_additional_properties_is_true"), schema);
    }
}

/// The schema of the property at `path` (a list of names), through nested `properties`.
pub fn property_at<'a>(schema: &'a Value, path: &[Value]) -> Option<&'a Value> {
    let mut node = schema;
    for part in path {
        node = node.get("properties")?.get(part.as_str()?)?;
    }
    Some(node)
}

/// CAT's `date-time` check: its regex `^\d{4}-\d?\d-\d?\d(\s|T)\d?\d:\d?\d:\d?\d(.\d+)?.*$`
/// (everything after the seconds is accepted) and a plausible date and time, standing in for
/// pendulum's lenient parse.
pub fn cat_date_time(value: &str) -> bool {
    fn digits(s: &[u8], min: usize, max: usize) -> Option<(u32, usize)> {
        let n = s
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n < min {
            return None;
        }
        let number = std::str::from_utf8(&s[..n]).ok()?.parse().ok()?;
        Some((number, n))
    }
    let s = value.as_bytes();
    let mut at = 0;
    let mut parts = Vec::new();
    for (i, (min, max, separator)) in [
        (4, 4, Some(b"-" as &[u8])),
        (1, 2, Some(b"-")),
        (1, 2, None),
        (1, 2, Some(b":")),
        (1, 2, Some(b":")),
        (1, 2, Some(b"")),
    ]
    .into_iter()
    .enumerate()
    {
        let Some((number, n)) = digits(&s[at..], min, max) else {
            return false;
        };
        parts.push(number);
        at += n;
        match separator {
            Some(sep) if !sep.is_empty() => {
                if !s[at..].starts_with(sep) {
                    return false;
                }
                at += 1;
            }
            Some(_) => {}
            None if i == 2 => {
                // The date–time separator: whitespace or `T`.
                if !s
                    .get(at)
                    .is_some_and(|b| *b == b'T' || b.is_ascii_whitespace())
                {
                    return false;
                }
                at += 1;
            }
            None => {}
        }
    }
    let [_, month, day, hour, minute, second] = parts[..] else {
        return false;
    };
    (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24 && minute < 60 && second < 61
}

/// A record validator as CAT's `verify_records_schema` builds it: Draft-7 keywords (compiled with
/// Draft-4 semantics, where `1.0` is not an integer, like CAT's strict integer check; see
/// `clari_copilot::catalog::record_validator`), formats checked, and CAT's own `date-time` rule.
pub fn record_validator(schema: &Value) -> Validator {
    jsonschema::options()
        .with_draft(Draft::Draft4)
        .should_validate_formats(true)
        .with_format("date-time", cat_date_time)
        .build(schema)
        .unwrap_or_else(|e| panic!("a stream schema does not compile: {e}"))
}

/// TestBasicRead's schema checks on every record: it validates, and shares at least one field
/// with its schema.
pub fn check_records_schema(case: &Case, records: &[&Value], catalog: &Value) {
    let mut validators: BTreeMap<String, (Validator, BTreeSet<String>)> = BTreeMap::new();
    for configured in catalog["streams"].as_array().into_iter().flatten() {
        let stream = &configured["stream"];
        let fields = stream["json_schema"]["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        validators.insert(
            stream["name"].as_str().unwrap_or_default().to_owned(),
            (record_validator(&stream["json_schema"]), fields),
        );
    }
    for record in records {
        let stream = record["record"]["stream"].as_str().unwrap_or_default();
        let data = &record["record"]["data"];
        let Some((validator, fields)) = validators.get(stream) else {
            case.fail(
                format!("a record of `{stream}`, which is not in the configured catalog"),
                record,
            );
        };
        let problems: Vec<String> = validator
            .iter_errors(data)
            .map(|e| format!("{} at {}", e, e.instance_path().as_str()))
            .collect();
        case.ensure(
            problems.is_empty(),
            || {
                format!(
                    "a `{stream}` record does not match its schema: {}",
                    problems.join("; ")
                )
            },
            record,
        );
        let shared = data
            .as_object()
            .is_some_and(|d| d.keys().any(|k| fields.contains(k)));
        case.ensure(
            shared,
            || format!("a `{stream}` record has no field in common with its schema"),
            record,
        );
    }
}

/// The primary key of a record as a comparable string (`None` if a part is missing).
pub fn primary_key_of(data: &Value, key: &Value) -> Vec<Value> {
    key.as_array()
        .into_iter()
        .flatten()
        .map(|path| {
            let mut node = data;
            for part in path.as_array().into_iter().flatten() {
                node = part
                    .as_str()
                    .and_then(|p| node.get(p))
                    .unwrap_or(&Value::Null);
            }
            node.clone()
        })
        .collect()
}
