//! The source role: `spec`, `check`, `discover` and `read` over the five Clari Copilot streams.

mod emitter;
pub mod page;
pub mod state;
pub mod streams;
mod windows;

use std::sync::Arc;

use crate::catalog;
use crate::client::{Client, RetryPolicy};
use crate::config::{self, SourceConfig};
use crate::error::{Error, Result};
use crate::protocol::{
    Catalog, ConfiguredCatalog, Message, Output, Spec, Stream, StreamStatus, SyncMode, now_millis,
};
use emitter::StreamEmitter;
pub use state::InputState;
use streams::{Paging, StreamDef};
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
/// own TRACE ERROR and the others still run. Only a closed stdout stops the whole read.
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
    for configured in &catalog.streams {
        let name = configured.stream.name.as_str();
        let before = client.requests_sent();
        let started = std::time::Instant::now();
        output.emit(&Message::stream_status(name, StreamStatus::Started))?;
        output.emit(&Message::stream_status(name, StreamStatus::Running))?;
        let result = match streams::find(name) {
            Some(def) => {
                reader
                    .read_stream(def, def.effective_mode(configured.sync_mode))
                    .await
            }
            None => Err(Error::config(format!(
                "the catalog names a stream {name:?} that this source does not have (it has: {})",
                catalog::SOURCE_STREAMS.join(", ")
            ))),
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
                let floor = start.unwrap_or(0);
                let hi = now_millis();
                let mut base_query = Vec::new();
                if let (Some(filter), Some(start)) = (windowing.start_filter, start) {
                    base_query.push((filter.to_owned(), state::format_millis(start - 1)));
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
                let reader = WindowedReader {
                    client: self.client,
                    def,
                    windowing,
                    base_query,
                    page_size: self.config.page_size,
                    expander,
                };
                match def.cursor {
                    Some(field) => {
                        self.read_cursor(&reader, field, mode, floor, hi, &mut emitter)
                            .await?
                    }
                    None => {
                        reader
                            .read(floor, hi, true, &mut emitter, |_, _| Ok(()))
                            .await?;
                        emitter.state(state::no_cursor_blob())?;
                    }
                }
            }
        }
        Ok(emitter.total())
    }

    /// Reads a stream with a cursor. The checkpoint is the bound of the last completed window
    /// (never below the input state, whose records were emitted by an earlier sync), and `hi`,
    /// the sync's start, once everything below it was read.
    async fn read_cursor(
        &self,
        reader: &WindowedReader<'_>,
        field: &str,
        mode: SyncMode,
        floor: i64,
        hi: i64,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<()> {
        let incremental = mode == SyncMode::Incremental;
        let prior = if incremental {
            self.state.cursor(reader.def.name, field)?
        } else {
            None
        };
        let lookback = if incremental && reader.def.lookback {
            i64::from(self.config.lookback_window_days) * MILLIS_PER_DAY
        } else {
            0
        };
        let lo = prior.map_or(floor, |cursor| (cursor - lookback).max(floor));
        let mut checkpoint = prior;
        let completion = reader
            .read(lo, hi, !incremental, emitter, |e, bound| {
                let claim = checkpoint.map_or(bound, |c| c.max(bound));
                checkpoint = Some(claim);
                e.state(state::cursor_blob(field, claim))
            })
            .await?;
        if completion == Completion::Finished {
            checkpoint = checkpoint.max(Some(hi));
        }
        emitter.state_if_changed(state::cursor_blob(field, checkpoint.unwrap_or(lo)))
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
