//! Job store locators: what a user writes after `--store`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::StoreError;
use crate::url::file_url_path;

/// The forms of locator this build accepts, for error messages.
pub const ACCEPTED_LOCATORS: &str = "a directory path, file:/abs/path, memory://";

/// Where a job store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocator {
    /// A directory on a local or shared filesystem (Toil's file job store).
    Directory(PathBuf),
    /// An in-process store that lives as long as the [`crate::JobStore`] (for tests).
    Memory,
}

impl StoreLocator {
    /// A directory store at `path`, made absolute without resolving links (as Toil's `abspath`).
    pub fn directory(path: &Path) -> Result<Self, StoreError> {
        let absolute = std::path::absolute(path).map_err(|source| StoreError::io(path, source))?;
        Ok(Self::Directory(absolute))
    }
}

impl FromStr for StoreLocator {
    type Err = StoreError;

    fn from_str(locator: &str) -> Result<Self, Self::Err> {
        let refuse = |reason: &str| StoreError::BadLocator {
            locator: locator.to_owned(),
            reason: reason.to_owned(),
            accepted: ACCEPTED_LOCATORS,
        };
        if locator.is_empty() {
            return Err(refuse("it is empty"));
        }
        if locator == "memory://" || locator == "memory:" {
            return Ok(Self::Memory);
        }
        if locator.starts_with("file:") {
            let path = file_url_path(locator)
                .ok_or_else(|| refuse("a file: URL must name an absolute local path"))?;
            return Self::directory(&path);
        }
        if let Some((scheme, _)) = locator.split_once("://") {
            return Err(refuse(&format!("the scheme {scheme:?} is not supported")));
        }
        Self::directory(Path::new(locator))
    }
}

impl fmt::Display for StoreLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(path) => write!(f, "{}", path.display()),
            Self::Memory => f.write_str("memory://"),
        }
    }
}
