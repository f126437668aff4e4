//! The deterministic, streaming zip archive of directory and virtualenv resources.
//!
//! - Packing ([`plan`], then [`PackPlan::write`]): every check happens while planning, before a
//!   byte is written; the archive is then streamed to any `Write` in constant memory. Entries are
//!   sorted by name with explicit directories, Unix modes and mtimes, so equal trees give equal
//!   bytes on any machine.
//! - Unpacking ([`ArchiveIndex::from_tail`], then [`unpack()`]): the central directory is read from
//!   the archive's tail, and the archive is then read once, sequentially, while it is hashed and
//!   extracted, refusing anything unsafe.
//!
//! ```
//! use resource_core::ResourceKind;
//! use resource_core::archive::{self, ArchiveIndex, PackOptions, TailParse, UnpackOptions};
//! use resource_core::hash::{HashingReader, HashingWriter};
//!
//! let tree = tempfile::tempdir()?;
//! std::fs::create_dir(tree.path().join("pkg"))?;
//! std::fs::write(tree.path().join("pkg/__init__.py"), "VALUE = 1\n")?;
//!
//! // Leader: pack the package (rooted at its parent, as Toil does), hashing on the way.
//! let plan = archive::plan(&tree.path().join("pkg"), ResourceKind::Directory, &PackOptions::default())?;
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
//! archive::unpack(&index, &mut reader, dest.path(), &UnpackOptions::default())?;
//! assert_eq!(reader.finish()?.1, content_hash);
//! assert_eq!(std::fs::read_to_string(dest.path().join("pkg/__init__.py"))?, "VALUE = 1\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod format;
pub mod index;
pub mod pack;
pub mod unpack;
mod walk;

pub use index::{ArchiveIndex, EntryKind, IndexEntry, Method, RECOMMENDED_TAIL_LEN, TailParse};
pub use pack::{
    Compression, ExtraTree, PackError, PackOptions, PackPlan, SymlinkPolicy, WriteSummary, plan,
};
pub use unpack::{UnpackError, UnpackOptions, UnpackSummary, unpack, unpack_file};
