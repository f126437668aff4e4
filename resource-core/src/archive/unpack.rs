//! The safe, streaming archive reader: one sequential pass over the archive bytes that unpacks
//! them, so the caller can hash the same pass.
//!
//! A worker first parses the [`ArchiveIndex`] from the archive's tail (the central directory), then
//! streams the whole archive from byte 0 to its end through [`unpack`], usually wrapped in a
//! [`HashingReader`] so the MD5 is known the moment unpacking ends. `unpack` reads every byte,
//! including gaps between entries and the central directory, and checks that the central directory
//! in the stream is byte for byte the one the index was parsed from. Each local header must agree
//! with its central entry, each entry's data must inflate to exactly its declared size and CRC, and
//! an optional data descriptor must agree too.
//!
//! Reading and hashing happen on the calling thread; decompression, CRC and file writes happen on a
//! second thread, fed through a small pool of 1 MiB buffers, so memory stays constant and the work
//! overlaps with the hash.
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
//!
//! ```
//! use std::io::{Cursor, Write};
//! use resource_core::archive::{unpack, ArchiveIndex, TailParse, UnpackOptions, RECOMMENDED_TAIL_LEN};
//! use resource_core::hash::HashingReader;
//! use resource_core::ContentHash;
//!
//! # // A small archive, made here with the `zip` crate.
//! # let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
//! # zip.start_file("pkg/__init__.py", zip::write::SimpleFileOptions::default())?;
//! # zip.write_all(b"print('hi')\n")?;
//! # let archive: Vec<u8> = zip.finish()?.into_inner();
//! // 1. Parse the index from the archive's tail (a range request, for a remote archive).
//! let len = archive.len() as u64;
//! let tail = &archive[archive.len() - len.min(RECOMMENDED_TAIL_LEN) as usize..];
//! let TailParse::Index(index) = ArchiveIndex::from_tail(tail, len)? else {
//!     return Err("a large central directory: fetch the longer tail asked for".into());
//! };
//!
//! // 2. Stream the whole archive once, hashing and unpacking it together.
//! let dest = tempfile::tempdir()?;
//! let mut stream = HashingReader::new(Cursor::new(&archive));
//! let summary = unpack(&index, &mut stream, dest.path(), &UnpackOptions::default())?;
//! let (_, content_hash) = stream.finish()?;
//!
//! assert_eq!(content_hash, ContentHash::of_bytes(&archive));
//! assert_eq!((summary.files, summary.dirs), (1, 1));
//! assert_eq!(std::fs::read(dest.path().join("pkg/__init__.py"))?, b"print('hi')\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cmp::Reverse;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::thread;

use filetime::FileTime;
use flate2::{Decompress, FlushDecompress, Status};
use fs_err::os::unix::fs::OpenOptionsExt;

use super::format::{
    DATA_DESCRIPTOR_SIG, EXTRA_ZIP64, FLAG_DATA_DESCRIPTOR, FLAG_ENCRYPTED, LOCAL_HEADER_LEN,
    LOCAL_HEADER_SIG, METHOD_DEFLATE, METHOD_STORED,
};
use super::index::{ArchiveIndex, EntryKind, IndexEntry, Le, Method, extra_fields};
use crate::hash::{ContentHash, HashingReader};

/// The default cap on the total uncompressed size of an archive: 64 GiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 64 << 30;
/// The default cap on the number of entries: 1,048,576.
pub const DEFAULT_MAX_ENTRIES: u64 = 1 << 20;

/// Size of each buffer the stream is read into.
const BUF_LEN: usize = 1 << 20;
/// Buffers in flight between the reading and the writing thread.
const MAX_BUFFERS: usize = 4;
/// Size of the buffer deflate output goes through.
const INFLATE_BUF_LEN: usize = 256 << 10;

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
    /// More entries than [`UnpackOptions::max_entries`].
    #[error("the archive has {count} entries; at most {max} are allowed")]
    TooManyEntries {
        /// Entries in the archive.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// The total uncompressed size exceeds [`UnpackOptions::max_total_bytes`].
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

/// Limits and choices for [`unpack`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnpackOptions {
    /// The most uncompressed bytes to write, counted as data is inflated (default 64 GiB).
    pub max_total_bytes: u64,
    /// The most entries an archive may have (default 1,048,576).
    pub max_entries: u64,
    /// Whether to restore modification times (default `true`; Python's `extractall` does not).
    pub restore_mtimes: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self {
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
            restore_mtimes: true,
        }
    }
}

/// What [`unpack`] created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnpackSummary {
    /// Regular files.
    pub files: u64,
    /// Directories, explicit entries and implied parents alike.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Unpacks the archive read from `stream` into the existing directory `dest`, reading the stream
/// sequentially from its first byte to its end.
///
/// `index` must be the index of the same archive (parsed from its tail); the stream's central
/// directory and end records are compared with it byte for byte. Pass `&mut reader` to keep the
/// reader, for instance a [`HashingReader`] whose hash is checked afterwards. `dest` should be a
/// fresh, empty directory; on error it holds a partial tree and the caller deletes it.
pub fn unpack<R: Read>(
    index: &ArchiveIndex,
    stream: R,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackSummary, UnpackError> {
    let count = index.entries().len() as u64;
    if count > options.max_entries {
        return Err(UnpackError::TooManyEntries {
            count,
            max: options.max_entries,
        });
    }
    let mut declared = 0u64;
    for entry in index.entries() {
        declared = declared.saturating_add(entry.uncompressed_size);
        if declared > options.max_total_bytes {
            return Err(UnpackError::TooLarge {
                name: entry.name.clone(),
                max: options.max_total_bytes,
            });
        }
    }
    check_destination(dest)?;

    let (to_writer, from_reader) = mpsc::sync_channel::<Msg>(MAX_BUFFERS);
    let (pool_tx, pool_rx) = mpsc::channel::<Vec<u8>>();
    thread::scope(|scope| {
        let writer = Writer::new(index.entries(), dest, options);
        let handle = thread::Builder::new()
            .name("resource-unpack".to_owned())
            .spawn_scoped(scope, move || writer.run(from_reader, pool_tx))
            .map_err(|source| UnpackError::Spawn { source })?;
        let read = read_archive(index, stream, to_writer, pool_rx);
        let written = handle.join().map_err(|_| UnpackError::Internal {
            reason: "the unpacking thread panicked",
        })?;
        // The writer's error concerns earlier bytes than the reader's: report it first.
        match (read, written) {
            (_, Err(error)) | (Err(error), Ok(_)) => Err(error),
            (Ok(()), Ok(Some(summary))) => Ok(summary),
            (Ok(()), Ok(None)) => Err(UnpackError::Internal {
                reason: "the unpacking thread stopped before the end",
            }),
        }
    })
}

/// Indexes and unpacks a local archive file into `dest`, returning what was created and the MD5 of
/// the archive bytes read while unpacking (compare it with the expected content hash before using
/// `dest`).
pub fn unpack_file(
    archive: &Path,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<(UnpackSummary, ContentHash), UnpackError> {
    let read_err = |source| UnpackError::Read { offset: 0, source };
    let mut file = fs_err::File::open(archive).map_err(read_err)?;
    let index = ArchiveIndex::read_from(&mut file)?;
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let mut reader = HashingReader::new(file);
    let summary = unpack(&index, &mut reader, dest, options)?;
    let (_, hash) = reader.finish().map_err(|error| read_err(error.into()))?;
    Ok((summary, hash))
}

fn check_destination(dest: &Path) -> Result<(), UnpackError> {
    let invalid = |reason| UnpackError::InvalidDestination {
        path: dest.to_path_buf(),
        reason,
    };
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => Err(invalid("it is a symlink")),
        Ok(_) => Err(invalid("it is not a directory")),
        Err(_) => Err(invalid("it does not exist or cannot be read")),
    }
}

/// One step for the writing thread, in stream order.
#[derive(Debug)]
enum Op {
    /// The data of entry `i` (an index into [`ArchiveIndex::entries`]) follows.
    Entry(usize),
    /// Data of the current entry, a range of the chunk's buffer.
    Data(Range<usize>),
}

#[derive(Debug)]
enum Msg {
    /// A buffer of the stream and what to do with the parts of it that belong to entries.
    Chunk { buf: Vec<u8>, ops: Vec<Op> },
    /// The stream has been read to its end and checked.
    Finish,
}

/// The reading side: the stream, read into large buffers that are handed to the writer.
struct Input<R> {
    reader: R,
    buf: Vec<u8>,
    /// The unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The archive offset of `buf[start]`.
    pos: u64,
    eof: bool,
    /// What the writer must do with the consumed part of `buf`.
    ops: Vec<Op>,
    archive_len: u64,
    to_writer: SyncSender<Msg>,
    pool: Receiver<Vec<u8>>,
    allocated: usize,
}

/// The writer stopped (it reports why).
fn writer_gone() -> UnpackError {
    UnpackError::Internal {
        reason: "the unpacking thread stopped",
    }
}

impl<R: Read> Input<R> {
    fn avail(&self) -> usize {
        self.end - self.start
    }

    fn truncated(&self) -> UnpackError {
        UnpackError::Truncated {
            offset: self.pos + self.avail() as u64,
            archive_len: self.archive_len,
        }
    }

    /// Reads until the buffer is full or the stream ends.
    fn fill(&mut self) -> Result<(), UnpackError> {
        while self.end < self.buf.len() && !self.eof {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(UnpackError::Read {
                        offset: self.pos + self.avail() as u64,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn fresh_buffer(&mut self) -> Result<Vec<u8>, UnpackError> {
        match self.pool.try_recv() {
            Ok(buf) => return Ok(buf),
            Err(TryRecvError::Disconnected) => return Err(writer_gone()),
            Err(TryRecvError::Empty) => {}
        }
        if self.allocated < MAX_BUFFERS {
            self.allocated += 1;
            return Ok(vec![0; BUF_LEN]);
        }
        self.pool.recv().map_err(|_| writer_gone())
    }

    /// Moves the unconsumed bytes to the front of a buffer, handing the current buffer to the
    /// writer first if parts of it belong to entries.
    fn make_room(&mut self) -> Result<(), UnpackError> {
        let left = self.avail();
        if self.ops.is_empty() {
            self.buf.copy_within(self.start..self.end, 0);
        } else {
            let mut next = self.fresh_buffer()?;
            next[..left].copy_from_slice(&self.buf[self.start..self.end]);
            let buf = mem::replace(&mut self.buf, next);
            let ops = mem::take(&mut self.ops);
            self.to_writer
                .send(Msg::Chunk { buf, ops })
                .map_err(|_| writer_gone())?;
        }
        self.start = 0;
        self.end = left;
        Ok(())
    }

    /// Reads more of the stream; an error if it has ended.
    fn refill(&mut self) -> Result<(), UnpackError> {
        if self.eof {
            return Err(self.truncated());
        }
        if self.end == self.buf.len() {
            self.make_room()?;
        }
        self.fill()
    }

    /// The next `n` unconsumed bytes, contiguous (`n` at most `BUF_LEN`).
    fn need(&mut self, n: usize) -> Result<&[u8], UnpackError> {
        while self.avail() < n {
            self.refill()?;
        }
        Ok(&self.buf[self.start..self.start + n])
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Hands the next `n` bytes to the writer as the current entry's data.
    fn data(&mut self, mut n: u64) -> Result<(), UnpackError> {
        while n > 0 {
            if self.avail() == 0 {
                self.refill()?;
                continue;
            }
            let take = self.avail().min(usize::try_from(n).unwrap_or(usize::MAX));
            self.ops.push(Op::Data(self.start..self.start + take));
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads past the next `n` bytes, showing each piece and its offset to `check`.
    fn skip(
        &mut self,
        mut n: u64,
        mut check: impl FnMut(&[u8], u64) -> Result<(), UnpackError>,
    ) -> Result<(), UnpackError> {
        while n > 0 {
            if self.avail() == 0 {
                self.refill()?;
                continue;
            }
            let take = self.avail().min(usize::try_from(n).unwrap_or(usize::MAX));
            check(&self.buf[self.start..self.start + take], self.pos)?;
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Checks that the stream ends here and hands the last buffer to the writer.
    fn finish(mut self) -> Result<(), UnpackError> {
        if self.avail() == 0 && !self.eof {
            if self.end == self.buf.len() {
                self.make_room()?;
            }
            self.fill()?;
        }
        if self.avail() > 0 {
            return Err(UnpackError::TrailingData {
                archive_len: self.archive_len,
            });
        }
        let ops = mem::take(&mut self.ops);
        let buf = mem::take(&mut self.buf);
        self.to_writer
            .send(Msg::Chunk { buf, ops })
            .and_then(|()| self.to_writer.send(Msg::Finish))
            .map_err(|_| writer_gone())
    }
}

fn read_archive<R: Read>(
    index: &ArchiveIndex,
    reader: R,
    to_writer: SyncSender<Msg>,
    pool: Receiver<Vec<u8>>,
) -> Result<(), UnpackError> {
    let mut input = Input {
        reader,
        buf: vec![0; BUF_LEN],
        start: 0,
        end: 0,
        pos: 0,
        eof: false,
        ops: Vec::new(),
        archive_len: index.archive_len(),
        to_writer,
        pool,
        allocated: 1,
    };
    let entries = index.entries();
    let cd_offset = index.central_dir_offset();
    for (i, entry) in entries.iter().enumerate() {
        let (boundary, other) = match entries.get(i + 1) {
            Some(next) => (next.local_header_offset, next.name.as_str()),
            None => (cd_offset, "the central directory"),
        };
        let overlap = || UnpackError::Overlap {
            name: entry.name.clone(),
            other: other.to_owned(),
        };
        // Bytes between entries are read (and hashed by the caller) but not extracted.
        let gap = entry
            .local_header_offset
            .checked_sub(input.pos)
            .ok_or_else(|| UnpackError::Overlap {
                name: entry.name.clone(),
                other: "the entry before it".to_owned(),
            })?;
        input.skip(gap, |_, _| Ok(()))?;

        let zip64 = read_local_header(&mut input, entry)?;
        if input
            .pos
            .checked_add(entry.compressed_size)
            .is_none_or(|end| end > boundary)
        {
            return Err(overlap());
        }
        input.ops.push(Op::Entry(i));
        input.data(entry.compressed_size)?;
        if entry.flags() & FLAG_DATA_DESCRIPTOR != 0 {
            let room = boundary - input.pos;
            read_data_descriptor(&mut input, entry, room, zip64)?;
        }
    }

    let gap = cd_offset
        .checked_sub(input.pos)
        .ok_or(UnpackError::Internal {
            reason: "read past the central directory",
        })?;
    input.skip(gap, |_, _| Ok(()))?;
    let trailer = index.trailer();
    input.skip(trailer.len() as u64, |piece, offset| {
        let from = (offset - cd_offset) as usize;
        let expected = &trailer[from..from + piece.len()];
        match piece.iter().zip(expected).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(at) => Err(UnpackError::TailMismatch {
                offset: offset + at as u64,
            }),
        }
    })?;
    input.finish()
}

fn method_number(compression: Method) -> u16 {
    match compression {
        Method::Stored => METHOD_STORED,
        Method::Deflate => METHOD_DEFLATE,
    }
}

/// Reads and checks the local header of `entry`, which starts at the current position. Returns
/// whether it carries a zip64 extra field.
fn read_local_header<R: Read>(
    input: &mut Input<R>,
    entry: &IndexEntry,
) -> Result<bool, UnpackError> {
    let offset = input.pos;
    let fixed: [u8; LOCAL_HEADER_LEN] =
        input
            .need(LOCAL_HEADER_LEN)?
            .try_into()
            .map_err(|_| UnpackError::Internal {
                reason: "local header length",
            })?;
    let u16_at = |at: usize| u16::from_le_bytes([fixed[at], fixed[at + 1]]);
    let u32_at =
        |at: usize| u32::from_le_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]);
    if u32_at(0) != LOCAL_HEADER_SIG {
        return Err(UnpackError::Malformed {
            offset,
            reason: format!("entry {:?}: no local header at its offset", entry.name),
        });
    }
    let flags = u16_at(6);
    let method = u16_at(8);
    let crc = u32_at(14);
    let compressed32 = u32_at(18);
    let uncompressed32 = u32_at(22);
    let name_len = usize::from(u16_at(26));
    let extra_len = usize::from(u16_at(28));
    let header = input.need(LOCAL_HEADER_LEN + name_len + extra_len)?;
    let name = &header[LOCAL_HEADER_LEN..LOCAL_HEADER_LEN + name_len];
    let extra = &header[LOCAL_HEADER_LEN + name_len..];

    let mismatch = |field, central: String, local: String| UnpackError::HeaderMismatch {
        name: entry.name.clone(),
        field,
        central,
        local,
    };
    if name != entry.raw_name() {
        return Err(mismatch(
            "name",
            entry.name.clone(),
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    let central_method = method_number(entry.compression);
    if method != central_method {
        return Err(mismatch(
            "compression method",
            central_method.to_string(),
            method.to_string(),
        ));
    }
    let significant = FLAG_DATA_DESCRIPTOR | FLAG_ENCRYPTED | (1 << 6) | (1 << 13);
    if (flags ^ entry.flags()) & significant != 0 {
        return Err(mismatch(
            "general purpose flags",
            format!("{:#06x}", entry.flags()),
            format!("{flags:#06x}"),
        ));
    }

    let mut compressed = u64::from(compressed32);
    let mut uncompressed = u64::from(uncompressed32);
    let mut zip64 = false;
    let fields = extra_fields(extra).map_err(|reason| UnpackError::Malformed {
        offset,
        reason: format!("entry {:?}: {reason}", entry.name),
    })?;
    if let Some((_, data)) = fields.iter().find(|(tag, _)| *tag == EXTRA_ZIP64) {
        zip64 = true;
        let mut z = Le::new(data, 0);
        let short = || UnpackError::Malformed {
            offset,
            reason: format!("entry {:?}: local zip64 extra field too short", entry.name),
        };
        if uncompressed32 == u32::MAX {
            uncompressed = z.u64().ok_or_else(short)?;
        }
        if compressed32 == u32::MAX {
            compressed = z.u64().ok_or_else(short)?;
        }
    }
    // With a data descriptor the local values may be zero; otherwise they must be the central ones.
    let deferred = flags & FLAG_DATA_DESCRIPTOR != 0;
    let agrees = |local: u64, central: u64| local == central || (deferred && local == 0);
    if !agrees(u64::from(crc), u64::from(entry.crc32)) {
        return Err(mismatch(
            "CRC-32",
            format!("{:08x}", entry.crc32),
            format!("{crc:08x}"),
        ));
    }
    if !agrees(compressed, entry.compressed_size) {
        return Err(mismatch(
            "compressed size",
            entry.compressed_size.to_string(),
            compressed.to_string(),
        ));
    }
    if !agrees(uncompressed, entry.uncompressed_size) {
        return Err(mismatch(
            "uncompressed size",
            entry.uncompressed_size.to_string(),
            uncompressed.to_string(),
        ));
    }
    input.consume(LOCAL_HEADER_LEN + name_len + extra_len);
    Ok(zip64)
}

/// Reads the data descriptor after an entry's data: with or without its signature, with 32- or
/// 64-bit sizes, whichever form holds exactly the central directory's values within `room` bytes.
fn read_data_descriptor<R: Read>(
    input: &mut Input<R>,
    entry: &IndexEntry,
    room: u64,
    zip64: bool,
) -> Result<(), UnpackError> {
    let n = room.min(24) as usize;
    let bytes = input.need(n)?;
    let forms: [(bool, bool); 4] = if zip64 {
        [(true, true), (true, false), (false, true), (false, false)]
    } else {
        [(true, false), (true, true), (false, false), (false, true)]
    };
    let mut found = None;
    for (signed, wide) in forms {
        let mut d = Le::new(bytes, 0);
        if signed && d.u32() != Some(u64::from(DATA_DESCRIPTOR_SIG)) {
            continue;
        }
        let crc = d.u32();
        let (compressed, uncompressed) = if wide {
            (d.u64(), d.u64())
        } else {
            (d.u32(), d.u32())
        };
        if crc == Some(u64::from(entry.crc32))
            && compressed == Some(entry.compressed_size)
            && uncompressed == Some(entry.uncompressed_size)
        {
            found = Some(d.pos());
            break;
        }
    }
    match found {
        Some(len) => {
            input.consume(len);
            Ok(())
        }
        None => Err(UnpackError::HeaderMismatch {
            name: entry.name.clone(),
            field: "data descriptor",
            central: format!(
                "CRC {:08x}, {} compressed, {} uncompressed bytes",
                entry.crc32, entry.compressed_size, entry.uncompressed_size
            ),
            local: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        }),
    }
}

/// Where the current entry's content goes.
enum Sink {
    File(fs_err::File),
    Link(Vec<u8>),
    Nothing,
}

struct Current {
    index: usize,
    sink: Sink,
    crc: crc32fast::Hasher,
    written: u64,
    ended: bool,
}

/// A directory entry whose mode and time are applied once everything is written.
struct DirFixup {
    path: String,
    mode: Option<u32>,
    mtime: i64,
}

/// The writing side: creates directories, files and symlinks, inflates, counts and checks.
struct Writer<'a> {
    entries: &'a [IndexEntry],
    dest: &'a Path,
    options: &'a UnpackOptions,
    /// Relative paths known to be real directories (created here or found as directories).
    dirs: HashSet<String>,
    fixups: Vec<DirFixup>,
    summary: UnpackSummary,
    total: u64,
    inflater: Decompress,
    out: Vec<u8>,
    current: Option<Current>,
}

fn fs_error(entry: &IndexEntry) -> impl Fn(io::Error) -> UnpackError + '_ {
    |source| UnpackError::Filesystem {
        name: entry.name.clone(),
        source,
    }
}

fn file_time(seconds: i64) -> FileTime {
    FileTime::from_unix_time(seconds, 0)
}

impl<'a> Writer<'a> {
    fn new(entries: &'a [IndexEntry], dest: &'a Path, options: &'a UnpackOptions) -> Self {
        Self {
            entries,
            dest,
            options,
            dirs: HashSet::new(),
            fixups: Vec::new(),
            summary: UnpackSummary::default(),
            total: 0,
            inflater: Decompress::new(false),
            out: vec![0; INFLATE_BUF_LEN],
            current: None,
        }
    }

    /// Processes messages until the reader finishes (`Some`) or goes away (`None`).
    fn run(
        mut self,
        from_reader: Receiver<Msg>,
        pool: Sender<Vec<u8>>,
    ) -> Result<Option<UnpackSummary>, UnpackError> {
        for msg in from_reader {
            match msg {
                Msg::Chunk { buf, ops } => {
                    for op in ops {
                        match op {
                            Op::Entry(i) => {
                                self.finish_entry()?;
                                self.start_entry(i)?;
                            }
                            Op::Data(range) => self.feed(&buf[range])?,
                        }
                    }
                    // The reader may have finished; then nobody needs the buffer.
                    let _ = pool.send(buf);
                }
                Msg::Finish => {
                    self.finish_entry()?;
                    self.apply_directory_fixups()?;
                    return Ok(Some(self.summary));
                }
            }
        }
        Ok(None)
    }

    fn entry(&self, i: usize) -> Result<&'a IndexEntry, UnpackError> {
        self.entries.get(i).ok_or(UnpackError::Internal {
            reason: "entry index out of range",
        })
    }

    fn start_entry(&mut self, i: usize) -> Result<(), UnpackError> {
        let entry = self.entry(i)?;
        let path = entry.path();
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.ensure_dirs(parent, entry)?;
        }
        let sink = match entry.kind {
            EntryKind::Directory => {
                self.ensure_dirs(path, entry)?;
                self.fixups.push(DirFixup {
                    path: path.to_owned(),
                    mode: entry.mode,
                    mtime: entry.mtime,
                });
                Sink::Nothing
            }
            EntryKind::File => {
                // Stored modes are applied with fchmod once written; until then keep it private.
                let initial = if entry.mode.is_some() { 0o600 } else { 0o644 };
                let file = fs_err::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(initial)
                    .open(self.dest.join(path))
                    .map_err(fs_error(entry))?;
                Sink::File(file)
            }
            EntryKind::Symlink => Sink::Link(Vec::new()),
        };
        self.inflater.reset(false);
        self.current = Some(Current {
            index: i,
            sink,
            crc: crc32fast::Hasher::new(),
            written: 0,
            ended: false,
        });
        Ok(())
    }

    /// Makes sure `rel` and its ancestors are real directories, creating the missing ones.
    fn ensure_dirs(&mut self, rel: &str, entry: &IndexEntry) -> Result<(), UnpackError> {
        if self.dirs.contains(rel) {
            return Ok(());
        }
        let ends = rel
            .match_indices('/')
            .map(|(at, _)| at)
            .chain(std::iter::once(rel.len()));
        for end in ends {
            let prefix = &rel[..end];
            if self.dirs.contains(prefix) {
                continue;
            }
            let full = self.dest.join(prefix);
            match std::fs::DirBuilder::new().mode(0o755).create(&full) {
                Ok(()) => self.summary.dirs += 1,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let meta = fs_err::symlink_metadata(&full).map_err(fs_error(entry))?;
                    if meta.file_type().is_symlink() {
                        return Err(UnpackError::ThroughSymlink {
                            name: entry.name.clone(),
                            link: prefix.to_owned(),
                        });
                    }
                    if !meta.is_dir() {
                        return Err(UnpackError::PathConflict {
                            name: entry.name.clone(),
                            other: prefix.to_owned(),
                        });
                    }
                }
                Err(error) => {
                    return Err(UnpackError::Filesystem {
                        name: entry.name.clone(),
                        source: io::Error::new(
                            error.kind(),
                            format!("failed to create directory {}: {error}", full.display()),
                        ),
                    });
                }
            }
            self.dirs.insert(prefix.to_owned());
        }
        Ok(())
    }

    fn feed(&mut self, input: &[u8]) -> Result<(), UnpackError> {
        let Writer {
            entries,
            options,
            total,
            inflater,
            out,
            current,
            ..
        } = self;
        let Some(current) = current.as_mut() else {
            return Err(UnpackError::Internal {
                reason: "data before any entry",
            });
        };
        let entry = entries.get(current.index).ok_or(UnpackError::Internal {
            reason: "entry index out of range",
        })?;
        let max_total = options.max_total_bytes;
        match entry.compression {
            Method::Stored => emit(current, entry, total, max_total, input),
            Method::Deflate => {
                let mut input = input;
                loop {
                    if current.ended {
                        if input.is_empty() {
                            return Ok(());
                        }
                        return Err(UnpackError::CorruptData {
                            name: entry.name.clone(),
                            reason: "bytes follow the end of the deflate stream".to_owned(),
                        });
                    }
                    let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
                    let status = inflater
                        .decompress(input, out, FlushDecompress::None)
                        .map_err(|error| UnpackError::CorruptData {
                            name: entry.name.clone(),
                            reason: error.to_string(),
                        })?;
                    let consumed = (inflater.total_in() - in_before) as usize;
                    let produced = (inflater.total_out() - out_before) as usize;
                    input = &input[consumed..];
                    emit(current, entry, total, max_total, &out[..produced])?;
                    if status == Status::StreamEnd {
                        current.ended = true;
                        continue;
                    }
                    if input.is_empty() && produced < out.len() {
                        // All input taken and no output pending.
                        return Ok(());
                    }
                    if consumed == 0 && produced == 0 {
                        if input.is_empty() {
                            return Ok(());
                        }
                        return Err(UnpackError::CorruptData {
                            name: entry.name.clone(),
                            reason: "the decompressor makes no progress".to_owned(),
                        });
                    }
                }
            }
        }
    }

    /// Completes the current entry: the end of its deflate stream, its size and CRC, then its
    /// mode, time or symlink.
    fn finish_entry(&mut self) -> Result<(), UnpackError> {
        let Some(mut current) = self.current.take() else {
            return Ok(());
        };
        let entry = self.entry(current.index)?;
        if entry.compression == Method::Deflate {
            while !current.ended {
                let out_before = self.inflater.total_out();
                let status = self
                    .inflater
                    .decompress(&[], &mut self.out, FlushDecompress::Finish)
                    .map_err(|error| UnpackError::CorruptData {
                        name: entry.name.clone(),
                        reason: error.to_string(),
                    })?;
                let produced = (self.inflater.total_out() - out_before) as usize;
                emit(
                    &mut current,
                    entry,
                    &mut self.total,
                    self.options.max_total_bytes,
                    &self.out[..produced],
                )?;
                if status == Status::StreamEnd {
                    current.ended = true;
                } else if produced == 0 {
                    return Err(UnpackError::CorruptData {
                        name: entry.name.clone(),
                        reason: "the deflate stream ends before its last block".to_owned(),
                    });
                }
            }
        }
        if current.written != entry.uncompressed_size {
            return Err(UnpackError::SizeMismatch {
                name: entry.name.clone(),
                declared: entry.uncompressed_size,
                actual: current.written,
            });
        }
        let crc = current.crc.finalize();
        if crc != entry.crc32 {
            return Err(UnpackError::CrcMismatch {
                name: entry.name.clone(),
                declared: entry.crc32,
                actual: crc,
            });
        }
        let restore = self.options.restore_mtimes;
        match current.sink {
            Sink::File(file) => {
                if let Some(mode) = entry.mode {
                    file.set_permissions(std::fs::Permissions::from_mode(mode))
                        .map_err(fs_error(entry))?;
                }
                if restore {
                    filetime::set_file_handle_times(
                        file.file(),
                        None,
                        Some(file_time(entry.mtime)),
                    )
                    .map_err(|error| UnpackError::Filesystem {
                        name: entry.name.clone(),
                        source: io::Error::new(
                            error.kind(),
                            format!(
                                "failed to set the time of {}: {error}",
                                file.path().display()
                            ),
                        ),
                    })?;
                }
                self.summary.files += 1;
                self.summary.bytes += current.written;
            }
            Sink::Link(target) => {
                if let Some(reason) = symlink_problem(entry.path(), &target) {
                    return Err(UnpackError::UnsafeSymlink {
                        name: entry.name.clone(),
                        target: String::from_utf8_lossy(&target).into_owned(),
                        reason,
                    });
                }
                let link = self.dest.join(entry.path());
                fs_err::os::unix::fs::symlink(OsStr::from_bytes(&target), &link)
                    .map_err(fs_error(entry))?;
                if restore {
                    let time = file_time(entry.mtime);
                    filetime::set_symlink_file_times(&link, time, time).map_err(|error| {
                        UnpackError::Filesystem {
                            name: entry.name.clone(),
                            source: io::Error::new(
                                error.kind(),
                                format!("failed to set the time of {}: {error}", link.display()),
                            ),
                        }
                    })?;
                }
                self.summary.symlinks += 1;
            }
            Sink::Nothing => {}
        }
        Ok(())
    }

    /// Applies directory modes and times, deepest first, once all content is written (so a
    /// read-only directory can still be filled, and writing does not change restored times).
    fn apply_directory_fixups(&mut self) -> Result<(), UnpackError> {
        let mut fixups = mem::take(&mut self.fixups);
        fixups.sort_by_key(|fixup| Reverse(fixup.path.matches('/').count()));
        for fixup in fixups {
            let full = self.dest.join(&fixup.path);
            let fail = |source| UnpackError::Filesystem {
                name: format!("{}/", fixup.path),
                source,
            };
            if let Some(mode) = fixup.mode {
                fs_err::set_permissions(&full, std::fs::Permissions::from_mode(mode))
                    .map_err(fail)?;
            }
            if self.options.restore_mtimes {
                filetime::set_file_mtime(&full, file_time(fixup.mtime)).map_err(|error| {
                    fail(io::Error::new(
                        error.kind(),
                        format!("failed to set the time of {}: {error}", full.display()),
                    ))
                })?;
            }
        }
        Ok(())
    }
}

/// Counts, checks, hashes and writes a piece of an entry's content.
fn emit(
    current: &mut Current,
    entry: &IndexEntry,
    total: &mut u64,
    max_total: u64,
    bytes: &[u8],
) -> Result<(), UnpackError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let n = bytes.len() as u64;
    let written = current.written + n;
    if written > entry.uncompressed_size {
        return Err(UnpackError::SizeMismatch {
            name: entry.name.clone(),
            declared: entry.uncompressed_size,
            actual: written,
        });
    }
    if total.saturating_add(n) > max_total {
        return Err(UnpackError::TooLarge {
            name: entry.name.clone(),
            max: max_total,
        });
    }
    current.crc.update(bytes);
    match &mut current.sink {
        Sink::File(file) => file.write_all(bytes).map_err(fs_error(entry))?,
        Sink::Link(target) => target.extend_from_slice(bytes),
        Sink::Nothing => {}
    }
    current.written = written;
    *total += n;
    Ok(())
}

/// Why a symlink at `link` (a relative path) pointing to `target` could lead outside the tree.
///
/// Accepted targets are relative, start with at most as many `..` components as the link has
/// parent directories, and have no `..` after a normal component. Every link made this way
/// resolves inside the tree, whatever other links it passes through.
fn symlink_problem(link: &str, target: &[u8]) -> Option<&'static str> {
    if target.is_empty() {
        return Some("empty target");
    }
    if target.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Some("NUL or control character in the target");
    }
    if target.first() == Some(&b'/') {
        return Some("absolute target");
    }
    let depth = link.matches('/').count();
    let mut ups = 0;
    let mut descended = false;
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if descended => return Some("`..` after a normal component"),
            b".." => {
                ups += 1;
                if ups > depth {
                    return Some("the target leaves the tree");
                }
            }
            _ => descended = true,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::symlink_problem;

    #[test]
    fn symlink_targets_must_stay_inside() {
        for (link, target, ok) in [
            ("a", "b", true),
            ("a", "./b/c", true),
            ("d/a", "../b", true),
            ("d/e/a", "../../b/c", true),
            ("a", "..", false),
            ("a", "../a", false),
            ("d/a", "../..", false),
            ("a", "/etc/passwd", false),
            ("a", "b/../c", false),
            ("a", "", false),
            ("a", "b\nc", false),
        ] {
            assert_eq!(
                symlink_problem(link, target.as_bytes()).is_none(),
                ok,
                "{link} -> {target}"
            );
        }
    }
}
