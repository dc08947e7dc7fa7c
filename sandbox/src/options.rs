//! The command-line options of a sandbox: the `clari-copilot-sandbox` binary's flags, which the
//! connector's demo (`examples/demo.rs`) takes too. Declared once, so both accept the same flags.

use std::time::Duration;

use clap::Args;

use crate::{Sandbox, SandboxConfig};

/// Which tenant a sandbox serves, where, and with which faults switched on from the start.
#[derive(Debug, Clone, Args)]
pub struct SandboxOptions {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// Number of calls in the seeded tenant.
    #[arg(long, default_value_t = 2_000)]
    pub calls: usize,
    /// Seed of the generated data: the same seed gives the same tenant.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Enforce this many requests per second, answering 429 beyond it (like Clari's limit).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Answer every successful request with a body that is not JSON (a cut HTML error page).
    #[arg(long)]
    pub malformed_body: bool,
    /// Answer every successful request with JSON of the wrong shape (no records), which
    /// `check` cannot blame on the configuration: the acceptance tests' `exception` case.
    #[arg(long)]
    pub unexpected_json: bool,
}

impl SandboxOptions {
    /// The tenant these options describe (the default one with `calls`, `seed` and `port`).
    pub fn config(&self) -> SandboxConfig {
        SandboxConfig {
            seed: self.seed,
            port: self.port,
            ..SandboxConfig::with_calls(self.calls)
        }
    }

    /// Starts the sandbox on the current tokio runtime, its faults set as the options say.
    pub async fn start(&self) -> std::io::Result<Sandbox> {
        let sandbox = Sandbox::start(self.config()).await?;
        sandbox.faults().set_rate_limit(self.rate_limit);
        sandbox
            .faults()
            .set_latency(Duration::from_millis(self.latency_ms));
        sandbox.faults().set_malformed_body(self.malformed_body);
        sandbox.faults().set_unexpected_json(self.unexpected_json);
        Ok(sandbox)
    }
}
