//! A `tracing` layer that turns log events into Airbyte LOG messages on the shared output.
//!
//! Library code logs with `tracing::info!` and never knows about Airbyte; this layer is the
//! only place where an event becomes a protocol line. The command for people (`proxy`) and the
//! demo example use the same layer with a plain-text sink on stderr instead.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use super::{LogLevel, Message, Output};

/// Where log lines go.
pub enum LogSink {
    /// LOG messages through the protocol output (protocol commands).
    Protocol(Arc<Output>),
    /// Plain lines on stderr (human commands).
    Stderr,
}

pub struct LogLayer {
    sink: LogSink,
}

/// Installs the global subscriber. `LOG_LEVEL` (e.g. `debug`, or a full filter directive)
/// overrides the default of `info` for this crate (`warn` for human commands) and `warn` for
/// dependencies.
pub fn install(sink: LogSink) {
    let directive = std::env::var("LOG_LEVEL").unwrap_or_default();
    // People reading a human command want its own output, not the connector's progress lines.
    let default_level = if matches!(sink, LogSink::Stderr) {
        "warn"
    } else {
        "info"
    };
    let filter = match directive.trim() {
        "" => EnvFilter::new(format!("warn,clari_copilot={default_level}")),
        level if !level.contains('=') && !level.contains(',') => EnvFilter::new(format!(
            "warn,clari_copilot={level},source_clari_copilot={level}"
        )),
        custom => EnvFilter::new(custom),
    };
    // A second install (tests calling the entry point twice) is harmless: keep the first.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(LogLayer { sink })
        .try_init();
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let level = *event.metadata().level();
        match &self.sink {
            LogSink::Protocol(output) => {
                // A closed stdout is reported by the next protocol write; a log line can't fail.
                let _ = output.emit(&Message::log(airbyte_level(level), visitor.text));
            }
            LogSink::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "{level:>5} {}", visitor.text);
            }
        }
    }
}

fn airbyte_level(level: Level) -> LogLevel {
    match level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    }
}

/// Collects the event's message followed by its `key=value` fields.
#[derive(Default)]
struct MessageVisitor {
    text: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.insert_str(0, value);
        } else {
            let _ = write!(self.text, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.text.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.text, " {}={:?}", field.name(), value);
        }
    }
}
