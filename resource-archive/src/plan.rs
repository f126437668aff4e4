//! Packing's first step: [`plan`] walks the tree and checks everything (layout, dangerous roots,
//! symbolic links, special and unreadable files, excludes) before anything is written, and
//! returns a [`PackPlan`]; [`PackPlan::write`] then streams the archive, any number of times.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use resource_core::ResourceKind;
use resource_core::hash::{ContentHash, HashingWriter};

use crate::error::PackError;
use crate::options::{Compression, PackOptions};
use crate::walk::{self, PlanEntry, PlanEntryKind};
use crate::write::{self, WriteSummary};

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

/// Walks and checks `path` as a resource of `kind` (directory or virtualenv) and returns the
/// plan of its archive. Nothing is written; every refusal happens here.
///
/// A directory holding `__init__.py` is a package: entry names start with its base name and a
/// `/`. Any other directory, and a virtualenv's `site-packages`, is the archive root itself.
///
/// The caller hashes the archive by wrapping the output of [`PackPlan::write`] in a
/// [`HashingWriter`]:
///
/// ```
/// use resource_archive::PackOptions;
/// use resource_core::hash::HashingWriter;
/// use resource_core::ResourceKind;
///
/// let tree = tempfile::tempdir()?;
/// std::fs::create_dir(tree.path().join("empty"))?;
/// std::fs::write(tree.path().join("flow.py"), "def main(): pass\n")?;
///
/// let plan = resource_archive::plan(tree.path(), ResourceKind::Directory, &PackOptions::default())?;
/// assert_eq!((plan.file_count(), plan.dir_count(), plan.file_bytes()), (1, 1, 17));
/// let names: Vec<&str> = plan.entries().iter().map(|entry| entry.name()).collect();
/// assert_eq!(names, ["empty/", "flow.py"]);
///
/// let mut out = HashingWriter::new(Vec::new());
/// let summary = plan.write(&mut out)?;
/// let (archive, content_hash) = out.finish()?;
/// assert_eq!(summary.archive_len, archive.len() as u64);
/// // A dry run gives the same length and hash without keeping the bytes.
/// assert_eq!(plan.measure()?, (summary.archive_len, content_hash));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
            PlanEntryKind::Directory => plan.dir_count += 1,
            PlanEntryKind::File { size } => {
                plan.file_count += 1;
                plan.file_bytes += size;
            }
            PlanEntryKind::Symlink { .. } => plan.symlink_count += 1,
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
        write::write_archive(out, self.compression, &self.entries, |entry| {
            self.source_path(entry)
        })
    }

    /// A dry run: the length and content hash of the archive, computed without keeping it.
    pub fn measure(&self) -> Result<(u64, ContentHash), PackError> {
        let mut out = HashingWriter::new(io::sink());
        let summary = self.write(&mut out)?;
        let (_, hash) = out
            .finish()
            .map_err(|error| write::output_error(error.into()))?;
        Ok((summary.archive_len, hash))
    }
}
