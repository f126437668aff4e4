//! Finding a module the way Python's import system would, without importing anything.
//!
//! This follows `importlib.machinery.PathFinder` / `FileFinder` for directory entries of the
//! search path: in each entry a package directory (`name/__init__<suffix>`) wins over a module
//! file (`name<suffix>`, suffixes tried as extension, source, bytecode), a directory without
//! `__init__` is remembered as a namespace portion, and the first entry with a real module wins;
//! only if none has one do the portions form a namespace package. Names that the path does not
//! hold are then looked up in setuptools' editable finders, which Python consults after the path.
//! Zip files on the search path are not looked into.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::interpreter::InterpreterSnapshot;
pub use crate::names::is_identifier;

/// Where a module was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A module file (source, bytecode or extension module).
    Module {
        /// The file.
        file: PathBuf,
    },
    /// A regular package.
    Package {
        /// Its `__init__` file.
        init: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// A namespace package, with every portion found.
    Namespace {
        /// The portions (directories), in search-path order.
        portions: Vec<PathBuf>,
    },
}

impl Spec {
    /// The file Python would load, if any (`None` for a namespace package).
    pub fn origin(&self) -> Option<&Path> {
        match self {
            Spec::Module { file } => Some(file),
            Spec::Package { init, .. } => Some(init),
            Spec::Namespace { .. } => None,
        }
    }

    /// Where submodules are looked for: `__path__`.
    pub fn search_locations(&self) -> Vec<PathBuf> {
        match self {
            Spec::Module { .. } => Vec::new(),
            Spec::Package { dir, .. } => vec![dir.clone()],
            Spec::Namespace { portions } => portions.clone(),
        }
    }
}

/// Looks for the module `tail` (one name, no dots) in the directories `locations`, like
/// `PathFinder.find_spec` with `path=locations`.
pub fn find_in<'a>(
    tail: &str,
    locations: impl IntoIterator<Item = &'a Path>,
    suffixes: &[&str],
) -> Option<Spec> {
    let mut portions = Vec::new();
    for entry in locations {
        match find_in_entry(tail, entry, suffixes) {
            EntryResult::Found(spec) => return Some(spec),
            EntryResult::Portion(dir) => portions.push(dir),
            EntryResult::Nothing => {}
        }
    }
    (!portions.is_empty()).then_some(Spec::Namespace { portions })
}

enum EntryResult {
    Found(Spec),
    Portion(PathBuf),
    Nothing,
}

fn with_suffix(dir: &Path, stem: &str, suffix: &str) -> PathBuf {
    let mut name = OsString::from(stem);
    name.push(suffix);
    dir.join(name)
}

fn find_in_entry(tail: &str, entry: &Path, suffixes: &[&str]) -> EntryResult {
    let base = entry.join(tail);
    let mut portion = None;
    if base.is_dir() {
        for suffix in suffixes {
            let init = with_suffix(&base, "__init__", suffix);
            if init.is_file() {
                return EntryResult::Found(Spec::Package { init, dir: base });
            }
        }
        portion = Some(base);
    }
    for suffix in suffixes {
        let file = with_suffix(entry, tail, suffix);
        if file.is_file() {
            return EntryResult::Found(Spec::Module { file });
        }
    }
    portion.map_or(EntryResult::Nothing, EntryResult::Portion)
}

/// Looks a full dotted name up in the editable finders of `snapshot` (setuptools'
/// `_EditableFinder.find_spec`): a mapped name is a package directory (`__init__.py`) or a module
/// path without its suffix.
fn find_in_editable_finders(fullname: &str, snapshot: &InterpreterSnapshot) -> Option<Spec> {
    let suffixes: Vec<&str> = snapshot.facts.import_suffixes().collect();
    for finder in &snapshot.editable_finders {
        if let Some(path) = finder.mapping.get(fullname) {
            let init = path.join("__init__.py");
            if init.is_file() {
                return Some(Spec::Package {
                    init,
                    dir: path.clone(),
                });
            }
            for suffix in &suffixes {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let file = PathBuf::from(file);
                if file.is_file() {
                    return Some(Spec::Module { file });
                }
            }
        }
        if let Some(portions) = finder.namespaces.get(fullname) {
            return Some(Spec::Namespace {
                portions: portions.clone(),
            });
        }
    }
    None
}

/// Resolves a dotted name along `search_path` (then the editable finders), walking packages the
/// way the import system does but without running any `__init__`. Returns the spec of the last
/// part, or the first part that could not be found (as `Err(prefix)`).
pub fn resolve_dotted(
    name: &str,
    search_path: &[PathBuf],
    snapshot: &InterpreterSnapshot,
) -> Result<Spec, String> {
    let suffixes: Vec<&str> = snapshot.facts.import_suffixes().collect();
    let mut parts = name.split('.');
    let first = parts.next().unwrap_or(name);
    let mut fullname = first.to_owned();
    let mut spec = find_in(first, search_path.iter().map(PathBuf::as_path), &suffixes)
        .or_else(|| find_in_editable_finders(first, snapshot))
        .ok_or_else(|| fullname.clone())?;
    for part in parts {
        fullname.push('.');
        fullname.push_str(part);
        let locations = spec.search_locations();
        spec = find_in(part, locations.iter().map(PathBuf::as_path), &suffixes)
            .or_else(|| find_in_editable_finders(&fullname, snapshot))
            .ok_or_else(|| fullname.clone())?;
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_beats_module_and_namespace_collects() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs_err::create_dir_all(a.join("p"))?;
        fs_err::write(a.join("p/__init__.py"), "")?;
        fs_err::write(a.join("p.py"), "")?;
        fs_err::create_dir_all(a.join("ns"))?;
        fs_err::create_dir_all(b.join("ns"))?;
        fs_err::write(b.join("ns.pyc"), "")?;
        let suffixes = [".so", ".py", ".pyc"];
        let entries = [a.as_path(), b.as_path()];
        assert!(matches!(
            find_in("p", entries, &suffixes),
            Some(Spec::Package { .. })
        ));
        // A portion in `a` does not stop a module in `b`.
        assert_eq!(
            find_in("ns", entries, &suffixes),
            Some(Spec::Module {
                file: b.join("ns.pyc")
            })
        );
        fs_err::remove_file(b.join("ns.pyc"))?;
        assert_eq!(
            find_in("ns", entries, &suffixes),
            Some(Spec::Namespace {
                portions: vec![a.join("ns"), b.join("ns")]
            })
        );
        assert_eq!(find_in("nothing", entries, &suffixes), None);
        Ok(())
    }
}
