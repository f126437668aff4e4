//! Scanning a `site-packages` directory by reading its files (no interpreter, nothing executed).
//!
//! [`scan_site_packages`] reports:
//! - distributions: `*.dist-info` (name and version from `METADATA`, `top_level.txt`, the entries of
//!   `RECORD`, `INSTALLER`, `direct_url.json`) and `*.egg-info` (a directory with `PKG-INFO`, or a
//!   single file);
//! - top-level importable names: packages, namespace packages (directories without `__init__` that
//!   hold modules), modules, bytecode-only modules, extension modules with their ABI tag;
//! - `.pth` files: the paths they add (resolved as `site` does) and their `import` lines, which are
//!   noted and never executed;
//! - editable installs: `*.egg-link`, `__editable__*.pth` (path entries, or setuptools' finder module
//!   whose `MAPPING` is read from `__editable___*_finder.py`), and `direct_url.json` with
//!   `dir_info.editable: true`. Each becomes an [`EditableSource`]: a source tree outside
//!   `site-packages` and the top-level names it provides, which a virtualenv resource must carry
//!   along to be importable on a worker.
//!
//! Anything unreadable or malformed inside the directory is listed in [`ScanReport::problems`]
//! instead of failing the scan.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs::FileType;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use resource_archive::ExtraTree;

use crate::interpreter::InterpreterSnapshot;
use crate::pyliteral;
use crate::resolve::is_identifier;

/// Why a directory could not be scanned at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The path is not a directory.
    #[error("cannot scan {}: not a directory", .path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The directory could not be listed.
    #[error("cannot list {}: {source}", .path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
}

/// What a `site-packages` directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    /// The directory scanned.
    pub site_packages: PathBuf,
    /// Installed distributions, sorted by name (egg-link installs included, with their
    /// `*.egg-info` from the source tree).
    pub distributions: Vec<Distribution>,
    /// Importable names at the top of the directory, sorted.
    pub top_level: Vec<TopLevelName>,
    /// `.pth` files, in the order `site` processes them (sorted by name).
    pub pth_files: Vec<PthFile>,
    /// Editable installs: source trees outside the directory.
    pub editables: Vec<EditableSource>,
    /// What could not be read, and why.
    pub problems: Vec<ScanProblem>,
}

/// An installed distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// `Name` from the metadata (else from the directory name).
    pub name: String,
    /// `Version` from the metadata (else from the directory name), if any.
    pub version: Option<String>,
    /// How its metadata is stored.
    pub format: DistFormat,
    /// The metadata directory or file.
    pub metadata_path: PathBuf,
    /// Its top-level import names: `top_level.txt`, else derived from `RECORD`.
    pub top_level: Vec<String>,
    /// How many files `RECORD` lists, if it has one.
    pub record_entries: Option<usize>,
    /// `INSTALLER` (such as `pip`).
    pub installer: Option<String>,
    /// `direct_url.json`, if present.
    pub direct_url: Option<DirectUrl>,
    /// Whether it is an editable install (its code lives outside the directory).
    pub editable: bool,
}

/// How a distribution's metadata is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DistFormat {
    /// A `*.dist-info` directory (wheels).
    DistInfo,
    /// A `*.egg-info` directory.
    EggInfo,
    /// A `*.egg-info` file (distutils' single-file `PKG-INFO`).
    EggInfoFile,
}

/// The content of `direct_url.json` (PEP 610) that matters here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectUrl {
    /// `url`.
    pub url: String,
    /// `dir_info.editable`.
    pub editable: bool,
}

/// An importable name at the top of a directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopLevelName {
    /// The import name.
    pub name: String,
    /// What it is.
    pub kind: ModuleKind,
    /// The directory or file.
    pub path: PathBuf,
}

/// What kind of importable thing a name is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ModuleKind {
    /// A directory with `__init__`.
    Package,
    /// A directory without `__init__` that holds modules.
    NamespacePackage,
    /// A `.py` file.
    Module,
    /// A `.pyc` file without source.
    Bytecode,
    /// A compiled extension module (`.so` / `.pyd`).
    #[serde(rename_all = "camelCase")]
    Extension {
        /// The ABI tag between the name and the suffix, such as `cpython-311-x86_64-linux-gnu` or
        /// `abi3`; `None` for a plain `name.so`.
        abi_tag: Option<String>,
    },
}

/// A `.pth` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PthFile {
    /// The file.
    pub path: PathBuf,
    /// The paths it lists, made absolute against the site directory.
    pub paths: Vec<PthPath>,
    /// Its `import` lines, verbatim (never executed).
    pub imports: Vec<String>,
    /// The editable finders its `import` lines install.
    pub finders: Vec<EditableFinder>,
}

/// A path listed in a `.pth` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PthPath {
    /// The path, absolute and normalised as `site` makes it.
    pub path: PathBuf,
    /// Whether it exists (`site` adds only existing paths to `sys.path`).
    pub exists: bool,
}

/// A setuptools editable finder module (`__editable___<name>_finder.py`), read without running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditableFinder {
    /// The module name the `.pth` file imports.
    pub module: String,
    /// Its file.
    pub file: PathBuf,
    /// `MAPPING`: import name to package directory, or to module path without suffix.
    pub mapping: BTreeMap<String, PathBuf>,
    /// `NAMESPACES`: namespace package name to its directories.
    pub namespaces: BTreeMap<String, Vec<PathBuf>>,
}

/// How an editable install points at its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EditableVia {
    /// A `*.egg-link` file (`setup.py develop`).
    EggLink,
    /// A path line in a `.pth` file.
    PthPath,
    /// A setuptools finder's `MAPPING`.
    PthFinder,
    /// Only `direct_url.json` says where the project is.
    DirectUrl,
}

/// A source tree outside `site-packages` that an editable install makes importable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditableSource {
    /// The distribution, when known.
    pub distribution: Option<String>,
    /// Its version, when known.
    pub version: Option<String>,
    /// How the install points at the tree.
    pub via: EditableVia,
    /// The file in `site-packages` that records the install.
    pub marker: PathBuf,
    /// The tree: the directory put on `sys.path` (egg-link, `.pth` path, `direct_url.json`), or
    /// for a finder the mapped package directory or module file itself.
    pub root: PathBuf,
    /// The top-level names it provides, each with its package directory or module file. A name
    /// may be dotted (a package inside a namespace package); a virtualenv resource places each
    /// at its name's path (dots as slashes) under `site-packages`.
    pub top_level: Vec<ImportRoot>,
}

/// An import name and where its code is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportRoot {
    /// The import name.
    pub name: String,
    /// The package directory or module file.
    pub path: PathBuf,
}

/// Something in the directory that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanProblem {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Scans one `site-packages` (or any `sys.path`) directory.
///
/// ```
/// use resource_modules::scan::{scan_site_packages, ModuleKind};
///
/// let dir = tempfile::tempdir()?;
/// let site = dir.path();
/// std::fs::create_dir_all(site.join("demo-1.0.dist-info"))?;
/// std::fs::write(site.join("demo-1.0.dist-info/METADATA"), "Name: demo\nVersion: 1.0\n\nText\n")?;
/// std::fs::write(site.join("demo-1.0.dist-info/RECORD"), "demo.py,,\ndemo-1.0.dist-info/RECORD,,\n")?;
/// std::fs::write(site.join("demo.py"), "")?;
/// std::fs::write(site.join("fast.cpython-311-x86_64-linux-gnu.so"), "")?;
///
/// let report = scan_site_packages(site)?;
/// assert_eq!(report.distributions[0].name, "demo");
/// assert_eq!(report.distributions[0].version.as_deref(), Some("1.0"));
/// assert_eq!(report.distributions[0].top_level, ["demo"]);
/// assert_eq!(report.top_level[1].kind, ModuleKind::Extension {
///     abi_tag: Some("cpython-311-x86_64-linux-gnu".into()),
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn scan_site_packages(dir: &Path) -> Result<ScanReport, ScanError> {
    let entries = list_dir(dir)?;
    let mut report = ScanReport {
        site_packages: dir.to_path_buf(),
        distributions: Vec::new(),
        top_level: Vec::new(),
        pth_files: Vec::new(),
        editables: Vec::new(),
        problems: Vec::new(),
    };
    let mut dist_records: Vec<Vec<String>> = Vec::new();
    let mut egg_links = Vec::new();
    for (name, file_type) in &entries {
        let path = dir.join(name);
        // Python can import only names that are text.
        let Some(text) = name.to_str() else {
            continue;
        };
        let is_dir = is_dir_following(&path, *file_type);
        if text.ends_with(".dist-info") && is_dir {
            let (dist, record) = read_dist_info(&path, text, &mut report.problems);
            report.distributions.push(dist);
            dist_records.push(record);
        } else if text.ends_with(".egg-info") {
            report
                .distributions
                .push(read_egg_info(&path, text, is_dir, &mut report.problems));
            dist_records.push(Vec::new());
        } else if text.ends_with(".egg-link") && !is_dir {
            egg_links.push(path);
        } else if text.ends_with(".pth") && !is_dir && !text.starts_with('.') {
            match read_pth(dir, &path) {
                Ok(pth) => report.pth_files.push(pth),
                Err(reason) => report.problems.push(ScanProblem { path, reason }),
            }
        } else if let Some(top) = classify(dir, name, *file_type) {
            report.top_level.push(top);
        }
    }
    report.editables = derive_editables(dir, &mut report, &dist_records, &egg_links);
    report.distributions.sort_by(|a, b| {
        normalize_dist_name(&a.name)
            .cmp(&normalize_dist_name(&b.name))
            .then_with(|| a.metadata_path.cmp(&b.metadata_path))
    });
    report.top_level.sort();
    Ok(report)
}

/// The editable source trees of a `site-packages` directory (the `editables` of its scan).
pub fn editable_sources(dir: &Path) -> Result<Vec<EditableSource>, ScanError> {
    Ok(scan_site_packages(dir)?.editables)
}

/// The interpreter's own `site-packages` directories (`purelib`, then `platlib` if different)
/// that exist: what `resource module scan --python PY` scans.
pub fn site_packages_of(snapshot: &InterpreterSnapshot) -> Vec<PathBuf> {
    let facts = &snapshot.facts;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in facts.purelib.iter().chain(&facts.platlib) {
        if dir.is_dir() && !dirs.contains(dir) {
            dirs.push(dir.clone());
        }
    }
    dirs
}

/// The `.pth` files of `dir` with the editable finders each installs (for the interpreter
/// snapshot). A missing or unreadable directory has none.
pub(crate) fn pth_files_with_finders(dir: &Path) -> Vec<(PathBuf, Vec<EditableFinder>)> {
    let Ok(entries) = list_dir(dir) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|(name, ft)| {
            let bytes = name.as_bytes();
            bytes.ends_with(b".pth") && !bytes.starts_with(b".") && !ft.is_dir()
        })
        .filter_map(|(name, _)| {
            let path = dir.join(name);
            let pth = read_pth(dir, &path).ok()?;
            Some((path, pth.finders))
        })
        .collect()
}

fn list_dir(dir: &Path) -> Result<Vec<(OsString, FileType)>, ScanError> {
    let read = std::fs::read_dir(dir).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotADirectory {
            ScanError::NotADirectory {
                path: dir.to_path_buf(),
            }
        } else {
            ScanError::Io {
                path: dir.to_path_buf(),
                source,
            }
        }
    })?;
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| ScanError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let file_type = entry.file_type().map_err(|source| ScanError::Io {
            path: entry.path(),
            source,
        })?;
        entries.push((entry.file_name(), file_type));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn is_dir_following(path: &Path, file_type: FileType) -> bool {
    file_type.is_dir() || (file_type.is_symlink() && path.is_dir())
}

fn is_file_following(path: &Path, file_type: FileType) -> bool {
    file_type.is_file() || (file_type.is_symlink() && path.is_file())
}

/// Splits an extension module file name into its module name and ABI tag:
/// `foo.cpython-311-x86_64-linux-gnu.so` → (`foo`, `Some("cpython-311-x86_64-linux-gnu")`).
pub fn split_extension_name(file_name: &str) -> Option<(&str, Option<&str>)> {
    let stem = file_name
        .strip_suffix(".so")
        .or_else(|| file_name.strip_suffix(".pyd"))?;
    let (name, tag) = match stem.split_once('.') {
        Some((name, tag)) => (name, Some(tag)),
        None => (stem, None),
    };
    (is_identifier(name) && tag.is_none_or(|t| !t.is_empty())).then_some((name, tag))
}

/// What the entry `name` of `dir` is as an importable top-level name, if anything.
fn classify(dir: &Path, name: &OsStr, file_type: FileType) -> Option<TopLevelName> {
    let text = name.to_str()?;
    let path = dir.join(name);
    if is_dir_following(&path, file_type) {
        if !is_identifier(text) || text == "__pycache__" {
            return None;
        }
        let kind = if has_init(&path) {
            ModuleKind::Package
        } else if holds_modules(&path, 3) {
            ModuleKind::NamespacePackage
        } else {
            return None;
        };
        return Some(TopLevelName {
            name: text.to_owned(),
            kind,
            path,
        });
    }
    if !is_file_following(&path, file_type) {
        return None;
    }
    let (module, kind) = if let Some(stem) = text.strip_suffix(".py") {
        (stem, ModuleKind::Module)
    } else if let Some(stem) = text.strip_suffix(".pyc") {
        (stem, ModuleKind::Bytecode)
    } else {
        let (module, tag) = split_extension_name(text)?;
        let abi_tag = tag.map(str::to_owned);
        (module, ModuleKind::Extension { abi_tag })
    };
    is_identifier(module).then(|| TopLevelName {
        name: module.to_owned(),
        kind,
        path,
    })
}

fn has_init(dir: &Path) -> bool {
    if dir.join("__init__.py").is_file() || dir.join("__init__.pyc").is_file() {
        return true;
    }
    // A compiled package: `__init__.cpython-311-x86_64-linux-gnu.so` and the like.
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            let name = entry.file_name();
            name.to_str()
                .and_then(split_extension_name)
                .is_some_and(|(module, _)| module == "__init__")
        })
    })
}

/// Whether a directory without `__init__` holds importable modules (then it is a namespace
/// package): a module file, or a subdirectory that is a package or holds modules itself.
fn holds_modules(dir: &Path, depth: u32) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut subdirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(text) = name.to_str() else {
            continue;
        };
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if is_dir_following(&path, file_type) {
            if is_identifier(text) && text != "__pycache__" {
                subdirs.push(path);
            }
        } else if text.ends_with(".py") || split_extension_name(text).is_some() {
            return true;
        }
    }
    depth > 0
        && subdirs
            .iter()
            .any(|sub| has_init(sub) || holds_modules(sub, depth - 1))
}

/// Reads the RFC 822 header block of a metadata file (up to the first empty line).
fn read_headers(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let file = fs_err::File::open(path).map_err(|err| err.to_string())?;
    let mut reader = BufReader::new(file);
    let mut headers = BTreeMap::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if read == 0 || text.is_empty() {
            return Ok(headers);
        }
        if text.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((key, value)) = text.split_once(':') {
            headers
                .entry(key.trim().to_ascii_lowercase())
                .or_insert_with(|| value.trim().to_owned());
        }
    }
}

fn read_optional_bytes(path: &Path, problems: &mut Vec<ScanProblem>) -> Option<Vec<u8>> {
    match fs_err::read(path) {
        Ok(bytes) => Some(bytes),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            problems.push(ScanProblem {
                path: path.to_path_buf(),
                reason: err.to_string(),
            });
            None
        }
    }
}

fn read_optional(path: &Path, problems: &mut Vec<ScanProblem>) -> Option<String> {
    read_optional_bytes(path, problems).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Name and version from a metadata directory name: `foo_bar-1.0.dist-info`, `foo-1.0-py3.11.egg-info`.
fn split_metadata_dir_name(file_name: &str, suffix: &str) -> (String, Option<String>) {
    let stem = file_name.strip_suffix(suffix).unwrap_or(file_name);
    match stem.split_once('-') {
        Some((name, rest)) => {
            let version = rest.split('-').next().unwrap_or(rest);
            (name.to_owned(), Some(version.to_owned()))
        }
        None => (stem.to_owned(), None),
    }
}

fn read_dist_info(
    path: &Path,
    file_name: &str,
    problems: &mut Vec<ScanProblem>,
) -> (Distribution, Vec<String>) {
    let (dir_name, dir_version) = split_metadata_dir_name(file_name, ".dist-info");
    let metadata = path.join("METADATA");
    let headers = read_headers(&metadata).unwrap_or_else(|reason| {
        problems.push(ScanProblem {
            path: metadata.clone(),
            reason,
        });
        BTreeMap::new()
    });
    let record = read_optional_bytes(&path.join("RECORD"), problems)
        .map(|bytes| summarize_record(&bytes))
        .unwrap_or_default();
    let record_entries = (record.entries > 0).then_some(record.entries);
    let top_level = match read_optional(&path.join("top_level.txt"), problems) {
        Some(text) => lines_of(&text),
        None => record.top_level,
    };
    let direct_url = read_optional(&path.join("direct_url.json"), problems)
        .and_then(|text| parse_direct_url(&text, &path.join("direct_url.json"), problems));
    let installer = read_optional(&path.join("INSTALLER"), problems)
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let dist = Distribution {
        name: headers.get("name").cloned().unwrap_or(dir_name),
        version: headers.get("version").cloned().or(dir_version),
        format: DistFormat::DistInfo,
        metadata_path: path.to_path_buf(),
        top_level,
        record_entries,
        installer,
        editable: direct_url.as_ref().is_some_and(|d| d.editable),
        direct_url,
    };
    (dist, record.pth_files)
}

fn read_egg_info(
    path: &Path,
    file_name: &str,
    is_dir: bool,
    problems: &mut Vec<ScanProblem>,
) -> Distribution {
    let (dir_name, dir_version) = split_metadata_dir_name(file_name, ".egg-info");
    let pkg_info = if is_dir {
        path.join("PKG-INFO")
    } else {
        path.to_path_buf()
    };
    let headers = read_headers(&pkg_info).unwrap_or_else(|reason| {
        problems.push(ScanProblem {
            path: pkg_info.clone(),
            reason,
        });
        BTreeMap::new()
    });
    let top_level = if is_dir {
        read_optional(&path.join("top_level.txt"), problems)
            .map(|text| lines_of(&text))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Distribution {
        name: headers.get("name").cloned().unwrap_or(dir_name),
        version: headers.get("version").cloned().or(dir_version),
        format: if is_dir {
            DistFormat::EggInfo
        } else {
            DistFormat::EggInfoFile
        },
        metadata_path: path.to_path_buf(),
        top_level,
        record_entries: None,
        installer: None,
        direct_url: None,
        editable: false,
    }
}

/// What `RECORD` tells: how many files, the top-level import names of its paths, and the `.pth`
/// files at the top of `site-packages` (where an editable install's pointers are).
#[derive(Debug, Default, PartialEq, Eq)]
struct RecordSummary {
    entries: usize,
    top_level: Vec<String>,
    pth_files: Vec<String>,
}

/// The path (first CSV field) of a `RECORD` line, unquoted.
fn record_path(line: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return None;
    }
    let Some(rest) = line.strip_prefix(b"\"") else {
        let end = line.iter().position(|&b| b == b',').unwrap_or(line.len());
        return Some(std::borrow::Cow::Borrowed(&line[..end]));
    };
    let mut out = Vec::new();
    let mut bytes = rest.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if b == b'"' {
            if bytes.peek() != Some(&b'"') {
                return Some(std::borrow::Cow::Owned(out));
            }
            bytes.next();
        }
        out.push(b);
    }
    None
}

/// Reads `RECORD` without allocating per line: only the distinct first path components matter.
fn summarize_record(bytes: &[u8]) -> RecordSummary {
    let mut entries = 0;
    // (first component, whether it is a file at the top)
    let mut firsts: BTreeSet<(Vec<u8>, bool)> = BTreeSet::new();
    let mut last: Option<(Vec<u8>, bool)> = None;
    for line in bytes.split(|&b| b == b'\n') {
        let Some(path) = record_path(line) else {
            continue;
        };
        entries += 1;
        let (first, is_file) = match path.iter().position(|&b| b == b'/') {
            Some(slash) => (&path[..slash], false),
            None => (&path[..], true),
        };
        // RECORD lists files grouped by directory, so most lines repeat the previous component.
        if last
            .as_ref()
            .is_some_and(|(l, f)| l == first && *f == is_file)
        {
            continue;
        }
        let key = (first.to_vec(), is_file);
        firsts.insert(key.clone());
        last = Some(key);
    }
    let mut top_level = BTreeSet::new();
    let mut pth_files = Vec::new();
    for (first, is_file) in &firsts {
        let Ok(first) = std::str::from_utf8(first) else {
            continue;
        };
        if *is_file && first.ends_with(".pth") {
            pth_files.push(first.to_owned());
            continue;
        }
        if first.is_empty()
            || first == ".."
            || first == "__pycache__"
            || first.ends_with(".dist-info")
            || first.ends_with(".data")
            || first.starts_with("__editable__")
        {
            continue;
        }
        let name = if *is_file {
            first
                .strip_suffix(".py")
                .or_else(|| first.strip_suffix(".pyc"))
                .or_else(|| split_extension_name(first).map(|(name, _)| name))
        } else {
            Some(first)
        };
        if let Some(name) = name.filter(|n| is_identifier(n)) {
            top_level.insert(name.to_owned());
        }
    }
    RecordSummary {
        entries,
        top_level: top_level.into_iter().collect(),
        pth_files,
    }
}

fn parse_direct_url(text: &str, path: &Path, problems: &mut Vec<ScanProblem>) -> Option<DirectUrl> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => {
            problems.push(ScanProblem {
                path: path.to_path_buf(),
                reason: format!("not JSON: {err}"),
            });
            return None;
        }
    };
    let url = value.get("url")?.as_str()?.to_owned();
    let editable = value
        .get("dir_info")
        .and_then(|d| d.get("editable"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    Some(DirectUrl { url, editable })
}

/// The local path of a `file:` URL, percent-decoded.
fn file_url_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(PathBuf::from(OsString::from_vec(out)))
}

/// Joins and normalises lexically, like `os.path.normpath(os.path.join(base, path))`.
pub(crate) fn normalize_join(base: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in base.join(path).components() {
        match component {
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push(component);
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn read_pth(site: &Path, path: &Path) -> Result<PthFile, String> {
    let bytes = fs_err::read(path).map_err(|err| err.to_string())?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let mut pth = PthFile {
        path: path.to_path_buf(),
        paths: Vec::new(),
        imports: Vec::new(),
        finders: Vec::new(),
    };
    for line in bytes.split(|&b| b == b'\n') {
        if line.starts_with(b"#") || line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.starts_with(b"import ") || line.starts_with(b"import\t") {
            let text = String::from_utf8_lossy(line).trim_end().to_owned();
            for module in imported_modules(&text) {
                if let Some(finder) = read_finder(site, module) {
                    pth.finders.push(finder);
                }
            }
            pth.imports.push(text);
            continue;
        }
        let end = line
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let entry = normalize_join(site, Path::new(OsStr::from_bytes(&line[..end])));
        pth.paths.push(PthPath {
            exists: entry.exists(),
            path: entry,
        });
    }
    Ok(pth)
}

/// The top-level modules an `import a, b.c; x()` line imports: `a`, `b`.
fn imported_modules(line: &str) -> Vec<&str> {
    let Some(rest) = line.strip_prefix("import") else {
        return Vec::new();
    };
    let statement = rest.split(';').next().unwrap_or(rest);
    statement
        .split(',')
        .filter_map(|part| {
            let name = part.split_whitespace().next()?;
            let top = name.split('.').next()?;
            is_identifier(top).then_some(top)
        })
        .collect()
}

/// Reads `<site>/<module>.py` as a setuptools editable finder, if it is one.
fn read_finder(site: &Path, module: &str) -> Option<EditableFinder> {
    let file = site.join(format!("{module}.py"));
    let text = fs_err::read_to_string(&file).ok()?;
    let mapping = pyliteral::str_dict(&text, "MAPPING")?;
    let namespaces = pyliteral::str_list_dict(&text, "NAMESPACES").unwrap_or_default();
    Some(EditableFinder {
        module: module.to_owned(),
        file,
        mapping: mapping
            .into_iter()
            .map(|(k, v)| (k, PathBuf::from(v)))
            .collect(),
        namespaces: namespaces
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().map(PathBuf::from).collect()))
            .collect(),
    })
}

/// PEP 503 normalisation: lower case, runs of `-`, `_`, `.` as one `-`.
fn normalize_dist_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// The package directory or module file of `name` directly under `root`, if there is one.
fn import_root_in(root: &Path, name: &str) -> Option<ImportRoot> {
    let dir = root.join(name);
    if dir.is_dir() {
        return Some(ImportRoot {
            name: name.to_owned(),
            path: dir,
        });
    }
    for suffix in [".py", ".pyc"] {
        let file = root.join(format!("{name}{suffix}"));
        if file.is_file() {
            return Some(ImportRoot {
                name: name.to_owned(),
                path: file,
            });
        }
    }
    let entries = std::fs::read_dir(root).ok()?;
    entries.flatten().find_map(|entry| {
        let file_name = entry.file_name();
        let (module, _) = split_extension_name(file_name.to_str()?)?;
        (module == name).then(|| ImportRoot {
            name: name.to_owned(),
            path: entry.path(),
        })
    })
}

/// The import roots of a source tree: the given names found in it, else every importable name
/// at its top.
fn import_roots(root: &Path, names: &[String]) -> Vec<ImportRoot> {
    let found: Vec<ImportRoot> = names
        .iter()
        .filter_map(|name| import_root_in(root, name))
        .collect();
    if !found.is_empty() {
        return found;
    }
    let Ok(entries) = list_dir(root) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|(name, ft)| classify(root, name, *ft))
        .map(|top| ImportRoot {
            name: top.name,
            path: top.path,
        })
        .collect()
}

fn finder_sources(
    finder: &EditableFinder,
    marker: &Path,
    distribution: Option<&str>,
    version: Option<&str>,
) -> Vec<EditableSource> {
    finder
        .mapping
        .iter()
        .map(|(name, path)| {
            // A module is mapped without its suffix; point at the file when there is one.
            let file = [".py", ".pyc"].iter().find_map(|suffix| {
                let mut candidate = path.clone().into_os_string();
                candidate.push(suffix);
                let candidate = PathBuf::from(candidate);
                candidate.is_file().then_some(candidate)
            });
            let code = if path.is_dir() {
                path.clone()
            } else {
                file.unwrap_or_else(|| path.clone())
            };
            EditableSource {
                distribution: distribution.map(str::to_owned),
                version: version.map(str::to_owned),
                via: EditableVia::PthFinder,
                marker: marker.to_path_buf(),
                root: code.clone(),
                top_level: vec![ImportRoot {
                    name: name.clone(),
                    path: code,
                }],
            }
        })
        .collect()
}

fn pth_sources(
    pth: &PthFile,
    distribution: Option<&str>,
    version: Option<&str>,
    names: &[String],
) -> Vec<EditableSource> {
    let mut sources: Vec<EditableSource> = pth
        .paths
        .iter()
        .filter(|p| p.exists)
        .map(|p| EditableSource {
            distribution: distribution.map(str::to_owned),
            version: version.map(str::to_owned),
            via: EditableVia::PthPath,
            marker: pth.path.clone(),
            root: p.path.clone(),
            top_level: import_roots(&p.path, names),
        })
        .collect();
    for finder in &pth.finders {
        sources.extend(finder_sources(finder, &pth.path, distribution, version));
    }
    sources
}

/// `__editable__.{name}-{version}.pth` → (`name`, `version`).
fn editable_pth_name(file_name: &str) -> Option<(String, Option<String>)> {
    let stem = file_name
        .strip_prefix("__editable__.")?
        .strip_suffix(".pth")?;
    Some(match stem.rsplit_once('-') {
        Some((name, version)) => (name.to_owned(), Some(version.to_owned())),
        None => (stem.to_owned(), None),
    })
}

fn derive_editables(
    site: &Path,
    report: &mut ScanReport,
    dist_records: &[Vec<String>],
    egg_links: &[PathBuf],
) -> Vec<EditableSource> {
    let mut sources = Vec::new();
    let mut claimed: BTreeSet<PathBuf> = BTreeSet::new();
    // 1. Editable wheels (PEP 660): the `.pth` files their RECORD lists say where the code is.
    for (dist, record) in report.distributions.iter().zip(dist_records) {
        if !dist.editable {
            continue;
        }
        let mut found = Vec::new();
        for entry in record {
            let pth_path = site.join(entry);
            if let Some(pth) = report.pth_files.iter().find(|p| p.path == pth_path) {
                claimed.insert(pth_path);
                found.extend(pth_sources(
                    pth,
                    Some(&dist.name),
                    dist.version.as_deref(),
                    &dist.top_level,
                ));
            }
        }
        if found.is_empty() {
            let url = dist.direct_url.as_ref().map(|d| d.url.as_str());
            if let Some(root) = url.and_then(file_url_path) {
                found.push(EditableSource {
                    distribution: Some(dist.name.clone()),
                    version: dist.version.clone(),
                    via: EditableVia::DirectUrl,
                    marker: dist.metadata_path.join("direct_url.json"),
                    top_level: import_roots(&root, &dist.top_level),
                    root,
                });
            }
        }
        sources.extend(found);
    }
    // 2. `__editable__` files whose distribution metadata is gone or unreadable.
    for pth in &report.pth_files {
        let file_name = pth.path.file_name().and_then(OsStr::to_str).unwrap_or("");
        if claimed.contains(&pth.path) {
            continue;
        }
        if let Some((name, version)) = editable_pth_name(file_name) {
            sources.extend(pth_sources(pth, Some(&name), version.as_deref(), &[]));
        }
    }
    // 3. `setup.py develop`: the egg-link names the tree, whose `*.egg-info` names the project.
    for link in egg_links {
        match read_egg_link(site, link, &mut report.problems) {
            Some((source, dist)) => {
                sources.push(source);
                if let Some(dist) = dist {
                    report.distributions.push(dist);
                }
            }
            None => continue,
        }
    }
    sources
}

fn read_egg_link(
    site: &Path,
    link: &Path,
    problems: &mut Vec<ScanProblem>,
) -> Option<(EditableSource, Option<Distribution>)> {
    let text = read_optional(link, problems)?;
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        problems.push(ScanProblem {
            path: link.to_path_buf(),
            reason: "empty egg-link".into(),
        });
        return None;
    };
    let root = normalize_join(site, Path::new(first));
    let link_name = link
        .file_stem()
        .and_then(OsStr::to_str)
        .map(normalize_dist_name)
        .unwrap_or_default();
    let egg_info = list_dir(&root).ok().and_then(|entries| {
        entries.into_iter().find_map(|(name, ft)| {
            let text = name.to_str()?;
            let (dist_name, _) = split_metadata_dir_name(text, ".egg-info");
            let matches =
                text.ends_with(".egg-info") && normalize_dist_name(&dist_name) == link_name;
            matches.then(|| (root.join(&name), text.to_owned(), ft.is_dir()))
        })
    });
    let dist = egg_info.map(|(path, text, is_dir)| {
        let mut dist = read_egg_info(&path, &text, is_dir, problems);
        dist.editable = true;
        dist
    });
    let names = dist
        .as_ref()
        .map(|d| d.top_level.clone())
        .unwrap_or_default();
    let source = EditableSource {
        distribution: dist.as_ref().map(|d| d.name.clone()),
        version: dist.as_ref().and_then(|d| d.version.clone()),
        via: EditableVia::EggLink,
        marker: link.to_path_buf(),
        top_level: import_roots(&root, &names),
        root,
    };
    Some((source, dist))
}

/// The source trees of the editable installs in a `site-packages` directory, as extra trees for
/// its virtualenv archive: each top-level name is placed where a normal install would put it, so
/// that it imports on a worker (Toil's virtualenv resources lose editable installs).
pub fn editable_extra_trees(site_packages: &Path) -> Result<Vec<ExtraTree>, ScanError> {
    let mut trees = Vec::new();
    for editable in editable_sources(site_packages)? {
        for root in editable.top_level {
            let dotted_path = root.name.replace('.', "/");
            let archive_name = if root.path.is_dir() {
                dotted_path
            } else {
                // A module file keeps its own file name (`tool.py`,
                // `fast.cpython-311-x86_64-linux-gnu.so`) in its package's directory.
                let file_name = root
                    .path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match dotted_path.rsplit_once('/') {
                    Some((package, _)) => format!("{package}/{file_name}"),
                    None => file_name,
                }
            };
            // A name already installed in `site-packages` itself wins; it is packed anyway.
            if site_packages.join(&archive_name).exists() {
                continue;
            }
            trees.push(ExtraTree {
                source: root.path,
                archive_name,
            });
        }
    }
    trees.sort_by(|a, b| a.archive_name.cmp(&b.archive_name));
    trees.dedup_by(|a, b| a.archive_name == b.archive_name);
    Ok(trees)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines() {
        assert_eq!(
            record_path(b"a/b.py,sha256=x,1").as_deref(),
            Some(&b"a/b.py"[..])
        );
        assert_eq!(
            record_path(b"\"a,\"\"b\"\".py\",,").as_deref(),
            Some(&b"a,\"b\".py"[..])
        );
        let summary = summarize_record(
            b"pkg/__init__.py,,\npkg/x.py,,\nmod.py,,\nfast.cpython-311-x86_64-linux-gnu.so,,\n\
              x-1.0.dist-info/RECORD,,\n../../bin/tool,,\n__pycache__/mod.cpython-311.pyc,,\n\
              x.pth,,\n__editable___x_finder.py,,\n",
        );
        assert_eq!(summary.entries, 9);
        assert_eq!(summary.top_level, ["fast", "mod", "pkg"]);
        assert_eq!(summary.pth_files, ["x.pth"]);
    }

    #[test]
    fn names_and_urls() {
        assert_eq!(normalize_dist_name("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(
            split_extension_name("_x.abi3.so"),
            Some(("_x", Some("abi3")))
        );
        assert_eq!(split_extension_name("x.so"), Some(("x", None)));
        assert_eq!(split_extension_name("libx.so.1"), None);
        assert_eq!(
            file_url_path("file:///tmp/a%20b").as_deref(),
            Some(Path::new("/tmp/a b"))
        );
        assert_eq!(file_url_path("https://x/y"), None);
        assert_eq!(
            editable_pth_name("__editable__.my_pkg-1.0.pth"),
            Some(("my_pkg".into(), Some("1.0".into())))
        );
        assert_eq!(imported_modules("import a, b.c; a.install()"), ["a", "b"]);
        assert_eq!(
            normalize_join(Path::new("/s/site"), Path::new("../src/./x/../x")),
            Path::new("/s/src/x")
        );
    }
}
