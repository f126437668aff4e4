//! `resource`: ship user code to worker nodes, compatible with Toil's hot deployment.
//!
//! The binary stays thin: it parses arguments, calls one library function per subcommand and
//! formats the result. Errors print as one line naming the path and the cause, with exit code 1;
//! usage errors exit with 2.

// A binary: printing is its job (the workspace denies it to libraries).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod module_commands;
mod output;
mod plumbing;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("resource: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
