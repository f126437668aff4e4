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
            eprintln!("resource: error: {}", error_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its chain of causes on one line, each cause once. Our own errors keep their
/// cause out of their message, but some from other crates (object_store's, for one) also print
/// their source in their message: a cause whose text the line already holds is not repeated.
fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
