//! Running the real binary as Airbyte does: files for config, catalog and state, stdout parsed
//! as protocol lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::{KEY, PASSWORD, catalog, parse_lines, stream_statuses};

pub const BIN: &str = env!("CARGO_BIN_EXE_source-clari-copilot");

/// A scratch folder holding the JSON files of one run.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Self {
        Files {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    pub fn json(&self, name: &str, value: &Value) -> PathBuf {
        self.text(name, &value.to_string())
    }

    /// `config.json`: a source config for `base_url` with `overrides` merged in.
    pub fn config(&self, base_url: &str, overrides: Value) -> PathBuf {
        self.json("config.json", &super::config_json(base_url, overrides))
    }

    /// `catalog.json`: the configured catalog of `streams` (name, sync mode), as `discover`
    /// describes them.
    pub fn catalog(&self, streams: &[(&str, &str)]) -> PathBuf {
        let catalog = serde_json::to_value(catalog(streams)).expect("a catalog is JSON");
        self.json("catalog.json", &catalog)
    }

    pub fn text(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }
}

pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("CLARI_COPILOT_RETRY_MIN_DELAY_MS", "2")
        .stdin(Stdio::null());
    command
}

pub struct Ran {
    pub messages: Vec<Value>,
    pub code: Option<i32>,
    pub stderr: String,
}

impl Ran {
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.messages.iter().filter(|m| m["type"] == kind).collect()
    }

    pub fn errors(&self) -> Vec<&Value> {
        self.of_type("TRACE")
            .into_iter()
            .filter(|m| m["trace"]["type"] == "ERROR")
            .map(|m| &m["trace"]["error"])
            .collect()
    }

    /// Asserts the run failed with exactly one TRACE ERROR, a `config_error` whose message
    /// names every needle; `case` says which input in a failure.
    pub fn assert_one_config_error(&self, case: &dyn std::fmt::Display, needles: &[&str]) {
        assert_ne!(self.code, Some(0), "{case}");
        let errors = self.errors();
        assert_eq!(errors.len(), 1, "{case}: {errors:?}");
        assert_eq!(errors[0]["failure_type"], "config_error", "{case}");
        let message = errors[0]["message"].as_str().unwrap_or_default();
        for needle in needles {
            assert!(message.contains(needle), "{case}: {message}");
        }
    }

    pub fn statuses(&self, stream: &str) -> Vec<String> {
        stream_statuses(&self.messages, stream)
    }

    /// The messages of the LOG lines at `level`.
    pub fn logs(&self, level: &str) -> Vec<&str> {
        self.of_type("LOG")
            .into_iter()
            .filter(|m| m["log"]["level"] == level)
            .filter_map(|m| m["log"]["message"].as_str())
            .collect()
    }
}

/// Runs the binary to completion off the async runtime, checking every output line is
/// protocol JSON and that no credential leaked to stdout or stderr.
pub async fn run(args: Vec<String>) -> Ran {
    run_with_env(args, &[]).await
}

/// [`run`] with extra environment variables.
pub async fn run_with_env(args: Vec<String>, env: &[(&str, &str)]) -> Ran {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        finish(command(&args).envs(env).output().expect("the binary runs"))
    })
    .await
    .expect("the runner thread")
}

pub fn finish(output: Output) -> Ran {
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains(KEY) && !stderr.contains(PASSWORD),
        "a credential leaked to stderr"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "a panic reached stderr: {stderr}"
    );
    Ran {
        messages: parse_lines(&stdout),
        code: output.status.code(),
        stderr,
    }
}

pub fn arg(path: &Path) -> String {
    path.display().to_string()
}
