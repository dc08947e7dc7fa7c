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
    /// Upper-bound filter of that time, to read only a range of it (what an earlier
    /// `start_date` left out).
    pub start_filter_lt: Option<&'static str>,
    /// The record field holding the windowed time, where records carry it: where to cut a
    /// window so that each part fits in one request.
    pub window_field: Option<&'static str>,
    /// Whether private records are hidden unless `includePrivate=true` is sent.
    pub has_private_records: bool,
    /// Windows reporting more records than this are split. The `skip` cap sets the ceiling;
    /// a lower value checkpoints more often where each record is expensive.
    pub split_above: u64,
}

/// A stream whose records are fetched one by one from a details endpoint, for each listed
/// record in a finished status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expansion {
    pub path: &'static str,
    /// Query parameter carrying the listed record's key.
    pub id_param: &'static str,
    /// Key of the detailed record in the response.
    pub record_key: &'static str,
    /// Field of the listed record compared with the configured finished statuses.
    pub status_field: &'static str,
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
    /// Whether incremental reads rewind the cursor by the configured lookback window.
    pub lookback: bool,
    pub paging: Paging,
    pub expansion: Option<Expansion>,
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

/// How `/calls` is windowed: by modification time, in a stable order, without pagination
/// objects where they are not needed.
const CALL_WINDOWS: Windowing = Windowing {
    filter_gt: "filterModifiedGt",
    filter_lt: "filterModifiedLt",
    stable_order: Some(("sortTime", "asc")),
    optional_pagination: true,
    start_filter: Some("filterTimeGt"),
    start_filter_lt: Some("filterTimeLt"),
    window_field: Some("last_modified_time"),
    has_private_records: true,
    split_above: SKIP_CAP,
};

/// The API refuses `skip` above this.
pub const SKIP_CAP: u64 = 10_000;

pub const STREAMS: [StreamDef; 6] = [
    StreamDef {
        name: "calls",
        path: "/calls",
        records_keys: &["calls"],
        primary_key: "id",
        cursor: Some("last_modified_time"),
        lookback: true,
        paging: Paging::Windowed(CALL_WINDOWS),
        expansion: None,
    },
    StreamDef {
        name: "call-details",
        path: "/calls",
        records_keys: &["calls"],
        primary_key: "id",
        cursor: Some("last_modified_time"),
        // Details are fetched once per change of `last_modified_time`, never re-read.
        lookback: false,
        // Each record costs a request: small windows checkpoint after a few hundred of them.
        paging: Paging::Windowed(Windowing {
            split_above: 500,
            ..CALL_WINDOWS
        }),
        expansion: Some(Expansion {
            path: "/call-details",
            id_param: "id",
            record_key: "call",
            status_field: "status",
        }),
    },
    StreamDef {
        name: "users",
        path: "/users",
        records_keys: &["users"],
        primary_key: "id",
        cursor: None,
        lookback: false,
        paging: Paging::Single,
        expansion: None,
    },
    StreamDef {
        name: "topics",
        path: "/v2/topics",
        records_keys: &["topics"],
        primary_key: "topic_id",
        cursor: None,
        lookback: false,
        paging: Paging::Single,
        expansion: None,
    },
    StreamDef {
        name: "scorecard",
        path: "/scorecard",
        records_keys: &["scorecards"],
        primary_key: "id",
        cursor: None,
        lookback: false,
        paging: Paging::Windowed(Windowing {
            filter_gt: "filterTimeGt",
            filter_lt: "filterTimeLt",
            stable_order: None,
            optional_pagination: false,
            start_filter: None,
            start_filter_lt: None,
            // A scorecard does not carry the call time it is filtered by.
            window_field: None,
            has_private_records: false,
            split_above: SKIP_CAP,
        }),
        expansion: None,
    },
    StreamDef {
        name: "scorecard-template",
        path: "/scorecard-template",
        // The spec says `scoreCardTemplates`; the live API answers `scorecardTemplates`.
        records_keys: &["scorecardTemplates", "scoreCardTemplates"],
        primary_key: "id",
        cursor: None,
        lookback: false,
        paging: Paging::Single,
        expansion: None,
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
