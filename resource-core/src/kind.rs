//! The three kinds of resource Toil knows, named by Toil's class names.

use std::fmt;
use std::str::FromStr;

/// What a resource holds, and so how a worker installs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ResourceKind {
    /// A single file, stored as its raw bytes (`toil.resource.FileResource`).
    File,
    /// A directory stored as a zip archive (`toil.resource.DirectoryResource`).
    Directory,
    /// A virtualenv's `site-packages` stored as a zip archive (`toil.resource.VirtualEnvResource`).
    VirtualEnv,
}

impl ResourceKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ResourceKind; 3] = [Self::File, Self::Directory, Self::VirtualEnv];

    /// Toil's fully qualified class name, the prefix of the wire form.
    pub fn toil_class(self) -> &'static str {
        match self {
            Self::File => "toil.resource.FileResource",
            Self::Directory => "toil.resource.DirectoryResource",
            Self::VirtualEnv => "toil.resource.VirtualEnvResource",
        }
    }

    /// The kind with the given Toil class name.
    pub fn from_toil_class(class: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.toil_class() == class)
    }

    /// The short name used on the command line and in JSON: `file`, `dir` or `venv`.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Directory => "dir",
            Self::VirtualEnv => "venv",
        }
    }

    /// Whether the stored bytes are a zip archive that a worker extracts.
    pub fn is_archive(self) -> bool {
        !matches!(self, Self::File)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// A kind name that is none of `file`, `dir` or `venv`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resource kind {0:?}; expected one of file, dir, venv")]
pub struct UnknownKind(pub String);

impl FromStr for ResourceKind {
    type Err = UnknownKind;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.short_name() == value)
            .ok_or_else(|| UnknownKind(value.to_owned()))
    }
}
