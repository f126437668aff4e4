//! The deterministic, streaming zip archive of directory and virtualenv resources: the tree
//! walker, the writer and the safe reader, over plain `std::io` streams.
//!
//! - Packing ([`plan()`], then [`PackPlan::write`]): every check happens while planning, before a
//!   byte is written; the archive is then streamed to any `Write` in constant memory. Entries are
//!   sorted by name with explicit directories, Unix modes and mtimes, so equal trees give equal
//!   bytes on any machine. The caller hashes the archive by wrapping the output in
//!   [`HashingWriter`](resource_core::hash::HashingWriter); because the writer only needs
//!   `W: Write` and hands it large writes (1 MiB), it can run on one thread while another hashes
//!   and uploads.
//! - Unpacking ([`ArchiveIndex::from_tail`] or [`ArchiveIndex::read_tail_with`], then
//!   [`unpack()`]): the central directory is read from the archive's tail, and the archive is then
//!   read once, sequentially, from byte 0 to its end, while it is hashed (through
//!   [`HashingReader`](resource_core::hash::HashingReader)) and extracted, refusing anything
//!   unsafe.
//!
//! The crate is synchronous and knows nothing of storage or networks; it builds on
//! `resource-core` for resource kinds and the MD5.
//!
//! ```
//! use resource_core::ResourceKind;
//! use resource_archive::{ArchiveIndex, PackOptions, TailParse, UnpackOptions};
//! use resource_core::hash::{HashingReader, HashingWriter};
//!
//! let tree = tempfile::tempdir()?;
//! std::fs::create_dir(tree.path().join("pkg"))?;
//! std::fs::write(tree.path().join("pkg/__init__.py"), "VALUE = 1\n")?;
//!
//! // Leader: pack the package (rooted at its parent, as Toil does), hashing on the way.
//! let plan = resource_archive::plan(&tree.path().join("pkg"), ResourceKind::Directory, &PackOptions::default())?;
//! let mut out = HashingWriter::new(Vec::new());
//! plan.write(&mut out)?;
//! let (bytes, content_hash) = out.finish()?;
//!
//! // Worker: index from the tail, then one pass that hashes and unpacks.
//! let TailParse::Index(index) = ArchiveIndex::from_tail(&bytes, bytes.len() as u64)? else {
//!     return Err("the whole archive is its own tail".into());
//! };
//! let dest = tempfile::tempdir()?;
//! let mut reader = HashingReader::new(&bytes[..]);
//! resource_archive::unpack(&index, &mut reader, dest.path(), &UnpackOptions::default())?;
//! assert_eq!(reader.finish()?.1, content_hash);
//! assert_eq!(std::fs::read_to_string(dest.path().join("pkg/__init__.py"))?, "VALUE = 1\n");
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
//!
//! # Safety
//!
//! Nothing is created outside `dest`, and nothing that already exists is overwritten or followed:
//! files are created with `O_EXCL`, directories with `mkdir`, and an existing path component that is
//! a symlink is refused. The index refuses unsafe names (absolute, `..`, `.`, empty components, NUL
//! and control characters), duplicates, entries below a file or symlink entry, special files,
//! encryption and methods other than stored and deflate; symlink targets must stay inside the tree
//! (only leading `..` components, no more of them than the link's depth, nothing absolute). Sizes
//! are counted as data is inflated, so a zip bomb stops at its declared size or at
//! [`UnpackOptions::max_total_bytes`]. On error the destination holds a partial tree: delete it.
//!
//! A backslash is an ordinary character in a name, as it is for Python's `zipfile` on Unix.
//!
//! # Compared with Python's `extractall`
//!
//! Toil's archives extract to the same names and contents. Unlike Python, this reader refuses
//! names Python would rewrite (leading `/`, `..`, `.`), restores permission bits (without setuid,
//! setgid and sticky) when the entry was made on Unix, restores modification times, and creates
//! symlinks as symlinks (Python writes their target into a regular file). Entries without a stored
//! mode get 0o644 (files) and 0o755 (directories) before the umask, which is what Python yields
//! with the usual umask 022.

pub mod format;

mod error;
mod index;
mod names;
mod options;
mod plan;
mod unpack;
mod walk;
mod write;

pub use error::{PackError, ParseOptionError, SourceDateEpochError, TailReadError, UnpackError};
pub use index::{
    ArchiveIndex, IndexEntry, IndexEntryKind, MAX_SYMLINK_TARGET_LEN, Method, RECOMMENDED_TAIL_LEN,
    TailParse, first_tail_len,
};
pub use options::{
    Compression, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_TOTAL_BYTES, ExtraTree, PackOptions,
    SymlinkPolicy, UnpackOptions,
};
pub use plan::{PackPlan, plan};
pub use unpack::{UnpackSummary, unpack, unpack_file};
pub use walk::{PlanEntry, PlanEntryKind};
pub use write::WriteSummary;
