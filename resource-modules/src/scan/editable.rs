//! Editable installs: the source trees outside `site-packages` that `*.egg-link` files, `.pth`
//! path lines, setuptools finders and `direct_url.json` point at, and where a virtualenv archive
//! places them.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use resource_archive::ExtraTree;

use super::dist::{Distribution, normalize_dist_name, read_egg_info, split_metadata_dir_name};
use super::files::{ScanProblem, list_dir, read_optional};
use super::pth::{EditableFinder, PthFile};
use super::top_level::classify;
use crate::names::split_extension_name;
use resource_core::paths::normalize_join;

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

/// The local path of a `file:` URL, percent-decoded.
pub(crate) fn file_url_path(url: &str) -> Option<PathBuf> {
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

pub(super) fn derive_editables(
    site: &Path,
    distributions: &mut Vec<Distribution>,
    dist_records: &[Vec<String>],
    pth_files: &[PthFile],
    egg_links: &[PathBuf],
    problems: &mut Vec<ScanProblem>,
) -> Vec<EditableSource> {
    let mut sources = Vec::new();
    let mut claimed: BTreeSet<PathBuf> = BTreeSet::new();
    // 1. Editable wheels (PEP 660): the `.pth` files their RECORD lists say where the code is.
    for (dist, record) in distributions.iter().zip(dist_records) {
        if !dist.editable {
            continue;
        }
        let mut found = Vec::new();
        for entry in record {
            let pth_path = site.join(entry);
            if let Some(pth) = pth_files.iter().find(|p| p.path == pth_path) {
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
    for pth in pth_files {
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
        match read_egg_link(site, link, problems) {
            Some((source, dist)) => {
                sources.push(source);
                if let Some(dist) = dist {
                    distributions.push(dist);
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

/// The extra trees that place `editables` in the virtualenv archive of `site_packages`: each
/// top-level name where a normal install would put it.
pub(super) fn extra_trees(site_packages: &Path, editables: Vec<EditableSource>) -> Vec<ExtraTree> {
    let mut trees = Vec::new();
    for editable in editables {
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
    trees
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert_eq!(
            file_url_path("file:///tmp/a%20b").as_deref(),
            Some(Path::new("/tmp/a b"))
        );
        assert_eq!(file_url_path("https://x/y"), None);
        assert_eq!(
            editable_pth_name("__editable__.my_pkg-1.0.pth"),
            Some(("my_pkg".into(), Some("1.0".into())))
        );
    }
}
