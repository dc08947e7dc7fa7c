//! The stdin reader: a dedicated thread that turns lines into [`Item`]s and hands them over a
//! bounded channel, so a slow API makes reading wait instead of filling memory.
//!
//! It is tolerant the way Airbyte's CDK is: a line that is not an Airbyte message is reported
//! (with its line number) and skipped, never fatal. Lines are read with a length cap: a longer
//! line is skipped as it streams past, without ever being held whole in memory.

use std::io::{BufRead, BufReader, Read};

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

/// Longest line accepted (a record's JSON); longer lines are reported and skipped.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// What the writer needs from one input line.
#[derive(Debug)]
pub enum Item {
    /// A RECORD: its stream and `data` exactly as received.
    Record {
        line: u64,
        stream: String,
        namespace: Option<String>,
        data: Box<RawValue>,
    },
    /// A STATE: its payload exactly as received, to be echoed.
    State { line: u64, state: Box<RawValue> },
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
    std::thread::Builder::new()
        .name("stdin-reader".into())
        .spawn(move || read_all(input, MAX_LINE_BYTES, &sender))?;
    Ok(receiver)
}

/// Reads every line of `input`, sending items until EOF or until the receiver is gone.
pub fn read_all(input: Box<dyn Read + Send>, max_line: usize, sender: &mpsc::Sender<Item>) {
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut buffer = Vec::new();
    let mut line = 0u64;
    loop {
        line += 1;
        let item = match read_line(&mut reader, &mut buffer, max_line) {
            Ok(Line::Eof) => return,
            Ok(Line::TooLong(bytes)) => Some(Item::Skipped {
                line,
                reason: format!(
                    "the line is {bytes} bytes long, over the {max_line}-byte limit of a message"
                ),
            }),
            Ok(Line::Complete) => parse(line, &buffer, true),
            Ok(Line::Unterminated) => parse(line, &buffer, false),
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
    /// The line was longer than the cap and was skipped; its length in bytes.
    TooLong(usize),
}

/// Reads one line into `buffer` without letting it grow past `max` bytes.
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
            buffer.clear();
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

/// Turns one line into an item; `None` for blank lines and messages the writer ignores.
fn parse(line: u64, bytes: &[u8], terminated: bool) -> Option<Item> {
    let skipped = |reason: String| Some(Item::Skipped { line, reason });
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
        }),
        ("STATE", _, Some(state)) => Some(Item::State { line, state }),
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
        read_all(Box::new(input), max_line, &sender);
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
            Item::State { line, state } => format!("{line} state {}", state.get()),
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
            b"{\"type\":\"STATE\",\"state\":{}}\n{\"type\":\"RECORD\",\"record\":{\"stream\":\"de",
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
        let reader = std::thread::spawn(move || read_all(Box::new(input), 1024, &sender));
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
