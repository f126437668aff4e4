//! `cargo xtask fuzz [--minutes N] [--target NAME]`: each cargo-fuzz target of `fuzz/` in turn,
//! for N minutes, one process at a time (the machines have two cores), with cargo-fuzz 0.13.2
//! from `.tools` and the nightly toolchain.
//!
//! Each run reads the committed corpus (`fuzz/corpus/<target>/`) and the fixed crashes
//! (`fuzz/regressions/<target>/`) and grows a working corpus under `fuzz/target/corpus/`, so the
//! repository's corpus stays minimised (`--merge` merges what was found back into it). It prints
//! per target the executions, the coverage libFuzzer reports (`cov`: edges, `ft`: features), the
//! corpus size and the crashes (written to `fuzz/artifacts/<target>/`), and keeps a ledger of
//! every run in `fuzz/target/fuzz-ledger.tsv`, whose totals it prints too.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

use crate::project::Project;
use crate::run::{header, run_checked};
use crate::tools::CargoTool;

/// The default minutes per target.
pub(crate) const DEFAULT_MINUTES: f64 = 3.0;

/// What to fuzz, and for how long.
#[derive(Debug)]
pub(crate) struct Options<'a> {
    /// Minutes per target.
    pub(crate) minutes: f64,
    /// Only this target.
    pub(crate) target: Option<&'a str>,
    /// Merge the inputs that add coverage into `fuzz/corpus/<target>/` afterwards.
    pub(crate) merge: bool,
}

/// One run's figures, from libFuzzer's output.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    executions: u64,
    cov: u64,
    ft: u64,
    corpus: u64,
    crashes: u64,
}

/// cargo-fuzz's flags for every build and run: no sanitizer (the code under test has no
/// `unsafe`; panics and overflow checks are what find bugs here, at several times the speed), and
/// debug assertions with overflow checks.
const FUZZ_FLAGS: &[&str] = &["--sanitizer", "none", "--debug-assertions"];

pub(crate) fn run(project: &Project, options: &Options<'_>) -> Result<ExitCode> {
    let fuzz_dir = project.root().join("fuzz");
    let targets = list_targets(&fuzz_dir)?;
    let chosen: Vec<&String> = match options.target {
        Some(name) => match targets.iter().find(|t| *t == name) {
            Some(target) => vec![target],
            None => bail!(
                "no fuzz target {name:?}; the targets are {}",
                targets.join(", ")
            ),
        },
        None => targets.iter().collect(),
    };
    let tool = CargoTool::cargo_fuzz(project);
    tool.ensure(project.cargo())?;
    header("fuzz: build");
    run_checked(fuzz_command(&tool, &fuzz_dir).arg("build").args(FUZZ_FLAGS))?;

    let seconds = (options.minutes * 60.0).round().max(1.0) as u64;
    let mut results = Vec::new();
    for target in chosen {
        header(&format!("fuzz: {target} for {seconds} s"));
        let stats = fuzz_one(&tool, &fuzz_dir, target, seconds)?;
        if options.merge {
            merge(&tool, &fuzz_dir, target)?;
        }
        record(&fuzz_dir, target, &stats)?;
        results.push((target.clone(), stats));
    }

    let totals = totals(&fuzz_dir)?;
    println!();
    println!(
        "{:<22} {:>12} {:>7} {:>7} {:>7} {:>8} {:>14}",
        "target", "executions", "cov", "ft", "corpus", "crashes", "total execs"
    );
    for (target, stats) in &results {
        let total = totals
            .iter()
            .find(|(t, _)| t == target)
            .map_or(0, |(_, n)| *n);
        println!(
            "{:<22} {:>12} {:>7} {:>7} {:>7} {:>8} {:>14}",
            target, stats.executions, stats.cov, stats.ft, stats.corpus, stats.crashes, total
        );
    }
    let crashed = results.iter().any(|(_, stats)| stats.crashes > 0);
    Ok(if crashed {
        println!(
            "crashes are in fuzz/artifacts/<target>/: fix each and keep it in fuzz/regressions/<target>/"
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The targets: one file per target in `fuzz/fuzz_targets/`.
fn list_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in fs_read_dir(&dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(target) = name.strip_suffix(".rs") {
            targets.push(target.to_owned());
        }
    }
    targets.sort();
    Ok(targets)
}

fn fs_read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("reading {}", dir.display()))
}

/// `cargo +nightly fuzz` in `fuzz_dir`'s parent, with the pinned cargo-fuzz first on `PATH`.
fn fuzz_command(tool: &CargoTool, fuzz_dir: &Path) -> Command {
    let mut path = std::ffi::OsString::from(tool.bin_dir());
    if let Some(rest) = std::env::var_os("PATH") {
        path.push(":");
        path.push(rest);
    }
    // The rustup proxy, not `$CARGO` (the stable cargo that runs xtask), so `+nightly` works.
    let mut command = Command::new("cargo");
    command
        .arg("+nightly")
        .arg("fuzz")
        .current_dir(fuzz_dir.parent().unwrap_or(fuzz_dir))
        .env("PATH", path);
    // What `cargo run` hands xtask names the stable toolchain; cargo-fuzz would build with it.
    for name in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(name);
    }
    command
}

fn fuzz_one(tool: &CargoTool, fuzz_dir: &Path, target: &str, seconds: u64) -> Result<Stats> {
    let work = fuzz_dir.join("target/corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    for dir in [&work, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let before = artifacts_in(&artifacts)?;
    let mut command = fuzz_command(tool, fuzz_dir);
    command
        .arg("run")
        .args(FUZZ_FLAGS)
        .arg(target)
        .arg(&work)
        .arg(fuzz_dir.join("corpus").join(target));
    let regressions = fuzz_dir.join("regressions").join(target);
    if regressions.is_dir() {
        command.arg(&regressions);
    }
    command
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting cargo fuzz run {target}"))?;
    let log_path = fuzz_dir.join("target").join(format!("fuzz-{target}.log"));
    let mut log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut stats = Stats::default();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("reading libFuzzer's output")?;
            writeln!(log, "{line}").with_context(|| format!("writing {}", log_path.display()))?;
            parse_line(&line, &mut stats);
            // Progress and what matters; the rest is in the log.
            if line.contains("INITED")
                || line.contains("DONE")
                || line.contains("pulse")
                || line.starts_with("==")
                || line.contains("panicked")
                || line.contains("Test unit written")
            {
                println!("{line}");
            }
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    let after = artifacts_in(&artifacts)?;
    stats.crashes = after.iter().filter(|a| !before.contains(a)).count() as u64;
    if !status.success() && stats.crashes == 0 {
        bail!(
            "cargo fuzz run {target} failed ({status}) without a crash; see {}",
            log_path.display()
        );
    }
    Ok(stats)
}

/// Reads `#N ... cov: C ft: F corp: K/...` lines and the final `stat::number_of_executed_units`.
fn parse_line(line: &str, stats: &mut Stats) {
    let field = |name: &str| -> Option<u64> {
        let rest = line.split(name).nth(1)?;
        let value = rest.split_whitespace().next()?;
        value.split('/').next()?.parse().ok()
    };
    if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
        if let Ok(n) = n.trim().parse() {
            stats.executions = n;
        }
        return;
    }
    if let Some(count) = line
        .strip_prefix('#')
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
    {
        stats.executions = stats.executions.max(count);
    }
    if let Some(cov) = field("cov: ") {
        stats.cov = cov;
    }
    if let Some(ft) = field("ft: ") {
        stats.ft = ft;
    }
    if let Some(corpus) = field("corp: ") {
        stats.corpus = corpus;
    }
}

fn artifacts_in(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(fs_read_dir(dir)?.into_iter().map(|e| e.path()).collect())
}

/// Replaces `fuzz/corpus/<target>/` by the smallest set of its files and the working corpus's
/// that keeps their coverage (libFuzzer's `-merge=1`).
fn merge(tool: &CargoTool, fuzz_dir: &Path, target: &str) -> Result<()> {
    let corpus = fuzz_dir.join("corpus").join(target);
    let merged = fuzz_dir.join("target/merged").join(target);
    if merged.exists() {
        std::fs::remove_dir_all(&merged)
            .with_context(|| format!("removing {}", merged.display()))?;
    }
    std::fs::create_dir_all(&merged).with_context(|| format!("creating {}", merged.display()))?;
    let mut command = fuzz_command(tool, fuzz_dir);
    command
        .arg("run")
        .args(FUZZ_FLAGS)
        .arg(target)
        .arg(&merged)
        .arg(&corpus)
        .arg(fuzz_dir.join("target/corpus").join(target))
        .args(["--", "-merge=1", "-timeout=10", "-rss_limit_mb=2048"])
        .stderr(Stdio::null());
    run_checked(&mut command)?;
    std::fs::remove_dir_all(&corpus).with_context(|| format!("removing {}", corpus.display()))?;
    std::fs::rename(&merged, &corpus)
        .with_context(|| format!("moving the merged corpus to {}", corpus.display()))?;
    println!("{}: merged", corpus.display());
    Ok(())
}

fn ledger(fuzz_dir: &Path) -> PathBuf {
    fuzz_dir.join("target/fuzz-ledger.tsv")
}

/// Appends one run to the ledger.
fn record(fuzz_dir: &Path, target: &str, stats: &Stats) -> Result<()> {
    let path = ledger(fuzz_dir);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(
        file,
        "{target}\t{}\t{}\t{}\t{}\t{}",
        stats.executions, stats.cov, stats.ft, stats.corpus, stats.crashes
    )
    .with_context(|| format!("writing {}", path.display()))
}

/// Executions per target over every run in the ledger.
fn totals(fuzz_dir: &Path) -> Result<Vec<(String, u64)>> {
    let path = ledger(fuzz_dir);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut totals: Vec<(String, u64)> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(target), Some(executions)) = (fields.next(), fields.next()) else {
            continue;
        };
        let executions: u64 = executions.parse().unwrap_or(0);
        match totals.iter_mut().find(|(t, _)| t == target) {
            Some((_, total)) => *total += executions,
            None => totals.push((target.to_owned(), executions)),
        }
    }
    Ok(totals)
}
