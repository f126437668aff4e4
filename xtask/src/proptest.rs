//! `cargo xtask proptest`: the cross-crate property tests in release mode with many cases.
//!
//! Convention: every property test's name starts with `prop_`, so the libtest filter `prop_`
//! selects exactly them across all crates.

use std::process::ExitCode;

use anyhow::Result;

use crate::project::Project;
use crate::run::{describe, header};
use crate::test::{Tally, cargo_tests, close, test_env};
use crate::tools::Venv;

/// Cases per property when `--cases` is not given (the tests' own default is far lower).
pub(crate) const DEFAULT_CASES: u32 = 2000;

/// Runs `PROPTEST_CASES=<cases> cargo test --workspace --release --tests -- prop_`.
pub(crate) fn run(project: &Project, cases: u32) -> Result<ExitCode> {
    Ok(close(run_properties(project, cases)))
}

fn run_properties(project: &Project, cases: u32) -> Result<Tally> {
    // Property tests may compare against Toil, so they get the same tools as the full suite.
    let venv = Venv::test(project);
    venv.ensure()?;
    let mut test = project.cargo();
    // `--tests`: every unit and integration test target but no doc tests, which are never
    // properties and would only add their compile time.
    test.args([
        "test",
        "--workspace",
        "--release",
        "--tests",
        "--no-fail-fast",
        "--",
        "prop_",
    ])
    .env("PROPTEST_CASES", cases.to_string());
    for (name, value) in test_env(project, &venv) {
        test.env(name, value);
    }
    header(&format!("PROPTEST_CASES={cases} {}", describe(&test)));
    cargo_tests(&mut test)
}
