//! Project automation for `resource`, run as `cargo xtask <command>` (the rust-analyzer xtask
//! pattern; the alias lives in `.cargo/config.toml`).
//!
//! - `cargo xtask demo`: the main job on the local-disk store: ship a package, run it on a
//!   "worker" that has only the exported lines.
//! - `cargo xtask test`: everything CI runs: formatting, clippy, docs, then the whole test suite
//!   with the project-local Python tools and real storage servers. `cargo xtask test -- ARGS`
//!   runs `cargo test ARGS` alone, with the same tools and servers.
//! - `cargo xtask proptest [--cases N]`: the property tests (every name starts with `prop_`)
//!   in release mode with many more cases.
//! - `cargo xtask bench [--quick] [--only NAME]`: `resource` against Toil, `md5sum`, `tar` and
//!   `zip` on large seeded inputs in tmpfs.
//! - `cargo xtask fuzz [--minutes N] [--target NAME] [--merge]`: the cargo-fuzz targets of
//!   `fuzz/`, one at a time, printing executions, coverage and crashes per target.

// A binary: printing is its job (the workspace denies it to libraries).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod demo;
mod dist;
mod fuzz;
mod project;
mod proptest;
mod pybindings;
mod run;
mod servers;
mod test;
mod tools;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::project::Project;

/// The command line of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Project automation for `resource`.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One `cargo xtask` subcommand.
#[derive(Debug, Subcommand)]
enum Command {
    /// Ship a small package through a local-disk job store and run it on a "worker".
    Demo,
    /// Build the `resource` binary as it is shipped (static-pie on Linux) into
    /// `target/dist/resource`.
    Dist,
    /// Run everything CI runs: fmt, clippy, doc, and all tests with tools and servers.
    Test {
        /// Instead of everything, `cargo test` with these arguments (after `--`), with the tools
        /// and servers but without fmt, clippy and doc.
        #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
        cargo_test_args: Vec<String>,
    },
    /// Run the property tests (names starting with `prop_`) in release with many cases.
    Proptest {
        /// Cases per property (exported as PROPTEST_CASES).
        #[arg(long, default_value_t = proptest::DEFAULT_CASES)]
        cases: u32,
    },
    /// Benchmark `resource` against Toil, md5sum, tar and zip on seeded inputs in tmpfs.
    Bench {
        /// Inputs about ten times smaller and fewer repetitions: a smoke run.
        #[arg(long)]
        quick: bool,
        /// Run only this input (tree_large, pkg_small, site_packages), or `latency`: downloads
        /// through a delay proxy against Toil and curl, `s3`: the S3 sections alone, or
        /// `python`: the Python package against Toil's `toil.resource` in one Python process.
        #[arg(long, value_name = "NAME")]
        only: Option<String>,
    },
    /// Run the cargo-fuzz targets (nightly, libFuzzer) one after another.
    Fuzz {
        /// Minutes per target.
        #[arg(long, default_value_t = fuzz::DEFAULT_MINUTES)]
        minutes: f64,
        /// Run only this target.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Merge what was found into the committed corpus (libFuzzer's `-merge=1`).
        #[arg(long)]
        merge: bool,
    },
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    let project = Project::locate()?;
    match cli.command {
        Command::Demo => demo::run(&project).map(|()| ExitCode::SUCCESS),
        Command::Dist => dist::run(&project),
        Command::Test { cargo_test_args } => test::run(&project, &cargo_test_args),
        Command::Proptest { cases } => proptest::run(&project, cases),
        Command::Bench { quick, only } => bench::run(
            &project,
            &bench::Options {
                quick,
                only: only.as_deref(),
            },
        ),
        Command::Fuzz {
            minutes,
            target,
            merge,
        } => fuzz::run(
            &project,
            &fuzz::Options {
                minutes,
                target: target.as_deref(),
                merge,
            },
        ),
    }
}
