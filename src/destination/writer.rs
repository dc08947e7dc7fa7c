//! The write loop: takes items from the reader, sends records concurrently, and echoes each
//! STATE as soon as [`Acks`] says every record before it is acknowledged.
//!
//! Three bounds keep it honest:
//! - at most [`MAX_IN_FLIGHT`] records are being sent at once (the client's shared rate limiter
//!   paces the requests themselves, so a slow API is still written many records at a time);
//! - at most one record per key (`crm_id`, `source_id`) is in flight, later ones for the same
//!   key wait their turn, so an older version can never overwrite a newer one;
//! - input is taken only while fewer than [`MAX_UNACKNOWLEDGED`] records and
//!   [`MAX_HELD_STATES`] states wait, and the records and states held keep their input bytes
//!   leased from the reader's byte budget ([`super::reader::MAX_HELD_BYTES`]) until they are
//!   acknowledged or echoed, so memory stays bounded in bytes and the reader blocks.
//!
//! While it writes, a progress LOG line goes out every [`PROGRESS_INTERVAL`]; after the first
//! error, the failures of the requests still in flight are not logged again (one cause, one
//! error).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::WriteSummary;
use super::acks::{Acks, Outcome, Scope, Tally};
use super::reader::{Item, Lease};
use super::requests::{self, Prepared, Verdict};
use super::routes::{Route, Routes, StreamKey};
use crate::client::Client;
use crate::config::RejectionPolicy;
use crate::error::{Error, Result};
use crate::protocol::{LogLevel, Message, Output, StateStats, StreamDescriptor};

/// Records being sent at once.
pub const MAX_IN_FLIGHT: usize = 16;
/// Records taken from the input and not yet acknowledged (in flight or waiting for their key).
pub const MAX_UNACKNOWLEDGED: usize = 512;
/// States taken from the input and not yet echoed.
pub const MAX_HELD_STATES: usize = 10_000;
/// How often a progress LOG line goes out while writing.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(12);

/// A STATE payload, field by field, each value kept exactly as received.
type StatePayload = BTreeMap<String, Box<RawValue>>;

/// A state waiting for its records, holding its input bytes.
struct HeldState {
    payload: StatePayload,
    _lease: Lease,
}

/// One record ready to send, holding its input bytes until acknowledged.
struct Job {
    number: u64,
    line: u64,
    route: Arc<Route>,
    record: Prepared,
    _lease: Lease,
}

/// A key in Clari Copilot: the object and the record's `crm_id` or `source_id`.
type Key = (&'static str, String);

pub struct Writer {
    client: Arc<Client>,
    output: Arc<Output>,
    policy: RejectionPolicy,
    routes: Routes,
    acks: Acks<StreamKey, HeldState>,
    /// Keys with a job in flight or ready, and the jobs waiting behind it.
    busy: HashMap<Key, VecDeque<Job>>,
    /// Jobs whose key is free, waiting for a slot.
    ready: VecDeque<Job>,
    tasks: JoinSet<(Job, Result<Verdict>)>,
    summary: WriteSummary,
    /// Records written (or found already there) per stream, for the progress lines.
    written_per_stream: BTreeMap<String, u64>,
    progress_every: Duration,
    started: Instant,
    /// Set after the first error: later failures are consequences, not news.
    stopping: bool,
}

#[derive(Deserialize)]
struct StateHead {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    stream: Option<StreamHead>,
}

#[derive(Deserialize)]
struct StreamHead {
    stream_descriptor: StreamDescriptor,
}

impl Writer {
    pub fn new(
        client: Arc<Client>,
        output: Arc<Output>,
        policy: RejectionPolicy,
        routes: Routes,
    ) -> Writer {
        Writer {
            client,
            output,
            policy,
            routes,
            acks: Acks::default(),
            busy: HashMap::new(),
            ready: VecDeque::new(),
            tasks: JoinSet::new(),
            summary: WriteSummary::default(),
            written_per_stream: BTreeMap::new(),
            progress_every: PROGRESS_INTERVAL,
            started: Instant::now(),
            stopping: false,
        }
    }

    /// This writer with progress lines every `interval` instead of [`PROGRESS_INTERVAL`].
    pub fn with_progress_every(mut self, interval: Duration) -> Writer {
        self.progress_every = interval;
        self
    }

    /// Runs until the input ends and every record is acknowledged, or until the first error
    /// (then the requests in flight are finished, so their states can still be echoed, and
    /// nothing new is sent).
    ///
    /// SIGTERM is the CLI's: it exits at once, which loses nothing, because every state whose
    /// records are acknowledged has already been echoed and flushed.
    pub async fn run(mut self, mut input: mpsc::Receiver<Item>) -> Result<WriteSummary> {
        let outcome = self.process(&mut input).await;
        input.close();
        if outcome.is_err() {
            self.wind_down().await;
        }
        self.echo_released()?;
        outcome?;
        self.summary.requests = self.client.requests_sent();
        Ok(self.summary)
    }

    async fn process(&mut self, input: &mut mpsc::Receiver<Item>) -> Result<()> {
        let mut input_open = true;
        let start = tokio::time::Instant::now() + self.progress_every;
        let mut progress = tokio::time::interval_at(start, self.progress_every);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.start_ready();
            if !input_open && self.tasks.is_empty() {
                return Ok(());
            }
            let accepting = input_open
                && self.acks.unacknowledged() < MAX_UNACKNOWLEDGED
                && self.acks.held_states() < MAX_HELD_STATES;
            tokio::select! {
                biased;
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    let (job, result) = done.map_err(task_failed)?;
                    self.finish(job, result)?;
                }
                item = input.recv(), if accepting => match item {
                    Some(item) => self.take(item)?,
                    None => input_open = false,
                },
                _ = progress.tick() => self.log_progress(),
                else => return Err(task_failed("the write loop has nothing to wait for")),
            }
            self.echo_released()?;
        }
    }

    /// After an error: sends nothing new, but lets the requests in flight finish and counts
    /// what they wrote. Their own errors were already logged and change nothing.
    async fn wind_down(&mut self) {
        self.stopping = true;
        self.ready.clear();
        self.busy.clear();
        while let Some(done) = self.tasks.join_next().await {
            if let Ok((job, result)) = done {
                let _ = self.finish(job, result);
            }
        }
    }

    fn take(&mut self, item: Item) -> Result<()> {
        match item {
            Item::Skipped { line, reason } => {
                self.summary.skipped_lines += 1;
                self.log(
                    LogLevel::Warn,
                    format!("Skipped line {line} of the input: {reason}"),
                );
            }
            Item::State { line, state, lease } => match parse_state(&state) {
                Some((scope, payload)) => self.acks.state(
                    scope,
                    HeldState {
                        payload,
                        _lease: lease,
                    },
                ),
                None => {
                    self.summary.skipped_lines += 1;
                    self.log(
                        LogLevel::Warn,
                        format!("Skipped line {line} of the input: its STATE payload is not a JSON object"),
                    );
                }
            },
            Item::BadRecord {
                line,
                stream,
                reason,
            } => {
                // Tallied in the window of the stream the line names, if any, and in the
                // global window.
                let key = (stream.unwrap_or_default(), None);
                self.summary.records += 1;
                let number = self.acks.record(&key);
                let label = match key.0.as_str() {
                    "" => "(unreadable)".to_owned(),
                    name => name.to_owned(),
                };
                self.reject(number, line, &label, reason)?;
            }
            Item::Record {
                line,
                stream,
                namespace,
                data,
                lease,
            } => {
                let key = (stream, namespace);
                let Some(route) = self.routes.get(&key).cloned() else {
                    return Err(Error::UnconfiguredStream {
                        stream: key.0,
                        line,
                    });
                };
                self.summary.records += 1;
                let number = self.acks.record(&key);
                match requests::prepare(route.object, route.mode, &data) {
                    Ok(record) => self.enqueue(Job {
                        number,
                        line,
                        route,
                        record,
                        _lease: lease,
                    }),
                    Err(reason) => self.reject(number, line, &route.stream, reason)?,
                }
            }
        }
        Ok(())
    }

    fn enqueue(&mut self, job: Job) {
        let key = (job.route.object.name, job.record.key.clone());
        match self.busy.get_mut(&key) {
            Some(waiting) => waiting.push_back(job),
            None => {
                self.busy.insert(key, VecDeque::new());
                self.ready.push_back(job);
            }
        }
    }

    fn start_ready(&mut self) {
        while self.tasks.len() < MAX_IN_FLIGHT {
            let Some(job) = self.ready.pop_front() else {
                return;
            };
            let client = Arc::clone(&self.client);
            self.tasks.spawn(async move {
                let result =
                    requests::send(&client, job.route.object, job.route.mode, &job.record).await;
                (job, result)
            });
        }
    }

    fn finish(&mut self, job: Job, result: Result<Verdict>) -> Result<()> {
        let key = (job.route.object.name, job.record.key.clone());
        if let Some(waiting) = self.busy.get_mut(&key) {
            match waiting.pop_front() {
                Some(next) => self.ready.push_back(next),
                None => {
                    self.busy.remove(&key);
                }
            }
        }
        match result {
            Ok(Verdict::Written) => self.summary.written += 1,
            Ok(Verdict::Unchanged) => self.summary.unchanged += 1,
            Ok(Verdict::AlreadyPresent) => self.summary.already_present += 1,
            Ok(Verdict::Rejected(reason)) => {
                return self.reject(job.number, job.line, &job.route.stream, reason);
            }
            Err(error) => {
                if !self.stopping {
                    self.stopping = true;
                    self.log(
                        LogLevel::Error,
                        format!(
                            "Writing the record on line {} of stream `{}` failed: {error}",
                            job.line, job.route.stream
                        ),
                    );
                }
                return Err(error);
            }
        }
        *self
            .written_per_stream
            .entry(job.route.stream.clone())
            .or_default() += 1;
        self.acks.ack(job.number, Outcome::Written);
        Ok(())
    }

    /// Applies the rejection policy to a record the schema or the API refused, or a RECORD
    /// line that could not be read.
    fn reject(&mut self, number: u64, line: u64, stream: &str, reason: String) -> Result<()> {
        match self.policy {
            RejectionPolicy::Fail => Err(Error::RecordRejected {
                stream: stream.to_owned(),
                line,
                reason,
            }),
            RejectionPolicy::Skip => {
                self.summary.rejected += 1;
                self.acks.ack(number, Outcome::Rejected);
                self.log(
                    LogLevel::Warn,
                    format!(
                        "Skipped the record on line {line} of stream `{stream}` (on_rejected_record = skip): {reason}"
                    ),
                );
                Ok(())
            }
        }
    }

    fn echo_released(&mut self) -> Result<()> {
        for (HeldState { mut payload, .. }, tally) in self.acks.release() {
            payload.insert("destinationStats".into(), stats(tally));
            self.output.state(&payload)?;
            self.summary.states += 1;
        }
        Ok(())
    }

    /// A progress line: records written per stream, the rate, requests and rejections so far.
    fn log_progress(&self) {
        let landed = self.summary.written + self.summary.unchanged + self.summary.already_present;
        let per_stream: Vec<String> = self
            .written_per_stream
            .iter()
            .map(|(stream, n)| format!("{stream} {n}"))
            .collect();
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        self.log(
            LogLevel::Info,
            format!(
                "Writing: {landed} of {} records read are written ({}), {:.1} records/s, \
                 {} requests sent, {} rejected so far",
                self.summary.records,
                if per_stream.is_empty() {
                    "none yet".to_owned()
                } else {
                    per_stream.join(", ")
                },
                landed as f64 / seconds,
                self.client.requests_sent(),
                self.summary.rejected
            ),
        );
    }

    fn log(&self, level: LogLevel, message: String) {
        // A closed stdout surfaces at the next STATE; a log line cannot fail the sync.
        let _ = self.output.emit(&Message::log(level, message));
    }
}

fn task_failed(detail: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!(
        "a write task failed: {detail}"
    )))
}

/// The scope of a state (STREAM with its descriptor, else global) and its fields.
fn parse_state(state: &RawValue) -> Option<(Scope<StreamKey>, StatePayload)> {
    let payload: StatePayload = serde_json::from_str(state.get()).ok()?;
    let head: StateHead = serde_json::from_str(state.get()).ok()?;
    let scope = match (head.kind.as_deref(), head.stream) {
        (Some("STREAM"), Some(stream)) => Scope::Stream((
            stream.stream_descriptor.name,
            stream.stream_descriptor.namespace,
        )),
        _ => Scope::Global,
    };
    Some((scope, payload))
}

/// `destinationStats` as a raw value: counts written as doubles, the rejected count only
/// when something was rejected.
fn stats(tally: Tally) -> Box<RawValue> {
    let stats = StateStats {
        record_count: tally.written as f64,
        rejected_record_count: (tally.rejected > 0).then_some(tally.rejected as f64),
    };
    // Serialising two numbers cannot fail.
    serde_json::value::to_raw_value(&stats).unwrap_or_default()
}
