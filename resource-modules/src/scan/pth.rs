//! `.pth` files, read as `site` reads them (the paths they add, their `import` lines noted and
//! never executed), and the setuptools editable finders those lines install.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::list_dir;
use crate::names::is_identifier;
use crate::pyliteral;
use resource_core::paths::normalize_join;

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

pub(super) fn read_pth(site: &Path, path: &Path) -> Result<PthFile, String> {
    let bytes = fs_err::read(path).map_err(|err| err.to_string())?;
    Ok(parse_pth(site, path, &bytes))
}

/// The `.pth` file at `path` in `site` from its bytes: path lines resolved against `site`,
/// `import` lines noted (and the editable finders they load read), never executed.
pub(crate) fn parse_pth(site: &Path, path: &Path, bytes: &[u8]) -> PthFile {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
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
    pth
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_lines_name_their_top_level_modules() {
        assert_eq!(imported_modules("import a, b.c; a.install()"), ["a", "b"]);
    }
}
