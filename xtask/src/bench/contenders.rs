//! The tools compared: ours (`resource`), Toil's own `toil.resource`, `tar`, and `zip`/`unzip`,
//! each turning an input into a stored archive ("create") and back into a tree ("download").
//! `md5sum` is measured separately on an archive one of them made.
//!
//! Adding a contender is one more [`Contender`] implementation.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::inputs::Input;
use crate::run::{Measured, measure};

/// One measured run.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(super) struct Sample {
    /// Wall time of the whole process, in seconds.
    pub wall_s: f64,
    /// The time the tool reports for the operation alone (Toil: without interpreter start-up,
    /// imports and job-store set-up), when it reports one.
    pub op_s: Option<f64>,
    /// Peak RSS of the process in MiB.
    pub peak_rss_mib: f64,
    /// CPU time of the process (user plus system), in seconds.
    pub cpu_s: f64,
}

impl Sample {
    /// The sample of one measured run, with the operation's own time if the tool reported it.
    pub(super) fn of(measured: &Measured, op_s: Option<f64>) -> Self {
        Self {
            wall_s: measured.wall.as_secs_f64(),
            op_s,
            peak_rss_mib: kib_to_mib(measured.peak_rss_kib),
            cpu_s: measured.cpu.as_secs_f64(),
        }
    }

    /// The time compared against targets: the operation's own time if known, else wall time.
    pub(super) fn seconds(&self) -> f64 {
        self.op_s.unwrap_or(self.wall_s)
    }
}

/// KiB to MiB for display.
pub(super) fn kib_to_mib(kib: u64) -> f64 {
    // u64 → f64 is exact far beyond any RSS.
    kib as f64 / 1024.0
}

/// A tool that packs an input into an archive and unpacks it again.
pub(super) trait Contender {
    /// Name in the table and the JSON.
    fn name(&self) -> &'static str;
    /// Whether a failure should be reported as "not available" instead of failing the run
    /// (true for ours, which is being written; baselines must work).
    fn may_fail(&self) -> bool {
        false
    }
    /// Packs `input`, keeping everything it makes under `work` (an empty directory).
    fn create(&mut self, input: &Input, work: &Path) -> Result<Sample>;
    /// The archive the last `create` made, if it is one file.
    fn archive(&self) -> Option<PathBuf>;
    /// Unpacks what `create` made, under `work`; returns the sample and the unpacked tree.
    fn download(&mut self, input: &Input, work: &Path) -> Result<(Sample, PathBuf)>;
}

/// What a leader hands its workers: one `JTRES_` variable.
#[derive(Debug, Clone)]
struct Registered {
    env_name: String,
    env_value: String,
    archive: Option<PathBuf>,
}

/// The fields of what `resource create --json` prints that the benchmarks (and the check of the
/// shipped binary) use.
#[derive(Debug, Clone)]
pub(crate) struct CreatedResource {
    /// `pathHash`: the name the resource is stored under.
    pub path_hash: String,
    /// `url`: where workers fetch it (a `file:` URL, or a presigned one for object stores).
    pub url: String,
    /// `envName`: the `JTRES_<pathHash>` variable that registers it for workers.
    pub env_name: String,
    /// `envValue`: that variable's value, Toil's wire form.
    pub env_value: String,
    /// `contentHash`: the MD5 of the stored bytes.
    pub content_hash: String,
}

impl CreatedResource {
    /// Reads the one JSON object `resource create --json` printed on standard output.
    pub(crate) fn parse(stdout: &str) -> Result<Self> {
        let json: Value = serde_json::from_str(stdout.trim()).with_context(|| {
            format!("`resource create --json` printed no JSON object: {stdout:?}")
        })?;
        let field = |key: &str| -> Result<String> {
            json.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("`resource create --json` output lacks {key:?}: {json}"))
        };
        Ok(Self {
            path_hash: field("pathHash")?,
            url: field("url")?,
            env_name: field("envName")?,
            env_value: field("envValue")?,
            content_hash: field("contentHash")?,
        })
    }
}

/// Ours: `resource create INPUT --store DIR --json`, then `resource download INPUT --root ROOT`
/// in an environment holding only `JTRES_ROOT` and the created variable.
#[derive(Debug)]
pub(super) struct Ours {
    binary: PathBuf,
    registered: Option<Registered>,
}

impl Ours {
    /// Ours, run from the release binary at `binary`.
    pub(super) fn new(binary: PathBuf) -> Self {
        Self {
            binary,
            registered: None,
        }
    }
}

impl Contender for Ours {
    fn name(&self) -> &'static str {
        "ours"
    }

    fn may_fail(&self) -> bool {
        true
    }

    fn create(&mut self, input: &Input, work: &Path) -> Result<Sample> {
        self.registered = None;
        let store = work.join("store");
        fs::create_dir_all(&store)?;
        let measured = measure(
            Command::new(&self.binary)
                .arg("create")
                .arg(&input.path)
                .arg("--store")
                .arg(&store)
                .args(["--json", "--kind", input.kind.flag()]),
        )?;
        let created = CreatedResource::parse(&measured.stdout)?;
        self.registered = Some(Registered {
            archive: file_url_path(&created.url),
            env_name: created.env_name,
            env_value: created.env_value,
        });
        Ok(Sample::of(&measured, None))
    }

    fn archive(&self) -> Option<PathBuf> {
        self.registered.as_ref()?.archive.clone()
    }

    fn download(&mut self, input: &Input, work: &Path) -> Result<(Sample, PathBuf)> {
        let registered = self
            .registered
            .as_ref()
            .context("download before a successful create")?;
        let root = work.join("root");
        fs::create_dir_all(&root)?;
        let measured = measure(
            Command::new(&self.binary)
                .env_clear()
                .env("JTRES_ROOT", &root)
                .env(&registered.env_name, &registered.env_value)
                .arg("download")
                .arg(&input.path)
                .arg("--root")
                .arg(&root),
        )?;
        let local = PathBuf::from(measured.stdout.trim());
        if !local.is_dir() {
            bail!(
                "`resource download` printed {:?}, which is not a directory",
                measured.stdout
            );
        }
        Ok((Sample::of(&measured, None), local))
    }
}

/// The local path of a `file:` URL (`file:/p` as Toil writes it, or `file:///p`).
fn file_url_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file:")?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// Toil 9.6's own implementation with a real `FileJobStore`, through `xtask/bench/toil_driver.py`.
#[derive(Debug)]
pub(super) struct Toil {
    python: PathBuf,
    driver: PathBuf,
    registered: Option<Registered>,
}

impl Toil {
    /// Toil run by `python` (the test venv's) through the driver script at `driver`.
    pub(super) fn new(python: PathBuf, driver: PathBuf) -> Self {
        Self {
            python,
            driver,
            registered: None,
        }
    }
}

impl Contender for Toil {
    fn name(&self) -> &'static str {
        "toil"
    }

    fn create(&mut self, input: &Input, work: &Path) -> Result<Sample> {
        self.registered = None;
        let measured = measure(
            Command::new(&self.python)
                .arg(&self.driver)
                .arg("create")
                .arg("--jobstore")
                .arg(work.join("jobstore"))
                .args(["--kind", input.kind.flag()])
                .arg(&input.path),
        )?;
        let json: Value = serde_json::from_str(measured.stdout.trim())
            .with_context(|| format!("toil driver printed {:?}", measured.stdout))?;
        let field = |key: &str| -> Result<&Value> {
            json.get(key)
                .with_context(|| format!("toil driver output lacks {key:?}: {json}"))
        };
        let text = |key: &str| -> Result<String> {
            field(key)?
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("toil driver's {key:?} is not a string"))
        };
        let seconds = field("seconds")?.as_f64();
        self.registered = Some(Registered {
            env_name: text("envName")?,
            env_value: text("envValue")?,
            archive: file_url_path(&text("url")?),
        });
        Ok(Sample::of(&measured, seconds))
    }

    fn archive(&self) -> Option<PathBuf> {
        self.registered.as_ref()?.archive.clone()
    }

    fn download(&mut self, input: &Input, work: &Path) -> Result<(Sample, PathBuf)> {
        let registered = self
            .registered
            .as_ref()
            .context("download before a successful create")?;
        let root = work.join("root");
        fs::create_dir_all(&root)?;
        let measured = measure(
            Command::new(&self.python)
                .env_clear()
                .env("JTRES_ROOT", &root)
                .env(&registered.env_name, &registered.env_value)
                .arg(&self.driver)
                .arg("download")
                .arg(&input.path),
        )?;
        let json: Value = serde_json::from_str(measured.stdout.trim())
            .with_context(|| format!("toil driver printed {:?}", measured.stdout))?;
        let local = json
            .get("localPath")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .with_context(|| format!("toil driver output lacks localPath: {json}"))?;
        let seconds = json.get("seconds").and_then(Value::as_f64);
        Ok((Sample::of(&measured, seconds), local))
    }
}

/// `tar cf` / `tar xf`.
#[derive(Debug, Default)]
pub(super) struct Tar {
    archive: Option<PathBuf>,
}

impl Contender for Tar {
    fn name(&self) -> &'static str {
        "tar"
    }

    fn create(&mut self, input: &Input, work: &Path) -> Result<Sample> {
        let archive = work.join("archive.tar");
        let measured = measure(
            Command::new("tar")
                .arg("cf")
                .arg(&archive)
                .arg("-C")
                .arg(input.parent()?)
                .arg(input.base_name()?),
        )?;
        self.archive = Some(archive);
        Ok(Sample::of(&measured, None))
    }

    fn archive(&self) -> Option<PathBuf> {
        self.archive.clone()
    }

    fn download(&mut self, _input: &Input, work: &Path) -> Result<(Sample, PathBuf)> {
        let archive = self.archive.as_ref().context("download before create")?;
        let out = work.join("out");
        fs::create_dir_all(&out)?;
        let measured = measure(
            Command::new("tar")
                .arg("xf")
                .arg(archive)
                .arg("-C")
                .arg(&out),
        )?;
        Ok((Sample::of(&measured, None), out))
    }
}

/// `zip -r -0 -q` / `unzip -q`: a stored (uncompressed) zip like ours by default.
#[derive(Debug, Default)]
pub(super) struct Zip {
    archive: Option<PathBuf>,
}

impl Contender for Zip {
    fn name(&self) -> &'static str {
        "zip"
    }

    fn create(&mut self, input: &Input, work: &Path) -> Result<Sample> {
        let archive = work.join("archive.zip");
        let measured = measure(
            Command::new("zip")
                .args(["-r", "-0", "-q"])
                .arg(&archive)
                .arg(input.base_name()?)
                .current_dir(input.parent()?),
        )?;
        self.archive = Some(archive);
        Ok(Sample::of(&measured, None))
    }

    fn archive(&self) -> Option<PathBuf> {
        self.archive.clone()
    }

    fn download(&mut self, _input: &Input, work: &Path) -> Result<(Sample, PathBuf)> {
        let archive = self.archive.as_ref().context("download before create")?;
        let out = work.join("out");
        let measured = measure(
            Command::new("unzip")
                .arg("-q")
                .arg(archive)
                .arg("-d")
                .arg(&out),
        )?;
        Ok((Sample::of(&measured, None), out))
    }
}

/// `md5sum ARCHIVE`: the floor every create and download is compared with.
pub(super) fn md5sum(archive: &Path) -> Result<Sample> {
    let measured = measure(Command::new("md5sum").arg(archive))?;
    Ok(Sample::of(&measured, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_become_paths() {
        assert_eq!(
            file_url_path("file:/js/shared/abc"),
            Some(PathBuf::from("/js/shared/abc"))
        );
        assert_eq!(
            file_url_path("file:///js/shared/abc"),
            Some(PathBuf::from("/js/shared/abc"))
        );
        assert_eq!(file_url_path("https://host/abc"), None);
    }
}
