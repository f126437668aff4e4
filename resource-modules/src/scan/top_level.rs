//! Importable names at the top of a directory: packages, namespace packages, modules, bytecode and
//! extension modules.

use std::ffi::OsStr;
use std::fs::FileType;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{is_dir_following, is_file_following};
use crate::names::{is_identifier, split_extension_name};

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

/// What the entry `name` of `dir` is as an importable top-level name, if anything.
pub(super) fn classify(dir: &Path, name: &OsStr, file_type: FileType) -> Option<TopLevelName> {
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
