//! The one writer every protocol message and every log line goes through.
//!
//! Airbyte reads stdout line by line, so a line must never be cut in half by another thread's
//! write. Each message is serialised into a reused buffer and handed to the sink with a single
//! `write_all` under one lock. The sink is buffered (one syscall per record would dominate a
//! fast read) and flushed whenever a message other than RECORD or LOG is written: a STATE
//! waiting in a buffer after its records is a checkpoint the platform never sees.
//!
//! Secrets are scrubbed from every non-record line as a last line of defence; the config's
//! secret type already refuses to print itself.

use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::value::RawValue;

use super::{Message, StreamStatus};

const BUFFER_CAPACITY: usize = 256 * 1024;
/// What a secret is replaced with wherever it would be printed.
pub const MASK: &str = "**********";

pub struct Output {
    inner: Mutex<Inner>,
}

struct Inner {
    sink: BufWriter<Box<dyn Write + Send>>,
    line: Vec<u8>,
    secrets: Vec<String>,
    closed: bool,
    /// Streams with a STARTED status and no final one yet, in the order they started.
    running: Vec<String>,
}

impl Output {
    /// An output writing to the process's stdout.
    pub fn stdout() -> Arc<Self> {
        Self::new(Box::new(io::stdout()))
    }

    pub fn new(sink: Box<dyn Write + Send>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                sink: BufWriter::with_capacity(BUFFER_CAPACITY, sink),
                line: Vec::with_capacity(4096),
                secrets: Vec::new(),
                closed: false,
                running: Vec::new(),
            }),
        })
    }

    /// Registers values that must never appear in a log, trace or status line.
    pub fn add_secrets<I: IntoIterator<Item = String>>(&self, secrets: I) {
        let mut inner = self.lock();
        for secret in secrets {
            // A one- or two-character "secret" would mask ordinary text everywhere.
            if secret.chars().count() >= 3 && !inner.secrets.contains(&secret) {
                inner.secrets.push(secret);
            }
        }
    }

    /// Writes one protocol message as one line. Everything but RECORD and LOG is flushed at once.
    pub fn emit(&self, message: &Message) -> io::Result<()> {
        let flush = !matches!(message, Message::Log { .. });
        let mut inner = self.lock();
        inner.write_line(message, true, flush)?;
        if let Message::Trace { trace } = message
            && let Some(status) = &trace.stream_status
        {
            let stream = &status.stream_descriptor.name;
            inner.running.retain(|running| running != stream);
            if status.status != StreamStatus::Complete && status.status != StreamStatus::Incomplete
            {
                inner.running.push(stream.clone());
            }
        }
        Ok(())
    }

    /// Ends the output of a process being stopped (SIGTERM): every stream still running gets
    /// an INCOMPLETE status, everything is flushed, and later writes fail as if stdout had
    /// closed, so no record can follow the INCOMPLETE of its stream.
    pub fn interrupt(&self) -> io::Result<()> {
        let mut inner = self.lock();
        if inner.closed {
            return Ok(());
        }
        for stream in std::mem::take(&mut inner.running) {
            inner.write_line(
                &Message::stream_status(&stream, StreamStatus::Incomplete),
                true,
                false,
            )?;
        }
        let result = inner.sink.flush();
        inner.closed = true;
        result
    }

    /// Writes a RECORD whose `data` is the API's raw JSON object, byte for byte.
    pub fn record(&self, stream: &str, data: &RawValue, emitted_at: i64) -> io::Result<()> {
        #[derive(Serialize)]
        struct Record<'a> {
            stream: &'a str,
            data: &'a RawValue,
            emitted_at: i64,
        }
        #[derive(Serialize)]
        #[serde(tag = "type", rename = "RECORD")]
        struct Envelope<'a> {
            record: Record<'a>,
        }
        self.lock().write_line(
            &Envelope {
                record: Record {
                    stream,
                    data,
                    emitted_at,
                },
            },
            false,
            false,
        )
    }

    /// Writes a STATE whose payload is given as is (a destination echoes the states it received
    /// byte for byte, adding only `destinationStats`), and flushes it at once.
    pub fn state<T: Serialize + ?Sized>(&self, state: &T) -> io::Result<()> {
        #[derive(Serialize)]
        #[serde(tag = "type", rename = "STATE")]
        struct Envelope<'a, T: ?Sized> {
            state: &'a T,
        }
        self.lock().write_line(&Envelope { state }, true, true)
    }

    pub fn flush(&self) -> io::Result<()> {
        let mut inner = self.lock();
        if inner.closed {
            return Ok(());
        }
        let result = inner.sink.flush();
        inner.note(result)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written line behind (write_all is
        // the last step), so a poisoned lock is still safe to use.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// Writes one line under the lock the caller holds.
    fn write_line<T: Serialize>(&mut self, value: &T, scrub: bool, flush: bool) -> io::Result<()> {
        if self.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let Inner {
            sink,
            line,
            secrets,
            ..
        } = self;
        line.clear();
        serde_json::to_writer(&mut *line, value).map_err(io::Error::other)?;
        if scrub && !secrets.is_empty() {
            scrub_secrets(line, secrets);
        }
        line.push(b'\n');
        let mut result = sink.write_all(line);
        if flush && result.is_ok() {
            result = sink.flush();
        }
        self.note(result)
    }

    /// Remembers a closed stdout (the reader went away) so later writes fail fast and quietly.
    fn note(&mut self, result: io::Result<()>) -> io::Result<()> {
        if let Err(error) = &result
            && error.kind() == io::ErrorKind::BrokenPipe
        {
            self.closed = true;
        }
        result
    }
}

/// Replaces every secret, raw or JSON-escaped, in a serialised line.
fn scrub_secrets(line: &mut Vec<u8>, secrets: &[String]) {
    if let Some(text) = scrub(&String::from_utf8_lossy(line), secrets) {
        *line = text.into_bytes();
    }
}

/// `text` with every secret, raw or JSON-escaped, replaced by [`MASK`]; `None` when no
/// secret occurs in it.
pub fn scrub(text: &str, secrets: &[String]) -> Option<String> {
    let mut text = text.to_owned();
    let mut changed = false;
    for secret in secrets {
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        for needle in [secret.as_str(), escaped] {
            if !needle.is_empty() && text.contains(needle) {
                text = text.replace(needle, MASK);
                changed = true;
            }
        }
    }
    changed.then_some(text)
}

/// A cloneable in-memory sink, for tests that inspect what was written.
#[derive(Clone, Default)]
pub struct MemorySink(pub Arc<Mutex<Vec<u8>>>);

impl MemorySink {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{LogLevel, StateMessage};
    use serde_json::json;

    #[test]
    fn records_pass_the_api_bytes_through_unchanged() {
        let sink = MemorySink::default();
        let out = Output::new(Box::new(sink.clone()));
        let raw = RawValue::from_string(
            r#"{"n":1,"f":98.23999786376953,"big":12345678901234567890}"#.into(),
        )
        .unwrap();
        out.record("calls", &raw, 7).unwrap();
        out.flush().unwrap();
        assert_eq!(
            sink.contents(),
            "{\"type\":\"RECORD\",\"record\":{\"stream\":\"calls\",\"data\":{\"n\":1,\"f\":98.23999786376953,\"big\":12345678901234567890},\"emitted_at\":7}}\n"
        );
    }

    #[test]
    fn secrets_are_masked_in_logs_but_records_are_untouched() {
        let sink = MemorySink::default();
        let out = Output::new(Box::new(sink.clone()));
        out.add_secrets(["s3cr\"et-value".to_owned()]);
        out.emit(&Message::log(LogLevel::Error, "header was s3cr\"et-value"))
            .unwrap();
        out.flush().unwrap();
        let text = sink.contents();
        assert!(!text.contains("s3cr"), "{text}");
        assert!(text.contains(MASK), "{text}");
    }

    #[test]
    fn a_state_is_flushed_immediately() {
        struct Counting(Arc<Mutex<usize>>);
        impl Write for Counting {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                *self.0.lock().unwrap() += 1;
                Ok(())
            }
        }
        let flushes = Arc::new(Mutex::new(0));
        let out = Output::new(Box::new(Counting(flushes.clone())));
        out.emit(&Message::log(LogLevel::Info, "x")).unwrap();
        assert_eq!(*flushes.lock().unwrap(), 0);
        out.emit(&Message::State {
            state: StateMessage::stream("users", json!({}), 0),
        })
        .unwrap();
        assert_eq!(*flushes.lock().unwrap(), 1);
    }

    #[test]
    fn an_interrupt_marks_only_the_running_streams_incomplete_and_ends_the_output() {
        let sink = MemorySink::default();
        let out = Output::new(Box::new(sink.clone()));
        for (stream, status) in [
            ("users", StreamStatus::Started),
            ("users", StreamStatus::Complete),
            ("calls", StreamStatus::Started),
            ("calls", StreamStatus::Running),
        ] {
            out.emit(&Message::stream_status(stream, status)).unwrap();
        }
        out.interrupt().unwrap();
        let raw = RawValue::from_string("{}".into()).unwrap();
        assert!(
            out.record("calls", &raw, 1).is_err(),
            "nothing after the interrupt"
        );
        let lines: Vec<serde_json::Value> = sink
            .contents()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        let last = &lines[4]["trace"]["stream_status"];
        assert_eq!(
            (&last["stream_descriptor"]["name"], &last["status"]),
            (&json!("calls"), &json!("INCOMPLETE"))
        );
    }

    #[test]
    fn a_closed_reader_turns_into_broken_pipe_errors_not_panics() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
        }
        let out = Output::new(Box::new(Closed));
        let err = out
            .emit(&Message::log(LogLevel::Info, "x"))
            .and_then(|_| out.flush())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        let again = out.emit(&Message::log(LogLevel::Info, "y")).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::BrokenPipe);
    }
}
