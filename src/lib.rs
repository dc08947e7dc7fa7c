//! Clari Copilot connector for Airbyte: one library behind one binary that runs as the source
//! (`spec`, `check`, `discover`, `read`) or the destination (`spec`, `check`, `write`).
//!
//! Layers, each knowing only the ones below it:
//! - [`protocol`]: Airbyte message types and the single stdout writer (knows no HTTP);
//! - [`config`] and [`error`]: what users configure, and how failures are reported;
//! - [`catalog`]: the streams' JSON schemas, embedded data files;
//! - [`client`]: authenticated, rate-limited, retrying HTTP (knows no streams);
//! - [`source`] and [`destination`]: the two roles, sharing only the layers above;
//! - [`cli`]: the command line, the only place that wires roles and the sandbox together.
//!
//! The fake Clari Copilot API the tests, benchmarks and demo run against is the workspace's
//! other crate, `clari_copilot_sandbox` (`sandbox/`): it cannot import any of the above.

pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod destination;
pub mod error;
pub mod protocol;
pub mod source;
