//! The choices a caller makes: how to pack a tree ([`PackOptions`] with its [`Compression`],
//! [`SymlinkPolicy`] and [`ExtraTree`]s) and the limits of unpacking ([`UnpackOptions`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{ParseOptionError, SourceDateEpochError};
use crate::format::DOS_EPOCH_UNIX_SECONDS;

/// The default cap on the total uncompressed size of an archive: 64 GiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 64 << 30;
/// The default cap on the number of entries: 1,048,576.
pub const DEFAULT_MAX_ENTRIES: u64 = 1 << 20;

/// The longest archive unpacked on the calling thread by default. MD5 of 256 KiB takes about
/// 0.4 ms here, a second thread with 1 MiB of fresh buffers about 0.2 ms.
const DEFAULT_INLINE_MAX_LEN: u64 = 256 << 10;

/// The deflate level used for `deflate` without a level, as zlib's default.
const DEFAULT_DEFLATE_LEVEL: u32 = 6;

/// How file contents are stored in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Stored as they are, like Toil's archives. The fastest, and MD5 dominates anyway.
    #[default]
    Stored,
    /// Deflated at a fixed level from 0 (stored blocks) to 9 (smallest).
    Deflate {
        /// The compression level, 0 to 9.
        level: u32,
    },
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stored => f.write_str("stored"),
            Self::Deflate { level } => write!(f, "deflate={level}"),
        }
    }
}

impl FromStr for Compression {
    type Err = ParseOptionError;

    /// Parses `stored`, `deflate` (level 6) or `deflate=LEVEL` with a level from 0 to 9.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseOptionError {
            value: value.to_owned(),
            expected: "stored, deflate or deflate=LEVEL with LEVEL from 0 to 9",
        };
        match value {
            "stored" => Ok(Self::Stored),
            "deflate" => Ok(Self::Deflate {
                level: DEFAULT_DEFLATE_LEVEL,
            }),
            _ => {
                let level = value
                    .strip_prefix("deflate=")
                    .and_then(|level| level.parse::<u32>().ok())
                    .filter(|level| *level <= 9)
                    .ok_or_else(invalid)?;
                Ok(Self::Deflate { level })
            }
        }
    }
}

/// What packing does with symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SymlinkPolicy {
    /// Pack what links point to, directories included, since Toil's workers cannot restore links.
    /// A link that loops back to one of its own parent directories is refused.
    #[default]
    Follow,
    /// Keep links as links whose target is inside the tree; a link whose target leaves the tree
    /// (absolute, climbing above the archive root, or resolving outside it) is refused.
    Keep,
}

impl fmt::Display for SymlinkPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Follow => "follow",
            Self::Keep => "keep",
        })
    }
}

impl FromStr for SymlinkPolicy {
    type Err = ParseOptionError;

    /// Parses `follow` or `keep`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "follow" => Ok(Self::Follow),
            "keep" => Ok(Self::Keep),
            _ => Err(ParseOptionError {
                value: value.to_owned(),
                expected: "follow or keep",
            }),
        }
    }
}

/// How to pack a tree. The default packs everything, stored, following links, with real mtimes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackOptions {
    /// How file contents are stored.
    pub compression: Compression,
    /// What to do with symbolic links.
    pub symlinks: SymlinkPolicy,
    /// Modification times later than this (Unix seconds) are recorded as this, for reproducible
    /// archives (`SOURCE_DATE_EPOCH`).
    pub mtime_clamp: Option<i64>,
    /// Globs of paths to leave out, matched against the path relative to the packed directory
    /// and against the base name. `*` does not cross `/`; `**` does. An excluded directory is
    /// left out with everything in it.
    pub excludes: Vec<String>,
    /// Honour `.gitignore` files inside the packed directory (not above it), and leave `.git`
    /// out.
    pub gitignore: bool,
    /// Name entries `<basename>/…` even without an `__init__.py`: the directory is the root
    /// package of a dotted name (a namespace package), which Toil's rule would lose.
    pub package_root: bool,
    /// More trees to place in the archive under their own names, such as the source trees of a
    /// virtualenv's editable installs (which Toil cannot ship). A name that is also in the main
    /// tree is an error.
    pub extra_trees: Vec<ExtraTree>,
    /// The user's home directory, which is refused as a root. The library never reads `$HOME`
    /// itself; the caller decides.
    pub home_dir: Option<PathBuf>,
}

impl PackOptions {
    /// The [`mtime_clamp`](Self::mtime_clamp) of a reproducible archive: `SOURCE_DATE_EPOCH` when
    /// it is set (the caller passes the variable's value; the library never reads the
    /// environment), else with `reproducible` 1980-01-01, the earliest a zip can hold, else none.
    ///
    /// ```
    /// use resource_archive::PackOptions;
    ///
    /// assert_eq!(PackOptions::reproducible_mtime_clamp(Some(" 1700000000 "), false)?, Some(1_700_000_000));
    /// assert_eq!(PackOptions::reproducible_mtime_clamp(None, true)?, Some(315_532_800));
    /// assert_eq!(PackOptions::reproducible_mtime_clamp(Some(""), false)?, None);
    /// assert!(PackOptions::reproducible_mtime_clamp(Some("soon"), true).is_err());
    /// # Ok::<(), resource_archive::SourceDateEpochError>(())
    /// ```
    pub fn reproducible_mtime_clamp(
        source_date_epoch: Option<&str>,
        reproducible: bool,
    ) -> Result<Option<i64>, SourceDateEpochError> {
        match source_date_epoch.filter(|value| !value.is_empty()) {
            Some(value) => {
                value
                    .trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|source| SourceDateEpochError {
                        value: value.to_owned(),
                        source,
                    })
            }
            None if reproducible => Ok(Some(DOS_EPOCH_UNIX_SECONDS)),
            None => Ok(None),
        }
    }
}

/// A tree packed beside the main one: a directory, or a single file, named `archive_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraTree {
    /// The directory or file to pack.
    pub source: PathBuf,
    /// Its name in the archive, `/`-separated (such as `mypkg` or `ns/sub`, or `tool.py`).
    pub archive_name: String,
}

/// Limits and choices for [`unpack`](crate::unpack()).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnpackOptions {
    /// The most uncompressed bytes to write, counted as data is inflated (default 64 GiB).
    pub max_total_bytes: u64,
    /// The most entries an archive may have (default 1,048,576).
    pub max_entries: u64,
    /// Whether to restore modification times (default `true`; Python's `extractall` does not).
    pub restore_mtimes: bool,
    /// Archives of at most this many bytes are unpacked on the calling thread, from one buffer of
    /// their own length; longer ones on a second thread, which overlaps writing with the
    /// caller's hash (default 256 KiB: below it, the thread and its 1 MiB buffers cost more than
    /// the overlap saves). Both ways check and create the same.
    pub inline_max_len: u64,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self {
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
            restore_mtimes: true,
            inline_max_len: DEFAULT_INLINE_MAX_LEN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_parses_and_prints() {
        let check = |text: &str, expected: Option<Compression>| {
            assert_eq!(text.parse::<Compression>().ok(), expected, "{text}");
            if let Some(compression) = expected {
                let printed = compression.to_string();
                assert_eq!(printed.parse::<Compression>().ok(), expected);
            }
        };
        check("stored", Some(Compression::Stored));
        check("deflate", Some(Compression::Deflate { level: 6 }));
        check("deflate=0", Some(Compression::Deflate { level: 0 }));
        check("deflate=9", Some(Compression::Deflate { level: 9 }));
        check("deflate=10", None);
        check("deflate=", None);
        check("deflate=-1", None);
        check("Stored", None);
        check("zstd", None);
    }

    #[test]
    fn symlink_policy_parses_and_prints() {
        for policy in [SymlinkPolicy::Follow, SymlinkPolicy::Keep] {
            assert_eq!(
                policy.to_string().parse::<SymlinkPolicy>().ok(),
                Some(policy)
            );
        }
        assert!("skip".parse::<SymlinkPolicy>().is_err());
    }
}
