//! The command line: which role the binary plays, the protocol commands, and the command for
//! people, `proxy`. (The fake API and the demo are not in the binary: they are the workspace's
//! `clari-copilot-sandbox` binary and `examples/demo.rs`.)
//!
//! Protocol commands write nothing but Airbyte messages to stdout, through one [`Output`].
//! Every failure becomes one TRACE ERROR and a non-zero exit, except a `check` whose config or
//! credentials are wrong: that is a FAILED connection status and exit 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::{Parser, Subcommand, ValueEnum};
use schemars::JsonSchema;
use serde_json::Value;

use crate::client::RetryPolicy;
use crate::config::{self, DestinationConfig, SourceConfig};
use crate::destination;
use crate::error::{Error, Result};
use crate::protocol::log_layer::{self, LogSink};
use crate::protocol::{ConfiguredCatalog, ErrorTrace, FailureType, Message, Output, Status};
use crate::source;

mod proxy;
mod signal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Source,
    Destination,
}

/// Clari Copilot connector for Airbyte. Runs as the source when invoked as
/// `source-clari-copilot` (the default) and as the destination when invoked as
/// `destination-clari-copilot`; `--role` overrides the name.
#[derive(Debug, Parser)]
#[command(name = "source-clari-copilot", version)]
pub struct Args {
    /// Role to play, overriding the one implied by the program name.
    #[arg(long, global = true, value_enum)]
    pub role: Option<Role>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the connector specification.
    Spec,
    /// Check the config's credentials with one read-only request.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the catalog of streams (source) or of writable objects (destination).
    Discover {
        #[arg(long)]
        config: PathBuf,
    },
    /// Read the configured streams (source).
    Read {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        catalog: PathBuf,
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Write Airbyte messages from stdin into Clari Copilot (destination).
    Write {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        catalog: PathBuf,
    },
    /// For people: send one authenticated request to the API (same auth, rate limit and retries
    /// as a sync); the body goes to stdout, the status to stderr.
    Proxy(proxy::ProxyArgs),
}

/// The role implied by the program's file name.
pub fn role_from_program(program: &Path) -> Role {
    let name = program
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.starts_with("destination") {
        Role::Destination
    } else {
        Role::Source
    }
}

static PANIC_OUTPUT: OnceLock<Arc<Output>> = OnceLock::new();

/// Parses the process's arguments and runs the command.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let program = argv.first().map(PathBuf::from).unwrap_or_default();
    let output = Output::stdout();
    let args = match Args::try_parse_from(&argv) {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            // --help and --version are for people.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let message = error.render().to_string();
            let trace = ErrorTrace {
                message: format!(
                    "Invalid command line: {}",
                    message.lines().next().unwrap_or_default()
                ),
                internal_message: Some(message),
                failure_type: FailureType::ConfigError,
                stream_descriptor: None,
            };
            let _ = output.emit(&Message::error(trace));
            return ExitCode::from(2);
        }
    };
    let role = args.role.unwrap_or_else(|| role_from_program(&program));
    match args.command {
        Command::Proxy(options) => run_human(proxy::proxy(options)),
        command => run(role, command, output),
    }
}

/// The async runtime of every command: two workers are plenty for a rate-limited client.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Runs a command for people: logs go to stderr as plain lines.
fn run_human(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    log_layer::install(LogSink::Stderr);
    match runtime() {
        Ok(runtime) => runtime.block_on(command),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one protocol command with `output` as stdout.
pub fn run(role: Role, command: Command, output: Arc<Output>) -> ExitCode {
    install_panic_hook(&output);
    log_layer::install(LogSink::Protocol(output.clone()));
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return report(&output, Error::Io(e)),
    };
    let code = runtime.block_on(async {
        signal::spawn_sigterm_handler(output.clone());
        match execute(role, command, &output).await {
            Ok(code) => code,
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(error) => report(&output, error),
        }
    });
    // A command cut short by SIGTERM (its writes failing once the handler closed the output)
    // must not exit as if it had finished: end the way the handler does.
    if signal::terminating() {
        signal::stop(&output);
    }
    let _ = output.flush();
    runtime.shutdown_background();
    code
}

async fn execute(role: Role, command: Command, output: &Arc<Output>) -> Result<ExitCode> {
    match (role, command) {
        (Role::Source, Command::Spec) => {
            output.emit(&Message::Spec {
                spec: source::spec(),
            })?;
        }
        (Role::Source, Command::Check { config }) => {
            let outcome = match load_source_config(&config, output) {
                Ok(config) => source::check(&config).await,
                Err(error) => Err(error),
            };
            return connection_status(outcome, output);
        }
        (Role::Source, Command::Discover { config }) => {
            SourceConfig::from_value(&load_config::<SourceConfig>(&config, output)?)?;
            output.emit(&Message::Catalog {
                catalog: source::discover(),
            })?;
        }
        (
            Role::Source,
            Command::Read {
                config,
                catalog,
                state,
            },
        ) => {
            let config = load_source_config(&config, output)?;
            let catalog = read_catalog(&catalog)?;
            let state = match state {
                Some(path) => read_state(&path)?,
                None => source::InputState::default(),
            };
            let retry = RetryPolicy::for_sync(&config.api);
            let summary = source::read(&config, &catalog, &state, output, retry).await?;
            if !summary.failed_streams.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        (Role::Source, Command::Write { .. }) => {
            return Err(Error::input(
                "command line",
                "`write` is a destination command: run the binary as destination-clari-copilot or with --role destination",
            ));
        }
        (_, Command::Proxy(_)) => {
            unreachable!("the command for people is dispatched by main")
        }
        (Role::Destination, Command::Spec) => {
            output.emit(&Message::Spec {
                spec: destination::spec(),
            })?;
        }
        (Role::Destination, Command::Check { config }) => {
            let outcome = match load_config::<DestinationConfig>(&config, output)
                .and_then(|raw| DestinationConfig::from_value(&raw))
            {
                Ok(config) => destination::check(&config).await,
                Err(error) => Err(error),
            };
            return connection_status(outcome, output);
        }
        (Role::Destination, Command::Discover { config }) => {
            DestinationConfig::from_value(&load_config::<DestinationConfig>(&config, output)?)?;
            let destination_catalog = destination::destination_catalog();
            output.emit(&Message::DestinationCatalog {
                destination_catalog,
            })?;
        }
        (Role::Destination, Command::Write { config, catalog }) => {
            let config =
                DestinationConfig::from_value(&load_config::<DestinationConfig>(&config, output)?)?;
            let catalog = read_catalog(&catalog)?;
            let input = Box::new(std::io::stdin());
            destination::write(&config, &catalog, input, output.clone()).await?;
        }
        (Role::Destination, Command::Read { .. }) => {
            return Err(Error::input(
                "command line",
                "`read` is a source command: run the binary as source-clari-copilot or with --role source",
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a config file and registers its secrets with the output before anything can log them.
fn load_config<T: JsonSchema>(path: &Path, output: &Output) -> Result<Value> {
    let raw = config::read_json_file(path, "configuration")?;
    output.add_secrets(config::secret_values::<T>(&raw));
    Ok(raw)
}

/// The source config of the commands that read calls, `check` and `read`: valid, able to read
/// a call now, and with its warnings logged (the log layer is installed by now, so they reach
/// the platform as LOG messages).
fn load_source_config(path: &Path, output: &Output) -> Result<SourceConfig> {
    let config = SourceConfig::from_value(&load_config::<SourceConfig>(path, output)?)?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    config.validate_for_reading(jiff::Timestamp::now())?;
    Ok(config)
}

/// The configured catalog file, with a message that names what is wrong.
fn read_catalog(path: &Path) -> Result<ConfiguredCatalog> {
    parse_catalog(config::read_json_file(path, "configured catalog")?)
}

/// A configured catalog (either role's), with a message that names what is wrong.
pub fn parse_catalog(raw: Value) -> Result<ConfiguredCatalog> {
    serde_json::from_value(raw).map_err(|e| Error::input("configured catalog", e))
}

/// An empty state file means no state, like a missing one.
fn read_state(path: &Path) -> Result<source::InputState> {
    let text = config::read_text_file(path, "state")?;
    if text.trim().is_empty() {
        return Ok(source::InputState::default());
    }
    source::InputState::from_value(&config::parse_json_text(path, "state", &text)?)
}

/// `check`'s answer: FAILED (exit 0) or TRACE ERROR, as [`Error::fails_check`] decides.
fn connection_status(outcome: Result<()>, output: &Output) -> Result<ExitCode> {
    let failed = match outcome {
        Ok(()) => {
            output.emit(&Message::connection_status(Status::Succeeded, None))?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) if error.fails_check() => error,
        Err(other) => return Err(other),
    };
    tracing::info!("check failed: {failed}");
    output.emit(&Message::connection_status(
        Status::Failed,
        Some(failed.user_message()),
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn report(output: &Output, error: Error) -> ExitCode {
    let _ = output.emit(&Message::error(error.trace(None)));
    ExitCode::FAILURE
}

/// A panic becomes a TRACE ERROR on stdout, with no stack dump on stderr.
fn install_panic_hook(output: &Arc<Output>) {
    if PANIC_OUTPUT.set(output.clone()).is_err() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let detail = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Some(output) = PANIC_OUTPUT.get() {
            let trace = ErrorTrace {
                message:
                    "The connector hit an internal error. Please report it with the sync's logs."
                        .to_owned(),
                internal_message: Some(format!("panic{location}: {detail}")),
                failure_type: FailureType::SystemError,
                stream_descriptor: None,
            };
            let _ = output.emit(&Message::error(trace));
            let _ = output.flush();
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_name_selects_the_role() {
        assert_eq!(
            role_from_program(Path::new("/usr/local/bin/destination-clari-copilot")),
            Role::Destination
        );
        assert_eq!(
            role_from_program(Path::new("source-clari-copilot")),
            Role::Source
        );
        assert_eq!(role_from_program(Path::new("anything-else")), Role::Source);
    }
}
