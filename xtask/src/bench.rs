//! `cargo xtask bench`: ours against Toil, `md5sum`, `tar` and `zip` on seeded inputs in tmpfs.
//!
//! Everything lives in `/dev/shm/resource-bench` (inputs are cached there between runs), so the
//! page cache and disk never enter the numbers. Every input is run once to warm up, then `runs`
//! times with the tools alternating, and the medians are compared with the targets. Results go
//! to the terminal and to `target/bench/results.json`.
//!
//! The run is a list of suites: [`archive_suite`] (create and download of whole inputs) makes
//! the [`report::Report`] table; module discovery, one download per node, and ours against S3
//! (one section each for moto and s3s-fs) and the Python package against Toil's in one Python
//! process are further functions called from [`run`] that add their own [`sections::Section`]s.

pub(crate) mod contenders;
mod discovery;
mod fanout;
mod inputs;
mod latency;
mod prng;
mod python;
mod report;
mod s3;
mod sections;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use self::contenders::{Contender, Ours, Sample, Tar, Toil, Zip, kib_to_mib, md5sum};
use self::inputs::{Input, count_files};
use self::report::{InputResult, Report, Series, ToolResult};
use crate::project::Project;
use crate::run::{header, measure};
use crate::tools::Venv;

/// Where inputs and scratch space live; must be tmpfs.
const BENCH_ROOT: &str = "/dev/shm/resource-bench";

/// What `cargo xtask bench` was asked for.
#[derive(Debug)]
pub(crate) struct Options<'a> {
    /// Smaller inputs and fewer runs.
    pub quick: bool,
    /// Only this input.
    pub only: Option<&'a str>,
}

impl Options<'_> {
    /// Timed runs per measurement, after a warm-up.
    fn runs(&self) -> usize {
        if self.quick { 3 } else { 5 }
    }
}

/// Ours built in release (or why not) and the tests' virtualenv with Toil, ready.
fn ours_and_tools(project: &Project) -> Result<(Result<PathBuf, String>, Venv)> {
    header("cargo xtask dist: resource, static-pie in release");
    let ours = build_ours(project);
    if let Err(reason) = &ours {
        println!("ours: {reason}");
    }
    header("tools");
    let test_venv = Venv::test(project);
    test_venv.ensure()?;
    Ok((ours, test_venv))
}

/// Where the inputs live under `bench_root` (the quick ones apart), created.
fn inputs_dir(bench_root: &Path, quick: bool) -> Result<PathBuf> {
    let dir = bench_root.join(if quick { "inputs-quick" } else { "inputs" });
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Holds [`BENCH_ROOT`] for one benchmark run, from any checkout: two runs would reset each
/// other's stores under it (seen as a 404 from the test server) and share the two cores, which
/// makes both runs' timings meaningless.
fn lock_bench_root() -> Result<fs::File> {
    if !Path::new("/dev/shm").is_dir() {
        bail!("/dev/shm is missing; the benchmarks need tmpfs");
    }
    fs::create_dir_all(BENCH_ROOT).with_context(|| format!("cannot create {BENCH_ROOT}"))?;
    let path = Path::new(BENCH_ROOT).join(".lock");
    let lock =
        fs::File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => bail!(
            "another `cargo xtask bench` holds {}; wait for it to end, since two runs would \
             reset each other's files and share the cores",
            path.display()
        ),
        Err(fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Runs the benchmarks and writes `target/bench/results.json`.
pub(crate) fn run(project: &Project, options: &Options<'_>) -> Result<ExitCode> {
    let _lock = lock_bench_root()?;
    if options.only == Some("latency") {
        return run_latency(project, options);
    }
    if options.only == Some("python") {
        return run_python(project, options);
    }
    if options.only == Some("s3") {
        return run_s3(project, options);
    }
    let names: Vec<&'static str> = match options.only {
        None => inputs::NAMES.to_vec(),
        Some(only) => match inputs::NAMES.iter().find(|name| **name == only) {
            Some(name) => vec![*name],
            None => bail!(
                "no benchmark input or section named {only:?}; known: {}, latency, s3, python",
                inputs::NAMES.join(", ")
            ),
        },
    };
    let runs = options.runs();
    let bench_root = Path::new(BENCH_ROOT);

    let (ours, test_venv) = ours_and_tools(project)?;

    header("inputs");
    let inputs_dir = inputs_dir(bench_root, options.quick)?;
    let mut prepared = Vec::new();
    for name in names {
        prepared.push(inputs::prepare(project, name, options.quick, &inputs_dir)?);
    }

    let work = bench_root.join("work");
    let floor = measure(&mut Command::new("true"))?;
    let mut report = Report::new(options.quick, runs, kib_to_mib(floor.peak_rss_kib));
    for input in &prepared {
        header(&format!(
            "{}: {} files, {:.1} MiB, {runs} runs after a warm-up",
            input.name,
            input.files,
            kib_to_mib(input.bytes / 1024)
        ));
        let mut tools: Vec<Box<dyn Contender>> = Vec::new();
        if let Ok(binary) = &ours {
            tools.push(Box::new(Ours::new(binary.clone())));
        }
        tools.push(Box::new(Toil::new(
            test_venv.python(),
            project.xtask_dir().join("bench").join("toil_driver.py"),
        )));
        tools.push(Box::new(Tar::default()));
        tools.push(Box::new(Zip::default()));
        let mut result = archive_suite(input, &mut tools, &work, runs)?;
        if let Err(reason) = &ours {
            result
                .tools
                .insert(0, ToolResult::unavailable("ours", reason));
        }
        report.inputs.push(result);
    }
    header("module discovery");
    let mut sections = vec![discovery::run(project, runs)];
    header("one download per node");
    sections.push(fanout::run(&ours, bench_root, &work, options.quick, runs));
    let s3_setup = s3::Setup {
        project,
        test_venv: &test_venv,
        ours: &ours,
        input: prepared.iter().find(|input| input.name == "tree_large"),
        work: &work,
        runs,
    };
    sections.extend(s3::run(&s3_setup));
    sections.push(python::run(&python::Setup {
        project,
        test_venv: &test_venv,
        prepared: &prepared,
        bench_root,
        inputs_dir: &inputs_dir,
        work: &work,
        quick: options.quick,
        runs,
    }));
    reset_dir(&work)?;

    report.print();
    for section in &sections {
        section.print();
    }
    let json_path = project.target_dir().join("bench").join("results.json");
    report.write_json(&json_path)?;
    sections::add_to_json(&json_path, &sections)?;
    println!("\nresults: {}", json_path.display());
    Ok(ExitCode::SUCCESS)
}

/// `--only s3`: the S3 sections alone (see [`s3`]), on the tree input, without the main table.
fn run_s3(project: &Project, options: &Options<'_>) -> Result<ExitCode> {
    let runs = options.runs();
    let bench_root = Path::new(BENCH_ROOT);
    let (ours, test_venv) = ours_and_tools(project)?;
    header("inputs");
    let inputs_dir = inputs_dir(bench_root, options.quick)?;
    let input = inputs::prepare(project, "tree_large", options.quick, &inputs_dir)?;
    let work = bench_root.join("work");
    let sections = s3::run(&s3::Setup {
        project,
        test_venv: &test_venv,
        ours: &ours,
        input: Some(&input),
        work: &work,
        runs,
    });
    reset_dir(&work)?;
    print_and_write(project, "s3", &sections)
}

/// `--only latency`: the latency sections alone (see [`latency`]).
fn run_latency(project: &Project, options: &Options<'_>) -> Result<ExitCode> {
    let runs = options.runs();
    let bench_root = Path::new(BENCH_ROOT);
    let (ours, test_venv) = ours_and_tools(project)?;
    header("latency");
    let work = bench_root.join("work");
    let sections = latency::run(&latency::Setup {
        ours: &ours,
        python: test_venv.python(),
        toil_driver: project.xtask_dir().join("bench").join("toil_driver.py"),
        bench_root,
        work: &work,
        quick: options.quick,
        runs,
    });
    reset_dir(&work)?;
    print_and_write(project, "latency", &sections)
}

/// `--only python`: the Python package against Toil's (see [`python`]); its inputs are prepared
/// by the section itself.
fn run_python(project: &Project, options: &Options<'_>) -> Result<ExitCode> {
    let runs = options.runs();
    let bench_root = Path::new(BENCH_ROOT);
    header("tools");
    let test_venv = Venv::test(project);
    test_venv.ensure()?;
    let inputs_dir = inputs_dir(bench_root, options.quick)?;
    let work = bench_root.join("work");
    let section = python::run(&python::Setup {
        project,
        test_venv: &test_venv,
        prepared: &[],
        bench_root,
        inputs_dir: &inputs_dir,
        work: &work,
        quick: options.quick,
        runs,
    });
    reset_dir(&work)?;
    print_and_write(project, "python", std::slice::from_ref(&section))
}

/// Prints a section-only run's sections and writes them to `target/bench/<name>.json`.
fn print_and_write(
    project: &Project,
    name: &str,
    sections: &[sections::Section],
) -> Result<ExitCode> {
    for section in sections {
        section.print();
    }
    let json_path = project
        .target_dir()
        .join("bench")
        .join(format!("{name}.json"));
    if let Some(parent) = json_path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(&json_path, serde_json::to_string_pretty(sections)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("\nresults: {}", json_path.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds the `resource` binary as it is shipped (`cargo xtask dist`); `Err` says why ours is not
/// available.
fn build_ours(project: &Project) -> Result<PathBuf, String> {
    crate::dist::build(project, crate::dist::Profile::Release)
        .map_err(|error| format!("not available: {error:#}"))
}

/// Create and download of one whole input by every tool, plus `md5sum` of the archive ours
/// made (or, while ours is not available, of the stored zip that `zip -0` made).
fn archive_suite(
    input: &Input,
    tools: &mut [Box<dyn Contender>],
    work: &Path,
    runs: usize,
) -> Result<InputResult> {
    let mut create: BTreeMap<&'static str, Vec<Sample>> = BTreeMap::new();
    let mut download: BTreeMap<&'static str, Vec<Sample>> = BTreeMap::new();
    let mut failed: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut md5 = Md5Samples::default();
    for round in 0..=runs {
        let warm_up = round == 0;
        progress(if warm_up { "warm-up:" } else { "run:" });
        for tool in tools.iter_mut() {
            let name = tool.name();
            if failed.contains_key(name) {
                continue;
            }
            progress(&format!(" {name}"));
            let md5_source = if failed.contains_key("ours") {
                "zip"
            } else {
                "ours"
            };
            let dir = work.join(name);
            reset_dir(&dir)?;
            let outcome = one_round(input, tool.as_mut(), &dir, name == md5_source);
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
            match outcome {
                Ok(round_samples) if !warm_up => {
                    create.entry(name).or_default().push(round_samples.create);
                    download
                        .entry(name)
                        .or_default()
                        .push(round_samples.download);
                    if let Some((archive_bytes, sample)) = round_samples.md5 {
                        md5.push(name, archive_bytes, sample);
                    }
                }
                Ok(_) => {}
                Err(error) if tool.may_fail() => {
                    println!(" (not available: {error:#})");
                    failed.insert(name, format!("not available: {error:#}"));
                    create.remove(name);
                    download.remove(name);
                }
                Err(error) => return Err(error.context(format!("{name} on {}", input.name))),
            }
        }
        println!();
    }
    let mut result = InputResult::new(input, md5.into_series());
    for tool in tools.iter() {
        let name = tool.name();
        result.tools.push(match failed.get(name) {
            Some(reason) => ToolResult::unavailable(name, reason),
            None => ToolResult::measured(
                name,
                Series::new(create.remove(name).unwrap_or_default()),
                Series::new(download.remove(name).unwrap_or_default()),
            ),
        });
    }
    result.check_targets();
    Ok(result)
}

/// The samples of one tool in one round.
struct RoundSamples {
    create: Sample,
    download: Sample,
    md5: Option<(u64, Sample)>,
}

fn one_round(
    input: &Input,
    tool: &mut dyn Contender,
    dir: &Path,
    hash_archive: bool,
) -> Result<RoundSamples> {
    let create = tool.create(input, dir)?;
    let md5 = match (hash_archive, tool.archive()) {
        (false, _) => None,
        (true, None) => bail!("{} made no archive file to hash", tool.name()),
        (true, Some(archive)) => {
            let bytes = fs::metadata(&archive)
                .with_context(|| format!("cannot stat {}", archive.display()))?
                .len();
            Some((bytes, md5sum(&archive)?))
        }
    };
    let (download, unpacked) = tool.download(input, dir)?;
    let (files, _) = count_files(&unpacked)?;
    if files != input.files {
        bail!(
            "{} unpacked {files} files into {}, the input has {}",
            tool.name(),
            unpacked.display(),
            input.files
        );
    }
    Ok(RoundSamples {
        create,
        download,
        md5,
    })
}

/// `md5sum` samples, all of one tool's archive: switching the source starts over.
#[derive(Debug, Default)]
struct Md5Samples {
    source: Option<&'static str>,
    archive_bytes: u64,
    samples: Vec<Sample>,
}

impl Md5Samples {
    fn push(&mut self, source: &'static str, archive_bytes: u64, sample: Sample) {
        if self.source != Some(source) {
            self.samples.clear();
            self.source = Some(source);
        }
        self.archive_bytes = archive_bytes;
        self.samples.push(sample);
    }

    fn into_series(self) -> report::Md5Result {
        report::Md5Result {
            archive_of: self.source.unwrap_or("none"),
            archive_bytes: self.archive_bytes,
            series: Series::new(self.samples),
        }
    }
}

/// Prints a progress word without ending the line.
fn progress(text: &str) {
    let mut out = std::io::stdout().lock();
    // Progress output is best effort; a closed stdout shows up at the next println anyway.
    let _ = write!(out, "{text}").and_then(|()| out.flush());
}

/// Empties `dir` (making it if needed). Removal is not measured; tmpfs frees at once.
fn reset_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_samples_start_over_when_the_source_changes() {
        let sample = Sample {
            wall_s: 1.0,
            op_s: None,
            peak_rss_mib: 1.0,
            cpu_s: 1.0,
        };
        let mut md5 = Md5Samples::default();
        md5.push("ours", 10, sample);
        md5.push("ours", 10, sample);
        md5.push("zip", 12, sample);
        let result = md5.into_series();
        assert_eq!(result.archive_of, "zip");
        assert_eq!(result.series.samples.len(), 1);
    }
}
