//! The deterministic, streaming zip archive of directory and virtualenv resources.

pub mod format;
pub mod index;
pub mod pack;
pub mod unpack;
mod walk;

pub use index::{
    ArchiveIndex, Compression, EntryKind, IndexEntry, RECOMMENDED_TAIL_LEN, TailParse,
};
pub use pack::{PackError, PackOptions, PackPlan, SymlinkPolicy, WriteSummary, plan};
pub use unpack::{UnpackError, UnpackOptions, UnpackSummary, unpack, unpack_file};
