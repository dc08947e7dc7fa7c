//! Reading one API response: the record array (kept as raw JSON, byte for byte), the
//! pagination object, and each record's primary key, without building a JSON tree.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Clari's pagination object: `matched` counts every record of the filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub matched: Option<u64>,
    pub has_more: Option<bool>,
    pub next_page_skip: Option<u64>,
}

/// One page, borrowing its records from the response body.
#[derive(Debug)]
pub struct Page<'a> {
    pub records: Vec<&'a RawValue>,
    pub pagination: Option<Pagination>,
}

/// Parses a response body. `path` only serves error messages.
pub fn parse<'a>(body: &'a [u8], records_keys: &[&str], path: &str) -> Result<Page<'a>> {
    let invalid = |detail: String| invalid(path, detail);
    let top = top_level(body, path)?;
    let (key, raw) = records_keys
        .iter()
        .find_map(|key| top.get(*key).map(|raw| (*key, *raw)))
        .ok_or_else(|| {
            invalid(format!(
                "no {:?} array in the response",
                records_keys.join("\" or \"")
            ))
        })?;
    // An empty result may come as `null` (the API's fixtures show `null` for empty arrays).
    let records: Vec<&'a RawValue> = serde_json::from_str::<Option<_>>(raw.get())
        .map_err(|e| invalid(format!("\"{key}\" is not an array ({e})")))?
        .unwrap_or_default();
    let pagination = match top.get("pagination") {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => Some(
            serde_json::from_str(raw.get())
                .map_err(|e| invalid(format!("unreadable \"pagination\" ({e})")))?,
        ),
    };
    Ok(Page {
        records,
        pagination,
    })
}

/// The object under `key` in a single-record response such as `{"call": {...}}`.
pub fn parse_object<'a>(body: &'a [u8], key: &str, path: &str) -> Result<&'a RawValue> {
    match top_level(body, path)?.get(key) {
        Some(raw) if raw.get().starts_with('{') => Ok(raw),
        Some(_) => Err(invalid(path, format!("\"{key}\" is not an object"))),
        None => Err(invalid(
            path,
            format!("no \"{key}\" object in the response"),
        )),
    }
}

/// The members of a response body, each left unparsed. An HTML page in place of JSON is told
/// apart: `base_url` then most likely names a website rather than the API.
fn top_level<'a>(body: &'a [u8], path: &str) -> Result<HashMap<Cow<'a, str>, &'a RawValue>> {
    serde_json::from_slice(body).map_err(|e| {
        if body.trim_ascii_start().starts_with(b"<") {
            Error::HtmlPage {
                path: path.to_owned(),
            }
        } else {
            invalid(path, format!("not a JSON object ({e})"))
        }
    })
}

fn invalid(path: &str, detail: String) -> Error {
    Error::InvalidResponse {
        path: path.to_owned(),
        detail,
    }
}

/// A record's primary key, or an error naming the key and the endpoint it came from.
pub fn record_key(record: &RawValue, key: &str, path: &str) -> Result<String> {
    record_fields(record, key, None, path).map(|(key, _)| key)
}

/// A record's primary key and, when asked for, the text of one more field (absent or null:
/// `None`), read in one pass over the record.
pub fn record_fields(
    record: &RawValue,
    key: &str,
    other: Option<&str>,
    path: &str,
) -> Result<(String, Option<String>)> {
    let (found, other) = fields_text(record, key, other).map_err(|detail| invalid(path, detail))?;
    let key = found.ok_or_else(|| invalid(path, format!("a record has no \"{key}\"")))?;
    Ok((key, other))
}

/// The value of `key` in a record, which must be a JSON object with that key as a string or
/// a number. Other fields are skipped without being parsed into values.
pub fn field_text(record: &RawValue, key: &str) -> std::result::Result<String, String> {
    fields_text(record, key, None)?
        .0
        .ok_or_else(|| format!("a record has no \"{key}\""))
}

/// The text of `key` and of `other` in a record, each `None` when absent or null.
fn fields_text(
    record: &RawValue,
    key: &str,
    other: Option<&str>,
) -> std::result::Result<(Option<String>, Option<String>), String> {
    let mut de = serde_json::Deserializer::from_str(record.get());
    (FieldsSeed { key, other })
        .deserialize(&mut de)
        .map_err(|e| format!("a record is not a JSON object with a string \"{key}\" ({e})"))
}

struct FieldsSeed<'k> {
    key: &'k str,
    other: Option<&'k str>,
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = (Option<String>, Option<String>);

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = (Option<String>, Option<String>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let (mut key, mut other) = (None, None);
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let slot = if name == self.key {
                &mut key
            } else if Some(name.as_ref()) == self.other {
                &mut other
            } else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = map.next_value::<KeyValue>()?;
            if slot.is_none() {
                *slot = value.into_text();
            }
        }
        Ok((key, other))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum KeyValue {
    Text(String),
    Number(serde_json::Number),
    Null,
}

impl KeyValue {
    fn into_text(self) -> Option<String> {
        match self {
            KeyValue::Text(s) => Some(s),
            KeyValue::Number(n) => Some(n.to_string()),
            KeyValue::Null => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_records_verbatim_and_reads_pagination() {
        let body = br#"{"calls":[{"id":"a","n":1.0},{"id":"b"}],"pagination":{"matched":3,"hasMore":true,"nextPageSkip":2}}"#;
        let page = parse(body, &["calls"], "/calls").unwrap();
        assert_eq!(page.records[0].get(), r#"{"id":"a","n":1.0}"#);
        assert_eq!(page.pagination.unwrap().matched, Some(3));
        assert_eq!(page.pagination.unwrap().next_page_skip, Some(2));
    }

    #[test]
    fn the_last_page_omits_next_page_skip_and_a_missing_object_is_none() {
        let last = parse(
            br#"{"calls":[],"pagination":{"matched":3,"hasMore":false}}"#,
            &["calls"],
            "/calls",
        )
        .unwrap();
        assert_eq!(last.pagination.unwrap().next_page_skip, None);
        let bare = parse(br#"{"users":[]}"#, &["users"], "/users").unwrap();
        assert!(bare.pagination.is_none());
    }

    #[test]
    fn a_single_record_response_yields_its_object_or_names_what_is_missing() {
        let body = br#"{"call":{"id":"c1","transcript":[]}}"#;
        assert_eq!(
            parse_object(body, "call", "/call-details").unwrap().get(),
            r#"{"id":"c1","transcript":[]}"#
        );
        let err = parse_object(br#"{"call":[1]}"#, "call", "/call-details")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an object"), "{err}");
        assert!(parse_object(br#"{}"#, "call", "/call-details").is_err());
    }

    #[test]
    fn either_template_key_is_accepted() {
        let keys = ["scorecardTemplates", "scoreCardTemplates"];
        assert_eq!(
            parse(br#"{"scoreCardTemplates":[{"id":"t"}]}"#, &keys, "/t")
                .unwrap()
                .records
                .len(),
            1
        );
        assert_eq!(
            parse(br#"{"scorecardTemplates":[{"id":"t"}]}"#, &keys, "/t")
                .unwrap()
                .records
                .len(),
            1
        );
    }

    #[test]
    fn malformed_bodies_name_the_path_and_the_problem() {
        let err = parse(b"{\"calls\": [", &["calls"], "/calls")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/calls") && err.contains("not a JSON object"),
            "{err}"
        );
        let err = parse(b"  <html>oops", &["calls"], "/calls").unwrap_err();
        assert!(matches!(err, Error::HtmlPage { .. }), "{err}");
        assert!(err.to_string().contains("/calls"), "{err}");
        let err = parse(br#"{"other":[]}"#, &["calls"], "/calls")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no \"calls\" array"), "{err}");
    }

    #[test]
    fn primary_keys_are_read_from_strings_and_numbers_and_missing_ones_are_reported() {
        let rec =
            RawValue::from_string(r#"{"x":{"id":"nested"},"id":"top","y":[1,2]}"#.into()).unwrap();
        assert_eq!(field_text(&rec, "id").unwrap(), "top");
        let num = RawValue::from_string(r#"{"topic_id":42}"#.into()).unwrap();
        assert_eq!(field_text(&num, "topic_id").unwrap(), "42");
        let none = RawValue::from_string(r#"{"name":"x"}"#.into()).unwrap();
        assert!(field_text(&none, "id").unwrap_err().contains("no \"id\""));
        let not_object = RawValue::from_string("[1]".into()).unwrap();
        assert!(field_text(&not_object, "id").is_err());
    }
}
