//! Benchmark inputs, made once in tmpfs and reused while their recipe is unchanged.
//!
//! - `tree_large`: a plain directory of nested dirs, mostly small files (1–64 KiB, half
//!   text-like, half random bytes) plus a few large random binaries; 20,000 files, 1 GiB.
//! - `pkg_small`: a Python package (`__init__.py` at its top, subpackages) of 2,000 `.py`
//!   files, 20 MB.
//! - `site_packages`: a copy of the `site-packages` of `.tools/bench-venv` (numpy, pandas,
//!   requests), shipped as a virtualenv resource.
//!
//! `--quick` makes `tree_large` and `pkg_small` ten times smaller; `site_packages` is real
//! installed code and stays as it is.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::prng::SplitMix64;
use crate::project::Project;
use crate::run::{output_checked, run_checked};
use crate::tools::Venv;

/// Bump when the generators change, so cached inputs are made again.
const GENERATOR_VERSION: u32 = 1;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The names `--only` accepts, in run order.
pub(super) const NAMES: [&str; 3] = ["tree_large", "pkg_small", "site_packages"];

/// How a resource is shipped: the `--kind` of `resource create` and Toil's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    /// A directory (`DirectoryResource`).
    Dir,
    /// A virtualenv's `site-packages` (`VirtualEnvResource`).
    Venv,
}

impl Kind {
    /// The value of `--kind` for both `resource create` and the Toil driver.
    pub(super) fn flag(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::Venv => "venv",
        }
    }
}

/// One prepared input.
#[derive(Debug, Clone)]
pub(super) struct Input {
    /// One of [`NAMES`].
    pub name: &'static str,
    /// The directory to ship.
    pub path: PathBuf,
    /// How it is shipped.
    pub kind: Kind,
    /// Files (and symlinks) under `path`.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

impl Input {
    /// The directory holding `path` (where `tar -C` and `zip` start).
    pub(super) fn parent(&self) -> Result<&Path> {
        self.path
            .parent()
            .with_context(|| format!("{} has no parent", self.path.display()))
    }

    /// The base name of `path`.
    pub(super) fn base_name(&self) -> Result<&std::ffi::OsStr> {
        self.path
            .file_name()
            .with_context(|| format!("{} has no base name", self.path.display()))
    }
}

/// Makes (or reuses) input `name` under `dir`.
pub(super) fn prepare(
    project: &Project,
    name: &'static str,
    quick: bool,
    dir: &Path,
) -> Result<Input> {
    let scale = if quick { 10 } else { 1 };
    let (path, kind, recipe) = match name {
        "tree_large" => (
            dir.join(name),
            Kind::Dir,
            Recipe::Tree(TreeSpec::new(scale)),
        ),
        "pkg_small" => (
            dir.join(name),
            Kind::Dir,
            Recipe::Package(PackageSpec::new(scale)),
        ),
        "site_packages" => {
            let venv = Venv::bench(project);
            venv.ensure()?;
            let requirements =
                fs::read_to_string(project.xtask_dir().join("requirements-bench.txt"))
                    .context("reading xtask/requirements-bench.txt")?;
            (
                dir.join(name).join("site-packages"),
                Kind::Venv,
                Recipe::SitePackages { venv, requirements },
            )
        }
        other => bail!(
            "no benchmark input named {other:?}; known: {}",
            NAMES.join(", ")
        ),
    };
    let stamp_path = dir.join(format!("{name}.stamp"));
    let stamp = format!("generator {GENERATOR_VERSION}\n{}\n", recipe.describe());
    if fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) && path.is_dir() {
        println!("{name}: reusing {}", path.display());
    } else {
        let start = Instant::now();
        println!("{name}: making {}", path.display());
        let top = dir.join(name);
        if top.exists() {
            fs::remove_dir_all(&top).with_context(|| format!("cannot remove {}", top.display()))?;
        }
        fs::remove_file(&stamp_path).ok();
        match &recipe {
            Recipe::Tree(spec) => spec.write(&path)?,
            Recipe::Package(spec) => spec.write(&path)?,
            Recipe::SitePackages { venv, .. } => copy_site_packages(venv, &path)?,
        }
        fs::write(&stamp_path, &stamp)
            .with_context(|| format!("cannot write {}", stamp_path.display()))?;
        println!("{name}: made in {:.1} s", start.elapsed().as_secs_f64());
    }
    let (files, bytes) = count_files(&path)?;
    Ok(Input {
        name,
        path,
        kind,
        files,
        bytes,
    })
}

/// Files and symlinks under `dir` and their total size (symlinks are not followed).
pub(super) fn count_files(dir: &Path) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let metadata = entry
                .metadata()
                .with_context(|| format!("cannot stat {}", entry.path().display()))?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                files += 1;
                bytes += metadata.len();
            }
        }
    }
    Ok((files, bytes))
}

/// How an input is made.
#[derive(Debug)]
enum Recipe {
    Tree(TreeSpec),
    Package(PackageSpec),
    SitePackages { venv: Venv, requirements: String },
}

impl Recipe {
    /// Everything the input's bytes depend on: the cache stamp.
    fn describe(&self) -> String {
        match self {
            Recipe::Tree(spec) => format!("{spec:?}"),
            Recipe::Package(spec) => format!("{spec:?}"),
            Recipe::SitePackages { requirements, .. } => {
                format!("site-packages of\n{requirements}")
            }
        }
    }
}

/// `tree_large`: `files` files adding up to exactly `total` bytes.
#[derive(Debug)]
struct TreeSpec {
    seed: u64,
    files: u64,
    total: u64,
    small: (u64, u64),
    big: (u64, u64),
}

impl TreeSpec {
    fn new(scale: u64) -> Self {
        Self {
            seed: 0x7265_736f_7572_6365,
            files: 20_000 / scale,
            total: 1024 * MIB / scale,
            small: (KIB, 64 * KIB),
            big: (50 * MIB / scale, 200 * MIB / scale),
        }
    }

    /// Small sizes for every file, then the last few become big ones that take up the rest.
    fn sizes(&self, rng: &mut SplitMix64) -> Result<Vec<u64>> {
        let count = usize::try_from(self.files)?;
        let mut sizes: Vec<u64> = (0..count)
            .map(|_| rng.between(self.small.0, self.small.1))
            .collect();
        let small_total: u64 = sizes.iter().sum();
        let middle = u64::midpoint(self.big.0, self.big.1);
        let rest = self.total.saturating_sub(small_total);
        let big_count = usize::try_from((rest / middle).max(1))?;
        if big_count >= count {
            bail!("tree spec {self:?} leaves no room for small files");
        }
        let big = &mut sizes[count - big_count..];
        let mut rest: u64 = rest + big.iter().sum::<u64>();
        let mut left = u64::try_from(big.len())?;
        for size in big.iter_mut() {
            let even = rest / left;
            *size = if left == 1 {
                rest
            } else {
                rng.between(even - even / 4, even + even / 4)
            };
            rest -= *size;
            left -= 1;
        }
        Ok(sizes)
    }

    fn write(&self, root: &Path) -> Result<()> {
        let mut rng = SplitMix64::new(self.seed);
        let sizes = self.sizes(&mut rng)?;
        let corpus = text_corpus(&mut rng, 1024 * 1024);
        let big_from = sizes.len()
            - sizes
                .iter()
                .rev()
                .take_while(|s| **s > self.small.1)
                .count();
        let mut buffer = Vec::new();
        for (index, size) in sizes.iter().copied().enumerate() {
            let depth = rng.between(1, 3);
            let mut dir = root.to_path_buf();
            for _ in 0..depth {
                dir.push(format!("d{:02}", rng.between(0, 9)));
            }
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let size = usize::try_from(size)?;
            if index >= big_from {
                write_random(&mut rng, &dir.join(format!("blob{index:05}.bin")), size)?;
            } else if rng.next_u64().is_multiple_of(2) {
                buffer.clear();
                buffer.resize(size, 0);
                rng.fill(&mut buffer);
                write_file(&dir.join(format!("f{index:05}.dat")), &buffer)?;
            } else {
                text_window(&mut rng, &corpus, size, index, &mut buffer);
                write_file(&dir.join(format!("f{index:05}.txt")), &buffer)?;
            }
        }
        Ok(())
    }
}

/// `pkg_small`: a package of `modules` `.py` files adding up to about `total` bytes.
#[derive(Debug)]
struct PackageSpec {
    seed: u64,
    modules: u64,
    total: u64,
    subpackages: u64,
    inner_per_subpackage: u64,
}

impl PackageSpec {
    fn new(scale: u64) -> Self {
        Self {
            seed: 0x7079_7468_6f6e_7079,
            modules: 2_000 / scale,
            total: 20_000_000 / scale,
            subpackages: 20 / scale.min(10),
            inner_per_subpackage: 5,
        }
    }

    fn write(&self, root: &Path) -> Result<()> {
        let mut rng = SplitMix64::new(self.seed);
        let corpus = text_corpus(&mut rng, 1024 * 1024);
        let mut packages = vec![root.to_path_buf()];
        for sub in 0..self.subpackages {
            let sub_dir = root.join(format!("sub{sub:02}"));
            packages.push(sub_dir.clone());
            for inner in 0..self.inner_per_subpackage {
                packages.push(sub_dir.join(format!("inner{inner}")));
            }
        }
        let modules = usize::try_from(self.modules)?;
        if packages.len() > modules {
            bail!("package spec {self:?} has more packages than modules");
        }
        let average = self.total / self.modules;
        let mut buffer = Vec::new();
        for index in 0..modules {
            let size = usize::try_from(rng.between(average / 50, average * 2 - average / 50))?;
            let path = match packages.get(index) {
                Some(package) => {
                    fs::create_dir_all(package)
                        .with_context(|| format!("cannot create {}", package.display()))?;
                    package.join("__init__.py")
                }
                None => packages[rng.index(packages.len())].join(format!("mod_{index:04}.py")),
            };
            text_window(&mut rng, &corpus, size, index, &mut buffer);
            write_file(&path, &buffer)?;
        }
        Ok(())
    }
}

fn copy_site_packages(venv: &Venv, destination: &Path) -> Result<()> {
    let source = output_checked(Command::new(venv.python()).args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]))?;
    let source = PathBuf::from(source.trim());
    let parent = destination
        .parent()
        .with_context(|| format!("{} has no parent", destination.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    run_checked(Command::new("cp").arg("-a").arg(&source).arg(destination))
}

/// Python-looking text made of a fixed vocabulary, for compressible "source" files.
fn text_corpus(rng: &mut SplitMix64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "def", "return", "self", "import", "from", "class", "if", "else", "for", "in", "value",
        "result", "path", "name", "None", "True", "data", "config", "items", "len", "print",
        "with", "open", "resource",
    ];
    let mut text = Vec::with_capacity(len + 128);
    while text.len() < len {
        let indent = rng.between(0, 3) * 4;
        text.extend(std::iter::repeat_n(
            b' ',
            usize::try_from(indent).unwrap_or(0),
        ));
        for word in 0..rng.between(2, 10) {
            if word > 0 {
                text.push(b' ');
            }
            text.extend_from_slice(WORDS[rng.index(WORDS.len())].as_bytes());
            if rng.next_u64().is_multiple_of(5) {
                text.extend_from_slice(format!("_{}", rng.between(0, 999)).as_bytes());
            }
        }
        text.push(b'\n');
    }
    text.truncate(len);
    text
}

/// `size` bytes of the corpus from a random offset, starting with a line naming the file so
/// that no two files are equal.
fn text_window(rng: &mut SplitMix64, corpus: &[u8], size: usize, index: usize, out: &mut Vec<u8>) {
    out.clear();
    let header = format!("# generated file {index}\n");
    out.extend_from_slice(header.as_bytes());
    while out.len() < size {
        let start = rng.index(corpus.len());
        let take = (size - out.len()).min(corpus.len() - start);
        out.extend_from_slice(&corpus[start..start + take]);
    }
    out.truncate(size);
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn write_random(rng: &mut SplitMix64, path: &Path, size: usize) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut chunk = vec![0_u8; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let take = left.min(chunk.len());
        rng.fill(&mut chunk[..take]);
        out.write_all(&chunk[..take])
            .with_context(|| format!("cannot write {}", path.display()))?;
        left -= take;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_sizes_add_up_and_have_a_few_big_files() -> Result<()> {
        for scale in [1, 10] {
            let spec = TreeSpec::new(scale);
            let sizes = spec.sizes(&mut SplitMix64::new(spec.seed))?;
            assert_eq!(sizes.len() as u64, spec.files);
            assert_eq!(sizes.iter().sum::<u64>(), spec.total);
            let big: Vec<u64> = sizes
                .iter()
                .copied()
                .filter(|s| *s > spec.small.1)
                .collect();
            assert!((1..=10).contains(&big.len()), "{big:?}");
            for size in big {
                assert!(size >= spec.big.0 && size <= spec.big.1, "{size}");
            }
        }
        Ok(())
    }

    #[test]
    fn text_windows_have_the_asked_size() {
        let mut rng = SplitMix64::new(3);
        let corpus = text_corpus(&mut rng, 4096);
        let mut out = Vec::new();
        for size in [0, 5, 100, 10_000] {
            text_window(&mut rng, &corpus, size, 42, &mut out);
            assert_eq!(out.len(), size);
        }
    }
}
