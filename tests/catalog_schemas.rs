#![recursion_limit = "256"]
//! Checks on the embedded stream and write schemas: the rules the Connector Acceptance Test
//! applies to `discover` schemas and records, and the destination's pre-send validation.

use clari_copilot::catalog::{
    self, DESTINATION_OBJECTS, FieldError, RecordRejected, SOURCE_STREAMS, record_validator,
    validate_destination_record,
};
use clari_copilot::source::streams;
use serde_json::{Value, json};

const DRAFT_07: &str = "http://json-schema.org/draft-07/schema#";

/// Keywords the schemas may use: all mean the same in Draft 4 and Draft 7 (see
/// `catalog::record_validator`), and none is one CAT forbids (`$ref`, `allOf`, `anyOf`, `oneOf`,
/// `not`).
const ALLOWED_KEYWORDS: [&str; 12] = [
    "$schema",
    "title",
    "description",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "format",
    "airbyte_type",
    "minLength",
    "enum",
];

fn all_schemas() -> Vec<(String, &'static Value)> {
    let mut out = Vec::new();
    for name in SOURCE_STREAMS {
        let schema = catalog::source_schema_ref(name).expect("source schema exists");
        out.push((format!("source/{name}"), schema));
    }
    for name in DESTINATION_OBJECTS {
        let schema = catalog::destination_schema_ref(name).expect("destination schema exists");
        out.push((format!("destination/{name}"), schema));
    }
    out
}

/// Visits every schema node (the root, each property schema and each `items` schema) with a
/// readable path such as `calls.metrics.categories[].name`.
fn walk<'a>(node: &'a Value, path: &str, visit: &mut dyn FnMut(&str, &'a Value)) {
    visit(path, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(child, &format!("{path}.{name}"), visit);
        }
    }
    if let Some(items) = node.get("items") {
        walk(items, &format!("{path}[]"), visit);
    }
}

fn types_of(node: &Value) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn errors_of(object: &str, record: &Value) -> Vec<FieldError> {
    match validate_destination_record(object, record) {
        Ok(()) => Vec::new(),
        Err(RecordRejected::Invalid { errors, .. }) => errors,
        Err(other) => panic!("unexpected rejection: {other}"),
    }
}

fn source_errors(stream: &str, record: &Value) -> Vec<String> {
    let schema = catalog::source_schema_ref(stream).expect("schema");
    let validator = record_validator(schema).expect("schema compiles");
    validator
        .iter_errors(record)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn assert_source_record_valid(stream: &str, record: &Value) {
    let errors = source_errors(stream, record);
    assert!(errors.is_empty(), "{stream} record rejected: {errors:#?}");
    // Plain Draft 7 (as CAT's Draft7Validator, minus strict integers) agrees.
    let schema = catalog::source_schema_ref(stream).expect("schema");
    let draft7 = jsonschema::draft7::new(schema).expect("draft 7 compiles");
    assert!(
        draft7.is_valid(record),
        "{stream} record rejected by draft 7"
    );
}

/// amp-labs fixture `test/calls.json`, record 3 (§9 of the API reference), verbatim.
fn amp_call_record() -> Value {
    serde_json::from_str(
        r#"{"id":"31f12970-040d-4186-9b6f-ad0a08afbfb8","source_id":"REQUESTED_POST","title":"Ampersand Demo","users":[{"userId":"e04483dd-fb82-460a-a14e-b6f3e6a2b7a4","userEmail":"integration.user+clari@withampersand.com","isOrganizer":false,"personId":0}],"externalParticipants":[],"joinedParticipants":[],"status":"POST_PROCESSING_DONE","bot_not_join_reason":[],"type":"RECORDING","time":"2025-06-10T08:14:00.000Z","last_modified_time":"2025-06-10T10:39:36.637Z","audio_url":null,"video_url":null,"disposition":"CALL_DID_NOT_CONNECT_WITH_PROSPECT","metrics":{"talk_listen_ratio":1,"num_questions_asked":0,"num_questions_asked_by_reps":1,"call_duration":104,"total_speak_duration":98.23999786376953,"longest_monologue_duration":98.23999786376953,"longest_monologue_start_time":2.3499999046325684,"engaging_questions":0,"categories":[]},"call_review_page_url":"https://copilot.clari.com/call/31f12970-040d-4186-9b6f-ad0a08afbfb8"}"#,
    )
    .expect("fixture is JSON")
}

/// A call with every documented field present, nested objects filled in.
fn full_call_record() -> Value {
    json!({
        "id": "7549847e-4e97-4650-a20d-87791520e529",
        "source_id": "zoom-88123",
        "title": "Discovery: Acme",
        "users": [{"userId": "u-1", "userEmail": "rep@example.com", "isOrganizer": true, "personId": 1}],
        "externalParticipants": [{"name": "Pat", "email": "pat@acme.test", "phone": "+15550100", "personId": 2}],
        "joinedParticipants": [{"name": "Dipu Chaurasiya"}],
        "status": "PROCESSED",
        "bot_not_join_reason": ["IGNORED_NOT_ORGANIZER", "A_REASON_NOT_DOCUMENTED_YET"],
        "type": "ZOOM",
        "time": "2025-06-11T14:25:00.000Z",
        "icaluid": "040000008200E00074C5B7101A82E008",
        "calendar_id": "primary",
        "recurring_event_id": "rec-1",
        "original_start_time": "2025-06-11T14:00:00.000Z",
        "last_modified_time": "2025-06-11T14:53:06.310Z",
        "audio_url": "https://signed.example/audio.mp3",
        "video_url": null,
        "disposition": "CALL_CONNECTED_WITH_PROSPECT",
        "deal_name": "Acme expansion",
        "deal_value": "12000",
        "deal_close_date": "2025-09-30T00:00:00.000Z",
        "deal_stage_before_call": "Qualification",
        "account_name": "Acme",
        "contact_names": ["Pat"],
        "crm_info": {"source_crm": "SALESFORCE", "deal_id": "006x", "account_id": "001x", "contact_ids": ["003x"]},
        "bookmark_timestamps": ["2025-06-11T14:30:00.000Z"],
        "metrics": {
            "talk_listen_ratio": 0.42,
            "num_questions_asked": 7,
            "num_questions_asked_by_reps": 5,
            "call_duration": 1800,
            "total_speak_duration": 1650.5,
            "longest_monologue_duration": 120.25,
            "longest_monologue_start_time": 300.75,
            "engaging_questions": 2,
            "categories": [{
                "name": "Pricing",
                "occurences": 3,
                "ai_detected": false,
                "phrases_matched": [{"text": "how much", "user_id": "u-1", "name": "Rep", "time": 312.5}]
            }]
        },
        "call_review_page_url": "https://copilot.clari.com/call/7549847e-4e97-4650-a20d-87791520e529",
        "a_field_clari_adds_tomorrow": {"anything": [1, 2]}
    })
}

fn valid_destination_call() -> Value {
    json!({
        "source_id": "dialer-42",
        "call_time": "2025-06-11T14:25:00Z",
        "type": "RECORDING",
        "audio_url": "https://files.example/42.mp3",
        "user_emails": ["rep@example.com"]
    })
}

// ---------------------------------------------------------------- catalog lookups

#[test]
fn every_listed_stream_and_object_has_an_embedded_schema_and_unknown_names_have_none() {
    for name in SOURCE_STREAMS {
        let schema = catalog::source_schema(name).expect("source schema");
        assert_eq!(schema["title"], name);
        let text = catalog::source_schema_text(name).expect("text");
        assert_eq!(serde_json::from_str::<Value>(text).expect("json"), schema);
        assert!(primary_key(name).is_some(), "{name} has a primary key");
    }
    for name in DESTINATION_OBJECTS {
        let schema = catalog::destination_schema(name).expect("destination schema");
        assert_eq!(schema["title"], name);
        let text = catalog::destination_schema_text(name).expect("text");
        assert_eq!(serde_json::from_str::<Value>(text).expect("json"), schema);
    }
    assert!(catalog::source_schema("accounts").is_none());
    assert!(catalog::source_schema("Calls").is_none());
    assert!(catalog::destination_schema("users").is_none());
    assert!(primary_key("nope").is_none());
}

// ---------------------------------------------------------------- schema shape (CAT discovery)

#[test]
fn every_schema_is_a_valid_draft7_object_schema_with_properties() {
    for (name, schema) in all_schemas() {
        assert!(
            jsonschema::draft7::meta::is_valid(schema),
            "{name} is not a valid Draft-7 schema"
        );
        jsonschema::draft7::new(schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        record_validator(schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(schema["$schema"], DRAFT_07, "{name}");
        assert_eq!(schema["type"], "object", "{name}");
        let props = schema["properties"].as_object().expect("properties");
        assert!(!props.is_empty(), "{name} has properties");
    }
}

#[test]
fn schemas_use_only_keywords_shared_by_draft4_and_draft7_and_none_cat_forbids() {
    for (name, schema) in all_schemas() {
        walk(schema, &name, &mut |path, node| {
            let obj = node
                .as_object()
                .unwrap_or_else(|| panic!("{path} is not an object"));
            for key in obj.keys() {
                assert!(
                    ALLOWED_KEYWORDS.contains(&key.as_str()),
                    "{path} uses keyword {key:?}"
                );
            }
            for forbidden in ["$ref", "allOf", "anyOf", "oneOf", "not"] {
                assert!(!obj.contains_key(forbidden), "{path} uses {forbidden}");
            }
        });
    }
}

#[test]
fn additional_properties_is_true_on_every_object_and_never_false() {
    for (name, schema) in all_schemas() {
        walk(schema, &name, &mut |path, node| {
            if let Some(ap) = node.get("additionalProperties") {
                assert_eq!(ap, &Value::Bool(true), "{path}");
            }
            if types_of(node).contains(&"object") {
                assert_eq!(node["additionalProperties"], true, "{path}");
                let props = node["properties"]
                    .as_object()
                    .expect("object has properties");
                assert!(!props.is_empty(), "{path} describes its properties");
            }
            if types_of(node).contains(&"array") {
                assert!(node["items"].is_object(), "{path} describes its items");
            }
        });
    }
}

#[test]
fn every_node_has_a_type_and_every_top_level_property_a_description() {
    for (name, schema) in all_schemas() {
        walk(schema, &name, &mut |path, node| {
            assert!(!types_of(node).is_empty(), "{path} has a type");
        });
        for (prop, node) in schema["properties"].as_object().expect("properties") {
            let desc = node["description"].as_str().unwrap_or_default();
            assert!(
                desc.len() >= 15,
                "{name}.{prop} needs a plain-words description"
            );
        }
    }
}

#[test]
fn every_source_field_but_the_primary_key_may_be_null() {
    for stream in SOURCE_STREAMS {
        let schema = catalog::source_schema_ref(stream).expect("schema");
        let pk = primary_key(stream).expect("pk");
        let pk_path = format!("{stream}.{pk}");
        walk(schema, stream, &mut |path, node| {
            if path == stream || path == pk_path {
                return;
            }
            assert!(types_of(node).contains(&"null"), "{path} must allow null");
        });
        // Nothing but the primary key is required, anywhere.
        walk(schema, stream, &mut |path, node| {
            if let Some(required) = node.get("required") {
                let expected = if path == stream {
                    json!([pk])
                } else {
                    json!([])
                };
                assert_eq!(required, &expected, "{path}.required");
            }
        });
    }
}

#[test]
fn source_primary_key_is_a_required_non_null_string() {
    for stream in SOURCE_STREAMS {
        let schema = catalog::source_schema_ref(stream).expect("schema");
        let pk = primary_key(stream).expect("pk");
        assert_eq!(schema["properties"][pk]["type"], "string", "{stream}.{pk}");
        assert_eq!(schema["required"], json!([pk]), "{stream}");
    }
    assert_eq!(primary_key("topics"), Some("topic_id"));
    assert_eq!(primary_key("calls"), Some("id"));
}

#[test]
fn source_schemas_keep_enums_open() {
    for stream in SOURCE_STREAMS {
        let schema = catalog::source_schema_ref(stream).expect("schema");
        walk(schema, stream, &mut |path, node| {
            assert!(
                node.get("enum").is_none(),
                "{path} must not close its values"
            );
        });
    }
}

#[test]
fn call_timestamps_and_the_cursor_are_timezone_aware_date_times() {
    let schema = catalog::source_schema_ref("calls").expect("schema");
    let props = &schema["properties"];
    let cursor = cursor_field("calls").expect("calls is incremental");
    assert_eq!(cursor, "last_modified_time");
    let date_times = [
        &props["time"],
        &props["last_modified_time"],
        &props["original_start_time"],
        &props["deal_close_date"],
        &props["bookmark_timestamps"]["items"],
    ];
    for node in date_times {
        assert_eq!(node["type"], json!(["null", "string"]));
        assert_eq!(node["format"], "date-time");
        assert_eq!(node["airbyte_type"], "timestamp_with_timezone");
    }
    let cursor_desc = props[cursor]["description"].as_str().expect("description");
    assert!(cursor_desc.contains("status"), "{cursor_desc}");
    for stream in ["users", "topics", "scorecard", "scorecard-template"] {
        assert_eq!(cursor_field(stream), None, "{stream}");
    }
}

#[test]
fn source_schemas_list_every_documented_field() {
    let expected: [(&str, &[&str]); 5] = [
        (
            "calls",
            &[
                "id",
                "source_id",
                "title",
                "users",
                "externalParticipants",
                "joinedParticipants",
                "status",
                "bot_not_join_reason",
                "type",
                "time",
                "icaluid",
                "calendar_id",
                "recurring_event_id",
                "original_start_time",
                "last_modified_time",
                "audio_url",
                "video_url",
                "disposition",
                "deal_name",
                "deal_value",
                "deal_close_date",
                "deal_stage_before_call",
                "account_name",
                "contact_names",
                "crm_info",
                "bookmark_timestamps",
                "metrics",
                "call_review_page_url",
            ],
        ),
        (
            "users",
            &["id", "email", "name", "role", "is_recording", "manager_id"],
        ),
        (
            "topics",
            &[
                "topic_id",
                "topic_name",
                "type",
                "team_ids",
                "custom_topic",
                "keyword_topic",
            ],
        ),
        (
            "scorecard",
            &[
                "id",
                "type",
                "rep",
                "scorer",
                "template_id",
                "call_id",
                "total_score",
                "remark",
                "questions_score",
            ],
        ),
        (
            "scorecard-template",
            &["id", "customer_id", "name", "type", "questions"],
        ),
    ];
    for (stream, fields) in expected {
        let schema = catalog::source_schema_ref(stream).expect("schema");
        let props = schema["properties"].as_object().expect("properties");
        let mut actual: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut wanted = fields.to_vec();
        actual.sort_unstable();
        wanted.sort_unstable();
        assert_eq!(actual, wanted, "{stream}");
    }
}

#[test]
fn integer_and_number_fields_follow_the_api_types() {
    let calls = catalog::source_schema_ref("calls").expect("schema");
    let metrics = &calls["properties"]["metrics"]["properties"];
    let category = &metrics["categories"]["items"]["properties"];
    let integers = [
        &calls["properties"]["users"]["items"]["properties"]["personId"],
        &metrics["num_questions_asked"],
        &metrics["num_questions_asked_by_reps"],
        &metrics["call_duration"],
        &metrics["engaging_questions"],
        &category["occurences"],
    ];
    for node in integers {
        assert_eq!(node["type"], json!(["null", "integer"]));
    }
    let numbers = [
        &metrics["talk_listen_ratio"],
        &metrics["total_speak_duration"],
        &metrics["longest_monologue_duration"],
        &metrics["longest_monologue_start_time"],
        &category["phrases_matched"]["items"]["properties"]["time"],
    ];
    for node in numbers {
        assert_eq!(node["type"], json!(["null", "number"]));
    }
    let scorecard = catalog::source_schema_ref("scorecard").expect("schema");
    assert_eq!(
        scorecard["properties"]["total_score"]["type"],
        json!(["null", "number"])
    );
    assert_eq!(
        scorecard["properties"]["questions_score"]["items"]["properties"]["score"]["type"],
        json!(["null", "integer"])
    );
    assert_eq!(
        scorecard["properties"]["questions_score"]["items"]["properties"]["order"]["type"],
        json!(["null", "string"])
    );
}

// ---------------------------------------------------------------- source records (CAT basic_read)

#[test]
fn amp_fixture_call_record_validates() {
    assert_source_record_valid("calls", &amp_call_record());
}

#[test]
fn call_record_with_every_field_and_an_unknown_one_validates() {
    assert_source_record_valid("calls", &full_call_record());
}

#[test]
fn call_record_with_every_optional_field_absent_validates() {
    assert_source_record_valid(
        "calls",
        &json!({"id": "7b891784-0000-4000-8000-000000000000"}),
    );
}

#[test]
fn call_record_with_every_optional_field_null_validates() {
    let mut record = full_call_record();
    for (key, value) in record.as_object_mut().expect("object") {
        if key != "id" {
            *value = Value::Null;
        }
    }
    assert_source_record_valid("calls", &record);
    let nested_nulls = json!({
        "id": "x",
        "users": [{"userId": null, "userEmail": null, "isOrganizer": null, "personId": null}],
        "crm_info": {"source_crm": null, "deal_id": null, "account_id": null, "contact_ids": [null]},
        "metrics": {"categories": [{"name": null, "occurences": null, "phrases_matched": [{"time": null}]}]},
        "bookmark_timestamps": [null]
    });
    assert_source_record_valid("calls", &nested_nulls);
}

#[test]
fn zoom_call_without_source_id_and_trimmed_participant_validates() {
    let record = json!({
        "id": "7b891784-1111-4222-8333-444455556666",
        "title": "Zoom sync",
        "users": [],
        "externalParticipants": [],
        "joinedParticipants": [{"name": "Dipu Chaurasiya"}],
        "status": "NO_DATA_INCALL",
        "bot_not_join_reason": [],
        "type": "ZOOM",
        "time": "2025-06-11T14:25:00.000Z",
        "calendar_id": "c_123@group.calendar.google.com",
        "last_modified_time": "2025-06-11T14:53:06.310Z",
        "audio_url": null,
        "video_url": null,
        "disposition": "UNKNOWN_CALL_DISPOSITION"
    });
    assert_source_record_valid("calls", &record);
}

#[test]
fn integer_field_written_as_float_fails_like_cat_strict_integers() {
    let mut record = amp_call_record();
    record["metrics"]["call_duration"] = serde_json::from_str("104.0").expect("number");
    let errors = source_errors("calls", &record);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("/metrics/call_duration"),
        "{errors:#?}"
    );

    // The same for a parsed record, as the source would see it on the wire.
    let text = amp_call_record()
        .to_string()
        .replace("\"personId\":0", "\"personId\":1.0");
    let parsed: Value = serde_json::from_str(&text).expect("json");
    let errors = source_errors("calls", &parsed);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("/users/0/personId"), "{errors:#?}");
}

#[test]
fn number_fields_accept_whole_numbers() {
    // `talk_listen_ratio: 1` is in the amp fixture; `number` must accept JSON integers.
    let record =
        json!({"id": "s-1", "total_score": 8, "questions_score": [{"score": 3, "order": "1"}]});
    assert_source_record_valid("scorecard", &record);
}

#[test]
fn call_record_without_id_or_with_null_id_fails() {
    let mut record = amp_call_record();
    record.as_object_mut().expect("object").remove("id");
    assert!(!source_errors("calls", &record).is_empty());
    record["id"] = Value::Null;
    assert!(!source_errors("calls", &record).is_empty());
}

#[test]
fn call_record_with_malformed_cursor_fails() {
    let mut record = amp_call_record();
    record["last_modified_time"] = json!("last tuesday");
    let errors = source_errors("calls", &record);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("/last_modified_time"), "{errors:#?}");
}

#[test]
fn call_type_and_status_values_beyond_the_documented_enums_validate() {
    let mut record = amp_call_record();
    record["type"] = json!("SOME_NEW_DIALER");
    record["status"] = json!("A_NEW_STATUS");
    record["disposition"] = json!("A_NEW_DISPOSITION");
    assert_source_record_valid("calls", &record);
}

#[test]
fn user_topic_scorecard_and_template_sample_records_validate() {
    assert_source_record_valid(
        "users",
        &json!({"id":"e04483dd-fb82-460a-a14e-b6f3e6a2b7a4","email":"integration.user+clari@withampersand.com","name":"April","role":"MANAGER","is_recording":true}),
    );
    assert_source_record_valid(
        "users",
        &json!({"id":"u-2","email":"obs@example.com","name":"Obi","role":"OBSERVER","is_recording":false,"manager_id":"e04483dd-fb82-460a-a14e-b6f3e6a2b7a4"}),
    );
    assert_source_record_valid(
        "topics",
        &json!({"topic_id":"t-1","topic_name":"Pricing","type":"KEYWORD","team_ids":["team-1"],"custom_topic":{"description":"Talk about price","status":"ACTIVE"},"keyword_topic":{"trackers":["price","cost"]}}),
    );
    assert_source_record_valid(
        "topics",
        &json!({"topic_id":"t-2","topic_name":"Churn risk","type":"CUSTOM","team_ids":[],"custom_topic":null,"keyword_topic":null}),
    );
    assert_source_record_valid(
        "scorecard",
        &json!({"id":"sc-1","type":"CALL","rep":"u-1","scorer":"u-2","template_id":"a1b2c3d4-e5f6-7890-abcd-ef1234567890","call_id":"31f12970-040d-4186-9b6f-ad0a08afbfb8","total_score":8.5,"remark":"Good discovery","questions_score":[{"score":3,"skill":"Discovery","label":"Pain points?","order":"1"}]}),
    );
    assert_source_record_valid(
        "scorecard-template",
        &json!({"id":"a1b2c3d4-e5f6-7890-abcd-ef1234567890","customer_id":"cust-001","name":"Sales Discovery Call","type":"CALL","questions":[{"skill":"Discovery","label":"Did the rep uncover the prospect's pain points?","order":"1"},{"skill":"Rapport","label":"Did the rep establish rapport early in the call?","order":"2"}]}),
    );
    // The topics primary key is topic_id; a record keyed by `id` alone is rejected.
    assert!(!source_errors("topics", &json!({"id": "t-1"})).is_empty());
}

// ---------------------------------------------------------------- destination write schemas

#[test]
fn destination_call_with_required_fields_and_a_recording_user_passes() {
    assert_eq!(
        validate_destination_record("calls", &valid_destination_call()),
        Ok(())
    );
    let mut full = valid_destination_call();
    full["force_overwrite_old_call"] = json!(true);
    full["stereo_to_mono"] = json!(false);
    full["title"] = json!("Rep / Pat");
    full["source_user_ids"] = json!(["dialer-user-7"]);
    full["other_phone"] = json!(["+15550100"]);
    full["other_email"] = json!(["pat@acme.test"]);
    full["other_name"] = json!(["Pat"]);
    full["audio_format"] = json!("mp3");
    full["header_key"] = json!(["Authorization"]);
    full["header_value"] = json!(["Bearer x"]);
    full["external_transcript"] = json!({
        "external_speakers": [{"person_id": "1", "name": "Rep", "email_id": "rep@example.com"}],
        "ext_conversation_turns": [{"person_id": "1", "text": "Hello", "start": 0, "end": 1.5}]
    });
    assert_eq!(validate_destination_record("calls", &full), Ok(()));
}

#[test]
fn destination_call_missing_audio_url_fails_naming_audio_url() {
    let mut record = valid_destination_call();
    record.as_object_mut().expect("object").remove("audio_url");
    let errors = errors_of("calls", &record);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "/audio_url");
    assert!(errors[0].message.contains("audio_url"), "{}", errors[0]);
    let rejected = validate_destination_record("calls", &record).expect_err("rejected");
    assert!(rejected.to_string().contains("audio_url"), "{rejected}");
}

#[test]
fn destination_call_missing_every_required_field_names_each_one() {
    let errors = errors_of("calls", &json!({"title": "no essentials"}));
    let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["/audio_url", "/call_time", "/source_id", "/type"],
        "{errors:#?}"
    );
}

#[test]
fn destination_call_with_bad_type_time_or_empty_source_id_fails_naming_the_field() {
    let cases = [
        ("type", json!("ZOOM"), "/type"),
        ("call_time", json!("11 June 2025"), "/call_time"),
        ("source_id", json!(""), "/source_id"),
        ("user_emails", json!("rep@example.com"), "/user_emails"),
        (
            "force_overwrite_old_call",
            json!("yes"),
            "/force_overwrite_old_call",
        ),
    ];
    for (field, value, pointer) in cases {
        let mut record = valid_destination_call();
        record[field] = value;
        let errors = errors_of("calls", &record);
        assert_eq!(errors.len(), 1, "{field}: {errors:#?}");
        assert_eq!(errors[0].field, pointer, "{field}");
    }
}

#[test]
fn destination_call_without_any_recording_user_is_left_to_code() {
    // "At least one of user_emails / source_user_ids" is not expressible without anyOf; the
    // schema accepts the record and says so in its description.
    let mut record = valid_destination_call();
    record
        .as_object_mut()
        .expect("object")
        .remove("user_emails");
    assert_eq!(validate_destination_record("calls", &record), Ok(()));
    let schema = catalog::destination_schema_ref("calls").expect("schema");
    let desc = schema["description"].as_str().expect("description");
    assert!(desc.contains("user_emails") && desc.contains("source_user_ids"));
}

#[test]
fn account_without_crm_id_fails_naming_crm_id() {
    let errors = errors_of(
        "accounts",
        &json!({"name": "Acme", "website": "https://acme.test"}),
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "/crm_id");
    assert!(errors[0].message.contains("crm_id"), "{}", errors[0]);
}

#[test]
fn empty_or_non_string_crm_id_fails_for_every_crm_object() {
    for object in ["accounts", "contacts", "deals"] {
        for bad in [json!(""), json!(null), json!(123)] {
            let errors = errors_of(object, &json!({"crm_id": bad}));
            assert_eq!(errors.len(), 1, "{object} {bad}: {errors:#?}");
            assert_eq!(errors[0].field, "/crm_id", "{object}");
        }
        assert_eq!(
            validate_destination_record(object, &json!({"crm_id": "c-1"})),
            Ok(()),
            "{object} with only crm_id"
        );
    }
}

#[test]
fn unknown_extra_fields_pass_through_every_destination_object() {
    let records = [
        ("accounts", json!({"crm_id": "a-1", "industry": "Widgets"})),
        (
            "contacts",
            json!({"crm_id": "c-1", "phone_norms": null, "nested": {"x": 1}}),
        ),
        (
            "deals",
            json!({"crm_id": "d-1", "owner_email": "o@example.com"}),
        ),
        ("calls", {
            let mut call = valid_destination_call();
            call["status"] = json!("GOTO_MEETING");
            call
        }),
    ];
    for (object, record) in records {
        assert_eq!(
            validate_destination_record(object, &record),
            Ok(()),
            "{object}"
        );
    }
}

#[test]
fn complete_account_contact_and_deal_records_pass() {
    let custom = json!([{"key": "tier", "value": "gold"}]);
    let account = json!({
        "crm_id": "001x", "name": "Acme", "phones": ["+15550100"], "description": "Widgets",
        "website": "https://acme.test", "address": "1 Main St", "city": "Springfield",
        "state": "IL", "country": "US", "zip": "62701", "custom_fields": custom
    });
    let contact = json!({
        "crm_id": "003x", "account_crm_id": "001x", "first_name": "Pat", "last_name": "Lee",
        "job_title": "CTO", "phones": [], "stage": "MQL", "reason": null,
        "emails": ["pat@acme.test"], "is_lead": true, "custom_fields": custom
    });
    let deal = json!({
        "crm_id": "006x", "owner_crm_id": "005x", "deal_name": "Acme expansion",
        "amount": "12000.50", "close_date": "2025-09-30T00:00:00Z",
        "created_date": "2025-06-01T09:00:00.000Z", "last_contacted": "2025-06-11T14:25:00Z",
        "next_call_date": null, "stage": "Proposal", "probability": "40",
        "forecast_category": "Pipeline", "account_crm_id": "001x",
        "stage_change_history": [{"stage": "Proposal", "prev_stage": "Discovery", "date_changed": "2025-06-05T00:00:00Z"}],
        "close_date_change_history": [{"close_date": "2025-09-30T00:00:00Z", "prev_close_date": "2025-08-31T00:00:00Z", "date_changed": "2025-06-05T00:00:00Z"}],
        "custom_fields": custom, "deal_reason": "Budget approved"
    });
    assert_eq!(validate_destination_record("accounts", &account), Ok(()));
    assert_eq!(validate_destination_record("contacts", &contact), Ok(()));
    assert_eq!(validate_destination_record("deals", &deal), Ok(()));
}

#[test]
fn deal_fields_with_wrong_types_fail_naming_the_field() {
    let cases = [
        (json!({"crm_id": "d", "amount": 12000}), "/amount"),
        (json!({"crm_id": "d", "probability": 0.4}), "/probability"),
        (json!({"crm_id": "d", "close_date": "soon"}), "/close_date"),
        (
            json!({"crm_id": "d", "custom_fields": [{"key": "tier", "value": 3}]}),
            "/custom_fields/0/value",
        ),
        (
            json!({"crm_id": "d", "stage_change_history": [{"date_changed": "yesterday"}]}),
            "/stage_change_history/0/date_changed",
        ),
    ];
    for (record, pointer) in cases {
        let errors = errors_of("deals", &record);
        assert_eq!(errors.len(), 1, "{record}: {errors:#?}");
        assert_eq!(errors[0].field, pointer, "{record}");
    }
}

#[test]
fn unknown_destination_object_is_rejected_by_name() {
    let err = validate_destination_record("opportunities", &json!({"crm_id": "x"}))
        .expect_err("unknown object");
    assert_eq!(err, RecordRejected::UnknownObject("opportunities".into()));
    assert!(err.to_string().contains("opportunities"));
}

fn primary_key(stream: &str) -> Option<&'static str> {
    streams::find(stream).map(|def| def.primary_key)
}

fn cursor_field(stream: &str) -> Option<&'static str> {
    streams::find(stream).and_then(|def| def.cursor)
}
