//! `clari-copilot-sandbox`: serves the fake Clari Copilot API on 127.0.0.1 until Ctrl-C, for
//! trying the connector by hand, for a real CAT run against the committed acceptance configs,
//! and for `acceptance-tests/docker-images.sh`, whose containers reach it on the host.
//!
//! It prints the URL and the credentials on stdout (scripts read the URL from there), and its
//! own warnings on stderr.

use std::process::ExitCode;

use clap::Parser;
use clari_copilot_sandbox::SandboxOptions;
use tracing_subscriber::EnvFilter;

/// Serve a seeded fake of the Clari Copilot API on 127.0.0.1 until Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "clari-copilot-sandbox", version)]
struct Cli {
    #[command(flatten)]
    options: SandboxOptions,
}

// Two workers are plenty for a local fake serving one connector.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let options = Cli::parse().options;
    // Warnings only by default (a failing TCP option, a server that stopped on an error);
    // `LOG_LEVEL=debug` or any filter directive shows more, as for the connector.
    let filter = EnvFilter::try_from_env("LOG_LEVEL").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let sandbox = match options.start().await {
        Ok(sandbox) => sandbox,
        Err(e) => {
            return fail(&format!(
                "cannot start the sandbox on port {}: {e}",
                options.port
            ));
        }
    };
    let config = options.config();
    println!("Clari Copilot sandbox listening on {}", sandbox.base_url());
    println!(
        "  X-Api-Key: {}   X-Api-Password: {}",
        config.api_key, config.api_password
    );
    println!(
        "  {} calls (seed {}); press Ctrl-C to stop",
        options.calls, options.seed
    );
    match sandbox.run_until_ctrl_c().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("the sandbox stopped: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
