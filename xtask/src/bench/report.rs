//! Medians, ratios and targets: the table on the terminal and `target/bench/results.json`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::contenders::{Sample, kib_to_mib};
use super::inputs::{Input, Kind};

/// Ours must create in at most this many times `md5sum` of its archive.
const CREATE_VS_MD5SUM: f64 = 1.25;
/// Ours must create in at most this fraction of Toil's time.
const CREATE_VS_TOIL: f64 = 0.4;
/// Ours must download in at most this many times `md5sum` of its archive.
const DOWNLOAD_VS_MD5SUM: f64 = 1.3;
/// Ours must download in at most this fraction of Toil's time.
const DOWNLOAD_VS_TOIL: f64 = 0.5;
/// Ours must never exceed this peak RSS, in MiB.
const PEAK_RSS_MIB: f64 = 64.0;

/// Everything one `cargo xtask bench` measured.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    /// Whether `--quick` was given.
    pub quick: bool,
    /// Measured runs per input and tool (after one warm-up).
    pub runs: usize,
    /// Peak RSS `wait4` reports for `true`, in MiB: every child inherits xtask's own peak RSS
    /// at `exec`, so no measured peak can be lower than this.
    pub rss_floor_mib: f64,
    /// One entry per input.
    pub inputs: Vec<InputResult>,
}

impl Report {
    /// An empty report.
    pub(super) fn new(quick: bool, runs: usize, rss_floor_mib: f64) -> Self {
        Self {
            quick,
            runs,
            rss_floor_mib,
            inputs: Vec::new(),
        }
    }

    /// Prints the table of medians, then ratios and targets.
    pub(super) fn print(&self) {
        crate::run::header(&format!(
            "medians of {} runs (seconds; peak RSS in MiB is the maximum over runs)",
            self.runs
        ));
        println!(
            "(peak RSS from wait4 includes xtask's own, inherited at exec: floor {:.1} MiB)",
            self.rss_floor_mib
        );
        println!(
            "{:<14} {:<18} {:>10} {:>10} {:>11} {:>10}",
            "input", "tool", "create s", "MiB", "download s", "MiB"
        );
        for input in &self.inputs {
            input.print_rows();
        }
        crate::run::header("targets (ours)");
        for input in &self.inputs {
            input.print_targets();
        }
    }

    /// Writes the report as pretty JSON, making the directory if needed.
    pub(super) fn write_json(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Samples of one measurement and their summary.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Series {
    /// Median of [`Sample::seconds`].
    pub median_s: Option<f64>,
    /// Median wall time of the whole process.
    pub median_wall_s: Option<f64>,
    /// Largest peak RSS over the samples, in MiB.
    pub max_peak_rss_mib: Option<f64>,
    /// Every measured sample.
    pub samples: Vec<Sample>,
}

impl Series {
    /// Summarises `samples`.
    pub(super) fn new(samples: Vec<Sample>) -> Self {
        Self {
            median_s: median(samples.iter().map(Sample::seconds).collect()),
            median_wall_s: median(samples.iter().map(|s| s.wall_s).collect()),
            max_peak_rss_mib: samples.iter().map(|s| s.peak_rss_mib).reduce(f64::max),
            samples,
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub(super) fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        len if len % 2 == 1 => Some(values[middle]),
        _ => Some(f64::midpoint(values[middle - 1], values[middle])),
    }
}

/// One tool on one input.
#[derive(Debug, Serialize)]
pub(super) struct ToolResult {
    /// The tool's name.
    pub name: &'static str,
    /// Why it was not measured, if it was not.
    pub not_available: Option<String>,
    /// Create (pack and store) measurements.
    pub create: Option<Series>,
    /// Download (fetch and unpack) measurements.
    pub download: Option<Series>,
}

impl ToolResult {
    /// A tool that was measured.
    pub(super) fn measured(name: &'static str, create: Series, download: Series) -> Self {
        Self {
            name,
            not_available: None,
            create: Some(create),
            download: Some(download),
        }
    }

    /// A tool that could not be measured, and why.
    pub(super) fn unavailable(name: &'static str, reason: &str) -> Self {
        Self {
            name,
            not_available: Some(reason.to_owned()),
            create: None,
            download: None,
        }
    }
}

/// `md5sum` of one archive: the floor for create and download.
#[derive(Debug, Serialize)]
pub(super) struct Md5Result {
    /// Whose archive was hashed (`ours`, or `zip` while ours is not available).
    pub archive_of: &'static str,
    /// Its size in bytes.
    pub archive_bytes: u64,
    /// The measurements.
    pub series: Series,
}

/// One checked target.
#[derive(Debug, Serialize)]
pub(super) struct Target {
    /// What is compared, e.g. `create: ours / md5sum`.
    pub what: String,
    /// The measured ratio or value.
    pub value: f64,
    /// The largest value that meets the target.
    pub limit: f64,
    /// Whether `value <= limit`.
    pub met: bool,
}

/// Everything measured on one input.
#[derive(Debug, Serialize)]
pub(super) struct InputResult {
    /// Input name.
    pub name: &'static str,
    /// The shipped directory.
    pub path: String,
    /// How it was shipped.
    pub kind: Kind,
    /// Files in it.
    pub files: u64,
    /// Bytes in it.
    pub bytes: u64,
    /// `md5sum` of an archive.
    pub md5sum: Md5Result,
    /// Every tool, ours first.
    pub tools: Vec<ToolResult>,
    /// Ours against the targets; empty when ours is not available.
    pub targets: Vec<Target>,
}

impl InputResult {
    /// A result for `input` with its `md5sum` measurements and no tools yet.
    pub(super) fn new(input: &Input, md5sum: Md5Result) -> Self {
        Self {
            name: input.name,
            path: input.path.display().to_string(),
            kind: input.kind,
            files: input.files,
            bytes: input.bytes,
            md5sum,
            tools: Vec::new(),
            targets: Vec::new(),
        }
    }

    fn tool(&self, name: &str) -> Option<&ToolResult> {
        self.tools
            .iter()
            .find(|tool| tool.name == name && tool.not_available.is_none())
    }

    /// Fills [`Self::targets`] from ours, md5sum and Toil (nothing when ours is missing).
    pub(super) fn check_targets(&mut self) {
        let seconds = |series: Option<&Series>| series.and_then(|s| s.median_s);
        let Some(ours) = self.tool("ours") else {
            return;
        };
        let toil = self.tool("toil");
        let md5 = self.md5sum.series.median_s;
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let ours_create = seconds(ours.create.as_ref());
        let ours_download = seconds(ours.download.as_ref());
        let toil_create = seconds(toil.and_then(|t| t.create.as_ref()));
        let toil_download = seconds(toil.and_then(|t| t.download.as_ref()));
        let peak = [ours.create.as_ref(), ours.download.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|s| s.max_peak_rss_mib)
            .reduce(f64::max);
        let checks = [
            (
                "create: ours / md5sum",
                ratio(ours_create, md5),
                CREATE_VS_MD5SUM,
            ),
            (
                "create: ours / toil",
                ratio(ours_create, toil_create),
                CREATE_VS_TOIL,
            ),
            (
                "download: ours / md5sum",
                ratio(ours_download, md5),
                DOWNLOAD_VS_MD5SUM,
            ),
            (
                "download: ours / toil",
                ratio(ours_download, toil_download),
                DOWNLOAD_VS_TOIL,
            ),
            ("peak RSS MiB: ours", peak, PEAK_RSS_MIB),
        ];
        self.targets = checks
            .into_iter()
            .filter_map(|(what, value, limit)| {
                value.map(|value| Target {
                    what: what.to_owned(),
                    value,
                    limit,
                    met: value <= limit,
                })
            })
            .collect();
    }

    fn print_rows(&self) {
        for tool in &self.tools {
            match (&tool.not_available, &tool.create, &tool.download) {
                (Some(reason), _, _) => {
                    println!("{:<14} {:<18} {}", self.name, tool.name, short(reason));
                }
                (None, Some(create), Some(download)) => {
                    let label = if tool.name == "toil" {
                        "toil (in-process)"
                    } else {
                        tool.name
                    };
                    row(self.name, label, create, download, |s| s.median_s);
                    if tool.name == "toil" {
                        row(self.name, "toil (process)", create, download, |s| {
                            s.median_wall_s
                        });
                    }
                }
                _ => {}
            }
        }
        let md5 = &self.md5sum.series;
        println!(
            "{:<14} {:<18} {:>10} {:>10} {:>11} {:>10}",
            self.name,
            format!("md5sum ({})", self.md5sum.archive_of),
            seconds_cell(md5.median_s),
            mib_cell(md5.max_peak_rss_mib),
            "-",
            "-"
        );
    }

    fn print_targets(&self) {
        println!(
            "{}: {} files, {:.1} MiB; archive hashed by md5sum ({}): {:.1} MiB",
            self.name,
            self.files,
            kib_to_mib(self.bytes / 1024),
            self.md5sum.archive_of,
            kib_to_mib(self.md5sum.archive_bytes / 1024)
        );
        if let Some(reason) = self
            .tools
            .iter()
            .find(|tool| tool.name == "ours")
            .and_then(|tool| tool.not_available.as_ref())
        {
            println!("  ours {reason}");
            return;
        }
        for target in &self.targets {
            println!(
                "  {:<24} {:>8.2}  (target <= {:.2})  {}",
                target.what,
                target.value,
                target.limit,
                if target.met { "met" } else { "NOT MET" }
            );
        }
    }
}

fn row(
    input: &str,
    label: &str,
    create: &Series,
    download: &Series,
    pick: impl Fn(&Series) -> Option<f64>,
) {
    println!(
        "{input:<14} {label:<18} {:>10} {:>10} {:>11} {:>10}",
        seconds_cell(pick(create)),
        mib_cell(create.max_peak_rss_mib),
        seconds_cell(pick(download)),
        mib_cell(download.max_peak_rss_mib)
    );
}

fn seconds_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

fn mib_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// The first line of `text`, cut to fit a table row.
fn short(text: &str) -> String {
    const MAX: usize = 60;
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}… (see below)", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
