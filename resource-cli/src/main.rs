//! `resource`: ship user code to worker nodes, compatible with Toil's hot deployment.
//!
//! The binary stays thin: it parses arguments, calls one library function per subcommand and
//! formats the result. Errors print as one line, `resource: error: <what>: <cause>: <OS reason>`,
//! with exit code 1; usage errors exit with 2. A closed standard output (`| head -1`) ends any
//! command quietly with exit code 0.

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
        Err(error)
            if error
                .chain()
                .any(|cause| cause.is::<output::StdoutClosed>()) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "resource: error: {}",
                resource_core::report::error_chain(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
