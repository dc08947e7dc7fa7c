//! Whether an object, as Clari Copilot shows it, already holds every value a record sets.
//!
//! A look-up's answer is not the shape of a write (reference §7.2): it leaves fields out, adds
//! read-only ones, shows empty values as `null` and prints dates and amounts its own way. So
//! the comparison is one-sided and errs towards "not proven":
//! - only the fields the record sets are compared; whatever else the answer holds is ignored;
//! - a field the answer does not show proves nothing: [`Comparison::NotShown`];
//! - dates (the write schema's `date-time` fields, at any depth) are compared as instants, the
//!   object's amounts ([`Object::decimals`]) as exact decimals, `null` and `[]` as the same
//!   empty value; anything else must be equal as JSON.
//!
//! It has two callers, which read the three outcomes differently:
//! - `append_dedup` leaves a record unsent only on [`Comparison::Same`], so a write that might
//!   carry data is never skipped;
//! - a create refused because the key exists counts as already present unless a shown field
//!   [`Comparison::Differs`]: the refused write could not have landed anyway.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::objects::Object;
use crate::catalog::destination_schema_ref;

/// What comparing a record with an object's answer proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Every field the record sets is shown, with an equal value.
    Same,
    /// A shown field has another value; the first such field, as a JSON pointer (`/amount`).
    Differs(String),
    /// No shown field differs, but this field the record sets is not shown.
    NotShown(String),
}

/// Compares the fields of `record` with the object `shown` as a look-up of `object` answered it.
pub fn compare(
    object: &Object,
    record: &Map<String, Value>,
    shown: &Map<String, Value>,
) -> Comparison {
    let schema = destination_schema_ref(object.name);
    combine(record.iter().map(|(field, value)| {
        let path = format!("/{}", escape(field));
        let Some(answer) = object.shown_as(field).and_then(|name| shown.get(name)) else {
            return Comparison::NotShown(path);
        };
        let rules = Rules {
            schema: schema.and_then(|s| s.pointer(&format!("/properties{path}"))),
            decimal: object.decimals.contains(&field.as_str()),
        };
        rules.compare(value, answer, path)
    }))
}

/// The outcome of several fields, compared lazily in order: the first difference (the rest
/// are not compared), else the first field not shown, else the same.
fn combine(outcomes: impl Iterator<Item = Comparison>) -> Comparison {
    let mut outcome = Comparison::Same;
    for next in outcomes {
        match next {
            Comparison::Same => {}
            differs @ Comparison::Differs(_) => return differs,
            not_shown => {
                if outcome == Comparison::Same {
                    outcome = not_shown;
                }
            }
        }
    }
    outcome
}

/// How one value is compared: its write schema (for dates, at any depth) and whether it is an
/// amount written as a string.
#[derive(Clone, Copy)]
struct Rules<'a> {
    schema: Option<&'a Value>,
    decimal: bool,
}

impl<'a> Rules<'a> {
    fn at(self, child: &str) -> Rules<'a> {
        Rules {
            schema: self.schema.and_then(|s| s.get(child)),
            decimal: self.decimal,
        }
    }

    fn is_date(self) -> bool {
        self.schema
            .and_then(|s| s.get("format"))
            .is_some_and(|f| f == "date-time")
    }

    fn compare(self, record: &Value, shown: &Value, path: String) -> Comparison {
        if is_empty(record) && is_empty(shown) {
            return Comparison::Same;
        }
        match (record, shown) {
            (Value::Object(record), Value::Object(shown)) => {
                let properties = self.at("properties");
                combine(record.iter().map(|(key, value)| {
                    let path = format!("{path}/{}", escape(key));
                    match shown.get(key) {
                        Some(answer) => properties.at(key).compare(value, answer, path),
                        None => Comparison::NotShown(path),
                    }
                }))
            }
            (Value::Array(record), Value::Array(shown)) if record.len() == shown.len() => {
                let items = self.at("items");
                combine(
                    record
                        .iter()
                        .zip(shown)
                        .enumerate()
                        .map(|(i, (value, answer))| {
                            items.compare(value, answer, format!("{path}/{i}"))
                        }),
                )
            }
            (Value::String(record), Value::String(shown)) if self.equal_texts(record, shown) => {
                Comparison::Same
            }
            _ if record == shown => Comparison::Same,
            _ => Comparison::Differs(path),
        }
    }

    /// Equal strings, or the same instant (dates), or the same number (amounts).
    fn equal_texts(self, record: &str, shown: &str) -> bool {
        if record == shown {
            return true;
        }
        if self.is_date()
            && let (Ok(a), Ok(b)) = (record.parse::<Timestamp>(), shown.parse::<Timestamp>())
        {
            return a == b;
        }
        self.decimal && decimal(record).is_some_and(|a| Some(a) == decimal(shown))
    }
}

/// `null` and `[]`: the API shows an empty list as `null`.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// A plain decimal number in its one canonical spelling (`"+01000.50"` → `"1000.5"`), exactly:
/// no float, so no two different amounts can ever compare equal. `None` for anything else
/// (exponents included), which then compares as text.
fn decimal(text: &str) -> Option<String> {
    let text = text.trim();
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        whole => whole,
    };
    let fraction = fraction.trim_end_matches('0');
    Some(match (whole, fraction) {
        ("0", "") => "0".to_owned(),
        (whole, "") => format!("{sign}{whole}"),
        (whole, fraction) => format!("{sign}{whole}.{fraction}"),
    })
}

/// A key as a JSON pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(name: &str) -> &'static Object {
        Object::named(name).unwrap()
    }

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn check(name: &str, record: Value, shown: Value) -> Comparison {
        compare(object(name), &map(record), &map(shown))
    }

    #[test]
    fn dates_compare_as_instants_and_amounts_as_exact_decimals() {
        let shown = json!({"id": "x", "crm_id": "d", "amount": "1000.5", "probability": "0.25",
            "close_date": "2024-05-01T10:00:00.000Z", "stage": null,
            "stage_change_history": [{"stage": "won", "date_changed": "2024-05-01T10:00:00.000Z"}]});
        let record = json!({"crm_id": "d", "amount": "+01000.50", "probability": ".250",
            "close_date": "2024-05-01T12:00:00+02:00",
            "stage_change_history": [{"stage": "won", "date_changed": "2024-05-01T10:00:00Z"}]});
        assert_eq!(check("deals", record, shown.clone()), Comparison::Same);
        let changed = json!({"crm_id": "d", "amount": "1000.51"});
        assert_eq!(
            check("deals", changed, shown.clone()),
            Comparison::Differs("/amount".into())
        );
        let later = json!({"crm_id": "d", "stage_change_history": [
            {"stage": "won", "date_changed": "2024-05-01T10:00:00.001Z"}]});
        assert_eq!(
            check("deals", later, shown),
            Comparison::Differs("/stage_change_history/0/date_changed".into())
        );
    }

    #[test]
    fn decimals_never_round_and_other_strings_never_normalise() {
        assert_eq!(
            decimal("12345678901234567.1").as_deref(),
            Some("12345678901234567.1")
        );
        assert_ne!(
            decimal("12345678901234567.1"),
            decimal("12345678901234567.2")
        );
        assert_eq!(decimal("-0.0").as_deref(), Some("0"));
        assert_eq!(decimal("1e3"), None);
        assert_eq!(decimal("."), None);
        let shown = json!({"crm_id": "a", "zip": "1234", "name": "2024-05-01T10:00:00.000Z"});
        let record = json!({"crm_id": "a", "zip": "01234"});
        assert_eq!(
            check("accounts", record, shown.clone()),
            Comparison::Differs("/zip".into()),
            "a zip code is not an amount"
        );
        let record = json!({"crm_id": "a", "name": "2024-05-01T10:00:00Z"});
        assert_eq!(
            check("accounts", record, shown),
            Comparison::Differs("/name".into()),
            "a name is not a date"
        );
    }

    #[test]
    fn a_field_the_answer_does_not_show_proves_nothing_but_a_shown_difference_wins() {
        let shown =
            json!({"crm_id": "c", "first_name": "Ada", "phones": null, "phone_norms": null});
        let record =
            json!({"crm_id": "c", "first_name": "Ada", "emails": ["a@example.com"], "phones": []});
        assert_eq!(
            check("contacts", record.clone(), shown.clone()),
            Comparison::NotShown("/emails".into())
        );
        let mut renamed = record;
        renamed["first_name"] = json!("Grace");
        assert_eq!(
            check("contacts", renamed, shown.clone()),
            Comparison::Differs("/first_name".into())
        );
        let record = json!({"crm_id": "c", "phones": ["+1 555"]});
        assert_eq!(
            check("contacts", record, shown),
            Comparison::Differs("/phones".into()),
            "a null answer shows an empty value, not an unknown one"
        );
    }

    #[test]
    fn a_call_is_compared_on_the_fields_its_listing_shows_under_their_listing_names() {
        let listed = json!({"id": "u", "source_id": "s", "title": "Demo", "type": "RECORDING",
            "time": "2024-05-01T10:00:00.000Z", "audio_url": null, "users": []});
        let record = json!({"source_id": "s", "title": "Demo", "type": "RECORDING",
            "call_time": "2024-05-01T10:00:00Z"});
        assert_eq!(
            check("calls", record.clone(), listed.clone()),
            Comparison::Same
        );
        let mut with_audio = record.clone();
        with_audio["audio_url"] = json!("https://example.com/a.mp3");
        assert_eq!(
            check("calls", with_audio, listed.clone()),
            Comparison::NotShown("/audio_url".into()),
            "the listing's null audio_url is not the stored one"
        );
        let mut moved = record;
        moved["call_time"] = json!("2024-05-01T11:00:00Z");
        assert_eq!(
            check("calls", moved, listed),
            Comparison::Differs("/call_time".into())
        );
    }
}
