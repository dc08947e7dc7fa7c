//! The destination's stdin of any bytes (invalid UTF-8, truncated lines, overlong lines):
//! every line becomes an item, in order, and nothing panics.
#![no_main]

use clari_copilot::destination::reader::{Item, read_all};
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;

fuzz_target!(|data: &[u8]| {
    // Room for every line, so the reader never waits on a full channel.
    let (sender, mut receiver) = mpsc::channel(data.len() + 2);
    read_all(Box::new(std::io::Cursor::new(data.to_vec())), 256, &sender);
    drop(sender);
    let mut last = 0;
    while let Ok(item) = receiver.try_recv() {
        let line = match item {
            Item::Record { line, .. } | Item::State { line, .. } | Item::Skipped { line, .. } => line,
        };
        assert!(line > last, "items come in input order");
        last = line;
    }
});
