//! Reading the entries and files of a directory being scanned, and what could not be read.

use std::ffi::OsString;
use std::fs::FileType;
use std::path::{Path, PathBuf};

use serde::Serialize;

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
    #[error("cannot list {}", .path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
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

pub(super) fn list_dir(dir: &Path) -> Result<Vec<(OsString, FileType)>, ScanError> {
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

pub(super) fn is_dir_following(path: &Path, file_type: FileType) -> bool {
    file_type.is_dir() || (file_type.is_symlink() && path.is_dir())
}

pub(super) fn is_file_following(path: &Path, file_type: FileType) -> bool {
    file_type.is_file() || (file_type.is_symlink() && path.is_file())
}

pub(super) fn read_optional_bytes(path: &Path, problems: &mut Vec<ScanProblem>) -> Option<Vec<u8>> {
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

pub(super) fn read_optional(path: &Path, problems: &mut Vec<ScanProblem>) -> Option<String> {
    read_optional_bytes(path, problems).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}
