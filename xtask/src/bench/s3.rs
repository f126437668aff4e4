//! Ours against S3, one section per server, each server started as `cargo xtask test` starts it:
//! moto (in memory, accepts any signature) and s3s-fs (over a directory, checks every signature
//! as S3 does). Create and download of the tree input must stay within 64 MiB peak RSS and 1.5×
//! ours on local disk, and within 1.2× curl against the same server in the same round: the
//! download against `curl | md5sum` of the same presigned URL, the create against one `curl -T`
//! PUT (signed with `--aws-sigv4`) of the same archive bytes. curl has no multipart upload, so
//! where ours must upload in parts the baseline is still one PUT.
//!
//! The local-disk figures are measured inside each section, alternating round by round with the
//! S3 ones (local, S3, local, S3, …), and the medians of these interleaved runs are compared. On a
//! small machine that others share, the load drifts over minutes, so figures from the main table,
//! measured earlier, would compare two moments rather than two stores.
//!
//! Each round also times ours downloading as one stream (`--parallel-ranges 1`), which shows what
//! parallel ranges change on each server, and `curl` fetching the same presigned URL to
//! `/dev/null`: the server's own pace, shown without a target, so that a reader can tell whether
//! the server or ours bounds the download. Two more figures tell what the server itself costs:
//! `curl` of the archive's tail beside `curl | md5sum`, the 2 requests at the least of a reader
//! that checks the central directory before it writes (on moto every request costs a pass over
//! the whole object), and the server process's own CPU time during ours' create and download and
//! during curl's PUT and `curl | md5sum` (a multipart upload costs a server more than one PUT of
//! the same bytes, and on 2 cores that shows as wall time).
//!
//! Both servers keep their data on tmpfs under the bench work directory, as the local-disk store
//! does, so the comparison measures the S3 protocol and not a disk. Every round uploads under a
//! fresh prefix, and its objects are deleted through the server's S3 API as soon as the round is
//! measured, so that a server holds one round's data at a time rather than every round's until it
//! stops (several GiB of tmpfs on the full input).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Deserialize;

use super::contenders::{Contender, CreatedResource, Ours, Sample};
use super::inputs::{Input, count_files};
use super::report::{Series, median};
use super::sections::Section;
use super::{progress, reset_dir};
use crate::project::Project;
use crate::run::{Measured, header, measure, output_checked};
use crate::servers::{Context, Moto, S3sFs, Server, Servers};
use crate::tools::Venv;

/// Ours on S3 must take at most this many times ours on local disk.
const S3_VS_LOCAL: f64 = 1.5;
/// Ours must take at most this many times curl against the same server in the same round: a
/// download against `curl | md5sum` of the same URL, a create against one `curl -T` PUT of the
/// same archive bytes (a baseline that shares the server and the cores with ours).
const S3_VS_CURL: f64 = 1.2;
/// Ours must never exceed this peak RSS, in MiB.
const PEAK_RSS_MIB: f64 = 64.0;
/// The bucket made on moto; s3s-fs comes with its own, made before it starts.
const MOTO_BUCKET: &str = "resource-bench";
/// moto accepts any credentials; these only have to be present.
const MOTO_KEY: &str = "test";
/// The region ours and the deleting script sign for; neither server checks it against anything.
const REGION: &str = "us-east-1";

/// What the S3 sections need from the run.
#[derive(Debug)]
pub(super) struct Setup<'a> {
    /// The repository.
    pub project: &'a Project,
    /// The test venv, which holds moto and boto3.
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

impl S3Account {
    /// Sets the variables through which both ours and boto3 find the credentials.
    fn credentials<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_REGION", REGION)
    }
}

/// Runs one section per server; whatever keeps a server from being measured makes its section
/// "not available".
pub(super) fn run(setup: &Setup<'_>) -> Vec<Section> {
    let binary_and_input = setup
        .ours
        .as_ref()
        .map_err(|reason| anyhow!("ours {reason}"))
        .and_then(|binary| {
            let input = setup
                .input
                .context("the tree_large input was not part of this run")?;
            Ok((binary, input))
        });
    let (binary, input) = match binary_and_input {
        Ok(found) => found,
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
            header(&format!(
                "S3 through {}, interleaved with local disk",
                server.name()
            ));
            measure_on(setup, binary, input, server)
                .unwrap_or_else(|error| Section::unavailable(server.title(), &error))
        })
        .collect()
}

/// Every timed sample of one server's section, one per measured round.
#[derive(Debug, Default)]
struct SectionSamples {
    local_create: Vec<Sample>,
    local_download: Vec<Sample>,
    server_create: Vec<Sample>,
    server_download: Vec<Sample>,
    one_stream_download: Vec<Sample>,
    curl_download: Vec<Sample>,
    curl_md5: Vec<Sample>,
    curl_tail_md5: Vec<Sample>,
    curl_put: Vec<Sample>,
    server_cpu: Vec<ServerCpu>,
}

/// The server's CPU time, in seconds, during the steps of one round.
#[derive(Debug, Clone, Copy)]
struct ServerCpu {
    create: f64,
    curl_put: f64,
    download: f64,
    curl_md5: f64,
}

fn measure_on(
    setup: &Setup<'_>,
    binary: &Path,
    input: &Input,
    server: S3Server,
) -> Result<Section> {
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
    let deleter = PrefixDeleter {
        python: setup.test_venv.python(),
        script: setup
            .project
            .xtask_dir()
            .join("bench")
            .join("s3_delete_prefix.py"),
        account: &account,
    };

    let mut local = Ours::new(binary.to_path_buf());
    let local_dir = work.join("local");
    let root = work.join("root");
    let mut samples = SectionSamples::default();
    for round in 0..=setup.runs {
        let warm_up = round == 0;
        progress(if warm_up { "warm-up:" } else { " run:" });
        progress(" local");
        let (local_create, local_download) = local_round(&mut local, input, &local_dir)?;
        progress(&format!(" {name}"));
        let on_server = server_round(
            binary,
            input,
            &account,
            &deleter,
            &format!("bench-{round}"),
            &root,
            &|| running.cpu_seconds(),
        )
        .with_context(|| format!("round {round} on {name}"))?;
        if !warm_up {
            samples.local_create.push(local_create);
            samples.local_download.push(local_download);
            samples.server_create.push(on_server.create);
            samples.server_download.push(on_server.download);
            samples
                .one_stream_download
                .push(on_server.one_stream_download);
            samples.curl_download.push(on_server.curl_download);
            samples.curl_md5.push(on_server.curl_md5);
            samples.curl_tail_md5.push(on_server.curl_tail_md5);
            samples.curl_put.push(on_server.curl_put);
            samples.server_cpu.push(on_server.server_cpu);
        }
    }
    println!();
    // Servers stop before their data directory goes.
    drop(running);
    drop(context);
    reset_dir(&work)?;
    section_of(server, input, samples)
}

/// Ours creating into and downloading from a fresh local-disk store under `dir`, as in the main
/// table; everything it made is removed before the server's half of the round.
fn local_round(ours: &mut Ours, input: &Input, dir: &Path) -> Result<(Sample, Sample)> {
    reset_dir(dir)?;
    let create = ours.create(input, dir)?;
    let (download, unpacked) = ours.download(input, dir)?;
    check_file_count(input, &unpacked, "local disk")?;
    fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    Ok((create, download))
}

/// The samples of one round on a server.
#[derive(Debug)]
struct ServerRound {
    create: Sample,
    download: Sample,
    one_stream_download: Sample,
    curl_download: Sample,
    curl_md5: Sample,
    /// `curl | md5sum` with a `curl` of the object's last 64 KiB beside it.
    curl_tail_md5: Sample,
    /// One `curl -T` PUT of the archive's bytes, signed with `--aws-sigv4`.
    curl_put: Sample,
    server_cpu: ServerCpu,
}

/// Ours creating into `s3://BUCKET/PREFIX` and downloading through the presigned URL, then curl
/// fetching that URL; the round's objects are deleted before it returns.
fn server_round(
    binary: &Path,
    input: &Input,
    account: &S3Account,
    deleter: &PrefixDeleter<'_>,
    prefix: &str,
    root: &Path,
    server_cpu_seconds: &dyn Fn() -> Result<f64>,
) -> Result<ServerRound> {
    // What `step` cost the server, beside its result.
    let on_server = |step: &mut dyn FnMut() -> Result<Measured>| -> Result<(Measured, f64)> {
        let before = server_cpu_seconds()?;
        let measured = step()?;
        Ok((measured, server_cpu_seconds()? - before))
    };
    // A fresh prefix per round, as ours on local disk gets a fresh store: an identical create
    // into the same store would skip the upload.
    let (created, create_cpu) = on_server(&mut || {
        measure(
            account
                .credentials(&mut Command::new(binary))
                .arg("create")
                .arg(&input.path)
                .arg("--store")
                .arg(format!("s3://{}/{prefix}", account.bucket))
                .arg("--endpoint")
                .arg(&account.endpoint)
                .args(["--json", "--kind", input.kind.flag()]),
        )
    })?;
    let resource = CreatedResource::parse(&created.stdout)?;
    // Workers have no credentials: the download goes through the presigned URL alone. Once as
    // users get it, once as one stream (`--parallel-ranges 1`), to show what ranges change.
    let download = |extra: &[&str]| -> Result<(Sample, f64)> {
        reset_dir(root)?;
        let (downloaded, cpu) = on_server(&mut || {
            measure(
                Command::new(binary)
                    .env_clear()
                    .env("JTRES_ROOT", root)
                    .env(&resource.env_name, &resource.env_value)
                    .arg("download")
                    .arg(&input.path)
                    .arg("--root")
                    .arg(root)
                    .args(extra),
            )
        })?;
        check_file_count(input, Path::new(downloaded.stdout.trim()), "the server")?;
        fs::remove_dir_all(root).with_context(|| format!("cannot remove {}", root.display()))?;
        Ok((Sample::of(&downloaded, None), cpu))
    };
    let (downloaded, download_cpu) = download(&[])?;
    let (one_stream, _) = download(&["--parallel-ranges", "1"])?;
    // `--fail` turns an error status into a failure instead of a quick, misleading time for an
    // error page; the byte count it writes is checked against the stored object below.
    let fetched = measure(
        Command::new("curl")
            .args(["--silent", "--show-error", "--fail"])
            .args(["--output", "/dev/null", "--write-out", "%{size_download}"])
            .arg(&resource.url),
    )
    .context("curl fetching the presigned URL")?;
    // The least any verifying client does: fetch and hash, writing nothing. Ours also unpacks,
    // so this shows how much of the time the server and the hash alone take on this machine.
    let (hashed, md5_cpu) = on_server(&mut || {
        measure(
            Command::new("sh")
                .args([
                    "-c",
                    "curl --silent --show-error --fail \"$1\" | md5sum",
                    "sh",
                ])
                .arg(&resource.url),
        )
        .context("curl | md5sum of the presigned URL")
    })?;
    // The same with the archive's tail fetched beside it: the 2 requests, at the least, of a
    // reader that checks every name and size in the central directory before it writes a byte,
    // as ours does. On a server whose every request costs a pass over the whole object (moto),
    // this and not one request is the least such a reader can take.
    let tail_and_hashed = measure(
        Command::new("bash")
            .args([
                "-o",
                "pipefail",
                "-c",
                "curl --silent --show-error --fail --range -65536 --output /dev/null \"$1\" & \
                 tail=$!; curl --silent --show-error --fail \"$1\" | md5sum && wait \"$tail\"",
                "bash",
            ])
            .arg(&resource.url),
    )
    .context("curl of the tail beside curl | md5sum of the presigned URL")?;
    for (what, measured) in [
        ("curl | md5sum", &hashed),
        ("curl of the tail beside curl | md5sum", &tail_and_hashed),
    ] {
        if !measured.stdout.starts_with(&resource.content_hash) {
            bail!(
                "{what} gave {:?}, not the content hash {}",
                measured.stdout.trim(),
                resource.content_hash
            );
        }
    }
    // The archive's bytes, fetched untimed, then PUT by curl in one request under the same
    // prefix (so the round's deletion removes it), signed as ours signs: the least a create can
    // cost on this server. curl has no multipart upload, so a large archive, which ours uploads
    // in parts, is compared with curl's single PUT of the same bytes.
    let archive = root.with_extension("archive");
    output_checked(
        Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--output"])
            .arg(&archive)
            .arg(&resource.url),
    )
    .context("curl fetching the archive for the PUT baseline")?;
    let (put, put_cpu) = on_server(&mut || {
        measure(
            Command::new("curl")
                .args([
                    "--silent",
                    "--show-error",
                    "--fail",
                    "--output",
                    "/dev/null",
                ])
                .arg("--aws-sigv4")
                .arg(format!("aws:amz:{REGION}:s3"))
                .arg("--user")
                .arg(format!("{}:{}", account.access_key, account.secret_key))
                // s3s-fs, as S3, requires the payload's hash header; curl signs the header it is
                // given but does not add it itself.
                .args(["--header", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
                .arg("--upload-file")
                .arg(&archive)
                .arg(format!(
                    "{}/{}/{prefix}/curl-put",
                    account.endpoint.trim_end_matches('/'),
                    account.bucket
                )),
        )
        .context("curl -T of the archive")
    })?;
    fs::remove_file(&archive).with_context(|| format!("cannot remove {}", archive.display()))?;
    let deleted = deleter.delete(&format!("{prefix}/"))?;

    // The store decides where under the prefix the archive lives (`PREFIX/shared/` today); its
    // key ends in the path hash, and its record's key does not.
    let stored = deleted
        .iter()
        .find(|object| object.key.rsplit('/').next() == Some(resource.path_hash.as_str()))
        .with_context(|| {
            format!(
                "the server listed no object named {} under {prefix}/ to delete",
                resource.path_hash
            )
        })?;
    let archive_key = &stored.key;
    let fetched_bytes: u64 = fetched
        .stdout
        .trim()
        .parse()
        .with_context(|| format!("curl reported {:?} bytes", fetched.stdout))?;
    if fetched_bytes != stored.size {
        bail!(
            "curl fetched {fetched_bytes} bytes of {archive_key}, which holds {}",
            stored.size
        );
    }
    Ok(ServerRound {
        create: Sample::of(&created, None),
        download: downloaded,
        one_stream_download: one_stream,
        curl_download: Sample::of(&fetched, None),
        curl_md5: Sample::of(&hashed, None),
        curl_tail_md5: Sample::of(&tail_and_hashed, None),
        curl_put: Sample::of(&put, None),
        server_cpu: ServerCpu {
            create: create_cpu,
            curl_put: put_cpu,
            download: download_cpu,
            curl_md5: md5_cpu,
        },
    })
}

/// Fails unless the tree ours unpacked at `unpacked` has as many files as the input.
fn check_file_count(input: &Input, unpacked: &Path, from: &str) -> Result<()> {
    let (files, _) = count_files(unpacked)?;
    if files != input.files {
        bail!(
            "the download from {from} has {files} files, the input {}",
            input.files
        );
    }
    Ok(())
}

/// Deletes a round's objects through the server's S3 API, with boto3 from the test venv
/// (`xtask/bench/s3_delete_prefix.py`): moto keeps objects in its own process, so only a
/// request to it frees them.
#[derive(Debug)]
struct PrefixDeleter<'a> {
    python: PathBuf,
    script: PathBuf,
    account: &'a S3Account,
}

/// What `s3_delete_prefix.py` prints.
#[derive(Debug, Deserialize)]
struct DeletedObjects {
    deleted: Vec<DeletedObject>,
}

/// One object the script deleted.
#[derive(Debug, Deserialize)]
struct DeletedObject {
    key: String,
    size: u64,
}

impl PrefixDeleter<'_> {
    /// Deletes every object whose key starts with `prefix` and returns what was deleted; fails
    /// if anything is left.
    fn delete(&self, prefix: &str) -> Result<Vec<DeletedObject>> {
        let printed = output_checked(
            self.account
                .credentials(&mut Command::new(&self.python))
                .arg(&self.script)
                .arg(&self.account.endpoint)
                .arg(&self.account.bucket)
                .arg(prefix),
        )
        .with_context(|| format!("deleting the objects under {prefix}"))?;
        let parsed: DeletedObjects = serde_json::from_str(printed.trim())
            .with_context(|| format!("{} printed {printed:?}", self.script.display()))?;
        Ok(parsed.deleted)
    }
}

/// The medians and peaks of one server's section, its baselines and its targets.
fn section_of(server: S3Server, input: &Input, samples: SectionSamples) -> Result<Section> {
    let name = server.name();
    let local_create = Summary::of(samples.local_create)?;
    let local_download = Summary::of(samples.local_download)?;
    let create = Summary::of(samples.server_create)?;
    let download = Summary::of(samples.server_download)?;
    let one_stream = Summary::of(samples.one_stream_download)?;
    let curl_download = Summary::of(samples.curl_download)?;
    let curl_md5 = Summary::of(samples.curl_md5)?;
    let curl_tail_md5 = Summary::of(samples.curl_tail_md5)?;
    let curl_put = Summary::of(samples.curl_put)?;
    let server_cpu = |step: fn(&ServerCpu) -> f64| {
        median(samples.server_cpu.iter().map(step).collect()).context("no runs")
    };
    let (server_create_cpu, server_put_cpu) = (
        server_cpu(|cpu| cpu.create)?,
        server_cpu(|cpu| cpu.curl_put)?,
    );
    let (server_download_cpu, server_md5_cpu) = (
        server_cpu(|cpu| cpu.download)?,
        server_cpu(|cpu| cpu.curl_md5)?,
    );

    let mut section = Section::new(server.title());
    section.value(
        format!("baseline: create {} on local disk", input.name),
        local_create.median_s,
        "s",
    );
    section.value(format!("create on {name}"), create.median_s, "s");
    section.value(
        format!("create on {name}, peak RSS"),
        create.peak_rss_mib,
        "MiB",
    );
    section.value(
        format!("baseline: download {} from local disk", input.name),
        local_download.median_s,
        "s",
    );
    section.value(
        format!("download from {name} (presigned URL)"),
        download.median_s,
        "s",
    );
    section.value(
        format!("download from {name}, peak RSS"),
        download.peak_rss_mib,
        "MiB",
    );
    section.value(
        format!("download from {name}, one stream (--parallel-ranges 1)"),
        one_stream.median_s,
        "s",
    );
    section.value(
        format!("download from {name} by curl (same URL)"),
        curl_download.median_s,
        "s",
    );
    section.value(
        format!("download from {name}: ours / curl"),
        download.median_s / curl_download.median_s,
        "x",
    );
    section.value(
        format!("curl | md5sum from {name} (fetch and hash only)"),
        curl_md5.median_s,
        "s",
    );
    section.value(
        format!("curl of the tail beside curl | md5sum from {name} (2 requests)"),
        curl_tail_md5.median_s,
        "s",
    );
    section.value(
        format!("download from {name}: ours / curl of the tail beside curl | md5sum"),
        download.median_s / curl_tail_md5.median_s,
        "x",
    );
    section.value(
        format!("curl | md5sum from {name} / ours on local disk"),
        curl_md5.median_s / local_download.median_s,
        "x",
    );
    // On these 2-core machines the server runs beside ours and takes a core of its own, so wall
    // time mixes both. Ours' own CPU time (user plus system) tells whether ours does more work
    // against the server than against local disk.
    section.value(
        format!("ours CPU, create: {name} / local disk"),
        create.median_cpu_s / local_create.median_cpu_s,
        "x",
    );
    section.value(
        format!("ours CPU, download: {name} / local disk"),
        download.median_cpu_s / local_download.median_cpu_s,
        "x",
    );
    section.target(
        format!("create: {name} / local disk"),
        create.median_s / local_create.median_s,
        S3_VS_LOCAL,
    );
    section.target(
        format!("download: {name} / local disk"),
        download.median_s / local_download.median_s,
        S3_VS_LOCAL,
    );
    section.value(
        format!("create baseline: one curl -T PUT of the archive to {name}"),
        curl_put.median_s,
        "s",
    );
    // The server's own CPU time during each step: where ours asks more of the server than curl
    // does (parts, then their assembly; more than one request), this shows it apart from ours.
    section.value(
        format!("{name}'s CPU during ours' create"),
        server_create_cpu,
        "s",
    );
    section.value(
        format!("{name}'s CPU during the curl -T PUT"),
        server_put_cpu,
        "s",
    );
    section.value(
        format!("{name}'s CPU during ours' download"),
        server_download_cpu,
        "s",
    );
    section.value(
        format!("{name}'s CPU during curl | md5sum"),
        server_md5_cpu,
        "s",
    );
    section.target(
        format!("create on {name} / curl -T PUT"),
        create.median_s / curl_put.median_s,
        S3_VS_CURL,
    );
    section.target(
        format!("download from {name} / curl | md5sum"),
        download.median_s / curl_md5.median_s,
        S3_VS_CURL,
    );
    section.target(
        format!("create on {name}: peak RSS MiB"),
        create.peak_rss_mib,
        PEAK_RSS_MIB,
    );
    section.target(
        format!("download from {name}: peak RSS MiB"),
        download.peak_rss_mib,
        PEAK_RSS_MIB,
    );
    Ok(section)
}

/// The median time, the median CPU time and the highest peak RSS of one measurement's samples.
#[derive(Debug, Clone, Copy)]
struct Summary {
    median_s: f64,
    median_cpu_s: f64,
    peak_rss_mib: f64,
}

impl Summary {
    fn of(samples: Vec<Sample>) -> Result<Self> {
        let median_cpu_s =
            median(samples.iter().map(|sample| sample.cpu_s).collect()).context("no runs")?;
        let series = Series::new(samples);
        Ok(Self {
            median_cpu_s,
            median_s: series.median_s.context("no runs")?,
            peak_rss_mib: series.max_peak_rss_mib.context("no runs")?,
        })
    }
}

/// The value of the variable `name` a running server exported.
fn exported(running: &Servers, name: &str) -> Result<String> {
    running
        .env()
        .find(|(exported, _)| *exported == name)
        .map(|(_, value)| value.to_owned())
        .with_context(|| format!("the server exported no {name}"))
}
