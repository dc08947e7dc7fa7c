//! The five source streams, declared as data: where each lives, where its records are in the
//! response, its key, its cursor and how it is paged. Everything that reads a stream works
//! from these declarations; nothing else knows a stream's path or parameters.

use crate::protocol::SyncMode;

/// How a stream's records are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// One request returns everything (no pagination object).
    Single,
    /// `skip`/`limit` pages inside time windows on a pair of strict filters, split whenever a
    /// window holds more records than `skip` can reach.
    Windowed(Windowing),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windowing {
    /// Strict lower-bound filter of the windowed time (`…Gt`).
    pub filter_gt: &'static str,
    /// Strict upper-bound filter of the windowed time (`…Lt`).
    pub filter_lt: &'static str,
    /// Parameter and value asking for a stable order, where the API has one.
    pub stable_order: Option<(&'static str, &'static str)>,
    /// Whether `includePagination=false` is understood (it makes `/calls` much faster).
    pub optional_pagination: bool,
    /// Filter that bounds the records' own time by `start_date`, when it is not the windowed one.
    pub start_filter: Option<&'static str>,
    /// Whether private records are hidden unless `includePrivate=true` is sent.
    pub has_private_records: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDef {
    pub name: &'static str,
    pub path: &'static str,
    /// Keys the record array may be under; the first one present wins.
    pub records_keys: &'static [&'static str],
    pub primary_key: &'static str,
    /// The incremental cursor, for streams that support incremental reads.
    pub cursor: Option<&'static str>,
    pub paging: Paging,
}

impl StreamDef {
    pub fn supported_sync_modes(&self) -> Vec<SyncMode> {
        match self.cursor {
            Some(_) => vec![SyncMode::FullRefresh, SyncMode::Incremental],
            None => vec![SyncMode::FullRefresh],
        }
    }

    /// The mode actually used: incremental only where the stream supports it (PyAirbyte asks
    /// for incremental on every stream).
    pub fn effective_mode(&self, requested: SyncMode) -> SyncMode {
        if self.cursor.is_some() {
            requested
        } else {
            SyncMode::FullRefresh
        }
    }
}

pub const STREAMS: [StreamDef; 5] = [
    StreamDef {
        name: "calls",
        path: "/calls",
        records_keys: &["calls"],
        primary_key: "id",
        cursor: Some("last_modified_time"),
        paging: Paging::Windowed(Windowing {
            filter_gt: "filterModifiedGt",
            filter_lt: "filterModifiedLt",
            stable_order: Some(("sortTime", "asc")),
            optional_pagination: true,
            start_filter: Some("filterTimeGt"),
            has_private_records: true,
        }),
    },
    StreamDef {
        name: "users",
        path: "/users",
        records_keys: &["users"],
        primary_key: "id",
        cursor: None,
        paging: Paging::Single,
    },
    StreamDef {
        name: "topics",
        path: "/v2/topics",
        records_keys: &["topics"],
        primary_key: "topic_id",
        cursor: None,
        paging: Paging::Single,
    },
    StreamDef {
        name: "scorecard",
        path: "/scorecard",
        records_keys: &["scorecards"],
        primary_key: "id",
        cursor: None,
        paging: Paging::Windowed(Windowing {
            filter_gt: "filterTimeGt",
            filter_lt: "filterTimeLt",
            stable_order: None,
            optional_pagination: false,
            start_filter: None,
            has_private_records: false,
        }),
    },
    StreamDef {
        name: "scorecard-template",
        path: "/scorecard-template",
        // The spec says `scoreCardTemplates`; the live API answers `scorecardTemplates`.
        records_keys: &["scorecardTemplates", "scoreCardTemplates"],
        primary_key: "id",
        cursor: None,
        paging: Paging::Single,
    },
];

pub fn find(name: &str) -> Option<&'static StreamDef> {
    STREAMS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_declarations_agree_with_the_embedded_schemas() {
        for def in &STREAMS {
            let schema =
                crate::catalog::source_schema(def.name).expect("every stream has a schema");
            assert!(
                schema["properties"][def.primary_key].is_object(),
                "{} lacks its key",
                def.name
            );
            if let Some(cursor) = def.cursor {
                assert!(
                    schema["properties"][cursor].is_object(),
                    "{} lacks its cursor",
                    def.name
                );
            }
        }
        assert_eq!(STREAMS.map(|s| s.name), crate::catalog::SOURCE_STREAMS);
    }

    #[test]
    fn incremental_on_a_full_refresh_stream_is_read_in_full() {
        assert_eq!(
            find("users").unwrap().effective_mode(SyncMode::Incremental),
            SyncMode::FullRefresh
        );
        assert_eq!(
            find("calls").unwrap().effective_mode(SyncMode::Incremental),
            SyncMode::Incremental
        );
    }
}
