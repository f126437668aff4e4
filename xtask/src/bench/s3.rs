//! Ours against S3 on moto (started as `cargo xtask test` starts it): create and download of
//! the tree input must stay within 64 MiB peak RSS and 1.5× ours on local disk in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use super::contenders::{Sample, kib_to_mib};
use super::inputs::{Input, count_files};
use super::report::{Report, Series};
use super::reset_dir;
use super::sections::Section;
use crate::project::Project;
use crate::run::measure;
use crate::servers::{Context, Moto, Server, Servers};
use crate::tools::Venv;

const TITLE: &str = "S3 through moto (ours, presigned download)";
/// Ours on moto must take at most this many times ours on local disk.
const S3_VS_LOCAL: f64 = 1.5;
/// Ours must never exceed this peak RSS, in MiB.
const PEAK_RSS_MIB: f64 = 64.0;
const BUCKET: &str = "resource-bench";

/// What the S3 section needs from the run.
#[derive(Debug)]
pub struct Setup<'a> {
    /// The repository.
    pub project: &'a Project,
    /// The test venv, which holds moto.
    pub test_venv: &'a Venv,
    /// The release `resource`, or why it is not available.
    pub ours: &'a Result<PathBuf, String>,
    /// The tree input (`tree_large`), if it was prepared.
    pub input: Option<&'a Input>,
    /// Scratch space.
    pub work: &'a Path,
    /// Timed runs after a warm-up.
    pub runs: usize,
}

/// Runs the section against ours on local disk in `report`; failures become "not available".
pub fn run(setup: &Setup<'_>, report: &Report) -> Section {
    measure_s3(setup, report).unwrap_or_else(|error| Section::unavailable(TITLE, &error))
}

fn measure_s3(setup: &Setup<'_>, report: &Report) -> Result<Section> {
    let binary = setup
        .ours
        .as_ref()
        .map_err(|reason| anyhow!("ours {reason}"))?;
    let input = setup
        .input
        .context("the tree_large input was not part of this run")?;
    let local = report
        .inputs
        .iter()
        .find(|result| result.name == input.name)
        .and_then(|result| result.tools.iter().find(|tool| tool.name == "ours"))
        .context("ours has no local-disk result for tree_large")?;
    let local_create = local.create.as_ref().and_then(|series| series.median_s);
    let local_download = local.download.as_ref().and_then(|series| series.median_s);
    let (Some(local_create), Some(local_download)) = (local_create, local_download) else {
        bail!("ours has no local-disk medians for {}", input.name);
    };

    let context = Context::new(
        setup.project,
        setup.test_venv,
        setup.project.target_dir().join("bench").join("logs"),
    )?;
    let servers: Vec<Box<dyn Server>> = vec![Box::new(Moto)];
    let running = Servers::start(&context, &servers)?;
    let endpoint = running
        .env()
        .find(|(name, _)| *name == "RESOURCE_TEST_S3_ENDPOINT")
        .map(|(_, value)| value.to_owned())
        .context("moto exported no RESOURCE_TEST_S3_ENDPOINT")?;
    // moto accepts an unsigned bucket creation.
    ureq::put(&format!("{endpoint}/{BUCKET}"))
        .send_empty()
        .context("creating the bench bucket on moto")?;

    let work = setup.work.join("s3");
    let mut create = Vec::new();
    let mut download = Vec::new();
    for round in 0..=setup.runs {
        // A fresh prefix per round, as ours on local disk gets a fresh store.
        let created = measure(
            Command::new(binary)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1")
                .arg("create")
                .arg(&input.path)
                .arg("--store")
                .arg(format!("s3://{BUCKET}/bench-{round}"))
                .arg("--endpoint")
                .arg(&endpoint)
                .args(["--json", "--kind", input.kind.flag()]),
        )?;
        let json: Value = serde_json::from_str(created.stdout.trim())
            .with_context(|| format!("`resource create --json` printed {:?}", created.stdout))?;
        let field = |key: &str| -> Result<String> {
            json.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("`resource create --json` output lacks {key:?}: {json}"))
        };
        let root = work.join("root");
        reset_dir(&root)?;
        let downloaded = measure(
            Command::new(binary)
                .env_clear()
                .env("JTRES_ROOT", &root)
                .env(field("envName")?, field("envValue")?)
                .arg("download")
                .arg(&input.path)
                .arg("--root")
                .arg(&root),
        )?;
        let (files, _) = count_files(Path::new(downloaded.stdout.trim()))?;
        if files != input.files {
            bail!(
                "the download from moto has {files} files, the input {}",
                input.files
            );
        }
        if round > 0 {
            create.push(sample(&created));
            download.push(sample(&downloaded));
        }
    }
    drop(running);
    reset_dir(&work)?;

    let create = Series::new(create);
    let download = Series::new(download);
    let create_s = create.median_s.context("no runs")?;
    let download_s = download.median_s.context("no runs")?;
    let create_rss = create.max_peak_rss_mib.context("no runs")?;
    let download_rss = download.max_peak_rss_mib.context("no runs")?;
    let mut section = Section::new(TITLE);
    section.value(
        format!("baseline: create {} on local disk", input.name),
        local_create,
        "s",
    );
    section.value("create on moto", create_s, "s");
    section.value("create on moto, peak RSS", create_rss, "MiB");
    section.value(
        format!("baseline: download {} from local disk", input.name),
        local_download,
        "s",
    );
    section.value("download from moto (presigned URL)", download_s, "s");
    section.value("download from moto, peak RSS", download_rss, "MiB");
    section.target(
        "create: moto / local disk",
        create_s / local_create,
        S3_VS_LOCAL,
    );
    section.target(
        "download: moto / local disk",
        download_s / local_download,
        S3_VS_LOCAL,
    );
    section.target("create on moto: peak RSS MiB", create_rss, PEAK_RSS_MIB);
    section.target(
        "download from moto: peak RSS MiB",
        download_rss,
        PEAK_RSS_MIB,
    );
    Ok(section)
}

fn sample(measured: &crate::run::Measured) -> Sample {
    Sample {
        wall_s: measured.wall.as_secs_f64(),
        op_s: None,
        peak_rss_mib: kib_to_mib(measured.peak_rss_kib),
    }
}
