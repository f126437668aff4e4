//! The Python bindings' part of `cargo xtask test`: build the `resource_rs` wheel with maturin,
//! install it into `.tools/py`, run our pytest tests, then Toil's own `resourceTest.py` twice (with
//! Toil's implementation, then with ours put under Toil) and print the outcomes side by side.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::project::Project;
use crate::run::{describe, output_checked, run_checked};
use crate::test::Tally;
use crate::tools::Venv;

/// The pytest module of Toil's that tests its `toil.resource`.
const TOIL_RESOURCE_TEST: &str = "toil.test.src.resourceTest";

/// Makes sure `rsync` is on PATH, installing Debian's package when it is missing and this user
/// can: Toil's test package runs `rsync --version` when it is imported, so without rsync pytest
/// collects nothing, and a clean CI machine need not have it.
fn ensure_rsync() -> Result<()> {
    let present = || {
        Command::new("rsync")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if present() {
        return Ok(());
    }
    let as_root = output_checked(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    if as_root {
        println!("rsync is missing: installing Debian's package (Toil's test package needs it)");
        let mut install = Command::new("apt-get");
        install
            .args(["install", "-y", "--no-install-recommends", "rsync"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        if run_checked(&mut install).is_err() {
            // The package lists of a fresh machine may be empty; one update, then again.
            run_checked(Command::new("apt-get").arg("update"))?;
            run_checked(&mut install)?;
        }
    }
    if !present() {
        bail!(
            "{TOIL_RESOURCE_TEST} needs rsync on PATH (Toil's test package runs it on import); \
             install it (Debian: apt-get install rsync)"
        );
    }
    Ok(())
}

/// Installs the pinned bindings requirements (maturin, pytest, virtualenv) into the test venv,
/// unless its stamp says they are: whatever builds the wheel (the tests, the bench) calls this
/// first, so that a fresh clone needs no step of its own.
fn ensure_requirements(project: &Project, venv: &Venv) -> Result<()> {
    let requirements = project.xtask_dir().join("requirements-bindings.txt");
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let stamp = venv.dir().join("xtask-bindings-stamp.txt");
    let healthy = || {
        output_checked(Command::new(venv.python()).args([
            "-c",
            "import pytest, maturin, virtualenv, google.cloud.storage",
        ]))
        .is_ok()
    };
    if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && healthy() {
        println!("{}: bindings requirements up to date", venv.dir().display());
        return Ok(());
    }
    venv.install_requirements(&requirements)?;
    fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(())
}

/// The cargo profile a wheel is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WheelProfile {
    /// The tests' wheel: no optimisation, and it shares the build of `cargo test`.
    Dev,
    /// The bench's wheel: what users install.
    Release,
}

/// Builds the `resource_rs` wheel with maturin into the empty directory `out` (the bindings
/// requirements installed first), and returns the wheel's path: the one place that knows how.
pub(crate) fn build_wheel(
    project: &Project,
    venv: &Venv,
    profile: WheelProfile,
    out: &Path,
) -> Result<PathBuf> {
    ensure_requirements(project, venv)?;
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("cannot remove {}", out.display()))?;
    }
    let profile = match profile {
        WheelProfile::Dev => "dev",
        WheelProfile::Release => "release",
    };
    let mut maturin = Command::new(venv.bin("maturin"));
    maturin
        .current_dir(project.root())
        .args([
            "build",
            "--quiet",
            "--manifest-path",
            "resource-py/Cargo.toml",
            "--profile",
            profile,
            // The wheel is built for this machine, not checked against a manylinux policy (its
            // glibc symbol versions), which only a release needs.
            "--auditwheel",
            "skip",
            "--out",
        ])
        .arg(out)
        .env("PYO3_PYTHON", venv.python());
    run_checked(&mut maturin)?;
    fs::read_dir(out)
        .with_context(|| format!("cannot list {}", out.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .with_context(|| format!("maturin left no wheel in {}", out.display()))
}

/// Builds the tests' wheel and installs it into the venv.
fn build_and_install(project: &Project, venv: &Venv) -> Result<PathBuf> {
    let out = project.target_dir().join("xtask").join("wheels");
    let wheel = build_wheel(project, venv, WheelProfile::Dev, &out)?;
    let mut pip = Command::new(venv.python());
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        "--no-deps",
        "--force-reinstall",
    ])
    .arg(&wheel);
    run_checked(&mut pip)?;
    Ok(wheel)
}

/// `PATH` with the venv's `bin` first, and the directory of the interpreter Toil names as its
/// `exactPython` (the Python its wheel was built with, which `testVirtualEnv` asks virtualenv
/// for), when pyenv has it.
fn test_path(venv: &Venv) -> Result<OsString> {
    let exact = output_checked(Command::new(venv.python()).args([
        "-c",
        "from toil.version import exactPython; print(exactPython)",
    ]))?;
    let exact = exact.trim();
    let mut dirs = vec![venv.bin("")];
    // Run, not merely found: a pyenv shim is on PATH for every version, installed or not.
    let on_path = Command::new(exact)
        .args(["-c", "pass"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !on_path && let Some(dir) = pyenv_bin(exact.trim_start_matches("python")) {
        dirs.push(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    Ok(std::env::join_paths(dirs)?)
}

/// The `bin` of pyenv's newest `X.Y.*` install, if pyenv is there.
fn pyenv_bin(version: &str) -> Option<PathBuf> {
    let root = output_checked(Command::new("pyenv").arg("root")).ok()?;
    let versions = Path::new(root.trim()).join("versions");
    let mut found: Vec<PathBuf> = fs::read_dir(versions)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&format!("{version}.")))
        })
        .collect();
    found.sort();
    found.pop().map(|dir| dir.join("bin"))
}

/// Outcomes of one pytest run, by test id.
type Outcomes = BTreeMap<String, String>;

/// Runs pytest with `-rA` and reads every `PASSED id` / `FAILED id` / `ERROR id` line of its
/// summary, printing its output as it is. `server_env` tells the tests where the test servers
/// are (`RESOURCE_TEST_S3_ENDPOINT`, …).
fn pytest(
    venv: &Venv,
    path: &OsString,
    scratch: &Path,
    server_env: &[(String, String)],
    args: &[&str],
) -> Result<Outcomes> {
    let mut command = Command::new(venv.python());
    command
        .args(["-m", "pytest", "-rA", "-p", "no:cacheprovider"])
        .args(args)
        .current_dir(scratch)
        .env("PATH", path)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(server_env.iter().map(|(name, value)| (name, value)))
        .env_remove("JTRES_ROOT");
    println!("$ {}", describe(&command));
    let output = command
        .output()
        .with_context(|| format!("cannot start `{}`", describe(&command)))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let mut outcomes = Outcomes::new();
    for line in stdout.lines() {
        for outcome in ["PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS"] {
            if let Some(rest) = line.strip_prefix(outcome).and_then(|r| r.strip_prefix(' ')) {
                let id = rest.split(" - ").next().unwrap_or(rest).trim();
                outcomes.insert(id.to_owned(), outcome.to_owned());
            }
        }
    }
    if outcomes.is_empty() {
        bail!(
            "`{}` reported no test (exit status {})",
            describe(&command),
            output.status
        );
    }
    Ok(outcomes)
}

/// Builds and installs the wheel, runs our tests and Toil's resourceTest twice; the tally counts
/// our tests, and each of Toil's tests run with ours installed, which fails when it passed with
/// Toil's implementation and not with ours. `server_env` are the running test servers'
/// variables, which our tests read.
pub(crate) fn run(
    project: &Project,
    venv: &Venv,
    server_env: &[(String, String)],
) -> Result<Tally> {
    let wheel = build_and_install(project, venv)?;
    println!("installed {}", wheel.display());
    let path = test_path(venv)?;
    let scratch = project.target_dir().join("xtask").join("pytest");
    fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let tests = project.root().join("resource-py").join("tests");
    let tests = tests.to_string_lossy().into_owned();

    let mut tally = Tally::default();
    let ours = pytest(venv, &path, &scratch, server_env, &["-q", &tests])?;
    for outcome in ours.values() {
        if outcome == "PASSED" {
            tally.passed += 1;
        } else if outcome != "SKIPPED" {
            tally.failed += 1;
        }
    }

    ensure_rsync()?;
    let with_toil = pytest(
        venv,
        &path,
        &scratch,
        server_env,
        &["-q", "--pyargs", TOIL_RESOURCE_TEST],
    )?;
    let with_ours = pytest(
        venv,
        &path,
        &scratch,
        server_env,
        &[
            "-q",
            "-p",
            "resource_rs.toil_plugin",
            "--pyargs",
            TOIL_RESOURCE_TEST,
        ],
    )?;
    if with_toil.is_empty() || with_ours.is_empty() {
        bail!("{TOIL_RESOURCE_TEST} reported no test outcome in one of its two runs (see above)");
    }
    println!("\n{TOIL_RESOURCE_TEST}, side by side:");
    println!("{:<48} {:<8} {:<8}", "test", "Toil's", "ours");
    let ids: std::collections::BTreeSet<&String> =
        with_toil.keys().chain(with_ours.keys()).collect();
    for id in ids {
        let toil = with_toil.get(id).map_or("-", String::as_str);
        let ours = with_ours.get(id).map_or("-", String::as_str);
        println!("{id:<48} {toil:<8} {ours:<8}");
        if ours == "PASSED" {
            tally.passed += 1;
        } else if toil == "PASSED" {
            println!("  regression: passes with Toil's implementation, not with ours");
            tally.failed += 1;
        }
    }
    Ok(tally)
}
