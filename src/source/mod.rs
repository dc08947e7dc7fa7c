//! The source role: `spec`, `check`, `discover` and `read` over the five Clari Copilot streams.

mod churn;
mod emitter;
pub mod page;
mod page_size;
mod pipeline;
pub mod state;
pub mod streams;
mod windows;

use std::sync::Arc;

use crate::catalog;
use crate::client::{Client, RetryPolicy};
use crate::config::{self, SourceConfig};
use crate::error::{Error, Result};
use crate::protocol::{
    Catalog, ConfiguredCatalog, ConfiguredStream, Message, Output, Spec, Stream, StreamStatus,
    SyncMode, now_millis,
};
use emitter::StreamEmitter;
use page_size::PageSize;
pub use state::InputState;
use state::{BuiltWith, Checkpoints, CursorState};
use streams::{Paging, StreamDef, Windowing};
use windows::{Completion, Expander, WindowedReader};

const DOCUMENTATION_URL: &str = "https://docs.airbyte.com/integrations/sources/clari-copilot";
const MILLIS_PER_DAY: i64 = 86_400_000;

pub fn spec() -> Spec {
    Spec {
        documentation_url: Some(DOCUMENTATION_URL.to_owned()),
        changelog_url: None,
        connection_specification: config::connection_specification::<SourceConfig>(),
        supported_destination_sync_modes: None,
        protocol_version: Some("0.2.0".to_owned()),
    }
}

/// The catalog is static: the schemas are embedded data, so `discover` needs no request.
pub fn discover() -> Catalog {
    let streams = streams::STREAMS
        .iter()
        .map(|def| Stream {
            name: def.name.to_owned(),
            json_schema: catalog::source_schema(def.name).unwrap_or_default(),
            supported_sync_modes: def.supported_sync_modes(),
            source_defined_cursor: def.cursor.map(|_| true),
            default_cursor_field: def.cursor.map(|c| vec![c.to_owned()]),
            source_defined_primary_key: Some(vec![vec![def.primary_key.to_owned()]]),
            namespace: None,
            is_resumable: None,
        })
        .collect();
    Catalog { streams }
}

/// One cheap authenticated request, with a short retry budget so `check` answers in seconds.
pub async fn check(config: &SourceConfig) -> Result<()> {
    let client = Client::new(&config.api, RetryPolicy::check())?;
    let users = streams::find("users").expect("users is declared");
    let body = client.get(users.path, Vec::new()).await?;
    page::parse(&body, users.records_keys, users.path)?;
    Ok(())
}

/// What a read did, for the caller's exit code.
#[derive(Debug, Default)]
pub struct ReadSummary {
    pub failed_streams: Vec<String>,
    pub records: u64,
}

/// Reads every configured stream in catalog order. A failing stream ends INCOMPLETE with its
/// own TRACE ERROR and the others still run. Refused credentials stop the whole read with one
/// TRACE ERROR (every stream left ends INCOMPLETE), and so does a closed stdout.
pub async fn read(
    config: &SourceConfig,
    catalog: &ConfiguredCatalog,
    state: &InputState,
    output: &Arc<Output>,
    retry: RetryPolicy,
) -> Result<ReadSummary> {
    // Callers normally registered them already; a read must be safe even when they did not.
    output.add_secrets(config.api.secrets());
    let client = Client::new(&config.api, retry)?;
    if config.api.requests_per_second > config::DOCUMENTED_REQUESTS_PER_SECOND {
        tracing::warn!(
            "requests_per_second = {} is above Clari Copilot's documented limit of {}: expect HTTP 429s",
            config.api.requests_per_second,
            config::DOCUMENTED_REQUESTS_PER_SECOND
        );
    }
    let reader = Reader {
        config,
        client: &client,
        state,
        output,
    };
    let mut summary = ReadSummary::default();
    let mut configured_streams = catalog.streams.iter();
    while let Some(configured) = configured_streams.next() {
        let name = configured.stream.name.as_str();
        let before = client.requests_sent();
        let started = std::time::Instant::now();
        output.emit(&Message::stream_status(name, StreamStatus::Started))?;
        output.emit(&Message::stream_status(name, StreamStatus::Running))?;
        let result = match streams::find(name) {
            Some(def) => {
                warn_about_ignored_cursor(def, configured);
                reader
                    .read_stream(def, def.effective_mode(configured.sync_mode))
                    .await
            }
            None => Err(Error::input(
                "configured catalog",
                format!(
                    "it names a stream {name:?} that this source does not have (it has: {}). \
                     Refresh the source schema of the connection so its catalog lists this source's streams",
                    catalog::SOURCE_STREAMS.join(", ")
                ),
            )),
        };
        match result {
            Ok(records) => {
                summary.records += records;
                tracing::info!(
                    "{name}: {records} records in {:.1} s, {} requests",
                    started.elapsed().as_secs_f64(),
                    client.requests_sent() - before
                );
                output.emit(&Message::stream_status(name, StreamStatus::Complete))?;
            }
            Err(Error::Io(e)) => return Err(Error::Io(e)),
            // Credentials refused for one stream are refused for all: the sync stops once, with
            // one error for the whole sync, instead of asking the API again for every stream.
            Err(error) if error.is_auth() => {
                tracing::error!("{name}: stopped, the credentials were refused: {error}");
                output.emit(&Message::stream_status(name, StreamStatus::Incomplete))?;
                summary.failed_streams.push(name.to_owned());
                for skipped in configured_streams.by_ref() {
                    let skipped = skipped.stream.name.as_str();
                    output.emit(&Message::stream_status(skipped, StreamStatus::Started))?;
                    output.emit(&Message::stream_status(skipped, StreamStatus::Incomplete))?;
                    summary.failed_streams.push(skipped.to_owned());
                }
                output.emit(&Message::error(error.trace(None)))?;
            }
            Err(error) => {
                tracing::error!(
                    "{name}: stopped after {} requests: {error}",
                    client.requests_sent() - before
                );
                let status = match error {
                    Error::RateLimited { .. } => {
                        Message::rate_limited(name, next_weekly_quota_reset(now_millis()))
                    }
                    _ => Message::stream_status(name, StreamStatus::Incomplete),
                };
                output.emit(&status)?;
                output.emit(&Message::error(error.trace(Some(name))))?;
                summary.failed_streams.push(name.to_owned());
            }
        }
    }
    tracing::info!(
        "read {} records with {} requests ({} answered HTTP 429)",
        summary.records,
        client.requests_sent(),
        client.rate_limited_answers()
    );
    Ok(summary)
}

struct Reader<'a> {
    config: &'a SourceConfig,
    client: &'a Client,
    state: &'a InputState,
    output: &'a Output,
}

impl Reader<'_> {
    /// Reads one stream and returns how many records it emitted.
    async fn read_stream(&self, def: &'static StreamDef, mode: SyncMode) -> Result<u64> {
        let mut emitter = StreamEmitter::new(self.output, def.name);
        match def.paging {
            Paging::Single => {
                let body = self.client.get(def.path, Vec::new()).await?;
                let page = page::parse(&body, def.records_keys, def.path)?;
                let emitted_at = now_millis();
                for record in &page.records {
                    page::record_key(record, def.primary_key, def.path)?;
                    emitter.record(record, emitted_at)?;
                }
                emitter.state(state::no_cursor_blob())?;
            }
            Paging::Windowed(windowing) => {
                let start = self.config.start()?.map(|t| t.as_millisecond());
                match def.cursor {
                    Some(field) => {
                        self.read_cursor(def, windowing, field, mode, start, &mut emitter)
                            .await?
                    }
                    None => {
                        let reader = self.windowed_reader(def, windowing, (start, None), None);
                        let floor = start.unwrap_or(0);
                        reader
                            .read(
                                floor,
                                now_millis(),
                                true,
                                Vec::new(),
                                &mut emitter,
                                |_, _, _| Ok(()),
                            )
                            .await?;
                        emitter.state(state::no_cursor_blob())?;
                    }
                }
            }
        }
        Ok(emitter.total())
    }

    /// A reader of `def`'s windows over records whose own time (the call's, where it is not
    /// the windowed one) lies after `time_after` and before `time_before`, starting at the
    /// page size an earlier sync learned, if any.
    fn windowed_reader(
        &self,
        def: &'static StreamDef,
        windowing: Windowing,
        (time_after, time_before): (Option<i64>, Option<i64>),
        learned_page_size: Option<u32>,
    ) -> WindowedReader<'_> {
        let mut base_query = Vec::new();
        let time_filters = [
            (windowing.start_filter, time_after.map(|t| t - 1)),
            (windowing.start_filter_lt, time_before),
        ];
        for (filter, bound) in time_filters {
            if let (Some(filter), Some(bound)) = (filter, bound) {
                base_query.push((filter.to_owned(), state::format_millis(bound)));
            }
        }
        if windowing.has_private_records {
            base_query.push((
                "includePrivate".to_owned(),
                self.config.include_private_calls.to_string(),
            ));
        }
        let expander = def.expansion.map(|expansion| {
            let mut query = Vec::new();
            for (param, on) in [
                ("includeAudio", self.config.call_details_include_audio),
                ("includeVideo", self.config.call_details_include_video),
            ] {
                if on {
                    query.push((param.to_owned(), "true".to_owned()));
                }
            }
            Expander {
                expansion,
                finished_statuses: &self.config.call_details_statuses,
                query,
                budget: self.config.call_details_max_requests.map(u64::from),
            }
        });
        WindowedReader {
            client: self.client,
            def,
            windowing,
            base_query,
            page_size: PageSize::new(self.config.page_size, learned_page_size),
            expander,
        }
    }

    /// Reads a stream with a cursor up to `hi`, this machine's clock at the start less the
    /// indexing margin, checkpointing as [`Checkpoints`] decides.
    async fn read_cursor(
        &self,
        def: &'static StreamDef,
        windowing: Windowing,
        field: &'static str,
        mode: SyncMode,
        start: Option<i64>,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<()> {
        let incremental = mode == SyncMode::Incremental;
        let prior = if incremental {
            CursorState::read(self.state, def.name, field)?
        } else {
            CursorState::default()
        };
        let built_with = self.built_with(def);
        let margin = i64::from(self.config.indexing_margin_seconds) * 1_000;
        let hi = now_millis() - margin;
        tracing::info!(
            "{}: reading records modified before {} (now less the indexing margin of {} s)",
            def.name,
            state::format_millis(hi),
            self.config.indexing_margin_seconds
        );
        let lookback = if incremental && def.lookback {
            i64::from(self.config.lookback_window_days) * MILLIS_PER_DAY
        } else {
            0
        };
        let floor = start.unwrap_or(0);
        let lo = prior
            .cursor
            .map_or(floor, |cursor| (cursor - lookback).max(floor));
        if let Some(earlier) = &prior.built_with {
            warn_about_statuses_gained(def, earlier, &built_with);
            if prior.cursor.is_some() {
                self.read_uncovered(def, windowing, earlier, &built_with, lo, emitter)
                    .await?;
            }
        }
        let mut checkpoints = Checkpoints::new(field, prior.clone(), built_with, (lo, hi));
        let reader = self.windowed_reader(def, windowing, (start, None), prior.page_size);
        let end = reader
            .read(
                lo,
                hi,
                !incremental,
                prior.pending_details,
                emitter,
                |e, window_hi, unfetched| {
                    let skew = self.client.server_skew_millis();
                    let page_size = reader.page_size.current();
                    match checkpoints.window_completed(window_hi, skew, unfetched, page_size) {
                        Some(blob) => e.state(blob),
                        None => Ok(()),
                    }
                },
            )
            .await?;
        let last = checkpoints.read_ended(
            end.completion == Completion::Finished,
            self.client.server_skew_millis(),
            end.unfetched_details,
            reader.page_size.current(),
            emitter.since_state(),
        );
        match last {
            Some(blob) => emitter.state(blob),
            None => Ok(()),
        }
    }

    /// The settings a cursor stream's state is built with.
    fn built_with(&self, def: &StreamDef) -> BuiltWith {
        BuiltWith {
            start_date: self
                .config
                .start()
                .ok()
                .flatten()
                .map(|t| state::format_millis(t.as_millisecond())),
            call_details_statuses: def
                .expansion
                .map(|_| self.config.call_details_statuses.clone()),
        }
    }

    /// When `start_date` moved earlier since the state was built, reads what it uncovered:
    /// calls modified before the state (`below`) whose call time lies in the newly opened
    /// range. It checkpoints nothing: until it is done the state still says the old start, so
    /// a sync stopped meanwhile reads the range again.
    async fn read_uncovered(
        &self,
        def: &'static StreamDef,
        windowing: Windowing,
        earlier: &BuiltWith,
        now: &BuiltWith,
        below: i64,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<()> {
        let (from, to) = (now.start_millis(), earlier.start_millis());
        if from >= to {
            return Ok(());
        }
        tracing::info!(
            "{}: start_date moved from {} to {}: reading the calls of that range modified before the \
             last checkpoint",
            def.name,
            state::format_millis(to),
            state::format_millis(from)
        );
        let reader =
            self.windowed_reader(def, windowing, ((from > 0).then_some(from), Some(to)), None);
        let end = reader
            .read(0, below, false, Vec::new(), emitter, |_, _, _| Ok(()))
            .await?;
        if end.completion == Completion::BudgetSpent || !end.unfetched_details.is_empty() {
            return Err(Error::config(format!(
                "the {} range uncovered by moving start_date earlier could not be read in one sync \
                 within call_details_max_requests; raise it for one sync, or reset the stream",
                def.name
            )));
        }
        Ok(())
    }
}

/// Warns when the configured catalog chooses a cursor field the source does not use. Every
/// cursor is source-defined (the API filters on `last_modified_time` only), so a chosen one is
/// ignored; without the warning the user would believe it applies.
fn warn_about_ignored_cursor(def: &StreamDef, configured: &ConfiguredStream) {
    let Some(chosen) = configured.cursor_field.as_ref().filter(|c| !c.is_empty()) else {
        return;
    };
    let chosen = chosen.join(".");
    match def.cursor {
        Some(cursor) if chosen == cursor => {}
        Some(cursor) => tracing::warn!(
            "{}: the configured cursor field `{chosen}` is ignored: this stream's cursor is always \
             `{cursor}`",
            def.name
        ),
        None => tracing::warn!(
            "{}: the configured cursor field `{chosen}` is ignored: this stream has no cursor and is \
             read in full on every sync",
            def.name
        ),
    }
}

/// Warns when `call-details` now fetches statuses that the syncs behind the state did not:
/// calls that reached those statuses before the checkpoint are not fetched again unasked, since
/// each costs a request of the weekly quota.
fn warn_about_statuses_gained(def: &StreamDef, earlier: &BuiltWith, now: &BuiltWith) {
    let (Some(before), Some(after)) = (&earlier.call_details_statuses, &now.call_details_statuses)
    else {
        return;
    };
    let gained: Vec<&str> = after
        .iter()
        .filter(|status| !before.contains(status))
        .map(String::as_str)
        .collect();
    if !gained.is_empty() {
        tracing::warn!(
            "{}: call_details_statuses now includes {}, which the earlier syncs did not fetch details for. \
             Calls that reached it before the last checkpoint are not fetched unless you reset the {} \
             stream (a reset fetches every call's details again, one request each).",
            def.name,
            gained.join(", "),
            def.name
        );
    }
}

/// Clari's weekly quota resets every Sunday at 00:00 GMT.
fn next_weekly_quota_reset(now_millis: i64) -> i64 {
    const WEEK: i64 = 7 * MILLIS_PER_DAY;
    // The Unix epoch was a Thursday; the first Sunday 00:00 after it is 3 days later.
    const FIRST_SUNDAY: i64 = 3 * MILLIS_PER_DAY;
    let weeks = (now_millis - FIRST_SUNDAY).div_euclid(WEEK) + 1;
    FIRST_SUNDAY + weeks * WEEK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weekly_quota_resets_on_the_next_sunday_at_midnight_gmt() {
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        // 2026-11-30 is a Monday.
        assert_eq!(
            next_weekly_quota_reset(at("2026-11-30T12:00:00Z")),
            at("2026-12-06T00:00:00Z")
        );
        assert_eq!(
            next_weekly_quota_reset(at("2026-12-06T00:00:00Z")),
            at("2026-12-13T00:00:00Z")
        );
        assert_eq!(
            next_weekly_quota_reset(at("2026-12-05T23:59:59Z")),
            at("2026-12-06T00:00:00Z")
        );
    }
}
