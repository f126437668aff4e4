//! `cargo xtask test`: everything CI runs, in order, stopping at the first failing step.
//!
//! fmt, clippy, doc and the unused-dependency check come first because they are cheap and fail
//! fast; then the project-local tools are made sure of, the test servers started, and
//! `cargo test --workspace` runs with the variables that point the tests at them; the Python
//! bindings' tests follow, and last the check of the binary as it is shipped (`dist::check`).
//! The closing line is always `N passed, M failed`.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::project::Project;
use crate::run::{describe, header, run_checked};
use crate::servers::{self, Servers};
use crate::tools::{CargoTool, Venv};
use crate::{dist, pybindings};

/// Runs the whole suite; the exit code tells CI whether everything passed.
///
/// With `cargo_test_args` (say `-p resource-store --test conformance s3s`), only those tests run,
/// with the tools and servers they need but without the fmt, clippy and doc steps: a developer's
/// way to run one server-backed test.
pub(crate) fn run(project: &Project, cargo_test_args: &[String]) -> Result<ExitCode> {
    let mut timings = Timings::default();
    let outcome = run_steps(project, &mut timings, cargo_test_args);
    timings.print();
    Ok(close(outcome))
}

/// Prints the error, if any, then the closing `N passed, M failed` line, and picks the exit code.
///
/// A step that fails before or outside the test results (formatting, a build error, a server
/// that does not start) counts as one failure, so the closing line never looks green then.
pub(crate) fn close(outcome: Result<Tally>) -> ExitCode {
    let tally = match outcome {
        Ok(tally) if tally.all_passed() => {
            println!("{} passed, {} failed", tally.passed, tally.failed);
            return ExitCode::SUCCESS;
        }
        Ok(tally) => tally,
        Err(error) => {
            eprintln!("error: {error:#}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let failed = if tally.failed == 0 {
        eprintln!("error: cargo test failed outside the test results (see above)");
        1
    } else {
        tally.failed
    };
    println!("{} passed, {failed} failed", tally.passed);
    ExitCode::FAILURE
}

fn run_steps(
    project: &Project,
    timings: &mut Timings,
    cargo_test_args: &[String],
) -> Result<Tally> {
    const STEPS: usize = 9;
    if cargo_test_args.is_empty() {
        lint_steps(project, timings, STEPS)?;
    }
    let venv = Venv::test(project);
    timings.step(5, STEPS, "project-local tools (.tools/py)", || {
        venv.ensure()
    })?;

    let context = servers::Context::new(
        project,
        &venv,
        project.target_dir().join("xtask").join("servers"),
    )?;
    let running = timings.step(6, STEPS, "test servers", || {
        Servers::start(&context, &servers::all())
    })?;

    let mut test = project.cargo();
    test.args(["test", "--no-fail-fast"]);
    if cargo_test_args.is_empty() {
        test.arg("--workspace");
    }
    test.args(cargo_test_args);
    for (name, value) in test_env(project, &venv) {
        test.env(name, value);
    }
    for (name, value) in running.env() {
        println!("{name}={value}");
        test.env(name, value);
    }
    let mut tally = timings.step(7, STEPS, &describe(&test), || cargo_tests(&mut test))?;
    // The Python bindings: in the whole run, or when the chosen tests name their crate. The
    // servers stay up for them: our pytest tests write Toil's AWS job store in moto.
    if cargo_test_args.is_empty() || cargo_test_args.iter().any(|arg| arg == "resource-py") {
        let server_env: Vec<(String, String)> = running
            .env()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let python = timings.step(
            8,
            STEPS,
            "Python bindings: wheel, pytest, Toil's resourceTest with Toil's and ours",
            || pybindings::run(project, &venv, &server_env),
        )?;
        tally.passed += python.passed;
        tally.failed += python.failed;
    }
    drop(running);
    if cargo_test_args.is_empty() {
        tally.passed += timings.step(
            9,
            STEPS,
            "the shipped binary: static-pie, downloading from http://localhost",
            || dist::check(project),
        )?;
    }
    Ok(tally)
}

/// Steps 1 to 4: formatting, clippy and rustdoc, all with warnings as errors, and no declared
/// dependency left unused.
fn lint_steps(project: &Project, timings: &mut Timings, steps: usize) -> Result<()> {
    let mut fmt = project.cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    timings.step(1, steps, &describe(&fmt), || run_checked(&mut fmt))?;

    let mut clippy = project.cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    timings.step(2, steps, &describe(&clippy), || run_checked(&mut clippy))?;

    let mut doc = project.cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    timings.step(
        3,
        steps,
        "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps",
        || run_checked(&mut doc),
    )?;

    let machete = CargoTool::cargo_machete(project);
    timings.step(4, steps, "unused dependencies (cargo-machete)", || {
        machete.ensure(project.cargo())?;
        let mut check = Command::new(machete.bin());
        check.current_dir(project.root());
        run_checked(&mut check)
    })?;

    Ok(())
}

/// The variables every test process gets: the Python with Toil, and the tools directory.
pub(crate) fn test_env(project: &Project, venv: &Venv) -> Vec<(&'static str, OsString)> {
    vec![
        ("RESOURCE_TEST_PYTHON", venv.python().into_os_string()),
        ("RESOURCE_TOOLS_DIR", project.tools_dir().into_os_string()),
    ]
}

/// Counted test results of one `cargo test` run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Sum of `N passed` over every `test result:` line.
    pub passed: u64,
    /// Sum of `N failed` over every `test result:` line.
    pub failed: u64,
    /// Whether cargo itself exited unsuccessfully (failed tests or a build error).
    pub cargo_failed: bool,
}

impl Tally {
    /// Whether cargo succeeded and no test failed.
    pub(crate) fn all_passed(&self) -> bool {
        !self.cargo_failed && self.failed == 0
    }

    fn add_line(&mut self, line: &str) {
        if let Some((passed, failed)) = parse_result_line(line) {
            self.passed += passed;
            self.failed += failed;
        }
    }
}

/// Runs a `cargo test` command, passing its output through while counting the results.
pub(crate) fn cargo_tests(command: &mut Command) -> Result<Tally> {
    command.stdout(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start `{}`", describe(command)))?;
    let mut tally = Tally::default();
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        let mut out = std::io::stdout().lock();
        loop {
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .context("reading cargo test output")?
                == 0
            {
                break;
            }
            out.write_all(&line)?;
            out.flush()?;
            tally.add_line(&String::from_utf8_lossy(&line));
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    tally.cargo_failed = !status.success();
    Ok(tally)
}

/// `(passed, failed)` from a libtest summary such as
/// `test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
fn parse_result_line(line: &str) -> Option<(u64, u64)> {
    let rest = &line[line.find("test result: ")? + "test result: ".len()..];
    let rest = &rest[rest.find(". ")? + 2..];
    let mut passed = None;
    let mut failed = None;
    for part in rest.split(';') {
        let mut words = part.split_whitespace();
        let (Some(count), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        match what {
            "passed" => passed = count.parse().ok(),
            "failed" => failed = count.parse().ok(),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

/// Wall time of each step, printed at the end of the run.
#[derive(Debug, Default)]
struct Timings {
    steps: Vec<(String, Duration)>,
}

impl Timings {
    fn step<T>(
        &mut self,
        number: usize,
        of: usize,
        title: &str,
        body: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        header(&format!("[{number}/{of}] {title}"));
        let start = Instant::now();
        let result = body();
        self.steps.push((title.to_owned(), start.elapsed()));
        result.with_context(|| format!("step {number}/{of} failed"))
    }

    fn print(&self) {
        header("timings");
        let total: Duration = self.steps.iter().map(|(_, took)| *took).sum();
        for (title, took) in &self.steps {
            println!("{:>8.1} s  {title}", took.as_secs_f64());
        }
        println!("{:>8.1} s  total", total.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ok_and_failed_summaries() {
        assert_eq!(
            parse_result_line(
                "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.03s"
            ),
            Some((12, 0))
        );
        assert_eq!(
            parse_result_line(
                "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s\n"
            ),
            Some((3, 2))
        );
        assert_eq!(parse_result_line("running 3 tests"), None);
        assert_eq!(parse_result_line("test result: garbage"), None);
    }

    #[test]
    fn tally_sums_every_binary() {
        let mut tally = Tally::default();
        for line in [
            "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
            "test a ... ok",
            "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            tally.add_line(line);
        }
        assert_eq!((tally.passed, tally.failed), (3, 1));
        assert!(!tally.all_passed());
    }

    #[test]
    fn a_failure_outside_tests_is_not_green() {
        assert_eq!(close(Err(anyhow::anyhow!("fmt failed"))), ExitCode::FAILURE);
        let cargo_failed = Tally {
            passed: 4,
            failed: 0,
            cargo_failed: true,
        };
        assert_eq!(close(Ok(cargo_failed)), ExitCode::FAILURE);
    }
}
