//! Per-stream emission: records, the STATE checkpoints with their `sourceStats.recordCount`,
//! and periodic progress lines.

use std::time::{Duration, Instant};

use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::Result;
use crate::protocol::{Message, Output, StateMessage};

const PROGRESS_EVERY: Duration = Duration::from_secs(15);

pub struct StreamEmitter<'a> {
    output: &'a Output,
    stream: &'static str,
    since_state: u64,
    total: u64,
    started: Instant,
    last_progress: Instant,
}

impl<'a> StreamEmitter<'a> {
    pub fn new(output: &'a Output, stream: &'static str) -> Self {
        let now = Instant::now();
        Self {
            output,
            stream,
            since_state: 0,
            total: 0,
            started: now,
            last_progress: now,
        }
    }

    pub fn record(&mut self, data: &RawValue, emitted_at: i64) -> Result<()> {
        self.output.record(self.stream, data, emitted_at)?;
        self.since_state += 1;
        self.total += 1;
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            tracing::info!(
                "{}: {} records so far, {:.0} records/s",
                self.stream,
                self.total,
                self.rate()
            );
        }
        Ok(())
    }

    /// Checkpoints `blob`, carrying the number of records emitted since the previous state.
    pub fn state(&mut self, blob: Value) -> Result<()> {
        let message = StateMessage::stream(self.stream, blob, self.since_state);
        self.output.emit(&Message::State { state: message })?;
        self.since_state = 0;
        Ok(())
    }

    /// Records emitted since the last checkpoint.
    pub fn since_state(&self) -> u64 {
        self.since_state
    }

    pub fn estimate(&self, rows: u64) -> Result<()> {
        Ok(self.output.emit(&Message::estimate(self.stream, rows))?)
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    fn rate(&self) -> f64 {
        self.total as f64 / self.started.elapsed().as_secs_f64().max(0.001)
    }
}
