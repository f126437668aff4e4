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

pub(crate) mod dist;
pub(crate) mod editable;
mod files;
pub(crate) mod pth;
mod top_level;

use std::path::{Path, PathBuf};

use serde::Serialize;

use resource_archive::ExtraTree;

use dist::{normalize_dist_name, read_dist_info, read_egg_info};
use editable::derive_editables;
use files::{is_dir_following, list_dir};
use pth::read_pth;
use top_level::classify;

pub use crate::names::split_extension_name;
pub use dist::{DirectUrl, DistFormat, Distribution};
pub use editable::{EditableSource, EditableVia, ImportRoot};
pub use files::{ScanError, ScanProblem};
pub use pth::{EditableFinder, PthFile, PthPath};
pub use top_level::{ModuleKind, TopLevelName};

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
    report.editables = derive_editables(
        dir,
        &mut report.distributions,
        &dist_records,
        &report.pth_files,
        &egg_links,
        &mut report.problems,
    );
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

/// The source trees of the editable installs in a `site-packages` directory, as extra trees for
/// its virtualenv archive: each top-level name is placed where a normal install would put it, so
/// that it imports on a worker (Toil's virtualenv resources lose editable installs).
pub fn editable_extra_trees(site_packages: &Path) -> Result<Vec<ExtraTree>, ScanError> {
    Ok(editable::extra_trees(
        site_packages,
        editable_sources(site_packages)?,
    ))
}
