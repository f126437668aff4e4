//! The deterministic, streaming archive writer: packs a directory or virtualenv resource into a
//! zip archive over any [`std::io::Write`], in constant memory.
//!
//! Packing has two steps. [`plan`] walks the tree and checks everything (layout, dangerous roots,
//! symbolic links, special and unreadable files, excludes) before anything is written, and
//! returns a [`PackPlan`]. [`PackPlan::write`] then streams the archive. The caller hashes it
//! by wrapping the output in [`HashingWriter`]; because the writer only needs `W: Write` and
//! hands it large writes (1 MiB), it can run on one thread while another hashes and uploads.
//!
//! ```
//! use resource_core::archive::pack::{self, PackOptions};
//! use resource_core::hash::HashingWriter;
//! use resource_core::ResourceKind;
//!
//! let tree = tempfile::tempdir()?;
//! std::fs::create_dir(tree.path().join("empty"))?;
//! std::fs::write(tree.path().join("flow.py"), "def main(): pass\n")?;
//!
//! let plan = pack::plan(tree.path(), ResourceKind::Directory, &PackOptions::default())?;
//! assert_eq!((plan.file_count(), plan.dir_count(), plan.file_bytes()), (1, 1, 17));
//! let names: Vec<&str> = plan.entries().iter().map(|entry| entry.name()).collect();
//! assert_eq!(names, ["empty/", "flow.py"]);
//!
//! let mut out = HashingWriter::new(Vec::new());
//! let summary = plan.write(&mut out)?;
//! let (archive, content_hash) = out.finish()?;
//! assert_eq!(summary.archive_len, archive.len() as u64);
//! // A dry run gives the same length and hash without keeping the bytes.
//! assert_eq!(plan.measure()?, (summary.archive_len, content_hash));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The archive
//!
//! - Entries are sorted by the bytes of their names, directories have explicit entries (so empty
//!   directories survive), and each entry records its Unix mode (setuid, setgid and sticky bits
//!   stripped) and modification time, both as an MS-DOS time in UTC and in the extended-timestamp
//!   extra field. Nothing else about the machine or file system (owners, inode order, sub-second
//!   times) is recorded, so the same tree gives the same bytes everywhere.
//! - Files up to 1 MiB are read whole before their header is written, so their local header
//!   carries CRC and sizes. Larger files are streamed: their local header has the
//!   data-descriptor flag, zero CRC and sizes, and a signed data descriptor follows the data.
//!   The choice depends only on the file size, so it is deterministic too.
//! - Deflate uses `miniz_oxide` directly, at a fixed level, so deflated bytes depend neither on
//!   CPU features nor on the `flate2` backend a build happens to select. A small file whose
//!   deflated form is not smaller, and every empty file, directory and link, is stored.
//! - Zip64 appears only when needed: a streamed member that may reach 4 GiB gets zip64 sizes in
//!   its local header (0xFFFFFFFF and a zip64 extra field with zero sizes) and 8-byte sizes in
//!   its data descriptor; the central directory carries a zip64 extra field for sizes or offsets
//!   of 4 GiB and more; the zip64 end records appear for 65,535 entries or more, or for a central
//!   directory that starts or ends past 4 GiB. Small archives are plain zip.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use miniz_oxide::DataFormat;
use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus, compress};

use super::format::{
    CENTRAL_HEADER_LEN, CENTRAL_HEADER_SIG, DATA_DESCRIPTOR_SIG, DOS_DIRECTORY,
    END_OF_CENTRAL_DIR_LEN, END_OF_CENTRAL_DIR_SIG, EXTRA_EXTENDED_TIMESTAMP, EXTRA_ZIP64,
    FLAG_DATA_DESCRIPTOR, FLAG_UTF8, LOCAL_HEADER_LEN, LOCAL_HEADER_SIG, METHOD_DEFLATE,
    METHOD_STORED, VERSION_MADE_BY_UNIX, VERSION_NEEDED_DEFAULT, VERSION_NEEDED_ZIP64,
    ZIP64_END_OF_CENTRAL_DIR_LEN, ZIP64_END_OF_CENTRAL_DIR_SIG, ZIP64_LOCATOR_LEN,
    ZIP64_LOCATOR_SIG, unix_to_dos,
};
use super::walk;
pub use super::walk::{EntryKind, PlanEntry};
use crate::ResourceKind;
use crate::hash::{ContentHash, HashingWriter};

/// The size of the output buffer and of every write but the last one, and the largest file
/// read whole before its header is written.
const BUFFER_LEN: usize = 1 << 20;

/// Files up to this size carry CRC and sizes in their local header; larger ones are streamed
/// with a data descriptor.
const WHOLE_FILE_LIMIT: u64 = BUFFER_LEN as u64;

/// The largest value a 32-bit size or offset field holds; the value itself means "see zip64".
const ZIP32_LIMIT: u64 = 0xffff_ffff;

/// The largest entry count the end of central directory record holds; the value itself means
/// "see zip64".
const ZIP32_ENTRY_LIMIT: u64 = 0xffff;

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

/// A [`Compression`] or [`SymlinkPolicy`] that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not valid here; expected {expected}")]
pub struct ParseOptionError {
    /// The rejected text.
    pub value: String,
    /// What would have been accepted.
    pub expected: &'static str,
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

/// A tree packed beside the main one: a directory, or a single file, named `archive_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraTree {
    /// The directory or file to pack.
    pub source: PathBuf,
    /// Its name in the archive, `/`-separated (such as `mypkg` or `ns/sub`, or `tool.py`).
    pub archive_name: String,
}

impl PackOptions {
    /// The [`mtime_clamp`](Self::mtime_clamp) of a reproducible archive: `SOURCE_DATE_EPOCH` when
    /// it is set (the caller passes the variable's value; the library never reads the
    /// environment), else with `reproducible` 1980-01-01, the earliest a zip can hold, else none.
    ///
    /// ```
    /// use resource_core::archive::PackOptions;
    ///
    /// assert_eq!(PackOptions::reproducible_mtime_clamp(Some(" 1700000000 "), false)?, Some(1_700_000_000));
    /// assert_eq!(PackOptions::reproducible_mtime_clamp(None, true)?, Some(315_532_800));
    /// assert_eq!(PackOptions::reproducible_mtime_clamp(Some(""), false)?, None);
    /// assert!(PackOptions::reproducible_mtime_clamp(Some("soon"), true).is_err());
    /// # Ok::<(), resource_core::archive::pack::SourceDateEpochError>(())
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
            None if reproducible => Ok(Some(super::format::DOS_EPOCH_UNIX_SECONDS)),
            None => Ok(None),
        }
    }
}

/// A `SOURCE_DATE_EPOCH` that is not a whole number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SOURCE_DATE_EPOCH={value:?} is not a whole number of seconds")]
pub struct SourceDateEpochError {
    /// The variable's value.
    pub value: String,
    /// Why it does not parse.
    #[source]
    pub source: std::num::ParseIntError,
}

/// Why a tree cannot be packed, or the archive could not be written. Every error about a path
/// names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// Two entries would have the same name (an extra tree overlaps the main tree or another).
    #[error(
        "two entries would be named {name:?} in the archive; an extra tree overlaps another tree"
    )]
    DuplicateEntry {
        /// The name.
        name: String,
    },
    /// An extra tree's archive name is empty or climbs out of the archive.
    #[error("{name:?} is not a name for an extra tree in the archive")]
    BadExtraName {
        /// The name given.
        name: String,
    },
    /// Only directory and virtualenv resources are archives.
    #[error("a {kind} resource is stored as it is, not packed into an archive")]
    NotAnArchiveKind {
        /// The kind asked for.
        kind: ResourceKind,
    },
    /// The path is a system directory, `/` or the home directory, which Toil never packs.
    #[error(
        "refusing to pack {}: it is {}, which is never packed as a resource (a system directory, the file system root or the home directory)",
        path.display(), root.display()
    )]
    DangerousRoot {
        /// The path as given.
        path: PathBuf,
        /// The refused directory it names.
        root: PathBuf,
    },
    /// A virtualenv resource must be a `site-packages` directory.
    #[error("{} is not a site-packages directory, so it cannot be packed as a virtualenv", path.display())]
    NotSitePackages {
        /// The path as given.
        path: PathBuf,
    },
    /// The path is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
    },
    /// A symbolic link points nowhere.
    #[error("{} is a dangling symbolic link (its target {} does not exist)", path.display(), target.display())]
    DanglingSymlink {
        /// The link.
        path: PathBuf,
        /// Its target as written.
        target: PathBuf,
    },
    /// Following a symbolic link leads back to a directory already being packed.
    #[error("{} loops back to one of its own parent directories (a symbolic link loop)", path.display())]
    SymlinkLoop {
        /// The link that closes the loop.
        path: PathBuf,
    },
    /// With [`SymlinkPolicy::Keep`], a link points outside the tree, or its target is written
    /// in a way the archive reader refuses.
    #[error("{} is a symbolic link to {}, which cannot be kept as a link: {reason}; links are kept only when they stay inside the tree", path.display(), target.display())]
    LinkEscapesTree {
        /// The link.
        path: PathBuf,
        /// Its target as written.
        target: PathBuf,
        /// Why the target is refused.
        reason: &'static str,
    },
    /// A named pipe, socket or device, which an archive cannot carry.
    #[error("{} is a {kind}, which cannot be packed", path.display())]
    SpecialFile {
        /// The special file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A file or directory cannot be read.
    #[error("cannot read {}", path.display())]
    Unreadable {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file changed size or modification time between planning and writing, or while it was
    /// read.
    #[error("{} changed while it was being packed; pack again once it is stable", path.display())]
    ChangedWhilePacking {
        /// The file.
        path: PathBuf,
    },
    /// Another I/O error on a path.
    #[error("I/O error on {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing the archive to the output failed.
    #[error("cannot write the archive")]
    Output {
        /// Why.
        source: io::Error,
    },
    /// An exclude glob is malformed.
    #[error("invalid exclude glob {glob:?}: {reason}")]
    BadGlob {
        /// The glob.
        glob: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `.gitignore` file cannot be read or parsed.
    #[error("cannot use {}: {reason}", path.display())]
    BadGitignore {
        /// The `.gitignore` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A name is not UTF-8, which Toil's archives need.
    #[error("the name of {} is not valid UTF-8, so it cannot be packed", path.display())]
    NonUtf8Name {
        /// The path.
        path: PathBuf,
    },
    /// A name holds a control character (a newline, say), which the archive reader refuses.
    #[error("the name of {} holds a control character, which archive readers refuse", path.display())]
    ControlCharacterInName {
        /// The path.
        path: PathBuf,
    },
    /// A kept symbolic link's target is not UTF-8.
    #[error("the target of the symbolic link {} is not valid UTF-8, so it cannot be packed", path.display())]
    NonUtf8LinkTarget {
        /// The link.
        path: PathBuf,
    },
    /// An entry name is longer than the 65,535 bytes a zip header holds.
    #[error("the archive name of {} is longer than a zip archive allows", path.display())]
    NameTooLong {
        /// The path.
        path: PathBuf,
    },
    /// A deflate level outside 0 to 9.
    #[error("deflate level {level} is out of range; use 0 to 9")]
    BadCompressionLevel {
        /// The level asked for.
        level: u32,
    },
    /// The compressor failed; this is a bug in the compressor or the writer, not in the data.
    #[error("deflating {} failed: {reason}", path.display())]
    Deflate {
        /// The file being deflated.
        path: PathBuf,
        /// What went wrong.
        reason: &'static str,
    },
}

/// The checked, sorted list of entries for one tree, ready to be written any number of times.
#[derive(Debug, Clone)]
pub struct PackPlan {
    root: PathBuf,
    prefix_len: usize,
    compression: Compression,
    entries: Vec<PlanEntry>,
    file_count: u64,
    dir_count: u64,
    symlink_count: u64,
    file_bytes: u64,
}

/// What [`PackPlan::write`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteSummary {
    /// The number of entries.
    pub entries: u64,
    /// The length of the archive in bytes.
    pub archive_len: u64,
    /// Whether the archive needed the zip64 end records.
    pub zip64: bool,
}

/// Walks and checks `path` as a resource of `kind` (directory or virtualenv) and returns the
/// plan of its archive. Nothing is written; every refusal happens here.
///
/// A directory holding `__init__.py` is a package: entry names start with its base name and a
/// `/`. Any other directory, and a virtualenv's `site-packages`, is the archive root itself.
pub fn plan(path: &Path, kind: ResourceKind, options: &PackOptions) -> Result<PackPlan, PackError> {
    if let Compression::Deflate { level } = options.compression
        && level > 9
    {
        return Err(PackError::BadCompressionLevel { level });
    }
    let tree = walk::walk(path, kind, options)?;
    let mut plan = PackPlan {
        root: tree.root,
        prefix_len: tree.prefix.len(),
        compression: options.compression,
        entries: tree.entries,
        file_count: 0,
        dir_count: 0,
        symlink_count: 0,
        file_bytes: 0,
    };
    for entry in &plan.entries {
        if u16::try_from(entry.name.len()).is_err() {
            return Err(PackError::NameTooLong {
                path: plan.source_path(entry),
            });
        }
        match entry.kind {
            EntryKind::Directory => plan.dir_count += 1,
            EntryKind::File { size } => {
                plan.file_count += 1;
                plan.file_bytes += size;
            }
            EntryKind::Symlink { .. } => plan.symlink_count += 1,
        }
    }
    Ok(plan)
}

impl PackPlan {
    /// The number of regular files (links followed count as files).
    pub fn file_count(&self) -> u64 {
        self.file_count
    }

    /// The number of directory entries, the package directory itself included.
    pub fn dir_count(&self) -> u64 {
        self.dir_count
    }

    /// The number of symbolic links kept as links.
    pub fn symlink_count(&self) -> u64 {
        self.symlink_count
    }

    /// The total size of the regular files, as measured while planning.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// The entries in archive order.
    pub fn entries(&self) -> &[PlanEntry] {
        &self.entries
    }

    /// The directory that was walked, made absolute.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The compression the archive is written with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Where an entry's content is read from.
    pub fn source_path(&self, entry: &PlanEntry) -> PathBuf {
        if let Some(source) = &entry.source {
            return source.clone();
        }
        let rel = entry
            .name
            .get(self.prefix_len..)
            .unwrap_or_default()
            .trim_end_matches('/');
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// Writes the archive to `out` and flushes it. Pass `&mut writer` to keep the writer.
    ///
    /// The output receives 1 MiB writes (the last one shorter), never small ones. A file that
    /// changed since planning is an error naming it; `out` then holds a partial archive.
    pub fn write<W: Write>(&self, out: W) -> Result<WriteSummary, PackError> {
        let mut writer = ArchiveWriter::new(out, self.compression);
        let mut records = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            records.push(writer.add(entry, || self.source_path(entry))?);
        }
        writer.finish(&self.entries, &records)
    }

    /// A dry run: the length and content hash of the archive, computed without keeping it.
    pub fn measure(&self) -> Result<(u64, ContentHash), PackError> {
        let mut out = HashingWriter::new(io::sink());
        let summary = self.write(&mut out)?;
        let (_, hash) = out.finish().map_err(|error| output_error(error.into()))?;
        Ok((summary.archive_len, hash))
    }
}

/// What the central directory needs about an entry once its data is written.
#[derive(Debug, Clone, Copy)]
struct WrittenEntry {
    offset: u64,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    /// Whether the local header carries zip64 sizes; the central header then does too.
    zip64_sizes: bool,
}

impl WrittenEntry {
    fn version_needed(&self) -> u16 {
        if self.zip64_sizes
            || self.offset >= ZIP32_LIMIT
            || self.compressed >= ZIP32_LIMIT
            || self.uncompressed >= ZIP32_LIMIT
        {
            VERSION_NEEDED_ZIP64
        } else {
            VERSION_NEEDED_DEFAULT
        }
    }
}

/// The writer state for one archive: the output buffer, scratch buffers and the compressor,
/// all allocated once and reused for every entry.
struct ArchiveWriter<W> {
    out: OutputBuffer<W>,
    /// Header bytes being encoded.
    header: Vec<u8>,
    /// A whole small file, or a chunk of a large file being deflated.
    scratch: Box<[u8]>,
    /// The deflated form of a whole small file.
    deflated: Vec<u8>,
    deflater: Option<Box<CompressorOxide>>,
}

impl<W: Write> ArchiveWriter<W> {
    fn new(out: W, compression: Compression) -> Self {
        let deflater = match compression {
            Compression::Stored => None,
            Compression::Deflate { level } => {
                let mut deflater = Box::<CompressorOxide>::default();
                // Validated by `plan`; `min` only keeps the conversion total.
                deflater.set_format_and_level(DataFormat::Raw, level.min(9) as u8);
                Some(deflater)
            }
        };
        Self {
            out: OutputBuffer::new(out),
            header: Vec::with_capacity(512),
            scratch: vec![0; BUFFER_LEN].into_boxed_slice(),
            deflated: Vec::new(),
            deflater,
        }
    }

    fn add(
        &mut self,
        entry: &PlanEntry,
        source: impl FnOnce() -> PathBuf,
    ) -> Result<WrittenEntry, PackError> {
        match &entry.kind {
            EntryKind::Directory => self.add_whole(entry, METHOD_STORED, 0, 0, None),
            EntryKind::Symlink { target } => {
                let target = target.as_bytes();
                let crc = crc32fast::hash(target);
                self.add_whole(entry, METHOD_STORED, crc, target.len() as u64, Some(target))
            }
            EntryKind::File { size } if *size <= WHOLE_FILE_LIMIT => {
                self.add_small_file(entry, *size, &source())
            }
            EntryKind::File { size } => self.add_streamed_file(entry, *size, &source()),
        }
    }

    /// Writes an entry whose CRC and sizes are known before its header. `data` is `None` for
    /// the data held in `self.scratch` (stored) or `self.deflated` (deflated).
    fn add_whole(
        &mut self,
        entry: &PlanEntry,
        method: u16,
        crc: u32,
        uncompressed: u64,
        data: Option<&[u8]>,
    ) -> Result<WrittenEntry, PackError> {
        let data = match data {
            Some(data) => data,
            None if method == METHOD_DEFLATE => &self.deflated[..],
            None => self
                .scratch
                .get(..uncompressed as usize)
                .unwrap_or_default(),
        };
        let written = WrittenEntry {
            offset: self.out.position,
            flags: name_flags(&entry.name),
            method,
            crc,
            compressed: data.len() as u64,
            uncompressed,
            zip64_sizes: data.len() as u64 >= ZIP32_LIMIT || uncompressed >= ZIP32_LIMIT,
        };
        encode_local_header(&mut self.header, entry, &written);
        self.out.put(&self.header).map_err(output_error)?;
        self.out.put(data).map_err(output_error)?;
        Ok(written)
    }

    /// Reads a file of at most [`WHOLE_FILE_LIMIT`] bytes whole, so its header carries CRC and
    /// sizes, and deflates it when that makes it smaller.
    fn add_small_file(
        &mut self,
        entry: &PlanEntry,
        size: u64,
        path: &Path,
    ) -> Result<WrittenEntry, PackError> {
        let mut file = open(path)?;
        let len = size as usize;
        let content = self.scratch.get_mut(..len).unwrap_or_default();
        read_exactly(&mut file, content, path)?;
        expect_end(&mut file, path)?;
        check_unchanged(&file, entry, size, path)?;
        let crc = crc32fast::hash(content);
        let mut method = METHOD_STORED;
        if let Some(deflater) = self.deflater.as_deref_mut()
            && len > 0
        {
            deflate_whole(deflater, content, &mut self.deflated, path)?;
            if self.deflated.len() < len {
                method = METHOD_DEFLATE;
            }
        }
        self.add_whole(entry, method, crc, size, None)
    }

    /// Streams a file larger than [`WHOLE_FILE_LIMIT`] through the output buffer, followed by a
    /// data descriptor.
    fn add_streamed_file(
        &mut self,
        entry: &PlanEntry,
        size: u64,
        path: &Path,
    ) -> Result<WrittenEntry, PackError> {
        let mut file = open(path)?;
        let method = if self.deflater.is_some() {
            METHOD_DEFLATE
        } else {
            METHOD_STORED
        };
        // Deflate can expand incompressible data slightly (stored blocks cost 5 bytes per
        // 64 KiB), so a deflated member switches to zip64 sizes with a wide margin.
        let worst_case = if method == METHOD_DEFLATE {
            size + size / 64 + 4096
        } else {
            size
        };
        let mut written = WrittenEntry {
            offset: self.out.position,
            flags: name_flags(&entry.name) | FLAG_DATA_DESCRIPTOR,
            method,
            crc: 0,
            compressed: 0,
            uncompressed: size,
            zip64_sizes: worst_case >= ZIP32_LIMIT,
        };
        encode_local_header(&mut self.header, entry, &written);
        self.out.put(&self.header).map_err(output_error)?;
        let data_start = self.out.position;

        let mut crc = crc32fast::Hasher::new();
        match self.deflater.as_deref_mut() {
            None => copy_stored(&mut file, size, &mut self.out, &mut crc, path)?,
            Some(deflater) => copy_deflated(
                &mut file,
                size,
                deflater,
                &mut self.scratch,
                &mut self.out,
                &mut crc,
                path,
            )?,
        }
        expect_end(&mut file, path)?;
        check_unchanged(&file, entry, size, path)?;
        written.crc = crc.finalize();
        written.compressed = self.out.position - data_start;
        if !written.zip64_sizes && written.compressed >= ZIP32_LIMIT {
            return Err(PackError::Deflate {
                path: path.to_owned(),
                reason: "the deflated data outgrew the 4 GiB its header allowed for",
            });
        }

        self.header.clear();
        put_u32(&mut self.header, DATA_DESCRIPTOR_SIG);
        put_u32(&mut self.header, written.crc);
        if written.zip64_sizes {
            put_u64(&mut self.header, written.compressed);
            put_u64(&mut self.header, written.uncompressed);
        } else {
            put_u32(&mut self.header, written.compressed as u32);
            put_u32(&mut self.header, written.uncompressed as u32);
        }
        self.out.put(&self.header).map_err(output_error)?;
        Ok(written)
    }

    /// Writes the central directory and end records, then flushes the output.
    fn finish(
        mut self,
        entries: &[PlanEntry],
        records: &[WrittenEntry],
    ) -> Result<WriteSummary, PackError> {
        let directory_start = self.out.position;
        for (entry, written) in entries.iter().zip(records) {
            encode_central_header(&mut self.header, entry, written);
            self.out.put(&self.header).map_err(output_error)?;
        }
        let directory_end = self.out.position;
        let directory_len = directory_end - directory_start;
        let count = entries.len() as u64;
        let zip64 = count >= ZIP32_ENTRY_LIMIT
            || directory_len >= ZIP32_LIMIT
            || directory_start >= ZIP32_LIMIT;

        let header = &mut self.header;
        header.clear();
        if zip64 {
            put_u32(header, ZIP64_END_OF_CENTRAL_DIR_SIG);
            // The record's size excludes its signature and this size field.
            put_u64(header, (ZIP64_END_OF_CENTRAL_DIR_LEN - 12) as u64);
            put_u16(header, VERSION_MADE_BY_UNIX);
            put_u16(header, VERSION_NEEDED_ZIP64);
            put_u32(header, 0); // this disk
            put_u32(header, 0); // disk where the central directory starts
            put_u64(header, count); // entries on this disk
            put_u64(header, count);
            put_u64(header, directory_len);
            put_u64(header, directory_start);
            put_u32(header, ZIP64_LOCATOR_SIG);
            put_u32(header, 0); // disk holding the zip64 end record
            put_u64(header, directory_end);
            put_u32(header, 1); // total number of disks
        }
        put_u32(header, END_OF_CENTRAL_DIR_SIG);
        put_u16(header, 0); // this disk
        put_u16(header, 0); // disk where the central directory starts
        let count16 = count.min(ZIP32_ENTRY_LIMIT) as u16;
        put_u16(header, count16);
        put_u16(header, count16);
        put_u32(header, directory_len.min(ZIP32_LIMIT) as u32);
        put_u32(header, directory_start.min(ZIP32_LIMIT) as u32);
        put_u16(header, 0); // comment length
        let zip64_len = if zip64 {
            ZIP64_END_OF_CENTRAL_DIR_LEN + ZIP64_LOCATOR_LEN
        } else {
            0
        };
        debug_assert_eq!(header.len(), zip64_len + END_OF_CENTRAL_DIR_LEN);
        self.out.put(&self.header).map_err(output_error)?;
        let archive_len = self.out.position;
        self.out.finish().map_err(output_error)?;
        Ok(WriteSummary {
            entries: count,
            archive_len,
            zip64,
        })
    }
}

/// Buffers the output so that it receives only full 1 MiB writes, the last one excepted, and
/// lets file data be read straight into the buffer.
struct OutputBuffer<W> {
    inner: W,
    buffer: Box<[u8]>,
    filled: usize,
    /// Bytes accepted so far, buffered or written: the offset of the next byte in the archive.
    position: u64,
}

impl<W: Write> OutputBuffer<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            buffer: vec![0; BUFFER_LEN].into_boxed_slice(),
            filled: 0,
            position: 0,
        }
    }

    /// The free part of the buffer, never empty: a full buffer is written out first.
    fn spare(&mut self) -> io::Result<&mut [u8]> {
        if self.filled == self.buffer.len() {
            self.drain()?;
        }
        Ok(self.buffer.get_mut(self.filled..).unwrap_or_default())
    }

    /// Marks `len` bytes at the start of [`spare`](Self::spare) as filled.
    fn commit(&mut self, len: usize) {
        self.filled += len;
        self.position += len as u64;
    }

    fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let spare = self.spare()?;
            let len = spare.len().min(bytes.len());
            let (now, later) = bytes.split_at(len);
            spare[..len].copy_from_slice(now);
            self.commit(len);
            bytes = later;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        if self.filled > 0 {
            self.inner.write_all(&self.buffer[..self.filled])?;
            self.filled = 0;
        }
        Ok(())
    }

    /// Writes what is buffered, flushes and hands the output back.
    fn finish(mut self) -> io::Result<W> {
        self.drain()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

fn output_error(source: io::Error) -> PackError {
    PackError::Output { source }
}

fn name_flags(name: &str) -> u16 {
    if name.is_ascii() { 0 } else { FLAG_UTF8 }
}

fn put_u16(buf: &mut Vec<u8>, value: u16) {
    buf.extend_from_slice(&value.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, value: u32) {
    buf.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(buf: &mut Vec<u8>, value: u64) {
    buf.extend_from_slice(&value.to_le_bytes());
}

/// A 32-bit size or offset field: the value, or 0xFFFFFFFF when zip64 carries it.
fn zip32(value: u64, in_zip64: bool) -> u32 {
    if in_zip64 { u32::MAX } else { value as u32 }
}

/// The extended-timestamp extra field with the modification time only, the same in the local
/// and the central header. It holds signed 32-bit seconds, so later times are clamped.
fn put_extended_timestamp(buf: &mut Vec<u8>, mtime: i64) {
    put_u16(buf, EXTRA_EXTENDED_TIMESTAMP);
    put_u16(buf, 5);
    buf.push(1); // flags: modification time present
    let seconds = mtime.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    buf.extend_from_slice(&seconds.to_le_bytes());
}

fn encode_local_header(buf: &mut Vec<u8>, entry: &PlanEntry, written: &WrittenEntry) {
    let streamed = written.flags & FLAG_DATA_DESCRIPTOR != 0;
    let (time, date) = unix_to_dos(entry.mtime);
    buf.clear();
    put_u32(buf, LOCAL_HEADER_SIG);
    put_u16(buf, written.version_needed());
    put_u16(buf, written.flags);
    put_u16(buf, written.method);
    put_u16(buf, time);
    put_u16(buf, date);
    if streamed {
        // CRC and sizes follow the data in the data descriptor.
        put_u32(buf, 0);
        let size = if written.zip64_sizes { u32::MAX } else { 0 };
        put_u32(buf, size);
        put_u32(buf, size);
    } else {
        put_u32(buf, written.crc);
        put_u32(buf, zip32(written.compressed, written.zip64_sizes));
        put_u32(buf, zip32(written.uncompressed, written.zip64_sizes));
    }
    put_u16(buf, entry.name.len() as u16);
    let extra_len = if written.zip64_sizes { 4 + 16 } else { 0 } + 9;
    put_u16(buf, extra_len);
    debug_assert_eq!(buf.len(), LOCAL_HEADER_LEN);
    buf.extend_from_slice(entry.name.as_bytes());
    if written.zip64_sizes {
        // The local zip64 field holds both sizes, zero while they follow the data.
        put_u16(buf, EXTRA_ZIP64);
        put_u16(buf, 16);
        let (uncompressed, compressed) = if streamed {
            (0, 0)
        } else {
            (written.uncompressed, written.compressed)
        };
        put_u64(buf, uncompressed);
        put_u64(buf, compressed);
    }
    put_extended_timestamp(buf, entry.mtime);
}

fn encode_central_header(buf: &mut Vec<u8>, entry: &PlanEntry, written: &WrittenEntry) {
    let (time, date) = unix_to_dos(entry.mtime);
    let uncompressed_in_zip64 = written.zip64_sizes || written.uncompressed >= ZIP32_LIMIT;
    let compressed_in_zip64 = written.zip64_sizes || written.compressed >= ZIP32_LIMIT;
    let offset_in_zip64 = written.offset >= ZIP32_LIMIT;
    let zip64_len = 8
        * (u16::from(uncompressed_in_zip64)
            + u16::from(compressed_in_zip64)
            + u16::from(offset_in_zip64));
    let zip64_field_len = if zip64_len > 0 { 4 + zip64_len } else { 0 };
    let mut external = entry.unix_mode() << 16;
    if entry.kind == EntryKind::Directory {
        external |= DOS_DIRECTORY;
    }

    buf.clear();
    put_u32(buf, CENTRAL_HEADER_SIG);
    put_u16(buf, VERSION_MADE_BY_UNIX);
    put_u16(buf, written.version_needed());
    put_u16(buf, written.flags);
    put_u16(buf, written.method);
    put_u16(buf, time);
    put_u16(buf, date);
    put_u32(buf, written.crc);
    put_u32(buf, zip32(written.compressed, compressed_in_zip64));
    put_u32(buf, zip32(written.uncompressed, uncompressed_in_zip64));
    put_u16(buf, entry.name.len() as u16);
    put_u16(buf, zip64_field_len + 9);
    put_u16(buf, 0); // comment length
    put_u16(buf, 0); // disk where the entry starts
    put_u16(buf, 0); // internal attributes
    put_u32(buf, external);
    put_u32(buf, zip32(written.offset, offset_in_zip64));
    debug_assert_eq!(buf.len(), CENTRAL_HEADER_LEN);
    buf.extend_from_slice(entry.name.as_bytes());
    if zip64_len > 0 {
        // Only the fields whose 32-bit form overflowed, in the order the format fixes.
        put_u16(buf, EXTRA_ZIP64);
        put_u16(buf, zip64_len);
        if uncompressed_in_zip64 {
            put_u64(buf, written.uncompressed);
        }
        if compressed_in_zip64 {
            put_u64(buf, written.compressed);
        }
        if offset_in_zip64 {
            put_u64(buf, written.offset);
        }
    }
    put_extended_timestamp(buf, entry.mtime);
}

fn open(path: &Path) -> Result<File, PackError> {
    File::open(path).map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })
}

/// One `read`, retried when interrupted by a signal.
fn read_some(file: &mut File, buf: &mut [u8], path: &Path) -> Result<usize, PackError> {
    loop {
        match file.read(buf) {
            Ok(len) => return Ok(len),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(PackError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Fills `buf`; reaching the end of the file first means it shrank since planning.
fn read_exactly(file: &mut File, buf: &mut [u8], path: &Path) -> Result<(), PackError> {
    let mut filled = 0;
    while filled < buf.len() {
        let len = read_some(file, &mut buf[filled..], path)?;
        if len == 0 {
            return Err(PackError::ChangedWhilePacking {
                path: path.to_owned(),
            });
        }
        filled += len;
    }
    Ok(())
}

/// Checks that the file ends where the plan said: one more byte means it grew.
fn expect_end(file: &mut File, path: &Path) -> Result<(), PackError> {
    let mut probe = [0; 1];
    if read_some(file, &mut probe, path)? == 0 {
        Ok(())
    } else {
        Err(PackError::ChangedWhilePacking {
            path: path.to_owned(),
        })
    }
}

/// Checks, after reading, that the open file still has the planned size and modification time,
/// which catches same-size rewrites as well.
fn check_unchanged(
    file: &File,
    entry: &PlanEntry,
    size: u64,
    path: &Path,
) -> Result<(), PackError> {
    let metadata = file.metadata().map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })?;
    if metadata.len() == size && metadata.mtime() == entry.source_mtime {
        Ok(())
    } else {
        Err(PackError::ChangedWhilePacking {
            path: path.to_owned(),
        })
    }
}

/// Reads `size` bytes straight into the output buffer, so stored data is copied only once.
fn copy_stored<W: Write>(
    file: &mut File,
    size: u64,
    out: &mut OutputBuffer<W>,
    crc: &mut crc32fast::Hasher,
    path: &Path,
) -> Result<(), PackError> {
    let mut remaining = size;
    while remaining > 0 {
        let spare = out.spare().map_err(output_error)?;
        let want = spare
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let chunk = &mut spare[..want];
        let len = read_some(file, chunk, path)?;
        if len == 0 {
            return Err(PackError::ChangedWhilePacking {
                path: path.to_owned(),
            });
        }
        crc.update(&chunk[..len]);
        out.commit(len);
        remaining -= len as u64;
    }
    Ok(())
}

/// Reads `size` bytes in chunks and deflates them straight into the output buffer.
fn copy_deflated<W: Write>(
    file: &mut File,
    size: u64,
    deflater: &mut CompressorOxide,
    scratch: &mut [u8],
    out: &mut OutputBuffer<W>,
    crc: &mut crc32fast::Hasher,
    path: &Path,
) -> Result<(), PackError> {
    deflater.reset();
    let mut remaining = size;
    while remaining > 0 {
        let want = scratch
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let chunk = &mut scratch[..want];
        let len = read_some(file, chunk, path)?;
        if len == 0 {
            return Err(PackError::ChangedWhilePacking {
                path: path.to_owned(),
            });
        }
        crc.update(&chunk[..len]);
        deflate_into(deflater, &chunk[..len], TDEFLFlush::None, out, path)?;
        remaining -= len as u64;
    }
    deflate_into(deflater, &[], TDEFLFlush::Finish, out, path)
}

/// Feeds `input` to the compressor, writing its output into the output buffer. With
/// [`TDEFLFlush::Finish`] it also ends the deflate stream.
fn deflate_into<W: Write>(
    deflater: &mut CompressorOxide,
    mut input: &[u8],
    flush: TDEFLFlush,
    out: &mut OutputBuffer<W>,
    path: &Path,
) -> Result<(), PackError> {
    let mut guard = DeflateGuard::new(path, flush == TDEFLFlush::Finish);
    loop {
        let spare = out.spare().map_err(output_error)?;
        let (status, consumed, produced) = compress(deflater, input, spare, flush);
        out.commit(produced);
        input = input.get(consumed..).unwrap_or_default();
        if guard.done(status, consumed, produced, input.is_empty())? {
            return Ok(());
        }
    }
}

/// Deflates a whole small file into `deflated`, growing it as needed.
fn deflate_whole(
    deflater: &mut CompressorOxide,
    mut input: &[u8],
    deflated: &mut Vec<u8>,
    path: &Path,
) -> Result<(), PackError> {
    deflater.reset();
    deflated.clear();
    deflated.resize(input.len() / 2 + 1024, 0);
    let mut filled = 0;
    let mut guard = DeflateGuard::new(path, true);
    loop {
        if filled == deflated.len() {
            deflated.resize(filled * 2, 0);
        }
        let (status, consumed, produced) =
            compress(deflater, input, &mut deflated[filled..], TDEFLFlush::Finish);
        filled += produced;
        input = input.get(consumed..).unwrap_or_default();
        if guard.done(status, consumed, produced, input.is_empty())? {
            break;
        }
    }
    deflated.truncate(filled);
    Ok(())
}

/// Reads the compressor's answers for one deflate call sequence: whether to call again, and
/// an error naming the file when it refuses its input or stops making progress.
struct DeflateGuard<'a> {
    path: &'a Path,
    /// Whether the stream is being ended, so only [`TDEFLStatus::Done`] completes it.
    finishing: bool,
    /// Calls in a row that neither consumed nor produced a byte.
    stalls: u32,
}

impl<'a> DeflateGuard<'a> {
    fn new(path: &'a Path, finishing: bool) -> Self {
        Self {
            path,
            finishing,
            stalls: 0,
        }
    }

    /// Whether the work is done after a call that returned `status`, having consumed and
    /// produced the given byte counts; `input_left_empty` says whether all input was consumed.
    fn done(
        &mut self,
        status: TDEFLStatus,
        consumed: usize,
        produced: usize,
        input_left_empty: bool,
    ) -> Result<bool, PackError> {
        let error = |reason| PackError::Deflate {
            path: self.path.to_owned(),
            reason,
        };
        match status {
            TDEFLStatus::Done => return Ok(true),
            TDEFLStatus::Okay if !self.finishing && input_left_empty => return Ok(true),
            TDEFLStatus::Okay => {}
            TDEFLStatus::BadParam | TDEFLStatus::PutBufFailed => {
                return Err(error("the compressor refused its input"));
            }
        }
        // The compressor always progresses while it has room to write; guard against a bug
        // turning into an endless loop.
        self.stalls = if consumed == 0 && produced == 0 {
            self.stalls + 1
        } else {
            0
        };
        if self.stalls > 2 {
            return Err(error("the compressor stopped making progress"));
        }
        Ok(false)
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

    #[test]
    fn output_buffer_writes_full_buffers_only() -> io::Result<()> {
        let mut out = OutputBuffer::new(Vec::new());
        out.put(&[1; 10])?;
        out.put(&vec![2; BUFFER_LEN])?;
        assert_eq!(out.position, BUFFER_LEN as u64 + 10);
        assert_eq!(out.inner.len(), BUFFER_LEN);
        out.put(&[3; 5])?;
        let spare = out.spare()?;
        spare[0] = 4;
        out.commit(1);
        assert_eq!(out.position, BUFFER_LEN as u64 + 16);
        assert_eq!(out.inner.len(), BUFFER_LEN);
        let written = out.finish()?;
        assert_eq!(written.len(), BUFFER_LEN + 16);
        assert_eq!(written[..10], [1; 10]);
        assert_eq!(written[BUFFER_LEN + 10..], [3, 3, 3, 3, 3, 4]);
        Ok(())
    }

    #[test]
    fn deflate_whole_round_trips_through_flate2() -> Result<(), Box<dyn std::error::Error>> {
        let mut deflater = Box::<CompressorOxide>::default();
        deflater.set_format_and_level(DataFormat::Raw, 6);
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut deflated = Vec::new();
        for _ in 0..2 {
            deflate_whole(&mut deflater, &input, &mut deflated, Path::new("x"))?;
            let mut inflated = Vec::new();
            flate2::read::DeflateDecoder::new(&deflated[..]).read_to_end(&mut inflated)?;
            assert_eq!(inflated, input);
        }
        Ok(())
    }
}
