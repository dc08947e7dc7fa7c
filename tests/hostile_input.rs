//! Hostile input never panics and always gets a message: arbitrary and deeply nested JSON
//! into config, catalog, state and page parsing (proptest), invalid UTF-8 and oversized files.

use clari_copilot::cli::parse_catalog;
use clari_copilot::config::{SourceConfig, read_json_file};
use clari_copilot::source::{InputState, page};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON values, a few levels deep, with the keys our parsers look for.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("api_key".to_owned()),
        Just("streams".to_owned()),
        Just("stream".to_owned()),
        Just("stream_state".to_owned()),
        Just("stream_descriptor".to_owned()),
        Just("name".to_owned()),
        Just("calls".to_owned()),
        Just("pagination".to_owned()),
        Just("last_modified_time".to_owned()),
        Just("id".to_owned()),
        "[a-z_]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn config_catalog_and_state_parsing_never_panic(value in json_value()) {
        if let Err(e) = SourceConfig::from_value(&value) {
            prop_assert!(!e.user_message().is_empty());
        }
        if let Err(e) = parse_catalog(value.clone()) {
            prop_assert!(e.user_message().contains("catalog"));
        }
        match InputState::from_value(&value) {
            Ok(state) => { let _ = state.cursor("calls", "last_modified_time"); }
            Err(e) => prop_assert!(e.user_message().contains("state")),
        }
    }

    #[test]
    fn page_parsing_never_panics_on_arbitrary_bodies(value in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let body = value.to_string();
        for candidate in [body.as_bytes(), bytes.as_slice()] {
            if let Ok(page) = page::parse(candidate, &["calls"], "/calls") {
                for record in page.records {
                    let _ = page::field_text(record, "id");
                }
            }
        }
    }
}

#[test]
fn deeply_nested_json_never_overflows_the_stack() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = page::parse(deep.as_bytes(), &["calls"], "/calls").unwrap_err();
    assert!(err.to_string().contains("/calls"), "{err}");
    let nested_record = format!(
        "{{\"calls\":[{{\"id\":\"a\",\"x\":{}1{}}}]}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    // A deep record inside a page is still valid JSON: it is passed through untouched and its
    // key is read without walking the nesting.
    let page = page::parse(nested_record.as_bytes(), &["calls"], "/calls").unwrap();
    assert_eq!(page::field_text(page.records[0], "id").unwrap(), "a");
    assert!(page.records[0].get().len() > 20_000);
}

#[test]
fn a_config_file_with_invalid_utf8_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, b"{\"api_key\": \"\xff\xfe\"}").unwrap();
    let err = read_json_file(&path, "config").unwrap_err();
    assert!(err.user_message().contains("config.json"), "{err}");
}

#[test]
fn an_oversized_state_file_is_parsed_or_refused_without_panicking() {
    let big: Vec<Value> = (0..20_000)
        .map(|i| json!({"type": "STREAM", "stream": {"stream_descriptor": {"name": format!("s{i}")}, "stream_state": {"x": "y".repeat(50)}}}))
        .collect();
    let state = InputState::from_value(&Value::Array(big)).unwrap();
    assert_eq!(state.cursor("calls", "last_modified_time").unwrap(), None);
}
