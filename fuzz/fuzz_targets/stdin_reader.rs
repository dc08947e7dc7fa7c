//! The destination's stdin of any bytes (invalid UTF-8, truncated lines, overlong lines):
//! every line becomes an item, in order, and nothing panics.
#![no_main]

use clari_copilot::destination::reader::{Budget, Item, read_all};
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;

fuzz_target!(|data: &[u8]| {
    // Room for every line and every byte, so the reader never waits on a full channel or
    // for held bytes to be freed.
    let (sender, mut receiver) = mpsc::channel(data.len() + 2);
    let budget = Budget::new(usize::MAX);
    read_all(
        Box::new(std::io::Cursor::new(data.to_vec())),
        256,
        &budget,
        &sender,
    );
    drop(sender);
    let mut last = 0;
    while let Ok(item) = receiver.try_recv() {
        let line = match item {
            Item::Record { line, .. }
            | Item::State { line, .. }
            | Item::BadRecord { line, .. }
            | Item::Skipped { line, .. } => line,
        };
        assert!(line > last, "items come in input order");
        last = line;
    }
});
