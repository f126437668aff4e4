//! The errors of packing, indexing and unpacking, and of parsing packing options. Every error
//! about a path, an entry or an offset names it; a cause from the OS is the `source`.

use std::io;
use std::path::PathBuf;

use resource_core::ResourceKind;

/// A [`Compression`](crate::Compression) or [`SymlinkPolicy`](crate::SymlinkPolicy) that could not
/// be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not valid here; expected {expected}")]
pub struct ParseOptionError {
    /// The rejected text.
    pub value: String,
    /// What would have been accepted.
    pub expected: &'static str,
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
    /// With [`SymlinkPolicy::Keep`](crate::SymlinkPolicy::Keep), a link points outside the tree, or its target is written
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

/// Why an archive could not be indexed or unpacked. Every variant names the entry, the offset or
/// the path concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// No end of central directory record: the bytes are not a zip archive.
    #[error(
        "not a zip archive: no end of central directory record in the last bytes of {archive_len}"
    )]
    NotAZip {
        /// The length of the archive.
        archive_len: u64,
    },
    /// The archive's structure is broken or uses an unsupported layout (multi-disk, prefixed).
    #[error("malformed zip archive at offset {offset}: {reason}")]
    Malformed {
        /// Where in the archive the problem is.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry name that cannot be created safely under the destination.
    #[error("unsafe entry name {name:?}: {reason}")]
    UnsafeName {
        /// The name (lossily decoded if it is not valid text).
        name: String,
        /// What makes it unsafe.
        reason: &'static str,
    },
    /// Two entries create the same path (names equal after removing a trailing `/`).
    #[error("duplicate entry {name:?}")]
    DuplicateName {
        /// The second entry's name.
        name: String,
    },
    /// An entry lies below a path that another entry makes a regular file, or that exists in the
    /// destination and is not a directory.
    #[error("entry {name:?} lies below {other:?}, which is not a directory")]
    PathConflict {
        /// The entry.
        name: String,
        /// The path that is not a directory.
        other: String,
    },
    /// An entry would be written through a symlink (one made by the archive or found in the
    /// destination).
    #[error("entry {name:?} would be written through the symlink {link:?}")]
    ThroughSymlink {
        /// The entry.
        name: String,
        /// The symlink on its path.
        link: String,
    },
    /// A symlink entry whose target is absolute, leaves the tree, or is otherwise unsafe.
    #[error("symlink {name:?} -> {target:?} refused: {reason}")]
    UnsafeSymlink {
        /// The symlink entry.
        name: String,
        /// Its target (lossily decoded; empty if not read yet).
        target: String,
        /// What makes it unsafe.
        reason: &'static str,
    },
    /// A device, FIFO or socket entry.
    #[error(
        "entry {name:?} is a {file_type} (mode {mode:o}); only files, directories and symlinks are extracted"
    )]
    SpecialFile {
        /// The entry.
        name: String,
        /// The kind of special file.
        file_type: &'static str,
        /// The full Unix mode stored.
        mode: u32,
    },
    /// An encrypted entry.
    #[error("entry {name:?} is encrypted")]
    Encrypted {
        /// The entry.
        name: String,
    },
    /// A compression method other than stored (0) or deflate (8).
    #[error(
        "entry {name:?} uses compression method {method}; only stored (0) and deflate (8) are supported"
    )]
    UnsupportedMethod {
        /// The entry.
        name: String,
        /// The method number.
        method: u16,
    },
    /// A local header or data descriptor disagrees with the central directory (or a stored entry's
    /// two sizes differ).
    #[error(
        "entry {name:?}: the {field} differs: central directory says {central}, local record says {local}"
    )]
    HeaderMismatch {
        /// The entry.
        name: String,
        /// Which field.
        field: &'static str,
        /// The central directory's value.
        central: String,
        /// The local header's or data descriptor's value.
        local: String,
    },
    /// The content is not the declared size. When it is too long, unpacking stops as soon as it
    /// exceeds the declared size, so `actual` is how far it got.
    #[error("entry {name:?} declares {declared} bytes but its data holds {actual}")]
    SizeMismatch {
        /// The entry.
        name: String,
        /// The size the central directory declares.
        declared: u64,
        /// The size found (a lower bound when too long).
        actual: u64,
    },
    /// The content's CRC-32 is not the declared one.
    #[error("entry {name:?}: CRC-32 is {actual:08x}, declared {declared:08x}")]
    CrcMismatch {
        /// The entry.
        name: String,
        /// The CRC the central directory declares.
        declared: u32,
        /// The CRC of the content.
        actual: u32,
    },
    /// The deflate data is corrupt, ends early or has bytes after its end.
    #[error("entry {name:?}: corrupt deflate data: {reason}")]
    CorruptData {
        /// The entry.
        name: String,
        /// What the decompressor found.
        reason: String,
    },
    /// Two entries (or an entry and the central directory) overlap.
    #[error("entry {name:?} overlaps {other:?}")]
    Overlap {
        /// The entry.
        name: String,
        /// What follows it.
        other: String,
    },
    /// More entries than [`UnpackOptions::max_entries`](crate::UnpackOptions::max_entries).
    #[error("the archive has {count} entries; at most {max} are allowed")]
    TooManyEntries {
        /// Entries in the archive.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// The total uncompressed size exceeds [`UnpackOptions::max_total_bytes`](crate::UnpackOptions::max_total_bytes).
    #[error("entry {name:?} takes the unpacked size past the cap of {max} bytes")]
    TooLarge {
        /// The entry that crossed the cap.
        name: String,
        /// The cap.
        max: u64,
    },
    /// The stream ended before the archive did.
    #[error(
        "the stream ended at offset {offset}, before the end of the {archive_len}-byte archive"
    )]
    Truncated {
        /// Bytes received.
        offset: u64,
        /// Bytes expected.
        archive_len: u64,
    },
    /// The stream goes on after the archive's end.
    #[error("the stream holds more than the {archive_len} bytes of the archive")]
    TrailingData {
        /// Bytes expected.
        archive_len: u64,
    },
    /// The central directory in the stream differs from the tail the index was parsed from (the
    /// archive changed between the two reads, or a server is lying).
    #[error("the stream differs from the archive tail the index was read from, at offset {offset}")]
    TailMismatch {
        /// The first differing byte.
        offset: u64,
    },
    /// The destination is not an existing directory.
    #[error("cannot unpack into {path:?}: {reason}")]
    InvalidDestination {
        /// The destination.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// Reading the archive failed.
    #[error("reading the archive at offset {offset} failed")]
    Read {
        /// Where reading failed.
        offset: u64,
        /// The I/O error (naming the file, for local archives).
        #[source]
        source: io::Error,
    },
    /// Creating or writing an entry failed.
    #[error("extracting entry {name:?} failed")]
    Filesystem {
        /// The entry.
        name: String,
        /// The I/O error, naming the path.
        #[source]
        source: io::Error,
    },
    /// The writing thread could not be started.
    #[error("cannot start the unpacking thread")]
    Spawn {
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A bug: an internal invariant failed.
    #[error("internal error while unpacking: {reason}")]
    Internal {
        /// The invariant.
        reason: &'static str,
    },
}

/// Why [`ArchiveIndex::read_tail_with`](crate::ArchiveIndex::read_tail_with) found no index: the
/// caller's function could not read a tail, or the tail read is not the end of a valid archive.
///
/// Deliberately exhaustive: it only says which of the two steps failed, so that a caller maps each
/// in its own terms.
#[derive(Debug, thiserror::Error)]
pub enum TailReadError<E> {
    /// Reading the tail failed; the caller's own error.
    #[error(transparent)]
    Read(E),
    /// The tail was read, and is refused as an archive's end.
    #[error(transparent)]
    Index(#[from] UnpackError),
}
