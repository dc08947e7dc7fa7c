//! The four objects the destination writes, as data: their routes, their key field and the
//! sync modes the API can honour for them.
//!
//! Keeping this a table (rather than four code paths) is what lets every mode be written once:
//! a request plan asks the object for a path and a key and never names an object itself.

use crate::protocol::DestinationSyncMode;

/// One writable Clari Copilot object.
#[derive(Debug, PartialEq, Eq)]
pub struct Object {
    /// The object's name in the destination catalog, e.g. `accounts`.
    pub name: &'static str,
    /// The singular used in the API's routes: `/create-<singular>`.
    pub singular: &'static str,
    /// The field that identifies a record in Clari Copilot (`crm_id` or `source_id`).
    pub key: &'static str,
    /// The modes the API can honour, in catalog order.
    pub modes: &'static [DestinationSyncMode],
    /// How `append_dedup` keeps a replayed record from being written twice.
    pub dedup: Dedup,
    /// How an object is found by its key, to resolve a create refused as "already exists".
    pub lookup: Lookup,
    /// Array fields of which at least one must name a recording user (empty: no such rule).
    pub user_fields: &'static [&'static str],
    /// Under which names a look-up's answer shows the record's fields.
    pub shows: Shows,
    /// Fields holding a number written as a string, which the API may print another way.
    pub decimals: &'static [&'static str],
}

/// Under which names a look-up's answer shows the fields a record sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shows {
    /// Under their own names, when the answer has them (`get-<obj>` answers the object).
    OwnNames,
    /// Only these `(record field, answer field)` pairs: every other field is not shown.
    Only(&'static [(&'static str, &'static str)]),
}

/// The request that finds an object by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// `GET /get-<obj>?id=<key>`: the object, or 404.
    Get,
    /// `GET <path>?<filter>=<key>&<also>`: a listing under `list_key` holding the object, if
    /// any (`also` widens it, e.g. to private calls).
    Listing {
        path: &'static str,
        filter: &'static str,
        also: &'static [(&'static str, &'static str)],
        list_key: &'static str,
    },
}

/// How an object is upserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedup {
    /// `GET /get-<obj>?id=` first, then update or create.
    LookUp,
    /// One create with this flag set to `true`: the API overwrites the record with the key.
    OverwriteFlag(&'static str),
}

use DestinationSyncMode::{Append, AppendDedup, SoftDelete, Update};

/// Every object, in the order of [`crate::catalog::DESTINATION_OBJECTS`].
///
/// Calls support neither `update` (there is no update-call route) nor `soft_delete` (no
/// delete-call route); their upsert is `create-call` with `force_overwrite_old_call`.
pub const OBJECTS: [Object; 4] = [
    Object::crm("accounts", "account", &[]),
    Object::crm("contacts", "contact", &[]),
    // The API types both as strings.
    Object::crm("deals", "deal", &["amount", "probability"]),
    Object {
        name: "calls",
        singular: "call",
        key: "source_id",
        modes: &[Append, AppendDedup],
        dedup: Dedup::OverwriteFlag("force_overwrite_old_call"),
        lookup: Lookup::Listing {
            path: "/calls",
            filter: "filterSourceId",
            also: &[("includePrivate", "true")],
            list_key: "calls",
        },
        user_fields: &["user_emails", "source_user_ids"],
        // A `/calls` listing shows these faithfully; its `audio_url` is null (or a signed URL),
        // its users and participants are shaped otherwise, and the rest is not listed.
        shows: Shows::Only(&[
            ("source_id", "source_id"),
            ("title", "title"),
            ("type", "type"),
            ("call_time", "time"),
        ]),
        decimals: &[],
    },
];

/// The modes advertised in `spec`: the union of what the objects support.
pub const SUPPORTED_MODES: [DestinationSyncMode; 4] = [Append, AppendDedup, Update, SoftDelete];

impl Object {
    const fn crm(
        name: &'static str,
        singular: &'static str,
        decimals: &'static [&'static str],
    ) -> Object {
        Object {
            name,
            singular,
            key: "crm_id",
            modes: &SUPPORTED_MODES,
            dedup: Dedup::LookUp,
            lookup: Lookup::Get,
            user_fields: &[],
            shows: Shows::OwnNames,
            decimals,
        }
    }

    /// The object called `name`, if the destination can write it.
    pub fn named(name: &str) -> Option<&'static Object> {
        OBJECTS.iter().find(|object| object.name == name)
    }

    pub fn supports(&self, mode: DestinationSyncMode) -> bool {
        self.modes.contains(&mode)
    }

    /// The name under which a look-up's answer shows the record's `field`, if it shows it.
    pub fn shown_as<'a>(&self, field: &'a str) -> Option<&'a str> {
        match self.shows {
            Shows::OwnNames => Some(field),
            Shows::Only(pairs) => pairs
                .iter()
                .find(|(written, _)| *written == field)
                .map(|(_, shown)| *shown),
        }
    }

    /// `/create-account`, `/get-deal`, ... for `verb` one of create, get, update, delete.
    pub fn path(&self, verb: &str) -> String {
        format!("/{verb}-{}", self.singular)
    }
}

/// The spelling of a mode in the protocol (`append_dedup`), for messages.
pub fn mode_name(mode: DestinationSyncMode) -> String {
    serde_json::to_value(mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{mode:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::DESTINATION_OBJECTS;

    #[test]
    fn the_table_covers_exactly_the_catalog_objects_in_order() {
        let names: Vec<_> = OBJECTS.iter().map(|o| o.name).collect();
        assert_eq!(names, DESTINATION_OBJECTS);
    }

    #[test]
    fn routes_follow_the_api_naming() {
        let deals = Object::named("deals").unwrap();
        assert_eq!(deals.path("get"), "/get-deal");
        assert_eq!(
            Object::named("calls").unwrap().path("create"),
            "/create-call"
        );
        assert!(Object::named("users").is_none());
    }

    #[test]
    fn calls_refuse_the_modes_the_api_has_no_route_for() {
        let calls = Object::named("calls").unwrap();
        assert!(calls.supports(Append) && calls.supports(AppendDedup));
        assert!(!calls.supports(Update) && !calls.supports(SoftDelete));
        assert!(!calls.supports(DestinationSyncMode::Overwrite));
        assert_eq!(mode_name(AppendDedup), "append_dedup");
    }
}
