//! An API response body of any bytes: reading the page and every record's key never panics.
#![no_main]

use clari_copilot::source::page;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for keys in [
        &["calls"][..],
        &["scorecardTemplates", "scoreCardTemplates"][..],
    ] {
        if let Ok(page) = page::parse(body, keys, "/fuzz") {
            for record in page.records {
                let _ = page::field_text(record, "id");
                let _ = page::field_text(record, "status");
            }
        }
    }
    let _ = page::parse_object(body, "call", "/fuzz");
});
