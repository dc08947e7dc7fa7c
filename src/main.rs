//! `source-clari-copilot` (also installed as `destination-clari-copilot`): parses the command
//! line and runs the library; the exit code says whether the command succeeded.

fn main() -> std::process::ExitCode {
    clari_copilot::cli::main()
}
