//! `cargo xtask bench --only python`: the Python package (`resource_rs`, built as a release
//! wheel) against Toil's `toil.resource` in one Python process (`xtask/bench/python_driver.py`):
//! `Resource.create` + `download()` of `pkg_small` and `site_packages`, and `download()` of the
//! latency benchmark's 64 KiB resource through its delay proxy (10 ms each way), rounds
//! interleaved, medians compared.
//!
//! Peak RSS cannot be told apart inside one process (`ru_maxrss` is a high-water mark of the
//! whole process), so each contender also runs the same work alone in a process of its own, and
//! that process's peak RSS (from `wait4`) is compared, beside a process that only imports both.
//!
//! The wheel is not installed into the shared test venv (whose dev wheel the tests use): it is
//! unpacked into `target/bench/python-site`, which the driver finds on `PYTHONPATH`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::contenders::kib_to_mib;
use super::inputs::{self, Input};
use super::latency;
use super::report::median;
use super::reset_dir;
use super::sections::Section;
use crate::project::Project;
use crate::pybindings::{self, WheelProfile};
use crate::run::{header, measure, run_checked};
use crate::tools::Venv;

/// The section's heading.
const TITLE: &str = "python: resource_rs against toil.resource in one Python process";
/// The inputs created and downloaded, from [`inputs::NAMES`].
const INPUTS: [&str; 2] = ["pkg_small", "site_packages"];
/// The size of the latency benchmark's resource downloaded through the delay proxy.
const LATENCY_BYTES: u64 = 64 * 1024;
/// The contenders, as the driver names them.
const CONTENDERS: [&str; 2] = ["toil", "ours"];

/// What the section needs from the bench run.
pub(super) struct Setup<'a> {
    pub project: &'a Project,
    /// The venv with Toil, maturin and the Python the wheel is built for.
    pub test_venv: &'a Venv,
    /// The prepared inputs of this run; those of [`INPUTS`] missing are prepared here.
    pub prepared: &'a [Input],
    /// Where inputs are cached.
    pub bench_root: &'a Path,
    /// Where `inputs::prepare` keeps this run's inputs.
    pub inputs_dir: &'a Path,
    /// Scratch space.
    pub work: &'a Path,
    /// Smaller inputs (those `--quick` makes).
    pub quick: bool,
    /// Measured rounds after a warm-up.
    pub runs: usize,
}

/// Runs the section; a failure becomes "not available".
pub(super) fn run(setup: &Setup<'_>) -> Section {
    measure_section(setup).unwrap_or_else(|error| Section::unavailable(TITLE, &error))
}

fn measure_section(setup: &Setup<'_>) -> Result<Section> {
    let mut inputs = Vec::new();
    for name in INPUTS {
        match setup.prepared.iter().find(|input| input.name == name) {
            Some(input) => inputs.push(input.clone()),
            None => inputs.push(inputs::prepare(
                setup.project,
                name,
                setup.quick,
                setup.inputs_dir,
            )?),
        }
    }
    let latency_tree = latency::seeded_tree(&setup.bench_root.join("latency"), LATENCY_BYTES)?;
    let site = build_release_wheel(setup.project, setup.test_venv)?;

    let work = setup.work.join("python");
    reset_dir(&work)?;
    let served = work.join("served");
    fs::create_dir_all(&served).with_context(|| format!("cannot create {}", served.display()))?;
    let (_server, proxy) = latency::serve_delayed(&served, 0)?;
    let driver = |only: Option<&str>, runs: usize| {
        let mut command = Command::new(setup.test_venv.python());
        command
            .env("PYTHONPATH", &site)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("JTRES_ROOT")
            .arg(
                setup
                    .project
                    .xtask_dir()
                    .join("bench")
                    .join("python_driver.py"),
            )
            .arg("--work")
            .arg(work.join("scratch"))
            .arg("--runs")
            .arg(runs.to_string())
            .arg("--latency")
            .arg(&latency_tree)
            .arg("--served")
            .arg(&served)
            .arg("--proxy")
            .arg(proxy.endpoint());
        for input in &inputs {
            command
                .arg("--input")
                .arg(input.name)
                .arg(input.kind.flag())
                .arg(&input.path);
        }
        if let Some(only) = only {
            command.args(["--only", only]);
        }
        command
    };

    header(&format!(
        "{TITLE}: {} runs after a warm-up, interleaved",
        setup.runs
    ));
    let measured = measure(&mut driver(None, setup.runs)).context("the Python driver")?;
    let json: Value = serde_json::from_str(measured.stdout.trim())
        .with_context(|| format!("the Python driver printed {:?}", measured.stdout))?;
    let requests = proxy.requests().context("the delay proxy's request log")?;

    let mut section = Section::new(TITLE);
    for input in &inputs {
        for step in ["create", "download"] {
            let toil = median_of(&json, &[step, input.name, "toil"])?;
            let ours = median_of(&json, &[step, input.name, "ours"])?;
            let what = format!("{} ({} files): {step}", input.name, input.files);
            section.value(format!("{what}, Toil"), toil, "s");
            section.value(format!("{what}, ours"), ours, "s");
            let limit = if step == "create" { 0.4 } else { 0.5 };
            section.target(format!("{what}: ours / Toil"), ours / toil, limit);
        }
    }
    let what = format!(
        "{} KiB over a 20 ms round trip: download",
        LATENCY_BYTES / 1024
    );
    let toil = median_of(&json, &["latency", "toil"])?;
    let ours = median_of(&json, &["latency", "ours"])?;
    section.value(format!("{what}, Toil"), toil, "s");
    section.value(format!("{what}, ours"), ours, "s");
    let rounds = json
        .get("rounds")
        .and_then(Value::as_f64)
        .context("the Python driver's output lacks rounds")?;
    for contender in CONTENDERS {
        // Each contender's latency resource is stored under `served/<contender>/`.
        let prefix = format!("/{contender}/");
        let count = requests
            .iter()
            .filter(|request| request.path.starts_with(&prefix))
            .count();
        section.value(
            format!("{what}: requests per download, {contender}"),
            count as f64 / rounds,
            "",
        );
    }
    section.target(format!("{what}: ours / Toil"), ours / toil, 1.0);

    header("python: peak RSS, each contender alone in its own process (one round)");
    let floor = measure(&mut driver(Some("none"), 0)).context("the Python driver, imports only")?;
    section.value(
        "peak RSS, imports only",
        kib_to_mib(floor.peak_rss_kib),
        "MiB",
    );
    let mut peak = Vec::new();
    for contender in CONTENDERS {
        let alone = measure(&mut driver(Some(contender), 1))
            .with_context(|| format!("the Python driver, {contender} alone"))?;
        let mib = kib_to_mib(alone.peak_rss_kib);
        section.value(format!("peak RSS, {contender} alone"), mib, "MiB");
        peak.push(mib);
    }
    if let [toil, ours] = peak[..] {
        section.target("peak RSS: ours / Toil (each alone)", ours / toil, 1.0);
    }
    reset_dir(&work)?;
    Ok(section)
}

/// The median of the list of seconds at `path` in the driver's output.
fn median_of(json: &Value, path: &[&str]) -> Result<f64> {
    let mut value = json;
    for key in path {
        value = value
            .get(key)
            .with_context(|| format!("the Python driver's output lacks {}", path.join(".")))?;
    }
    let seconds = value
        .as_array()
        .with_context(|| format!("{} is not a list", path.join(".")))?
        .iter()
        .map(|sample| {
            sample
                .as_f64()
                .with_context(|| format!("{} holds a non-number", path.join(".")))
        })
        .collect::<Result<Vec<f64>>>()?;
    median(seconds).with_context(|| format!("{} is empty", path.join(".")))
}

/// Builds the `resource_rs` wheel in release (the bench measures what users install, not the
/// tests' dev build; maturin is installed first when missing) and unpacks it into
/// `target/bench/python-site`, which it returns.
fn build_release_wheel(project: &Project, venv: &Venv) -> Result<PathBuf> {
    header("maturin build --release (resource-py)");
    let bench_dir = project.target_dir().join("bench");
    let out = bench_dir.join("python-wheel");
    let site = bench_dir.join("python-site");
    if site.exists() {
        fs::remove_dir_all(&site).with_context(|| format!("cannot remove {}", site.display()))?;
    }
    let wheel = pybindings::build_wheel(project, venv, WheelProfile::Release, &out)?;
    // A wheel is a zip of what goes into site-packages; its .pth file (which only acts under
    // RESOURCE_RS_UNDER_TOIL) is not read from PYTHONPATH, and the bench does not need it.
    run_checked(
        Command::new(venv.python())
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&site),
    )?;
    if !site.join("resource_rs").is_dir() {
        bail!("{} holds no resource_rs package", wheel.display());
    }
    Ok(site)
}
