//! `reelmesh`: the one binary every machine of the mesh runs.
//!
//! Parse the command line, run the command, report errors with context and a
//! non-zero exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use reelmesh_node::cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
