//! The stdin reader: a dedicated thread that turns lines into [`Item`]s and hands them over a
//! bounded channel, so a slow API makes reading wait instead of filling memory.
//!
//! It is tolerant the way Airbyte's CDK is: a line that is not an Airbyte message is reported
//! (with its line number) and skipped, never fatal. Lines are read with a length cap: a longer
//! line is skipped as it streams past, without ever being held whole in memory.
//!
//! A line that is clearly a RECORD (its first bytes say `"type":"RECORD"`) but cannot be read,
//! or is too long, is not junk: the platform believes that record was sent. It becomes an
//! [`Item::BadRecord`], which the writer treats as a rejected record, so no state is echoed
//! past it unaccounted for.
//!
//! Memory is bounded by bytes, not only by a count of lines: every record and state handed
//! over holds a [`Lease`] on a shared [`Budget`] of [`MAX_HELD_BYTES`] until the writer is done
//! with it (a record until acknowledged, a state until echoed), and the reader waits for room.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

/// Longest line accepted (a record's JSON); longer lines are reported and skipped.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Input bytes that records and states waiting for the API may hold at once. With the line
/// being read, the input never holds more than twice this much memory.
pub const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

/// How much of an over-long line is kept to tell whether it is a RECORD, and of which stream.
const KEPT_PREFIX_BYTES: usize = 4096;

/// A shared bound on the input bytes held by items not yet done with.
#[derive(Clone)]
pub struct Budget(Arc<BudgetState>);

#[derive(Debug)]
struct BudgetState {
    limit: usize,
    held: Mutex<usize>,
    freed: Condvar,
}

/// Bytes of a [`Budget`] held by one item, given back when it is dropped.
#[derive(Debug)]
pub struct Lease {
    budget: Arc<BudgetState>,
    bytes: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget(Arc::new(BudgetState {
            limit,
            held: Mutex::new(0),
            freed: Condvar::new(),
        }))
    }

    /// Waits until `bytes` more fit under the limit, or nothing is held (so one line longer
    /// than the limit still passes alone), then holds them until the lease is dropped.
    fn lease(&self, bytes: usize) -> Lease {
        let state = &self.0;
        let mut held = state.held.lock().unwrap_or_else(PoisonError::into_inner);
        while *held > 0 && *held + bytes > state.limit {
            held = state
                .freed
                .wait(held)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *held += bytes;
        Lease {
            budget: Arc::clone(state),
            bytes,
        }
    }

    /// Bytes held right now.
    pub fn held(&self) -> usize {
        *self.0.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self
            .budget
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *held -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// What the writer needs from one input line.
#[derive(Debug)]
pub enum Item {
    /// A RECORD: its stream and `data` exactly as received.
    Record {
        line: u64,
        stream: String,
        namespace: Option<String>,
        data: Box<RawValue>,
        lease: Lease,
    },
    /// A STATE: its payload exactly as received, to be echoed.
    State {
        line: u64,
        state: Box<RawValue>,
        lease: Lease,
    },
    /// A line that is clearly a RECORD but cannot be read; its stream when the line names one.
    BadRecord {
        line: u64,
        stream: Option<String>,
        reason: String,
    },
    /// A line that is not a usable message; `reason` says why, for a LOG WARN.
    Skipped { line: u64, reason: String },
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    record: Option<RecordPayload>,
    #[serde(default)]
    state: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct RecordPayload {
    stream: String,
    #[serde(default)]
    namespace: Option<String>,
    data: Box<RawValue>,
}

/// Starts the reader thread. The receiver yields every item in input order and ends at EOF
/// (or when the input fails, after a final [`Item::Skipped`] saying so).
pub fn spawn(
    input: Box<dyn Read + Send>,
    capacity: usize,
) -> std::io::Result<mpsc::Receiver<Item>> {
    let (sender, receiver) = mpsc::channel(capacity);
    let budget = Budget::new(MAX_HELD_BYTES);
    std::thread::Builder::new()
        .name("stdin-reader".into())
        .spawn(move || read_all(input, MAX_LINE_BYTES, &budget, &sender))?;
    Ok(receiver)
}

/// Reads every line of `input`, sending items until EOF or until the receiver is gone; each
/// record and state holds its line's length of `budget` until dropped.
pub fn read_all(
    input: Box<dyn Read + Send>,
    max_line: usize,
    budget: &Budget,
    sender: &mpsc::Sender<Item>,
) {
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut buffer = Vec::new();
    let mut line = 0u64;
    loop {
        line += 1;
        let item = match read_line(&mut reader, &mut buffer, max_line) {
            Ok(Line::Eof) => return,
            Ok(Line::TooLong(bytes)) => {
                let reason = format!(
                    "the line is {bytes} bytes long, over the {max_line}-byte limit of a message"
                );
                Some(unreadable(line, &buffer, reason))
            }
            Ok(Line::Complete) => parse(line, &buffer, true, budget),
            Ok(Line::Unterminated) => parse(line, &buffer, false, budget),
            Err(error) => {
                let reason = format!("reading stdin failed, so the input ends here: {error}");
                let _ = sender.blocking_send(Item::Skipped { line, reason });
                return;
            }
        };
        if let Some(item) = item
            && sender.blocking_send(item).is_err()
        {
            return;
        }
    }
}

/// How a line ended.
enum Line {
    Eof,
    /// The line is in the buffer, newline removed.
    Complete,
    /// The input ended without a newline after this line.
    Unterminated,
    /// The line was longer than the cap and was skipped; its length in bytes. The buffer holds
    /// its first bytes.
    TooLong(usize),
}

/// Reads one line into `buffer` without letting it grow past `max` bytes: of a longer line
/// only the first [`KEPT_PREFIX_BYTES`] are kept.
fn read_line(reader: &mut impl BufRead, buffer: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
    buffer.clear();
    let mut length = 0usize;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(match length {
                0 => Line::Eof,
                n if n > max => Line::TooLong(n),
                _ => Line::Unterminated,
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], end + 1),
            None => (available, available.len()),
        };
        length += chunk.len();
        if length <= max {
            buffer.extend_from_slice(chunk);
        } else {
            let room = KEPT_PREFIX_BYTES.saturating_sub(buffer.len());
            buffer.extend_from_slice(&chunk[..room.min(chunk.len())]);
            buffer.truncate(KEPT_PREFIX_BYTES);
        }
        let newline = done > chunk.len();
        reader.consume(done);
        if newline {
            return Ok(if length > max {
                Line::TooLong(length)
            } else {
                Line::Complete
            });
        }
    }
}

/// A line that cannot be read: a bad record when its first bytes say it is a RECORD,
/// otherwise a skipped line.
fn unreadable(line: u64, bytes: &[u8], reason: String) -> Item {
    if names_record_type(bytes) {
        Item::BadRecord {
            line,
            stream: stream_name(bytes),
            reason: format!("the RECORD cannot be read: {reason}"),
        }
    } else {
        Item::Skipped { line, reason }
    }
}

/// Whether the bytes hold `"type"`, a colon and `"RECORD"` (whitespace allowed between).
fn names_record_type(bytes: &[u8]) -> bool {
    value_after(bytes, b"\"type\"").is_some_and(|value| value.starts_with(b"\"RECORD\""))
}

/// The record's stream name, when the bytes hold `"stream"`, a colon and a plain string.
fn stream_name(bytes: &[u8]) -> Option<String> {
    let value = value_after(bytes, b"\"stream\"")?.strip_prefix(b"\"")?;
    let end = value.iter().position(|&b| b == b'"' || b == b'\\')?;
    String::from_utf8(value[..end].to_vec()).ok()
}

/// What follows the first occurrence of `key` that a colon follows, whitespace trimmed.
fn value_after<'a>(bytes: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let trim = |b: &'a [u8]| -> &'a [u8] {
        let start = b
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .unwrap_or(b.len());
        &b[start..]
    };
    bytes
        .windows(key.len())
        .enumerate()
        .filter(|(_, window)| *window == key)
        .find_map(|(at, _)| trim(&bytes[at + key.len()..]).strip_prefix(b":"))
        .map(trim)
}

/// Turns one line into an item; `None` for blank lines and messages the writer ignores.
fn parse(line: u64, bytes: &[u8], terminated: bool, budget: &Budget) -> Option<Item> {
    let skipped = |reason: String| Some(unreadable(line, bytes, reason));
    let Ok(text) = std::str::from_utf8(bytes) else {
        return skipped("the line is not valid UTF-8".into());
    };
    let text = text.trim_end_matches('\r');
    if text.trim().is_empty() {
        return None;
    }
    let envelope: Envelope = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(_) if !terminated && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() => {
            return skipped(format!(
                "the last line is truncated (no newline at the end and not complete JSON, {} bytes)",
                text.len()
            ));
        }
        Err(error) if error.is_data() => {
            return skipped(format!(
                "the line is JSON but not an Airbyte message: {error}"
            ));
        }
        Err(error) => return skipped(format!("the line is not JSON: {error}")),
    };
    match (envelope.kind.as_str(), envelope.record, envelope.state) {
        ("RECORD", Some(record), _) => Some(Item::Record {
            line,
            stream: record.stream,
            namespace: record.namespace,
            data: record.data,
            lease: budget.lease(bytes.len()),
        }),
        ("STATE", _, Some(state)) => Some(Item::State {
            line,
            state,
            lease: budget.lease(bytes.len()),
        }),
        ("RECORD" | "STATE", _, _) => {
            skipped(format!("the {} message has no payload", envelope.kind))
        }
        (other, _, _) => {
            tracing::debug!("line {line}: ignoring a {other} message");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &'static [u8], max_line: usize) -> Vec<Item> {
        let (sender, mut receiver) = mpsc::channel(1024);
        read_all(Box::new(input), max_line, &Budget::new(1 << 20), &sender);
        drop(sender);
        let mut items = Vec::new();
        while let Ok(item) = receiver.try_recv() {
            items.push(item);
        }
        items
    }

    fn describe(item: &Item) -> String {
        match item {
            Item::Record {
                line, stream, data, ..
            } => format!("{line} record {stream} {}", data.get()),
            Item::State { line, state, .. } => format!("{line} state {}", state.get()),
            Item::BadRecord {
                line,
                stream,
                reason,
            } => format!("{line} bad record of {stream:?}: {reason}"),
            Item::Skipped { line, reason } => format!("{line} skipped {reason}"),
        }
    }

    #[test]
    fn records_and_states_keep_their_bytes_and_line_numbers() {
        let items = read(
            b"{\"type\":\"RECORD\",\"record\":{\"stream\":\"deals\",\"data\":{\"amount\":1.50,\"x\":12345678901234567890},\"emitted_at\":1}}\n\n{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"k\":1.0}}\n",
            1024,
        );
        let seen: Vec<_> = items.iter().map(describe).collect();
        assert_eq!(
            seen,
            [
                r#"1 record deals {"amount":1.50,"x":12345678901234567890}"#,
                r#"3 state {"type":"STREAM","k":1.0}"#
            ]
        );
    }

    #[test]
    fn junk_non_messages_and_invalid_utf8_are_reported_with_their_line_and_skipped() {
        let items = read(
            b"not json\n{\"hello\":1}\n\xff\xfe\n{\"type\":\"LOG\",\"log\":{\"level\":\"INFO\",\"message\":\"m\"}}\n{\"type\":\"STATE\",\"state\":{}}\n",
            1024,
        );
        let seen: Vec<_> = items.iter().map(describe).collect();
        assert!(
            seen[0].starts_with("1 skipped the line is not JSON"),
            "{seen:?}"
        );
        assert!(
            seen[1].starts_with("2 skipped the line is JSON but not an Airbyte message"),
            "{seen:?}"
        );
        assert_eq!(seen[2], "3 skipped the line is not valid UTF-8");
        assert_eq!(seen[3], "5 state {}", "the LOG line is ignored silently");
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn a_truncated_last_line_is_reported_as_truncated() {
        let items = read(
            b"{\"type\":\"STATE\",\"state\":{}}\n{\"type\":\"LOG\",\"log\":{\"level\":\"IN",
            1024,
        );
        assert_eq!(items.len(), 2);
        assert!(
            describe(&items[1]).starts_with("2 skipped the last line is truncated"),
            "{}",
            describe(&items[1])
        );
    }

    #[test]
    fn a_record_line_that_cannot_be_read_or_is_too_long_is_a_bad_record_not_junk() {
        let long = format!(
            "{{\"type\": \"RECORD\", \"record\": {{\"stream\": \"deals\", \"data\": {{\"x\": \"{}\"}}}}}}\n",
            "y".repeat(5000)
        );
        let input = format!(
            "{{\"type\":\"RECORD\",\"record\":{{\"stream\":\"accounts\",\"data\":{{\"crm_id\":\"a\n\
             {{\"type\":\"RECORD\",\"record\":{{\"stream\":\"deals\"}}}}\n{long}"
        );
        let items = read(Box::leak(input.into_bytes().into_boxed_slice()), 1024);
        let seen: Vec<_> = items.iter().map(describe).collect();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(
            seen[0].starts_with(r#"1 bad record of Some("accounts"): the RECORD cannot be read: the line is not JSON"#),
            "{seen:?}"
        );
        assert!(
            seen[1].starts_with(r#"2 bad record of Some("deals")"#),
            "a record without data: {seen:?}"
        );
        assert!(
            seen[2].starts_with(
                r#"3 bad record of Some("deals"): the RECORD cannot be read: the line is 5"#
            ),
            "an over-long record keeps enough to be recognised: {seen:?}"
        );
    }

    #[test]
    fn records_and_states_hold_their_bytes_until_dropped_and_the_reader_waits_for_room() {
        let budget = Budget::new(60);
        let (sender, mut receiver) = mpsc::channel(1024);
        let input: &'static [u8] = b"{\"type\":\"STATE\",\"state\":{\"padding\":\"xxxxxx\"}}\n{\"type\":\"STATE\",\"state\":{}}\n";
        let reader_budget = budget.clone();
        let reader =
            std::thread::spawn(move || read_all(Box::new(input), 1024, &reader_budget, &sender));
        let first = receiver.blocking_recv().unwrap();
        assert_eq!(budget.held(), 45);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !reader.is_finished(),
            "the second line does not fit while the first is held, though the channel has room"
        );
        drop(first);
        let second = receiver.blocking_recv().unwrap();
        assert_eq!(describe(&second), "2 state {}");
        assert_eq!(budget.held(), 27);
        drop(second);
        assert!(receiver.blocking_recv().is_none());
        reader.join().unwrap();
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_complete_last_line_without_newline_is_still_read() {
        let items = read(b"{\"type\":\"STATE\",\"state\":{\"a\":1}}", 1024);
        assert_eq!(describe(&items[0]), r#"1 state {"a":1}"#);
    }

    #[test]
    fn an_overlong_line_is_skipped_without_losing_the_next_one() {
        let items = read(
            b"{\"type\":\"STATE\",\"state\":{\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}\n{\"type\":\"STATE\",\"state\":{}}\n",
            40,
        );
        let seen: Vec<_> = items.iter().map(describe).collect();
        assert!(
            seen[0].starts_with("1 skipped the line is 86 bytes long"),
            "{seen:?}"
        );
        assert_eq!(seen[1], "2 state {}");
    }

    #[test]
    fn backpressure_blocks_the_reader_until_items_are_taken() {
        let (sender, mut receiver) = mpsc::channel(1);
        let input: &'static [u8] = b"{\"type\":\"STATE\",\"state\":{}}\n{\"type\":\"STATE\",\"state\":{}}\n{\"type\":\"STATE\",\"state\":{}}\n";
        let reader = std::thread::spawn(move || {
            read_all(Box::new(input), 1024, &Budget::new(1 << 20), &sender)
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !reader.is_finished(),
            "the reader must wait while the channel is full"
        );
        let mut count = 0;
        while receiver.blocking_recv().is_some() {
            count += 1;
        }
        assert_eq!(count, 3);
        reader.join().unwrap();
    }
}
