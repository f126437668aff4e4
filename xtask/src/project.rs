//! Where things live: the repository root, its target directory, project-local tools, and the
//! `cargo` that runs nested builds.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// The repository xtask belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    root: PathBuf,
}

impl Project {
    /// Finds the repository root: the parent of this crate's manifest directory.
    pub(crate) fn locate() -> Result<Self> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .with_context(|| format!("{} has no parent directory", manifest_dir.display()))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The repository root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The xtask crate's own directory (requirements files, bench scripts).
    pub(crate) fn xtask_dir(&self) -> PathBuf {
        self.root.join("xtask")
    }

    /// `<repo>/.tools`: project-local tools, cached between runs, ignored by git.
    pub(crate) fn tools_dir(&self) -> PathBuf {
        self.root.join(".tools")
    }

    /// Cargo's target directory: `CARGO_TARGET_DIR` if set (relative to the root), else
    /// `<repo>/target`.
    pub(crate) fn target_dir(&self) -> PathBuf {
        match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => self.root.join(dir),
            _ => self.root.join("target"),
        }
    }

    /// A `cargo` command run from the repository root, using the same cargo that runs xtask.
    pub(crate) fn cargo(&self) -> Command {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut command = Command::new(cargo);
        command.current_dir(&self.root);
        command
    }
}
