//! `reelmesh`: the one binary every machine of the mesh runs.
//!
//! Parse the command line, run the command, report errors with context and a
//! non-zero exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use reelmesh_node::cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Logs go to stderr; a running node says what it does, other commands stay
    // quiet unless something is wrong. RUST_LOG overrides.
    let default_filter = if matches!(args.command, Some(cli::Command::Node(_))) {
        "reelmesh_node=info,warn"
    } else {
        "warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        // `reelmesh shots | head`: the reader has what it wanted.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
