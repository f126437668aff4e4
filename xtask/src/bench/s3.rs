//! Ours against S3, one section per server, each server started as `cargo xtask test` starts it:
//! moto (in memory, accepts any signature) and s3s-fs (over a directory, checks every signature
//! as S3 does). Create and download of the tree input must stay within 64 MiB peak RSS and 1.5×
//! ours on local disk in the same run.
//!
//! Both servers keep their data on tmpfs under the bench work directory, as the local-disk store
//! does, so the comparison measures the S3 protocol and not a disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, anyhow, bail};

use super::contenders::{CreatedResource, Sample};
use super::inputs::{Input, count_files};
use super::report::{Report, Series};
use super::sections::Section;
use super::{progress, reset_dir};
use crate::project::Project;
use crate::run::{header, measure};
use crate::servers::{Context, Moto, S3sFs, Server, Servers};
use crate::tools::Venv;

/// Ours on S3 must take at most this many times ours on local disk.
const S3_VS_LOCAL: f64 = 1.5;
/// Ours must never exceed this peak RSS, in MiB.
const PEAK_RSS_MIB: f64 = 64.0;
/// The bucket made on moto; s3s-fs comes with its own, made before it starts.
const MOTO_BUCKET: &str = "resource-bench";
/// moto accepts any credentials; these only have to be present.
const MOTO_KEY: &str = "test";

/// What the S3 sections need from the run.
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
    /// Scratch space, on tmpfs.
    pub work: &'a Path,
    /// Timed runs after a warm-up.
    pub runs: usize,
}

/// An S3 server ours is measured through.
#[derive(Debug, Clone, Copy)]
enum S3Server {
    /// moto: accepts any signature; objects beyond about 5 MiB are spooled to temporary files.
    Moto,
    /// s3s-fs: checks every request's signature and keeps objects as files in its data directory.
    S3sFs,
}

impl S3Server {
    /// Every server, in the order their sections appear.
    const ALL: [Self; 2] = [Self::Moto, Self::S3sFs];

    /// The name in labels and target names.
    fn name(self) -> &'static str {
        match self {
            Self::Moto => "moto",
            Self::S3sFs => "s3s-fs",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Moto => "S3 through moto (ours, presigned download)",
            Self::S3sFs => "S3 through s3s-fs (ours, presigned download, signatures checked)",
        }
    }

    /// The server as `cargo xtask test` starts it.
    fn server(self) -> Box<dyn Server> {
        match self {
            Self::Moto => Box::new(Moto),
            Self::S3sFs => Box::new(S3sFs),
        }
    }

    /// Where and as whom ours reaches the running server, making the bucket where the server
    /// does not come with one.
    fn account(self, running: &Servers) -> Result<S3Account> {
        match self {
            Self::Moto => {
                let endpoint = exported(running, "RESOURCE_TEST_S3_ENDPOINT")?;
                // moto accepts an unsigned bucket creation.
                ureq::put(&format!("{endpoint}/{MOTO_BUCKET}"))
                    .send_empty()
                    .context("creating the bench bucket on moto")?;
                Ok(S3Account {
                    endpoint,
                    access_key: MOTO_KEY.to_owned(),
                    secret_key: MOTO_KEY.to_owned(),
                    bucket: MOTO_BUCKET.to_owned(),
                })
            }
            Self::S3sFs => Ok(S3Account {
                endpoint: exported(running, "RESOURCE_TEST_S3S_ENDPOINT")?,
                access_key: exported(running, "RESOURCE_TEST_S3S_ACCESS_KEY")?,
                secret_key: exported(running, "RESOURCE_TEST_S3S_SECRET_KEY")?,
                bucket: exported(running, "RESOURCE_TEST_S3S_BUCKET")?,
            }),
        }
    }
}

/// Where ours finds one running S3 server, and the credentials it accepts.
#[derive(Debug)]
struct S3Account {
    endpoint: String,
    access_key: String,
    secret_key: String,
    bucket: String,
}

/// What every server's section compares with: ours and its local-disk medians on the input.
#[derive(Debug)]
struct LocalBaseline<'a> {
    binary: &'a Path,
    input: &'a Input,
    create_s: f64,
    download_s: f64,
}

/// Runs one section per server against ours on local disk in `report`; whatever keeps a server
/// from being measured makes its section "not available".
pub fn run(setup: &Setup<'_>, report: &Report) -> Vec<Section> {
    let baseline = match local_baseline(setup, report) {
        Ok(baseline) => baseline,
        Err(error) => {
            return S3Server::ALL
                .into_iter()
                .map(|server| Section::unavailable(server.title(), &error))
                .collect();
        }
    };
    S3Server::ALL
        .into_iter()
        .map(|server| {
            header(&format!("S3 through {}", server.name()));
            measure_on(setup, &baseline, server)
                .unwrap_or_else(|error| Section::unavailable(server.title(), &error))
        })
        .collect()
}

fn local_baseline<'a>(setup: &Setup<'a>, report: &Report) -> Result<LocalBaseline<'a>> {
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
    let create_s = local.create.as_ref().and_then(|series| series.median_s);
    let download_s = local.download.as_ref().and_then(|series| series.median_s);
    let (Some(create_s), Some(download_s)) = (create_s, download_s) else {
        bail!("ours has no local-disk medians for {}", input.name);
    };
    Ok(LocalBaseline {
        binary,
        input,
        create_s,
        download_s,
    })
}

fn measure_on(
    setup: &Setup<'_>,
    baseline: &LocalBaseline<'_>,
    server: S3Server,
) -> Result<Section> {
    let LocalBaseline { binary, input, .. } = *baseline;
    let name = server.name();
    let work = setup.work.join("s3").join(name);
    reset_dir(&work)?;
    // The server's data directory (s3s-fs's buckets, moto's spooled objects) is made inside the
    // work directory, on tmpfs like the local-disk store it is compared with.
    let context = Context::new_in(
        setup.project,
        setup.test_venv,
        setup.project.target_dir().join("bench").join("logs"),
        &work,
    )?;
    let running = Servers::start(&context, &[server.server()])?;
    let account = server.account(&running)?;

    let root = work.join("root");
    let mut create = Vec::new();
    let mut download = Vec::new();
    for round in 0..=setup.runs {
        progress(if round == 0 { "warm-up:" } else { " run" });
        // A fresh prefix per round, as ours on local disk gets a fresh store: an identical
        // create into the same store would skip the upload.
        let created = measure(
            Command::new(binary)
                .env("AWS_ACCESS_KEY_ID", &account.access_key)
                .env("AWS_SECRET_ACCESS_KEY", &account.secret_key)
                .env("AWS_REGION", "us-east-1")
                .arg("create")
                .arg(&input.path)
                .arg("--store")
                .arg(format!("s3://{}/bench-{round}", account.bucket))
                .arg("--endpoint")
                .arg(&account.endpoint)
                .args(["--json", "--kind", input.kind.flag()]),
        )?;
        let resource = CreatedResource::parse(&created.stdout)?;
        reset_dir(&root)?;
        // Workers have no credentials: the download goes through the presigned URL alone.
        let downloaded = measure(
            Command::new(binary)
                .env_clear()
                .env("JTRES_ROOT", &root)
                .env(&resource.env_name, &resource.env_value)
                .arg("download")
                .arg(&input.path)
                .arg("--root")
                .arg(&root),
        )?;
        let (files, _) = count_files(Path::new(downloaded.stdout.trim()))?;
        if files != input.files {
            bail!(
                "the download from {name} has {files} files, the input {}",
                input.files
            );
        }
        if round > 0 {
            create.push(Sample::of(&created, None));
            download.push(Sample::of(&downloaded, None));
        }
    }
    println!();
    // Servers stop before their data directory goes.
    drop(running);
    drop(context);
    reset_dir(&work)?;

    let create = Series::new(create);
    let download = Series::new(download);
    let create_s = create.median_s.context("no runs")?;
    let download_s = download.median_s.context("no runs")?;
    let create_rss = create.max_peak_rss_mib.context("no runs")?;
    let download_rss = download.max_peak_rss_mib.context("no runs")?;
    let mut section = Section::new(server.title());
    section.value(
        format!("baseline: create {} on local disk", input.name),
        baseline.create_s,
        "s",
    );
    section.value(format!("create on {name}"), create_s, "s");
    section.value(format!("create on {name}, peak RSS"), create_rss, "MiB");
    section.value(
        format!("baseline: download {} from local disk", input.name),
        baseline.download_s,
        "s",
    );
    section.value(
        format!("download from {name} (presigned URL)"),
        download_s,
        "s",
    );
    section.value(
        format!("download from {name}, peak RSS"),
        download_rss,
        "MiB",
    );
    section.target(
        format!("create: {name} / local disk"),
        create_s / baseline.create_s,
        S3_VS_LOCAL,
    );
    section.target(
        format!("download: {name} / local disk"),
        download_s / baseline.download_s,
        S3_VS_LOCAL,
    );
    section.target(
        format!("create on {name}: peak RSS MiB"),
        create_rss,
        PEAK_RSS_MIB,
    );
    section.target(
        format!("download from {name}: peak RSS MiB"),
        download_rss,
        PEAK_RSS_MIB,
    );
    Ok(section)
}

/// The value of the variable `name` a running server exported.
fn exported(running: &Servers, name: &str) -> Result<String> {
    running
        .env()
        .find(|(exported, _)| *exported == name)
        .map(|(_, value)| value.to_owned())
        .with_context(|| format!("the server exported no {name}"))
}
