//! `reelmesh`: the one binary every machine of the mesh runs.
//!
//! Parse the command line, run the command, report errors with context and a
//! non-zero exit code. Everything else lives in the modules.

mod cli;
mod demo;
mod export;
mod import;
mod store;

use std::process::ExitCode;

use clap::Parser;

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
