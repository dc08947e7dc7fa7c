//! Any JSON given as a state file, a config or a configured catalog is parsed or refused with
//! a message, never a panic.
#![no_main]

use clari_copilot::cli::parse_catalog;
use clari_copilot::config::{DestinationConfig, SourceConfig};
use clari_copilot::source::InputState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(state) = InputState::from_value(&value) {
        let _ = state.cursor("calls", "last_modified_time");
    }
    let _ = SourceConfig::from_value(&value).map_err(|e| e.user_message());
    let _ = DestinationConfig::from_value(&value).map_err(|e| e.user_message());
    let _ = parse_catalog(value).map_err(|e| e.user_message());
});
