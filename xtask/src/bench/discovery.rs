//! Module discovery: the release `discovery_timing` example of `resource-modules` times the
//! library itself (process start-up would swamp a few milliseconds), against the bench venv.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::sections::Section;
use crate::project::Project;
use crate::run::{output_checked, run_checked};
use crate::tools::Venv;

const TITLE: &str = "module discovery (resource-modules in release, bench venv)";
/// Warm discovery (snapshot cached in memory) must take at most this many milliseconds.
const WARM_MS: f64 = 5.0;
/// Scanning the bench venv's site-packages must take at most this many milliseconds.
const SCAN_MS: f64 = 50.0;

/// Runs the section; failures become "not available".
pub(super) fn run(project: &Project, runs: usize) -> Section {
    measure(project, runs).unwrap_or_else(|error| Section::unavailable(TITLE, &error))
}

fn measure(project: &Project, runs: usize) -> Result<Section> {
    let venv = Venv::bench(project);
    venv.ensure()?;
    let site_packages = bench_site_packages(project)?;
    let mut build = project.cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "resource-modules",
        "--example",
        "discovery_timing",
    ]);
    run_checked(&mut build)?;
    let binary = project
        .target_dir()
        .join("release")
        .join("examples")
        .join("discovery_timing");
    // More rounds than the archive suite: each is a few interpreter starts at most.
    let rounds = (runs * 4).to_string();
    let stdout = output_checked(
        std::process::Command::new(&binary)
            .arg(venv.python())
            .arg(&site_packages)
            .arg(&rounds),
    )?;
    let json: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("discovery_timing printed {stdout:?}"))?;
    let number = |key: &str| -> Result<f64> {
        json.get(key)
            .and_then(Value::as_f64)
            .with_context(|| format!("discovery_timing output lacks {key:?}: {json}"))
    };
    let cold = number("coldQueryMs")?;
    let warm = number("warmDiscoveryMs")?;
    let scan = number("scanMs")?;
    let mut section = Section::new(TITLE);
    section.value(
        format!("baseline: cold interpreter query ({rounds} runs)"),
        cold,
        "ms",
    );
    section.value(
        "first discovery (starts the interpreter)",
        number("firstDiscoveryMs")?,
        "ms",
    );
    section.value("warm discovery (no interpreter)", warm, "ms");
    section.value(
        format!(
            "scan of site-packages ({} distributions)",
            number("scannedDistributions")?
        ),
        scan,
        "ms",
    );
    section.target("warm discovery, ms", warm, WARM_MS);
    section.target("site-packages scan, ms", scan, SCAN_MS);
    Ok(section)
}

/// `.tools/bench-venv/lib/pythonX.Y/site-packages`.
fn bench_site_packages(project: &Project) -> Result<PathBuf> {
    let lib = project.tools_dir().join("bench-venv").join("lib");
    for entry in fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))? {
        let candidate = entry?.path().join("site-packages");
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    bail!("{} holds no python*/site-packages", lib.display())
}
